//! `tagstack up` whole: infra (AWS), then the cluster (kubeadm over SSH), then the stack (and
//! the monitoring add-on after it), each
//! handed to the caller as soon as it is done (so a person sees the nodes even when a later
//! stage fails). Decides which stages run and in which order; each stage's own steps are
//! decided by its module (`infra::apply`, `cluster`, `stack`).

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::advice::{Command, advise};
use super::cluster::{ClusterReport, bootstrap};
use super::env::Env;
use super::infra::apply::{self, InfraReport};
use super::infra::harden;
use super::monitoring::{self, MonitoringReport};
use super::nodes::{nodes, on_control_plane};
use super::retire::{RetireReport, leaving, retire, staying};
use super::stack::{StackReport, deploy};
use super::upgrade::{self, UpgradeReport};
use crate::cluster::ClusterNode;
use crate::hint;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Infra,
    Cluster,
    Stack,
}

/// A static environment has no infra stage: its machines are the user's.
#[derive(Debug, thiserror::Error)]
#[error("a static environment has no infra stage")]
pub struct NoInfraStage;

#[derive(Debug, Clone, Copy, Default)]
pub struct UpOpts {
    /// `up --ttl`: (re)sets the environment's expiry to now + ttl.
    pub ttl: Option<Duration>,
    /// `up --only STAGE`.
    pub only: Option<Stage>,
}

/// What `up` did, stage by stage; what finished is kept when a later stage fails (a CI job
/// keeps the inventory and the kubeconfig path).
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpReport {
    #[serde(flatten)]
    pub infra: Option<InfraReport>,
    /// The Kubernetes upgrade this run made, if any (before the cluster stage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
    /// Workers removed by a scale-down (drained, deleted from the cluster, terminated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retired: Option<RetireReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<StackReport>,
    /// The monitoring add-on, applied after the stack (`[monitoring]` on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringReport>,
    /// The error that stopped `up`, as text, with `up`'s advice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stage just finished.
pub enum Done<'a> {
    Infra(&'a InfraReport),
    Cluster(&'a ClusterReport),
    Retire(&'a RetireReport),
    Stack(&'a StackReport),
    Monitoring(&'a MonitoringReport),
}

/// Runs the stages `opts` selects; returns the report and how it ended.
pub async fn run(env: &Env<'_>, opts: UpOpts, on_done: &mut dyn FnMut(Done<'_>)) -> (UpReport, Result<()>) {
    let mut report = UpReport::default();
    let result = stages(env, opts, &mut report, on_done).await.map_err(|e| advise(e, Command::Up));
    if let Err(e) = &result {
        report.error = Some(hint::render(e));
    }
    (report, result)
}

async fn stages(env: &Env<'_>, opts: UpOpts, report: &mut UpReport, on_done: &mut dyn FnMut(Done<'_>)) -> Result<()> {
    let runs = |stage: Stage| opts.only.is_none_or(|o| o == stage);
    if env.is_static() && opts.only == Some(Stage::Infra) {
        return Err(NoInfraStage.into());
    }
    // Before any side effect, whichever stages run: the same refusal as `plan`'s.
    crate::plan::placement::check(env.spec, &crate::stack::one_per_node(env.spec))?;
    if !env.is_static() && runs(Stage::Infra) {
        let infra = apply::run(env.aws().await, env.spec, opts.ttl, env.reporter).await?;
        on_done(Done::Infra(&infra));
        if !infra.hardening.is_empty() && !runs(Stage::Cluster) {
            env.reporter.note(&format!(
                "{} instance(s) still let pods reach their IAM role (IMDS hop limit above 1): `tagstack up` lowers it after the cluster stage has moved the EBS CSI controller to the control plane, not `--only infra`",
                infra.hardening.hop_limit.len()
            ));
        }
        if !infra.retire.is_empty() && !runs(Stage::Cluster) {
            env.reporter.note(&format!(
                "{} worker(s) beyond workers.count joined the cluster: they are drained and removed by `tagstack up` with the cluster stage, not by `--only infra`",
                infra.retire.len()
            ));
        }
        report.infra = Some(infra);
    }
    if !runs(Stage::Cluster) && !runs(Stage::Stack) {
        return Ok(());
    }
    // Workers the plan retires are left out of the bootstrap (they are leaving; one that is
    // broken must not stop its own removal) and removed once the nodes that stay are Ready.
    let leaving = report.infra.as_ref().map(|i| leaving(&i.retire, &i.nodes)).unwrap_or_default();
    let nodes = staying(&nodes(env).await?, &leaving);
    if runs(Stage::Cluster) {
        // A raised kubernetes_version moves the running cluster first (or is refused before
        // anything changes); the cluster stage then finds every node on the new minor and
        // re-applies the add-ons of that minor.
        report.upgrade = upgrade::run(env.spec, &nodes, env.reporter).await?;
        let cluster = bootstrap(env.spec, &nodes, env.reporter).await?;
        on_done(Done::Cluster(&cluster));
        report.cluster = Some(cluster);
        // The add-ons now run where hop limit 1 cannot starve them (the bootstrap waited for
        // their rollout): an environment from before loses its pods' access to IMDS only now.
        if let Some(infra) = report.infra.as_ref().filter(|i| !i.hardening.is_empty()) {
            harden::run(env.aws().await, env.spec, &infra.hardening, env.reporter).await?;
        }
        let retired = retire(env, &nodes, &leaving).await?;
        if !retired.nodes.is_empty() {
            on_done(Done::Retire(&retired));
            report.retired = Some(retired);
        }
    }
    if runs(Stage::Stack) {
        let stack = stack_stage(env, &nodes).await?;
        on_done(Done::Stack(&stack));
        report.stack = Some(stack);
        // After the stack: its pods carry the JMX agent Prometheus scrapes, and a failing
        // monitoring add-on must never hold the data stack back.
        if env.spec.monitoring.is_some() {
            let spec = env.spec;
            let applied = on_control_plane(spec, &nodes, async |fleet, cp| {
                monitoring::deploy(spec, fleet, cp, env.reporter).await
            })
            .await?;
            if let Some(m) = applied {
                on_done(Done::Monitoring(&m));
                report.monitoring = Some(m);
            }
        }
    }
    Ok(())
}

/// Applies the stack on the running cluster and waits for it.
async fn stack_stage(env: &Env<'_>, nodes: &[ClusterNode]) -> Result<StackReport> {
    if env.spec.stack.is_empty() {
        return Ok(StackReport { workloads: Vec::new(), endpoints: Vec::new() });
    }
    on_control_plane(env.spec, nodes, async |fleet, cp| deploy(env.spec, fleet, cp, env.reporter).await).await
}
