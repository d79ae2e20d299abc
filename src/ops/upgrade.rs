//! `up`'s upgrade step and `plan`'s view of it: reads what the cluster runs (the kubeadm
//! ClusterConfiguration's `kubernetesVersion`, each Node's kubelet), has `cluster::upgrade::judge`
//! decide, and runs the upgrade it decided: the control plane first (kubeadm, `kubeadm upgrade
//! apply`, drain, kubelet and kubectl, uncordon, Ready), then each worker in turn (drain,
//! kubeadm, `kubeadm upgrade node`, kubelet and kubectl, uncordon, Ready). It runs after the
//! infra stage and before the cluster stage, which then finds every node on the new minor
//! (its prepare refuses a minor change under a running kubelet) and re-applies the add-ons of
//! that minor (the CCM release per minor, `cluster::addons`). Nothing is stored locally: a
//! failure anywhere leaves a cluster whose state the next `up` reads back and finishes.
//! A refusal (a skipped minor, a downgrade) happens before anything is changed.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use super::cluster::{upload_and_run, write_env_files};
use super::env::Env;
use super::inventory::inventory;
use super::nodes::{hosts, on_control_plane, reachable};
use crate::cluster::upgrade::{self, Running, Step, Upgrade, Version};
use crate::cluster::{ClusterNode, parse};
use crate::config::{NodeRole, Spec, format_duration};
use crate::hint;
use crate::plan::Observed;
use crate::poll::{Check, Look, poll_until};
use crate::remote::{Fleet, RemoteErrors};
use crate::reporter::Reporter;

/// What `up`'s upgrade did.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    pub from: Version,
    pub to: Version,
    /// The nodes upgraded in this run (API names), in order.
    pub nodes: Vec<String>,
}

/// The Kubernetes line of `plan`: what runs, what is wanted, and what `up` will do.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum KubernetesPlan {
    Read {
        running: Version,
        wanted: String,
        /// `keep` or `upgrade`.
        action: &'static str,
        /// The nodes `up` will upgrade, in order (control plane first).
        nodes: Vec<String>,
    },
    /// The cluster could not be read (plan does not fail for it).
    Error { error: String },
}

/// What the cluster runs, or `None` on a control plane tagstack never initialised.
pub async fn running(fleet: &Fleet, cp: &ClusterNode) -> Result<Option<Running>> {
    let config = fleet.read(&cp.name, "upgrade", &upgrade::read_cluster_configuration()).await?;
    if config.trim().is_empty() {
        return Ok(None);
    }
    let control_plane = upgrade::cluster_configuration_version(&config)
        .context("the kubeadm-config ConfigMap's ClusterConfiguration names no kubernetesVersion")?;
    let json = fleet.read(&cp.name, "upgrade", &upgrade::read_nodes()).await?;
    let nodes = upgrade::node_versions(&json).context("parsing `kubectl get nodes -o json`")?;
    Ok(Some(Running { control_plane, nodes }))
}

/// `plan`'s view on AWS: read from the control plane when the cluster stage has run on the
/// nodes (without waiting for anything); a refusal is `plan`'s error, as it will be `up`'s.
pub async fn preview(env: &Env<'_>, observed: &Observed) -> Result<Option<KubernetesPlan>> {
    let Some(reach) = reachable(env, &inventory(&observed.instances)).await else { return Ok(None) };
    let read = on_control_plane(env.spec, &reach.pinned, async |fleet, cp| {
        Ok(running(fleet, cp).await?.map(|mut r| {
            r.nodes.retain(|n| reach.all.iter().any(|c| c.node_name == n.name));
            (r, cp.node_name.clone())
        }))
    })
    .await;
    let (running, cp) = match read {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Ok(Some(KubernetesPlan::Error { error: super::advice::render(e, super::advice::Command::Plan) }));
        }
    };
    let step = upgrade::judge(env.spec.kubernetes_version, &running, &cp)?;
    let wanted = crate::cluster::render::kube_minor(env.spec.kubernetes_version);
    Ok(Some(match step {
        Step::Keep => {
            KubernetesPlan::Read { running: running.control_plane, wanted, action: "keep", nodes: Vec::new() }
        }
        Step::Upgrade(u) => {
            KubernetesPlan::Read { running: running.control_plane, wanted, action: "upgrade", nodes: u.nodes }
        }
    }))
}

/// `up`'s upgrade step over `nodes`: nothing on a fresh control plane or one already on the
/// configured minor; a refusal before any change; else the upgrade, resumed where an earlier
/// run stopped.
pub async fn run(spec: &Spec, nodes: &[ClusterNode], r: &dyn Reporter) -> Result<Option<UpgradeReport>> {
    let read = on_control_plane(spec, nodes, async |fleet, cp| running(fleet, cp).await).await?;
    let Some(mut running) = read else { return Ok(None) };
    // Only the nodes this run works on: a worker a scale-down is about to remove keeps its
    // kubelet (the skew policy lets a kubelet lag the API server) and leaves after the stage.
    running.nodes.retain(|n| nodes.iter().any(|c| c.node_name == n.name));
    let cp = nodes.iter().find(|n| n.role == NodeRole::ControlPlane).context("no control-plane node")?;
    let plan = match upgrade::judge(spec.kubernetes_version, &running, &cp.node_name)? {
        Step::Keep => return Ok(None),
        Step::Upgrade(u) => u,
    };
    r.note(&format!("Kubernetes {} -> {}: upgrading {}", running.control_plane, plan.to, plan.nodes.join(", ")));
    let files = write_env_files(spec, nodes)?;
    let fleet = Fleet::connect(&hosts(nodes), &files, spec.cluster.max_parallel_ssh, r).await.map_err(RemoteErrors)?;
    let result = upgrade_nodes(&fleet, spec, nodes, cp, &running, &plan, r).await;
    fleet.close().await;
    let to = result?;
    Ok(Some(UpgradeReport { from: running.control_plane, to, nodes: plan.nodes }))
}

/// The nodes of the plan, one at a time; returns the version they all run now.
async fn upgrade_nodes(
    fleet: &Fleet,
    spec: &Spec,
    nodes: &[ClusterNode],
    cp: &ClusterNode,
    running: &Running,
    plan: &Upgrade,
    r: &dyn Reporter,
) -> Result<Version> {
    // The control plane already applied: every kubelet gets its exact version.
    let mut target = (!plan.control_plane).then_some(running.control_plane);
    for name in &plan.nodes {
        let node = nodes.iter().find(|n| &n.node_name == name).with_context(|| {
            format!(
                "the cluster has a node {name} that is not one of this environment's nodes: tagstack cannot upgrade it"
            )
        })?;
        let v = upgrade_node(fleet, spec, cp, node, plan, target, r).await?;
        target = Some(v);
    }
    target.context("no node was upgraded")
}

/// One node. The control plane: kubeadm (+ apply), then drain, kubelet, uncordon. A worker:
/// drain, kubeadm (`upgrade node`), kubelet, uncordon. Then Ready at the target.
async fn upgrade_node(
    fleet: &Fleet,
    spec: &Spec,
    cp: &ClusterNode,
    node: &ClusterNode,
    plan: &Upgrade,
    target: Option<Version>,
    r: &dyn Reporter,
) -> Result<Version> {
    let is_cp = node.role == NodeRole::ControlPlane;
    let pin = target.map(|t| t.to_string()).or_else(|| plan.patch.map(|p| format!("{}.{p}", plan.to)));
    let kubeadm_half = async || -> Result<Version> {
        let script = upgrade::kubeadm_script(node, &plan.to, pin.as_deref(), plan.control_plane)?;
        let lines = upload_and_run(fleet, &node.name, "upgrade", "upgrade-kubeadm.sh", &script, r).await?;
        parse::value(&lines, "upgrade-version")
            .and_then(Version::parse)
            .with_context(|| format!("{} printed no upgrade-version", node.name))
    };
    let version = if is_cp {
        let v = kubeadm_half().await?;
        drain(fleet, spec, cp, node, v, r).await?;
        v
    } else {
        let t = target.context("a worker is upgraded only after the control plane")?;
        drain(fleet, spec, cp, node, t, r).await?;
        let v = kubeadm_half().await?;
        if v != t {
            return Err(anyhow!("{}: kubeadm is {v} after the upgrade, the control plane runs {t}", node.name));
        }
        v
    };
    let script = upgrade::kubelet_script(node, &version.to_string())?;
    upload_and_run(fleet, &node.name, "upgrade", "upgrade-kubelet.sh", &script, r).await?;
    fleet
        .read(
            &cp.name,
            "upgrade",
            &format!("{} && {}", upgrade::uncordon(&node.node_name), upgrade::unannotate(&node.node_name)),
        )
        .await?;
    wait_upgraded(fleet, spec, cp, node, version, r).await?;
    Ok(version)
}

/// Marks the node and drains it, PodDisruptionBudgets honoured; a drain that stops uncordons
/// the node again (its kubelet was not touched yet) and names why.
async fn drain(
    fleet: &Fleet,
    spec: &Spec,
    cp: &ClusterNode,
    node: &ClusterNode,
    to: Version,
    r: &dyn Reporter,
) -> Result<()> {
    let name = &node.node_name;
    let deadline = drain_timeout(spec);
    let key = format!("drain/{}", node.name);
    r.start(&key, &format!("draining {}", node.name));
    let out = fleet
        .exec(
            &cp.name,
            "upgrade",
            &format!("{} && {}", upgrade::annotate(name, &to.to_string()), upgrade::drain(name, deadline)),
        )
        .await?;
    if out.code == Some(0) {
        r.finish(&key, &format!("{} drained", node.name));
        return Ok(());
    }
    r.fail(&key, &format!("draining {}: failed", node.name));
    let undo =
        fleet.exec(&cp.name, "upgrade", &format!("{} && {}", upgrade::uncordon(name), upgrade::unannotate(name))).await;
    let undone = matches!(undo, Ok(ref o) if o.code == Some(0));
    let pods = crate::cluster::drain::unevicted(&format!("{}\n{}", out.stdout, out.stderr));
    let named = if pods.is_empty() {
        String::new()
    } else {
        format!(" (not evicted: {})", pods.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
    };
    let err = anyhow!(
        "draining {} ({name}) for the upgrade to {to} failed within {} (cluster.drain_timeout){named}: {}",
        node.name,
        format_duration(deadline),
        last_lines(&out.stderr, &out.stdout)
    );
    Err(hint::attach(
        err,
        if undone {
            "the node was uncordoned and not upgraded: a PodDisruptionBudget that allows no eviction blocks a drain; let its pods become healthy (or scale the workload), then run `tagstack up` again"
        } else {
            "the node may still be cordoned (kubectl uncordon it if you stop here); fix the cause and run `tagstack up` again, which resumes the upgrade"
        },
    ))
}

fn last_lines(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() { stdout } else { stderr };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(5)..].join("\n    ")
}

/// How long one drain may take: the same budget as a scale-down's drain.
fn drain_timeout(spec: &Spec) -> Duration {
    spec.cluster.drain_timeout
}

/// Waits until the node is Ready with its kubelet at `version`.
async fn wait_upgraded(
    fleet: &Fleet,
    spec: &Spec,
    cp: &ClusterNode,
    node: &ClusterNode,
    version: Version,
    r: &dyn Reporter,
) -> Result<()> {
    let key = format!("upgrade-ready/{}", node.name);
    r.start(&key, &format!("waiting for {} Ready at {version}", node.name));
    let waited = poll_until(
        spec.cluster.bootstrap_timeout,
        Duration::from_secs(2),
        Check::AfterLook,
        async |_| {
            let json = fleet.read(&cp.name, "upgrade", &upgrade::read_nodes()).await?;
            let nodes = upgrade::node_versions(&json).context("parsing `kubectl get nodes -o json`")?;
            anyhow::Ok(match upgrade::node_done(&nodes, &node.node_name, version) {
                Ok(()) => Look::Done(()),
                Err(why) => Look::Waiting(why),
            })
        },
        |why| r.update(&key, &format!("waiting: {why}")),
    )
    .await?;
    match waited {
        Ok(()) => {
            r.finish(&key, &format!("{} Ready at {version}", node.name));
            Ok(())
        }
        Err(t) => {
            r.fail(&key, "not Ready after the upgrade");
            Err(hint::attach(
                anyhow!(
                    "{} is not back after its upgrade to {version} within {} (cluster.bootstrap_timeout): {}",
                    node.name,
                    format_duration(t.waited()),
                    t.last
                ),
                "look at the node's kubelet (journalctl -u kubelet), then run `tagstack up` again, which resumes the upgrade",
            ))
        }
    }
}
