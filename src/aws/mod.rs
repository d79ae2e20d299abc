//! The only code that talks to AWS: discovery by tags, create/modify/delete per resource kind,
//! the error classifier and eventual-consistency retries. Reports progress through
//! [`Reporter`]; never prints.

mod client;
mod discover;
pub mod error;
mod expiring;
mod iam;
mod instances;
mod leftovers;
mod network;
pub mod retry;
mod tags;

pub use client::{Aws, Connection};
pub use discover::{discover, discover_instances};
pub use expiring::{Expiring, expiring};
pub use iam::{
    add_role_to_profile, create_profile, create_role, delete_empty_profile, delete_policy, delete_profile, delete_role,
    delete_stripped_role, empty_profile, put_policy, remove_role_from_profile, strip_role,
};
pub use instances::{
    Ami, LaunchTarget, console_host_key, launch, recorded_host_keys, resolve_ami, start, terminate, wait_host_keys,
    wait_running, wait_terminated,
};
pub use leftovers::{delete_network_interface, delete_volume};
pub use network::*;

use crate::config::Spec;
use crate::reporter::Reporter;
use error::Phase;
use retry::Retry;

/// What every mutating call needs: the clients, the spec (names, tags, deadlines) and where
/// to report progress.
pub struct Ctx<'a> {
    pub aws: &'a Aws,
    pub spec: &'a Spec,
    pub reporter: &'a dyn Reporter,
}

impl<'a> Ctx<'a> {
    pub fn retry(&self, step: impl Into<String>, key: &'a str, phase: Phase) -> Retry<'a> {
        Retry {
            step: step.into(),
            key,
            phase,
            deadline: self.spec.timeouts.aws_consistency,
            reporter: self.reporter,
            idempotent: false,
        }
    }
}
