//! `tagstack status`: what exists, its state, and drift against the config. Read-only.

use anyhow::Result;
use serde::Serialize;

use super::inventory::{Node, inventory};
use crate::aws::Aws;
use crate::config::Spec;
use std::time::SystemTime;

use crate::plan::{Action, Change, Plan, Summary, expiry};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// True when `up` would change nothing.
    pub in_sync: bool,
    pub summary: Summary,
    /// Resources that exist and match (keep) or exist with drift (update).
    pub existing: Vec<Change>,
    /// Wanted by the config, not found.
    pub missing: Vec<Change>,
    /// Owned by the environment, no longer wanted by the config.
    pub extra: Vec<Change>,
    pub nodes: Vec<Node>,
    /// `tagstack:expires-at` (earliest, if resources disagree) and the time left.
    pub expires_at: Option<String>,
    pub expires_in: Option<String>,
    /// The backup bucket and its newest snapshot, when the environment has a bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups: Option<Box<BackupStatus>>,
    /// The project's baked node images (`tagstack bake`) and the nodes running each; absent
    /// for a project that never baked one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Box<Vec<super::bake::ImageStatus>>>,
}

/// `status`'s view of the etcd backups.
#[derive(Debug, Clone, Serialize)]
pub struct BackupStatus {
    pub bucket: String,
    /// `None` when the bucket holds no snapshot yet.
    pub newest: Option<crate::aws::SnapshotObject>,
    /// How long ago the newest snapshot was taken (`3h`, `2d`).
    pub newest_age: Option<String>,
    /// Why the snapshots could not be listed (the rest of `status` stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn status_of(plan: &Plan, nodes: Vec<Node>, expires_at: Option<&str>, now: SystemTime) -> Status {
    let pick = |f: &dyn Fn(Action) -> bool| plan.changes.iter().filter(|c| f(c.action)).cloned().collect::<Vec<_>>();
    Status {
        in_sync: plan.is_converged(),
        summary: plan.summary(),
        existing: pick(&|a| matches!(a, Action::Keep | Action::Update)),
        missing: pick(&|a| a == Action::Create),
        extra: pick(&|a| a == Action::Delete),
        nodes,
        expires_at: expires_at.map(str::to_string),
        expires_in: expires_at.and_then(|e| expiry::time_left(e, now)),
        backups: None,
        images: None,
    }
}

pub async fn status(aws: &Aws, spec: &Spec) -> Result<Status> {
    let (observed, plan) = super::plan::plan(aws, spec, None).await?;
    let now = SystemTime::now();
    let mut st = status_of(&plan, inventory(&observed.instances), observed.expiry.earliest(), now);
    st.backups = match super::backup::newest(aws, spec, &observed.backup).await {
        Ok(None) => None,
        Ok(Some(n)) => Some(Box::new(BackupStatus {
            bucket: n.bucket,
            newest_age: n
                .snapshot
                .as_ref()
                .and_then(|s| s.last_modified.as_deref())
                .and_then(|t| super::backup::age(t, now)),
            newest: n.snapshot,
            error: None,
        })),
        Err(e) => Some(Box::new(BackupStatus {
            bucket: observed.backup.name.clone(),
            newest: None,
            newest_age: None,
            error: Some(format!("{e:#}")),
        })),
    };
    // Read-only and secondary: a failed read leaves the images out, not `status` failing.
    st.images = super::bake::status(aws, spec, &st.nodes)
        .await
        .unwrap_or_else(|e| {
            tracing::debug!("status: baked images not read: {e:#}");
            None
        })
        .map(Box::new);
    Ok(st)
}

/// `tagstack status` whole: on AWS the resources, drift and nodes, plus the live cluster when
/// the cluster stage ran; on a static environment the live cluster only.
pub enum StatusReport {
    Aws { infra: Status, live: super::live::AwsLive },
    Static { live: super::live::Live },
}

pub async fn run(env: &super::Env<'_>) -> Result<StatusReport> {
    if env.is_static() {
        return Ok(StatusReport::Static { live: super::live::of_static(env).await? });
    }
    let infra = status(env.aws().await, env.spec).await?;
    let live = super::live::of_aws(env, &infra.nodes).await;
    Ok(StatusReport::Aws { infra, live })
}
