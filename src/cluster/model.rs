//! The nodes the cluster stage works on, whatever provider they came from: resolved values,
//! each required where kubeadm needs it. An AWS node's come from the inventory row's
//! `plan::observed::Addresses` (optional until EC2 assigns them), resolved once in
//! `ops::nodes`; a static node's from its config, here. Must not do I/O or know SSH.

use serde::Serialize;

use crate::config::{NodeRole, Provider, Spec};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterNode {
    /// tagstack's name for the node (`control-plane`, `worker-0`, or the static name); the SSH
    /// host alias and the log file name.
    pub name: String,
    /// The Kubernetes node name (the instance's private DNS name on AWS).
    pub node_name: String,
    pub role: NodeRole,
    /// Where SSH connects.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// The address other nodes reach it on (kubeadm's advertise / node IP).
    pub private_ip: String,
    /// The address the API server certificate must also be valid for (public IP on AWS).
    pub public_address: Option<String>,
    /// The node's SSH host key (`type base64`), when the config pins it.
    pub host_key: Option<String>,
}

/// The nodes of a static environment, control plane first.
pub fn static_nodes(spec: &Spec) -> Vec<ClusterNode> {
    let Provider::Static { nodes } = &spec.provider else { return Vec::new() };
    let mut out: Vec<ClusterNode> = nodes
        .iter()
        .map(|n| ClusterNode {
            name: n.name.clone(),
            node_name: n.name.clone(),
            role: n.role,
            address: n.address.clone(),
            port: n.port,
            user: n.user.clone().unwrap_or_else(|| spec.ssh.user.clone()),
            private_ip: n.address.clone(),
            public_address: None,
            host_key: n.host_key.clone(),
        })
        .collect();
    out.sort_by_key(|n| n.role);
    out
}
