//! tagstack: an environment file in; AWS infrastructure, a kubeadm Kubernetes cluster and a
//! data stack (Kafka, Cassandra, Spark) out, with AWS tags as the only state.
//!
//! Data flows `config` (file -> [`config::Spec`]) -> `aws::discover` (-> [`plan::Observed`])
//! -> `plan::diff_infra` (-> [`plan::InfraPlan`], pure; [`plan::Plan`] is its flat view)
//! -> `ops::infra::apply` through `aws`; then `ops::nodes` -> `ops::cluster` (kubeadm over
//! `remote`, scripts from `cluster`) -> `ops::stack` (manifests from `stack`). `ops::up` runs
//! the stages in order (an upgrade by one minor before the cluster stage, `ops::upgrade`; the
//! workers a scale-down or `replace` removes after it, `ops::retire`); `down` runs
//! `plan::teardown`'s steps (`ops::infra::teardown`); `backup` snapshots etcd to S3 and
//! `restore` puts one back on the control plane (`ops::restore`, the script in `cluster::etcd`).
//! `cli` resolves flags into settings and calls one `ops` function per command; `ui` is the
//! only module that prints; libraries report progress through [`reporter::Reporter`]. Lower
//! layers' errors state facts; `ops::advice` adds what to do for the command that ran, and
//! [`hint::render`] shows both. See ARCHITECTURE.md.

pub mod aws;
pub mod bake;
pub mod base64;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod hint;
pub mod known_hosts;
pub mod monitoring;
pub mod ops;
pub mod plan;
pub mod poll;
pub mod remote;
pub mod reporter;
pub mod shell;
pub mod stack;
pub mod templates;
#[cfg(test)]
mod testing;
pub mod ui;
