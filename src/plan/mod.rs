//! The pure heart: desired resources from a [`crate::config::Spec`], what discovery observed,
//! and the diff between them: typed per kind for `up` ([`InfraPlan`]) and flat for showing
//! ([`Plan`], its view). No tokio, no SDK, no printing.

mod describe;
pub mod desired;
mod diff;
pub mod expiry;
pub mod infra;
mod model;
pub mod observed;
pub mod placement;
mod teardown;

pub use describe::describe;
pub use diff::{PlanError, diff, diff_infra, live_instances};
pub use infra::InfraPlan;
pub use model::{Action, Change, ExpiryChange, Fix, Hardening, Kind, Plan, Summary};
pub use observed::{Depth, Observed};
pub use teardown::{Backups, Op, Step, Teardown, teardown, teardown_with};

#[cfg(test)]
mod tests;
