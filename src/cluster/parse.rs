//! Reads what the nodes answer: `key=value` lines of the scripts and `kubectl get nodes -o
//! json`. Pure.

use serde::Deserialize;

/// The value of the last `key=value` line in a script's output.
pub fn value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    lines.iter().rev().find_map(|l| l.strip_prefix(&prefix)).map(str::trim)
}

/// A CA hash as kubeadm wants it: `sha256:` and 64 hex digits.
pub fn is_ca_hash(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReadiness {
    pub name: String,
    pub ready: bool,
    /// Why not ready (the Ready condition's reason and message).
    pub why: String,
}

#[derive(Deserialize)]
struct NodeList {
    items: Vec<Node>,
}
#[derive(Deserialize)]
struct Node {
    metadata: Meta,
    #[serde(default)]
    status: Status,
}
#[derive(Deserialize)]
struct Meta {
    name: String,
}
#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    conditions: Vec<Condition>,
}
#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

pub fn node_readiness(json: &str) -> Result<Vec<NodeReadiness>, serde_json::Error> {
    let list: NodeList = serde_json::from_str(json)?;
    Ok(list
        .items
        .into_iter()
        .map(|n| {
            let ready = n.status.conditions.iter().find(|c| c.kind == "Ready");
            NodeReadiness {
                name: n.metadata.name,
                ready: ready.is_some_and(|c| c.status == "True"),
                why: ready.map_or_else(
                    || "no Ready condition yet".to_string(),
                    |c| format!("{}: {}", c.reason.as_deref().unwrap_or("-"), c.message.as_deref().unwrap_or("-")),
                ),
            }
        })
        .collect())
}
