//! The cluster stage over real SSH: sshd hosts in network namespaces (scripts/testbed) whose
//! kubeadm, kubectl, kubelet units, containerd, apt-get, curl, gpg, modprobe and sysctl are
//! STAND-INS (tests/fixtures/node-bin) that follow the real programs' command lines and check
//! what the real ones would reject. SSH, host-key checking, uploads, bash, openssl (the CA and
//! its hash) and the scripts themselves are real.

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use crate::support::bed::{Bed, cluster_env as env_for, node_log as log};

#[test]
fn bootstraps_one_plus_three_in_parallel_and_a_rerun_changes_nothing() {
    let bed = Bed::up(4);
    let env = env_for(&bed, "kube");
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    let nodes = up["cluster"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert!(nodes.iter().all(|n| n["ready"] == true), "{up}");
    assert_eq!(up["cluster"]["kubernetes_version"], "v1.36.1");

    // Workers joined with the CA hash computed by real openssl on the control plane.
    let registered: Vec<String> = std::fs::read_dir(bed.cluster_state("nodes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for k in 0..4 {
        assert!(registered.contains(&Bed::name(k)), "{registered:?}");
        assert!(bed.fs(k, "etc/kubernetes/kubelet.conf").exists(), "node {k} has no kubelet.conf");
    }
    let applied = std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap();
    assert!(applied.contains("kube-flannel.yml"), "{applied}");
    assert!(!applied.contains("cloud-provider-aws"), "a static cluster needs no AWS cloud provider: {applied}");

    // The kubeconfig: 0600, pointed at the control plane.
    let kubeconfig = env.dir.path().join(up["cluster"]["kubeconfig"].as_str().unwrap());
    let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&format!("server: https://{}:6443", bed.nodes[0].address)), "{text}");

    // The token never reaches logs or output.
    let token_line = std::fs::read_to_string(bed.fs(0, "var/lib/tagstack/kubeadm-init.yaml")).unwrap();
    let token =
        token_line.lines().find_map(|l| l.trim().strip_prefix("- token: ")).unwrap().trim_matches('"').to_string();
    for k in 0..4 {
        assert!(!log(&env, &Bed::name(k)).contains(&token), "token leaked into the log of node {k}");
    }

    // Second run: every step finds its work done.
    let apiserver = bed.fs(0, "etc/kubernetes/manifests/kube-apiserver.yaml");
    let before = std::fs::metadata(&apiserver).unwrap().modified().unwrap();
    let again = env.tagstack().arg("up").run().success();
    assert!(again.stdout.contains("4/4 node(s) Ready"), "{}", again.stdout);
    assert_eq!(std::fs::metadata(&apiserver).unwrap().modified().unwrap(), before, "kubeadm init ran again");
    assert!(log(&env, "cp").contains("control plane already initialised"));
    for k in 1..4 {
        assert!(log(&env, &Bed::name(k)).contains("join: already part of the cluster"), "node {k}");
    }
    let installs = |k: usize| log(&env, &Bed::name(k)).matches("installing kubelet kubeadm kubectl").count();
    assert!((0..4).all(|k| installs(k) == 1), "a re-run reinstalled packages");

    // status, kubeconfig --stdout and ssh.
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert!(st["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{st}");
    let kc = env.tagstack().args(&["kubeconfig", "--stdout"]).run().success();
    assert!(kc.stdout.contains("certificate-authority-data:"), "{}", kc.stdout);
    let ssh = env.tagstack().args(&["ssh", "w2", "--", "hostname"]).run().success();
    assert_eq!(ssh.stdout.trim(), "node-2");
}

#[test]
fn a_changed_host_key_is_refused_with_both_fingerprints() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "hostkey");
    let expected = fingerprint(&bed.nodes[1].host_key);
    bed.rekey(1);
    let presented = fingerprint(&std::fs::read_to_string(bed.path().join("nodes/1/ssh_host_ed25519_key.pub")).unwrap());
    assert_ne!(expected, presented);
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("node w1") && run.stderr.contains("host key changed"), "{}", run.stderr);
    assert!(run.stderr.contains(&expected) && run.stderr.contains(&presented), "{}", run.stderr);
    // Nothing was run anywhere: the stage stops before any node is touched.
    assert!(!bed.fs(0, "var/lib/tagstack/prepare-node.sh").exists());
}

fn fingerprint(key: &str) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), key).unwrap();
    let out = std::process::Command::new("ssh-keygen").arg("-lf").arg(tmp.path()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn an_unreachable_worker_is_named_and_the_next_up_completes() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "unreach");
    bed.stop_sshd(2);
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("node w2") && run.stderr.contains("cannot connect"), "{}", run.stderr);
    assert!(run.stderr.contains(&bed.nodes[2].address), "{}", run.stderr);
    bed.start_sshd(2);
    env.tagstack().arg("up").run().success();
}

#[test]
fn a_failing_step_names_node_step_exit_code_and_output_then_resumes() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "failstep");
    // A leftover from an earlier cluster: kubeadm's preflight refuses it, as the real one does.
    let manifests = bed.fs(0, "etc/kubernetes/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("kube-apiserver.yaml"), "leftover\n").unwrap();
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("node cp: step `init` failed with exit code"), "{}", run.stderr);
    assert!(run.stderr.contains("FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"), "{}", run.stderr);
    // The worker's log is kept even though the stage failed.
    assert!(log(&env, "w1").contains("[prepare]"));

    std::fs::remove_file(manifests.join("kube-apiserver.yaml")).unwrap();
    env.tagstack().arg("up").run().success();
}

/// 1 + 20 nodes: the fan-out is parallel (the wall time is printed for the record, not asserted).
#[test]
fn bootstraps_one_plus_twenty() {
    let bed = Bed::up(21);
    let env = env_for(&bed, "large");
    let started = Instant::now();
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    eprintln!("1+20 bootstrap over the test bed took {:.1}s", started.elapsed().as_secs_f64());
    let nodes = up["cluster"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 21);
    assert!(nodes.iter().all(|n| n["ready"] == true));
}
