//! Renders the bootstrap scripts, kubeadm configs and add-on list from `templates/cluster/`
//! with minijinja. Pure: text in, text out; snapshot-tested and shellchecked in tests.

use anyhow::{Context, Result};
use minijinja::{Environment, context};

pub use super::addons::{Addon, addons};
use super::endpoint::{self, Endpoint};
use super::model::ClusterNode;
use crate::config::{KubeVersion, NodeRole, Provider, Spec};

const TEMPLATES: &[(&str, &str)] = &[
    ("prepare-node.sh", include_str!("../../templates/cluster/prepare-node.sh.j2")),
    ("control-plane-ca.sh", include_str!("../../templates/cluster/control-plane-ca.sh.j2")),
    ("kubeadm-init.yaml", include_str!("../../templates/cluster/kubeadm-init.yaml.j2")),
    ("kubeadm-join.yaml", include_str!("../../templates/cluster/kubeadm-join.yaml.j2")),
    ("init-control-plane.sh", include_str!("../../templates/cluster/init-control-plane.sh.j2")),
    ("join-worker.sh", include_str!("../../templates/cluster/join-worker.sh.j2")),
    ("upgrade-kubeadm.sh", include_str!("../../templates/cluster/upgrade-kubeadm.sh.j2")),
    ("upgrade-kubelet.sh", include_str!("../../templates/cluster/upgrade-kubelet.sh.j2")),
];

pub const STORAGECLASS_GP3: &str = include_str!("../../templates/cluster/storageclass-gp3.yaml");
/// Where tagstack puts its files on a node.
pub const NODE_DIR: &str = "/var/lib/tagstack";

fn env() -> Result<Environment<'static>> {
    crate::templates::environment(TEMPLATES)
}

pub(super) fn render(name: &str, ctx: minijinja::Value) -> Result<String> {
    let env = env()?;
    env.get_template(name)?.render(ctx).with_context(|| format!("rendering {name}"))
}

pub fn kube_minor(v: KubeVersion) -> String {
    format!("{}.{}", v.major, v.minor)
}

/// `prepare-node.sh` for every node. `kube_version` is the exact Kubernetes patch to install
/// (`1.36.2`): the configured one, or the one the control plane already runs; `None` installs
/// the newest patch of the minor (a new cluster, every node at once).
/// The preparation of one node; the control plane also gets `git` when an add-on is a remote
/// kustomize base (its kubectl clones them). Every node gets the /etc/hosts line that resolves
/// the control plane's endpoint name to `control_plane_ip` (its private address).
pub fn prepare_script(
    spec: &Spec,
    kube_version: Option<&str>,
    role: NodeRole,
    control_plane_ip: &str,
) -> Result<String> {
    let hosts_line = endpoint::hosts_line(&spec.id, control_plane_ip);
    prepare(spec, kube_version.unwrap_or_default(), role == NodeRole::ControlPlane, &hosts_line)
}

/// `prepare-node.sh` as a baked image gets it (`tagstack bake`, issue 15): the same steps and
/// versions as [`prepare_script`] for the control plane (git too, so one image serves both
/// roles), without the /etc/hosts line, which names one environment's control plane and is
/// written on each node by the cluster stage's own prepare. Its text is part of the image's
/// content address, so it holds nothing environment-specific.
pub fn bake_prepare_script(spec: &Spec) -> Result<String> {
    let v = spec.kubernetes_version;
    let kube_version = v.patch.map(|p| format!("{}.{}.{p}", v.major, v.minor));
    prepare(spec, kube_version.as_deref().unwrap_or_default(), true, "")
}

/// The one rendering of `prepare-node.sh`: the cluster stage's and the bake's differ only in
/// the arguments, so a change to the script's inputs reaches both.
fn prepare(spec: &Spec, kube_version: &str, control_plane: bool, hosts_line: &str) -> Result<String> {
    let containerd = super::versions::containerd_for(spec.kubernetes_version.minor)?;
    let install_git = control_plane && addons(spec).iter().any(|a| a.remote_base);
    render(
        "prepare-node.sh",
        context! {
            kube_minor => kube_minor(spec.kubernetes_version),
            kube_version => kube_version,
            containerd_package => super::versions::CONTAINERD_PACKAGE,
            containerd_version => containerd.version,
            containerd_supported => containerd.supported.join(" "),
            lock_timeout_secs => super::versions::package_lock_timeout(spec.cluster.bootstrap_timeout).as_secs(),
            install_git => install_git,
            hosts_line => hosts_line,
            hosts_marker => endpoint::HOSTS_MARKER,
        },
    )
}

pub fn ca_script() -> Result<String> {
    render("control-plane-ca.sh", context! {})
}

/// Everything the control-plane templates need.
pub struct InitInput<'a> {
    pub spec: &'a Spec,
    pub control_plane: &'a ClusterNode,
    pub token: &'a str,
    /// `v1.36.1`: what the installed kubeadm reports (`kubeadm version -o short`).
    pub kubernetes_version: &'a str,
    /// The cluster's `controlPlaneEndpoint` (`cluster::endpoint::decide`).
    pub endpoint: &'a Endpoint,
}

/// The API server certificate's extra names: the endpoint's stable name (kubeadm also adds
/// the controlPlaneEndpoint host itself, pkiutil/pki_helpers.go `GetAPIServerAltNames`; listed
/// so that the file says it, and kept when an older cluster's endpoint is an IP), the private IP,
/// the node name and every address tagstack or a user connects to, among them the `server`
/// of the kubeconfig tagstack writes (`cp.address`).
fn cert_sans(spec: &Spec, cp: &ClusterNode) -> Vec<String> {
    let mut sans =
        vec![spec.id.control_plane_endpoint_name(), cp.private_ip.clone(), cp.node_name.clone(), cp.address.clone()];
    sans.extend(cp.public_address.clone());
    // Keep the first of each (order matters for the snapshot, so no sort + dedup).
    let mut unique: Vec<String> = Vec::new();
    for san in sans {
        if !unique.contains(&san) {
            unique.push(san);
        }
    }
    unique
}

pub fn init_config(i: &InitInput) -> Result<String> {
    render(
        "kubeadm-init.yaml",
        context! {
            cluster_name => i.spec.id.cluster_name(),
            token => i.token,
            control_plane => i.control_plane,
            control_plane_endpoint => i.endpoint.host_port(),
            kubernetes_version => i.kubernetes_version,
            pod_cidr => i.spec.cluster.pod_cidr.to_string(),
            service_cidr => i.spec.cluster.service_cidr.to_string(),
            cert_sans => cert_sans(i.spec, i.control_plane),
            external_cloud => i.spec.provider == Provider::Aws,
        },
    )
}

pub fn init_script(i: &InitInput) -> Result<String> {
    render(
        "init-control-plane.sh",
        context! {
            control_plane => i.control_plane,
            token => i.token,
            addons => addons(i.spec),
        },
    )
}

/// A worker's JoinConfiguration: discovery through the cluster's endpoint (`endpoint`), which
/// the worker resolves itself when it is the stable name.
pub fn join_config(
    spec: &Spec,
    endpoint: &Endpoint,
    node: &ClusterNode,
    token: &str,
    ca_cert_hash: &str,
) -> Result<String> {
    render(
        "kubeadm-join.yaml",
        context! {
            cluster_name => spec.id.cluster_name(),
            api_server_endpoint => endpoint.host_port(),
            node => node,
            token => token,
            ca_cert_hash => ca_cert_hash,
            discovery_timeout => format!("{}s", spec.cluster.bootstrap_timeout.as_secs()),
            external_cloud => spec.provider == Provider::Aws,
        },
    )
}

/// `join-worker.sh`: joins, or resets what an earlier join to another CA (or a failed one) left
/// and joins again; `ca_cert_hash` is the current CA's (`sha256:<hex>`).
pub fn join_script(node: &ClusterNode, ca_cert_hash: &str) -> Result<String> {
    render("join-worker.sh", context! { node => node, ca_cert_hash => ca_cert_hash })
}
