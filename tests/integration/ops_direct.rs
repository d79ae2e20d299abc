//! The workflows without the CLI (issue 11): `ops::up`, `ops::status` and `ops::down` called
//! in-process with the silent reporter, on AWS through the emulator and on a static
//! environment through the SSH test bed. What the CLI adds (flags, printing, exit codes) is
//! tested by the other files; here only what a library user of `ops` gets.

use tagstack::ops::{self, Env};
use tagstack::reporter::Silent;

use crate::support::bed::{Bed, cluster_env};
use crate::support::{Counts, REGION, TestEnv};

/// Clients that reach moto through the test's fault proxy, as the CLI's would.
pub(crate) fn aws(env: &TestEnv) -> ops::Aws {
    let creds = || aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test");
    let ec2 = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(REGION))
        .endpoint_url(env.proxy.url())
        .credentials_provider(creds())
        .build();
    let iam = aws_sdk_iam::Config::builder()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .endpoint_url(env.proxy.url())
        .credentials_provider(creds())
        .build();
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(REGION))
        .endpoint_url(env.proxy.url())
        .force_path_style(true)
        .credentials_provider(creds())
        .build();
    let sts = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(REGION))
        .endpoint_url(env.proxy.url())
        .credentials_provider(creds())
        .build();
    ops::Aws {
        region: Some(REGION.into()),
        ec2: aws_sdk_ec2::Client::from_conf(ec2),
        iam: aws_sdk_iam::Client::from_conf(iam),
        s3: aws_sdk_s3::Client::from_conf(s3),
        sts: aws_sdk_sts::Client::from_conf(sts),
    }
}

/// Runs `f` on a thread with the main thread's stack: a debug build's `up` future is deeper
/// than a test thread's 2 MiB (the binary runs it on its main thread, 8 MiB).
pub(crate) fn with_main_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new().stack_size(8 << 20).spawn(f).unwrap().join().unwrap();
}

#[test]
fn up_status_down_on_aws_without_the_cli() {
    with_main_stack(aws_life);
}

fn aws_life() {
    let env = TestEnv::new("opsaws");
    env.write_config(1, "");
    // The config names its public key relative to the file, as users write it.
    let spec = tagstack::config::load(&env.config_path()).unwrap();
    let ops_env = Env::with_aws(&spec, aws(&env), &Silent);

    let opts = ops::up::UpOpts { ttl: None, only: Some(ops::up::Stage::Infra) };
    let mut done = Vec::new();
    let (report, result) = env.block(ops::up::run(&ops_env, opts, &mut |d| {
        done.push(match d {
            ops::up::Done::Infra(_) => "infra",
            ops::up::Done::Cluster(_) => "cluster",
            ops::up::Done::Retire(_) => "retire",
            ops::up::Done::Stack(_) => "stack",
            ops::up::Done::Monitoring(_) => "monitoring",
        });
    }));
    result.unwrap();
    assert_eq!(done, ["infra"]);
    let infra = report.infra.as_ref().unwrap();
    assert!(infra.changed);
    assert_eq!(infra.nodes.len(), 2);
    assert!(report.cluster.is_none() && report.stack.is_none() && report.error.is_none());
    assert_eq!(env.owned_counts(), Counts::full(2));

    match env.block(ops::status::run(&ops_env)).unwrap() {
        ops::status::StatusReport::Aws { infra, live } => {
            assert!(infra.in_sync, "{:?}", infra.summary);
            assert_eq!(infra.nodes.len(), 2);
            // No cluster stage ran: nothing to read live, and nothing tried.
            assert!(matches!(live, ops::live::AwsLive::NotBootstrapped));
        }
        ops::status::StatusReport::Static { .. } => panic!("an AWS environment reported as static"),
    }

    let preview = env.block(ops::down::preview(&ops_env)).unwrap();
    // 2 instance groups, VPC, subnet, gateway, route table, security group, key pair, 2 roles, 2 profiles.
    assert_eq!(preview.teardown.changes.len(), 12);
    let down = env.block(ops::down::run(&ops_env, &preview)).unwrap();
    assert!(down.cleanup.is_none());
    assert_eq!(down.report.failed, 0, "{:?}", down.report.deleted);
    assert_eq!(down.report.deleted.len(), 12);
    assert_eq!(env.owned_counts(), Counts::default());
}

#[test]
fn up_status_down_on_a_static_environment_without_the_cli() {
    with_main_stack(static_life);
}

fn static_life() {
    let bed = Bed::up(2);
    let env = cluster_env(&bed, "opsbed");
    let spec = tagstack::config::load(&env.config_path()).unwrap();
    // No AWS: a static environment never asks for clients (these point nowhere).
    let conn = ops::Connection { region: None, profile: None, endpoint_url: Some("http://127.0.0.1:9".into()) };
    let ops_env = Env::new(&spec, &conn, &Silent);
    let local = ops::cluster::env_dir(&spec);

    let (report, result) = env.block(ops::up::run(&ops_env, ops::up::UpOpts::default(), &mut |_| {}));
    result.unwrap();
    assert!(report.infra.is_none(), "a static environment has no infra stage");
    let cluster = report.cluster.as_ref().unwrap();
    assert_eq!(cluster.nodes.len(), 2);
    assert!(cluster.nodes.iter().all(|n| n.ready));
    assert_eq!(report.stack.as_ref().map(|s| s.workloads.len()), Some(0));

    let only_infra = ops::up::UpOpts { ttl: None, only: Some(ops::up::Stage::Infra) };
    let (_, refused) = env.block(ops::up::run(&ops_env, only_infra, &mut |_| {}));
    assert!(refused.unwrap_err().is::<ops::up::NoInfraStage>());

    match env.block(ops::status::run(&ops_env)).unwrap() {
        ops::status::StatusReport::Static { live } => {
            let names: Vec<(&str, bool)> = live.nodes.iter().map(|(n, _)| (n.name.as_str(), n.ready)).collect();
            assert_eq!(names, [(Bed::name(0).as_str(), true), (Bed::name(1).as_str(), true)]);
            assert!(live.stack.is_none(), "no stack component is enabled");
        }
        ops::status::StatusReport::Aws { .. } => panic!("a static environment reported as AWS"),
    }

    let cleanup = env.block(ops::down::run_static(&ops_env)).unwrap();
    assert!(cleanup.errors.is_empty(), "{:?}", cleanup.errors);
    assert!(cleanup.load_balancers.is_empty(), "a static down never deletes load balancers");
    // The environment's local files (ssh_config, logs, kubeconfig) were written relative to
    // the working directory, as the CLI writes them.
    assert!(local.join("ssh_config").exists());
    std::fs::remove_dir_all(&local).unwrap();
}
