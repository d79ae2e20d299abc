//! The stack stage over real SSH on the test bed: tagstack's real manifests are uploaded to
//! the control plane and applied with `kubectl apply --server-side`, readiness is polled, and
//! the smoke checks and `down`'s clean-up run their real command lines. kubectl is a STAND-IN
//! (tests/fixtures/node-bin/kubectl) that parses what is applied, refuses what the real one
//! would, and answers readiness, pods, events, exec (Kafka tools, cqlsh) and job logs from
//! its model; knob files under the bed's cluster state make a workload or a check fail.

use crate::support::TestEnv;
use crate::support::bed::{Bed, add_storage_class, env_with};

fn kubectl(env: &TestEnv, args: &[&str]) {
    let mut all = vec!["ssh", "cp", "--", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    all.extend_from_slice(args);
    env.tagstack().args(&all).run().success();
}

fn applied(bed: &Bed) -> String {
    std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap_or_default()
}

#[test]
fn up_deploys_the_stack_and_waits_smoke_checks_it_and_down_removes_it() {
    let bed = Bed::up(4);
    let env = env_with(&bed, "stack", "[stack]\nready_timeout = \"2m\"\n");
    // kubeadm installs no StorageClass: the claims could never bind, and up says so before
    // applying anything.
    let first = env.tagstack().arg("up").run().code(1);
    assert!(first.stderr.contains("the cluster has no default StorageClass"), "{}", first.stderr);
    assert!(!applied(&bed).contains("/var/lib/tagstack/stack/"), "applied despite the preflight");
    add_storage_class(&env, &bed);
    let up = env.tagstack().args(&["up", "--output", "json"]).run().success().json();
    let workloads = up["stack"]["workloads"].as_array().unwrap();
    let names: Vec<&str> = workloads.iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["kafka", "cassandra"], "{up}");
    assert!(workloads.iter().all(|w| w["done"] == true && w["ready"] == 3), "{up}");
    let log = applied(&bed);
    for file in ["kafka.yaml", "cassandra.yaml", "spark.yaml"] {
        assert!(log.contains(&format!("-f /var/lib/tagstack/stack/{file}")), "{file} not applied: {log}");
    }
    insta::assert_json_snapshot!("stack_endpoints", up["stack"]["endpoints"]);

    // status: per workload desired/ready, and where clients connect.
    let st = env.tagstack().arg("status").run().success();
    assert!(st.stdout.contains("kafka/kafka"), "{}", st.stdout);
    assert!(st.stdout.contains("kafka-bootstrap.kafka.svc.cluster.local:9092"), "{}", st.stdout);

    // smoke: a message through Kafka, a CQL round trip, SparkPi.
    let smoke = env.tagstack().args(&["smoke", "--output", "json"]).run().success().json();
    assert_eq!(smoke["ok"], true, "{smoke}");
    let checks = smoke["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 3, "{smoke}");
    assert!(checks.iter().all(|c| c["ok"] == true && c["millis"].is_u64()), "{smoke}");
    assert!(checks[0]["detail"].as_str().unwrap().starts_with("tagstack smoke "), "{smoke}");
    assert!(checks[2]["detail"].as_str().unwrap().starts_with("Pi is roughly 3.1"), "{smoke}");

    // A broken Kafka fails the smoke test by name, and the other checks still run.
    std::fs::write(bed.cluster_state("stack/kafka-drops-messages"), "").unwrap();
    let failed = env.tagstack().arg("smoke").run().code(1);
    assert!(failed.stdout.contains("FAIL kafka"), "{}", failed.stdout);
    assert!(failed.stdout.contains("ok   cassandra"), "{}", failed.stdout);
    assert!(failed.stderr.contains("1 smoke check(s) failed"), "{}", failed.stderr);
    std::fs::remove_file(bed.cluster_state("stack/kafka-drops-messages")).unwrap();

    // A second up changes nothing and is ready at once.
    env.tagstack().arg("up").run().success();

    // Five brokers instead of three would change the static KRaft quorum: refused, unapplied.
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    std::fs::write(env.config_path(), format!("{config}\n[stack.kafka]\nbrokers = 5\n")).unwrap();
    let applies = applied(&bed).lines().count();
    let refused = env.tagstack().args(&["up", "--only", "stack"]).run().code(1);
    assert!(refused.stderr.contains("Kafka cannot change a static KRaft quorum"), "{}", refused.stderr);
    assert_eq!(applied(&bed).lines().count(), applies, "something was applied despite the refusal");
    std::fs::write(env.config_path(), config).unwrap();

    // down on a static environment removes what tagstack labelled for this environment, and
    // nothing of the cluster's other users: their namespace and their load balancer stay.
    std::fs::write(
        bed.fs(0, "var/lib/tagstack/theirs.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: analytics\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: dashboard\n  namespace: analytics\nspec:\n  type: LoadBalancer\n  selector:\n    app: dashboard\n  ports:\n    - port: 80\n",
    )
    .unwrap();
    kubectl(&env, &["apply", "-f", "/var/lib/tagstack/theirs.yaml"]);
    let down = env.tagstack().args(&["down", "--yes", "--output", "json"]).run().success().json();
    assert_eq!(down["cluster_cleanup"]["load_balancers"], serde_json::json!([]), "{down}");
    assert_eq!(down["cluster_cleanup"]["namespaces"], serde_json::json!(["cassandra", "kafka", "spark"]), "{down}");
    assert_eq!(down["cluster_cleanup"]["volumes_left"], serde_json::json!([]), "{down}");
    assert_eq!(down["cluster_cleanup"]["errors"], serde_json::json!([]), "{down}");
    let deleted = std::fs::read_to_string(bed.cluster_state("stack/deleted.log")).unwrap();
    assert!(deleted.contains("data-kafka-0"), "the claims were not deleted: {deleted}");
    assert!(!deleted.contains("analytics"), "someone else's namespace was touched: {deleted}");
    let st = env.tagstack().args(&["status", "--output", "json"]).run().success().json();
    assert!(st["stack"]["workloads"].as_array().unwrap().iter().all(|w| w["missing"] == true), "{st}");
    assert!(st["cluster"]["nodes"].as_array().unwrap().iter().all(|n| n["ready"] == true), "{st}");
}

#[test]
fn a_workload_that_never_gets_ready_is_named_with_its_pods_and_events_then_up_resumes() {
    let bed = Bed::up(2);
    let env = env_with(
        &bed,
        "stuck",
        "[stack]\nready_timeout = \"10s\"\n[stack.kafka]\nenabled = false\n[stack.spark]\nenabled = false\n[stack.cassandra]\nreplicas = 1\n",
    );
    std::fs::create_dir_all(bed.cluster_state("stack/not-ready")).unwrap();
    std::fs::write(
        bed.cluster_state("stack/not-ready/cassandra.cassandra"),
        r#"[{"type": "Warning", "reason": "FailedScheduling", "message": "0/2 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."}]"#,
    )
    .unwrap();
    env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    add_storage_class(&env, &bed);
    // A namespace of the same name that tagstack did not make is never taken over.
    std::fs::write(
        bed.fs(0, "var/lib/tagstack/ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: cassandra\n",
    )
    .unwrap();
    kubectl(&env, &["apply", "-f", "/var/lib/tagstack/ns.yaml"]);
    let refused = env.tagstack().arg("up").run().code(1);
    assert!(
        refused.stderr.contains("namespace(s) cassandra exist in the cluster without tagstack's labels"),
        "{}",
        refused.stderr
    );
    kubectl(&env, &["delete", "namespace", "cassandra"]);
    let run = env.tagstack().args(&["up", "--output", "json"]).run().code(1);
    // JSON still reports what finished, and the error.
    let doc = run.json();
    assert_eq!(doc["cluster"]["nodes"].as_array().unwrap().len(), 2, "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("cassandra/cassandra has 0/1 ready"), "{doc}");
    for needle in [
        "1 of 1 stack workload(s) not ready",
        "stack.ready_timeout 10s",
        "cassandra/cassandra has 0/1 ready",
        "pod cassandra-0 Pending",
        "FailedScheduling",
        "Insufficient memory",
    ] {
        assert!(run.stderr.contains(needle), "missing {needle:?} in:\n{}", run.stderr);
    }
    // Fixed: the next up finishes without re-running the cluster stage's work.
    std::fs::remove_file(bed.cluster_state("stack/not-ready/cassandra.cassandra")).unwrap();
    let up = env.tagstack().args(&["up", "--only", "stack", "--output", "json"]).run().success().json();
    assert_eq!(up["stack"]["workloads"][0]["done"], true, "{up}");
    assert!(up.get("cluster").is_none(), "--only stack ran the cluster stage: {up}");
}
