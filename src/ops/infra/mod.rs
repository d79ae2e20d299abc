//! The infra stage's side effects on AWS: running what `plan` decided. `apply` runs the typed
//! plan of `up` as a DAG; `teardown` runs a [`crate::plan::Teardown`] as it is listed; neither
//! decides what to change. `harden` runs the plan's [`crate::plan::Hardening`], which `up`
//! calls after its cluster stage.

pub mod apply;
pub mod harden;
pub mod teardown;
