//! IMDS hop limit 1 (issue 14): new instances get it at launch; an environment launched at
//! hop limit 2 keeps it, and its worker role keeps the EBS CSI policy, through the infra
//! stage (the old EBS CSI controller on a worker still needs both), `plan` lists what `up`
//! changes after its cluster stage, and that step (`ops::infra::harden`, which `up` runs once
//! the add-ons rolled out in their new place) leaves a converged environment.

use aws_sdk_ec2::types::HttpTokensState;
use tagstack::ops::{self, Env};
use tagstack::reporter::Silent;

use crate::ops_direct::{aws, with_main_stack};
use crate::support::TestEnv;

/// (instance id, hop limit, tokens required) of every instance of the environment.
fn metadata_options(env: &TestEnv) -> Vec<(String, i32, bool)> {
    let ec2 = env.ec2();
    env.block(async {
        let out = ec2.describe_instances().set_filters(Some(env.owner_filters())).send().await.unwrap();
        let mut rows: Vec<(String, i32, bool)> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
            .map(|i| {
                let m = i.metadata_options().unwrap();
                (
                    i.instance_id().unwrap().to_string(),
                    m.http_put_response_hop_limit().unwrap(),
                    m.http_tokens() == Some(&HttpTokensState::Required),
                )
            })
            .collect();
        rows.sort();
        rows
    })
}

fn worker_policies(env: &TestEnv) -> Vec<String> {
    let iam = env.iam();
    let name = format!("tagstack-{}-{}-worker", env.project, env.environment);
    let mut names =
        env.block(async { iam.list_role_policies().role_name(name).send().await.unwrap().policy_names().to_vec() });
    names.sort();
    names
}

#[test]
fn an_environment_from_before_hop_limit_1_is_hardened_after_the_cluster_stage_not_before() {
    with_main_stack(legacy_life);
}

fn legacy_life() {
    let env = TestEnv::new("imds");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let launched = metadata_options(&env);
    assert_eq!(launched.len(), 3);
    assert!(launched.iter().all(|(_, hop, tokens)| *hop == 1 && *tokens), "{launched:?}");
    assert_eq!(worker_policies(&env), ["cloud-provider-node", "tagstack-guard"]);

    // What an environment launched by an earlier tagstack looks like.
    let (ec2, iam) = (env.ec2(), env.iam());
    let name = |role: &str| format!("tagstack-{}-{}-{role}", env.project, env.environment);
    env.block(async {
        for (id, _, _) in &launched {
            ec2.modify_instance_metadata_options()
                .instance_id(id)
                .http_tokens(HttpTokensState::Required)
                .http_put_response_hop_limit(2)
                .send()
                .await
                .unwrap();
        }
        // The document both roles had (the control plane keeps it).
        let doc = include_str!("../../templates/iam/ebs-csi.json");
        iam.put_role_policy()
            .role_name(name("worker"))
            .policy_name("ebs-csi")
            .policy_document(doc)
            .send()
            .await
            .unwrap();
    });

    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    let ids: Vec<&str> = launched.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(plan["converged"], true, "{plan:#}");
    let mut listed: Vec<&str> =
        plan["hardening"]["hop_limit"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    listed.sort_unstable();
    assert_eq!(listed, ids, "{plan:#}");
    assert_eq!(plan["hardening"]["policies"], serde_json::json!([[name("worker"), "ebs-csi"]]), "{plan:#}");

    // The infra stage alone changes neither, and says who does.
    let up = env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(up.stderr.contains("IMDS hop limit above 1"), "{}", up.stderr);
    assert!(worker_policies(&env).contains(&"ebs-csi".to_string()));
    assert!(metadata_options(&env).iter().all(|(_, hop, _)| *hop == 2));

    // What `up` runs after its cluster stage.
    let spec = tagstack::config::load(&env.config_path()).unwrap();
    let ops_env = Env::with_aws(&spec, aws(&env), &Silent);
    let opts = ops::up::UpOpts { ttl: None, only: Some(ops::up::Stage::Infra) };
    let (report, result) = env.block(ops::up::run(&ops_env, opts, &mut |_| {}));
    result.unwrap();
    let hardening = report.infra.unwrap().hardening;
    assert_eq!(hardening.hop_limit.len(), 3);
    env.block(async { ops::infra::harden::run(ops_env.aws().await, &spec, &hardening, &Silent).await }).unwrap();

    let after = metadata_options(&env);
    assert!(after.iter().all(|(_, hop, tokens)| *hop == 1 && *tokens), "{after:?}");
    assert_eq!(worker_policies(&env), ["cloud-provider-node", "tagstack-guard"]);
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert!(plan.get("hardening").is_none(), "{plan:#}");
    env.tagstack().args(&["plan", "--detailed-exitcode"]).run().code(0);
    env.tagstack().args(&["down", "--yes"]).run().success();
}
