//! Kubernetes minor upgrades on the SSH test bed (issue 12, item 3): raising
//! `kubernetes_version` by one minor moves a running cluster, control plane first, then each
//! worker drained, upgraded and uncordoned in turn; a failure half-way is finished by the next
//! `up` (the state is read back from the cluster); a skipped minor or a downgrade is refused
//! before anything runs. The stand-ins (tests/fixtures/node-bin/README.md, "kubeadm upgrade")
//! keep kubeadm's upgrade policy, and log every upgrade step in order to the shared
//! `upgrade.log` (`TIME HOST WHAT`): kubeadm's apply/node, the kubelet's restart with its new
//! version, kubectl's cordon/drain/uncordon.

use crate::support::TestEnv;
use crate::support::bed::{Bed, cluster_env as env_for};

fn set_version(env: &TestEnv, v: &str) {
    let path = env.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| l.starts_with("kubernetes_version = ")).unwrap().to_string();
    std::fs::write(&path, text.replace(&line, &format!("kubernetes_version = \"{v}\""))).unwrap();
}

/// `upgrade.log` without the times: `HOST WHAT`.
fn steps(bed: &Bed) -> Vec<String> {
    std::fs::read_to_string(bed.cluster_state("upgrade.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_once(' ').map(|(_, rest)| rest.to_string()).unwrap_or_default())
        .collect()
}

fn node_kv(bed: &Bed, name: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(bed.cluster_state(&format!("nodes/{name}"))).unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn kubelet(bed: &Bed, name: &str) -> String {
    node_kv(bed, name, "kubelet_version").unwrap_or_default()
}

fn cluster_version(bed: &Bed) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bed.cluster_state("cluster.json")).unwrap()).unwrap();
    info["kubernetesVersion"].as_str().unwrap().to_string()
}

fn position(steps: &[String], step: &str) -> usize {
    steps.iter().position(|s| s == step).unwrap_or_else(|| panic!("no step {step:?} in {steps:#?}"))
}

/// Every node ends on the new minor, and nothing of the upgrade is left on any node.
fn all_on(bed: &Bed, version: &str) {
    assert_eq!(cluster_version(bed), format!("v{version}"));
    for k in 0..bed.nodes.len() {
        let name = Bed::name(k);
        assert_eq!(kubelet(bed, &name), format!("v{version}"), "{name}'s kubelet");
        for pkg in ["kubeadm", "kubelet", "kubectl"] {
            assert!(bed.installed(k, pkg).unwrap().starts_with(&format!("{version}-")), "{name} {pkg}");
        }
        assert_eq!(node_kv(bed, &name, "unschedulable"), None, "{name} is left cordoned");
        assert!(!node_kv(bed, &name, "annotations").unwrap_or_default().contains("tagstack/"), "{name}");
    }
}

#[test]
fn one_minor_up_moves_the_control_plane_then_each_worker_drained_in_turn() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "upgrade");
    set_version(&env, "1.35");
    env.tagstack().arg("up").run().success();
    assert_eq!(cluster_version(&bed), "v1.35.1");

    set_version(&env, "1.36");
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert_eq!(up["upgrade"]["from"], "1.35.1", "{up}");
    assert_eq!(up["upgrade"]["to"], "1.36.1", "{up}");
    assert_eq!(up["upgrade"]["nodes"], serde_json::json!(["cp", "w1", "w2"]), "{up}");
    assert!(up["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{up}");
    all_on(&bed, "1.36.1");

    // The order: the control plane's apply, then its kubelet (drained around it), then each
    // worker: cordoned and drained before its kubeadm and kubelet, uncordoned after, one at a
    // time (kubeadm-upgrade docs, "Upgrading control plane nodes", "Upgrading Linux nodes").
    let s = steps(&bed);
    let order = [
        "node-0 apply v1.36.1 static-pods",
        "node-0 apply v1.36.1 done",
        "node-0 cordon cp",
        "node-0 drained cp",
        "node-0 kubelet v1.36.1",
        "node-0 uncordon cp",
        "node-0 cordon w1",
        "node-0 drained w1",
        "node-1 node v1.36.1",
        "node-1 kubelet v1.36.1",
        "node-0 uncordon w1",
        "node-0 cordon w2",
        "node-0 drained w2",
        "node-2 node v1.36.1",
        "node-2 kubelet v1.36.1",
        "node-0 uncordon w2",
    ];
    let at: Vec<usize> = order.iter().map(|step| position(&s, step)).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "out of order: {s:#?}");
    assert_eq!(s.len(), order.len(), "{s:#?}");

    // The add-ons were applied again after the upgrade, by the cluster stage of the new minor.
    let applied = std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap();
    assert!(applied.lines().filter(|l| l.contains("flannel")).count() >= 2, "{applied}");

    // Converged: the next `up` upgrades nothing.
    let again = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert!(again.get("upgrade").is_none(), "{again}");
    assert_eq!(steps(&bed), s);
}

/// `kubeadm upgrade apply` fails after the control plane's static pods moved to 1.36 but before
/// the ClusterConfiguration was uploaded; no worker was touched. The next `up` reads the cluster
/// (still 1.35 in kubeadm-config), applies again (kubeadm upgrade is idempotent: "Recovering from
/// a failure state") and finishes every node. Then a worker's `kubeadm upgrade node` fails after
/// its drain: the next `up` resumes at that worker (left cordoned, with tagstack's annotation)
/// without touching the control plane again.
#[test]
fn an_upgrade_stopped_half_way_is_finished_by_the_next_up() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "upgresume");
    set_version(&env, "1.35");
    env.tagstack().arg("up").run().success();

    std::fs::write(bed.fs(0, "var/lib/standin/kubeadm-fail"), "upgrade-apply upgrade/upload-config\n").unwrap();
    set_version(&env, "1.36");
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("node cp: step `upgrade` failed"), "{}", run.stderr);
    assert!(run.stderr.contains("error execution phase upload-config"), "{}", run.stderr);
    let manifest = std::fs::read_to_string(bed.fs(0, "etc/kubernetes/manifests/kube-apiserver.yaml")).unwrap();
    assert!(manifest.contains("kube-apiserver:v1.36.1"), "the static pods did not move: {manifest}");
    assert_eq!(cluster_version(&bed), "v1.35.1");
    assert_eq!(steps(&bed), ["node-0 apply v1.36.1 static-pods"]);
    for w in ["w1", "w2"] {
        assert_eq!(kubelet(&bed, w), "v1.35.1");
        assert_eq!(node_kv(&bed, w, "unschedulable"), None);
    }

    env.tagstack().arg("up").run().success();
    all_on(&bed, "1.36.1");
    let s = steps(&bed);
    assert_eq!(s.iter().filter(|l| *l == "node-0 apply v1.36.1 static-pods").count(), 2, "{s:#?}");

    // A second cluster at 1.35, whose worker fails in `kubeadm upgrade node`.
    let bed = Bed::up(3);
    let env = env_for(&bed, "upgnode");
    set_version(&env, "1.35");
    env.tagstack().arg("up").run().success();
    std::fs::write(bed.fs(1, "var/lib/standin/kubeadm-fail"), "upgrade-node upgrade/kubelet-config\n").unwrap();
    set_version(&env, "1.36");
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("node w1: step `upgrade` failed"), "{}", run.stderr);
    assert_eq!(cluster_version(&bed), "v1.36.1");
    assert_eq!(kubelet(&bed, "cp"), "v1.36.1");
    assert_eq!(kubelet(&bed, "w1"), "v1.35.1");
    assert_eq!(node_kv(&bed, "w1", "unschedulable").as_deref(), Some("true"), "w1 stays cordoned for the resume");
    assert_eq!(kubelet(&bed, "w2"), "v1.35.1");
    let before = steps(&bed).len();

    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert_eq!(up["upgrade"]["nodes"], serde_json::json!(["w1", "w2"]), "{up}");
    all_on(&bed, "1.36.1");
    let resumed = &steps(&bed)[before..];
    assert!(!resumed.iter().any(|l| l.contains(" apply ") || l.ends_with(" cp")), "{resumed:#?}");
}

/// Skipping a minor and going down are refused before anything runs, with the supported path.
#[test]
fn skipping_a_minor_or_going_down_is_refused_before_anything_runs() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "upgskip");
    set_version(&env, "1.34");
    env.tagstack().arg("up").run().success();
    let list = |k: usize| std::fs::read_to_string(bed.fs(k, "etc/apt/sources.list.d/kubernetes.list")).unwrap();
    let lists: Vec<String> = (0..2).map(list).collect();

    set_version(&env, "1.36");
    let run = env.tagstack().arg("up").run().code(1);
    assert!(
        run.stderr.contains("kubernetes_version = \"1.36\" skips a minor: the cluster runs 1.34.1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: upgrade to 1.35 first, then 1.36"), "{}", run.stderr);

    set_version(&env, "1.33");
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("is older than the 1.34.1 the cluster runs"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: tagstack does not downgrade: set kubernetes_version = \"1.34\""),
        "{}",
        run.stderr
    );

    // kubeadm itself refuses the same jump (the stand-in keeps policy.go's checks), before any
    // change: too many minors at once, and a target newer than the installed kubeadm.
    let direct = env.tagstack().args(&["ssh", "cp", "--", "kubeadm", "upgrade", "apply", "v1.36.1", "--yes"]).run();
    assert_eq!(direct.code, 1, "{}", direct.stderr);
    let said = format!("{}{}", direct.stdout, direct.stderr);
    assert!(said.contains("is too high; kubeadm can upgrade only 1 minor version at a time"), "{said}");
    assert!(said.contains("is at least one minor release higher than the kubeadm minor release (36 > 34)"), "{said}");

    // Nothing touched: no upgrade step, the same packages and repository on every node.
    assert!(steps(&bed).is_empty(), "{:#?}", steps(&bed));
    assert_eq!(cluster_version(&bed), "v1.34.1");
    for (k, before) in lists.iter().enumerate() {
        assert_eq!(bed.installed(k, "kubeadm").unwrap(), "1.34.1-1.1");
        assert_eq!(&list(k), before);
    }
}
