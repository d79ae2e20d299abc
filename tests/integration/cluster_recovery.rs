//! The cluster stage recovers from kubeadm failing at any phase (issue 10, items 3-5), on the SSH
//! test bed. The kubeadm stand-in fails the phase named in the node's
//! `/var/lib/standin/kubeadm-fail` (`init|join PHASE [SECONDS]`, consumed when it fires; see
//! tests/fixtures/node-bin/README.md): each failed `up` is followed by one that completes with
//! every node Ready, exactly one `kubeadm init` per CA, every worker registered with the current
//! CA; and after each failed `up`, no `kubeadm join` runs on a node and no process of that
//! tagstack run (ssh master, mux client, keyscan) is left on this machine.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::TestEnv;
use crate::support::bed::{Bed, cluster_env as env_for, node_log as log};

/// Makes `kubeadm <command>` fail at `phase` on node `k` (once).
fn fail_at(bed: &Bed, k: usize, knob: &str) {
    let state = bed.fs(k, "var/lib/standin");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("kubeadm-fail"), format!("{knob}\n")).unwrap();
}

/// `(host, ca-hash)` of every `kubeadm init` that got past its certs phase on this bed.
fn inits(bed: &Bed) -> Vec<(String, String)> {
    std::fs::read_to_string(bed.cluster_state("init.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn one_init_per_ca(bed: &Bed, expected: usize) {
    let all = inits(bed);
    let cas: BTreeSet<&String> = all.iter().map(|(_, ca)| ca).collect();
    assert_eq!(all.len(), expected, "kubeadm init runs: {all:?}");
    assert_eq!(cas.len(), all.len(), "an init ran twice with one CA: {all:?}");
}

fn proc_text(pid: &str, what: &str) -> String {
    std::fs::read(format!("/proc/{pid}/{what}"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
        .unwrap_or_default()
}

fn pgrep(pattern: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep").args(["-f", pattern]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// `kubeadm join` processes on node `k`: `pgrep` here (the nodes share this PID namespace), kept
/// if they run in the node's network namespace.
fn joins_running(bed: &Bed, k: usize) -> Vec<String> {
    let ns = std::fs::metadata(format!("/run/netns/ts{}-{k}", bed.bed));
    let Ok(ns) = ns else { return vec![] };
    use std::os::unix::fs::MetadataExt;
    pgrep("kubeadm join")
        .into_iter()
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == ns.ino()))
        .map(|pid| format!("{pid}: {}", proc_text(&pid, "cmdline")))
        .collect()
}

/// Processes of tagstack's run in `env` still alive here: anything started in its directory or
/// naming its environment (ssh masters and mux clients carry the ssh_config path).
fn local_leftovers(env: &TestEnv) -> Vec<String> {
    let dir = env.dir.path().canonicalize().unwrap();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        let cmd = proc_text(&pid, "cmdline");
        let status = proc_text(&pid, "status");
        if status.contains("State:\tZ") || cmd.is_empty() {
            continue;
        }
        if cwd.as_deref() == Some(dir.as_path()) || cmd.contains(&env.project) {
            found.push(format!("{pid}: {cmd}"));
        }
    }
    found
}

/// After a failed `up`: nothing of it keeps running, here or on the nodes. An ssh master may
/// take a moment to exit after its shutdown request: poll briefly.
fn nothing_left_running(bed: &Bed, env: &TestEnv) {
    let started = Instant::now();
    loop {
        let local = local_leftovers(env);
        let remote: Vec<String> = (0..bed.nodes.len()).flat_map(|k| joins_running(bed, k)).collect();
        if local.is_empty() && remote.is_empty() {
            return;
        }
        if started.elapsed() > Duration::from_secs(3) {
            panic!("left running after the failed up:\n  local: {local:#?}\n  kubeadm join on nodes: {remote:#?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ca_data(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .unwrap_or_else(|| panic!("no CA in {}", path.display()))
        .trim()
        .to_string()
}

/// The second `up`: every node Ready, every worker registered and trusting the current CA.
fn completes(bed: &Bed, env: &TestEnv) {
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    let nodes = up["cluster"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), bed.nodes.len());
    assert!(nodes.iter().all(|n| n["ready"] == true), "{up}");
    // The control plane's own CA is the cluster's; each kubelet.conf must embed that one.
    let ca = std::fs::read_to_string(bed.cluster_state("ca.crt")).unwrap();
    assert_eq!(std::fs::read_to_string(bed.fs(0, "etc/kubernetes/pki/ca.crt")).unwrap(), ca);
    let ca_b64 = ca_data(&bed.fs(0, "etc/kubernetes/admin.conf"));
    for k in 0..bed.nodes.len() {
        assert!(bed.cluster_state(&format!("nodes/{}", Bed::name(k))).exists(), "node {k} is not registered");
        let kc = bed.fs(k, "etc/kubernetes/kubelet.conf");
        assert_eq!(ca_data(&kc), ca_b64, "node {k}'s kubelet.conf trusts another CA");
    }
    nothing_left_running(bed, env);
}

/// Each phase boundary of a worker's `kubeadm join` (cmd/kubeadm/app/cmd/join.go: preflight,
/// then kubelet-start, the only phases a worker runs): nothing written yet; ca.crt and the kubelet
/// config written, before the kubelet is healthy; waiting for the TLS bootstrap; kubelet.conf
/// written but the Node never registered. One worker per boundary, all in one `up`.
#[test]
fn a_join_failing_in_each_phase_is_reset_and_retried_by_the_next_up() {
    let bed = Bed::up(5);
    let env = env_for(&bed, "joinfail");
    let phases = ["preflight", "kubelet-start", "kubelet-start/tls-bootstrap", "kubelet-start/node"];
    for (i, phase) in phases.iter().enumerate() {
        fail_at(&bed, i + 1, &format!("join {phase}"));
    }
    let run = env.tagstack().arg("up").run().code(1);
    for k in 1..=4 {
        assert!(run.stderr.contains(&format!("node w{k}: step `join` failed")), "w{k}: {}", run.stderr);
    }
    assert!(run.stderr.contains("error execution phase kubelet-start"), "{}", run.stderr);
    // What each failure left: exactly what makes kubeadm's preflight refuse a second join.
    assert!(!bed.fs(1, "etc/kubernetes/pki/ca.crt").exists());
    assert!(bed.fs(2, "etc/kubernetes/pki/ca.crt").exists());
    assert!(bed.fs(3, "etc/kubernetes/pki/ca.crt").exists());
    assert!(bed.fs(4, "etc/kubernetes/kubelet.conf").exists());
    assert!(!bed.cluster_state("nodes/w4").exists(), "w4 must not be registered");
    nothing_left_running(&bed, &env);

    completes(&bed, &env);
    one_init_per_ca(&bed, 1);
    assert!(!log(&env, "w1").contains("resetting this node"), "nothing to reset on w1");
    for k in 2..=3 {
        assert!(log(&env, &Bed::name(k)).contains("failed after it wrote its files; resetting"), "w{k}");
    }
    assert!(log(&env, "w4").contains("before the node registered; resetting"));
}

/// kubeadm init failing before its bootstrap token exists (wait-control-plane): the workers are
/// still in discovery. `up` reports the init at once and stops their `kubeadm join`; the next
/// `up` resets the control plane (a new CA) and everything joins it.
#[test]
fn an_init_failing_before_its_token_is_live_stops_the_joins_and_the_next_up_completes() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "initpre");
    fail_at(&bed, 0, "init wait-control-plane");
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("node cp: step `init` failed"), "{}", run.stderr);
    assert!(run.stderr.contains("error execution phase wait-control-plane"), "{}", run.stderr);
    // Reported at once, not after the workers' discovery timeout: tagstack stopped the joins
    // that were still polling discovery (they would otherwise poll for up to its timeout).
    assert!(run.stderr.contains("stopped the kubeadm join still running on w1, w2"), "{}", run.stderr);
    nothing_left_running(&bed, &env);

    completes(&bed, &env);
    one_init_per_ca(&bed, 2);
    assert!(log(&env, "cp").contains("an earlier init by tagstack did not finish; resetting it"));
}

/// kubeadm init failing after its bootstrap-token phase (in addon, a few seconds later): the
/// workers joined a control plane that then failed. The next `up` resets it (a new CA), and each
/// worker, whose kubelet.conf trusts the old CA, is reset and joins the new one.
#[test]
fn an_init_failing_after_its_token_is_live_moves_the_joined_workers_to_the_new_ca() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "initpost");
    fail_at(&bed, 0, "init addon 4");
    let run = env.tagstack().arg("up").run().code(1);
    assert!(run.stderr.contains("error execution phase addon"), "{}", run.stderr);
    let first_ca = inits(&bed)[0].1.clone();
    for k in 1..=2 {
        assert!(bed.fs(k, "etc/kubernetes/kubelet.conf").exists(), "w{k} should have joined the failing init");
    }
    nothing_left_running(&bed, &env);

    completes(&bed, &env);
    one_init_per_ca(&bed, 2);
    assert_ne!(inits(&bed)[1].1, first_ca);
    for k in 1..=2 {
        assert!(log(&env, &Bed::name(k)).contains("kubelet.conf trusts another CA"), "w{k}");
    }
}
