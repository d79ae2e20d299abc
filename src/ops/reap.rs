//! `tagstack reap`: `down` every environment in the region whose `tagstack:expires-at` has
//! passed. The environments come from the tags alone: each is an `EnvId` made from its tags,
//! with the default timeouts, torn down with the same ownership rules as `down` (discovery by
//! its exact project and environment tags).

use std::time::SystemTime;

use anyhow::Result;
use serde::Serialize;

use crate::aws::{self, Aws, Ctx, Expiring};
use crate::config::{EnvId, Timeouts, is_valid_name};
use crate::plan::{Backups, Depth, expiry, teardown_with};
use crate::reporter::Reporter;

#[derive(Debug, Clone, Serialize)]
pub struct Reaped {
    pub project: String,
    pub environment: String,
    pub expires_at: String,
    /// "reaped", "would reap" (dry run) or "failed".
    pub outcome: String,
    /// Resources deleted (or, in a dry run, that would be).
    pub resources: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub project: String,
    pub environment: String,
    pub expires_at: String,
    /// e.g. "1h12m left"; "unreadable expiry" when the tag is not RFC 3339.
    pub expires_in: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReapReport {
    pub dry_run: bool,
    pub reaped: Vec<Reaped>,
    pub kept: Vec<Kept>,
    pub failed: usize,
}

/// Splits what was found into expired and not (pure, for tests and the confirmation prompt).
pub fn expired(found: Vec<Expiring>, now: SystemTime) -> (Vec<Expiring>, Vec<Kept>) {
    let mut due = Vec::new();
    let mut kept = Vec::new();
    for e in found {
        // Tags are user-writable: only names tagstack could have written are reaped.
        let sane = is_valid_name(&e.project) && is_valid_name(&e.environment);
        match expiry::is_expired(&e.expires_at, now) {
            Some(true) if sane => due.push(e),
            Some(_) => {
                let expires_in = if sane {
                    expiry::time_left(&e.expires_at, now).unwrap_or_default()
                } else {
                    "not a tagstack environment name".into()
                };
                kept.push(Kept {
                    project: e.project,
                    environment: e.environment,
                    expires_at: e.expires_at,
                    expires_in,
                });
            }
            None => kept.push(Kept {
                project: e.project,
                environment: e.environment,
                expires_at: e.expires_at,
                expires_in: "unreadable expiry".into(),
            }),
        }
    }
    (due, kept)
}

pub async fn find(aws: &Aws, project: Option<&str>) -> Result<(Vec<Expiring>, Vec<Kept>)> {
    Ok(expired(aws::expiring(aws, project).await?, SystemTime::now()))
}

/// Each environment is known by its tags alone: its [`EnvId`], and the default timeouts (no
/// config is read).
pub async fn reap(
    aws: &Aws,
    due: Vec<Expiring>,
    kept: Vec<Kept>,
    dry_run: bool,
    reporter: &dyn Reporter,
) -> Result<ReapReport> {
    let mut reaped = Vec::new();
    for e in due {
        let id = EnvId::new(&e.project, &e.environment);
        let timeouts = Timeouts::default();
        let key = format!("reap/{}/{}", e.project, e.environment);
        reporter.start(
            &key,
            &format!(
                "{} {}/{} (expired {})",
                if dry_run { "would reap" } else { "reaping" },
                e.project,
                e.environment,
                e.expires_at
            ),
        );
        let result = async {
            let observed = aws::discover(aws, &id, &timeouts, Depth::Teardown).await?;
            // An expired environment takes its backups with it: reap runs unattended, mostly
            // for CI environments, and a kept bucket would outlive every trace `reap` finds
            // environments by (their EC2 tags). Keep snapshots of an environment that should
            // outlive its expiry by copying them first, or by not giving it a ttl.
            let plan = teardown_with(&observed, Backups::Delete);
            if dry_run {
                return anyhow::Ok((plan.changes.len(), 0));
            }
            let cx = Ctx::new(aws, &id, timeouts, reporter);
            let report = super::down(&cx, &plan).await?;
            Ok((report.deleted.len(), report.failed))
        }
        .await;
        let (outcome, resources, error) = match result {
            Ok((n, 0)) => (if dry_run { "would reap" } else { "reaped" }, n, None),
            Ok((n, failed)) => {
                ("failed", n, Some(format!("{failed} resource(s) could not be deleted; run reap again")))
            }
            Err(err) => ("failed", 0, Some(super::advice::render(err, super::advice::Command::Reap))),
        };
        if outcome == "failed" {
            reporter.fail(&key, outcome);
        } else {
            reporter.finish(&key, &format!("{outcome}: {resources} resource(s)"));
        }
        reaped.push(Reaped {
            project: e.project,
            environment: e.environment,
            expires_at: e.expires_at,
            outcome: outcome.into(),
            resources,
            error,
        });
    }
    let failed = reaped.iter().filter(|r| r.outcome == "failed").count();
    Ok(ReapReport { dry_run, reaped, kept, failed })
}
