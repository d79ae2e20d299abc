//! The integration harness: a per-test environment (unique project name, temp config dir,
//! a recording fault proxy in front of the shared moto server) and a small fluent builder
//! that runs the real `tagstack` binary. moto is started by `scripts/test`, which exports
//! TAGSTACK_TEST_MOTO_URL; the harness refuses anything that is not loopback, so a test can
//! never reach real AWS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod bed;
pub mod decoys;
pub mod fault_proxy;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_ec2::types::Filter;
pub use fault_proxy::{FaultProxy, Rule};

pub const REGION: &str = "eu-west-3";
/// The account id moto answers GetCallerIdentity with (moto's `DEFAULT_ACCOUNT_ID`).
pub const MOTO_ACCOUNT: &str = "123456789012";
pub const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB it@tagstack";

/// The emulator's URL, checked to be loopback.
pub fn moto_url() -> String {
    let url = std::env::var("TAGSTACK_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "TAGSTACK_TEST_MOTO_URL is not set: these tests need the AWS emulator; run `scripts/test` (it starts moto)"
        )
    });
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "refusing to test against {url}: only a loopback emulator is allowed"
    );
    url
}

/// The second emulator, on which a test turns IAM enforcement on (`iam_enforced.rs`); the
/// switch is per server, so it never shares one with the other tests. `scripts/test` starts
/// it and exports TAGSTACK_TEST_MOTO_IAM_URL; loopback only, as [`moto_url`].
pub fn moto_iam_url() -> String {
    let url = std::env::var("TAGSTACK_TEST_MOTO_IAM_URL").unwrap_or_else(|_| {
        panic!(
            "TAGSTACK_TEST_MOTO_IAM_URL is not set: this test needs a moto server of its own (IAM enforcement is per server); run `scripts/test` (it starts one)"
        )
    });
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "refusing to test against {url}: only a loopback emulator is allowed"
    );
    assert_ne!(
        Some(&url),
        std::env::var("TAGSTACK_TEST_MOTO_URL").ok().as_ref(),
        "the IAM test needs its own moto server"
    );
    url
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One isolated environment: its own project name, config file and proxy.
pub struct TestEnv {
    /// The emulator behind the proxy and the direct clients.
    pub moto: String,
    pub project: String,
    pub environment: String,
    pub dir: tempfile::TempDir,
    pub proxy: FaultProxy,
    pub rt: tokio::runtime::Runtime,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit {code}\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Builder for one run of the binary.
pub struct Tagstack<'a> {
    env: &'a TestEnv,
    args: Vec<String>,
    with_config: bool,
    /// Applied after the harness's defaults: Some = set, None = remove.
    envs: Vec<(String, Option<String>)>,
}

impl<'a> Tagstack<'a> {
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }

    /// Set an environment variable of the run (after the harness's defaults).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.to_string(), Some(v.to_string())));
        self
    }

    /// Remove a variable the harness sets, e.g. `AWS_RETRY_MODE` to run with tagstack's default.
    pub fn env_remove(mut self, k: &str) -> Self {
        self.envs.push((k.to_string(), None));
        self
    }

    /// Do not pass `-c <the test's config>` (for `reap`, `init`, or another `-c`).
    pub fn without_config(mut self) -> Self {
        self.with_config = false;
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagstack"));
        if self.with_config {
            cmd.arg("-c").arg(self.env.config_path());
        }
        cmd.args(&self.args);
        // The environment's local files (.tagstack/) go into the test's own directory.
        cmd.current_dir(self.env.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("AWS_ENDPOINT_URL", self.env.proxy.url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // Standard mode with a short budget: throttling tests stay fast, and this is
            // how a user would tune it too.
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "3")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("CI", "true")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy");
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    pub fn run(self) -> Run {
        let out: Output = self.command().output().expect("spawning tagstack");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn spawn(self) -> Child {
        self.command().spawn().expect("spawning tagstack")
    }
}

impl TestEnv {
    /// `name` must be short: it becomes part of the project name (`<name><pid>x<n>`).
    pub fn new(name: &str) -> TestEnv {
        Self::new_on(name, &moto_url())
    }

    /// [`TestEnv::new`] on another emulator (`moto_iam_url`).
    pub fn new_on(name: &str, moto: &str) -> TestEnv {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id() % 10_000;
        Self::in_project(&format!("{name}{pid}x{n}"), "ci", moto)
    }

    /// Another environment of this one's project.
    pub fn sibling(&self, environment: &str) -> TestEnv {
        Self::in_project(&self.project, environment, &self.moto)
    }

    fn in_project(project: &str, environment: &str, moto: &str) -> TestEnv {
        let project = project.to_string();
        assert!(project.len() <= 24, "project name {project} too long; shorten the test name");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id_ed25519.pub"), format!("{PUBLIC_KEY}\n")).unwrap();
        let proxy = FaultProxy::start(moto);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let env = TestEnv { moto: moto.to_string(), project, environment: environment.into(), dir, proxy, rt };
        env.write_config(2, "");
        env
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("env.toml")
    }

    /// Writes the environment file with `workers` workers plus `extra` TOML appended.
    pub fn write_config(&self, workers: u32, extra: &str) {
        let text = format!(
            r#"project = "{project}"
environment = "{environment}"
region = "{REGION}"
admin_cidrs = ["198.51.100.7/32"]

[network]
vpc_cidr = "10.61.0.0/16"

[[network.subnets]]
cidr = "10.61.1.0/24"
availability_zone = "{REGION}a"

[ssh]
public_key = "id_ed25519.pub"

[ami]
owner = "099720109477"
name = "ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*"

[control_plane]
instance_type = "t3.large"

[workers]
count = {workers}
instance_type = "t3.large"

[timeouts]
aws_consistency = "20s"
instances_running = "60s"
{extra}"#,
            project = self.project,
            environment = self.environment,
        );
        let mut f = std::fs::File::create(self.config_path()).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    pub fn tagstack(&self) -> Tagstack<'_> {
        Tagstack { env: self, args: Vec::new(), with_config: true, envs: Vec::new() }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// SDK clients that talk to moto directly (not through the proxy), to set up decoys and
    /// to check the account independently of tagstack's own discovery.
    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
                .region(aws_sdk_ec2::config::Region::new(REGION))
                .endpoint_url(&self.moto)
                .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
                .build(),
        )
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::Config::builder()
                .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
                .region(aws_sdk_iam::config::Region::new("us-east-1"))
                .endpoint_url(&self.moto)
                .credentials_provider(aws_sdk_iam::config::Credentials::new("testing", "testing", None, None, "test"))
                .build(),
        )
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new(REGION))
                .endpoint_url(&self.moto)
                .force_path_style(true)
                .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
                .build(),
        )
    }

    /// The environment's backup bucket name in moto's account (`config::EnvId::backup_bucket`).
    pub fn backup_bucket(&self) -> String {
        format!("tagstack-{}-{}-{MOTO_ACCOUNT}", self.project, self.environment)
    }

    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn owner_filters(&self) -> Vec<Filter> {
        vec![
            Filter::builder().name("tag:tagstack:project").values(&self.project).build(),
            Filter::builder().name("tag:tagstack:env").values(&self.environment).build(),
        ]
    }

    /// Counts of what the account holds with this environment's tags, read directly.
    pub fn owned_counts(&self) -> Counts {
        let ec2 = self.ec2();
        let iam = self.iam();
        let f = self.owner_filters();
        self.block(async {
            let vpcs = ec2.describe_vpcs().set_filters(Some(f.clone())).send().await.unwrap().vpcs().len();
            let subnets = ec2.describe_subnets().set_filters(Some(f.clone())).send().await.unwrap().subnets().len();
            let igws = ec2
                .describe_internet_gateways()
                .set_filters(Some(f.clone()))
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len();
            let rtbs =
                ec2.describe_route_tables().set_filters(Some(f.clone())).send().await.unwrap().route_tables().len();
            let sgs = ec2
                .describe_security_groups()
                .set_filters(Some(f.clone()))
                .send()
                .await
                .unwrap()
                .security_groups()
                .len();
            let keys = ec2.describe_key_pairs().set_filters(Some(f.clone())).send().await.unwrap().key_pairs().len();
            let mut live = f.clone();
            live.push(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(vec!["pending".into(), "running".into(), "stopping".into(), "stopped".into()]))
                    .build(),
            );
            let instances = ec2
                .describe_instances()
                .set_filters(Some(live))
                .send()
                .await
                .unwrap()
                .reservations()
                .iter()
                .map(|r| r.instances().len())
                .sum();
            let prefix = format!("tagstack-{}-{}-", self.project, self.environment);
            let mut roles = 0;
            for r in
                iam.list_roles().send().await.unwrap().roles().iter().filter(|r| r.role_name().starts_with(&prefix))
            {
                let tags = iam.list_role_tags().role_name(r.role_name()).send().await.unwrap();
                let env_tag = tags.tags().iter().find(|t| t.key() == "tagstack:env").map(|t| t.value().to_string());
                roles += usize::from(env_tag.as_deref() == Some(self.environment.as_str()));
            }
            // By tags too: a look-alike environment's (`ci-2` beside `ci`) share the prefix.
            let mut profiles = 0;
            for p in iam
                .list_instance_profiles()
                .send()
                .await
                .unwrap()
                .instance_profiles()
                .iter()
                .filter(|p| p.instance_profile_name().starts_with(&prefix))
            {
                let got =
                    iam.get_instance_profile().instance_profile_name(p.instance_profile_name()).send().await.unwrap();
                let tags = got.instance_profile().map(|p| p.tags()).unwrap_or_default();
                let env_tag = tags.iter().find(|t| t.key() == "tagstack:env").map(|t| t.value());
                profiles += usize::from(env_tag == Some(self.environment.as_str()));
            }
            Counts { vpcs, subnets, igws, rtbs, sgs, keys, instances, roles, profiles }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub vpcs: usize,
    pub subnets: usize,
    pub igws: usize,
    pub rtbs: usize,
    pub sgs: usize,
    pub keys: usize,
    pub instances: usize,
    pub roles: usize,
    pub profiles: usize,
}

impl Counts {
    /// A fully created environment with `nodes` instances.
    pub fn full(nodes: usize) -> Counts {
        Counts { vpcs: 1, subnets: 1, igws: 1, rtbs: 1, sgs: 1, keys: 1, instances: nodes, roles: 2, profiles: 2 }
    }
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Replaces what differs between runs (AWS ids, addresses, times, the per-run project name)
/// with placeholders, so JSON outputs can be snapshot-tested.
pub fn normalize(v: &serde_json::Value, project: &str) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(normalize_str(s, project)),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalize(x, project)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (k.clone(), normalize(x, project))).collect()),
        other => other.clone(),
    }
}

fn normalize_str(s: &str, project: &str) -> String {
    let s = s.replace(project, "[project]");
    let word = |w: &str| -> String {
        let ids = ["vpc-", "subnet-", "igw-", "rtb-", "sg-", "key-", "i-", "rtbassoc-"];
        for p in ids {
            if let Some(rest) = w.strip_prefix(p)
                && rest.len() >= 8
                && rest.chars().all(|c| c.is_ascii_hexdigit())
            {
                return format!("[{}id]", p);
            }
        }
        if w.starts_with("ip-") && w.ends_with(".compute.internal") {
            return "[dns]".into();
        }
        if w.split('.').count() == 4 && w.split('.').all(|o| o.parse::<u8>().is_ok()) {
            return "[ip]".into();
        }
        if w.len() >= 20 && w.as_bytes().get(4) == Some(&b'-') && w.contains('T') && w.ends_with('Z') {
            return "[time]".into();
        }
        w.to_string()
    };
    // Ids also come comma-separated (instance groups) and inside sentences.
    s.split(' ').map(|part| part.split(',').map(word).collect::<Vec<_>>().join(",")).collect::<Vec<_>>().join(" ")
}

/// TagSpecifications for decoys the tests create directly.
pub fn tag_spec(
    pairs: &[(&str, &str)],
    kind: aws_sdk_ec2::types::ResourceType,
) -> aws_sdk_ec2::types::TagSpecification {
    aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            pairs.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build()).collect(),
        ))
        .build()
}

/// `kubectl` arguments that run Kafka's topic tool in `kafka-0` against its own broker; the
/// tool's own arguments follow. As tagstack's own tools do, over the INTERNAL listener with the
/// node's certificate (a super user), whose client configuration `up` wrote into the pod's /tmp
/// (`kafka-users.sh`, src/stack/kafka.rs).
pub const KAFKA_TOPICS: &[&str] = &[
    "exec",
    "-n",
    "kafka",
    "kafka-0",
    "-c",
    "kafka",
    "--",
    "/opt/kafka/bin/kafka-topics.sh",
    "--bootstrap-server",
    "localhost:9094",
    "--command-config",
    "/tmp/tagstack-internal.properties",
];
