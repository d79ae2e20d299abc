//! The one integration-test binary: runs the real `tagstack` binary against moto (real AWS
//! wire protocol) through a recording, fault-injecting proxy. Started by `scripts/test`.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod aws_end_to_end;
mod bake_build;
mod bake_images;
mod bench_critical_path;
mod bench_throttle;
mod cli_conventions;
mod cli_pipes;
mod cluster_bootstrap;
mod cluster_endpoint;
mod cluster_prepare;
mod cluster_recovery;
mod cluster_restore;
mod cluster_upgrade;
mod expiry_reap;
mod iam_enforced;
mod infra_backup;
mod infra_exactly_once;
mod infra_faults;
mod infra_imds;
mod infra_lifecycle;
mod infra_lookalike;
mod infra_random;
mod infra_safety;
mod monitoring_content;
mod monitoring_deploy;
mod ops_direct;
mod stack_auth;
mod stack_checkov;
mod stack_cleanup;
mod stack_deploy;
mod stack_drain;
mod stack_policy_upgrade;
mod stack_render;
mod stack_ring;
mod stack_shrink;
mod stack_teardown;
