//! Ephemeral environments: `up --ttl` tags, `status` shows the time left, `up --ttl` extends,
//! and `reap` deletes exactly the expired environments (from tags alone, no config).

use aws_sdk_ec2::types::Tag;

use crate::support::{Counts, TestEnv};

const PAST: &str = "2020-01-01T00:00:00Z";

/// Simulates the passage of time: rewrites the expiry tag of everything the environment owns.
fn expire(env: &TestEnv) {
    let ec2 = env.ec2();
    let iam = env.iam();
    let f = env.owner_filters();
    env.block(async {
        let mut ids: Vec<String> = Vec::new();
        let v = ec2.describe_vpcs().set_filters(Some(f.clone())).send().await.unwrap();
        ids.extend(v.vpcs().iter().filter_map(|x| x.vpc_id().map(String::from)));
        let s = ec2.describe_subnets().set_filters(Some(f.clone())).send().await.unwrap();
        ids.extend(s.subnets().iter().filter_map(|x| x.subnet_id().map(String::from)));
        let g = ec2.describe_security_groups().set_filters(Some(f.clone())).send().await.unwrap();
        ids.extend(g.security_groups().iter().filter_map(|x| x.group_id().map(String::from)));
        let i = ec2.describe_instances().set_filters(Some(f.clone())).send().await.unwrap();
        ids.extend(
            i.reservations().iter().flat_map(|r| r.instances()).filter_map(|x| x.instance_id().map(String::from)),
        );
        ec2.create_tags()
            .set_resources(Some(ids))
            .tags(Tag::builder().key("tagstack:expires-at").value(PAST).build())
            .send()
            .await
            .unwrap();
        for role in ["control-plane", "worker"] {
            iam.tag_role()
                .role_name(format!("tagstack-{}-{}-{role}", env.project, env.environment))
                .tags(aws_sdk_iam::types::Tag::builder().key("tagstack:expires-at").value(PAST).build().unwrap())
                .send()
                .await
                .unwrap();
        }
    });
}

#[test]
fn ttl_tags_everything_status_shows_time_left_and_up_extends() {
    let env = TestEnv::new("ttl");
    let up = env.tagstack().args(&["up", "--only", "infra", "--ttl", "2h", "--output", "json"]).run().success().json();
    let first = up["expires_at"].as_str().unwrap().to_string();
    assert!(first.ends_with('Z') && first.len() == 20, "{first}");

    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert_eq!(st["expires_at"], first.as_str());
    let left = st["expires_in"].as_str().unwrap();
    assert!(left.starts_with("1h5") && left.ends_with("left"), "{left}");
    // Every resource carries the tag, including IAM (read directly, not through tagstack).
    let ec2 = env.ec2();
    let iam = env.iam();
    let (untagged_vpcs, role_tag) = env.block(async {
        let mut f = env.owner_filters();
        f.push(aws_sdk_ec2::types::Filter::builder().name("tag:tagstack:expires-at").values(&first).build());
        let vpcs = ec2.describe_vpcs().set_filters(Some(f)).send().await.unwrap().vpcs().len();
        let tags = iam.list_role_tags().role_name(format!("tagstack-{}-ci-worker", env.project)).send().await.unwrap();
        let t = tags.tags().iter().find(|t| t.key() == "tagstack:expires-at").map(|t| t.value().to_string());
        (1 - vpcs, t)
    });
    assert_eq!(untagged_vpcs, 0);
    assert_eq!(role_tag.as_deref(), Some(first.as_str()));

    // A plain `up` keeps the expiry and writes nothing.
    env.proxy.clear_calls();
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(env.proxy.mutating_calls().is_empty());

    // `up --ttl` extends it on every resource.
    let plan = env.tagstack().args(&["plan", "--ttl", "5h", "--output", "json"]).run().success().json();
    assert_eq!(plan["expiry"]["from"], first.as_str());
    let up = env.tagstack().args(&["up", "--only", "infra", "--ttl", "5h", "--output", "json"]).run().success().json();
    let second = up["expires_at"].as_str().unwrap().to_string();
    assert!(second > first, "{second} <= {first}");
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert_eq!(st["expires_at"], second.as_str(), "an old tag survived somewhere");
    assert!(st["expires_in"].as_str().unwrap().starts_with("4h5"));

    env.tagstack().args(&["down", "--yes"]).run().success();
}

#[test]
fn reap_deletes_only_expired_environments() {
    let expired = TestEnv::new("reap");
    let fresh = expired.sibling("fresh");
    let forever = expired.sibling("forever");
    expired.tagstack().args(&["up", "--only", "infra", "--ttl", "1h"]).run().success();
    fresh.tagstack().args(&["up", "--only", "infra", "--ttl", "2h"]).run().success();
    forever.tagstack().args(&["up", "--only", "infra"]).run().success();
    expire(&expired);

    // Decoys: an expired VPC without tagstack's project/env tags, and one whose env tag is not
    // a name tagstack could have written.
    let ec2 = expired.ec2();
    let decoys: Vec<String> = expired.block(async {
        let mut ids = Vec::new();
        for tags in [
            vec![("tagstack:expires-at", PAST)],
            vec![
                ("tagstack:project", expired.project.as_str()),
                ("tagstack:env", "Not A Name"),
                ("tagstack:expires-at", PAST),
            ],
        ] {
            let spec = aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
                .build();
            let v = ec2.create_vpc().cidr_block("10.62.0.0/16").tag_specifications(spec).send().await.unwrap();
            ids.push(v.vpc().unwrap().vpc_id().unwrap().to_string());
        }
        ids
    });

    let project = expired.project.clone();
    let reap = |args: &[&str]| {
        let mut all = vec!["reap", "--region", crate::support::REGION, "--project", project.as_str()];
        all.extend_from_slice(args);
        // `reap` needs no config; the harness only supplies the emulator endpoint.
        fresh.tagstack().without_config().args(&all).run()
    };

    let dry = reap(&["--dry-run", "--output", "json"]).success().json();
    assert_eq!(dry["dry_run"], true);
    let reaped: Vec<&str> =
        dry["reaped"].as_array().unwrap().iter().map(|r| r["environment"].as_str().unwrap()).collect();
    assert_eq!(reaped, ["ci"]);
    assert_eq!(dry["reaped"][0]["outcome"], "would reap");
    let kept: Vec<&str> = dry["kept"].as_array().unwrap().iter().map(|r| r["environment"].as_str().unwrap()).collect();
    assert_eq!(kept, ["Not A Name", "fresh"]);
    assert_eq!(expired.owned_counts(), Counts::full(3), "a dry run deleted something");

    // Not a terminal and no --yes: refuse.
    reap(&[]).code(2);
    assert_eq!(expired.owned_counts(), Counts::full(3));

    let done = reap(&["--yes", "--output", "json"]).success().json();
    assert_eq!(done["reaped"][0]["outcome"], "reaped");
    assert_eq!(done["reaped"][0]["resources"], 12);
    assert_eq!(done["failed"], 0);
    assert_eq!(expired.owned_counts(), Counts::default());
    assert_eq!(fresh.owned_counts(), Counts::full(3), "an unexpired environment was reaped");
    assert_eq!(forever.owned_counts(), Counts::full(3), "an environment without expiry was reaped");
    let survivors = expired
        .block(async { ec2.describe_vpcs().set_vpc_ids(Some(decoys.clone())).send().await.unwrap().vpcs().len() });
    assert_eq!(survivors, 2, "a decoy VPC was reaped");

    // Nothing left to reap: a second run deletes nothing and exits 0.
    let again = reap(&["--yes", "--output", "json"]).success().json();
    assert_eq!(again["reaped"].as_array().unwrap().len(), 0);

    fresh.tagstack().args(&["down", "--yes"]).run().success();
    forever.tagstack().args(&["down", "--yes"]).run().success();
    expired.block(async {
        for id in &decoys {
            ec2.delete_vpc().vpc_id(id).send().await.unwrap();
        }
    });
}
