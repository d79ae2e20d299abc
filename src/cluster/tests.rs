//! Snapshot tests of everything the cluster stage sends to nodes, and shellcheck on every
//! rendered script (shellcheck is installed by scripts/test).

use super::endpoint::{self, Endpoint};
use super::model::ClusterNode;
use super::render::{self, InitInput};
use super::{parse, static_nodes};
use crate::config::{NodeRole, Spec};

const TOKEN: &str = "abcdef.0123456789abcdef";
const HASH: &str = "sha256:0f3c1d9b6a7e2f4c8d5b1a3e9f7c6d2b4a8e1f3c5d7b9a2e4f6c8d0b1a3e5f70";

fn config(source: &str) -> Spec {
    crate::config::testing::parse(source)
}

fn static_spec() -> Spec {
    config(crate::config::testing::STATIC_BASE)
}

fn aws_spec() -> Spec {
    crate::config::testing::parse(crate::config::testing::AWS_BASE)
}

/// A new cluster's endpoint: the environment's stable name.
fn named(spec: &Spec) -> Endpoint {
    endpoint::decide(&spec.id, "").unwrap()
}

fn aws_nodes() -> (ClusterNode, ClusterNode) {
    let cp = ClusterNode {
        name: "control-plane".into(),
        node_name: "ip-10-20-1-4.eu-west-3.compute.internal".into(),
        role: NodeRole::ControlPlane,
        address: "203.0.113.50".into(),
        port: 22,
        user: "ubuntu".into(),
        private_ip: "10.20.1.4".into(),
        public_address: Some("203.0.113.50".into()),
        host_key: None,
    };
    let w = ClusterNode {
        name: "worker-0".into(),
        node_name: "ip-10-20-1-5.eu-west-3.compute.internal".into(),
        role: NodeRole::Worker,
        private_ip: "10.20.1.5".into(),
        address: "203.0.113.51".into(),
        public_address: Some("203.0.113.51".into()),
        ..cp.clone()
    };
    (cp, w)
}

#[test]
fn static_nodes_come_control_plane_first() {
    let nodes = static_nodes(&static_spec());
    assert_eq!(
        nodes.iter().map(|n| (n.name.as_str(), n.role, n.port)).collect::<Vec<_>>(),
        [("cp", NodeRole::ControlPlane, 22), ("w1", NodeRole::Worker, 2222)]
    );
    assert_eq!(nodes[0].user, "root");
}

#[test]
fn kubeadm_configs_static() {
    let spec = static_spec();
    let nodes = static_nodes(&spec);
    let ep = named(&spec);
    let input =
        InitInput { spec: &spec, control_plane: &nodes[0], token: TOKEN, kubernetes_version: "v1.36.1", endpoint: &ep };
    insta::assert_snapshot!("init_config_static", render::init_config(&input).unwrap());
    insta::assert_snapshot!("join_config_static", render::join_config(&spec, &ep, &nodes[1], TOKEN, HASH).unwrap());
    insta::assert_snapshot!("init_script_static", render::init_script(&input).unwrap());
}

#[test]
fn kubeadm_configs_aws_use_the_external_cloud_provider() {
    let spec = aws_spec();
    let (cp, w) = aws_nodes();
    let ep = named(&spec);
    let input =
        InitInput { spec: &spec, control_plane: &cp, token: TOKEN, kubernetes_version: "v1.36.1", endpoint: &ep };
    let init = render::init_config(&input).unwrap();
    assert!(init.contains("name: cloud-provider\n      value: external"), "{init}");
    assert!(init.contains("- \"203.0.113.50\""), "public IP is a certSAN: {init}");
    insta::assert_snapshot!("init_config_aws", init);
    insta::assert_snapshot!("join_config_aws", render::join_config(&spec, &named(&spec), &w, TOKEN, HASH).unwrap());
    let script = render::init_script(&input).unwrap();
    for addon in ["kube-flannel.yml", "addons/cloud-controller-manager", "addons/ebs-csi", "storageclass-gp3.yaml"] {
        assert!(script.contains(addon), "{addon} missing from:\n{script}");
    }
    // kustomize clones the remote bases with git (UPSTREAM-AUDIT #14): prepare installs it on
    // the control plane (through the package-lock rules), not on workers, not on static clusters.
    let git = "apt_run apt-get install -y -qq git";
    assert!(render::prepare_script(&spec, None, NodeRole::ControlPlane, "10.20.1.4").unwrap().contains(git));
    assert!(!render::prepare_script(&spec, None, NodeRole::Worker, "10.20.1.4").unwrap().contains(git));
    assert!(!render::prepare_script(&static_spec(), None, NodeRole::ControlPlane, "10.20.1.4").unwrap().contains(git));
    assert!(!script.contains("apt-get"), "{script}");
}

/// UPSTREAM-AUDIT #26: cloud-provider-aws's examples/existing-cluster/base pins the CCM image
/// v1.27.1 on every release branch and tag; the add-on must run the release of the cluster's
/// minor, and every remote base must be an immutable tag, never a branch.
#[test]
fn addons_are_pinned_to_tags_and_the_ccm_matches_the_minor() {
    for (version, tag) in [("1.33", "v1.33.4"), ("1.34", "v1.34.3"), ("1.35.1", "v1.35.2"), ("1.36", "v1.36.1")] {
        let spec = config(
            &crate::config::testing::AWS_BASE
                .replace("kubernetes_version = \"1.36\"", &format!("kubernetes_version = \"{version}\"")),
        );
        let addons = render::addons(&spec);
        let ccm = addons.iter().find(|a| a.name == "aws-cloud-controller-manager").unwrap();
        let kustomization = &ccm.files[0].1;
        assert!(kustomization.contains(&format!("existing-cluster/base/?ref={tag}\n")), "{kustomization}");
        assert!(
            kustomization.contains(&format!(
                "- name: registry.k8s.io/provider-aws/cloud-controller-manager\n    newTag: {tag}\n"
            )),
            "{kustomization}"
        );
    }
    let all: Vec<String> = render::addons(&aws_spec())
        .iter()
        .flat_map(|a| std::iter::once(a.source.clone()).chain(a.files.iter().map(|(_, c)| c.clone())))
        .collect();
    for text in &all {
        assert!(!text.contains("ref=release-") && !text.contains("ref=master") && !text.contains("ref=main"), "{text}");
    }
    let text: Vec<String> =
        render::addons(&aws_spec()).iter().flat_map(|a| a.files.iter().map(|(p, c)| format!("--- {p}\n{c}"))).collect();
    insta::assert_snapshot!("addons_aws", text.join("\n"));
}

/// UPSTREAM-AUDIT #21: a join's discovery gave up after kubeadm's default 5m while init could
/// still be pulling images; it now waits as long as the whole stage may take.
#[test]
fn join_discovery_waits_as_long_as_the_bootstrap_timeout() {
    let spec = config(&format!("{}\n[cluster]\nbootstrap_timeout = \"25m\"\n", crate::config::testing::AWS_BASE));
    let (_, w) = aws_nodes();
    let join = render::join_config(&spec, &named(&spec), &w, TOKEN, HASH).unwrap();
    assert!(join.contains("\n  discovery: 1500s\n"), "{join}");
}

#[test]
fn scripts_render_and_pass_shellcheck() {
    let spec = aws_spec();
    let (cp, w) = aws_nodes();
    let ep = named(&spec);
    let input =
        InitInput { spec: &spec, control_plane: &cp, token: TOKEN, kubernetes_version: "v1.36.1", endpoint: &ep };
    let scripts = [
        ("prepare-node.sh", render::prepare_script(&spec, None, NodeRole::Worker, "10.20.1.4").unwrap()),
        (
            "prepare-node-exact-patch.sh",
            render::prepare_script(&spec, Some("1.36.2"), NodeRole::Worker, "10.20.1.4").unwrap(),
        ),
        ("control-plane-ca.sh", render::ca_script().unwrap()),
        ("init-control-plane.sh", render::init_script(&input).unwrap()),
        ("join-worker.sh", render::join_script(&w, HASH).unwrap()),
        ("init-control-plane-static.sh", {
            let s = static_spec();
            let n = static_nodes(&s);
            render::init_script(&InitInput {
                spec: &s,
                control_plane: &n[0],
                token: TOKEN,
                kubernetes_version: "v1.36.1",
                endpoint: &named(&s),
            })
            .unwrap()
        }),
    ];
    insta::assert_snapshot!("prepare_node", &scripts[0].1);
    for (name, text) in &scripts {
        assert!(text.starts_with("#!/usr/bin/env bash\n"), "{name}");
        assert!(text.contains("set -euo pipefail"), "{name}");
        assert!(!text.contains("{{") && !text.contains("{%"), "{name} has unrendered template syntax");
        crate::testing::shellcheck(name, text);
    }
}

#[test]
fn a_missing_template_variable_is_an_error_not_an_empty_string() {
    // UndefinedBehavior::Strict: a typo in a template must fail rendering.
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("t", "x={{ nope }}").unwrap();
    assert!(env.get_template("t").unwrap().render(minijinja::context! {}).is_err());
}

#[test]
fn parses_script_values_and_node_readiness() {
    let lines: Vec<String> =
        ["prepare: x", "kubeadm-version=v1.36.1", "ca-cert-hash=sha256:ab"].map(String::from).to_vec();
    assert_eq!(parse::value(&lines, "kubeadm-version"), Some("v1.36.1"));
    assert_eq!(parse::value(&lines, "missing"), None);
    assert!(parse::is_ca_hash(HASH));
    assert!(!parse::is_ca_hash("sha256:ab"));
    let json = r#"{"apiVersion":"v1","kind":"NodeList","items":[
      {"metadata":{"name":"cp"},"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}]}},
      {"metadata":{"name":"w1"},"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady","message":"cni plugin not initialized"}]}},
      {"metadata":{"name":"w2"}}]}"#;
    let nodes = parse::node_readiness(json).unwrap();
    assert_eq!(
        nodes.iter().map(|n| (n.name.as_str(), n.ready)).collect::<Vec<_>>(),
        [("cp", true), ("w1", false), ("w2", false)]
    );
    assert_eq!(nodes[1].why, "KubeletNotReady: cni plugin not initialized");
    assert_eq!(nodes[2].why, "no Ready condition yet");
}

// Item 5 of issue 9: containerd is pinned per Kubernetes minor from containerd's RELEASES.md
// "Kubernetes Support" table (containerd/containerd v2.3.4, RELEASES.md); before, the newest
// containerd.io of Docker's repository was installed whatever the minor.
#[test]
fn containerd_is_pinned_per_minor_from_the_release_table() {
    use super::versions::{containerd_for, containerd_supported};
    let p = containerd_for(36).unwrap();
    assert_eq!(p.version, "2.3.4");
    for minor in 33..=36 {
        let pin = containerd_for(minor).unwrap();
        assert!(containerd_supported(&pin, pin.version), "1.{minor} pins {} it does not support", pin.version);
    }
    assert!(containerd_supported(&p, "2.2.0") && containerd_supported(&p, "2.4.1"));
    assert!(
        !containerd_supported(&p, "1.7.28") && !containerd_supported(&p, "2.1.5") && !containerd_supported(&p, "2.0.6")
    );
    let p35 = containerd_for(35).unwrap();
    assert!(
        containerd_supported(&p35, "1.7.28")
            && !containerd_supported(&p35, "1.7.27")
            && !containerd_supported(&p35, "2.1.4")
    );
    // No row for 1.37 in the table: refused, not guessed.
    let e = format!("{:#}", containerd_for(37).unwrap_err());
    assert!(e.contains("no containerd version for Kubernetes 1.37"), "{e}");
    let mut spec = static_spec();
    spec.kubernetes_version.minor = 37;
    assert!(render::prepare_script(&spec, None, NodeRole::Worker, "10.20.1.4").is_err());

    let script = render::prepare_script(&static_spec(), None, NodeRole::ControlPlane, "10.20.1.4").unwrap();
    assert!(script.contains("\"containerd.io=2.3.4-*\""), "{script}");
    assert!(script.contains("for min in 2.3.0 2.2.0; do"), "{script}");
    assert!(script.contains("kubeadm config images list"), "the sandbox image comes from kubeadm: {script}");
}

// Item 6: a configured patch is installed exactly (pkgs.k8s.io versions are `1.36.2-1.1`), and
// every node must report the same version.
#[test]
fn an_exact_patch_is_installed_and_nodes_must_agree() {
    use super::versions::same_kubernetes_version;
    let script = render::prepare_script(&static_spec(), Some("1.36.2"), NodeRole::ControlPlane, "10.20.1.4").unwrap();
    assert!(script.contains("spec='=1.36.2-*'") && script.contains("want='^1\\.36\\.2-'"), "{script}");
    let newest = render::prepare_script(&static_spec(), None, NodeRole::ControlPlane, "10.20.1.4").unwrap();
    assert!(newest.contains("spec=''") && newest.contains("want='^1\\.36\\.'"), "{newest}");
    let same = vec![("cp".to_string(), "v1.36.2".to_string()), ("w1".to_string(), "v1.36.2".to_string())];
    assert_eq!(same_kubernetes_version(&same).unwrap(), "v1.36.2");
    // Which nodes differ is the fact; the version to pin is advice, which `up`'s command layer
    // adds (`ops::advice`, tested there: cluster does not import ops).
    let differ = vec![("cp".to_string(), "v1.36.1".to_string()), ("w1".to_string(), "v1.36.2".to_string())];
    let fact = same_kubernetes_version(&differ).unwrap_err().to_string();
    assert!(fact.contains("cp v1.36.1, w1 v1.36.2"), "{fact}");
}

// Item 1: the wait for cloud-init and the dpkg lock is bounded by half the stage's deadline.
#[test]
fn the_package_lock_wait_is_bounded() {
    use super::versions::package_lock_timeout;
    use std::time::Duration;
    assert_eq!(package_lock_timeout(Duration::from_secs(900)), Duration::from_secs(450));
    assert_eq!(package_lock_timeout(Duration::from_secs(3600)), Duration::from_secs(600));
    assert_eq!(package_lock_timeout(Duration::from_secs(12)), Duration::from_secs(10));
    let script = render::prepare_script(&static_spec(), None, NodeRole::ControlPlane, "10.20.1.4").unwrap();
    assert!(script.contains("lock_budget=450") && script.contains("cloud-init status --wait"), "{script}");
    assert!(script.contains("\"$tool\" -o DPkg::Lock::Timeout=\"$(lock_left)\""), "{script}");
    assert!(
        !script.lines().any(|l| l.trim_start().starts_with("apt-get ")),
        "an apt-get without the lock timeout: {script}"
    );
}

/// Every Kubernetes minor the config accepts has a containerd pin and a CCM release, so a
/// config that loads can be installed on either provider (and no other minor loads).
#[test]
fn every_supported_minor_has_a_containerd_pin_and_a_ccm_release() {
    for minor in 30..40 {
        let v = crate::config::KubeVersion { major: 1, minor, patch: None };
        let supported = crate::config::KUBE_MINORS.contains(&minor);
        assert_eq!(super::versions::containerd_for(minor).is_ok(), supported, "containerd for 1.{minor}");
        assert_eq!(super::addons::ccm_release(v).is_some(), supported, "CCM for 1.{minor}");
    }
}

/// UPSTREAM-AUDIT #46: with `cloud-provider=external` a kubelet registers with the taint
/// node.cloudprovider.kubernetes.io/uninitialized (k8s.io/cloud-provider
/// api/well_known_taints.go) and stays Ready while the CCM has not initialised it; only the
/// cloud node controller sets spec.providerID and removes the taint (node_controller.go).
#[test]
fn a_ready_node_is_initialised_only_with_a_provider_id_and_without_the_taint() {
    let node = |spec: &str| {
        format!(
            r#"{{"items":[{{"metadata":{{"name":"n1"}},"spec":{spec},"status":{{"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"kubelet is posting ready status"}}]}}}}]}}"#
        )
    };
    let tainted = node(
        r#"{"taints":[{"key":"node.cloudprovider.kubernetes.io/uninitialized","value":"true","effect":"NoSchedule"}]}"#,
    );
    let seen = parse::node_readiness(&tainted).unwrap();
    assert!(seen[0].ready && !seen[0].initialized(), "{seen:?}");
    let no_id = node("{}");
    assert!(!parse::node_readiness(&no_id).unwrap()[0].initialized());
    let done = node(r#"{"providerID":"aws:///eu-west-3a/i-0123456789abcdef0"}"#);
    assert!(parse::node_readiness(&done).unwrap()[0].initialized());
    // A PreferNoSchedule taint does not keep pods away.
    let soft = node(
        r#"{"providerID":"aws:///eu-west-3a/i-0123456789abcdef0","taints":[{"key":"node.cloudprovider.kubernetes.io/uninitialized","effect":"PreferNoSchedule"}]}"#,
    );
    assert!(parse::node_readiness(&soft).unwrap()[0].initialized());
}

/// The add-ons' rollout is judged like `kubectl rollout status`: a DaemonSet with every
/// scheduled pod updated and available, a Deployment with no old replicas and all available.
#[test]
fn addon_rollouts_follow_kubectl_rollout_status() {
    let spec = aws_spec();
    let expected = super::addons::workloads(&spec);
    let json = r#"{"items":[
      {"kind":"DaemonSet","metadata":{"namespace":"kube-flannel","name":"kube-flannel-ds","generation":1},
       "status":{"observedGeneration":1,"desiredNumberScheduled":4,"updatedNumberScheduled":4,"numberAvailable":4}},
      {"kind":"DaemonSet","metadata":{"namespace":"kube-system","name":"kube-network-policies","generation":1},
       "status":{"observedGeneration":1,"desiredNumberScheduled":4,"updatedNumberScheduled":4,"numberAvailable":3}},
      {"kind":"Deployment","metadata":{"namespace":"kube-system","name":"coredns","generation":1},"spec":{"replicas":2},
       "status":{"observedGeneration":1,"replicas":2,"updatedReplicas":2,"availableReplicas":0}},
      {"kind":"DaemonSet","metadata":{"namespace":"kube-system","name":"aws-cloud-controller-manager","generation":2},
       "status":{"observedGeneration":1,"desiredNumberScheduled":1,"updatedNumberScheduled":1,"numberAvailable":1}},
      {"kind":"Deployment","metadata":{"namespace":"kube-system","name":"ebs-csi-controller","generation":1},"spec":{"replicas":2},
       "status":{"observedGeneration":1,"replicas":3,"updatedReplicas":2,"availableReplicas":2}}
    ]}"#;
    let got: Vec<(String, bool, String)> = parse::addon_rollouts(&expected, json)
        .unwrap()
        .into_iter()
        .map(|r| (r.workload.name.to_string(), r.done, r.detail))
        .collect();
    assert_eq!(
        got,
        [
            ("kube-flannel-ds".to_string(), true, "4/4 available".to_string()),
            // One node's policy engine is not available yet.
            ("kube-network-policies".to_string(), false, "3/4 available".to_string()),
            ("coredns".to_string(), false, "0/2 available".to_string()),
            // The controller has not seen the newest spec yet.
            ("aws-cloud-controller-manager".to_string(), false, "1/1 available".to_string()),
            // An old replica is still there.
            ("ebs-csi-controller".to_string(), false, "2/2 available".to_string()),
            ("ebs-csi-node".to_string(), false, "not found".to_string()),
        ]
    );
}

#[test]
fn join_script_checks_the_ca_resets_leftovers_and_can_stop_a_running_join() {
    let (_, w) = aws_nodes();
    let script = render::join_script(&w, HASH).unwrap();
    assert!(script.contains(&format!("ca_hash=\"{HASH}\"")), "{script}");
    // What `kubeadm reset` says it leaves behind is cleaned too.
    for needle in ["kubeadm reset -f", "/etc/cni/net.d", "iptables", "ipvsadm --clear", "/.kube/config"] {
        assert!(script.contains(needle), "{needle}: {script}");
    }
    // Only the recorded kubeadm join is stopped, never anything found by name.
    assert!(script.contains("\"--stop\""), "{script}");
    assert!(!script.contains("pkill") && !script.contains("killall"), "{script}");
}

/// Issue 12 item 5: a new cluster's endpoint is the environment's stable name, in the certSANs
/// next to every address kept from before; an initialised cluster keeps the endpoint its
/// admin.conf names, in init and join alike; every node gets the /etc/hosts line.
#[test]
fn the_control_plane_endpoint_is_a_stable_name_and_an_old_cluster_keeps_its_own() {
    let spec = aws_spec();
    let (cp, w) = aws_nodes();
    let name = "control-plane.demo-dev.tagstack.internal";
    let ep = named(&spec);
    let input =
        InitInput { spec: &spec, control_plane: &cp, token: TOKEN, kubernetes_version: "v1.36.1", endpoint: &ep };
    let init = render::init_config(&input).unwrap();
    assert!(init.contains(&format!("\ncontrolPlaneEndpoint: \"{name}:6443\"\n")), "{init}");
    // The kubeconfig tagstack writes points at cp.address (ops::cluster::fetch_kubeconfig): the
    // certificate must be valid for it, and for every address that was there before.
    for san in [name, &cp.address, &cp.private_ip, &cp.node_name, "203.0.113.50"] {
        assert!(init.contains(&format!("    - \"{san}\"\n")), "{san} is not a certSAN: {init}");
    }
    let join = render::join_config(&spec, &ep, &w, TOKEN, HASH).unwrap();
    assert!(join.contains(&format!("apiServerEndpoint: \"{name}:6443\"")), "{join}");

    let old = endpoint::decide(&spec.id, "https://10.20.1.4:6443\n").unwrap();
    let input = InitInput { endpoint: &old, ..input };
    let init = render::init_config(&input).unwrap();
    assert!(init.contains("\ncontrolPlaneEndpoint: \"10.20.1.4:6443\"\n"), "{init}");
    let join = render::join_config(&spec, &old, &w, TOKEN, HASH).unwrap();
    assert!(join.contains("apiServerEndpoint: \"10.20.1.4:6443\""), "{join}");

    for role in [NodeRole::ControlPlane, NodeRole::Worker] {
        let script = render::prepare_script(&spec, None, role, &cp.private_ip).unwrap();
        let line = format!("{} {name} # tagstack: control-plane endpoint", cp.private_ip);
        assert!(script.contains(&format!("awk -v line='{line}'")), "{script}");
        assert!(script.contains("cat \"$hosts_new\" >/etc/hosts"), "written in place: {script}");
    }
}

// ---- scale-down (drain.rs) -----------------------------------------------------------------

mod drain {
    use std::time::Duration;

    use crate::cluster::drain::*;

    const K: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    const NODE: &str = "ip-10-20-1-7.eu-west-3.compute.internal";

    #[test]
    fn command_lines() {
        insta::assert_snapshot!(
            [cordon(K, NODE), drain(K, NODE, Duration::from_secs(2700)), delete_node(K, NODE), uncordon(K, NODE)].join("\n"),
            @r"
        kubectl --kubeconfig /etc/kubernetes/admin.conf cordon 'ip-10-20-1-7.eu-west-3.compute.internal'
        kubectl --kubeconfig /etc/kubernetes/admin.conf drain 'ip-10-20-1-7.eu-west-3.compute.internal' --ignore-daemonsets --delete-emptydir-data --timeout=2700s
        kubectl --kubeconfig /etc/kubernetes/admin.conf delete node 'ip-10-20-1-7.eu-west-3.compute.internal'
        kubectl --kubeconfig /etc/kubernetes/admin.conf uncordon 'ip-10-20-1-7.eu-west-3.compute.internal'
        "
        );
    }

    /// kubectl's retry lines and its final error (k8s.io/kubectl/pkg/drain/drain.go).
    const DRAIN_STUCK: &str = "node/ip-10-20-1-7.eu-west-3.compute.internal cordoned
Warning: ignoring DaemonSet-managed Pods: kube-flannel/kube-flannel-ds-7xk2p, kube-system/kube-proxy-9qz4d
evicting pod kafka/kafka-2
evicting pod spark/spark-worker-5d8f7c9b6-x2x9k
error when evicting pods/\"kafka-2\" -n \"kafka\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
pod/spark-worker-5d8f7c9b6-x2x9k evicted
error when evicting pods/\"kafka-2\" -n \"kafka\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.
There are pending pods in node \"ip-10-20-1-7.eu-west-3.compute.internal\" when an error occurred: error when evicting pods/\"kafka-2\" -n \"kafka\": global timeout reached: 1m0s
pod/kafka-2
error: unable to drain node \"ip-10-20-1-7.eu-west-3.compute.internal\" due to error: error when evicting pods/\"kafka-2\" -n \"kafka\": global timeout reached: 1m0s, continuing command...
There are pending nodes to be drained:
 ip-10-20-1-7.eu-west-3.compute.internal
error when evicting pods/\"kafka-2\" -n \"kafka\": global timeout reached: 1m0s
";

    fn pod(ns: &str, name: &str) -> PodRef {
        PodRef { namespace: ns.into(), name: name.into() }
    }

    #[test]
    fn unevicted_pods_are_read_from_the_drain_output_once_each() {
        assert_eq!(unevicted(DRAIN_STUCK), [pod("kafka", "kafka-2")]);
        assert_eq!(unevicted("node/x cordoned\nnode/x drained\n"), []);
    }

    #[test]
    fn the_budget_guarding_a_stuck_pod_is_named_with_its_counts() {
        let pdbs = r#"{"items":[
          {"metadata":{"name":"cassandra","namespace":"cassandra"},"spec":{"maxUnavailable":1,"selector":{"matchLabels":{"app.kubernetes.io/name":"cassandra"}}},
           "status":{"currentHealthy":3,"desiredHealthy":2,"disruptionsAllowed":1,"expectedPods":3}},
          {"metadata":{"name":"kafka-broker","namespace":"kafka"},"spec":{"maxUnavailable":1,"selector":{"matchLabels":{"app.kubernetes.io/name":"kafka","app.kubernetes.io/component":"broker"}}},
           "status":{"currentHealthy":2,"desiredHealthy":2,"disruptionsAllowed":0,"expectedPods":3}}]}"#;
        let pods = r#"{"items":[
          {"metadata":{"name":"kafka-2","namespace":"kafka","labels":{"app.kubernetes.io/name":"kafka","app.kubernetes.io/component":"broker"}},"spec":{"nodeName":"ip-10-20-1-7.eu-west-3.compute.internal"}},
          {"metadata":{"name":"cassandra-0","namespace":"cassandra","labels":{"app.kubernetes.io/name":"cassandra"}},"spec":{"nodeName":"ip-10-20-1-5.eu-west-3.compute.internal"}},
          {"metadata":{"name":"orphan","namespace":"default","labels":{}},"spec":{"nodeName":"ip-10-20-1-7.eu-west-3.compute.internal"}}]}"#;
        let budgets = budgets(pdbs).unwrap();
        let labels = pod_labels(pods).unwrap();
        assert_eq!(
            blocked_by(&[pod("kafka", "kafka-2"), pod("default", "orphan")], &budgets, &labels),
            [
                "pod kafka/kafka-2 is protected by PodDisruptionBudget kafka/kafka-broker (0 disruption(s) allowed: 2 healthy, 2 needed)",
                "pod default/orphan could not be evicted",
            ]
        );
        assert_eq!(pods_on(pods, &[NODE.to_string()]).unwrap(), [pod("kafka", "kafka-2"), pod("default", "orphan")]);
    }

    fn sts(name: &str, replicas: u32, required: bool) -> String {
        let kind = if required {
            "requiredDuringSchedulingIgnoredDuringExecution"
        } else {
            "preferredDuringSchedulingIgnoredDuringExecution"
        };
        let term = r#"{"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":{"app":"NAME"}}}"#
            .replace("NAME", name);
        let term = if required { term } else { format!(r#"{{"weight":100,"podAffinityTerm":{term}}}"#) };
        format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"data"}},"spec":{{"replicas":{replicas},"template":{{"metadata":{{"labels":{{"app":"{name}"}}}},"spec":{{"affinity":{{"podAntiAffinity":{{"{kind}":[{term}]}}}}}}}}}}}}"#
        )
    }

    #[test]
    fn a_statefulset_with_one_node_per_replica_refuses_a_scale_down_below_its_replicas() {
        let list =
            format!(r#"{{"items":[{},{},{}]}}"#, sts("zk", 3, true), sts("soft", 5, false), sts("single", 1, true));
        let spreads = spreads(&list).unwrap();
        assert_eq!(spreads, [Spread { namespace: "data".into(), name: "zk".into(), replicas: 3 }]);
        let nodes = sched_nodes(
            r#"{"items":[
              {"metadata":{"name":"cp"},"spec":{"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]}},
              {"metadata":{"name":"w0"},"spec":{}},
              {"metadata":{"name":"w1"},"spec":{}},
              {"metadata":{"name":"w2"},"spec":{}},
              {"metadata":{"name":"w3"},"spec":{"unschedulable":true}}]}"#,
        )
        .unwrap();
        assert_eq!(nodes.iter().filter(|n| n.closed).map(|n| n.name.as_str()).collect::<Vec<_>>(), ["cp", "w3"]);
        assert_eq!(unplaceable(&spreads, &nodes, &["w3".into()]), Vec::<String>::new());
        assert_eq!(
            unplaceable(&spreads, &nodes, &["w2".into()]),
            [
                "StatefulSet data/zk needs 3 nodes (one per replica: required pod anti-affinity on kubernetes.io/hostname) and 2 would stay schedulable"
            ]
        );
    }
}

mod upgrade {
    use super::super::upgrade::{
        NodeVersion, Running, SkewRefused, Step, Version, cluster_configuration_version, judge, node_versions,
    };
    use super::*;
    use crate::config::KubeVersion;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn want(minor: u32) -> KubeVersion {
        KubeVersion { major: 1, minor, patch: None }
    }

    fn node(name: &str, kubelet: &str) -> NodeVersion {
        NodeVersion { name: name.into(), kubelet: v(kubelet), upgrading_to: None, ready: true }
    }

    fn running(cp: &str, nodes: &[(&str, &str)]) -> Running {
        Running { control_plane: v(cp), nodes: nodes.iter().map(|(n, k)| node(n, k)).collect() }
    }

    #[test]
    fn versions_parse_as_the_cluster_prints_them() {
        assert_eq!(v("v1.35.2"), Version { major: 1, minor: 35, patch: 2 });
        assert_eq!(v("1.36.0-rc.1"), Version { major: 1, minor: 36, patch: 0 });
        assert_eq!(Version::parse("1.36"), None);
        assert_eq!(v("v1.36.1").to_string(), "1.36.1");
        let config = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.35.2\nnetworking:\n  podSubnet: 10.244.0.0/16\n";
        assert_eq!(cluster_configuration_version(config), Some(v("1.35.2")));
        assert_eq!(cluster_configuration_version("kind: ClusterConfiguration\n"), None);
    }

    #[test]
    fn node_versions_come_from_kubectl_get_nodes() {
        let json = r#"{"apiVersion":"v1","kind":"List","items":[
            {"metadata":{"name":"node-1","annotations":{"tagstack/upgrading-to":"1.36.1"}},
             "status":{"nodeInfo":{"kubeletVersion":"v1.35.2"},"conditions":[{"type":"Ready","status":"True"}]}},
            {"metadata":{"name":"node-2"},"status":{"nodeInfo":{"kubeletVersion":"v1.36.1"},"conditions":[{"type":"Ready","status":"False"}]}}]}"#;
        let nodes = node_versions(json).unwrap();
        assert_eq!(
            nodes[0],
            NodeVersion {
                name: "node-1".into(),
                kubelet: v("1.35.2"),
                upgrading_to: Some("1.36.1".into()),
                ready: true
            }
        );
        assert_eq!(
            nodes[1],
            NodeVersion { name: "node-2".into(), kubelet: v("1.36.1"), upgrading_to: None, ready: false }
        );
        assert!(
            node_versions(r#"{"items":[{"metadata":{"name":"x"},"status":{"nodeInfo":{"kubeletVersion":""}}}]}"#)
                .is_err()
        );
    }

    #[test]
    fn the_same_minor_everywhere_is_kept() {
        let r = running("1.36.1", &[("cp", "1.36.1"), ("w1", "1.36.1")]);
        assert_eq!(judge(want(36), &r, "cp"), Ok(Step::Keep));
        assert_eq!(judge(KubeVersion { patch: Some(1), ..want(36) }, &r, "cp"), Ok(Step::Keep));
    }

    #[test]
    fn one_minor_up_upgrades_the_control_plane_then_each_worker() {
        let r = running("1.35.2", &[("w2", "1.35.2"), ("cp", "1.35.2"), ("w1", "1.35.2")]);
        let Ok(Step::Upgrade(u)) = judge(want(36), &r, "cp") else { panic!() };
        assert_eq!(u.from, v("1.35.2"));
        assert_eq!(u.to, "1.36");
        assert_eq!(u.patch, None);
        assert!(u.control_plane);
        assert_eq!(u.nodes, ["cp", "w1", "w2"]);
        let Ok(Step::Upgrade(u)) = judge(KubeVersion { patch: Some(3), ..want(36) }, &r, "cp") else { panic!() };
        assert_eq!(u.patch, Some(3));
    }

    #[test]
    fn a_stopped_upgrade_is_resumed_from_what_the_cluster_reports() {
        // kubeadm upgrade apply failed after the static pods moved: the ClusterConfiguration is
        // still 1.35, so apply runs again (kubeadm upgrade is idempotent).
        let r = running("1.35.2", &[("cp", "1.35.2"), ("w1", "1.35.2")]);
        let Ok(Step::Upgrade(u)) = judge(want(36), &r, "cp") else { panic!() };
        assert!(u.control_plane);
        // The control plane is done, a worker is not, another was left cordoned by us.
        let mut r = running("1.36.1", &[("cp", "1.36.1"), ("w1", "1.35.2"), ("w2", "1.36.1"), ("w3", "1.36.1")]);
        r.nodes[2].upgrading_to = Some("1.36.1".into());
        let Ok(Step::Upgrade(u)) = judge(want(36), &r, "cp") else { panic!() };
        assert!(!u.control_plane);
        assert_eq!(u.from, v("1.36.1"));
        assert_eq!(u.nodes, ["w1", "w2"]);
    }

    #[test]
    fn skipping_a_minor_is_refused_with_the_path() {
        let r = running("1.34.3", &[("cp", "1.34.3")]);
        let e = judge(want(36), &r, "cp").unwrap_err();
        assert!(matches!(e, SkewRefused::Skip { .. }), "{e:?}");
        assert_eq!(e.path(), ["1.35", "1.36"]);
        assert!(e.to_string().contains("skips a minor: the cluster runs 1.34.3"), "{e}");
        let hint = crate::ops::advice::render(e.into(), crate::ops::advice::Command::Up);
        assert!(hint.contains("hint: upgrade to 1.35 first, then 1.36: set kubernetes_version = \"1.35\""), "{hint}");
    }

    #[test]
    fn going_down_is_refused() {
        let r = running("1.36.1", &[("cp", "1.36.1")]);
        let e = judge(want(35), &r, "cp").unwrap_err();
        assert!(matches!(e, SkewRefused::Downgrade { .. }), "{e:?}");
        let hint = crate::ops::advice::render(e.into(), crate::ops::advice::Command::Plan);
        assert!(
            hint.contains("tagstack does not downgrade") && hint.contains("kubernetes_version = \"1.36\""),
            "{hint}"
        );
    }

    #[test]
    fn a_new_minor_waits_for_the_last_upgrade_to_finish() {
        let r = running("1.35.2", &[("cp", "1.35.2"), ("w1", "1.34.3")]);
        let e = judge(want(36), &r, "cp").unwrap_err();
        assert!(matches!(e, SkewRefused::Unfinished { .. }), "{e:?}");
        assert_eq!(e.path(), ["1.35", "1.36"]);
        // Finishing 1.35 itself is allowed.
        let Ok(Step::Upgrade(u)) = judge(want(35), &r, "cp") else { panic!() };
        assert_eq!(u.nodes, ["w1"]);
    }

    #[test]
    fn upgrade_scripts_render_and_pass_shellcheck() {
        let (cp, w) = aws_nodes();
        let scripts = [
            (
                "upgrade-kubeadm-control-plane.sh",
                super::super::upgrade::kubeadm_script(&cp, "1.36", None, true).unwrap(),
            ),
            (
                "upgrade-kubeadm-worker.sh",
                super::super::upgrade::kubeadm_script(&w, "1.36", Some("1.36.1"), true).unwrap(),
            ),
            ("upgrade-kubelet.sh", super::super::upgrade::kubelet_script(&w, "1.36.1").unwrap()),
        ];
        insta::assert_snapshot!("upgrade_kubeadm_control_plane", &scripts[0].1);
        insta::assert_snapshot!("upgrade_kubeadm_worker", &scripts[1].1);
        insta::assert_snapshot!("upgrade_kubelet", &scripts[2].1);
        assert!(scripts[0].1.contains("kubeadm upgrade apply \"$target\" --yes"));
        assert!(scripts[1].1.contains("kubeadm upgrade node") && !scripts[1].1.contains("upgrade apply"));
        for (name, text) in &scripts {
            assert!(text.starts_with("#!/usr/bin/env bash\n") && text.contains("set -euo pipefail"), "{name}");
            assert!(!text.contains("{{") && !text.contains("{%"), "{name} has unrendered template syntax");
            crate::testing::shellcheck(name, text);
        }
    }
}
