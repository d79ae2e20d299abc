//! Issue 12 item 5, over real SSH on the test bed: a new cluster's control-plane endpoint is
//! the environment's stable name, which every node resolves through the one /etc/hosts line
//! prepare keeps, and workers join through it; a cluster initialised with an IP endpoint keeps
//! it. The kubeadm and kubectl stand-ins resolve names through each node's own /etc/hosts (the
//! test bed mounts one per node) and fail like the real ones when a name does not resolve or
//! the certificate does not carry it (tests/fixtures/node-bin/README.md, "Name resolution").

use crate::support::bed::{Bed, cluster_env as env_for};

const MARKER: &str = "# tagstack: control-plane endpoint";

fn endpoint_name(project: &str) -> String {
    format!("control-plane.{project}-bed.tagstack.internal")
}

fn read(path: impl AsRef<std::path::Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cluster_json(bed: &Bed) -> serde_json::Value {
    serde_json::from_str(&read(bed.cluster_state("cluster.json"))).unwrap()
}

/// The lines of node `k`'s /etc/hosts that carry tagstack's marker.
fn managed_lines(bed: &Bed, k: usize) -> Vec<String> {
    read(bed.fs(k, "etc/hosts")).lines().filter(|l| l.contains(MARKER)).map(str::to_string).collect()
}

#[test]
fn a_new_cluster_is_built_and_joined_through_the_endpoint_name_every_node_resolves() {
    let bed = Bed::up(3);
    let env = env_for(&bed, "endpoint");
    let name = endpoint_name(&env.project);
    let cp_ip = bed.nodes[0].address.clone();
    let host_hosts = read("/etc/hosts");
    env.tagstack().args(&["up", "--output", "json"]).run().success();

    // Every node: the host's lines untouched, then exactly one managed line for the name.
    let line = format!("{cp_ip} {name} {MARKER}");
    for k in 0..3 {
        let hosts = read(bed.fs(k, "etc/hosts"));
        assert_eq!(hosts, format!("{host_hosts}{line}\n"), "node {k}");
    }
    // kubeadm init recorded the name as the endpoint and signed the certificate for it, and
    // for the address the local kubeconfig names.
    let cluster = cluster_json(&bed);
    assert_eq!(cluster["controlPlaneEndpoint"], format!("{name}:6443"));
    let sans = &cluster["apiServerCertSANs"];
    assert!(sans["dns"].as_array().unwrap().iter().any(|d| d == name.as_str()), "{sans}");
    assert!(sans["ips"].as_array().unwrap().iter().any(|i| i == cp_ip.as_str()), "{sans}");
    let kubeconfig = read(env.dir.path().join(format!(".tagstack/{}-bed/kubeconfig", env.project)));
    assert!(kubeconfig.contains(&format!("server: https://{cp_ip}:6443\n")), "{kubeconfig}");
    assert!(read(bed.fs(0, "etc/kubernetes/admin.conf")).contains(&format!("server: https://{name}:6443")));
    // Workers discovered the API server through the name and their kubelets talk to it.
    for k in 1..3 {
        let join = read(bed.fs(k, "var/lib/tagstack/kubeadm-join.yaml"));
        assert!(join.contains(&format!("apiServerEndpoint: \"{name}:6443\"")), "node {k}: {join}");
        let kubelet = read(bed.fs(k, "etc/kubernetes/kubelet.conf"));
        assert!(kubelet.contains(&format!("server: https://{name}:6443")), "node {k}: {kubelet}");
    }

    // Idempotent: a second run leaves every /etc/hosts as it was. A line whose address went
    // stale is replaced in place; a line a user added stays.
    let hosts1 = bed.fs(1, "etc/hosts");
    std::fs::write(&hosts1, format!("{host_hosts}10.77.0.99 {name} {MARKER}\n10.1.2.3 mine.example\n")).unwrap();
    env.tagstack().arg("up").run().success();
    assert_eq!(read(&hosts1), format!("{host_hosts}{line}\n10.1.2.3 mine.example\n"));
    for k in [0, 2] {
        assert_eq!(read(bed.fs(k, "etc/hosts")), format!("{host_hosts}{line}\n"), "node {k}");
    }

    // Without the line, kubeadm join's discovery cannot resolve the name and fails as the
    // real one does (after the discovery timeout, capped here at 1 s).
    std::fs::write(bed.cluster_state("discovery-timeout-cap"), "1\n").unwrap();
    let (code, _, err) = bed.ssh(
        2,
        &format!(
            "grep -vF '{MARKER}' /etc/hosts >/tmp/hosts && cat /tmp/hosts >/etc/hosts && kubeadm reset -f >/dev/null \
             && kubeadm join --config /var/lib/tagstack/kubeadm-join.yaml"
        ),
    );
    assert_eq!(code, 1, "{err}");
    let url = format!("https://{name}:6443/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s");
    assert!(
        err.contains(&format!(
            "error execution phase preflight: couldn't validate the identity of the API Server: failed to request \
             the cluster-info ConfigMap: Get \"{url}\": dial tcp: lookup {name} on "
        )) && err.contains(": no such host"),
        "{err}"
    );
    // The next `up` writes the line again and the worker joins again through the name.
    std::fs::remove_file(bed.cluster_state("discovery-timeout-cap")).unwrap();
    env.tagstack().arg("up").run().success();
    assert_eq!(managed_lines(&bed, 2), [line]);
    assert!(read(bed.fs(2, "etc/kubernetes/kubelet.conf")).contains(&format!("server: https://{name}:6443")));
}

#[test]
fn a_cluster_initialised_with_an_ip_endpoint_keeps_it() {
    let bed = Bed::up(2);
    let env = env_for(&bed, "oldendpoint");
    let name = endpoint_name(&env.project);
    let cp_ip = bed.nodes[0].address.clone();
    env.tagstack().arg("up").run().success();

    // Turn the control plane into one initialised the way tagstack did before issue 12: the
    // IP as controlPlaneEndpoint and no name in the certificate (init-done stays).
    let (code, out, err) = bed.ssh(
        0,
        &format!(
            "set -e; cd /var/lib/tagstack; kubeadm reset -f >/dev/null; \
             sed -e 's/^controlPlaneEndpoint: .*/controlPlaneEndpoint: \"{cp_ip}:6443\"/' -e '/tagstack.internal\"$/d' \
             kubeadm-init.yaml >old-init.yaml; kubeadm init --config old-init.yaml >/dev/null; test -f init-done"
        ),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(cluster_json(&bed)["controlPlaneEndpoint"], format!("{cp_ip}:6443"));
    let inits = || read(bed.cluster_state("init.log")).lines().count();
    let before = inits();

    let up = env.tagstack().arg("up").run().success();
    assert!(
        up.stderr
            .contains(&format!("the cluster keeps the control-plane endpoint {cp_ip}:6443 it was initialised with")),
        "{}",
        up.stderr
    );
    // No second kubeadm init, the same endpoint; the worker (whose kubelet.conf trusted the CA
    // before the re-init above) joined again through the IP, as before.
    assert_eq!(inits(), before, "kubeadm init ran again");
    assert_eq!(cluster_json(&bed)["controlPlaneEndpoint"], format!("{cp_ip}:6443"));
    assert!(
        read(bed.fs(0, "var/lib/tagstack/kubeadm-init.yaml"))
            .contains(&format!("controlPlaneEndpoint: \"{cp_ip}:6443\""))
    );
    let join = read(bed.fs(1, "var/lib/tagstack/kubeadm-join.yaml"));
    assert!(join.contains(&format!("apiServerEndpoint: \"{cp_ip}:6443\"")), "{join}");
    assert!(read(bed.fs(1, "etc/kubernetes/kubelet.conf")).contains(&format!("server: https://{cp_ip}:6443")));
    // The /etc/hosts line is there too, unused.
    for k in 0..2 {
        assert_eq!(managed_lines(&bed, k), [format!("{cp_ip} {name} {MARKER}")], "node {k}");
    }

    // Joining it through the name would fail TLS: its certificate does not carry the name.
    std::fs::write(bed.cluster_state("discovery-timeout-cap"), "1\n").unwrap();
    let (code, _, err) = bed.ssh(
        1,
        &format!(
            "kubeadm reset -f >/dev/null && sed 's/{cp_ip}:6443/{name}:6443/' /var/lib/tagstack/kubeadm-join.yaml \
             >/tmp/join.yaml && kubeadm join --config /tmp/join.yaml"
        ),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("tls: failed to verify certificate: x509: certificate is valid for ")
            && err.contains(&format!(", not {name}")),
        "{err}"
    );
    std::fs::remove_file(bed.cluster_state("discovery-timeout-cap")).unwrap();
    env.tagstack().arg("up").run().success();
    assert_eq!(inits(), before, "kubeadm init ran again");
}
