//! `down` on a static environment, over real SSH on the test bed: the stack's CA
//! (kube-system/tagstack-ca, whose key signs every certificate of the stack) goes with the last
//! tagstack stack of the cluster, and not before: while another environment's labelled
//! namespace remains, its certificates still chain to it. A Secret tagstack did not label stays.
//! kubectl is the STAND-IN (tests/fixtures/node-bin/README.md).

use crate::support::TestEnv;
use crate::support::bed::{Bed, KUBECTL, add_storage_class, env_with, on_cp};

fn secrets(env: &TestEnv) -> String {
    on_cp(env, &format!("{KUBECTL} get secrets -n kube-system -o name")).success().stdout
}

#[test]
fn down_deletes_the_ca_with_the_last_stack_of_the_cluster() {
    let bed = Bed::up(2);
    let env = env_with(
        &bed,
        "teardown",
        "[stack]\nready_timeout = \"2m\"\n[stack.kafka]\nenabled = false\n[stack.spark]\nenabled = false\n[stack.cassandra]\nreplicas = 1\n",
    );
    env.tagstack().args(&["up", "--only", "cluster"]).run().success();
    add_storage_class(&env, &bed);
    env.tagstack().arg("up").run().success();
    assert!(secrets(&env).contains("secret/tagstack-ca"), "{}", secrets(&env));

    // Another environment's stack on the same cluster, and a Secret of someone else.
    let other = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kafka-other\n  labels:\n    app.kubernetes.io/managed-by: tagstack\n    app.kubernetes.io/part-of: tagstack\n    app.kubernetes.io/instance: other-env\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: someone-else\n  namespace: kube-system\ntype: Opaque\ndata:\n  token: c2VjcmV0\n";
    std::fs::write(bed.fs(0, "var/lib/tagstack/other.yaml"), other).unwrap();
    on_cp(&env, &format!("{KUBECTL} apply --server-side -f /var/lib/tagstack/other.yaml")).success();

    env.tagstack().args(&["down", "--yes"]).run().success();
    let left = secrets(&env);
    assert!(
        !on_cp(&env, &format!("{KUBECTL} get namespaces -o name")).success().stdout.contains("namespace/cassandra\n")
    );
    assert!(left.contains("secret/tagstack-ca"), "the CA went while another stack uses it: {left}");

    // The other environment goes; the next `down` of this one takes the CA, nothing else.
    on_cp(&env, &format!("{KUBECTL} delete namespace kafka-other")).success();
    env.tagstack().args(&["down", "--yes"]).run().success();
    let left = secrets(&env);
    assert!(!left.contains("secret/tagstack-ca"), "the CA outlived every stack: {left}");
    assert!(left.contains("secret/someone-else"), "a Secret tagstack did not label was deleted: {left}");
}
