//! The infra stage's side effects on AWS: running what `plan` decided. `teardown` runs a
//! [`crate::plan::Teardown`] as it is listed; it decides no order of its own.

pub mod teardown;
