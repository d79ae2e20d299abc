//! The node-maintenance commands a safe scale-down runs, against the kubectl STAND-IN on a
//! 1+3 bed with the stack deployed: cordon/uncordon, `drain` (evictions through the
//! PodDisruptionBudgets of the stack's manifests, a budget that never allows one timing out
//! with kubectl's own error), `delete node`, and the Kafka/Cassandra health tools. This tests
//! the stand-in's contract (tests/fixtures/node-bin/README.md, "kubectl"), which tagstack's
//! scale-down is written against; it runs through `tagstack ssh`, as a user would.

use crate::support::bed::{Bed, add_storage_class};
use crate::support::{KAFKA_TOPICS, Run, TestEnv};

const DRAIN: &[&str] = &["--ignore-daemonsets", "--delete-emptydir-data"];

fn kubectl(env: &TestEnv, args: &[&str]) -> Run {
    let mut all = vec!["ssh", "cp", "--", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    all.extend_from_slice(args);
    env.tagstack().args(&all).run()
}

fn json(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", "json"]);
    kubectl(env, &all).success().json()
}

/// (namespace, pod) -> node, for the stack's pods.
fn placement(env: &TestEnv) -> Vec<(String, String, String)> {
    let pods = json(env, &["get", "pods", "-A"]);
    let mut out: Vec<(String, String, String)> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["namespace"].as_str().unwrap().to_string(),
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn on_node(env: &TestEnv, node: &str) -> Vec<String> {
    let selector = format!("spec.nodeName={node}");
    let pods = json(env, &["get", "pods", "-A", "--field-selector", &selector]);
    pods["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect()
}

fn volume_of(env: &TestEnv, ns: &str, claim: &str) -> String {
    let pvc = json(env, &["get", "pvc", "-n", ns, claim]);
    pvc["spec"]["volumeName"].as_str().unwrap().to_string()
}

#[test]
fn cordon_drain_through_the_budgets_and_delete_node_behave_like_kubectl() {
    let bed = Bed::up(4);
    let env = TestEnv::new("drain");
    std::fs::write(env.config_path(), format!("{}\n[stack]\nready_timeout = \"2m\"\n", bed.config(&env.project)))
        .unwrap();
    env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    add_storage_class(&env, &bed);
    env.tagstack().arg("up").run().success();

    // The budgets as the disruption controller computes them (maxUnavailable: 1 of 3).
    let pdbs = json(&env, &["get", "pdb", "-A"]);
    for pdb in pdbs["items"].as_array().unwrap() {
        let st = &pdb["status"];
        assert_eq!((st["expectedPods"].as_u64(), st["desiredHealthy"].as_u64()), (Some(3), Some(2)), "{pdb}");
        assert_eq!((st["currentHealthy"].as_u64(), st["disruptionsAllowed"].as_u64()), (Some(3), Some(1)), "{pdb}");
    }
    // The StatefulSets carry their pod template's affinity.
    let sets = json(&env, &["get", "statefulsets", "-A"]);
    assert!(sets["items"].as_array().unwrap().iter().all(|s| {
        s["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
            .is_array()
    }));

    // cordon / uncordon, idempotent, and pods stay where they are.
    let before = placement(&env);
    assert!(kubectl(&env, &["cordon", "w1"]).success().stdout.contains("node/w1 cordoned"));
    assert!(kubectl(&env, &["cordon", "w1"]).success().stdout.contains("node/w1 already cordoned"));
    let nodes = kubectl(&env, &["get", "nodes"]).success();
    assert!(
        nodes.stdout.lines().any(|l| l.starts_with("w1 ") && l.contains("Ready,SchedulingDisabled")),
        "{}",
        nodes.stdout
    );
    let w1 = json(&env, &["get", "node", "w1"]);
    assert_eq!(w1["spec"]["unschedulable"], true, "{w1}");
    assert!(w1["spec"]["taints"].as_array().unwrap().iter().any(|t| t["key"] == "node.kubernetes.io/unschedulable"));
    assert_eq!(placement(&env), before, "cordoning moved pods");
    assert!(kubectl(&env, &["uncordon", "w1"]).success().stdout.contains("node/w1 uncordoned"));
    assert!(kubectl(&env, &["uncordon", "w1"]).success().stdout.contains("node/w1 already uncordoned"));
    assert!(kubectl(&env, &["cordon", "node/w9"]).code(1).stderr.contains(r#"nodes "w9" not found"#));

    // Without --ignore-daemonsets drain refuses (kube-proxy and Flannel run everywhere), evicting nothing.
    let refused = kubectl(&env, &["drain", "w1", "--timeout=20s"]).code(1);
    assert!(
        refused.stderr.contains("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("There are pending nodes to be drained:\n w1"), "{}", refused.stderr);
    assert_eq!(placement(&env), before, "a refused drain evicted pods");

    // A drain evicts every pod of w1; the StatefulSets recreate them elsewhere with their claims.
    let moving = on_node(&env, "w1");
    assert!(!moving.is_empty(), "nothing runs on w1: {before:?}");
    let claims: Vec<(String, String, String)> = before
        .iter()
        .filter(|(_, _, node)| node == "w1")
        .map(|(ns, pod, _)| {
            let claim = format!("data-{pod}");
            let volume = volume_of(&env, ns, &claim);
            (ns.clone(), claim, volume)
        })
        .collect();
    let mut args = vec!["drain", "w1", "--timeout=60s"];
    args.extend_from_slice(DRAIN);
    let drained = kubectl(&env, &args).success();
    assert!(drained.stdout.contains("node/w1 already cordoned") || drained.stdout.contains("node/w1 cordoned"));
    assert!(drained.stderr.contains("Warning: ignoring DaemonSet-managed Pods: "), "{}", drained.stderr);
    for pod in &moving {
        assert!(drained.stdout.contains(&format!("pod/{pod} evicted")), "{pod}: {}", drained.stdout);
    }
    assert!(drained.stdout.trim_end().ends_with("node/w1 drained"), "{}", drained.stdout);
    assert!(on_node(&env, "w1").is_empty(), "pods left on w1");
    for (ns, claim, volume) in &claims {
        assert_eq!(&volume_of(&env, ns, claim), volume, "{claim} did not follow its pod");
    }
    // Every pod runs (and soon is Ready) elsewhere.
    let after = placement(&env);
    assert_eq!(after.len(), before.len(), "{after:?}");
    assert!(after.iter().all(|(_, _, node)| node == "w2" || node == "w3"), "{after:?}");

    // A budget that cannot allow an eviction (a Kafka broker off w2 never Ready) blocks the
    // drain of w2 until its deadline, with kubectl's texts; the Kafka pods stay on w2.
    let (_, outside, _) = after.iter().find(|(ns, _, node)| ns == "kafka" && node == "w3").unwrap().clone();
    let created = kubectl(
        &env,
        &[KAFKA_TOPICS, &["--create", "--topic", "drain-check", "--partitions", "3", "--replication-factor", "3"]]
            .concat(),
    )
    .success();
    assert!(created.stdout.contains("Created topic drain-check."), "{}", created.stdout);
    let healthy = kubectl(&env, &[KAFKA_TOPICS, &["--describe", "--under-replicated-partitions"]].concat()).success();
    assert_eq!(healthy.stdout, "", "under-replicated partitions on a healthy cluster");
    let knob = bed.cluster_state("stack/pod-not-ready");
    std::fs::create_dir_all(&knob).unwrap();
    std::fs::write(knob.join(format!("kafka.{outside}")), "").unwrap();
    let kafka_on_w2: Vec<String> =
        after.iter().filter(|(ns, _, n)| ns == "kafka" && n == "w2").map(|p| p.1.clone()).collect();
    let mut args = vec!["drain", "w2", "--timeout=6s"];
    args.extend_from_slice(DRAIN);
    let blocked = kubectl(&env, &args).code(1);
    let pod = kafka_on_w2.first().expect("no Kafka broker on w2");
    for needle in [
        format!(
            r#"error when evicting pods/"{pod}" -n "kafka" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."#
        ),
        format!(r#"error when evicting pods/"{pod}" -n "kafka": global timeout reached: 6s"#),
        "There are pending pods in node \"w2\" when an error occurred: ".to_string(),
        "error: unable to drain node \"w2\" due to error: ".to_string(),
        "There are pending nodes to be drained:\n w2".to_string(),
    ] {
        assert!(blocked.stderr.contains(&needle), "missing {needle:?} in:\n{}", blocked.stderr);
    }
    let pdb = json(&env, &["get", "pdb", "-n", "kafka", "kafka"]);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0, "{pdb}");
    // Meanwhile Kafka reports the partitions that broker holds as under-replicated (the ISR
    // lacks it), but none below min.insync.replicas (2 of 3 in sync).
    let kafka = |pod: &str, args: &[&str]| {
        // The INTERNAL listener's client configuration in that pod, as tagstack writes it.
        let put = format!(
            "printf '%s\\n' security.protocol=SSL ssl.keystore.type=PEM ssl.keystore.location=/etc/tagstack/tls/keystore.pem ssl.truststore.type=PEM ssl.truststore.location=/etc/tagstack/tls/ca.pem | kubectl --kubeconfig /etc/kubernetes/admin.conf exec -i -n kafka {pod} -c kafka -- /bin/sh -c 'umask 077 && cat > /tmp/tagstack-internal.properties'"
        );
        env.tagstack().args(&["ssh", "cp", "--", &put]).run().success();
        let mut all = vec!["exec", "-n", "kafka", pod, "-c", "kafka", "--", "/opt/kafka/bin/kafka-topics.sh"];
        all.extend_from_slice(&["--bootstrap-server", "localhost:9094"]);
        all.extend_from_slice(&["--command-config", "/tmp/tagstack-internal.properties"]);
        all.extend_from_slice(args);
        kubectl(&env, &all)
    };
    let under = kafka(pod, &["--describe", "--under-replicated-partitions"]).success();
    let lines: Vec<&str> = under.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", under.stdout);
    assert!(
        lines.iter().all(|l| l.starts_with("\tTopic: drain-check\tPartition: ") && l.contains("\tReplicas: ")),
        "{}",
        under.stdout
    );
    assert!(kafka(pod, &["--describe", "--under-min-isr-partitions"]).success().stdout.is_empty());
    let still = placement(&env);
    for pod in &kafka_on_w2 {
        assert!(still.iter().any(|(ns, p, n)| ns == "kafka" && p == pod && n == "w2"), "{pod} moved: {still:?}");
    }
    std::fs::remove_file(knob.join(format!("kafka.{outside}"))).unwrap();
    assert_eq!(kafka(pod, &["--describe", "--under-replicated-partitions"]).success().stdout, "");
    kubectl(&env, &["uncordon", "w2"]).success();

    // delete node: the Node object goes, and the deletion is logged.
    assert!(kubectl(&env, &["delete", "node", "w1"]).success().stdout.contains(r#"node "w1" deleted"#));
    let names = kubectl(&env, &["get", "nodes", "-o", "name"]).success().stdout;
    assert!(!names.contains("node/w1"), "{names}");
    let deleted = std::fs::read_to_string(bed.cluster_state("stack/deleted.log")).unwrap();
    assert!(deleted.lines().any(|l| l.ends_with(" Node /w1")), "{deleted}");
    for (ns, pod, node) in &before {
        if node == "w1" {
            assert!(deleted.contains(&format!(" Pod {ns}/{pod}\n")), "{pod} not evicted: {deleted}");
        }
    }

    // Cassandra: a member whose pod is not Ready is DN; decommission leaves the ring, refused
    // without --force while a keyspace would lose a replica (system_distributed has RF 3, and
    // since issue 14 so has system_auth, which `up` replicates to the data centre's factor and
    // which the stand-in checks first, as the README lists them).
    let nodetool = |pod: &str, args: &[&str]| {
        let mut all = vec!["exec", "-n", "cassandra", pod, "-c", "cassandra", "--", "nodetool"];
        all.extend_from_slice(args);
        kubectl(&env, &all)
    };
    let rows = |out: &str| out.lines().filter(|l| l.starts_with("UN ") || l.starts_with("DN ")).count();
    assert_eq!(rows(&nodetool("cassandra-0", &["status"]).success().stdout), 3);
    std::fs::write(knob.join("cassandra.cassandra-1"), "").unwrap();
    let status = nodetool("cassandra-0", &["status"]).success().stdout;
    assert_eq!(status.lines().filter(|l| l.starts_with("DN ")).count(), 1, "{status}");
    std::fs::remove_file(knob.join("cassandra.cassandra-1")).unwrap();
    let refused = nodetool("cassandra-2", &["decommission"]).code(1);
    assert!(
        refused.stdout.contains("nodetool: Unsupported operation: Not enough live nodes to maintain replication factor in keyspace system_auth (RF = 3, N = 3). Perform a forceful decommission to ignore."),
        "{}",
        refused.stdout
    );
    nodetool("cassandra-2", &["decommission", "--force"]).success();
    let status = nodetool("cassandra-0", &["status"]).success().stdout;
    assert_eq!(rows(&status), 2, "{status}");
    // A second decommission of the node is a no-op (Cassandra 5.0 logs and returns).
    let again = nodetool("cassandra-2", &["decommission", "--force"]).success();
    assert_eq!(again.stdout, "");
}
