//! The round trips on the critical path of `plan`, `up --only infra`, `status` and `down`
//! (issue 11): a benchmark, not a timed test. Every AWS request is answered 1 s late by the
//! fault proxy (`Rule::delay` on every action). Two measures: the extra wall time over the same
//! command without the delay, divided by 1 s; and, independent of the machine's load, the
//! longest chain of calls each sent after the one before it was answered (from the proxy's
//! arrival and answer times). Run with
//! `cargo test --test integration bench_critical_path -- --ignored --nocapture --test-threads 1`
//! (numbers in docs/benchmarks.md).

// The measured numbers are this benchmark's report.
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use crate::support::fault_proxy::ANY_ACTION;
use crate::support::{Counts, Rule, TestEnv};

const LATENCY: Duration = Duration::from_millis(1000);
const RUNS: usize = 2;

/// The longest chain of calls in which each arrived after the previous one was answered.
fn chain(calls: &[crate::support::fault_proxy::Call]) -> usize {
    let mut calls: Vec<_> = calls.iter().filter(|c| !c.action.is_empty()).collect();
    calls.sort_by_key(|c| c.arrived);
    let mut depth: Vec<usize> = Vec::with_capacity(calls.len());
    for (i, c) in calls.iter().enumerate() {
        let before = calls[..i]
            .iter()
            .zip(&depth)
            .filter(|(p, _)| p.answered.is_some_and(|a| a <= c.arrived))
            .map(|(_, d)| *d)
            .max()
            .unwrap_or(0);
        depth.push(before + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

/// (wall seconds, AWS requests, longest chain) of one command.
fn timed(env: &TestEnv, args: &[&str]) -> (f64, usize, usize) {
    env.proxy.clear_calls();
    let started = Instant::now();
    env.tagstack().args(args).run().success();
    let secs = started.elapsed().as_secs_f64();
    if std::env::var_os("TAGSTACK_BENCH_CALLS").is_some() {
        eprintln!("{}: {}", args.join(" "), env.proxy.actions().join(" "));
    }
    let calls = env.proxy.calls();
    (secs, calls.iter().filter(|c| !c.action.is_empty()).count(), chain(&calls))
}

/// The commands of an environment's life, in order, each timed.
/// Each command's name and (wall seconds, AWS requests, longest chain).
type Life = Vec<(String, (f64, usize, usize))>;

fn life(env: &TestEnv) -> Life {
    let commands: [&[&str]; 5] =
        [&["plan"], &["up", "--only", "infra"], &["up", "--only", "infra"], &["status"], &["down", "--yes"]];
    commands.iter().map(|args| (args.join(" "), timed(env, args))).collect()
}

#[test]
#[ignore = "benchmark; see docs/benchmarks.md"]
fn bench_critical_path() {
    let env = TestEnv::new("bcrit");
    env.write_config(2, "");
    // Alternated and repeated; the fastest of each (other work on the machine only adds time).
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        env.proxy.clear_rules();
        fast.push(life(&env));
        env.proxy.add_rule(Rule::delay(ANY_ACTION, LATENCY).forever());
        slow.push(life(&env));
    }
    env.proxy.clear_rules();
    let best = |runs: &[Life], i: usize| runs.iter().map(|r| r[i].1.0).fold(f64::INFINITY, f64::min);
    let mut lines = Vec::new();
    for (i, (name, (_, n, _))) in fast[0].iter().enumerate() {
        let (t0, t1) = (best(&fast, i), best(&slow, i));
        let longest = slow.iter().map(|r| r[i].1.2).max().unwrap_or(0);
        let trips = (t1 - t0) / LATENCY.as_secs_f64();
        lines.push(format!(
            "{name:>22}: {n:3} requests, {t0:5.2} s -> {t1:5.2} s with {} ms each: {trips:4.1} round trips by time, longest chain {longest}",
            LATENCY.as_millis()
        ));
    }
    eprintln!("{}", lines.join("\n"));
    assert_eq!(env.owned_counts(), Counts::default());
}
