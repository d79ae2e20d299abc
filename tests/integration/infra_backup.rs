//! The backup bucket (`[backup]`, issue 12) against moto's S3: `up` creates it tagged,
//! encrypted, public access blocked, with the retention rule and ACLs disabled; drift is shown
//! and fixed; `status` shows the newest snapshot; `down` keeps it and says so, `down
//! --delete-backups` empties and deletes it; decoy buckets (a sibling environment's, a
//! look-alike name) are never touched; a bucket of the environment's name without its tags is
//! refused when backups are wanted and ignored when they are not.

use crate::support::decoys::DecoyBuckets;
use crate::support::{Counts, MOTO_ACCOUNT, TestEnv};

const BACKUP: &str = "[backup]\nretention_days = 7\n";

fn bucket_tags(env: &TestEnv, name: &str) -> Vec<(String, String)> {
    let s3 = env.s3();
    let mut tags: Vec<(String, String)> = env.block(async {
        let out = s3.get_bucket_tagging().bucket(name).send().await.unwrap();
        out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
    });
    tags.sort();
    tags
}

fn bucket_exists(env: &TestEnv, name: &str) -> bool {
    let s3 = env.s3();
    env.block(async { s3.head_bucket().bucket(name).send().await.is_ok() })
}

/// What moto holds for the bucket's settings, read straight from it.
fn assert_configured(env: &TestEnv, name: &str, days: i32) {
    let s3 = env.s3();
    env.block(async {
        let enc = s3.get_bucket_encryption().bucket(name).send().await.unwrap();
        let rules = enc.server_side_encryption_configuration().unwrap().rules();
        let algo = rules[0].apply_server_side_encryption_by_default().unwrap().sse_algorithm();
        assert_eq!(algo.as_str(), "AES256");
        let pab = s3.get_public_access_block().bucket(name).send().await.unwrap();
        let c = pab.public_access_block_configuration().unwrap();
        assert_eq!(
            (c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()),
            (Some(true), Some(true), Some(true), Some(true))
        );
        let lc = s3.get_bucket_lifecycle_configuration().bucket(name).send().await.unwrap();
        let rule = lc.rules().iter().find(|r| r.id() == Some("tagstack-retention")).unwrap();
        assert_eq!(rule.status().as_str(), "Enabled");
        assert_eq!(rule.expiration().and_then(|e| e.days()), Some(days));
        let own = s3.get_bucket_ownership_controls().bucket(name).send().await.unwrap();
        assert_eq!(own.ownership_controls().unwrap().rules()[0].object_ownership().as_str(), "BucketOwnerEnforced");
    });
}

#[test]
fn the_backup_bucket_is_created_configured_kept_by_down_and_deleted_on_request() {
    let env = TestEnv::new("bkup");
    env.write_config(1, BACKUP);
    let decoys = DecoyBuckets::make(&env);
    let bucket = env.backup_bucket();
    assert_eq!(bucket, format!("tagstack-{}-ci-{MOTO_ACCOUNT}", env.project));

    // plan shows the bucket as its own kind, with what a new one gets.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    let changes = plan["changes"].as_array().unwrap();
    let b = changes.iter().find(|c| c["kind"] == "backup-bucket").unwrap();
    assert_eq!(b["name"], bucket.as_str());
    assert_eq!(b["action"], "create");
    assert_eq!(
        b["fixes"],
        serde_json::json!([
            "disable ACLs (bucket owner enforced)",
            "block all public access",
            "encrypt objects by default (SSE-S3)",
            "expire snapshots after 7 days"
        ])
    );

    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert!(bucket_exists(&env, &bucket));
    let p = env.project.clone();
    let want: Vec<(String, String)> = [
        ("Name", format!("{p}-ci-backups")),
        (&format!("kubernetes.io/cluster/{p}-ci"), "owned".to_string()),
        ("tagstack:component", "backups".to_string()),
        ("tagstack:env", "ci".to_string()),
        ("tagstack:project", p.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(bucket_tags(&env, &bucket), want);
    assert_configured(&env, &bucket, 7);
    env.tagstack().args(&["plan", "--detailed-exitcode"]).run().code(0);

    // Drift: public access unblocked and another retention in the config; plan names both,
    // up fixes both.
    let s3 = env.s3();
    env.block(async { s3.delete_public_access_block().bucket(&bucket).send().await.unwrap() });
    env.write_config(1, "[backup]\nretention_days = 30\n");
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    let b = plan["changes"].as_array().unwrap().iter().find(|c| c["kind"] == "backup-bucket").unwrap().clone();
    assert_eq!(b["action"], "update");
    assert_eq!(b["fixes"], serde_json::json!(["block all public access", "expire snapshots after 30 days"]));
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    assert_configured(&env, &bucket, 30);
    env.tagstack().args(&["plan", "--detailed-exitcode"]).run().code(0);

    // status: the bucket without a snapshot, then its newest snapshot.
    let status = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert_eq!(status["backups"]["bucket"], bucket.as_str());
    assert!(status["backups"]["newest"].is_null(), "{}", status["backups"]);
    let older = format!("{p}-ci/etcd-2026-01-01T00:00:00Z.db");
    let newer = format!("{p}-ci/etcd-2026-01-02T00:00:00Z.db");
    env.block(async {
        for key in [&newer, &older] {
            s3.put_object()
                .bucket(&bucket)
                .key(key.as_str())
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"snapshot"))
                .send()
                .await
                .unwrap();
        }
    });
    let status = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert_eq!(status["backups"]["newest"]["key"], newer.as_str());
    assert_eq!(status["backups"]["newest"]["size"], 8);
    assert!(status["backups"]["newest_age"].is_string(), "{}", status["backups"]);
    let human = env.tagstack().args(&["status"]).run().success();
    assert!(human.stdout.contains(&format!("Backups: s3://{bucket}: newest {newer} (8 bytes, ")), "{}", human.stdout);

    // down keeps the bucket, with its snapshots, and says so.
    let down = env.tagstack().args(&["down", "--yes", "--output", "json"]).run().success().json();
    assert_eq!(down["failed"], 0);
    assert_eq!(down["kept_backups"], bucket.as_str());
    assert!(down["deleted"].as_array().unwrap().iter().all(|d| d["kind"] != "backup-bucket"));
    assert_eq!(env.owned_counts(), Counts::default());
    assert!(bucket_exists(&env, &bucket));
    let again = env.tagstack().args(&["down", "--yes"]).run().success();
    assert!(again.stdout.contains("nothing to delete"), "{}", again.stdout);
    assert!(again.stdout.contains(&format!("kept: backup bucket {bucket}")), "{}", again.stdout);

    // --delete-backups empties it (every object) and deletes it.
    let down = env.tagstack().args(&["down", "--yes", "--delete-backups", "--output", "json"]).run().success().json();
    let gone: Vec<&serde_json::Value> =
        down["deleted"].as_array().unwrap().iter().filter(|d| d["kind"] == "backup-bucket").collect();
    assert_eq!(gone.len(), 1, "{down}");
    assert_eq!(gone[0]["outcome"], "deleted");
    assert!(down.get("kept_backups").is_none(), "{down}");
    assert!(!bucket_exists(&env, &bucket));
    decoys.assert_untouched(&env);
}

#[test]
fn a_bucket_of_the_environments_name_without_its_tags_is_never_used() {
    let env = TestEnv::new("bkfo");
    let bucket = env.backup_bucket();
    let s3 = env.s3();
    env.block(async {
        s3.create_bucket()
            .bucket(&bucket)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(crate::support::REGION))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        s3.put_object()
            .bucket(&bucket)
            .key("theirs.db")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    });

    // Without [backup] nothing looks at it: plan works and shows no bucket.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert!(plan["changes"].as_array().unwrap().iter().all(|c| c["kind"] != "backup-bucket"), "{plan}");

    // With [backup], plan and up refuse before any write, naming it.
    env.write_config(1, BACKUP);
    let run = env.tagstack().args(&["plan"]).run().code(1);
    assert!(
        run.stderr
            .contains(&format!("S3 bucket {bucket} exists but is not provably this environment's (it has no tags)")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    env.proxy.clear_calls();
    env.tagstack().args(&["up", "--only", "infra"]).run().code(1);
    assert!(env.proxy.mutating_calls().is_empty(), "{:?}", env.proxy.mutating_calls());

    // down --delete-backups does not delete what is not the environment's.
    env.tagstack().args(&["down", "--yes", "--delete-backups"]).run().success();
    let keys: Vec<String> = env.block(async {
        let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
        listed.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
    });
    assert_eq!(keys, ["theirs.db"]);
}

/// The bucket carries the run's expiry like everything else, but it outlives `down` on purpose:
/// its (passed) expiry must not become the expiry of the next environment of that name.
#[test]
fn a_kept_bucket_does_not_hand_its_expiry_to_the_next_environment() {
    let env = TestEnv::new("bkex");
    env.write_config(0, BACKUP);
    let first =
        env.tagstack().args(&["up", "--only", "infra", "--ttl", "1h", "--output", "json"]).run().success().json();
    let expiry = first["expires_at"].as_str().unwrap().to_string();
    let bucket = env.backup_bucket();
    assert!(bucket_tags(&env, &bucket).contains(&("tagstack:expires-at".to_string(), expiry)));
    env.tagstack().args(&["down", "--yes"]).run().success();
    assert!(bucket_exists(&env, &bucket));

    let again = env.tagstack().args(&["up", "--only", "infra", "--output", "json"]).run().success().json();
    assert!(again["expires_at"].is_null(), "{again}");
    env.tagstack().args(&["down", "--yes", "--delete-backups"]).run().success();
    assert!(!bucket_exists(&env, &bucket));
}
