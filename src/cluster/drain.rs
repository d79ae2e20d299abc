//! Taking a worker out of the cluster safely, the pure half: the kubectl command lines (cordon,
//! drain, uncordon, delete node), and the judgements made from what the API server answers
//! (which StatefulSets need one node per replica, how many nodes stay schedulable, which pods
//! a drain could not evict and the PodDisruptionBudget that protects each). Running them is
//! `ops::retire`'s job; nothing here does I/O.
//!
//! Facts relied on (kubectl and the eviction API, Kubernetes v1.36):
//! - `kubectl drain` cordons, then evicts through the Eviction API, which answers 429 while a
//!   PodDisruptionBudget allows no disruption; kubectl prints
//!   `error when evicting pods/"NAME" -n "NS" (will retry after 5s): Cannot evict pod as it
//!   would violate the pod's disruption budget.` and retries until `--timeout`, then fails with
//!   `error when evicting pods/"NAME" -n "NS": global timeout reached: ...`
//!   (k8s.io/kubectl/pkg/drain/drain.go, `evictPods`).
//! - `--ignore-daemonsets` is needed to drain a node running DaemonSet pods (flannel,
//!   kube-proxy, the EBS CSI node plugin): a DaemonSet pod would be recreated on the same node;
//!   `--delete-emptydir-data` lets pods with emptyDir volumes go (their scratch data is lost,
//!   which is what emptyDir means) (`kubectl drain --help`).
//! - `kubectl delete node` removes the Node object; kubeadm's docs remove a node with drain, then
//!   `kubectl delete node` ("Remove the node", kubeadm reset docs).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::shell::sh_quote;

pub fn cordon(kubectl: &str, node: &str) -> String {
    format!("{kubectl} cordon {}", sh_quote(node))
}

pub fn uncordon(kubectl: &str, node: &str) -> String {
    format!("{kubectl} uncordon {}", sh_quote(node))
}

/// Evicts every pod but DaemonSet pods, honouring PodDisruptionBudgets, for at most `timeout`.
pub fn drain(kubectl: &str, node: &str, timeout: Duration) -> String {
    format!(
        "{kubectl} drain {} --ignore-daemonsets --delete-emptydir-data --timeout={}s",
        sh_quote(node),
        timeout.as_secs().max(1)
    )
}

pub fn delete_node(kubectl: &str, node: &str) -> String {
    format!("{kubectl} delete node {}", sh_quote(node))
}

/// A pod, named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The pods `kubectl drain` reported it could not evict, from its output (each once, in order).
pub fn unevicted(drain_output: &str) -> Vec<PodRef> {
    const MARK: &str = "error when evicting pods/\"";
    let mut out: Vec<PodRef> = Vec::new();
    for line in drain_output.lines() {
        let mut rest = line;
        while let Some(at) = rest.find(MARK) {
            rest = &rest[at + MARK.len()..];
            let Some((name, tail)) = rest.split_once('"') else { break };
            let Some(tail) = tail.strip_prefix(" -n \"") else { continue };
            let Some((ns, _)) = tail.split_once('"') else { break };
            let pod = PodRef { namespace: ns.to_string(), name: name.to_string() };
            if !out.contains(&pod) {
                out.push(pod);
            }
        }
    }
    out
}

/// A PodDisruptionBudget as the disruption controller reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub namespace: String,
    pub name: String,
    /// `spec.selector.matchLabels` (the form tagstack's and most charts' budgets use).
    pub match_labels: BTreeMap<String, String>,
    pub disruptions_allowed: i64,
    pub current_healthy: i64,
    pub desired_healthy: i64,
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Meta {
    name: String,
    namespace: String,
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PdbItem {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: PdbSpec,
    #[serde(default)]
    status: PdbStatus,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PdbSpec {
    selector: Selector,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PdbStatus {
    disruptions_allowed: i64,
    current_healthy: i64,
    desired_healthy: i64,
}

/// `kubectl get poddisruptionbudgets -A -o json`.
pub fn budgets(json: &str) -> Result<Vec<Budget>, serde_json::Error> {
    let list: List<PdbItem> = serde_json::from_str(json)?;
    Ok(list
        .items
        .into_iter()
        .map(|p| Budget {
            namespace: p.metadata.namespace,
            name: p.metadata.name,
            match_labels: p.spec.selector.match_labels,
            disruptions_allowed: p.status.disruptions_allowed,
            current_healthy: p.status.current_healthy,
            desired_healthy: p.status.desired_healthy,
        })
        .collect())
}

#[derive(Deserialize)]
struct PodItem {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct PodSpec {
    node_name: String,
}

/// The pods bound to one of `nodes`, from `kubectl get pods -A -o json`.
pub fn pods_on(json: &str, nodes: &[String]) -> Result<Vec<PodRef>, serde_json::Error> {
    let list: List<PodItem> = serde_json::from_str(json)?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| nodes.contains(&p.spec.node_name))
        .map(|p| PodRef { namespace: p.metadata.namespace, name: p.metadata.name })
        .collect())
}

/// Pod -> its labels, from `kubectl get pods -A -o json`.
pub fn pod_labels(json: &str) -> Result<BTreeMap<PodRef, BTreeMap<String, String>>, serde_json::Error> {
    let list: List<PodItem> = serde_json::from_str(json)?;
    Ok(list
        .items
        .into_iter()
        .map(|p| (PodRef { namespace: p.metadata.namespace, name: p.metadata.name }, p.metadata.labels))
        .collect())
}

/// The budget that selects `pod` (same namespace, every matchLabel present), if any. An empty
/// selector matches every pod of its namespace (policy/v1).
pub fn guarding<'a>(budgets: &'a [Budget], pod: &PodRef, labels: &BTreeMap<String, String>) -> Option<&'a Budget> {
    budgets
        .iter()
        .filter(|b| b.namespace == pod.namespace)
        .find(|b| b.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// Why a drain stopped, in words: each pod it could not evict and the budget guarding it.
pub fn blocked_by(
    pods: &[PodRef],
    budgets: &[Budget],
    labels: &BTreeMap<PodRef, BTreeMap<String, String>>,
) -> Vec<String> {
    let none = BTreeMap::new();
    pods.iter()
        .map(|p| match guarding(budgets, p, labels.get(p).unwrap_or(&none)) {
            Some(b) => format!(
                "pod {p} is protected by PodDisruptionBudget {}/{} ({} disruption(s) allowed: {} healthy, {} needed)",
                b.namespace, b.name, b.disruptions_allowed, b.current_healthy, b.desired_healthy
            ),
            None => format!("pod {p} could not be evicted"),
        })
        .collect()
}

/// A StatefulSet whose pods must each be on a different node (required pod anti-affinity on
/// `kubernetes.io/hostname` matching its own pods): it needs `replicas` schedulable nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
}

#[derive(Deserialize)]
struct StsItem {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: serde_json::Value,
}

/// StatefulSets from `kubectl get statefulsets -A -o json` that need one node per replica.
pub fn spreads(json: &str) -> Result<Vec<Spread>, serde_json::Error> {
    let list: List<StsItem> = serde_json::from_str(json)?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|s| {
            let replicas = s.spec.get("replicas").and_then(serde_json::Value::as_u64).unwrap_or(1);
            let pod_labels = s.spec.pointer("/template/metadata/labels").and_then(|l| l.as_object());
            let terms = s
                .spec
                .pointer("/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
                .and_then(serde_json::Value::as_array)?;
            let own = terms.iter().any(|t| {
                t.get("topologyKey").and_then(serde_json::Value::as_str) == Some("kubernetes.io/hostname")
                    && t.pointer("/labelSelector/matchLabels")
                        .and_then(|m| m.as_object())
                        .is_some_and(|m| m.iter().all(|(k, v)| pod_labels.and_then(|l| l.get(k)) == Some(v)))
            });
            (own && replicas > 1).then(|| Spread {
                namespace: s.metadata.namespace,
                name: s.metadata.name,
                replicas: u32::try_from(replicas).unwrap_or(u32::MAX),
            })
        })
        .collect())
}

/// A node as the scheduler sees it, from `kubectl get nodes -o json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedNode {
    pub name: String,
    /// Cordoned, or tainted NoSchedule/NoExecute (a control plane's
    /// `node-role.kubernetes.io/control-plane:NoSchedule`): no new pod lands there.
    pub closed: bool,
}

#[derive(Deserialize)]
struct NodeItem {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: NodeSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NodeSpec {
    unschedulable: bool,
    taints: Vec<Taint>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Taint {
    effect: String,
}

pub fn sched_nodes(json: &str) -> Result<Vec<SchedNode>, serde_json::Error> {
    let list: List<NodeItem> = serde_json::from_str(json)?;
    Ok(list
        .items
        .into_iter()
        .map(|n| SchedNode {
            name: n.metadata.name,
            closed: n.spec.unschedulable
                || n.spec.taints.iter().any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute"),
        })
        .collect())
}

/// The StatefulSets that could not place every replica on its own node once `leaving` are gone:
/// each as a sentence, empty when the scale-down is safe on this count.
pub fn unplaceable(spreads: &[Spread], nodes: &[SchedNode], leaving: &[String]) -> Vec<String> {
    let open = nodes.iter().filter(|n| !n.closed && !leaving.contains(&n.name)).count();
    spreads
        .iter()
        .filter(|s| s.replicas as usize > open)
        .map(|s| {
            format!(
                "StatefulSet {}/{} needs {} nodes (one per replica: required pod anti-affinity on kubernetes.io/hostname) and {open} would stay schedulable",
                s.namespace, s.name, s.replicas
            )
        })
        .collect()
}
