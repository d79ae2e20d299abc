//! Commands of the cluster stage: `up` on a static environment, `kubeconfig`, `ssh`, and the
//! node readiness part of `status`.

use anyhow::{Context, Result, bail};

use super::settings::{Settings, UsageError};
use super::{Outcome, json, title};
use crate::cluster::{ClusterNode, static_nodes};
use crate::config::{NodeAddress, NodeRole, Provider};
use crate::ops::cluster::{self, env_dir};
use crate::ops::stack::StackReport;
use crate::remote::{Fleet, RemoteErrors};
use crate::ui::{self, Output, Progress};

/// The nodes the cluster stage works on. On AWS: the running instances, reached on their
/// public IPs, with the host keys cloud-init printed to their consoles.
pub async fn nodes(s: &Settings) -> Result<Vec<ClusterNode>> {
    match &s.spec.provider {
        Provider::Static { .. } => Ok(static_nodes(&s.spec)),
        Provider::Aws => aws_nodes(s).await,
    }
}

async fn aws_nodes(s: &Settings) -> Result<Vec<ClusterNode>> {
    let aws = crate::aws::Aws::connect(&s.connection).await;
    let progress = Progress::new(s.common.progress);
    let instances = crate::aws::discover_instances(&aws, &s.spec).await?;
    let inventory = crate::ops::inventory(&instances);
    let private = s.spec.cluster.node_address == NodeAddress::Private;
    let not_running: Vec<String> = inventory
        .iter()
        .filter(|n| {
            n.state != "running" || node_address(s, n).is_none() || n.private_dns.is_none() || n.private_ip.is_none()
        })
        .map(|n| format!("{} ({} {})", n.name, n.instance_id, n.state))
        .collect();
    if inventory.is_empty() || !not_running.is_empty() {
        bail!(
            "the cluster stage needs every node running with {}; not ready: {}\n  hint: run `tagstack up` (it creates and starts the nodes first)",
            if private { "a private IP" } else { "a public IP (cluster.node_address = \"public\")" },
            if inventory.is_empty() { "no nodes at all".to_string() } else { not_running.join(", ") }
        );
    }
    let cx = crate::aws::Ctx { aws: &aws, spec: &s.spec, reporter: &progress };
    let ids: Vec<(String, Option<String>)> =
        inventory.iter().map(|n| (n.instance_id.clone(), n.host_key.clone())).collect();
    let keys = crate::aws::wait_host_keys(&cx, &ids, s.spec.timeouts.instances_running).await?;
    let mut nodes: Vec<ClusterNode> = inventory.iter().filter_map(|n| aws_cluster_node(s, n, &keys)).collect();
    nodes.sort_by_key(|n| n.role);
    Ok(nodes)
}

/// Runs the cluster stage on the environment's nodes; returns them for the stack stage.
pub async fn stage(s: &Settings) -> Result<(cluster::ClusterReport, Vec<ClusterNode>)> {
    let nodes = nodes(s).await?;
    let progress = Progress::new(s.common.progress);
    let report = cluster::bootstrap(&s.spec, &nodes, &progress).await?;
    Ok((report, nodes))
}

pub async fn connect_control_plane(s: &Settings, nodes: &[ClusterNode]) -> Result<(Fleet, ClusterNode)> {
    let cp = nodes.iter().find(|n| n.role == NodeRole::ControlPlane).cloned().context("no control-plane node")?;
    let files = cluster::write_env_files(&s.spec, nodes)?;
    let fleet =
        Fleet::connect(std::slice::from_ref(&cp), &files, 1, &crate::reporter::Silent).await.map_err(RemoteErrors)?;
    Ok((fleet, cp))
}

pub async fn kubeconfig(s: &Settings, to_stdout: bool) -> Result<Outcome> {
    let nodes = nodes(s).await?;
    let (fleet, cp) = connect_control_plane(s, &nodes).await?;
    let path = cluster::fetch_kubeconfig(&fleet, &s.spec, &cp).await?;
    fleet.close().await;
    if to_stdout {
        ui::print_text(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?);
    } else {
        ui::print_text(&format!("{}\n", path.display()));
    }
    Ok(Outcome::Success)
}

/// What `status` shows of the live cluster: node readiness and, with a stack, its workloads.
pub struct Live {
    pub nodes: Vec<(cluster::NodeState, String)>,
    /// `None` without stack components; an unreachable stack is an error to show.
    pub stack: Option<Result<StackReport, String>>,
}

async fn live(s: &Settings, fleet: &Fleet, cp: &ClusterNode, nodes: &[ClusterNode]) -> Result<Live> {
    let stack = async {
        if s.spec.stack.is_empty() {
            None
        } else {
            Some(crate::ops::stack::status(&s.spec, fleet, cp).await.map_err(|e| format!("{e:#}")))
        }
    };
    let (states, stack) =
        tokio::join!(cluster::node_states(fleet, cp, nodes, s.spec.provider == crate::config::Provider::Aws), stack);
    Ok(Live { nodes: states?, stack })
}

/// The `cluster` and `stack` parts of `status --output json`.
pub fn live_json(live: &Live) -> (serde_json::Value, serde_json::Value) {
    let stack = match &live.stack {
        None => serde_json::Value::Null,
        Some(Ok(report)) => serde_json::to_value(report)
            .unwrap_or_else(|e| serde_json::json!({ "error": format!("serializing the stack: {e}") })),
        Some(Err(e)) => serde_json::json!({ "error": e }),
    };
    (serde_json::json!({ "nodes": states_json(&live.nodes) }), stack)
}

/// The human form of [`Live`].
pub fn live_text(live: &Live, title: &str) -> String {
    let mut out = ui::render::node_states(&live.nodes, title);
    match &live.stack {
        None => {}
        Some(Ok(report)) => out.push_str(&ui::render::stack(report, title)),
        Some(Err(e)) => out.push_str(&format!("Stack: not readable: {e}\n")),
    }
    out
}

/// Node readiness (and the stack) for `status` on a static environment.
pub async fn status(s: &Settings) -> Result<Outcome> {
    let nodes = nodes(s).await?;
    let (fleet, cp) = connect_control_plane(s, &nodes).await?;
    let live = live(s, &fleet, &cp, &nodes).await;
    fleet.close().await;
    let live = live?;
    match s.common.output {
        Output::Json => {
            let (cluster, stack) = live_json(&live);
            json(s, "status", &serde_json::json!({ "cluster": cluster, "stack": stack }))?;
        }
        Output::Human => ui::print_text(&live_text(&live, &title(s))),
    }
    Ok(Outcome::Success)
}

/// Runs `ssh -F <env ssh_config> -- NODE [command]` and waits for it.
pub async fn ssh(s: &Settings, node: &str, command: &[String]) -> Result<Outcome> {
    let nodes = nodes(s).await?;
    if !nodes.iter().any(|n| n.name == node) {
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(UsageError {
            message: format!("no node named {node:?}"),
            hint: format!("nodes: {}", names.join(", ")),
        }
        .into());
    }
    let files = cluster::write_env_files(&s.spec, &nodes)?;
    // `--` before the node: ssh parses options after the destination too, so without it a
    // command word such as `-oProxyCommand=...` would configure the local ssh. After `--`
    // every word is the remote command (joined by ssh with spaces, as `ssh HOST CMD...` does).
    let status = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&files.ssh_config)
        .arg("--")
        .arg(node)
        .args(command)
        .status()
        .context("running ssh")?;
    // SIGPIPE: whoever read ssh's output went away (`tagstack ssh cp -- cmd | head`): a quiet
    // end, as for tagstack's own output.
    const SIGPIPE: i32 = 13;
    match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
        (Some(0), _) | (None, Some(SIGPIPE)) => Ok(Outcome::Success),
        (Some(code), _) => {
            bail!("ssh to {node} exited with {code} (environment files: {})", env_dir(&s.spec).display())
        }
        (None, signal) => bail!("ssh to {node} was killed by signal {}", signal.unwrap_or_default()),
    }
}

/// The address of an AWS node per `cluster.node_address`.
fn node_address(s: &Settings, n: &crate::ops::Node) -> Option<String> {
    match s.spec.cluster.node_address {
        NodeAddress::Public => n.public_ip.clone(),
        NodeAddress::Private => n.private_ip.clone(),
    }
}

/// An AWS node as the cluster stage sees it: at the address `cluster.node_address` picks, with
/// its verified host key from `keys` (instance id, key) if there is one.
fn aws_cluster_node(s: &Settings, n: &crate::ops::Node, keys: &[(String, String)]) -> Option<ClusterNode> {
    Some(ClusterNode {
        host_key: keys.iter().find(|(id, _)| *id == n.instance_id).map(|(_, k)| k.clone()),
        name: n.name.clone(),
        node_name: n.private_dns.clone().unwrap_or_default(),
        role: n.role,
        address: node_address(s, n)?,
        port: 22,
        user: s.spec.ssh.user.clone(),
        private_ip: n.private_ip.clone().unwrap_or_default(),
        public_address: n.public_ip.clone(),
    })
}

/// The AWS nodes `status` and `down` can reach from any machine: the running instances the
/// cluster stage has run on (it recorded their verified host keys as tags), each verified by
/// its console's key if the console still shows one, else by the tag. Returns every running
/// node and those with a verified key (a worker added later has none yet); `None` when the
/// cluster stage never ran on them.
async fn reachable_nodes(
    s: &Settings,
    aws: &crate::aws::Aws,
    inventory: &[crate::ops::Node],
) -> Option<(Vec<ClusterNode>, Vec<ClusterNode>)> {
    let running: Vec<&crate::ops::Node> = inventory.iter().filter(|n| n.state == "running").collect();
    let tagged: Vec<(String, String)> =
        running.iter().filter_map(|n| Some((n.instance_id.clone(), n.host_key.clone()?))).collect();
    if tagged.is_empty() {
        return None;
    }
    let cx = crate::aws::Ctx { aws, spec: &s.spec, reporter: &crate::reporter::Silent };
    let keys = crate::aws::recorded_host_keys(&cx, &tagged).await;
    let nodes: Vec<ClusterNode> = running.iter().filter_map(|n| aws_cluster_node(s, n, &keys)).collect();
    let pinned: Vec<ClusterNode> = nodes.iter().filter(|n| n.host_key.is_some()).cloned().collect();
    Some((nodes, pinned))
}

/// Kubernetes readiness (and the stack) for `status` on AWS, once the cluster stage has run
/// on the nodes (from any machine). `None` when it has not; an unreachable cluster is an
/// `Err` to show, never a failure of `status`.
pub async fn aws_live(
    s: &Settings,
    aws: &crate::aws::Aws,
    inventory: &[crate::ops::Node],
) -> Option<Result<Live, String>> {
    let (nodes, pinned) = reachable_nodes(s, aws, inventory).await?;
    let result = async {
        let (fleet, cp) = connect_control_plane(s, &pinned).await?;
        let live = live(s, &fleet, &cp, &nodes).await;
        fleet.close().await;
        live
    }
    .await;
    Some(result.map_err(|e| format!("{e:#}")))
}

/// `down`'s first step on AWS: delete the stack's volumes and every LoadBalancer Service while
/// the cluster is alive. `None` when the cluster stage never ran on the nodes; then the tag
/// sweep on AWS is what cleans up.
pub async fn aws_cleanup(
    s: &Settings,
    aws: &crate::aws::Aws,
    inventory: &[crate::ops::Node],
) -> Option<Result<crate::ops::stack::ClusterCleanup>> {
    let (_, pinned) = reachable_nodes(s, aws, inventory).await?;
    let progress = Progress::new(s.common.progress);
    Some(
        async {
            let (fleet, cp) = connect_control_plane(s, &pinned).await?;
            let res = crate::ops::stack::teardown(&s.spec, &fleet, &cp, true, &progress).await;
            fleet.close().await;
            res
        }
        .await,
    )
}

/// The node readiness rows of `status --output json`.
pub fn states_json(states: &[(cluster::NodeState, String)]) -> Vec<serde_json::Value> {
    states
        .iter()
        .map(|(st, why)| {
            serde_json::json!({
                "name": st.name,
                "node_name": st.node_name,
                "role": st.role,
                "ready": st.ready,
                "reason": if st.ready { None } else { Some(why) },
            })
        })
        .collect()
}
