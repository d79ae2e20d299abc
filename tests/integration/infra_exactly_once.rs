//! Exactly-once creates (issue 10 items 1, 2, 7): a create whose answer is lost (applied by
//! moto, answered with a 500 or a dropped connection) is adopted, never made twice; an empty
//! duplicate tagstack made is healed by `up`; `down` names what it did not attempt.
//!
//! The proxy answers a repeated `ClientToken` with the first answer, as EC2 does (see
//! `support/fault_proxy.rs`), so `forwarded` counts the creates that really happened.

use aws_sdk_ec2::types::ResourceType;

use crate::support::{Counts, Rule, TestEnv, tag_spec};

/// How many of `action` an `up --only infra` of the default environment makes.
fn expected(action: &str) -> usize {
    match action {
        "CreateRole" | "CreateInstanceProfile" | "AddRoleToInstanceProfile" | "RunInstances" => 2,
        _ => 1,
    }
}

/// Calls without an idempotency token: after a lost answer tagstack looks and adopts.
const NO_TOKEN: &[&str] = &[
    "AssociateRouteTable",
    "CreateVpc",
    "CreateSubnet",
    "CreateInternetGateway",
    "CreateSecurityGroup",
    "ImportKeyPair",
    "CreateRole",
    "CreateInstanceProfile",
];

/// `up` with the answer of the first `action` lost (`rule`): the same run succeeds with one
/// of everything, and moto applied `action` exactly as often as in a clean run (a repeat that
/// moto refused, e.g. the SDK's retry of an attach meeting Resource.AlreadyAssociated, made
/// nothing).
fn lost_answer(name: &str, action: &str, rule: Rule) {
    let env = TestEnv::new(name);
    env.proxy.add_rule(rule);
    let run = env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert_eq!(env.owned_counts(), Counts::full(3), "{action}\n{}", run.stderr);
    let injected = env.proxy.calls().iter().filter(|c| c.action == action && c.injected).count();
    assert_eq!(injected, 1, "the fault on {action} was not hit: {:?}", env.proxy.actions());
    assert_eq!(
        env.proxy.applied(action),
        expected(action),
        "{action} was applied more often than a clean run applies it: {:?}",
        env.proxy
            .calls()
            .iter()
            .filter(|c| c.action == action)
            .map(|c| (c.status, c.upstream_status, c.replayed))
            .collect::<Vec<_>>()
    );
    if NO_TOKEN.contains(&action) {
        assert!(run.stderr.contains("adopted it"), "{action}: no adoption reported\n{}", run.stderr);
        // What was adopted is complete: the next `up` has nothing to do, nothing to heal.
        let again = env.tagstack().args(&["up", "--only", "infra", "--output", "json"]).run().success().json();
        assert_eq!(again["changed"], false, "{again}");
    }
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

macro_rules! lost_answer_tests {
    ($($test:ident: $action:literal, $rule:ident;)*) => {$(
        #[test]
        fn $test() {
            lost_answer("once", $action, Rule::$rule($action));
        }
    )*};
}

lost_answer_tests! {
    lost_create_vpc_answer_500: "CreateVpc", error_after;
    lost_create_vpc_answer_dropped: "CreateVpc", drop_after;
    lost_create_subnet_answer_500: "CreateSubnet", error_after;
    lost_create_igw_answer_500: "CreateInternetGateway", error_after;
    lost_create_igw_answer_dropped: "CreateInternetGateway", drop_after;
    lost_attach_igw_answer_500: "AttachInternetGateway", error_after;
    lost_create_route_table_answer_dropped: "CreateRouteTable", drop_after;
    lost_create_route_answer_500: "CreateRoute", error_after;
    lost_associate_answer_500: "AssociateRouteTable", error_after;
    lost_create_sg_answer_500: "CreateSecurityGroup", error_after;
    lost_authorize_answer_500: "AuthorizeSecurityGroupIngress", error_after;
    lost_import_key_answer_500: "ImportKeyPair", error_after;
    lost_create_role_answer_dropped: "CreateRole", drop_after;
    lost_create_profile_answer_500: "CreateInstanceProfile", error_after;
    lost_add_role_answer_500: "AddRoleToInstanceProfile", error_after;
    lost_run_instances_answer_500: "RunInstances", error_after;
}

/// What tagstack's own CreateVpc tags a VPC with (a lost create's VPC looks like this).
fn tagstack_vpc(env: &TestEnv) -> String {
    let ec2 = env.ec2();
    let (p, e) = (env.project.clone(), env.environment.clone());
    env.block(async {
        let name = format!("{p}-{e}-vpc");
        let v = ec2
            .create_vpc()
            .cidr_block("10.61.0.0/16")
            .tag_specifications(tag_spec(
                &[("tagstack:project", &p), ("tagstack:env", &e), ("tagstack:component", "vpc"), ("Name", &name)],
                ResourceType::Vpc,
            ))
            .send()
            .await
            .unwrap();
        v.vpc().unwrap().vpc_id().unwrap().to_string()
    })
}

#[test]
fn an_empty_duplicate_vpc_tagstack_made_is_planned_as_a_delete_and_healed_by_up() {
    let env = TestEnv::new("heal");
    env.write_config(1, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let dup = tagstack_vpc(&env);

    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    let deletes: Vec<_> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "delete")
        .map(|c| (c["kind"].as_str().unwrap().to_string(), c["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(deletes, [("vpc".to_string(), dup.clone())], "{plan}");
    assert_eq!(plan["summary"]["delete"], 1, "{plan}");

    let run = env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(run.stderr.contains(&format!("delete duplicate VPC {dup} (empty, made by tagstack)")), "{}", run.stderr);
    assert_eq!(env.owned_counts(), Counts::full(2));
    let deleted: Vec<_> = env.proxy.mutating_calls().into_iter().filter(|c| c.action == "DeleteVpc").collect();
    assert_eq!(deleted.len(), 1);
    assert!(deleted[0].body.contains(&dup), "{}", deleted[0].body);

    // A duplicate with something in it is not healed: the error names both.
    let busy = tagstack_vpc(&env);
    let ec2 = env.ec2();
    let (p, e) = (env.project.clone(), env.environment.clone());
    env.block(async {
        ec2.create_subnet()
            .vpc_id(&busy)
            .cidr_block("10.61.9.0/24")
            .tag_specifications(tag_spec(
                &[("tagstack:project", &p), ("tagstack:env", &e), ("tagstack:component", "subnet")],
                ResourceType::Subnet,
            ))
            .send()
            .await
            .unwrap();
    });
    env.proxy.clear_calls();
    for args in [&["plan"][..], &["up", "--only", "infra"][..]] {
        let run = env.tagstack().args(args).run().code(1);
        assert!(run.stderr.contains(&busy) && run.stderr.contains("will not pick one"), "{}", run.stderr);
    }
    assert!(env.proxy.mutating_calls().is_empty(), "{:?}", env.proxy.mutating_calls());
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

#[test]
fn down_names_the_subnet_and_vpc_it_did_not_attempt_behind_a_failed_detach() {
    let env = TestEnv::new("leftbehind");
    env.write_config(1, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();

    // Discovery rides out the NotFound of a VPC it has just listed (eventual consistency),
    // within timeouts.aws_consistency (20s here: backoff with jitter on a loaded machine).
    env.proxy.add_rule(Rule::error("DescribeVpcAttribute", "InvalidVpcID.NotFound", 2));
    env.tagstack().arg("plan").run().success();
    assert_eq!(env.proxy.count("DescribeVpcAttribute"), 3);

    // A short deadline, so that the detach below gives up soon.
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("aws_consistency = \"20s\"", "aws_consistency = \"2s\"");
    std::fs::write(env.config_path(), text).unwrap();

    env.proxy.add_rule(Rule::error("DetachInternetGateway", "DependencyViolation", 1).forever());

    let run = env.tagstack().args(&["down", "--yes", "--output", "json"]).run().code(1);
    let doc = run.json();
    let outcome = |kind: &str| -> String {
        let d =
            doc["deleted"].as_array().unwrap().iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("{doc}"));
        d["outcome"].as_str().unwrap().to_string()
    };
    assert!(outcome("internet-gateway").starts_with("failed"), "{doc}");
    for kind in ["subnet", "vpc"] {
        let o = outcome(kind);
        assert!(o.starts_with("not attempted: behind the failed internet-gateway igw-"), "{kind}: {o}");
    }
    assert_eq!(doc["failed"], 1, "{doc}");
    assert_eq!(doc["not_attempted"], 2, "{doc}");
    assert!(run.stderr.contains("2 resource(s) not attempted because of it"), "{}", run.stderr);
    assert!(run.stderr.contains("\n  subnet subnet-") && run.stderr.contains("\n  vpc vpc-"), "{}", run.stderr);

    // Human output says the same.
    let run = env.tagstack().args(&["down", "--yes"]).run().code(1);
    assert!(run.stdout.contains("not attempted: behind the failed internet-gateway"), "{}", run.stdout);
    assert_eq!(env.proxy.count("DeleteSubnet"), 0);
    assert_eq!(env.proxy.count("DeleteVpc"), 0);

    env.proxy.clear_rules();
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

/// CreateVpc has no idempotency token and no unique attribute, and EC2's tag-filtered reads
/// lag a create by seconds (EC2 API reference, "Eventual consistency"): after an ambiguous
/// failure that in fact applied nothing, the same run must not send a second CreateVpc (it
/// could be a duplicate); it looks until timeouts.aws_consistency, fails saying so, and the
/// next `up` creates exactly one.
#[test]
fn an_ambiguous_create_vpc_is_never_sent_twice_in_one_run() {
    let env = TestEnv::new("onevpc");
    env.write_config(0, "");
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("aws_consistency = \"20s\"", "aws_consistency = \"3s\"");
    std::fs::write(env.config_path(), text).unwrap();
    env.proxy.add_rule(Rule::error("CreateVpc", "InternalError", 1));
    let run = env.tagstack().args(&["up", "--only", "infra"]).run().code(1);
    assert!(run.stderr.contains("it is not sent again (that could make a duplicate)"), "{}", run.stderr);
    assert_eq!(env.proxy.count("CreateVpc"), 1, "{:?}", env.proxy.actions());
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert_eq!(env.owned_counts(), Counts::full(1));
    env.tagstack().args(&["down", "--yes"]).run().success();
}

/// The environment's workers now (live or not yet gone), as `status` lists them.
fn worker_ids(env: &TestEnv) -> Vec<String> {
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    let nodes = st["nodes"].as_array().unwrap();
    nodes.iter().filter(|n| n["role"] == "worker").map(|n| n["instance_id"].as_str().unwrap().to_string()).collect()
}

fn subnet_id(env: &TestEnv) -> String {
    let (ec2, filters) = (env.ec2(), env.owner_filters());
    env.block(async { ec2.describe_subnets().set_filters(Some(filters)).send().await.unwrap() }).subnets()[0]
        .subnet_id()
        .unwrap()
        .to_string()
}

/// The RunInstances calls since `clear_calls`: (ClientToken, replayed, injected).
fn launches(env: &TestEnv) -> Vec<(String, bool, bool)> {
    let token = |body: &str| body.split('&').find_map(|p| p.strip_prefix("ClientToken=")).unwrap_or("").to_string();
    env.proxy
        .calls()
        .iter()
        .filter(|c| c.action == "RunInstances")
        .map(|c| (token(&c.body), c.replayed, c.injected))
        .collect()
}

/// EC2 answers a repeated ClientToken with the first result, for RunInstances at least 24
/// hours after the instances terminated (EC2 API reference, "Ensuring Idempotency"; the proxy
/// answers so, with the instances' state now: moto does not replay tokens, see
/// `support/fault_proxy.rs`). Scaling the workers 2 -> 0 -> 2 sends the first launch's token
/// again; `up` must see the terminated instances in the answer and launch with the successor
/// token, whose own lost answer is replayed as well (exactly one real launch), and a second
/// cycle walks the same chain one step further.
#[test]
fn a_launch_answered_with_terminated_instances_launches_again_with_a_successor_token() {
    use tagstack::config::{EnvId, NodeRole};
    use tagstack::plan::desired::{client_token, successor_token};

    let env = TestEnv::new("replayi");
    env.write_config(2, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let first = worker_ids(&env);
    assert_eq!(first.len(), 2);
    let token = client_token(&EnvId::new(&env.project, &env.environment), NodeRole::Worker, &subnet_id(&env), 0, 2);
    let successor = successor_token(&token, &first);

    let mut seen = first;
    for cycle in 0..2 {
        env.write_config(0, "");
        env.tagstack().args(&["up", "--only", "infra"]).run().success();
        assert!(worker_ids(&env).is_empty());

        env.write_config(2, "");
        env.proxy.clear_calls();
        if cycle == 0 {
            // The successor's answer is lost too: its retry is answered from its own token.
            env.proxy.add_rule(Rule::error_after("RunInstances").when_body_contains(&successor));
        }
        let run = env.tagstack().args(&["up", "--only", "infra"]).run().success();
        assert!(run.stderr.contains("terminated or already counted"), "{}", run.stderr);
        assert_eq!(env.owned_counts(), Counts::full(3), "{}", run.stderr);
        let workers = worker_ids(&env);
        assert!(workers.iter().all(|w| !seen.contains(w)), "{workers:?} reuses one of {seen:?}");
        assert_eq!(env.proxy.applied("RunInstances"), 1, "{:?}", launches(&env));
        let calls = launches(&env);
        assert_eq!(calls[0], (token.clone(), true, false), "{calls:?}");
        assert_eq!(calls[1].0, successor, "{calls:?}");
        if cycle == 0 {
            assert_eq!(calls[1..], [(successor.clone(), false, true), (successor.clone(), true, false)], "{calls:?}");
        } else {
            let next = successor_token(&successor, &seen[2..]);
            assert_eq!(calls[1..], [(successor.clone(), true, false), (next, false, false)], "{calls:?}");
        }
        seen.extend(workers);
    }
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

/// A repeated token can also name an instance the plan already counts: 1 worker (A), scaled to
/// 2 (B, token "1 kept, 1 to launch"), A terminated by hand, then `up` plans the same launch
/// again and EC2 answers with B. `up` must launch a second worker, not count B twice.
#[test]
fn a_launch_answered_with_an_instance_already_counted_launches_again() {
    let env = TestEnv::new("replayk");
    env.write_config(1, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let a = worker_ids(&env);
    env.write_config(2, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let b: Vec<String> = worker_ids(&env).into_iter().filter(|w| !a.contains(w)).collect();
    assert_eq!(b.len(), 1);
    let ec2 = env.ec2();
    env.block(async { ec2.terminate_instances().instance_ids(&a[0]).send().await.unwrap() });

    env.proxy.clear_calls();
    let run = env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(run.stderr.contains(&format!("with {} (terminated or already counted", b[0])), "{}", run.stderr);
    let workers = worker_ids(&env);
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert!(workers.contains(&b[0]) && !workers.contains(&a[0]), "{workers:?}");
    assert_eq!(env.proxy.applied("RunInstances"), 1, "{:?}", launches(&env));
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

/// A `down` that stopped at the VPC (a foreign network interface holds it, say) deleted the
/// route table; the next `up` creates one in the same VPC with the same token, and EC2 answers
/// with the deleted table (the original result). `up` must notice that it does not exist and
/// create one with the successor token, not fail on its routes.
#[test]
fn a_route_table_create_answered_with_a_deleted_table_creates_again() {
    let env = TestEnv::new("replayr");
    env.write_config(1, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    // A short deadline: the VPC's delete gives up soon, and a route table that stays unseen is
    // judged gone after it.
    let text = std::fs::read_to_string(env.config_path())
        .unwrap()
        .replace("aws_consistency = \"20s\"", "aws_consistency = \"3s\"");
    std::fs::write(env.config_path(), text).unwrap();
    env.proxy.add_rule(Rule::error("DeleteVpc", "DependencyViolation", 1).forever());
    env.tagstack().args(&["down", "--yes"]).run().code(1);
    env.proxy.clear_rules();
    let left = env.owned_counts();
    assert_eq!((left.vpcs, left.rtbs, left.subnets), (1, 0, 0), "{left:?}");

    env.proxy.clear_calls();
    let run = env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(run.stderr.contains("which no longer exists"), "{}", run.stderr);
    assert_eq!(env.owned_counts(), Counts::full(2), "{}", run.stderr);
    let creates: Vec<(bool, bool)> = env
        .proxy
        .calls()
        .iter()
        .filter(|c| c.action == "CreateRouteTable")
        .map(|c| (c.replayed, c.forwarded))
        .collect();
    assert_eq!(creates, [(true, false), (false, true)]);
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}

/// A duplicate VPC tagstack made that holds something without the environment's tags (a
/// subnet and a network interface made by someone else) looks empty to discovery, so the plan
/// heals it; AWS refuses the delete (DependencyViolation: moto refuses DeleteVpc while a subnet
/// is in it, as EC2 does). `up` fails at once, not after retrying until
/// timeouts.aws_consistency (one DeleteVpc), naming both VPCs and what is in the duplicate,
/// with a hint; what it does not own is left alone.
#[test]
fn a_duplicate_vpc_holding_what_tagstack_does_not_own_fails_at_once_naming_both() {
    let env = TestEnv::new("healheld");
    env.write_config(1, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let kept = {
        let (ec2, filters) = (env.ec2(), env.owner_filters());
        env.block(async { ec2.describe_vpcs().set_filters(Some(filters)).send().await.unwrap() }).vpcs()[0]
            .vpc_id()
            .unwrap()
            .to_string()
    };
    let dup = tagstack_vpc(&env);
    let ec2 = env.ec2();
    let (subnet, eni) = env.block(async {
        let s = ec2.create_subnet().vpc_id(&dup).cidr_block("10.61.9.0/24").send().await.unwrap();
        let subnet = s.subnet().unwrap().subnet_id().unwrap().to_string();
        let n = ec2.create_network_interface().subnet_id(&subnet).description("someone else's").send().await.unwrap();
        (subnet, n.network_interface().unwrap().network_interface_id().unwrap().to_string())
    });

    env.proxy.clear_calls();
    let run = env.tagstack().args(&["up", "--only", "infra"]).run().code(1);
    for needle in [
        format!("duplicate VPC {dup} (made by tagstack beside {kept}"),
        format!("subnet {subnet} (10.61.9.0/24)"),
        format!("network interface {eni} (someone else's)"),
        "DependencyViolation".to_string(),
        format!("hint: tagstack never deletes what it does not own: delete or move what is in {dup}"),
    ] {
        assert!(run.stderr.contains(&needle), "missing {needle:?}\n{}", run.stderr);
    }
    assert_eq!(env.proxy.count("DeleteVpc"), 1, "{:?}", env.proxy.actions());
    let (still_subnet, still_eni) = env.block(async {
        let s = ec2.describe_subnets().subnet_ids(&subnet).send().await.unwrap();
        let n = ec2.describe_network_interfaces().network_interface_ids(&eni).send().await.unwrap();
        (s.subnets().len(), n.network_interfaces().len())
    });
    assert_eq!((still_subnet, still_eni), (1, 1));

    // Once what held it is gone, `up` heals the duplicate.
    env.block(async {
        ec2.delete_network_interface().network_interface_id(&eni).send().await.unwrap();
        ec2.delete_subnet().subnet_id(&subnet).send().await.unwrap();
    });
    let run = env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(run.stderr.contains(&format!("delete duplicate VPC {dup}")), "{}", run.stderr);
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert_eq!(env.owned_counts(), Counts::default());
}
