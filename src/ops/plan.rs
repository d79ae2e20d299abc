//! `tagstack plan`: discover, diff, return. Makes no write call.

use anyhow::Result;

use crate::aws::{Aws, discover};
use crate::config::Spec;
use std::time::{Duration, SystemTime};

use crate::plan::{Observed, Plan, diff, expiry};

/// `ttl` previews `up --ttl`.
pub async fn plan(aws: &Aws, spec: &Spec, ttl: Option<Duration>) -> Result<(Observed, Plan)> {
    let observed = discover(aws, &spec.id, &spec.timeouts).await?;
    let expires_at = expiry::resolve(ttl, spec.ttl, &observed.expiry, SystemTime::now());
    let plan = diff(spec, &observed, expires_at.as_deref())?;
    Ok((observed, plan))
}
