//! The pure heart: desired resources from a [`crate::config::Spec`], what discovery observed,
//! and the diff between them as a [`Plan`]. No tokio, no SDK, no printing.

mod describe;
pub mod desired;
mod diff;
pub mod expiry;
mod model;
pub mod observed;

pub use describe::describe;
pub use diff::{PlanError, diff, live_instances, teardown};
pub use model::{Action, Change, ExpiryChange, Fix, Kind, Plan, Summary};
pub use observed::Observed;

#[cfg(test)]
mod tests;
