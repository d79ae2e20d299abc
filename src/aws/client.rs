//! Builds the EC2 and IAM clients from the standard AWS chain plus tagstack's settings.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};

/// How to reach AWS, resolved from flags, environment and config before any call.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// `None`: the standard chain (AWS_REGION, the profile's region).
    pub region: Option<String>,
    pub profile: Option<String>,
    /// From the config file; `AWS_ENDPOINT_URL` in the environment wins over it.
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Aws {
    /// The region in effect (from the config, a flag or the standard chain).
    pub region: Option<String>,
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    /// The backup bucket and its snapshots (`aws::s3`).
    pub s3: aws_sdk_s3::Client,
    /// GetCallerIdentity only: the account id in the backup bucket's name.
    pub sts: aws_sdk_sts::Client,
}

impl Aws {
    pub async fn connect(conn: &Connection) -> Aws {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = &conn.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(p) = &conn.profile {
            loader = loader.profile_name(p);
        }
        // Throttling and 5xx are retried by the SDK first: standard mode with more attempts
        // than its default 3, unless the user chose through the standard variables (an
        // explicit retry_config would override them).
        if std::env::var_os("AWS_RETRY_MODE").is_none() && std::env::var_os("AWS_MAX_ATTEMPTS").is_none() {
            loader = loader.retry_config(default_retry_config());
        }
        // The SDK's default bounds only the connect (3.1 s): an accepted connection that goes
        // silent would hang a step past its deadline. One attempt of any EC2/IAM call tagstack
        // makes answers in seconds; one that has not in a minute is an ambiguous failure
        // (handled like a lost answer), and the retry loops see it.
        loader = loader.timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_millis(3100))
                .operation_attempt_timeout(std::time::Duration::from_secs(60))
                .build(),
        );
        let env_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some();
        if !env_endpoint && let Some(url) = &conn.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let region = shared.region().map(ToString::to_string);
        // A custom endpoint (moto, LocalStack, a VPC endpoint URL) is one host name: the
        // bucket goes in the path. AWS itself gets virtual-hosted-style requests (the SDK's
        // default), which path-style is deprecated for.
        let path_style = env_endpoint || conn.endpoint_url.is_some();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(path_style).build(),
        );
        Aws {
            region,
            ec2: aws_sdk_ec2::Client::new(&shared),
            iam: aws_sdk_iam::Client::new(&shared),
            s3,
            sts: aws_sdk_sts::Client::new(&shared),
        }
    }
}

/// The SDK's retry attempts per call in tagstack's default mode (docs/benchmarks.md, "Throttling").
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// Standard mode, [`DEFAULT_MAX_ATTEMPTS`] attempts. Not adaptive: adaptive mode's client-side
/// rate limiter (aws-smithy-runtime 1.16 `client_rate_limiter.rs`) is switched on by the first
/// throttle, drops to its floor of 0.5 requests/s (`MIN_FILL_RATE`) when the measured send rate
/// is low, as a CLI's is, and charges a throttled retry 10 tokens (`RETRY_TIMEOUT_COST`): a
/// 20 s sleep (capped at `max_backoff`) per throttle and 2 s per request after it, shared by
/// every call of the process. Standard mode sleeps `rand(0..1) * 1 s * 2^(attempt-1)`, at most
/// 20 s (`strategy/standard.rs`, `calculate_exponential_backoff`), per call only. With 25% of
/// the calls throttled the standard default finished `plan`, `up --only infra` and `down` in
/// seconds where adaptive took minutes (docs/benchmarks.md); 10 attempts make giving up on
/// one call at that rate a one-in-a-million event (0.25^10), and tagstack's own loops retry a
/// throttle the SDK gave up on until `timeouts.aws_consistency` anyway (`super::retry`,
/// `super::discover::while_throttled`; the instance waiters wait again).
pub fn default_retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(DEFAULT_MAX_ATTEMPTS)
}

/// Per-operation override for creates AWS offers no idempotency token for (CreateVpc,
/// CreateSubnet, CreateInternetGateway, CreateSecurityGroup, ImportKeyPair, IAM CreateRole and
/// CreateInstanceProfile): the SDK must not send them twice on its own. Its retry of a request
/// whose answer was lost (5xx, timeout, closed connection) would create a second VPC or gateway;
/// [`super::retry::Retry::create_once`] retries them instead, after looking for what the lost
/// call created. One attempt = retries disabled (aws-smithy-types `RetryConfig::disabled`:
/// "standard" with max_attempts 1; the standard strategy reads the RetryConfig of the
/// operation's config bag on every attempt, so this override wins over the client's).
pub fn no_sdk_retry_ec2() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled())
}

/// [`no_sdk_retry_ec2`] for IAM.
pub fn no_sdk_retry_iam() -> aws_sdk_iam::config::Builder {
    aws_sdk_iam::config::Builder::default().retry_config(RetryConfig::disabled())
}
