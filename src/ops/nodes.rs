//! The cluster's nodes per provider, built in one place: static nodes from the config; AWS
//! nodes from the inventory, whose observed `Addresses` become the `ClusterNode`'s here and
//! nowhere else (at the address `cluster.node_address` picks), with host keys verified
//! through the console (read by `aws`, parsed by `cluster::console::host_key`) or the tag the
//! cluster stage recorded. Also the control-plane session every live command uses, which
//! closes what it opens on every path.

use anyhow::{Context, Result, anyhow};

use super::cluster::write_env_files;
use super::env::Env;
use super::inventory::{Node, inventory};
use crate::aws;
use crate::cluster::{ClusterNode, console, static_nodes};
use crate::config::{NodeAddress, NodeRole, Provider, Spec};
use crate::hint;
use crate::remote::{Fleet, Host, RemoteErrors};

/// The nodes the cluster stage works on. On AWS: every running instance, each with the host
/// key cloud-init printed to its console (waited for up to `timeouts.instances_running`).
pub async fn nodes(env: &Env<'_>) -> Result<Vec<ClusterNode>> {
    match &env.spec.provider {
        Provider::Static { .. } => Ok(static_nodes(env.spec)),
        Provider::Aws => aws_nodes(env).await,
    }
}

async fn aws_nodes(env: &Env<'_>) -> Result<Vec<ClusterNode>> {
    let spec = env.spec;
    let instances = aws::discover_instances(env.aws().await, &spec.id, &spec.timeouts).await?;
    let inventory = inventory(&instances);
    let private = spec.cluster.node_address == NodeAddress::Private;
    let not_running: Vec<String> = inventory
        .iter()
        .filter(|n| {
            let a = &n.addresses;
            !n.state.is_running()
                || a.ssh(spec.cluster.node_address).is_none()
                || a.private_dns.is_none()
                || a.private_ip.is_none()
        })
        .map(|n| format!("{} ({} {})", n.name, n.instance_id, n.state))
        .collect();
    if inventory.is_empty() || !not_running.is_empty() {
        let err = anyhow!(
            "the cluster stage needs every node running with {}; not ready: {}",
            if private { "a private IP" } else { "a public IP (cluster.node_address = \"public\")" },
            if inventory.is_empty() { "no nodes at all".to_string() } else { not_running.join(", ") }
        );
        // True for every command that needs the nodes: `up` is the one that makes them.
        return Err(hint::attach(err, "run `tagstack up` (it creates and starts the nodes first)"));
    }
    let ids: Vec<(String, Option<String>)> =
        inventory.iter().map(|n| (n.instance_id.clone(), n.host_key.clone())).collect();
    let keys = aws::wait_host_keys(&env.ctx().await, console::host_key, &ids, spec.timeouts.instances_running).await?;
    let mut nodes: Vec<ClusterNode> = inventory.iter().filter_map(|n| aws_cluster_node(spec, n, &keys)).collect();
    nodes.sort_by_key(|n| n.role);
    Ok(nodes)
}

/// How `remote` reaches a node: the node's name is its ssh_config alias.
pub fn host(n: &ClusterNode) -> Host {
    Host {
        alias: n.name.clone(),
        address: n.address.clone(),
        port: n.port,
        user: n.user.clone(),
        host_key: n.host_key.clone(),
    }
}

pub fn hosts(nodes: &[ClusterNode]) -> Vec<Host> {
    nodes.iter().map(host).collect()
}

/// An AWS node as the cluster stage sees it: at the address `cluster.node_address` picks, with
/// its verified host key from `keys` (instance id, key) if there is one.
fn aws_cluster_node(spec: &Spec, n: &Node, keys: &[(String, String)]) -> Option<ClusterNode> {
    let a = &n.addresses;
    Some(ClusterNode {
        host_key: keys.iter().find(|(id, _)| *id == n.instance_id).map(|(_, k)| k.clone()),
        name: n.name.clone(),
        node_name: a.private_dns.clone().unwrap_or_default(),
        role: n.role,
        address: a.ssh(spec.cluster.node_address)?.clone(),
        port: 22,
        user: spec.ssh.user.clone(),
        private_ip: a.private_ip.clone().unwrap_or_default(),
        public_address: a.public_ip.clone(),
    })
}

/// The AWS nodes `status` and `down` can reach from any machine, without waiting: the running
/// instances the cluster stage has run on (it recorded their verified host keys as tags), each
/// verified by its console's key if the console still shows one, else by the tag.
pub struct Reachable {
    /// Every running node (a worker added later has no verified key yet).
    pub all: Vec<ClusterNode>,
    /// Those with a verified key: the ones tagstack may connect to.
    pub pinned: Vec<ClusterNode>,
}

/// `None` when the cluster stage never ran on these nodes.
pub async fn reachable(env: &Env<'_>, inventory: &[Node]) -> Option<Reachable> {
    let running: Vec<&Node> = inventory.iter().filter(|n| n.state.is_running()).collect();
    let tagged: Vec<(String, String)> =
        running.iter().filter_map(|n| Some((n.instance_id.clone(), n.host_key.clone()?))).collect();
    if tagged.is_empty() {
        return None;
    }
    let cx = aws::Ctx::new(env.aws().await, &env.spec.id, env.spec.timeouts, &crate::reporter::Silent);
    let keys = aws::recorded_host_keys(&cx, console::host_key, &tagged).await;
    let all: Vec<ClusterNode> = running.iter().filter_map(|n| aws_cluster_node(env.spec, n, &keys)).collect();
    let pinned: Vec<ClusterNode> = all.iter().filter(|n| n.host_key.is_some()).cloned().collect();
    Some(Reachable { all, pinned })
}

/// Connects to the control plane among `nodes` (writing the environment's ssh files for all
/// of them), runs `work`, and closes the connection whatever `work` returned.
pub async fn on_control_plane<T>(
    spec: &Spec,
    nodes: &[ClusterNode],
    work: impl AsyncFnOnce(&Fleet, &ClusterNode) -> Result<T>,
) -> Result<T> {
    let cp = nodes.iter().find(|n| n.role == NodeRole::ControlPlane).cloned().context("no control-plane node")?;
    let files = write_env_files(spec, nodes)?;
    let fleet = Fleet::connect(&[host(&cp)], &files, 1, &crate::reporter::Silent).await.map_err(RemoteErrors)?;
    let result = work(&fleet, &cp).await;
    fleet.close().await;
    result
}
