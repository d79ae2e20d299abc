//! `tagstack down`: delete everything the environment owns, in reverse dependency order.
//! Only what discovery proved we own is touched. Independent branches (network, key pair,
//! IAM) continue when one fails, so one stuck resource does not leak the others; every
//! failure is reported.

use anyhow::{Result, anyhow};
use serde::Serialize;

use super::env::Env;
use super::infra::teardown::{self, Fate, label};
use super::nodes::on_control_plane;
use super::stack::{self, ClusterCleanup};
use crate::aws::{self, Ctx};
use crate::hint;
use crate::plan::{Backups, Change, Depth, Observed, Teardown};

#[derive(Debug, Clone, Serialize)]
pub struct Deletion {
    #[serde(flatten)]
    pub change: Change,
    /// Written "deleted", "already gone", "failed: ..." or "not attempted: behind the failed
    /// ..." (a step it waits for failed, e.g. the subnets and VPC behind a gateway that did not
    /// detach).
    pub outcome: Fate,
}

impl Deletion {
    fn failed(&self) -> bool {
        matches!(self.outcome, Fate::Failed(_))
    }

    fn not_attempted(&self) -> bool {
        matches!(self.outcome, Fate::Behind(_))
    }

    fn label(&self) -> String {
        label(&self.change)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    pub deleted: Vec<Deletion>,
    pub failed: usize,
    /// Resources left because a stage before theirs failed (listed in `deleted` with an
    /// outcome starting "not attempted").
    #[serde(skip_serializing_if = "is_zero")]
    pub not_attempted: usize,
    /// The backup bucket `down` kept (the default; `--delete-backups` deletes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_backups: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What `down` would delete, for the confirmation prompt.
pub struct Preview {
    observed: Observed,
    pub teardown: Teardown,
}

/// [`preview_with`] that keeps the backup bucket (`down` without `--delete-backups`).
pub async fn preview(env: &Env<'_>) -> Result<Preview> {
    preview_with(env, Backups::Keep).await
}

/// `backups`: whether the backup bucket goes too (`down --delete-backups`).
pub async fn preview_with(env: &Env<'_>, backups: Backups) -> Result<Preview> {
    // Deletes by ids and ownership: no DNS attribute or policy document is waited for.
    let observed = aws::discover(env.aws().await, &env.spec.id, &env.spec.timeouts, Depth::Teardown).await?;
    let teardown = crate::plan::teardown_with(&observed, backups);
    Ok(Preview { observed, teardown })
}

/// `down` on AWS: what it removed inside the cluster first (`None` when it could not), and
/// the AWS deletions.
pub struct DownOutcome {
    pub cleanup: Option<ClusterCleanup>,
    pub report: DownReport,
}

/// Deletes what `preview` found: first, while the cluster is alive, its load balancers and
/// the stack's volumes, which it would otherwise leave behind (not reaching it is no reason to
/// keep paying for the rest); then the teardown on AWS.
pub async fn run(env: &Env<'_>, preview: &Preview) -> Result<DownOutcome> {
    let r = env.reporter;
    let inventory = super::inventory(&preview.observed.instances);
    let cleanup = match cleanup_in_cluster(env, &inventory).await {
        None => {
            if inventory.iter().any(|n| n.state.is_running()) {
                r.note(
                    "the cluster stage has not run on these nodes (no verified host key recorded), so nothing is deleted inside the cluster first; volumes tagged for the environment are deleted on AWS",
                );
            }
            None
        }
        Some(Ok(c)) => {
            for e in &c.errors {
                r.note(&format!("inside the cluster: {e}; continuing with AWS"));
            }
            Some(c)
        }
        Some(Err(e)) => {
            r.note(&format!(
                "could not clean up inside the cluster ({e:#}); continuing: volumes tagged for the environment are deleted on AWS, but a load balancer the cluster made would make deleting its subnets fail"
            ));
            None
        }
    };
    let report = down(&env.ctx().await, &preview.teardown).await?;
    Ok(DownOutcome { cleanup, report })
}

/// `None` when the cluster stage never ran on the nodes; then the tag sweep on AWS is what
/// cleans up.
async fn cleanup_in_cluster(env: &Env<'_>, inventory: &[super::Node]) -> Option<Result<ClusterCleanup>> {
    let reach = super::nodes::reachable(env, inventory).await?;
    Some(
        on_control_plane(env.spec, &reach.pinned, async |fleet, cp| {
            stack::teardown(env.spec, fleet, cp, true, env.reporter).await
        })
        .await,
    )
}

/// `down` on machines tagstack does not own: only what it deployed in the cluster (the
/// namespaces it labelled for this environment, with their volumes) goes.
pub async fn run_static(env: &Env<'_>) -> Result<ClusterCleanup> {
    let nodes = super::nodes::nodes(env).await?;
    on_control_plane(env.spec, &nodes, async |fleet, cp| {
        stack::teardown(env.spec, fleet, cp, false, env.reporter).await
    })
    .await
}

/// Runs the teardown as the plan lists it (`ops::infra::teardown`) and reports every entry.
pub async fn down(cx: &Ctx<'_>, plan: &Teardown) -> Result<DownReport> {
    // A bake killed and never run again leaves its builder in the environment's subnet; it
    // has no role tag, so the plan does not list it, and the subnet could not be deleted.
    super::bake::terminate_builders(cx).await?;
    let fates = teardown::run(cx, plan).await?;
    let deleted: Vec<Deletion> = plan
        .report_order()
        .iter()
        .map(|&i| Deletion { change: plan.changes[i].clone(), outcome: fates[i].clone() })
        .collect();
    let failed = deleted.iter().filter(|d| d.failed()).count();
    let not_attempted = deleted.iter().filter(|d| d.not_attempted()).count();
    Ok(DownReport { deleted, failed, not_attempted, kept_backups: plan.kept_bucket.clone() })
}

/// Error for a static `down` that left something of the stack behind.
pub fn check_static(cleanup: &ClusterCleanup) -> Result<()> {
    if !cleanup.errors.is_empty() {
        let err = anyhow::anyhow!("the stack was not removed completely:\n  {}", cleanup.errors.join("\n  "));
        return Err(crate::hint::attach(err, "run `tagstack down` again"));
    }
    Ok(())
}

/// Error for a `down` that left something behind.
pub fn check(report: &DownReport) -> Result<()> {
    if report.failed > 0 {
        let names: Vec<String> =
            report.deleted.iter().filter(|d| d.failed()).map(|d| format!("{}: {}", d.label(), d.outcome)).collect();
        let left: Vec<String> = report.deleted.iter().filter(|d| d.not_attempted()).map(Deletion::label).collect();
        let left = if left.is_empty() {
            String::new()
        } else {
            format!("\n{} resource(s) not attempted because of it:\n  {}", left.len(), left.join("\n  "))
        };
        let err = anyhow!("{} resource(s) could not be deleted:\n  {}{left}", report.failed, names.join("\n  "));
        return Err(hint::attach(err, "run `tagstack down` again; it only retries what is left"));
    }
    Ok(())
}
