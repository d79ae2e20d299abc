//! The ownership rule and crash safety: `down` leaves everything it does not own, duplicates
//! are refused by name, and an `up` killed with SIGKILL is finished by the next `up` without
//! duplicates.

use std::time::Duration;

use aws_sdk_ec2::types::ResourceType;

use crate::support::decoys::Decoys;
use crate::support::{Counts, Rule, TestEnv};

use crate::support::tag_spec as tags;

#[test]
fn down_leaves_decoys_untouched() {
    let env = TestEnv::new("decoy");
    let decoys = Decoys::make(&env);

    // The decoys are invisible to plan.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(plan["summary"]["create"], 12, "{plan}");
    assert!(decoys.vpcs.iter().all(|v| !plan.to_string().contains(v)), "{plan}");

    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());

    decoys.check_and_remove(&env).unwrap();
}

#[test]
fn two_vpcs_tagged_for_one_environment_is_an_error_naming_both() {
    let env = TestEnv::new("dupe");
    let ec2 = env.ec2();
    let p = env.project.clone();
    let ids: Vec<String> = env.block(async {
        let mut ids = Vec::new();
        for _ in 0..2 {
            let v = ec2
                .create_vpc()
                .cidr_block("10.61.0.0/16")
                .tag_specifications(tags(&[("tagstack:project", &p), ("tagstack:env", "ci")], ResourceType::Vpc))
                .send()
                .await
                .unwrap();
            ids.push(v.vpc().unwrap().vpc_id().unwrap().to_string());
        }
        ids
    });
    for cmd in ["plan", "up"] {
        let run = env.tagstack().arg(cmd).run().code(1);
        assert!(run.stderr.contains(&ids[0]) && run.stderr.contains(&ids[1]), "{}", run.stderr);
        assert!(run.stderr.contains("will not pick one"), "{}", run.stderr);
    }
    assert!(env.proxy.mutating_calls().is_empty());
    // down deletes both: both are owned by the environment.
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

#[test]
fn sigkill_after_the_vpc_exists_then_up_converges_without_duplicates() {
    let env = TestEnv::new("kill");
    env.proxy.add_rule(Rule::hang_before("CreateSubnet").forever());
    let mut child = env.tagstack().args(&["up", "--only", "infra"]).spawn();
    assert!(env.proxy.wait_for("CreateSubnet", Duration::from_secs(30)), "up never reached CreateSubnet");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = env.owned_counts();
    assert_eq!(partial.vpcs, 1);
    assert_eq!(partial.subnets, 0);

    env.proxy.clear_rules();
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert_eq!(env.owned_counts(), Counts::full(3));
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

#[test]
fn sigkill_with_a_lost_run_instances_response_adopts_the_instances() {
    let env = TestEnv::new("lost");
    // RunInstances reaches AWS (instances are created) but the answer never comes back.
    env.proxy.add_rule(Rule::hang_after("RunInstances").forever());
    let mut child = env.tagstack().args(&["up", "--only", "infra"]).spawn();
    assert!(env.proxy.wait_for("RunInstances", Duration::from_secs(30)));
    // Both roles' launches are in flight; give moto a moment to create them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.owned_counts().instances < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.owned_counts().instances, 3, "both launches should have reached the emulator");

    env.proxy.clear_rules();
    env.proxy.clear_calls();
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert_eq!(env.owned_counts(), Counts::full(3));
    assert_eq!(env.proxy.count("RunInstances"), 0, "up launched again: {:?}", env.proxy.actions());
    env.tagstack().args(&["down", "--yes"]).run().success();
}

#[test]
fn down_refuses_without_yes_when_stdin_is_not_a_terminal() {
    let env = TestEnv::new("refuse");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    env.proxy.clear_calls();
    let run = env.tagstack().arg("down").run().code(2);
    assert!(run.stderr.contains("refusing to delete without confirmation"), "{}", run.stderr);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert!(env.proxy.mutating_calls().is_empty());
    assert_eq!(env.owned_counts(), Counts::full(3));
    env.tagstack().args(&["down", "--yes"]).run().success();
}
