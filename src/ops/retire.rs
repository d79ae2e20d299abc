//! Scale-down without losing data: the workers `plan` retires (joined the cluster, beyond
//! `workers.count`) leave one at a time, after the cluster stage and before the stack's
//! readiness wait. Before the first: every StatefulSet that needs one node per replica still
//! has them, and each component with a pod on a leaving node can lose it now (its own health
//! check). Then, per node: cordon, drain (PodDisruptionBudgets honoured, up to
//! `cluster.drain_timeout`), delete the Node, terminate the instance. A drain that stops
//! uncordons the node and names each pod it could not evict with its budget; nothing is
//! terminated that was not drained. The command lines and judgements are `cluster::drain`'s
//! and the stack modules'; this file runs them in order and owns no rule of its own.

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use super::env::Env;
use super::inventory::Node;
use super::nodes::on_control_plane;
use super::stack::KUBECTL;
use crate::aws;
use crate::cluster::ClusterNode;
use crate::cluster::drain::{self, PodRef};
use crate::hint;
use crate::remote::Fleet;
use crate::stack::disruption_checks;

/// A worker on its way out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leaving {
    /// tagstack's name (`worker-2`).
    pub name: String,
    pub instance_id: String,
    /// The Kubernetes node name (the private DNS name on AWS).
    pub node_name: String,
}

/// What the scale-down did, node by node.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetireReport {
    pub nodes: Vec<Retired>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retired {
    #[serde(flatten)]
    pub node: Leaving,
    /// False when the node had never registered (nothing to drain).
    pub drained: bool,
}

/// The inventory rows of the instances the plan retires.
pub fn leaving(retire: &[String], inventory: &[Node]) -> Vec<Leaving> {
    inventory
        .iter()
        .filter(|n| retire.contains(&n.instance_id))
        .map(|n| Leaving {
            name: n.name.clone(),
            instance_id: n.instance_id.clone(),
            node_name: n.addresses.private_dns.clone().unwrap_or_default(),
        })
        .collect()
}

/// The nodes that stay (`nodes` without the leaving ones): the cluster stage works on these.
pub fn staying(nodes: &[ClusterNode], leaving: &[Leaving]) -> Vec<ClusterNode> {
    nodes.iter().filter(|n| !leaving.iter().any(|l| l.node_name == n.node_name)).cloned().collect()
}

/// Takes `leaving` out of the cluster, then off AWS, one node at a time. `nodes` are the
/// cluster's nodes that stay (the control plane among them).
pub async fn retire(env: &Env<'_>, nodes: &[ClusterNode], leaving: &[Leaving]) -> Result<RetireReport> {
    if leaving.is_empty() {
        return Ok(RetireReport::default());
    }
    on_control_plane(env.spec, nodes, async |fleet, cp| {
        let registered = preflight(env, fleet, cp, leaving).await?;
        let mut report = RetireReport::default();
        for l in leaving {
            let member = registered.contains(&l.node_name);
            if member {
                drain_out(env, fleet, cp, l).await?;
            }
            terminate(env, l).await?;
            if member {
                // A kubelet still running between `delete node` and the termination registers
                // its Node again; it is gone for good only once the instance is.
                let again = format!("{} --ignore-not-found", drain::delete_node(KUBECTL, &l.node_name));
                fleet.read(&cp.name, "retire", &again).await?;
            }
            env.reporter.finish(&key(l), &format!("{} ({}) removed", l.name, l.instance_id));
            report.nodes.push(Retired { node: l.clone(), drained: member });
        }
        Ok(report)
    })
    .await
}

fn key(l: &Leaving) -> String {
    format!("retire/{}", l.name)
}

/// The checks made before anything is cordoned; returns the leaving nodes that are registered.
async fn preflight(env: &Env<'_>, fleet: &Fleet, cp: &ClusterNode, leaving: &[Leaving]) -> Result<Vec<String>> {
    let read = async |what: &str, cmd: String| {
        fleet.read(&cp.name, "retire", &cmd).await.with_context(|| format!("reading {what} before the scale-down"))
    };
    let nodes = drain::sched_nodes(&read("the nodes", format!("{KUBECTL} get nodes -o json")).await?)
        .context("parsing `kubectl get nodes -o json`")?;
    let names: Vec<String> = leaving.iter().map(|l| l.node_name.clone()).collect();
    let spreads = drain::spreads(&read("the StatefulSets", format!("{KUBECTL} get statefulsets -A -o json")).await?)
        .context("parsing `kubectl get statefulsets -A -o json`")?;
    let short = drain::unplaceable(&spreads, &nodes, &names);
    if !short.is_empty() {
        let err =
            anyhow!("refusing to remove {}: {}; nothing was drained or terminated", names.join(", "), short.join("; "));
        return Err(hint::attach(
            err,
            "keep workers.count high enough for those StatefulSets, or lower their replicas first",
        ));
    }
    let registered: Vec<String> = names.iter().filter(|n| nodes.iter().any(|s| &s.name == *n)).cloned().collect();
    // Only the components with a pod on a leaving node are asked.
    let pods = read("the pods", format!("{KUBECTL} get pods -A -o json")).await?;
    let on_leaving = drain::pods_on(&pods, &registered).context("parsing `kubectl get pods -A -o json`")?;
    for check in disruption_checks(env.spec, KUBECTL) {
        if !on_leaving.iter().any(|p| p.namespace == check.namespace) {
            continue;
        }
        let out = fleet.exec(&cp.name, "retire", &check.command).await?;
        let failing = (check.failing)(&out.stdout);
        if out.code != Some(0) || !failing.is_empty() {
            let why = if out.code == Some(0) {
                failing.join("; ")
            } else {
                let code = out.code.map_or_else(|| "a signal".to_string(), |c| c.to_string());
                format!("the check itself failed (exit {code}): {}", out.stderr.trim())
            };
            let err = anyhow!(
                "refusing to remove {}: {} must have {} before one of its pods is moved, and it has not: {why}; nothing was drained or terminated",
                names.join(", "),
                check.component.as_str(),
                check.what
            );
            return Err(hint::attach(err, "let it recover (see `tagstack status`), then run `tagstack up` again"));
        }
    }
    Ok(registered)
}

/// Cordon, drain, delete the Node; a drain that stops uncordons the node and says why.
async fn drain_out(env: &Env<'_>, fleet: &Fleet, cp: &ClusterNode, l: &Leaving) -> Result<()> {
    let r = env.reporter;
    let k = key(l);
    r.start(&k, &format!("cordon {} ({})", l.name, l.node_name));
    fleet.read(&cp.name, "retire", &drain::cordon(KUBECTL, &l.node_name)).await?;
    let timeout = env.spec.cluster.drain_timeout;
    r.update(&k, &format!("drain {} (up to {}s)", l.name, timeout.as_secs()));
    let out = fleet.exec(&cp.name, "retire", &drain::drain(KUBECTL, &l.node_name, timeout)).await?;
    if out.code != Some(0) {
        r.fail(&k, &format!("drain {}: failed", l.name));
        let stuck = drain::unevicted(&format!("{}\n{}", out.stdout, out.stderr));
        let why = explain(fleet, cp, &stuck).await;
        // Back in service: the node was not removed, so it keeps taking pods.
        let _ = fleet.read(&cp.name, "retire", &drain::uncordon(KUBECTL, &l.node_name)).await;
        let err = anyhow!(
            "draining {} ({}) did not finish within cluster.drain_timeout ({}s): {}; it was uncordoned and nothing was terminated",
            l.name,
            l.node_name,
            timeout.as_secs(),
            why
        );
        return Err(hint::attach(
            err,
            "a budget that allows no disruption has a pod that is not Ready: fix it (kubectl get pdb -A) and run `tagstack up` again, or raise cluster.drain_timeout",
        ));
    }
    r.update(&k, &format!("delete node {}", l.node_name));
    fleet.read(&cp.name, "retire", &drain::delete_node(KUBECTL, &l.node_name)).await?;
    Ok(())
}

/// Each pod the drain could not evict, with the budget that protects it (best effort: the
/// drain's own last lines when the budgets cannot be read).
async fn explain(fleet: &Fleet, cp: &ClusterNode, stuck: &[PodRef]) -> String {
    if stuck.is_empty() {
        return "kubectl drain failed without naming a pod".into();
    }
    let pdbs = fleet.read(&cp.name, "retire", &format!("{KUBECTL} get poddisruptionbudgets -A -o json")).await;
    let pods = fleet.read(&cp.name, "retire", &format!("{KUBECTL} get pods -A -o json")).await;
    match (pdbs.ok().and_then(|j| drain::budgets(&j).ok()), pods.ok().and_then(|j| drain::pod_labels(&j).ok())) {
        (Some(b), Some(l)) => drain::blocked_by(stuck, &b, &l).join("; "),
        _ => stuck.iter().map(|p| format!("pod {p} could not be evicted")).collect::<Vec<_>>().join("; "),
    }
}

async fn terminate(env: &Env<'_>, l: &Leaving) -> Result<()> {
    let r = env.reporter;
    let k = key(l);
    let ids = [l.instance_id.clone()];
    let cx = env.ctx().await;
    r.update(&k, &format!("terminate {}", l.instance_id));
    aws::terminate(&cx, &k, &ids).await?;
    aws::wait_terminated(&cx, &ids).await
}
