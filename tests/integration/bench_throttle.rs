//! Throttling (issue 10 item 6): the SDK's retry modes under the same throttling, a benchmark,
//! not a timed test. 25% of every AWS call is answered as AWS answers a throttled call (EC2
//! `RequestLimitExceeded`, IAM `Throttling`, HTTP 503), chosen by a fixed seed; `plan`,
//! `up --only infra` and `down` run for each mode and print wall time and counts. Run with
//! `cargo test --test integration bench_throttle -- --ignored --nocapture --test-threads 4`
//! (`TAGSTACK_TEST_SEED=N` picks other throttled calls)
//! (numbers in docs/benchmarks.md). The CI test at the end checks the behaviour of the default
//! mode only: it finishes and never gives up, whatever the time.

// The measured numbers are this benchmark's report.
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use crate::support::{Counts, Rule, TestEnv};

const SEED: u64 = 10_006;
const SHARE: f64 = 0.25;
/// A command still running after this is reported as "did not finish" and killed.
const CAP: Duration = Duration::from_secs(300);

/// `None`: tagstack's default (no AWS_RETRY_MODE / AWS_MAX_ATTEMPTS in the environment).
fn mode_env(mode: Option<(&str, u32)>) -> Vec<(String, Option<String>)> {
    match mode {
        None => vec![("AWS_RETRY_MODE".into(), None), ("AWS_MAX_ATTEMPTS".into(), None)],
        Some((m, n)) => {
            vec![("AWS_RETRY_MODE".into(), Some(m.into())), ("AWS_MAX_ATTEMPTS".into(), Some(n.to_string()))]
        }
    }
}

struct Step {
    code: Option<i32>,
    secs: f64,
    requests: usize,
    throttled: usize,
    stderr: String,
}

fn step(env: &TestEnv, mode: Option<(&str, u32)>, args: &[&str]) -> Step {
    env.proxy.clear_calls();
    let mut t = env.tagstack().args(args);
    for (k, v) in mode_env(mode) {
        t = match v {
            Some(v) => t.env(&k, &v),
            None => t.env_remove(&k),
        };
    }
    let mut cmd = t.command();
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut out = child.stdout.take().unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > CAP {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = started.elapsed().as_secs_f64();
    let calls = env.proxy.calls();
    let requests = calls.iter().filter(|c| !c.action.is_empty()).count();
    Step { code, secs, requests, throttled: env.proxy.throttled(), stderr: reader.join().unwrap() }
}

fn seed() -> u64 {
    std::env::var("TAGSTACK_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED)
}

fn bench(name: &str, mode: Option<(&str, u32)>, share: f64) {
    let env = TestEnv::new(name);
    // The default per-step deadline, as a user has it.
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("aws_consistency = \"20s\"", "aws_consistency = \"2m\"");
    std::fs::write(env.config_path(), text).unwrap();
    env.proxy.set_seed(seed());
    if share > 0.0 {
        env.proxy.add_rule(Rule::throttle_every(share));
    }
    let label = format!(
        "{} {:.0}% seed {}",
        mode.map_or("default".to_string(), |(m, n)| format!("{m}/{n}")),
        share * 100.0,
        seed()
    );
    let mut lines = Vec::new();
    for args in [&["plan"][..], &["up", "--only", "infra"], &["down", "--yes"]] {
        let s = step(&env, mode, args);
        let outcome = match s.code {
            Some(0) => "ok".to_string(),
            Some(c) => format!("FAILED exit {c}"),
            None => format!("did not finish in {}s", CAP.as_secs()),
        };
        lines.push(format!(
            "{label:>28} {:>16}: {:7.1} s, {:4} requests, {:3} throttled ({})",
            args.join(" "),
            s.secs,
            s.requests,
            s.throttled,
            outcome
        ));
        if s.code != Some(0) {
            lines.push(format!(
                "{label:>28} stderr tail: {}",
                s.stderr.lines().rev().take(3).collect::<Vec<_>>().join(" | ")
            ));
        }
    }
    eprintln!("{}", lines.join("\n"));
    // Leave the emulator clean whatever happened.
    env.proxy.clear_rules();
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

#[test]
#[ignore = "benchmark: minutes in adaptive mode; see docs/benchmarks.md"]
fn bench_throttle_adaptive_6() {
    bench("bthra6", Some(("adaptive", 6)), SHARE);
}

#[test]
#[ignore = "benchmark; see docs/benchmarks.md"]
fn bench_throttle_standard_3() {
    bench("bthrs3", Some(("standard", 3)), SHARE);
}

#[test]
#[ignore = "benchmark; see docs/benchmarks.md"]
fn bench_throttle_default() {
    bench("bthrdef", None, SHARE);
}

/// The same commands without throttling: what the emulator itself costs (moto's DescribeImages
/// alone takes seconds).
#[test]
#[ignore = "benchmark; see docs/benchmarks.md"]
fn bench_throttle_baseline() {
    bench("bthrnone", None, 0.0);
}

/// CI: with tagstack's default mode (no AWS_RETRY_MODE / AWS_MAX_ATTEMPTS set) and a quarter of
/// every call throttled, `up --only infra` and `down` succeed, with one of everything and then
/// nothing left; no step gives up. No assertion on time.
#[test]
fn default_retry_mode_rides_out_a_quarter_of_calls_throttled() {
    let env = TestEnv::new("thr25");
    env.write_config(1, "");
    env.proxy.set_seed(SEED);
    env.proxy.add_rule(Rule::throttle_every(SHARE));
    let up = env
        .tagstack()
        .args(&["up", "--only", "infra"])
        .env_remove("AWS_RETRY_MODE")
        .env_remove("AWS_MAX_ATTEMPTS")
        .run();
    assert!(env.proxy.throttled() > 0, "nothing was throttled");
    let up = up.success();
    assert!(!up.stderr.contains("gave up"), "{}", up.stderr);
    assert_eq!(env.owned_counts(), Counts::full(2));
    let down = env
        .tagstack()
        .args(&["down", "--yes"])
        .env_remove("AWS_RETRY_MODE")
        .env_remove("AWS_MAX_ATTEMPTS")
        .run()
        .success();
    assert!(!down.stderr.contains("gave up"), "{}", down.stderr);
    assert_eq!(env.owned_counts(), Counts::default());
}

/// The SDK gives up after AWS_MAX_ATTEMPTS (3 here) throttles of one call; tagstack does not:
/// a throttled attach, delete, AMI lookup or discovery is sent again until
/// timeouts.aws_consistency, an instance waiter whose poll was throttled waits again (before,
/// each of them failed the run at once).
#[test]
fn a_throttle_the_sdk_gave_up_on_is_retried_until_the_deadline() {
    let env = TestEnv::new("thrgive");
    env.write_config(0, "");
    for action in ["AttachInternetGateway", "DescribeImages", "DescribeVpcs"] {
        env.proxy.add_rule(Rule::error(action, "RequestLimitExceeded", 4));
    }
    env.proxy.add_rule(Rule::error("CreateRole", "Throttling", 4));
    // The instance waiter's polls (by id; discovery filters by tags).
    env.proxy.add_rule(Rule::error("DescribeInstances", "RequestLimitExceeded", 4).when_body_contains("InstanceId.1="));
    let up = env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(!up.stderr.contains("gave up"), "{}", up.stderr);
    assert_eq!(env.proxy.count("AttachInternetGateway"), 5, "3 SDK attempts, then tagstack's");
    let waiter_throttled =
        |env: &TestEnv| env.proxy.calls().iter().filter(|c| c.action == "DescribeInstances" && c.injected).count();
    assert_eq!(waiter_throttled(&env), 4, "the running waiter's polls were not throttled");
    assert_eq!(env.owned_counts(), Counts::full(1));

    env.proxy.add_rule(Rule::error("DeleteSubnet", "RequestLimitExceeded", 4));
    env.proxy.add_rule(Rule::error("DeleteRole", "Throttling", 4));
    env.proxy.add_rule(Rule::error("DescribeInstances", "RequestLimitExceeded", 4).when_body_contains("InstanceId.1="));
    env.proxy.clear_calls();
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.proxy.count("DeleteSubnet"), 5);
    assert_eq!(waiter_throttled(&env), 4, "the terminated waiter's polls were not throttled");
    assert_eq!(env.owned_counts(), Counts::default());
}
