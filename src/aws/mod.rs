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

use crate::config::{EnvId, TAG_EXPIRES_AT, Timeouts};
use crate::reporter::Reporter;
use error::Phase;
use retry::Retry;

/// What every mutating call needs: the clients, who the environment is (names, ownership
/// tags), its deadlines, the expiry this run tags new resources with, and where to report
/// progress. What to create (CIDRs, the key, the image, instance types, tokens) is passed to
/// each call by the caller: nothing here reads the config.
pub struct Ctx<'a> {
    pub aws: &'a Aws,
    pub id: &'a EnvId,
    pub timeouts: Timeouts,
    /// `tagstack:expires-at` for the resources this run creates (`None`: no expiry tag).
    pub expires_at: Option<&'a str>,
    pub reporter: &'a dyn Reporter,
}

impl<'a> Ctx<'a> {
    /// A context that creates nothing with an expiry (teardown, host keys, `reap`).
    pub fn new(aws: &'a Aws, id: &'a EnvId, timeouts: Timeouts, reporter: &'a dyn Reporter) -> Ctx<'a> {
        Ctx { aws, id, timeouts, expires_at: None, reporter }
    }

    /// Tags what this context creates with the run's expiry.
    pub fn expiring(self, expires_at: Option<&'a str>) -> Ctx<'a> {
        Ctx { expires_at, ..self }
    }

    /// The tags a new resource of `component` is created with: the environment's, plus the
    /// run's expiry.
    pub fn tags(&self, component: &str) -> Vec<(String, String)> {
        let mut tags = self.id.tags(component);
        tags.extend(self.expires_at.map(|e| (TAG_EXPIRES_AT.to_string(), e.to_string())));
        tags
    }

    pub fn retry(&self, step: impl Into<String>, key: &'a str, phase: Phase) -> Retry<'a> {
        Retry {
            step: step.into(),
            key,
            phase,
            deadline: self.timeouts.aws_consistency,
            reporter: self.reporter,
            idempotent: false,
        }
    }
}
