//! Baked node images against moto (issue 15), without a builder: an image of the config's
//! content address, made here with CreateImage as a finished bake leaves it, is what `plan`
//! names and what `up` launches new nodes from; `bake` reuses it (no builder, no second
//! image) and tags its snapshots; `bake --prune` deregisters only this environment's images
//! the config no longer matches, with their snapshots, never another environment's, another
//! project's or an untagged one; `down` deletes no image (`--delete-images`: the
//! environment's own) and terminates a builder a killed bake left.

use aws_sdk_ec2::types::{Filter, ResourceType};

use crate::support::{TestEnv, tag_spec};

/// The content address tagstack computes for the test's config (the library's own recipe,
/// on the base image the config's lookup resolves to).
fn config_hash(env: &TestEnv) -> String {
    let spec = tagstack::config::load_for_render(&env.config_path()).unwrap();
    let ec2 = env.ec2();
    let base = env.block(async {
        let resp = ec2
            .describe_images()
            .owners("099720109477")
            .filters(
                Filter::builder()
                    .name("name")
                    .values("ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-*")
                    .build(),
            )
            .filters(Filter::builder().name("state").values("available").build())
            .send()
            .await
            .unwrap();
        let newest = resp.images().iter().max_by(|a, b| a.creation_date().cmp(&b.creation_date())).unwrap();
        newest.image_id().unwrap().to_string()
    });
    tagstack::bake::Recipe::of(&spec, &base).unwrap().hash()
}

/// CreateImage of `instance` named `name` with `tags`; its id and snapshots.
fn image(env: &TestEnv, instance: &str, name: &str, tags: &[(&str, String)]) -> (String, Vec<String>) {
    let ec2 = env.ec2();
    env.block(async {
        let mut req = ec2.create_image().instance_id(instance).name(name);
        if !tags.is_empty() {
            let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            req = req.tag_specifications(tag_spec(&pairs, ResourceType::Image));
        }
        let id = req.send().await.unwrap().image_id().unwrap().to_string();
        let snaps = snapshots(&ec2, &id).await;
        (id, snaps)
    })
}

async fn snapshots(ec2: &aws_sdk_ec2::Client, image: &str) -> Vec<String> {
    let resp = ec2.describe_images().image_ids(image).send().await.unwrap();
    resp.images()
        .iter()
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
        .collect()
}

fn image_exists(env: &TestEnv, id: &str) -> bool {
    let ec2 = env.ec2();
    env.block(async { ec2.describe_images().image_ids(id).send().await.is_ok_and(|r| !r.images().is_empty()) })
}

fn snapshot_tags(env: &TestEnv, id: &str) -> Option<Vec<(String, String)>> {
    let ec2 = env.ec2();
    env.block(async {
        let resp = ec2.describe_snapshots().snapshot_ids(id).send().await.ok()?;
        let s = resp.snapshots().first()?;
        Some(s.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect())
    })
}

/// The image ids of the environment's running instances of `role`.
fn instance_images(env: &TestEnv, role: &str) -> Vec<String> {
    let ec2 = env.ec2();
    let mut filters = env.owner_filters();
    filters.push(Filter::builder().name("tag:tagstack:role").values(role).build());
    filters.push(Filter::builder().name("instance-state-name").values("running").build());
    env.block(async {
        let resp = ec2.describe_instances().set_filters(Some(filters)).send().await.unwrap();
        resp.reservations().iter().flat_map(|r| r.instances()).map(|i| i.image_id().unwrap().to_string()).collect()
    })
}

#[test]
fn plan_and_up_use_the_matching_image_bake_reuses_it_and_prune_takes_only_what_it_owns() {
    let env = TestEnv::new("bakeimg");
    env.write_config(1, "");
    let infra = env.tagstack().args(&["up", "--only", "infra", "--output", "json"]).run().success().json();
    let stock = instance_images(&env, "control-plane");
    assert_eq!(stock.len(), 1, "{infra}");

    // A project that never baked: the plan reads as before.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert!(plan.get("image").is_none(), "{plan}");

    let cp = {
        let ec2 = env.ec2();
        let mut filters = env.owner_filters();
        filters.push(Filter::builder().name("tag:tagstack:role").values("control-plane").build());
        env.block(async {
            let resp = ec2.describe_instances().set_filters(Some(filters)).send().await.unwrap();
            resp.reservations()[0].instances()[0].instance_id().unwrap().to_string()
        })
    };
    let hash = config_hash(&env);
    let (p, e) = (env.project.as_str(), env.environment.as_str());
    let sibling = format!("{e}i");
    let stale_hash = "0".repeat(64);
    // Tags of a baked image of `project`/`environment` with content hash `h`.
    let tags = |project: &str, environment: &str, h: &str| -> Vec<(&'static str, String)> {
        vec![
            ("tagstack:project", project.to_string()),
            ("tagstack:env", environment.to_string()),
            ("tagstack:component", "bake".to_string()),
            ("tagstack:bake-hash", h.to_string()),
        ]
    };
    let (baked, baked_snaps) = image(&env, &cp, &format!("tagstack-{p}-bake-{}", &hash[..24]), &tags(p, e, &hash));
    let (stale, stale_snaps) = image(&env, &cp, &format!("tagstack-{p}-bake-stale"), &tags(p, e, &stale_hash));
    let (sibling_img, _) = image(&env, &cp, &format!("tagstack-{p}-bake-sibling"), &tags(p, &sibling, &stale_hash));
    let (foreign, _) =
        image(&env, &cp, &format!("tagstack-{p}z-bake-{}", &hash[..24]), &tags(&format!("{p}z"), e, &hash));
    let (untagged, _) = image(&env, &cp, &format!("{p}-untagged"), &[]);
    assert!(!baked_snaps.is_empty() && !stale_snaps.is_empty(), "moto made no snapshots");

    // `plan` names the baked image and why.
    let plan = env.tagstack().args(&["plan", "--output", "json"]).run().success().json();
    assert_eq!(plan["image"]["image_id"], baked.as_str(), "{plan}");
    assert_eq!(plan["image"]["baked"], true, "{plan}");
    let text = env.tagstack().arg("plan").run().success();
    assert!(text.stdout.contains(&format!("Image for new nodes: {baked} (baked image")), "{}", text.stdout);

    // `bake` on an unchanged config reuses it: no builder, no image, its snapshots tagged.
    let launches = env.proxy.count("RunInstances");
    let bake = env.tagstack().args(&["bake", "--output", "json"]).run().success().json();
    assert_eq!(bake["reused"], true, "{bake}");
    assert_eq!(bake["image_id"], baked.as_str(), "{bake}");
    assert_eq!(bake["hash"], hash.as_str(), "{bake}");
    assert_eq!(env.proxy.count("RunInstances"), launches, "a reused bake launched a builder");
    assert_eq!(env.proxy.count("CreateImage"), 0, "a reused bake made an image");
    for s in &baked_snaps {
        let tags = snapshot_tags(&env, s).unwrap();
        assert!(tags.contains(&("tagstack:bake-hash".to_string(), hash.clone())), "{s}: {tags:?}");
        assert!(tags.contains(&("tagstack:env".to_string(), e.to_string())), "{s}: {tags:?}");
    }
    let human = env.tagstack().arg("bake").run().success();
    assert!(human.stdout.contains(&format!("Reusing {baked}")), "{}", human.stdout);

    // `up` launches the new worker from it; the running control plane stays as it is.
    env.write_config(2, "");
    env.tagstack().args(&["up", "--only", "infra"]).run().success();
    let workers = instance_images(&env, "worker");
    assert_eq!(workers.len(), 2, "{workers:?}");
    assert_eq!(workers.iter().filter(|i| **i == baked).count(), 1, "the new worker's image: {workers:?}");
    assert_eq!(instance_images(&env, "control-plane"), stock);
    // `status` lists the project's images and the nodes on each.
    let status = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    let listed = status["images"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "this project's three baked images: {status}");
    let row = listed.iter().find(|i| i["image_id"] == baked.as_str()).unwrap();
    assert_eq!(row["used_by_config"], true, "{status}");
    assert_eq!(row["nodes"].as_array().unwrap().len(), 1, "{status}");
    assert!(row["nodes"][0].as_str().unwrap().starts_with("worker-"), "{status}");
    let stale_row = listed.iter().find(|i| i["image_id"] == stale.as_str()).unwrap();
    assert_eq!(stale_row["used_by_config"], false, "{status}");

    // Prune: only this environment's image the config no longer matches, with its snapshots.
    let pruned = env.tagstack().args(&["bake", "--prune", "--output", "json"]).run().success().json();
    assert_eq!(pruned["deregistered"][0][0], stale.as_str(), "{pruned}");
    assert_eq!(pruned["deregistered"].as_array().unwrap().len(), 1, "{pruned}");
    assert_eq!(pruned["kept"][0], baked.as_str(), "{pruned}");
    assert!(!image_exists(&env, &stale));
    for s in &stale_snaps {
        assert!(snapshot_tags(&env, s).is_none(), "snapshot {s} of the pruned image is left");
    }
    for survivor in [&baked, &sibling_img, &foreign, &untagged] {
        assert!(image_exists(&env, survivor), "{survivor} was deleted");
    }

    // A builder a killed bake left (tagged as `bake` makes it, no role): `down` terminates it.
    let leaked = {
        let ec2 = env.ec2();
        let (base, tags) = (stock[0].clone(), tags(p, e, &hash));
        env.block(async {
            let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = ec2
                .run_instances()
                .image_id(base)
                .min_count(1)
                .max_count(1)
                .tag_specifications(tag_spec(&pairs, ResourceType::Instance))
                .send()
                .await
                .unwrap();
            r.instances()[0].instance_id().unwrap().to_string()
        })
    };

    // `down` deletes no image: they are shared by the project's environments.
    let down = env.tagstack().args(&["down", "--yes"]).run().success();
    for survivor in [&baked, &sibling_img, &foreign, &untagged] {
        assert!(image_exists(&env, survivor), "`down` deleted {survivor}");
    }
    assert!(down.stderr.contains(&leaked), "{}", down.stderr);
    let state = {
        let ec2 = env.ec2();
        env.block(async {
            let r = ec2.describe_instances().instance_ids(&leaked).send().await.unwrap();
            r.reservations()[0].instances()[0].state().unwrap().name().unwrap().as_str().to_string()
        })
    };
    assert_eq!(state, "terminated", "the leaked builder {leaked}");

    // Unless told: `down --delete-images` takes this environment's, and only those.
    let deleted = env.tagstack().args(&["down", "--yes", "--delete-images", "--output", "json"]).run().success().json();
    assert_eq!(deleted["deleted_images"][0][0], baked.as_str(), "{deleted}");
    assert_eq!(deleted["deleted_images"].as_array().unwrap().len(), 1, "{deleted}");
    assert!(!image_exists(&env, &baked));
    for survivor in [&sibling_img, &foreign, &untagged] {
        assert!(image_exists(&env, survivor), "`down --delete-images` deleted {survivor}");
    }
    let ec2 = env.ec2();
    env.block(async {
        for id in [&baked, &sibling_img, &foreign, &untagged] {
            let _ = ec2.deregister_image().image_id(id).send().await;
        }
    });
}
