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
    /// The kubelet's Ready condition is True.
    pub ready: bool,
    /// Why not ready (the Ready condition's reason and message).
    pub why: String,
    /// `spec.providerID`, set by the cloud-controller-manager when it initialises the node.
    pub provider_id: Option<String>,
    /// The keys of the node's NoSchedule/NoExecute taints.
    pub taints: Vec<String>,
}

/// The taint a kubelet with `cloud-provider=external` registers with; the cloud node
/// controller removes it when it has initialised the node (k8s.io/cloud-provider
/// `api.TaintExternalCloudProvider`).
pub const UNINITIALIZED_TAINT: &str = "node.cloudprovider.kubernetes.io/uninitialized";

impl NodeReadiness {
    /// Whether an external cloud provider has initialised the node: providerID set and the
    /// uninitialized taint gone. Until then nothing without a toleration is scheduled there.
    pub fn initialized(&self) -> bool {
        self.provider_id.as_deref().is_some_and(|p| !p.is_empty())
            && !self.taints.iter().any(|t| t == UNINITIALIZED_TAINT)
    }
}

#[derive(Deserialize)]
struct NodeList {
    items: Vec<Node>,
}
#[derive(Deserialize)]
struct Node {
    metadata: Meta,
    #[serde(default)]
    spec: NodeSpec,
    #[serde(default)]
    status: Status,
}
#[derive(Deserialize, Default)]
struct NodeSpec {
    #[serde(default, rename = "providerID")]
    provider_id: Option<String>,
    #[serde(default)]
    taints: Vec<Taint>,
}
#[derive(Deserialize)]
struct Taint {
    key: String,
    #[serde(default)]
    effect: String,
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
                provider_id: n.spec.provider_id,
                taints: n
                    .spec
                    .taints
                    .into_iter()
                    .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
                    .map(|t| t.key)
                    .collect(),
            }
        })
        .collect())
}

/// How far one add-on workload has rolled out, judged like `kubectl rollout status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonRollout {
    pub workload: super::addons::AddonWorkload,
    pub done: bool,
    /// `2/3 ready`, `not found`, ...
    pub detail: String,
}

fn num(v: &serde_json::Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(serde_json::Value::as_u64).unwrap_or(0)
}

/// Matches the expected add-on workloads to `kubectl get daemonsets,deployments -A -o json`.
pub fn addon_rollouts(
    expected: &[super::addons::AddonWorkload],
    json: &str,
) -> Result<Vec<AddonRollout>, serde_json::Error> {
    use super::addons::AddonKind;
    let doc: serde_json::Value = serde_json::from_str(json)?;
    let items = doc.get("items").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    Ok(expected
        .iter()
        .map(|w| {
            let kind = match w.kind {
                AddonKind::DaemonSet => "DaemonSet",
                AddonKind::Deployment => "Deployment",
            };
            let found = items.iter().find(|o| {
                o.pointer("/kind").and_then(serde_json::Value::as_str) == Some(kind)
                    && o.pointer("/metadata/namespace").and_then(serde_json::Value::as_str) == Some(w.namespace)
                    && o.pointer("/metadata/name").and_then(serde_json::Value::as_str) == Some(w.name)
            });
            let Some(o) = found else {
                return AddonRollout { workload: w.clone(), done: false, detail: "not found".into() };
            };
            let observed = num(o, "/status/observedGeneration") >= num(o, "/metadata/generation");
            let (done, ready, want) = match w.kind {
                AddonKind::DaemonSet => {
                    let want = num(o, "/status/desiredNumberScheduled");
                    let updated = num(o, "/status/updatedNumberScheduled");
                    let available = num(o, "/status/numberAvailable");
                    (observed && want > 0 && updated >= want && available >= want, available, want)
                }
                AddonKind::Deployment => {
                    let want = o.pointer("/spec/replicas").and_then(serde_json::Value::as_u64).unwrap_or(1);
                    let updated = num(o, "/status/updatedReplicas");
                    let total = num(o, "/status/replicas");
                    let available = num(o, "/status/availableReplicas");
                    (observed && updated >= want && total == updated && available >= want, available, want)
                }
            };
            AddonRollout { workload: w.clone(), done, detail: format!("{ready}/{want} available") }
        })
        .collect())
}
