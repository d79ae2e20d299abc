//! `tagstack plan`: refuse a configuration whose workers cannot hold the stack
//! (`plan::placement`), discover, diff, return; with a bootstrapped cluster also the Kubernetes
//! version it runs against the configured one (`ops::upgrade::preview`). Makes no write call.

use anyhow::Result;

use crate::aws::{Aws, discover};
use crate::config::Spec;
use std::time::{Duration, SystemTime};

use crate::plan::{Depth, Observed, Plan, diff, expiry};

use super::bake::ImageChoice;
use super::env::Env;
use super::upgrade::{KubernetesPlan, preview};

/// `ttl` previews `up --ttl`.
pub async fn plan(aws: &Aws, spec: &Spec, ttl: Option<Duration>) -> Result<(Observed, Plan)> {
    // `status` shows this plan too (drift of a role's policies or the VPC's DNS attribute is an
    // update it lists), so both need what only a full discovery reads.
    let observed = discover(aws, &spec.id, &spec.timeouts, Depth::Full).await?;
    let expires_at = expiry::resolve(ttl, spec.ttl, &observed.expiry, SystemTime::now());
    let plan = diff(spec, &observed, expires_at.as_deref())?;
    Ok((observed, plan))
}

/// `tagstack plan` whole: the infra plan and, once the cluster stage ran on the nodes, what runs
/// in Kubernetes against `kubernetes_version` (an upgrade `up` would make, or its refusal).
/// Also which image new nodes launch from, when the project has baked images
/// (`ops::bake::plan_image`).
pub async fn run(env: &Env<'_>, ttl: Option<Duration>) -> Result<(Plan, Option<KubernetesPlan>, Option<ImageChoice>)> {
    // Before any call: a config that cannot hold the stack is refused as it stands.
    crate::plan::placement::check(env.spec, &crate::stack::one_per_node(env.spec))?;
    let (observed, plan) = plan(env.aws().await, env.spec, ttl).await?;
    let kubernetes = preview(env, &observed).await?;
    // The image lookup is `up`'s to fail on (with its advice): a plan is still a plan without it.
    let image = super::bake::plan_image(env).await.unwrap_or_else(|e| {
        tracing::debug!("plan: no image choice: {e:#}");
        None
    });
    Ok((plan, kubernetes, image))
}
