//! The commands' bodies: every workflow, callable without the CLI. A command is one function
//! taking an [`Env`] and options and returning a typed report; the CLI decides how to show it.
//! Here: which stages of `up` run and in which order (`up`), the Kubernetes minor upgrade
//! between its infra and cluster stages (`upgrade`), the cluster's nodes per provider
//! (`nodes`), the control-plane session (`nodes::on_control_plane`), the infra stage (`infra::apply`,
//! `infra::teardown`), the cluster stage (`cluster`), the stack stage (`stack`), and the
//! read-only and access commands (`status`, `live`, `access`, `plan`, `reap`), and etcd's
//! `backup` and `restore`.

pub mod access;
pub mod advice;
pub mod backup;
pub mod bake;
pub mod cluster;
pub mod down;
mod env;
pub mod infra;
pub(crate) mod inventory;
pub mod kafka;
pub mod live;
pub mod monitoring;
pub mod nodes;
pub mod plan;
pub mod reap;
pub mod replace;
pub mod restore;
pub mod retire;
pub mod stack;
pub mod status;
pub mod up;
pub mod upgrade;

pub use crate::aws::{Aws, Connection};
pub use down::{DownReport, down};
pub use env::Env;
pub use infra::apply::InfraReport;
pub use inventory::{Node, inventory};
pub use plan::plan;
pub use reap::{ReapReport, reap};
pub use status::{Status, status};
pub use up::UpReport;
