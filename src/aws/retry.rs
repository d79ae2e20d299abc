//! Eventual-consistency retries: exponential backoff with full jitter until a per-step
//! deadline. Throttling and 5xx are retried first inside the SDK (standard mode, see
//! `super::client`), except for creates without an idempotency token: the SDK does not retry
//! those (see `super::client::no_sdk_retry_ec2`) and [`Retry::create_once`] decides, looking
//! for what a lost call created before it sends the create again. A throttle the SDK gave up
//! on (attempts or retry quota spent) is retried here too, until the deadline: so no step gives
//! up on throttling before `timeouts.aws_consistency`.

use std::future::Future;
use std::time::{Duration, Instant};

use super::error::{AwsError, Phase, Verdict, classify};
use crate::config::format_duration;
use crate::reporter::Reporter;

/// A step that ran out of time while AWS kept answering with a retryable error.
#[derive(Debug, thiserror::Error)]
#[error("{step}: gave up after {waited} ({attempts} attempts); last AWS error: {last}")]
pub struct DeadlineExceeded {
    pub step: String,
    pub waited: String,
    pub attempts: u32,
    pub last: AwsError,
}

#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error(transparent)]
    Deadline(#[from] DeadlineExceeded),
    #[error("{step}: {source}")]
    Fatal { step: String, source: AwsError },
}

pub struct Retry<'a> {
    pub step: String,
    pub key: &'a str,
    pub phase: Phase,
    pub deadline: Duration,
    pub reporter: &'a dyn Reporter,
    /// The call carries an idempotency token (or is idempotent by nature): an ambiguous
    /// failure may be retried as is, AWS answers a repeat with the first result.
    pub idempotent: bool,
}

/// What a retried delete ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Now,
    AlreadyGone,
}

impl Deleted {
    /// The outcome word `down` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Deleted::Now => "deleted",
            Deleted::AlreadyGone => "already gone",
        }
    }
}

const BASE: Duration = Duration::from_millis(500);
const CAP: Duration = Duration::from_secs(15);

pub(crate) fn backoff(attempt: u32) -> Duration {
    let exp = BASE.saturating_mul(1u32 << attempt.min(10)).min(CAP);
    // Full jitter, but never below a quarter, so tight loops cannot hammer the API.
    let ms = exp.as_millis() as u64;
    Duration::from_millis(ms / 4 + fastrand::u64(0..=ms * 3 / 4))
}

/// What a create without an idempotency token found when it looked before sending again.
pub enum Found<T> {
    /// Ours (checked by its tags): adopt it.
    Ours(T),
    /// Something by that name or range exists, but it is not this environment's.
    Foreign(String),
    Nothing,
}

impl Retry<'_> {
    /// Marks the step as safe to repeat after an ambiguous failure (token or idempotent call).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// A create that AWS offers no idempotency token for. After an ambiguous failure (5xx,
    /// timeout, dropped connection) or an "already exists" answer (`exists`:
    /// InvalidGroup.Duplicate, EntityAlreadyExists, ...), `find` looks for the resource by its
    /// unique attributes and ownership tags and adopts it. Whether the create may ever be sent
    /// again in this run depends on what stops a duplicate:
    /// - a name-unique resource (`exists` not empty): AWS itself refuses a second one, so after
    ///   two looks a pause apart that found nothing, the create is sent again;
    /// - no unique attribute (a VPC, an internet gateway): a second create would be a
    ///   duplicate, and EC2's tag-filtered reads may lag a create by seconds, so it is never
    ///   sent again: `find` is polled until the step's deadline, then the step fails and the
    ///   next `up` adopts what appeared (or heals an empty duplicate).
    ///
    /// After "already exists" the create is never sent again either. A failed look (a
    /// throttle, a 5xx) is one more pause. Throttling and eventual-consistency errors of the
    /// create are retried as usual. The SDK must not retry `create` on its own
    /// (`client::no_sdk_retry`).
    pub async fn create_once<T, C, CFut, F, FFut>(
        &self,
        exists: &[&str],
        mut create: C,
        mut find: F,
    ) -> anyhow::Result<T>
    where
        C: FnMut() -> CFut,
        CFut: Future<Output = Result<T, AwsError>>,
        F: FnMut() -> FFut,
        FFut: Future<Output = anyhow::Result<Found<T>>>,
    {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match create().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let already = exists.contains(&err.code());
            if err.ambiguous() || already {
                let why = if already { err.code().to_string() } else { format!("ambiguous failure: {err}") };
                tracing::debug!(step = %self.step, "{why}; looking for what the call created");
                self.reporter.update(self.key, &format!("{}: {why}; looking for it by its tags", self.step));
                let may_resend = !exists.is_empty() && !already;
                let mut look = 0u32;
                loop {
                    look += 1;
                    match find().await {
                        Ok(Found::Ours(v)) => {
                            self.reporter
                                .note(&format!("{}: the first attempt had succeeded ({why}); adopted it", self.step));
                            return Ok(v);
                        }
                        Ok(Found::Foreign(what)) => {
                            return Err(RetryError::Fatal {
                                step: format!(
                                    "{}: {what} exists and is not this environment's (its tags differ)",
                                    self.step
                                ),
                                source: err,
                            }
                            .into());
                        }
                        Ok(Found::Nothing) => {}
                        Err(e) => tracing::debug!(step = %self.step, "looking for it failed: {e:#}"),
                    }
                    if may_resend && look >= 2 {
                        break;
                    }
                    let pause = backoff(look);
                    if started.elapsed() + pause > self.deadline {
                        let step = if already {
                            format!(
                                "{}: AWS says it exists, but no resource with this environment's tags was found",
                                self.step
                            )
                        } else {
                            format!(
                                "{}: the create may have been applied ({why}), but nothing with this environment's tags appeared within {}; it is not sent again (that could make a duplicate): run `tagstack up` again, which adopts it once it appears",
                                self.step,
                                format_duration(self.deadline)
                            )
                        };
                        return Err(RetryError::Fatal { step, source: err }.into());
                    }
                    tokio::time::sleep(pause).await;
                }
            } else if !err.throttled()
                && classify(self.phase, err.code(), err.message.as_deref().unwrap_or("")) != Verdict::Retry
            {
                return Err(RetryError::Fatal { step: self.step.clone(), source: err }.into());
            }
            self.pause_or_give_up(started, attempt, err).await?;
        }
    }

    /// Runs `f` until it succeeds, fails fatally, or the deadline passes. On delete, a
    /// NotFound-class error means success (`Deleted::AlreadyGone` via [`Retry::delete`]).
    pub async fn run<T, F, Fut>(&self, mut f: F) -> Result<T, RetryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let err = match f().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let verdict = classify(self.phase, err.code(), err.message.as_deref().unwrap_or(""));
            // A throttle that outlived the SDK's attempts (or its retry quota) was refused, so
            // nothing was applied and any call may be sent again: keep going until the step's
            // deadline rather than give up at the SDK's attempt count. With a token (or an
            // idempotent call) an ambiguous failure may be repeated too: AWS answers a repeat
            // with the first result.
            let repeatable = err.throttled() || (self.idempotent && err.ambiguous());
            if verdict != Verdict::Retry && !repeatable {
                return Err(RetryError::Fatal { step: self.step.clone(), source: err });
            }
            self.pause_or_give_up(started, attempt, err).await?;
        }
    }

    /// Sleeps the backoff of `attempt` before the next one, or gives up with the last error
    /// when that sleep would end past the step's deadline.
    async fn pause_or_give_up(&self, started: Instant, attempt: u32, err: AwsError) -> Result<(), RetryError> {
        let pause = backoff(attempt);
        if started.elapsed() + pause > self.deadline {
            return Err(DeadlineExceeded {
                step: self.step.clone(),
                waited: format_duration(started.elapsed()),
                attempts: attempt,
                last: err,
            }
            .into());
        }
        tracing::debug!(step = %self.step, code = err.code(), attempt, "retrying in {pause:?}");
        self.reporter.update(self.key, &format!("{}: waiting for AWS ({}, attempt {attempt})", self.step, err.code()));
        tokio::time::sleep(pause).await;
        Ok(())
    }

    /// Like [`Retry::run`] for a delete: "already gone" is success.
    pub async fn delete<F, Fut>(&self, mut f: F) -> Result<Deleted, RetryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), AwsError>>,
    {
        let r = self
            .run(|| {
                let fut = f();
                async move {
                    match fut.await {
                        Ok(()) => Ok(Deleted::Now),
                        Err(e) if classify(Phase::Delete, e.code(), "") == Verdict::Gone => Ok(Deleted::AlreadyGone),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..30 {
            let d = backoff(attempt);
            assert!(d <= CAP, "{attempt}: {d:?}");
            let exp = BASE.saturating_mul(1u32 << attempt.min(10)).min(CAP);
            assert!(d >= exp / 4, "{attempt}: {d:?}");
        }
    }
}
