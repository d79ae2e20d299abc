//! Node preparation (issue 9, items 1, 5 and 6) over real SSH on the test bed: first boot
//! (cloud-init, the dpkg lock), the pinned containerd and its sandbox image, and the exact
//! Kubernetes patch on every node. apt-get, apt-mark, dpkg-query, containerd, kubeadm and
//! cloud-init are the STAND-INS of tests/fixtures/node-bin (README there: what each models).

use crate::support::TestEnv;
use crate::support::bed::{Bed, NO_STACK, node_log as log};

/// A static environment for the first `nodes` nodes of the bed, at `version`.
fn env_for(bed: &Bed, name: &str, nodes: usize, version: &str, extra: &str) -> TestEnv {
    let env = TestEnv::new(name);
    write_config(bed, &env, nodes, version, extra);
    env
}

fn write_config(bed: &Bed, env: &TestEnv, nodes: usize, version: &str, extra: &str) {
    let full = bed.config(&env.project);
    let mut parts = full.split("\n[[nodes]]");
    let mut text = parts.next().unwrap().to_string();
    for block in parts.take(nodes) {
        text.push_str("\n[[nodes]]");
        text.push_str(block);
    }
    let text = text
        .replace("kubernetes_version = \"1.36\"", &format!("kubernetes_version = \"{version}\""))
        .replace("[cluster]\n", &format!("[cluster]\n{extra}"));
    std::fs::write(env.config_path(), format!("{text}{NO_STACK}")).unwrap();
}

/// Item 1. Models Ubuntu's first boot: cloud-init runs its package modules (apt-get holds the
/// dpkg lock) until `cloud-init status --wait` returns (canonical/cloud-init 26.2
/// cloudinit/cmd/status.py: blocks while running, exit 0 done / 1 error / 2 degraded), and
/// unattended-upgrades holds /var/lib/dpkg/lock-frontend for a while after boot (apt's
/// "Could not get lock ... It is held by process N (unattended-upgr)"; apt-get honours
/// `-o DPkg::Lock::Timeout=N`, apt.conf(5)). Before: the first apt-get failed at once (exit 100).
#[test]
fn first_boot_waits_for_cloud_init_and_for_the_dpkg_lock() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "firstboot", 2, "1.36", "");
    // Long enough that `up` reaches both under any load (a first boot counts from now, and the
    // assertions need prepare to meet each one still busy); short of the lock budget (90 s).
    bed.first_boot(0, 10, 0); // cloud-init still running on the control plane
    bed.first_boot(1, 0, 15); // unattended-upgrades holding the lock on the worker
    env.tagstack().arg("up").run().success();
    // The control plane waited for cloud-init itself, so apt never met cloud-init's lock.
    let cp = log(&env, "cp");
    assert!(cp.contains("waiting for cloud-init (first boot) to finish"), "{cp}");
    assert!(!cp.contains("Waiting for cache lock"), "{cp}");
    let w1 = log(&env, "w1");
    assert!(w1.contains("Waiting for cache lock") && w1.contains("unattended-upgr"), "{w1}");
}

/// Item 1: a lock that never frees (the same apt behaviour as above, the holder never exits)
/// ends within the budget (half of cluster.bootstrap_timeout) in an error naming the node, the
/// lock and its holder. Before: apt's bare error at once, with no wait.
#[test]
fn a_dpkg_lock_that_never_frees_names_node_lock_and_holder() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "lockheld", 2, "1.36", "");
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(env.config_path(), config.replace("bootstrap_timeout = \"3m\"", "bootstrap_timeout = \"20s\""))
        .unwrap();
    bed.first_boot(1, 0, 3600);
    let run = env.tagstack().arg("up").run().code(1);
    // It waited (apt's own message while it does), then gave up: no wall-time assertion, the
    // budget is whole seconds counted on the node.
    assert!(log(&env, "w1").contains("Waiting for cache lock"), "{}", log(&env, "w1"));
    assert!(run.stderr.contains("node w1"), "{}", run.stderr);
    assert!(
        run.stderr.contains("gave up waiting 10s for the package lock on node-1: /var/lib/dpkg/lock-frontend is held by process 1234 (unattended-upgr)"),
        "{}",
        run.stderr
    );
}

/// Item 5. Models containerd's RELEASES.md "Kubernetes Support" table (1.34 -> 2.1.3+, ...;
/// containerd v2.3.4) with Docker's repository serving several containerd.io versions
/// (2.1.5-1 ... 2.3.5-1), each line with its own default sandbox image (containerd
/// internal/cri/config/config.go: 2.1 pause:3.10, 2.3 pause:3.10.2) while kubeadm 1.34 names
/// pause:3.10.1 (`kubeadm config images list`; kubeadm warns when the CRI's sandbox differs,
/// preflight checks.go). Before: the newest containerd.io (2.3.5) with its own pause image.
#[test]
fn containerd_is_pinned_held_and_runs_kubeadms_pause_image() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "ctrd", 2, "1.34", "");
    env.tagstack().arg("up").run().success();
    for k in 0..2 {
        let v = bed.installed(k, "containerd.io").unwrap();
        assert!(v.starts_with("2.1.5-1~"), "node {k}: containerd.io {v}");
        assert!(bed.fs(k, "var/lib/standin/apt/holds/containerd.io").exists(), "node {k}: containerd.io not held");
        let running = std::fs::read_to_string(bed.fs(k, "var/lib/standin/systemd/containerd.running.json")).unwrap();
        assert!(running.contains("registry.k8s.io/pause:3.10.1"), "node {k}: {running}");
        let l = log(&env, &Bed::name(k));
        assert!(!l.contains("inconsistent with that used by kubeadm"), "{l}");
        assert!(
            l.contains("containerd configured (SystemdCgroup = true, sandbox registry.k8s.io/pause:3.10.1)"),
            "{l}"
        );
    }
}

/// Item 5: a node whose containerd is older than the minor supports (RELEASES.md: 1.36 ->
/// 2.3.0+, 2.2.0+) fails prepare with what to do. w1 has Ubuntu's own `containerd` 1.7.28
/// (which apt would silently replace: containerd.io Conflicts/Replaces containerd, runc in
/// docker/containerd-packaging debian/control), w2 a held containerd.io 2.1.5 from an older
/// Docker install. Before: w1's runtime was replaced, w2 kept 2.1.5, and kubeadm 1.36 only
/// warned (ContainerRuntimeVersion is a warning before 1.38: kubernetes/kubernetes#139122).
#[test]
fn an_old_containerd_stops_prepare_with_a_clear_message() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "oldctrd", 3, "1.36", "");
    bed.preinstall(1, "containerd", "1.7.28-0ubuntu1~24.04.1", false);
    bed.preinstall(2, "containerd.io", "2.1.5-1~debian.12~bookworm", true);
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("node w1"), "{}", run.stderr);
    assert!(
        run.stderr.contains("node-1 has the containerd package 1.7.28-0ubuntu1~24.04.1 installed: containerd 1.7.28 is older than Kubernetes 1.36 supports (2.3.0 2.2.0 or newer lines"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("containerd 2.1.5 on node-2 is older than Kubernetes 1.36 supports"), "{}", run.stderr);
    assert_eq!(bed.installed(1, "containerd").as_deref(), Some("1.7.28-0ubuntu1~24.04.1"), "w1's runtime was replaced");
}

/// Item 6. Models pkgs.k8s.io's flat repository, which serves every patch of a minor
/// (`kubeadm 1.36.0-1.1`, `1.36.1-1.1`; apt picks the newest unless a version is given, and
/// takes a version glob like `kubeadm=1.36.0-*`, as kubernetes.io's kubeadm upgrade page does),
/// and kubeadm's join preflight, which refuses a kubelet newer than the control plane
/// (KubeletVersion). Before: 1.36.0 installed 1.36.1, and a worker added later got the newest
/// patch whatever the control plane ran.
#[test]
fn an_exact_patch_is_installed_and_a_later_worker_gets_the_control_planes_patch() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "patch", 2, "1.36.0", "");
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert_eq!(up["cluster"]["kubernetes_version"], "v1.36.0", "{up}");
    for k in 0..2 {
        for p in ["kubelet", "kubeadm", "kubectl"] {
            assert_eq!(bed.installed(k, p).as_deref(), Some("1.36.0-1.1"), "node {k} {p}");
        }
    }
    // A month later: the config names only the minor, and a third node joins.
    write_config(&bed, &env, 3, "1.36", "");
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    assert_eq!(up["cluster"]["kubernetes_version"], "v1.36.0", "{up}");
    assert_eq!(bed.installed(2, "kubelet").as_deref(), Some("1.36.0-1.1"));
    assert!(up["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{up}");
}

/// Item 1: cloud-init installed but not run on this boot (a static machine or a container with
/// the package): `cloud-init status` says "not run" and `--wait` would wait for ever (its wait
/// loop continues while not run or running: canonical/cloud-init cloudinit/cmd/status.py), so
/// prepare must not wait for it. And a package removed but not purged (dpkg status
/// config-files, `rc`) is not installed: dpkg-query still prints its version (dpkg-query(1)
/// db:Status-Status), which must not pass for an installed containerd.
#[test]
fn a_cloud_init_that_never_ran_and_a_removed_package_do_not_stop_prepare() {
    let bed = Bed::up(1);
    let env = env_for(&bed, "notrun", 1, "1.36", "");
    let state = bed.fs(0, "var/lib/standin");
    std::fs::create_dir_all(state.join("cloud-init")).unwrap();
    std::fs::write(state.join("cloud-init/result"), "not-run\n").unwrap();
    std::fs::create_dir_all(state.join("dpkg-removed")).unwrap();
    std::fs::write(state.join("dpkg-removed/containerd"), "1.7.28-0ubuntu1~24.04.1\n").unwrap();
    std::fs::write(state.join("dpkg-removed/containerd.io"), "2.3.4-2~ubuntu.24.04~noble\n").unwrap();
    env.tagstack().arg("up").run().success();
    let l = log(&env, "cp");
    assert!(l.contains("cloud-init has not run on this boot (not run): not waiting for it"), "{l}");
    assert!(l.contains("installing containerd 2.3.4"), "{l}");
    assert!(bed.installed(0, "containerd.io").unwrap().starts_with("2.3.4-"));
}

/// Item 6: another Kubernetes version already on a node is never replaced behind the user's
/// back. In a running cluster a patch change is a kubeadm upgrade (kubeadm's upgrade docs: the
/// control plane first, `kubeadm upgrade apply`, then each node); on a spare machine an older
/// version than installed is a downgrade, which apt refuses without --allow-downgrades ("E:
/// Packages were downgraded and -y was used without --allow-downgrades", apt-get(8)).
#[test]
fn a_different_kubernetes_version_on_a_node_is_not_replaced_silently() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "patchchg", 1, "1.36", "");
    env.tagstack().arg("up").run().success();
    assert!(bed.installed(0, "kubeadm").unwrap().starts_with("1.36.1-"));
    write_config(&bed, &env, 1, "1.36.0", "");
    let run = env.tagstack().arg("up").run().code(1);
    assert!(
        run.stderr.contains(
            "runs Kubernetes 1.36.1 in a cluster; installing 1.36.0 there would change it under its running kubelet"
        ),
        "{}",
        run.stderr
    );
    assert!(bed.installed(0, "kubeadm").unwrap().starts_with("1.36.1-"), "changed anyway");

    // A machine that is in no cluster but has a newer kubeadm: no downgrade either.
    for p in ["kubelet", "kubeadm", "kubectl"] {
        bed.preinstall(1, p, "1.36.1-1.1", true);
    }
    let spare = env_for(&bed, "patchdown", 2, "1.36.0", "");
    let config = std::fs::read_to_string(spare.config_path()).unwrap();
    let only_w1: String = {
        // Node 1 as the control plane of its own environment.
        let (head, rest) = config.split_once("\n[[nodes]]").unwrap();
        let second = rest.split("\n[[nodes]]").nth(1).unwrap().replace("role = \"worker\"", "role = \"control-plane\"");
        let (nodes, stack) = second.split_once("\n[stack.kafka]").unwrap();
        format!("{head}\n[[nodes]]{nodes}\n[stack.kafka]{stack}")
    };
    std::fs::write(spare.config_path(), only_w1).unwrap();
    let run = spare.tagstack().arg("up").run().code(1);
    assert!(
        run.stderr.contains("has kubeadm 1.36.1, newer than kubernetes_version = 1.36.0: tagstack does not downgrade"),
        "{}",
        run.stderr
    );
}
