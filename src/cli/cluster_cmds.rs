//! Commands of the cluster stage: `up` on a static environment, `kubeconfig`, `ssh`, and the
//! node readiness part of `status`.

use anyhow::{Context, Result, bail};

use super::settings::{Settings, UsageError};
use super::{Outcome, json, title};
use crate::cluster::{ClusterNode, static_nodes};
use crate::config::{NodeRole, Provider};
use crate::ops::cluster::{self, env_dir};
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
    let not_running: Vec<String> = inventory
        .iter()
        .filter(|n| n.state != "running" || n.public_ip.is_none() || n.private_dns.is_none() || n.private_ip.is_none())
        .map(|n| format!("{} ({} {})", n.name, n.instance_id, n.state))
        .collect();
    if inventory.is_empty() || !not_running.is_empty() {
        bail!(
            "the cluster stage needs every node running with a public IP; not ready: {}\n  hint: run `tagstack up` (it creates and starts the nodes first)",
            if inventory.is_empty() { "no nodes at all".to_string() } else { not_running.join(", ") }
        );
    }
    let cx = crate::aws::Ctx { aws: &aws, spec: &s.spec, reporter: &progress };
    let ids: Vec<String> = inventory.iter().map(|n| n.instance_id.clone()).collect();
    let keys = crate::aws::wait_console_host_keys(&cx, &ids, s.spec.timeouts.instances_running).await?;
    let mut nodes: Vec<ClusterNode> = inventory
        .into_iter()
        .map(|n| ClusterNode {
            host_key: keys.iter().find(|(id, _)| *id == n.instance_id).map(|(_, k)| k.clone()),
            name: n.name,
            node_name: n.private_dns.unwrap_or_default(),
            role: n.role,
            address: n.public_ip.clone().unwrap_or_default(),
            port: 22,
            user: s.spec.ssh.user.clone(),
            private_ip: n.private_ip.unwrap_or_default(),
            public_address: n.public_ip,
        })
        .collect();
    nodes.sort_by_key(|n| n.role);
    Ok(nodes)
}

/// Runs the cluster stage on the environment's nodes.
pub async fn stage(s: &Settings) -> Result<cluster::ClusterReport> {
    let nodes = nodes(s).await?;
    let progress = Progress::new(s.common.progress);
    cluster::bootstrap(&s.spec, &nodes, &progress).await
}

pub async fn up(s: &Settings) -> Result<Outcome> {
    let report = stage(s).await?;
    match s.common.output {
        Output::Json => json(s, "up", &serde_json::json!({ "cluster": report }))?,
        Output::Human => ui::print_text(&ui::render::cluster(&report, &title(s))),
    }
    Ok(Outcome::Success)
}

async fn connect_control_plane(s: &Settings, nodes: &[ClusterNode]) -> Result<(Fleet, ClusterNode)> {
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

/// Node readiness for `status` on a static environment.
pub async fn status(s: &Settings) -> Result<Outcome> {
    let nodes = nodes(s).await?;
    let (fleet, cp) = connect_control_plane(s, &nodes).await?;
    let states = cluster::node_states(&fleet, &cp, &nodes).await?;
    fleet.close().await;
    match s.common.output {
        Output::Json => json(s, "status", &serde_json::json!({ "cluster": { "nodes": states_json(&states) } }))?,
        Output::Human => ui::print_text(&ui::render::node_states(&states, &title(s))),
    }
    Ok(Outcome::Success)
}

/// Replaces this process with `ssh -F <env ssh_config> NODE [command]`.
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
    let status = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&files.ssh_config)
        .arg(node)
        .args(command)
        .status()
        .context("running ssh")?;
    match status.code() {
        Some(0) => Ok(Outcome::Success),
        Some(code) => bail!("ssh to {node} exited with {code} (environment files: {})", env_dir(&s.spec).display()),
        None => bail!("ssh to {node} was killed by a signal"),
    }
}

/// Host keys this machine pinned when it ran the cluster stage (`known_hosts` in the
/// environment's directory), by address.
fn pinned_keys(s: &Settings) -> Vec<(String, String)> {
    let path = env_dir(&s.spec).join("known_hosts");
    crate::remote::parse_known_hosts(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Kubernetes readiness for `status` on AWS, when this machine ran the cluster stage (its
/// pinned host keys are in `.tagstack/`). `None` when it did not; an unreachable cluster is an
/// `Err` to show, never a failure of `status`.
pub async fn aws_readiness(
    s: &Settings,
    inventory: &[crate::ops::Node],
) -> Option<Result<Vec<(cluster::NodeState, String)>, String>> {
    let keys = pinned_keys(s);
    if keys.is_empty() || inventory.is_empty() {
        return None;
    }
    let nodes: Vec<ClusterNode> = inventory
        .iter()
        .filter_map(|n| {
            let address = n.public_ip.clone()?;
            Some(ClusterNode {
                host_key: keys.iter().find(|(h, _)| *h == address).map(|(_, k)| k.clone()),
                name: n.name.clone(),
                node_name: n.private_dns.clone().unwrap_or_default(),
                role: n.role,
                address: address.clone(),
                port: 22,
                user: s.spec.ssh.user.clone(),
                private_ip: n.private_ip.clone().unwrap_or_default(),
                public_address: Some(address),
            })
        })
        .collect();
    // Only nodes whose key this machine pinned are connected to (a later worker has none here).
    let pinned: Vec<ClusterNode> = nodes.iter().filter(|n| n.host_key.is_some()).cloned().collect();
    let result = async {
        let (fleet, cp) = connect_control_plane(s, &pinned).await?;
        let states = cluster::node_states(&fleet, &cp, &nodes).await;
        fleet.close().await;
        states
    }
    .await;
    Some(result.map_err(|e| format!("{e:#}")))
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
