//! `tagstack plan`: discover, diff, return. Makes no write call.

use anyhow::Result;

use crate::aws::{Aws, discover};
use crate::config::Spec;
use crate::plan::{Observed, Plan, diff};

pub async fn plan(aws: &Aws, spec: &Spec) -> Result<(Observed, Plan)> {
    let observed = discover(aws, spec).await?;
    let plan = diff(spec, &observed)?;
    Ok((observed, plan))
}
