//! The commands' bodies: thin orchestration of `aws`, `plan` (and later `cluster`, `stack`).
//! Each returns data; the CLI decides how to show it.

pub mod cluster;
pub mod down;
pub mod infra;
mod inventory;
mod plan;
pub mod reap;
pub mod stack;
pub mod status;
pub mod up;

pub use down::{DownReport, down, preview as down_preview};
pub use inventory::{Node, inventory};
pub use plan::plan;
pub use reap::{ReapReport, reap};
pub use status::{Status, status};
pub use up::{UpReport, up};
