//! One classifier for every AWS error: retry (eventual consistency), gone (already deleted),
//! or fatal. Plus the conversion of SDK errors into [`AwsError`], which keeps the AWS code, and
//! the typed facts (`NoImage`, `NotRunning`, `NoHostKeys`) the command layer recognises to add its advice.

use std::fmt;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// An AWS call that failed, with the operation and AWS's own error code.
#[derive(Debug)]
pub struct AwsError {
    pub operation: String,
    pub code: Option<String>,
    pub message: Option<String>,
    /// Whether the request may have been applied although it failed.
    pub outcome: Outcome,
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// What a failed call tells us about its side effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// AWS answered with an error that means the request was refused (4xx, throttling):
    /// nothing was applied.
    Refused,
    /// A 5xx, a timeout, a dropped connection or an unreadable answer: the request may have
    /// been applied. A create without an idempotency token must not be re-sent before the
    /// resource is looked for.
    Ambiguous,
    /// Throttled: refused, and worth retrying after a pause.
    Throttled,
}

/// The throttling codes of the SDK's own retry classifier (aws-runtime 1.10
/// `retries::classifiers::THROTTLING_ERRORS`): AWS refused the request before doing anything.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// One of the SDK's throttling codes (see [`THROTTLING`]).
pub fn is_throttling_code(code: &str) -> bool {
    THROTTLING.contains(&code)
}

/// Ambiguity of an SDK failure: only a service error below 500 (or a throttle) proves that
/// the request was not applied.
fn outcome_of<E>(e: &SdkError<E, HttpResponse>, code: Option<&str>) -> Outcome {
    if code.is_some_and(|c| THROTTLING.contains(&c)) {
        return Outcome::Throttled;
    }
    match e {
        SdkError::ConstructionFailure(_) => Outcome::Refused,
        SdkError::ServiceError(s) if s.raw().status().as_u16() < 500 => Outcome::Refused,
        // 5xx, timeouts, dispatch failures (e.g. a connection closed before the answer) and
        // answers that could not be read.
        _ => Outcome::Ambiguous,
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, ": {c}: {m}"),
            (Some(c), None) => write!(f, ": {c}"),
            // No AWS code: a transport or credentials problem; show the whole chain.
            _ => {
                let mut src: Option<&(dyn std::error::Error + 'static)> = Some(self.source.as_ref());
                while let Some(e) = src {
                    write!(f, ": {e}")?;
                    src = e.source();
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for AwsError {}

impl AwsError {
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    pub fn ambiguous(&self) -> bool {
        self.outcome == Outcome::Ambiguous
    }

    pub fn throttled(&self) -> bool {
        self.outcome == Outcome::Throttled
    }
}

/// No image matches the config's `ami` in the region (facts only: `ops::advice` says what to do).
#[derive(Debug, thiserror::Error)]
#[error("no image matches {what} in {region}")]
pub struct NoImage {
    pub what: String,
    pub region: String,
}

/// Instances that did not reach `running` (the waiter failed or ran out of time); the cause
/// follows in the chain.
#[derive(Debug, thiserror::Error)]
#[error("waiting for {instances} to run (deadline {deadline})")]
pub struct NotRunning {
    /// The instance ids, comma-separated.
    pub instances: String,
    pub deadline: String,
    #[source]
    pub source: anyhow::Error,
}

/// Instances whose console showed no SSH host keys before the deadline and that carry no
/// recorded key either.
#[derive(Debug, thiserror::Error)]
#[error(
    "no SSH host keys in the console output of {instances} after {waited}, and no {tag} tag on them: tagstack will not connect to a node whose key it cannot verify",
    tag = crate::config::TAG_HOST_KEY
)]
pub struct NoHostKeys {
    /// The instance ids, comma-separated.
    pub instances: String,
    pub waited: String,
}

/// Attaches the operation name to an SDK result.
pub trait AwsResultExt<T> {
    fn op(self, operation: impl Into<String>) -> Result<T, AwsError>;
}

impl<T, E> AwsResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn op(self, operation: impl Into<String>) -> Result<T, AwsError> {
        self.map_err(|e| {
            let code = e.code().map(str::to_string);
            AwsError {
                operation: operation.into(),
                outcome: outcome_of(&e, code.as_deref()),
                message: e.message().map(str::to_string),
                code,
                source: Box::new(e),
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Create,
    Delete,
    /// The delete of an empty duplicate `up` heals (`plan::diff`'s rule): as [`Phase::Delete`],
    /// except that DependencyViolation is final at once. Discovery found nothing of the
    /// environment in the duplicate and `up` deletes nothing in it first, so what AWS refuses
    /// for is something tagstack does not own (an untagged subnet or network interface), and
    /// waiting does not make it go.
    Heal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Eventual consistency: the same call will succeed later.
    Retry,
    /// The thing is already gone (only on delete).
    Gone,
    Fatal,
}

/// The one place that decides what an AWS error code means for us.
pub fn classify(phase: Phase, code: &str, message: &str) -> Verdict {
    let not_found = code.ends_with(".NotFound") || code == "NoSuchEntity" || code == "InvalidKeyPair.NotFound";
    let phase = match phase {
        Phase::Heal if code == "DependencyViolation" => return Verdict::Fatal,
        Phase::Heal => Phase::Delete,
        other => other,
    };
    match phase {
        Phase::Delete if not_found => Verdict::Gone,
        // A retried DetachInternetGateway whose first attempt went through (lost answer).
        Phase::Delete if code == "Gateway.NotAttached" => Verdict::Gone,
        // A deregistered image ("InvalidAMIID.Unavailable: The specified AMI has been
        // deregistered or is otherwise unavailable", EC2 API reference, "Error codes").
        Phase::Delete if code == "InvalidAMIID.Unavailable" => Verdict::Gone,
        Phase::Delete
            if matches!(
                code,
                "DependencyViolation"
                    | "DeleteConflict"
                    | "IncorrectState"
                    | "VolumeInUse"
                    | "InvalidNetworkInterface.InUse"
                    // A snapshot whose image is still being deregistered.
                    | "InvalidSnapshot.InUse"
                    | "InvalidInstanceID.Malformed"
            ) =>
        {
            if code == "InvalidInstanceID.Malformed" {
                Verdict::Fatal
            } else {
                Verdict::Retry
            }
        }
        // Right after a create, other calls may not see the new id yet; new instance
        // profiles take seconds to reach EC2.
        Phase::Create if not_found => Verdict::Retry,
        Phase::Create if code == "InvalidParameterValue" && message.contains("Instance Profile") => Verdict::Retry,
        Phase::Create if code == "InvalidParameterValue" && message.contains("iamInstanceProfile") => Verdict::Retry,
        _ if code == "IncorrectInstanceState" => Verdict::Retry,
        _ => Verdict::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_consistency_errors() {
        assert_eq!(classify(Phase::Create, "InvalidVpcID.NotFound", ""), Verdict::Retry);
        assert_eq!(classify(Phase::Create, "NoSuchEntity", ""), Verdict::Retry);
        assert_eq!(
            classify(
                Phase::Create,
                "InvalidParameterValue",
                "Value (x) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
            ),
            Verdict::Retry
        );
        assert_eq!(classify(Phase::Create, "InvalidParameterValue", "bad cidr"), Verdict::Fatal);
        assert_eq!(classify(Phase::Create, "UnauthorizedOperation", ""), Verdict::Fatal);
        assert_eq!(classify(Phase::Delete, "DependencyViolation", ""), Verdict::Retry);
        assert_eq!(classify(Phase::Delete, "DeleteConflict", ""), Verdict::Retry);
        assert_eq!(classify(Phase::Delete, "InvalidSubnetID.NotFound", ""), Verdict::Gone);
        assert_eq!(classify(Phase::Delete, "NoSuchEntity", ""), Verdict::Gone);
        assert_eq!(classify(Phase::Delete, "AccessDenied", ""), Verdict::Fatal);
        assert_eq!(classify(Phase::Delete, "Gateway.NotAttached", ""), Verdict::Gone);
        assert_eq!(classify(Phase::Create, "DependencyViolation", ""), Verdict::Fatal);
        // Healing a duplicate: something tagstack does not own holds it; waiting is no use.
        assert_eq!(classify(Phase::Heal, "DependencyViolation", ""), Verdict::Fatal);
        assert_eq!(classify(Phase::Heal, "InvalidVpcID.NotFound", ""), Verdict::Gone);
        assert_eq!(classify(Phase::Heal, "IncorrectState", ""), Verdict::Retry);
    }
}
