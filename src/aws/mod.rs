//! The only code that talks to AWS: discovery by tags, create/modify/delete per resource kind,
//! the error classifier and eventual-consistency retries. Reports progress through
//! [`Reporter`]; never prints. It is told who the environment is ([`EnvId`]) and what to
//! create; it reads no config and decides no ClientToken and no host key (the caller passes
//! both: `plan::desired`'s tokens, `cluster::console`'s parser).

pub mod bake;
mod client;
mod discover;
pub mod error;
mod expiring;
mod iam;
mod instances;
mod leftovers;
mod network;
pub mod retry;
mod s3;
mod tags;

pub use client::{Aws, Connection};
pub use discover::{backup_bucket, discover, discover_instances};
pub use expiring::{Expiring, expiring};
pub use iam::{
    add_role_to_profile, create_profile, create_role, delete_empty_profile, delete_policy, delete_profile, delete_role,
    delete_stripped_role, empty_profile, put_policy, remove_role_from_profile, strip_role,
};
pub use instances::{
    Ami, HostKeyReader, LaunchTarget, console_output, launch, lower_hop_limit, mark_retiring, recorded_host_keys,
    resolve_ami, start, terminate, wait_host_keys, wait_running, wait_terminated,
};
pub use leftovers::{delete_network_interface, delete_volume};
pub use network::*;
pub use s3::{
    RETENTION_RULE, SnapshotObject, account_id, configure_bucket, create_bucket, delete_bucket, get_snapshot,
    list_snapshots, put_snapshot, set_bucket_expiry,
};

use crate::config::{EnvId, Timeouts};
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
    /// How [`Ctx::delete`] judges errors: [`Phase::Delete`], or [`Phase::Heal`] for `up`'s
    /// deletes of empty duplicates ([`Ctx::healing`]).
    delete_phase: Phase,
}

impl<'a> Ctx<'a> {
    /// A context that creates nothing with an expiry (teardown, host keys, `reap`).
    pub fn new(aws: &'a Aws, id: &'a EnvId, timeouts: Timeouts, reporter: &'a dyn Reporter) -> Ctx<'a> {
        Ctx { aws, id, timeouts, expires_at: None, reporter, delete_phase: Phase::Delete }
    }

    /// The same context for deleting empty duplicates: a DependencyViolation is final at once
    /// ([`Phase::Heal`]).
    pub fn healing(&self) -> Ctx<'a> {
        Ctx { delete_phase: Phase::Heal, ..*self }
    }

    /// Tags what this context creates with the run's expiry.
    pub fn expiring(self, expires_at: Option<&'a str>) -> Ctx<'a> {
        Ctx { expires_at, ..self }
    }

    /// The tags a new resource of `component` is created with: the environment's, plus the
    /// run's expiry.
    pub fn tags(&self, component: &str) -> Vec<(String, String)> {
        tags::create_tags(self.id, self.expires_at, component)
    }

    /// A delete retried until `timeouts.aws_consistency` ([`Retry::delete`]); answers the
    /// outcome word `down` reports: "deleted", or "already gone".
    pub async fn delete<F, Fut>(&self, step: impl Into<String>, key: &'a str, call: F) -> anyhow::Result<&'static str>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), error::AwsError>>,
    {
        Ok(self.retry(step, key, self.delete_phase).delete(call).await?.as_str())
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

/// Runs `calls` at once; once every one has ended, fails with the first error (in order), so
/// one failure never stops the others half-way.
pub(crate) async fn all<T, F>(calls: impl IntoIterator<Item = F>) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    for r in futures_util::future::join_all(calls).await {
        r?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::all;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("a runtime").block_on(f)
    }

    #[test]
    fn all_runs_every_call_and_answers_the_first_error_in_order() {
        let ran = std::sync::Mutex::new(Vec::new());
        let calls = [Ok(1), Err("second"), Err("third"), Ok(4)].map(|r| {
            let ran = &ran;
            async move {
                let n = match r {
                    Ok(n) => n,
                    Err("second") => 2,
                    Err(_) => 3,
                };
                ran.lock().expect("lock").push(n);
                r.map_err(anyhow::Error::msg)
            }
        });
        let err = block_on(all(calls)).expect_err("two calls failed");
        assert_eq!(err.to_string(), "second");
        let mut ran = ran.into_inner().expect("lock");
        ran.sort_unstable();
        assert_eq!(ran, [1, 2, 3, 4], "a failure stops none of the others");
        assert!(block_on(all([async { anyhow::Ok(()) }])).is_ok());
        assert!(block_on(all(Vec::<std::future::Ready<anyhow::Result<()>>>::new())).is_ok());
    }
}
