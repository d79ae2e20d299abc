//! The pure heart: desired resources from a [`crate::config::Spec`], what discovery observed,
//! and the diff between them as a [`Plan`]. No tokio, no SDK, no printing.

mod describe;
pub mod desired;
mod diff;
pub mod expiry;
mod model;
pub mod observed;
mod teardown;

pub use describe::describe;
pub use diff::{PlanError, diff, live_instances};
pub use model::{Action, Change, ExpiryChange, Fix, Kind, Plan, Summary};
pub use observed::Observed;
pub use teardown::{Op, Step, Teardown, teardown};

#[cfg(test)]
mod tests;
