//! The stack stage's pure parts: manifests rendered from `templates/stack/`, the workloads
//! `up` waits for, readiness read from `kubectl get -o json`, and the smoke checks' commands.
//! Nothing here opens a connection; `ops::stack` runs it over `remote::Fleet`.

pub mod readiness;
pub mod render;
pub mod smoke;

pub use render::{Component, Endpoint, Manifest, Workload, WorkloadKind, endpoints, manifests, spark_pi, workloads};

/// How tagstack applies: server-side, owning its fields (so `kubectl edit` drift is taken back).
pub const APPLY: &str = "apply --server-side --force-conflicts --field-manager=tagstack";

#[cfg(test)]
mod tests;
