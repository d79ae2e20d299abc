//! `tagstack bake`'s build path for real (issue 15): moto answers the AWS API through the
//! recording proxy and the builder is a test-bed node at the address moto gives it (as in
//! aws_end_to_end.rs), so prepare-node.sh, pull-images.sh and generalise.sh run over SSH on a
//! machine with its own /etc/ssh, machine-id, /var/log, /home and /var/lib/cloud
//! (`scripts/testbed`), against the stand-ins, which record what they install and pull.
//! A "launch" of an instance on a bed node is `scripts/testbed boot`: what systemd and
//! cloud-init do at first boot (machine-id, new host keys, the launch's key authorized, the keys
//! on the console), the console served by the proxy as GetConsoleOutput.
//!
//! One bed, in order: the control plane at .4 (node 0), the builder at .5 (node 1; moto hands a
//! terminated instance's address to the next launch, so every builder and then the worker
//! launched from the image land there). `tagstack bake` is SIGKILLed after its builder's
//! RunInstances, during the pulls, during generalise and after CreateImage, each time run again:
//! never a second live builder, exactly one image. Then the generalised disk is checked, a node
//! booted from it gets new host keys that `up` trusts through the console, and `prepare` and
//! the pulls on it install and pull nothing.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;

use crate::aws_end_to_end::{FIRST_HOST, config, nodes};
use crate::support::TestEnv;
use crate::support::bed::{Bed, NO_STACK, console_response};
use crate::support::fault_proxy::Rule;

/// The bed node every builder (and the worker launched from the image) lands on.
const BUILDER: usize = 1;

/// The images the add-ons' remote sources name at their pins (Flannel's release manifest,
/// kube-network-policies' install.yaml, the CCM base with tagstack's image override, the EBS
/// CSI stable overlay with its override and sidecars), which the stand-ins serve from the
/// upstream files (tests/fixtures/node-bin/_remote).
const ADDON_IMAGES: &[&str] = &[
    "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel2",
    "ghcr.io/flannel-io/flannel:v0.28.8",
    "registry.k8s.io/networking/kube-network-policies:v1.1.1",
    "registry.k8s.io/provider-aws/cloud-controller-manager:v1.36.1",
    "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver:v1.64.0",
    "public.ecr.aws/csi-components/csi-provisioner:v6.3.0-eksbuild.4",
    "public.ecr.aws/csi-components/csi-attacher:v4.12.0-eksbuild.5",
    "public.ecr.aws/csi-components/csi-snapshotter:v8.6.0-eksbuild.5",
    "public.ecr.aws/csi-components/csi-resizer:v2.2.1-eksbuild.3",
    "public.ecr.aws/csi-components/livenessprobe:v2.19.0-eksbuild.5",
    "public.ecr.aws/csi-components/csi-node-driver-registrar:v2.17.0-eksbuild.5",
];

/// The refs pulls.log (`TIME NS REF BY`) records in containerd's k8s.io namespace.
fn pulled_refs(log: &[String]) -> Vec<String> {
    log.iter()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [_, "k8s.io", r, ..] => Some(r.to_string()),
            _ => None,
        })
        .collect()
}

/// How long a kill point may take to come (a bound, not an assertion on speed).
const WAIT: Duration = Duration::from_secs(180);

/// Serve `console` as every instance's console output (only the builder's is read by `bake`).
fn serve_console_to_all(env: &TestEnv, console: &str) {
    env.proxy.clear_rules();
    env.proxy.add_rule(Rule::respond("GetConsoleOutput", &console_response("i-any", console)).forever());
}

/// The environment's builders that are not terminated: (id, tagged generalised).
fn live_builders(env: &TestEnv) -> Vec<(String, bool)> {
    let mut filters = env.owner_filters();
    filters.push(Filter::builder().name("tag:tagstack:component").values("bake").build());
    filters.push(
        Filter::builder()
            .name("instance-state-name")
            .values("pending")
            .values("running")
            .values("stopping")
            .values("stopped")
            .values("shutting-down")
            .build(),
    );
    env.block(async {
        let resp = env.ec2().describe_instances().set_filters(Some(filters)).send().await.unwrap();
        resp.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let generalised =
                    i.tags().iter().any(|t| t.key() == Some("tagstack:bake-step") && t.value() == Some("generalised"));
                (i.instance_id().unwrap().to_string(), generalised)
            })
            .collect()
    })
}

/// The project's images (owner self, its project tag): (id, name).
fn images(env: &TestEnv) -> Vec<(String, String)> {
    env.block(async {
        let resp = env
            .ec2()
            .describe_images()
            .owners("self")
            .filters(Filter::builder().name("tag:tagstack:project").values(&env.project).build())
            .send()
            .await
            .unwrap();
        resp.images().iter().map(|i| (i.image_id().unwrap().to_string(), i.name().unwrap_or("").to_string())).collect()
    })
}

/// True once the proxy answered a call of `action` whose body contains `needle` (moto applied it).
fn answered(env: &TestEnv, action: &str, needle: &str) -> bool {
    env.proxy.calls().iter().any(|c| c.action == action && c.body.contains(needle) && c.status != 0)
}

/// Runs `tagstack bake --events`, SIGKILLs it once `point` holds (or lets it end if it ends
/// first: the rules below hold either way); answers whether it was killed, and its stderr.
fn bake_killed_when(env: &TestEnv, what: &str, point: impl Fn() -> bool) -> (bool, String) {
    env.proxy.clear_calls();
    let mut child = env.tagstack().args(&["bake", "--events"]).spawn();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(status.success(), "bake ended before {what}: {status}\n{}", String::from_utf8_lossy(&out.stderr));
            return (false, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if point() {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            return (true, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        assert!(start.elapsed() < WAIT, "bake never reached {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// After each killed bake: at most one builder lives, at most one image exists.
fn at_most_one(env: &TestEnv, after: &str) {
    let builders = live_builders(env);
    assert!(builders.len() <= 1, "after {after}: builders {builders:?}");
    let imgs = images(env);
    assert!(imgs.len() <= 1, "after {after}: images {imgs:?}");
}

#[test]
fn bake_builds_on_a_bed_node_survives_sigkill_and_its_image_boots_with_new_host_keys() {
    let bed = Bed::up_from(2, FIRST_HOST);
    let env = TestEnv::new("bakebed");
    std::fs::write(env.config_path(), format!("{}{NO_STACK}", config(&env, &bed, 0, ""))).unwrap();
    let ctx = |e: &str| format!("{e} (bed {}, {})", bed.bed, bed.path().display());

    // The control plane from the stock image at .4; the network the builder needs.
    let infra = env.tagstack().args(&["up", "--only", "infra", "--output", "json"]).run().success().json();
    let cp: Vec<_> = nodes(&infra).into_iter().collect();
    assert_eq!(cp.len(), 1, "{infra}");
    assert_eq!(cp[0].1.1, bed.nodes[0].address, "{}", ctx("moto gave the control plane another address"));

    // The builder's machine: a new instance of the base image, with a log cloud-init wrote
    // and a second user's key, as on an Ubuntu image.
    let (first_key, console) = bed.boot(BUILDER, true);
    serve_console_to_all(&env, &console);
    std::fs::create_dir_all(bed.fs(BUILDER, "home/ubuntu/.ssh")).unwrap();
    std::fs::write(bed.fs(BUILDER, "home/ubuntu/.ssh/authorized_keys"), "ssh-ed25519 AAAAC3Nz builder@launch\n")
        .unwrap();
    // sshd reads authorized_keys2 too (its default AuthorizedKeysFile).
    std::fs::write(bed.fs(BUILDER, "home/ubuntu/.ssh/authorized_keys2"), "ssh-ed25519 AAAAC3Nz second@key\n").unwrap();
    std::fs::write(bed.fs(BUILDER, "var/log/syslog"), "Nov 30 07:00:01 node-1 systemd[1]: Started.\n").unwrap();
    std::fs::write(bed.fs(BUILDER, "var/log/syslog.1"), "older\n").unwrap();
    let pulls = bed.fs(BUILDER, "var/lib/standin/containerd/pulls.log");
    let history = bed.fs(BUILDER, "var/lib/standin/apt/history.log");

    // 1. Killed right after its builder's launch was applied.
    let (killed, _) = bake_killed_when(&env, "the builder's RunInstances", || answered(&env, "RunInstances", "bake"));
    assert!(killed, "{}", ctx("bake ended before its builder was launched?"));
    at_most_one(&env, "a kill after RunInstances");
    assert_eq!(live_builders(&env).len(), 1, "the launched builder is there");

    // 2. Killed during the pulls: the same builder is reused (not generalised, same hash).
    let before = live_builders(&env);
    bake_killed_when(&env, "the pulls", || !lines(&pulls).is_empty());
    at_most_one(&env, "a kill during the pulls");
    assert_eq!(live_builders(&env), before, "a builder that was not generalised is reused");

    // 3. Killed during generalise (its tag is set before the script starts).
    bake_killed_when(&env, "generalise", || answered(&env, "CreateTags", "generalised"));
    at_most_one(&env, "a kill during generalise");
    let generalised = live_builders(&env);
    assert!(generalised.iter().all(|(_, g)| *g), "{generalised:?}");
    assert!(images(&env).is_empty(), "no image before CreateImage");

    // 4. The next bake never connects to a generalised builder: it terminates it and launches
    // another (at the same address: a new instance of the base image on the same bed node).
    let (second_key, console) = bed.boot(BUILDER, true);
    assert_ne!(second_key, first_key);
    serve_console_to_all(&env, &console);
    std::fs::write(bed.fs(BUILDER, "var/log/cloud-init-output.log"), "Cloud-init v. 24.4 finished\n").unwrap();
    std::fs::write(bed.fs(BUILDER, "var/log/syslog"), "Nov 30 07:10:01 node-1 systemd[1]: Started.\n").unwrap();
    let (_, events) = bake_killed_when(&env, "CreateImage", || answered(&env, "CreateImage", ""));
    // The build's steps on a bed node, for docs/benchmarks.md (printed, never asserted).
    for line in events.lines().filter(|l| l.contains("\"finish\"") && l.contains("\"bake")) {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        eprintln!("bake step {}: {} ms", e["key"], e["elapsed_ms"]);
    }
    at_most_one(&env, "a kill after CreateImage");
    assert!(
        !live_builders(&env).iter().any(|(id, _)| generalised.iter().any(|(g, _)| g == id)),
        "the generalised builder was terminated"
    );

    // 5. The last run finds the image and only finishes: one image, no builder left.
    let done = env.tagstack().args(&["bake", "--output", "json"]).run().success().json();
    let imgs = images(&env);
    assert_eq!(imgs.len(), 1, "{imgs:?}");
    assert_eq!(done["image_id"], imgs[0].0.as_str(), "{done}");
    assert!(live_builders(&env).is_empty(), "a builder is left: {:?}", live_builders(&env));
    let hash = done["hash"].as_str().unwrap().to_string();
    let pull_list: Vec<String> =
        done["images"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
    assert!(!pull_list.is_empty(), "{done}");
    eprintln!("bake pulled {} image(s) besides kubeadm's: {pull_list:?}", pull_list.len());

    // What the build did on the node: kubeadm's images and the config's, in containerd's k8s.io.
    let present = lines(&bed.fs(BUILDER, "var/lib/standin/containerd/images/k8s.io.list"));
    for img in &pull_list {
        assert!(present.contains(img), "{img} not pulled: {present:?}");
    }
    assert!(present.iter().any(|i| i.starts_with("registry.k8s.io/kube-apiserver:v1.36.")), "{present:?}");
    // The add-ons' remote sources were read on the builder and what they name was pulled there
    // (the EBS CSI base's own driver tag is overridden, as `up` applies it).
    let builder_pulls = pulled_refs(&lines(&pulls));
    for img in ADDON_IMAGES {
        assert!(builder_pulls.iter().any(|r| r == img), "{img} not pulled on the builder: {builder_pulls:?}");
    }
    assert!(!builder_pulls.iter().any(|r| r.ends_with("aws-ebs-csi-driver:v1.63.1")), "{builder_pulls:?}");
    for pkg in ["containerd.io", "kubelet", "kubeadm", "kubectl"] {
        assert!(bed.installed(BUILDER, pkg).is_some(), "{pkg} not installed on the builder");
    }

    // The generalised disk: no host keys, an empty machine-id, no authorized key, no
    // cloud-init instance state, logs emptied, tagstack's own files gone.
    let host_keys: Vec<_> = std::fs::read_dir(bed.fs(BUILDER, "etc/ssh"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ssh_host_"))
        .collect();
    assert!(host_keys.is_empty(), "host keys left in the image: {host_keys:?}");
    assert_eq!(std::fs::read_to_string(bed.fs(BUILDER, "etc/machine-id")).unwrap(), "", "machine-id");
    for f in ["root/.ssh/authorized_keys", "home/ubuntu/.ssh/authorized_keys", "home/ubuntu/.ssh/authorized_keys2"] {
        assert!(!bed.fs(BUILDER, f).exists(), "{f} left in the image");
    }
    let cloud: Vec<_> = std::fs::read_dir(bed.fs(BUILDER, "var/lib/cloud")).unwrap().collect();
    assert!(cloud.is_empty(), "cloud-init state left: {cloud:?}");
    for f in ["var/log/cloud-init.log", "var/log/cloud-init-output.log", "var/log/syslog.1"] {
        assert!(!bed.fs(BUILDER, f).exists(), "{f} left in the image");
    }
    assert_eq!(std::fs::metadata(bed.fs(BUILDER, "var/log/syslog")).unwrap().len(), 0, "syslog not emptied");
    assert!(std::fs::read_dir(bed.fs(BUILDER, "var/lib/tagstack")).unwrap().next().is_none(), "tagstack's files left");
    let clean = lines(&bed.fs(BUILDER, "var/lib/standin/cloud-init/clean.log"));
    assert!(clean.last().is_some_and(|l| l.contains("logs=1")), "{clean:?}");

    // A worker launched from the image: moto gives it the builder's address, its first boot
    // new host keys, which `up` learns from its console and trusts, never the builder's.
    let installs_before = lines(&history).len();
    let pulls_before = lines(&pulls).len();
    std::fs::write(env.config_path(), format!("{}{NO_STACK}", config(&env, &bed, 1, ""))).unwrap();
    let infra = env.tagstack().args(&["up", "--only", "infra", "--output", "json"]).run().success().json();
    let (baked_key, worker_console) = bed.boot(BUILDER, false);
    assert_ne!(baked_key, second_key, "the node from the image kept the builder's host key");
    assert_ne!(baked_key, first_key);
    let (cp_key, cp_console) = bed.boot(0, false);
    env.proxy.clear_rules();
    let mut worker = None;
    for (id, (_, ip)) in nodes(&infra) {
        let console = if ip == bed.nodes[BUILDER].address {
            worker = Some(id.clone());
            &worker_console
        } else {
            &cp_console
        };
        env.proxy.add_rule(
            Rule::respond("GetConsoleOutput", &console_response(&id, console)).when_body_contains(&id).forever(),
        );
    }
    let worker = worker.unwrap_or_else(|| panic!("{}", ctx(&format!("no instance at the builder's address: {infra}"))));
    let image_of = |id: &str| {
        env.block(async {
            let r = env.ec2().describe_instances().instance_ids(id).send().await.unwrap();
            r.reservations()[0].instances()[0].image_id().unwrap().to_string()
        })
    };
    assert_eq!(image_of(&worker), imgs[0].0, "the new worker's image");

    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert!(up["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{up}");
    let tag = env.block(async {
        let r = env.ec2().describe_instances().instance_ids(&worker).send().await.unwrap();
        let i = &r.reservations()[0].instances()[0];
        i.tags().iter().find(|t| t.key() == Some("tagstack:ssh-host-key")).and_then(|t| t.value()).map(str::to_string)
    });
    assert_eq!(tag.as_deref(), Some(baked_key.as_str()), "the host key tagstack trusts for the worker");
    assert_ne!(cp_key, baked_key);

    // On the baked node, prepare-node.sh (the cluster stage's) installed nothing and nothing
    // was pulled; its own pull script, run again, pulls nothing either.
    assert_eq!(lines(&history).len(), installs_before, "installs on the baked node: {:?}", lines(&history));
    assert_eq!(lines(&pulls).len(), pulls_before, "pulls on the baked node: {:?}", lines(&pulls));
    let after_up = pulled_refs(&lines(&pulls)[pulls_before..]);
    assert!(!after_up.iter().any(|r| ADDON_IMAGES.contains(&r.as_str())), "add-on images pulled by up: {after_up:?}");
    let spec = tagstack::config::load_for_render(&env.config_path()).unwrap();
    let recipe = tagstack::bake::Recipe::of(&spec, done["base_ami"].as_str().unwrap()).unwrap();
    assert_eq!(recipe.hash(), hash, "the config's recipe is the baked one");
    std::fs::write(bed.fs(BUILDER, "tmp/pull-images.sh"), recipe.pull_script().unwrap()).unwrap();
    let name = up["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["instance_id"] == worker.as_str())
        .map(|n| n["name"].as_str().unwrap().to_string())
        .unwrap();
    let again = env.tagstack().args(&["ssh", &name, "--", "bash", "/tmp/pull-images.sh"]).run().success();
    assert!(again.stdout.contains("pulled=0"), "{}\n{}", again.stdout, again.stderr);
    assert_eq!(lines(&pulls).len(), pulls_before, "pulls on the baked node: {:?}", lines(&pulls));

    // `status` shows which node runs the baked image.
    let status = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    let row = status["images"].as_array().unwrap().iter().find(|i| i["image_id"] == imgs[0].0.as_str()).cloned();
    let row = row.unwrap_or_else(|| panic!("{status}"));
    assert_eq!(row["nodes"], serde_json::json!([name]), "{status}");
    assert_eq!(row["used_by_config"], true, "{status}");

    env.tagstack().args(&["down", "--yes", "--delete-images"]).run().success();
}
