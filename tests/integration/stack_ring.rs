//! Issue 15 item 7: a brand-new Cassandra ring starts every node at once (StatefulSet
//! `Parallel`, each pod's tokens in the ConfigMap `cassandra-ring`, deleted once the ring is
//! ready); a ring that may hold data never does: a `Parallel` StatefulSet grows one node at a
//! time, and one recreated over claims that hold data is `OrderedReady`. On the 1+3 bed against
//! the kubectl stand-in (tests/fixtures/node-bin/README.md); the rule is `stack::cassandra_ring`.

use crate::support::TestEnv;
use crate::support::bed::{Bed, add_storage_class};

fn config(bed: &Bed, env: &TestEnv, replicas: u32) -> String {
    format!(
        "{}\n[stack]\nready_timeout = \"2m\"\n[stack.kafka]\nenabled = false\n[stack.spark]\nenabled = false\n[stack.cassandra]\nreplicas = {replicas}\n",
        bed.config(&env.project)
    )
}

fn kubectl(env: &TestEnv, args: &[&str]) -> crate::support::Run {
    let mut all = vec!["ssh", "cp", "--", "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"];
    all.extend_from_slice(args);
    env.tagstack().args(&all).run()
}

fn statefulset(env: &TestEnv) -> serde_json::Value {
    kubectl(env, &["get", "statefulset", "-n", "cassandra", "cassandra", "-o", "json"]).success().json()
}

fn ring_configmaps(env: &TestEnv) -> usize {
    let cms = kubectl(env, &["get", "configmaps", "-n", "cassandra", "-o", "json"]).success().json();
    cms["items"].as_array().unwrap().iter().filter(|c| c["metadata"]["name"] == "cassandra-ring").count()
}

#[test]
fn a_new_ring_starts_together_and_a_ring_with_data_one_node_at_a_time() {
    let bed = Bed::up(4);
    let env = TestEnv::new("ring");
    std::fs::write(env.config_path(), config(&bed, &env, 2)).unwrap();
    env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    add_storage_class(&env, &bed);

    // Nothing there: Parallel, with the tokens' ConfigMap while the ring forms, gone after.
    env.tagstack().arg("up").run().success();
    let sts = statefulset(&env);
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel", "{sts}");
    assert_eq!(ring_configmaps(&env), 0, "the new ring's tokens outlived its creation");
    let deleted = std::fs::read_to_string(bed.cluster_state("stack/deleted.log")).unwrap_or_default();
    assert!(deleted.contains("cassandra-ring"), "the ConfigMap was never made and deleted: {deleted}");

    // 2 -> 4 on a Parallel StatefulSet: 3 first (one bootstrap), then 4.
    std::fs::write(env.config_path(), config(&bed, &env, 4)).unwrap();
    let up = env.tagstack().arg("up").run().success();
    assert!(up.stderr.contains("grow cassandra to 3 node(s), one bootstrap at a time"), "{}", up.stderr);
    assert!(!up.stderr.contains("grow cassandra to 4"), "{}", up.stderr);
    let sts = statefulset(&env);
    assert_eq!(
        (sts["spec"]["replicas"].as_u64(), sts["spec"]["podManagementPolicy"].as_str()),
        (Some(4), Some("Parallel"))
    );
    assert_eq!(ring_configmaps(&env), 0);

    // The StatefulSet deleted, its claims (the ring's data) kept: recreated OrderedReady.
    kubectl(&env, &["delete", "statefulset", "cassandra", "-n", "cassandra"]).success();
    env.tagstack().arg("up").run().success();
    let sts = statefulset(&env);
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady", "{sts}");
    assert_eq!(ring_configmaps(&env), 0);
}
