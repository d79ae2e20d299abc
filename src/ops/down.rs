//! `tagstack down`: delete everything the environment owns, in reverse dependency order.
//! Only what discovery proved we own is touched. Independent branches (network, key pair,
//! IAM) continue when one fails, so one stuck resource does not leak the others; every
//! failure is reported.

use anyhow::{Result, bail};
use serde::Serialize;

use super::infra::teardown::{self, Fate, label};
use crate::aws::{self, Ctx};
use crate::plan::{Change, Observed, Teardown};

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
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The teardown plan, for the confirmation prompt.
pub async fn preview(aws: &aws::Aws, spec: &crate::config::Spec) -> Result<(Observed, Teardown)> {
    let observed = aws::discover(aws, spec).await?;
    let plan = crate::plan::teardown(&observed);
    Ok((observed, plan))
}

/// Runs the teardown as the plan lists it (`ops::infra::teardown`) and reports every entry.
pub async fn down(cx: &Ctx<'_>, plan: &Teardown) -> Result<DownReport> {
    let fates = teardown::run(cx, plan).await?;
    let deleted: Vec<Deletion> = plan
        .report_order()
        .iter()
        .map(|&i| Deletion { change: plan.changes[i].clone(), outcome: fates[i].clone() })
        .collect();
    let failed = deleted.iter().filter(|d| d.failed()).count();
    let not_attempted = deleted.iter().filter(|d| d.not_attempted()).count();
    Ok(DownReport { deleted, failed, not_attempted })
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
        bail!(
            "{} resource(s) could not be deleted:\n  {}{left}\n  hint: run `tagstack down` again; it only retries what is left",
            report.failed,
            names.join("\n  ")
        );
    }
    Ok(())
}
