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

/// The nodes the cluster stage works on. On AWS this needs the host keys from the instances'
/// console output, which is not implemented yet.
pub fn nodes(s: &Settings) -> Result<Vec<ClusterNode>> {
    match &s.spec.provider {
        Provider::Static { .. } => Ok(static_nodes(&s.spec)),
        Provider::Aws => bail!(
            "the cluster stage on provider = \"aws\" is not available yet (it needs the nodes' SSH host keys from the EC2 console output)\n  hint: `tagstack up` creates the infrastructure; use provider = \"static\" to bootstrap Kubernetes on machines you list"
        ),
    }
}

pub async fn up(s: &Settings) -> Result<Outcome> {
    let nodes = nodes(s)?;
    let progress = Progress::new(s.common.progress);
    let report = cluster::bootstrap(&s.spec, &nodes, &progress).await?;
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
    let nodes = nodes(s)?;
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
    let nodes = nodes(s)?;
    let (fleet, cp) = connect_control_plane(s, &nodes).await?;
    let states = cluster::node_states(&fleet, &cp, &nodes).await?;
    fleet.close().await;
    match s.common.output {
        Output::Json => {
            let nodes: Vec<serde_json::Value> = states
                .iter()
                .map(|(st, why)| serde_json::json!({"name": st.name, "node_name": st.node_name, "role": st.role, "ready": st.ready, "reason": if st.ready { None } else { Some(why) }}))
                .collect();
            json(s, "status", &serde_json::json!({ "cluster": { "nodes": nodes } }))?;
        }
        Output::Human => ui::print_text(&ui::render::node_states(&states, &title(s))),
    }
    Ok(Outcome::Success)
}

/// Replaces this process with `ssh -F <env ssh_config> NODE [command]`.
pub fn ssh(s: &Settings, node: &str, command: &[String]) -> Result<Outcome> {
    let nodes = nodes(s)?;
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
