//! Kubernetes minor upgrades, the pure half: the version-skew judgement (what `up` must do to
//! bring a running cluster to `kubernetes_version`, or why it refuses), the parsing of what the
//! cluster says it runs (the kubeadm ClusterConfiguration's `kubernetesVersion`, each Node's
//! kubelet version, its cordon and tagstack's upgrade annotation), the kubectl command lines
//! `ops::upgrade` runs on the control plane, and the upgrade scripts rendered from
//! `templates/cluster/upgrade-*.sh.j2`. Running them is `ops::upgrade`'s job; nothing here does
//! I/O, and the state is never stored locally: it is read back from the cluster each run.
//!
//! Facts relied on (sources checked 2026-11-30):
//! - "Skipping MINOR versions when upgrading is unsupported", and the order: the control plane
//!   first (`kubeadm upgrade plan`, `kubeadm upgrade apply v1.36.x`, then kubelet and kubectl,
//!   `systemctl daemon-reload`, `systemctl restart kubelet`), then each worker (kubeadm, `kubeadm
//!   upgrade node`, drain, kubelet and kubectl, restart, uncordon); the package repository is
//!   per minor (pkgs.k8s.io/core:/stable:/v1.36/deb) and must be switched first. "Upgrading
//!   kubeadm clusters", https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/
//!   (v1.36 docs), sections "Changing the package repository", "Upgrading control plane nodes",
//!   "Upgrade worker nodes" (-> "Upgrading Linux nodes"), and "Recovering from a failure
//!   state": "If kubeadm upgrade fails and does not roll back ... you can run kubeadm upgrade
//!   again. This command is idempotent", which is what makes resuming by re-running sound.
//! - kubeadm's own policy (cmd/kubeadm/app/phases/upgrade/policy.go, `EnforceVersionPolicies`,
//!   read at kubernetes/kubernetes 04791b49): a target more than one minor above the cluster
//!   (`MaximumAllowedMinorVersionUpgradeSkew` = 1), or of a newer minor than kubeadm itself, is
//!   refused. It tolerates a one-minor downgrade, but kubeadm documents none and the kubelets
//!   would then be newer than the API server (the skew policy forbids it): tagstack refuses any.
//! - Version skew policy, https://kubernetes.io/releases/version-skew-policy/: the kubelet must
//!   not be newer than kube-apiserver and may be up to three minors older, so upgrading the
//!   control plane before any kubelet keeps every step inside the policy.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use anyhow::Result;
use minijinja::context;

use super::model::ClusterNode;
use super::render::render;
use crate::config::{KubeVersion, NodeRole};
use crate::shell::sh_quote;

/// A Kubernetes version as the cluster reports it (`v1.36.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// `v1.36.1` or `1.36.1`; anything after the patch (`-rc.0`, `+build`) is ignored.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches('v');
        let core = s.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u32>().ok());
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(Some(major)), Some(Some(minor)), Some(Some(patch)), None) => Some(Version { major, minor, patch }),
            _ => None,
        }
    }

    pub fn minor_text(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

/// As text (`"1.36.1"`) in JSON.
impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The annotation tagstack puts on a node before draining it for an upgrade and removes after
/// uncordoning it: a node that carries it was cordoned by an upgrade that stopped half-way, so
/// the next `up` finishes it (and uncordons it), while a node the user cordoned is left alone.
pub const UPGRADE_ANNOTATION: &str = "tagstack/upgrading-to";

/// One node as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVersion {
    pub name: String,
    pub kubelet: Version,
    /// The value of [`UPGRADE_ANNOTATION`], if set.
    pub upgrading_to: Option<String>,
    pub ready: bool,
}

/// What the cluster runs: the control plane's version (kubeadm's ClusterConfiguration) and each
/// node's kubelet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub control_plane: Version,
    pub nodes: Vec<NodeVersion>,
}

/// `kubernetesVersion` of the ClusterConfiguration kubeadm keeps in the `kubeadm-config`
/// ConfigMap (`kubectl -n kube-system get configmap kubeadm-config -o
/// jsonpath='{.data.ClusterConfiguration}'`; kubeadm's `upload-config` phase writes it at init
/// and at every `upgrade apply`).
pub fn cluster_configuration_version(yaml: &str) -> Option<Version> {
    yaml.lines().find_map(|l| {
        let v = l.strip_prefix("kubernetesVersion:")?;
        Version::parse(v.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

#[derive(Deserialize)]
struct NodeList {
    #[serde(default)]
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
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Status {
    #[serde(default)]
    node_info: NodeInfo,
    #[serde(default)]
    conditions: Vec<Condition>,
}
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NodeInfo {
    #[serde(default)]
    kubelet_version: String,
}
#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

/// Each node's kubelet version (`status.nodeInfo.kubeletVersion`), Ready condition and
/// upgrade annotation, from `kubectl get nodes -o json`.
pub fn node_versions(json: &str) -> anyhow::Result<Vec<NodeVersion>> {
    let list: NodeList = serde_json::from_str(json)?;
    list.items
        .into_iter()
        .map(|n| {
            let kubelet = Version::parse(&n.status.node_info.kubelet_version).ok_or_else(|| {
                anyhow::anyhow!(
                    "node {} reports no kubelet version it can be compared by ({:?})",
                    n.metadata.name,
                    n.status.node_info.kubelet_version
                )
            })?;
            Ok(NodeVersion {
                ready: n.status.conditions.iter().any(|c| c.kind == "Ready" && c.status == "True"),
                upgrading_to: n.metadata.annotations.get(UPGRADE_ANNOTATION).cloned(),
                name: n.metadata.name,
                kubelet,
            })
        })
        .collect()
}

/// What `up` must do to bring the running cluster to the configured version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upgrade {
    /// The control plane's version now.
    pub from: Version,
    /// The minor every node ends on (`1.36`).
    pub to: String,
    /// The configured patch, if `kubernetes_version` names one; else the newest patch of the
    /// minor when the control plane is upgraded, or the control plane's when it already was.
    pub patch: Option<u32>,
    /// `kubeadm upgrade apply` still has to run (the ClusterConfiguration is on the older minor).
    pub control_plane: bool,
    /// The nodes (API names) whose kubelet still has to move, control plane first, in order.
    pub nodes: Vec<String>,
}

/// The judgement on a running cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every node already runs the configured minor.
    Keep,
    Upgrade(Upgrade),
}

/// `kubernetes_version` asks for something kubeadm's upgrade policy refuses. Facts only:
/// `ops::advice` gives the supported path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkewRefused {
    #[error(
        "kubernetes_version = \"{wanted}\" skips a minor: the cluster runs {running}, and kubeadm upgrades one minor at a time (\"Skipping MINOR versions when upgrading is unsupported\", kubeadm-upgrade docs); nothing was changed"
    )]
    Skip { running: Version, wanted: String, path: Vec<String> },
    #[error(
        "kubernetes_version = \"{wanted}\" is older than the {running} the cluster runs: tagstack does not downgrade (kubeadm's upgrade docs cover upgrades only, and a kubelet may not be newer than its API server: version skew policy); nothing was changed"
    )]
    Downgrade { running: Version, wanted: String },
    #[error(
        "the kubelet of {nodes} still runs {behind}, older than the control plane's {running}: an earlier upgrade to {running_minor} is unfinished, and starting {wanted} now would move those kubelets two minors at once; nothing was changed"
    )]
    Unfinished { running: Version, running_minor: String, behind: String, nodes: String, wanted: String },
}

impl SkewRefused {
    /// The minors to go through, in order, ending with the wanted one (`["1.35", "1.36"]`).
    pub fn path(&self) -> Vec<String> {
        match self {
            SkewRefused::Skip { path, .. } => path.clone(),
            SkewRefused::Downgrade { running, .. } => vec![running.minor_text()],
            SkewRefused::Unfinished { running_minor, wanted, .. } => vec![running_minor.clone(), wanted.clone()],
        }
    }
}

fn wanted_text(w: KubeVersion) -> String {
    match w.patch {
        Some(p) => format!("{}.{}.{p}", w.major, w.minor),
        None => format!("{}.{}", w.major, w.minor),
    }
}

/// What `up` must do, given the configured version, what runs, and the control plane's node
/// name (it goes first). Minors only: a patch change within a minor is the cluster stage's
/// business (it refuses one under a running kubelet).
pub fn judge(wanted: KubeVersion, running: &Running, control_plane: &str) -> Result<Step, SkewRefused> {
    let cp = running.control_plane;
    let text = wanted_text(wanted);
    if (wanted.major, wanted.minor) < (cp.major, cp.minor) {
        return Err(SkewRefused::Downgrade { running: cp, wanted: text });
    }
    if wanted.major != cp.major || wanted.minor > cp.minor + 1 {
        let path = (cp.minor + 1..=wanted.minor).map(|m| format!("{}.{m}", wanted.major)).collect();
        return Err(SkewRefused::Skip { running: cp, wanted: text, path });
    }
    let behind_cp: Vec<&NodeVersion> = running.nodes.iter().filter(|n| n.kubelet.minor < cp.minor).collect();
    if wanted.minor == cp.minor + 1 && !behind_cp.is_empty() {
        let mut versions: Vec<String> = behind_cp.iter().map(|n| n.kubelet.minor_text()).collect();
        versions.dedup();
        return Err(SkewRefused::Unfinished {
            running: cp,
            running_minor: cp.minor_text(),
            behind: versions.join(", "),
            nodes: behind_cp.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
            wanted: text,
        });
    }
    let to_apply = wanted.minor == cp.minor + 1;
    // A node is done when its kubelet runs the wanted minor and no upgrade of ours left it
    // cordoned; the control plane goes first.
    let mut nodes: Vec<&NodeVersion> =
        running.nodes.iter().filter(|n| n.kubelet.minor < wanted.minor || n.upgrading_to.is_some()).collect();
    nodes.sort_by_key(|n| (n.name != control_plane, n.name.clone()));
    if !to_apply && nodes.is_empty() {
        return Ok(Step::Keep);
    }
    let mut nodes: Vec<String> = nodes.into_iter().map(|n| n.name.clone()).collect();
    if to_apply && !nodes.iter().any(|n| n == control_plane) {
        nodes.insert(0, control_plane.to_string());
    }
    Ok(Step::Upgrade(Upgrade {
        from: cp,
        to: format!("{}.{}", wanted.major, wanted.minor),
        patch: wanted.patch,
        control_plane: to_apply,
        nodes,
    }))
}

/// The kubectl every command below runs on the control plane with.
pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// Reads the ClusterConfiguration kubeadm stored; prints nothing on a control plane tagstack
/// never initialised (no `init-done` marker), so a fresh machine is not an error.
pub fn read_cluster_configuration() -> String {
    format!(
        "if [ -f {dir}/init-done ]; then {KUBECTL} -n kube-system get configmap kubeadm-config -o jsonpath='{{.data.ClusterConfiguration}}'; fi",
        dir = super::render::NODE_DIR
    )
}

pub fn read_nodes() -> String {
    format!("{KUBECTL} get nodes -o json")
}

/// Marks the node as being upgraded to `version` (see [`UPGRADE_ANNOTATION`]).
pub fn annotate(node: &str, version: &str) -> String {
    format!(
        "{KUBECTL} annotate --overwrite node {} {}",
        sh_quote(node),
        sh_quote(&format!("{UPGRADE_ANNOTATION}={version}"))
    )
}

pub fn unannotate(node: &str) -> String {
    format!("{KUBECTL} annotate node {} {}", sh_quote(node), sh_quote(&format!("{UPGRADE_ANNOTATION}-")))
}

/// Cordons the node and evicts its pods, PodDisruptionBudgets honoured, for at most `timeout`:
/// the scale-down's own command line (`cluster::drain::drain`).
pub fn drain(node: &str, timeout: Duration) -> String {
    super::drain::drain(KUBECTL, node, timeout)
}

pub fn uncordon(node: &str) -> String {
    super::drain::uncordon(KUBECTL, node)
}

/// Whether the upgraded node is back: Ready, its kubelet at `target`, no annotation left.
pub fn node_done(nodes: &[NodeVersion], name: &str, target: Version) -> Result<(), String> {
    match nodes.iter().find(|n| n.name == name) {
        None => Err(format!("{name}: not registered")),
        Some(n) if n.kubelet != target => Err(format!("{name}: kubelet {} (want {target})", n.kubelet)),
        Some(n) if !n.ready => Err(format!("{name}: not Ready")),
        Some(_) => Ok(()),
    }
}

/// `upgrade-kubeadm.sh` for one node: the repository of `minor` (`1.36`), kubeadm at `patch`
/// (`1.36.1`) or the newest of the minor, then `kubeadm upgrade apply` (`apply`: the control
/// plane, while its ClusterConfiguration is older) or `kubeadm upgrade node`.
pub fn kubeadm_script(node: &ClusterNode, minor: &str, patch: Option<&str>, apply: bool) -> Result<String> {
    render(
        "upgrade-kubeadm.sh",
        context! {
            node_name => node.node_name,
            kube_minor => minor,
            kube_version => patch.unwrap_or_default(),
            apply => apply && node.role == NodeRole::ControlPlane,
            control_plane => node.role == NodeRole::ControlPlane,
        },
    )
}

/// `upgrade-kubelet.sh`: kubelet and kubectl at exactly `version` (`1.36.1`), kubelet restarted.
pub fn kubelet_script(node: &ClusterNode, version: &str) -> Result<String> {
    render("upgrade-kubelet.sh", context! { node_name => node.node_name, kube_version => version })
}
