//! Issue 12: a Cassandra that shrinks (`stack.cassandra.replicas` lowered) loses no data: each
//! node that goes is decommissioned first (its ranges stream to the nodes that stay), highest
//! ordinal first, then the StatefulSet shrinks and the claims it left are deleted; a shrink
//! Cassandra refuses (a keyspace's replication factor would not fit) changes nothing. On the
//! 1+3 bed against the kubectl stand-in, which models `nodetool decommission` as Cassandra 5.0
//! does (tests/fixtures/node-bin/README.md).

use crate::support::TestEnv;
use crate::support::bed::{Bed, add_storage_class};

fn config(bed: &Bed, env: &TestEnv, replicas: u32) -> String {
    format!(
        "{}\n[stack]\nready_timeout = \"2m\"\n[stack.kafka]\nenabled = false\n[stack.spark]\nenabled = false\n[stack.cassandra]\nreplicas = {replicas}\n",
        bed.config(&env.project)
    )
}

fn kubectl_json(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["ssh", "cp", "--", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    env.tagstack().args(&all).run().success().json()
}

fn ring(env: &TestEnv) -> String {
    let argv = [
        "ssh",
        "cp",
        "--",
        "kubectl",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
        "exec",
        "-n",
        "cassandra",
        "cassandra-0",
        "-c",
        "cassandra",
        "--",
        "nodetool",
        "status",
    ];
    env.tagstack().args(&argv).run().success().stdout
}

fn members(ring: &str) -> usize {
    ring.lines().filter(|l| l.starts_with("UN ") || l.starts_with("DN ")).count()
}

fn replicas(env: &TestEnv) -> u64 {
    kubectl_json(env, &["get", "statefulset", "-n", "cassandra", "cassandra"])["spec"]["replicas"].as_u64().unwrap()
}

fn claims(env: &TestEnv) -> Vec<String> {
    let pvcs = kubectl_json(env, &["get", "pvc", "-n", "cassandra"]);
    let mut names: Vec<String> =
        pvcs["items"].as_array().unwrap().iter().map(|p| p["metadata"]["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

#[test]
fn a_shrinking_cassandra_decommissions_before_its_statefulset_shrinks() {
    let bed = Bed::up(4);
    let env = TestEnv::new("shrink");
    std::fs::write(env.config_path(), config(&bed, &env, 4)).unwrap();
    env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    add_storage_class(&env, &bed);
    env.tagstack().arg("up").run().success();
    assert_eq!(members(&ring(&env)), 4);

    // 4 -> 3: cassandra-3 leaves the ring, then the StatefulSet shrinks; its claim goes.
    std::fs::write(env.config_path(), config(&bed, &env, 3)).unwrap();
    let up = env.tagstack().arg("up").run().success();
    assert!(up.stderr.contains("cassandra-3 decommissioned"), "{}", up.stderr);
    let after = ring(&env);
    assert_eq!(members(&after), 3, "{after}");
    assert!(!after.contains("DN "), "{after}");
    assert_eq!(replicas(&env), 3);
    assert_eq!(claims(&env), ["data-cassandra-0", "data-cassandra-1", "data-cassandra-2"]);

    // 3 -> 2: Cassandra refuses (system_distributed keeps 3 replicas): nothing changes.
    std::fs::write(env.config_path(), config(&bed, &env, 2)).unwrap();
    let refused = env.tagstack().arg("up").run().code(1);
    assert!(refused.stderr.contains("Cassandra refused to decommission cassandra-2"), "{}", refused.stderr);
    assert!(refused.stderr.contains("Not enough live nodes"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("hint: every keyspace's replication factor must fit in 2 nodes"),
        "{}",
        refused.stderr
    );
    assert_eq!(members(&ring(&env)), 3);
    assert_eq!(replicas(&env), 3);
    assert_eq!(claims(&env).len(), 3);
}
