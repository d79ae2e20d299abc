//! Issue 14, item 7 for the network policies, over real SSH on the test bed: the first `up`
//! that applies the policies to a stack that ran without them stops, before changing anything,
//! while a namespace with pods has not been labelled `tagstack/client` either way, and names
//! it; once the user has decided (here: `false`, not a client), `up` applies the policies. The
//! kubectl STAND-IN lists namespaces, pods (one per replica of an applied Deployment) and
//! NetworkPolicies as the API server does (tests/fixtures/node-bin/README.md).

use crate::support::bed::{Bed, KUBECTL, env_with, on_cp};

/// A namespace `etl` with a Deployment in it (an application that reads the stack), its
/// namespace labelled with `labels` (YAML flow mapping).
fn etl(labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: etl\n  labels: {labels}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: loader\n  namespace: etl\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: loader}}\n  template:\n    metadata:\n      labels: {{app: loader}}\n    spec:\n      containers:\n        - name: loader\n          image: busybox:1.37\n          command: [sleep, infinity]\n"
    )
}

#[test]
fn the_first_up_with_network_policies_names_the_namespaces_it_would_cut_off() {
    let bed = Bed::up(2);
    let env = env_with(
        &bed,
        "netpolup",
        "[stack]\nready_timeout = \"2m\"\n[stack.kafka]\nenabled = false\n[stack.cassandra]\nenabled = false\n[stack.spark]\nworkers = 1\n",
    );
    env.tagstack().arg("up").run().success();
    let policies = format!("{KUBECTL} get networkpolicies -n spark -o name");
    assert!(on_cp(&env, &policies).success().stdout.contains("spark-default-deny"));

    // The stack as an older tagstack left it (no policies), and an application beside it.
    on_cp(&env, &format!("{KUBECTL} delete networkpolicies -A -l app.kubernetes.io/managed-by=tagstack")).success();
    assert_eq!(on_cp(&env, &policies).success().stdout.trim(), "");
    std::fs::write(bed.fs(0, "var/lib/tagstack/etl.yaml"), etl("{team: data}")).unwrap();
    on_cp(&env, &format!("{KUBECTL} apply --server-side -f /var/lib/tagstack/etl.yaml")).success();
    // The stack's applies (the cluster stage re-applies its add-ons on every `up`).
    let applied = || {
        let log = std::fs::read_to_string(bed.cluster_state("applied.log")).unwrap_or_default();
        log.lines().filter(|l| l.contains("/var/lib/tagstack/stack/")).count()
    };
    let before = applied();

    let refused = env.tagstack().arg("up").run().code(1);
    for needle in [
        "enforces network policies on the stack (namespaces spark), which ran without them",
        "pods in namespace(s) etl (not labelled tagstack/client) would no longer reach",
        "nothing was changed",
        "hint: label each of them: `kubectl label namespace etl tagstack/client=true` if its pods use the stack, `tagstack/client=false` if not",
    ] {
        assert!(refused.stderr.contains(needle), "missing {needle:?} in:\n{}", refused.stderr);
    }
    assert_eq!(applied(), before, "applied despite the refusal");
    assert_eq!(on_cp(&env, &policies).success().stdout.trim(), "");

    // The user decides: etl does not use the stack.
    std::fs::write(bed.fs(0, "var/lib/tagstack/etl.yaml"), etl("{team: data, tagstack/client: \"false\"}")).unwrap();
    on_cp(&env, &format!("{KUBECTL} apply --server-side -f /var/lib/tagstack/etl.yaml")).success();
    env.tagstack().arg("up").run().success();
    assert!(on_cp(&env, &policies).success().stdout.contains("spark-default-deny"));
    // From then on the policies exist, and a new unlabelled namespace holds nothing up.
    std::fs::write(bed.fs(0, "var/lib/tagstack/etl.yaml"), etl("{team: data}")).unwrap();
    on_cp(&env, &format!("{KUBECTL} apply --server-side -f /var/lib/tagstack/etl.yaml")).success();
    env.tagstack().arg("up").run().success();
}
