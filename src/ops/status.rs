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
    }
}

pub async fn status(aws: &Aws, spec: &Spec) -> Result<Status> {
    let (observed, plan) = super::plan::plan(aws, spec, None).await?;
    Ok(status_of(&plan, inventory(&observed.instances), observed.expiry.earliest(), SystemTime::now()))
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
