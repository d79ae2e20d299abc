//! Eventual-consistency retries: exponential backoff with full jitter until a per-step
//! deadline. Throttling and 5xx are retried inside the SDK (adaptive mode), not here.

use std::future::Future;
use std::time::{Duration, Instant};

use super::error::{AwsError, Phase, Verdict, classify};
use crate::config::format_duration;
use crate::reporter::Reporter;

/// A step that ran out of time while AWS kept answering with a retryable error.
#[derive(Debug, thiserror::Error)]
#[error(
    "{step}: gave up after {waited} ({attempts} attempts); last AWS error: {last}\n  hint: AWS is eventually consistent and this did not settle within timeouts.aws_consistency; run the command again, or raise that timeout"
)]
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

fn backoff(attempt: u32) -> Duration {
    let exp = BASE.saturating_mul(1u32 << attempt.min(10)).min(CAP);
    // Full jitter, but never below a quarter, so tight loops cannot hammer the API.
    let ms = exp.as_millis() as u64;
    Duration::from_millis(ms / 4 + fastrand::u64(0..=ms * 3 / 4))
}

impl Retry<'_> {
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
            if verdict != Verdict::Retry {
                return Err(RetryError::Fatal { step: self.step.clone(), source: err });
            }
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
            self.reporter
                .update(self.key, &format!("{}: waiting for AWS ({}, attempt {attempt})", self.step, err.code()));
            tokio::time::sleep(pause).await;
        }
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
