//! Eventual consistency and throttling, injected by the proxy exactly as AWS answers them:
//! NotFound right after a create, IAM instance-profile propagation, DependencyViolation while
//! dependents go away, RequestLimitExceeded; and the deadline error when AWS never settles.

use crate::support::{Counts, Rule, TestEnv};

#[test]
fn up_and_down_ride_out_eventual_consistency() {
    let env = TestEnv::new("consist");
    env.proxy.add_rule(Rule::error("CreateSubnet", "InvalidVpcID.NotFound", 2));
    env.proxy.add_rule(Rule::error("AddRoleToInstanceProfile", "NoSuchEntity", 1));
    env.proxy.add_rule(Rule::error("RunInstances", "InvalidParameterValue", 2).with_message(
        "Value (tagstack-x) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
    ));
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert_eq!(env.proxy.count("CreateSubnet"), 3);
    assert_eq!(env.proxy.count("AddRoleToInstanceProfile"), 3, "2 profiles + 1 retry");
    assert_eq!(env.proxy.count("RunInstances"), 4, "2 roles + 2 retries");
    assert_eq!(env.owned_counts(), Counts::full(3));

    env.proxy.add_rule(Rule::error("DeleteVpc", "DependencyViolation", 2));
    env.proxy.add_rule(Rule::error("DetachInternetGateway", "DependencyViolation", 1));
    env.proxy.add_rule(Rule::error("DeleteRole", "DeleteConflict", 1));
    env.proxy.clear_calls();
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.proxy.count("DeleteVpc"), 3);
    assert_eq!(env.proxy.count("DetachInternetGateway"), 2);
    assert_eq!(env.proxy.count("DeleteRole"), 3, "2 roles + 1 retry");
    assert_eq!(env.owned_counts(), Counts::default());
}

#[test]
fn throttling_is_retried_by_the_sdk() {
    let env = TestEnv::new("throttle");
    env.proxy.add_rule(Rule::error("RunInstances", "RequestLimitExceeded", 2));
    env.proxy.add_rule(Rule::error("DescribeVpcs", "RequestLimitExceeded", 1));
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert_eq!(env.proxy.count("RunInstances"), 4);
    assert_eq!(env.owned_counts(), Counts::full(3));
    env.tagstack().args(&["down", "--yes"]).run().success();
}

#[test]
fn a_step_that_never_settles_names_the_resource_code_and_wait() {
    let env = TestEnv::new("deadline");
    env.write_config(1, "");
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("aws_consistency = \"20s\"", "aws_consistency = \"2s\"");
    std::fs::write(env.config_path(), text).unwrap();
    env.tagstack().args(&["up", "--only", "infra"]).run().success();

    env.proxy.add_rule(Rule::error("DeleteVpc", "DependencyViolation", 1).forever());
    let run = env.tagstack().args(&["down", "--yes"]).run().code(1);
    assert!(run.stderr.contains("deleting VPC vpc-"), "{}", run.stderr);
    assert!(run.stderr.contains("DependencyViolation"), "{}", run.stderr);
    assert!(run.stderr.contains("gave up after"), "{}", run.stderr);
    assert!(run.stderr.contains("timeouts.aws_consistency"), "{}", run.stderr);
    let left = env.owned_counts();
    assert_eq!(left.vpcs, 1);
    assert_eq!((left.subnets, left.instances, left.roles), (0, 0, 0), "everything else should be gone");

    // AWS settles; the next down finishes what is left.
    env.proxy.clear_rules();
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}
