//! Issue 11's IAM discovery by exact names: an environment never reads nor touches a
//! look-alike one whose IAM names share its prefix (`ci` beside `ci-2`: `tagstack-<p>-ci-`),
//! and a role of this environment's exact name that lacks its tags stays someone else's.

// The call count of `plan` is this test's benchmark output (docs/benchmarks.md).
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use crate::support::fault_proxy::ANY_ACTION;
use crate::support::{Counts, Rule, TestEnv};

#[test]
fn a_look_alike_environment_is_never_read_nor_touched() {
    let env = TestEnv::new("alike");
    let alike = env.sibling(&format!("{}-2", env.environment));
    alike.tagstack().args(&["up", "--only", "infra"]).run().success();
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let alike_iam = format!("tagstack-{}-{}-", alike.project, alike.environment);
    let ours: Vec<String> = ["control-plane", "worker"]
        .iter()
        .map(|r| format!("tagstack-{}-{}-{r}", env.project, env.environment))
        .collect();

    let runs: [&[&str]; 3] = [&["plan", "--detailed-exitcode"], &["status"], &["down", "--yes"]];
    for args in runs {
        env.proxy.clear_calls();
        if args[0] == "plan" {
            // 100 ms per AWS call, as from a laptop to a region: the wall time then shows the
            // round trips on the critical path (printed, never asserted).
            env.proxy.add_rule(Rule::delay(ANY_ACTION, Duration::from_millis(100)).forever());
        }
        let started = Instant::now();
        env.tagstack().args(args).run().success();
        let took = started.elapsed();
        env.proxy.clear_rules();
        let calls = env.proxy.calls();
        if args[0] == "plan" {
            let aws = calls.iter().filter(|c| !c.action.is_empty()).count();
            let iam = calls.iter().filter(|c| c.service == "iam").count();
            eprintln!(
                "plan of a converged environment beside a look-alike: {aws} AWS calls ({iam} IAM), {:.1} s at 100 ms per call",
                took.as_secs_f64()
            );
        }
        for c in &calls {
            assert!(
                !["ListRoles", "ListInstanceProfiles", "ListRoleTags"].contains(&c.action.as_str()),
                "`{}` listed IAM: {c:?}",
                args[0]
            );
            assert!(!c.body.contains(&alike_iam), "`{}` read the look-alike's IAM: {c:?}", args[0]);
            if c.service == "iam" {
                assert!(
                    ours.iter().any(|n| c.body.contains(n.as_str())),
                    "`{}`: an IAM call for no name of ours: {c:?}",
                    args[0]
                );
            }
        }
        assert!(
            calls.iter().any(|c| c.action == "GetRole"),
            "`{}` never read its roles: the test would prove nothing",
            args[0]
        );
    }
    assert_eq!(env.owned_counts(), Counts::default());

    // The look-alike is whole and converged.
    assert_eq!(alike.owned_counts(), Counts::full(3));
    alike.proxy.clear_calls();
    alike.tagstack().args(&["plan", "--detailed-exitcode"]).run().code(0);
    alike.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(alike.owned_counts(), Counts::default());
}

#[test]
fn a_role_of_our_exact_name_without_our_tags_is_not_ours() {
    let env = TestEnv::new("namesake");
    let name = format!("tagstack-{}-{}-worker", env.project, env.environment);
    let iam = env.iam();
    let p = env.project.clone();
    env.block(crate::support::decoys::foreign_role(&iam, &p, &name));

    // Invisible to plan: the role is to be created, so `up` meets it and refuses.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(plan["summary"]["create"], 12, "{plan}");
    let up = env.tagstack().args(&["up", "--only", "infra"]).run().code(1);
    assert!(up.stderr.contains(&format!("role {name} exists and is not this environment's")), "{}", up.stderr);

    // down deletes what is ours and never writes to the namesake.
    env.proxy.clear_calls();
    env.tagstack().args(&["down", "--yes"]).run().success();
    let touched: Vec<_> = env.proxy.mutating_calls().into_iter().filter(|c| c.body.contains(&name)).collect();
    assert!(touched.is_empty(), "down wrote to the namesake: {touched:?}");
    assert_eq!(env.owned_counts(), Counts::default());
    env.block(async {
        let got = iam.get_role().role_name(&name).send().await.expect("the namesake role was deleted");
        let env_tag =
            got.role().unwrap().tags().iter().find(|t| t.key() == "tagstack:env").map(|t| t.value().to_string());
        assert_eq!(env_tag.as_deref(), Some("other"));
        iam.delete_role().role_name(&name).send().await.unwrap();
    });
}
