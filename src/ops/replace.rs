//! `tagstack replace NODE`: one worker out, a new one of the same role in. The node is marked
//! on AWS (`tagstack:retire`, the tag is the state: a run that stops half-way is finished by
//! the next `up` from any machine), then `up` runs: the plan no longer counts the marked worker,
//! so the infra stage launches its replacement, the cluster stage joins it, and `ops::retire`
//! drains the marked one (its pods and their volumes move), deletes it and terminates it.

use std::time::SystemTime;

use anyhow::{Result, anyhow};

use super::access::NoSuchNode;
use super::advice::{Command, advise};
use super::env::Env;
use super::inventory::inventory;
use super::up::{self, Done, UpOpts, UpReport};
use crate::aws;
use crate::config::NodeRole;
use crate::hint;
use crate::plan::expiry;

/// Marks `node` (tagstack name, Kubernetes node name or instance id) and runs `up`.
pub async fn run(env: &Env<'_>, node: &str, on_done: &mut dyn FnMut(Done<'_>)) -> (UpReport, Result<()>) {
    if let Err(e) = mark(env, node).await {
        let e = advise(e, Command::Up);
        let report = UpReport { error: Some(hint::render(&e)), ..UpReport::default() };
        return (report, Err(e));
    }
    up::run(env, UpOpts::default(), on_done).await
}

async fn mark(env: &Env<'_>, node: &str) -> Result<()> {
    let spec = env.spec;
    let instances = aws::discover_instances(env.aws().await, &spec.id, &spec.timeouts).await?;
    let nodes = inventory(&instances);
    let live: Vec<_> = nodes.iter().filter(|n| n.state.is_live()).collect();
    let Some(n) = live
        .iter()
        .find(|n| n.name == node || n.instance_id == node || n.addresses.private_dns.as_deref() == Some(node))
    else {
        let names = live.iter().map(|n| n.name.clone()).collect();
        return Err(NoSuchNode { node: node.to_string(), names }.into());
    };
    if n.role != NodeRole::Worker {
        let err = anyhow!("{} ({}) is the control plane: tagstack replaces workers only", n.name, n.instance_id);
        return Err(hint::attach(
            err,
            "a control plane is replaced by adding a second one and removing the first, which kubeadm supports only with a stable endpoint (README, Day-2); not done by tagstack yet",
        ));
    }
    let already = instances.iter().any(|i| i.id == n.instance_id && i.retiring);
    if !already {
        let cx = env.ctx().await;
        env.reporter.start("replace", &format!("mark {} ({}) for replacement", n.name, n.instance_id));
        aws::mark_retiring(&cx, &n.instance_id, &expiry::format(SystemTime::now())).await?;
        env.reporter.finish("replace", &format!("{} ({}) marked for replacement", n.name, n.instance_id));
    }
    Ok(())
}
