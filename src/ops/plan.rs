//! `tagstack plan`: discover, diff, return. Makes no write call.

use anyhow::Result;

use crate::aws::{Aws, discover};
use crate::config::Spec;
use std::time::{Duration, SystemTime};

use crate::plan::{Depth, Observed, Plan, diff, expiry};

/// `ttl` previews `up --ttl`.
pub async fn plan(aws: &Aws, spec: &Spec, ttl: Option<Duration>) -> Result<(Observed, Plan)> {
    // `status` shows this plan too (drift of a role's policies or the VPC's DNS attribute is an
    // update it lists), so both need what only a full discovery reads.
    let observed = discover(aws, &spec.id, &spec.timeouts, Depth::Full).await?;
    let expires_at = expiry::resolve(ttl, spec.ttl, &observed.expiry, SystemTime::now());
    let plan = diff(spec, &observed, expires_at.as_deref())?;
    Ok((observed, plan))
}
