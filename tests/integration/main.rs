//! The one integration-test binary: runs the real `tagstack` binary against moto (real AWS
//! wire protocol) through a recording, fault-injecting proxy. Started by `scripts/test`.

mod support;

mod infra_faults;
mod infra_lifecycle;
mod infra_safety;
