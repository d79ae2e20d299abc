//! The stack stage's pure parts. One module per component (`kafka.rs`, `cassandra.rs`,
//! `spark.rs`) owns that component's manifest, workloads, endpoint and smoke check behind the
//! [`Part`] trait (`render.rs`, with what the templates share); this file maps `[stack]` to the
//! enabled components, in apply order, and is the one walk over them. `readiness.rs` reads
//! `kubectl get -o json` (rollout rules, pods, events); `smoke.rs` judges a check's steps;
//! `netpol.rs` decides which traffic the components' pods accept and send.
//! Nothing here opens a connection; `ops::stack` runs it over `remote::Fleet`.

pub mod cassandra;
pub mod cassandra_ring;
pub mod kafka;
pub mod model;
pub mod netpol;
pub mod readiness;
pub mod render;
pub mod smoke;
pub mod spark;
pub mod tls;

use anyhow::Result;

pub use model::{Component, DisruptionCheck, Endpoint, Manifest, OnePerNode, Workload, WorkloadKind};
pub use render::{APPLY, Part};

use crate::config::Spec;

/// Every enabled component, in apply order (Kafka, Cassandra, Spark): the only place that
/// turns `[stack]` into components.
pub fn components(spec: &Spec) -> Vec<Box<dyn Part + '_>> {
    let parts: [Option<Box<dyn Part + '_>>; 3] = [
        kafka::Kafka::of(spec).map(|p| Box::new(p) as Box<dyn Part>),
        cassandra::Cassandra::of(spec).map(|p| Box::new(p) as Box<dyn Part>),
        spark::Spark::of(spec).map(|p| Box::new(p) as Box<dyn Part>),
    ];
    parts.into_iter().flatten().collect()
}

/// The StatefulSets that need one worker per replica, in apply order (`plan::placement`
/// judges them against the configured workers).
pub fn one_per_node(spec: &Spec) -> Vec<OnePerNode> {
    components(spec).iter().flat_map(|c| c.one_per_node()).collect()
}

/// Every component's manifest, in apply order, each ending with its NetworkPolicies
/// (`netpol.rs`: after the namespace they live in, in the same apply).
pub fn manifests(spec: &Spec) -> Result<Vec<Manifest>> {
    components(spec).iter().map(|c| with_policies(spec, c.as_ref())).collect()
}

/// One component's manifest followed by its NetworkPolicies.
fn with_policies(spec: &Spec, c: &dyn Part) -> Result<Manifest> {
    let mut m = c.manifest()?;
    if !m.content.ends_with('\n') {
        m.content.push('\n');
    }
    m.content.push_str(&netpol::render(spec, c.component()));
    Ok(m)
}

/// Cassandra's manifest (as [`manifests`] renders it) for how `up` starts its ring
/// (`cassandra_ring::decide`); [`manifests`] gives [`cassandra_ring::STEADY`]'s.
pub fn cassandra_manifest(spec: &Spec, ring: &cassandra_ring::Plan) -> Result<Option<Manifest>> {
    cassandra::Cassandra::of(spec).map(|c| with_policies(spec, &c.with_ring(ring.clone()))).transpose()
}

/// The StatefulSets and Deployments `up` waits for, in apply order.
pub fn workloads(spec: &Spec) -> Vec<Workload> {
    components(spec).iter().flat_map(|c| c.workloads()).collect()
}

/// Client endpoints: Kafka bootstrap servers, Cassandra contact points, Spark's master URL
/// (or the API server for spark-submit when there is no standalone master).
pub fn endpoints(spec: &Spec) -> Vec<Endpoint> {
    components(spec).iter().map(|c| c.endpoint()).collect()
}

/// The files the smoke checks apply themselves (uploaded by `smoke`, written by `render`).
pub fn smoke_manifests(spec: &Spec) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for c in components(spec) {
        out.extend(c.smoke_manifests()?);
    }
    Ok(out)
}

/// The smoke check of every enabled component. `nonce` makes names and payloads unique per
/// run, so a message or row left by an earlier run can never pass for this one.
pub fn smoke_checks(spec: &Spec, kubectl: &str, stack_dir: &str, nonce: &str) -> Vec<smoke::Check> {
    components(spec).iter().map(|c| c.smoke(kubectl, stack_dir, nonce)).collect()
}

/// The scripts `up` runs on the control plane before it applies the manifests, in apply order.
pub fn before_apply(spec: &Spec, kubectl: &str, stack_dir: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for c in components(spec) {
        out.extend(c.before_apply(kubectl, stack_dir)?);
    }
    Ok(out)
}

/// The scripts `up` runs on the control plane once every workload is ready, in apply order.
pub fn after_ready(spec: &Spec, kubectl: &str, stack_dir: &str) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for c in components(spec) {
        out.extend(c.after_ready(kubectl, stack_dir)?);
    }
    Ok(out)
}

/// Each enabled component's check before one of its pods' nodes is drained.
pub fn disruption_checks(spec: &Spec, kubectl: &str) -> Vec<DisruptionCheck> {
    components(spec).iter().filter_map(|c| c.disruption_check(kubectl)).collect()
}

#[cfg(test)]
mod tests;
