//! Snapshots of the rendered manifests and smoke commands, and the readiness rules on saved
//! `kubectl get -o json` outputs (tests/fixtures/kubectl-json). Schema validation of the same
//! manifests runs in the integration tests (`kubernetes-validate --strict`).

use std::path::Path;

use super::readiness::{self, WorkloadStatus};
use super::render::{self, Component, WorkloadKind};
use super::smoke;
use crate::config::Spec;

fn spec(stack: &str) -> Spec {
    crate::config::testing::parse(&format!("{}{stack}", crate::config::testing::AWS_BASE))
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubectl-json").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rendered(spec: &Spec) -> String {
    let mut out = String::new();
    for m in render::manifests(spec).unwrap() {
        out.push_str(&format!("### {}\n{}", m.file, m.content));
    }
    if let Some(job) = render::spark_pi(spec).unwrap() {
        out.push_str(&format!("### spark-pi.yaml\n{job}"));
    }
    out
}

const BIG: &str = r#"
[stack]
storage_class = "fast"

[stack.kafka]
brokers = 5
controllers = 3
heap = "4g"
memory = "8Gi"

[stack.cassandra]
replicas = 1
datacenter = "eu-west-3"

[stack.spark]
workers = 2
worker_cpu = "1.5"
worker_memory = "4Gi"
"#;

#[test]
fn default_stack_manifests() {
    insta::assert_snapshot!("default_stack", rendered(&spec("")));
}

#[test]
fn dedicated_controllers_standalone_spark_and_one_cassandra() {
    insta::assert_snapshot!("big_stack", rendered(&spec(BIG)));
}

#[test]
fn kafka_quorum_and_ids() {
    let s = spec(BIG);
    let k = s.stack.kafka.as_ref().unwrap();
    assert_eq!(
        render::kafka_voters(k),
        "0@kafka-controller-0.kafka-headless.kafka.svc.cluster.local:9093,1@kafka-controller-1.kafka-headless.kafka.svc.cluster.local:9093,2@kafka-controller-2.kafka-headless.kafka.svc.cluster.local:9093"
    );
    let text = rendered(&s);
    // Brokers take ids from 100 so they never collide with the controllers' 0..2.
    assert!(text.contains("KAFKA_NODE_ID=$(( POD_INDEX + 100 ))"), "{text}");
    assert!(text.contains("KAFKA_NODE_ID=$(( POD_INDEX + 0 ))"), "{text}");
    // The Service-link trap: no Service is called `kafka`.
    assert!(!text.contains("kind: Service\nmetadata:\n  name: kafka\n"), "{text}");
    // Every pod: two Kafka StatefulSets, Cassandra, the Spark master and workers, SparkPi.
    assert_eq!(text.matches("enableServiceLinks: false").count(), 2 + 1 + 2 + 1, "{text}");
}

#[test]
fn the_kafka_cluster_id_is_fixed_per_environment() {
    let a = crate::config::default_kafka_cluster_id("demo", "dev");
    assert_eq!(a.len(), 22);
    assert_eq!(a, crate::config::default_kafka_cluster_id("demo", "dev"));
    assert_ne!(a, crate::config::default_kafka_cluster_id("demo", "prod"));
    assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{a}");
}

#[test]
fn seeds_are_the_first_two_pods() {
    assert_eq!(render::cassandra_seeds("db", 1), "cassandra-0.cassandra-headless.db.svc.cluster.local");
    assert_eq!(
        render::cassandra_seeds("db", 5),
        "cassandra-0.cassandra-headless.db.svc.cluster.local,cassandra-1.cassandra-headless.db.svc.cluster.local"
    );
}

#[test]
fn disabled_components_render_nothing() {
    let s =
        spec("[stack.kafka]\nenabled = false\n[stack.cassandra]\nenabled = false\n[stack.spark]\nenabled = false\n");
    assert!(s.stack.is_empty());
    assert!(render::manifests(&s).unwrap().is_empty());
    assert!(render::workloads(&s).is_empty());
    assert!(render::spark_pi(&s).unwrap().is_none());
}

#[test]
fn workloads_and_endpoints() {
    let s = spec(BIG);
    let w: Vec<(Component, WorkloadKind, String, u32)> =
        render::workloads(&s).into_iter().map(|w| (w.component, w.kind, w.name, w.replicas)).collect();
    assert_eq!(
        w,
        vec![
            (Component::Kafka, WorkloadKind::StatefulSet, "kafka-controller".into(), 3),
            (Component::Kafka, WorkloadKind::StatefulSet, "kafka".into(), 5),
            (Component::Cassandra, WorkloadKind::StatefulSet, "cassandra".into(), 1),
            (Component::Spark, WorkloadKind::Deployment, "spark-master".into(), 1),
            (Component::Spark, WorkloadKind::Deployment, "spark-worker".into(), 2),
        ]
    );
    insta::assert_json_snapshot!("endpoints_big", render::endpoints(&s));
    insta::assert_json_snapshot!("endpoints_default", render::endpoints(&spec("")));
}

fn statuses(fixture_name: &str) -> Vec<WorkloadStatus> {
    let s = spec("[stack.spark]\nworkers = 2\n");
    readiness::workload_status(&render::workloads(&s), &fixture(fixture_name)).unwrap()
}

#[test]
fn readiness_while_rolling_out() {
    let got: Vec<(String, u32, u32, bool)> =
        statuses("workloads-rolling.json").into_iter().map(|s| (s.name, s.desired, s.ready, s.done)).collect();
    assert_eq!(
        got,
        vec![
            ("kafka".into(), 3, 3, true),
            // OrderedReady: pod 1 of 3 is starting.
            ("cassandra".into(), 3, 1, false),
            // Ready, but the controller has not observed the newest spec yet.
            ("spark-master".into(), 1, 1, false),
            // An old ReplicaSet still runs a third pod.
            ("spark-worker".into(), 2, 2, false),
        ]
    );
}

#[test]
fn readiness_when_rolled_out() {
    assert!(statuses("workloads-ready.json").iter().all(|s| s.done && !s.missing));
}

#[test]
fn a_workload_missing_from_the_cluster_is_named_missing() {
    let s = spec("");
    let got =
        readiness::workload_status(&render::workloads(&s), r#"{"apiVersion":"v1","kind":"List","items":[]}"#).unwrap();
    assert!(got.iter().all(|s| s.missing && !s.done && s.ready == 0), "{got:?}");
}

#[test]
fn another_replica_count_in_the_cluster_is_not_ready() {
    // The config asks for 5 brokers; the cluster still runs the 3 of the fixture.
    let s = spec("[stack.kafka]\nbrokers = 5\n");
    let got = readiness::workload_status(&render::workloads(&s), &fixture("workloads-ready.json")).unwrap();
    let kafka = got.iter().find(|w| w.name == "kafka").unwrap();
    assert!(!kafka.done, "{kafka:?}");
}

#[test]
fn pods_say_why_they_are_not_ready() {
    let pods = readiness::pods(&fixture("pods-pending.json")).unwrap();
    insta::assert_json_snapshot!("pods_pending", pods);
}

#[test]
fn last_events_of_a_workload_oldest_first() {
    let events = readiness::events(&fixture("events.json"), "cassandra", 3).unwrap();
    insta::assert_json_snapshot!("events_cassandra", events);
}

#[test]
fn events_are_the_workloads_own_not_its_neighbours() {
    let ev = |name: &str| {
        format!(
            r#"{{"involvedObject":{{"name":"{name}"}},"type":"Warning","reason":"R","message":"{name}","lastTimestamp":"2026-11-22T04:00:00Z"}}"#
        )
    };
    let json = format!(
        r#"{{"items":[{}]}}"#,
        ["kafka", "kafka-0", "data-kafka-1", "kafka-controller-0", "kafka-headless", "kafka-bootstrap", "kafka-x"]
            .map(ev)
            .join(",")
    );
    let got: Vec<String> = readiness::events(&json, "kafka", 10).unwrap().into_iter().map(|e| e.object).collect();
    assert_eq!(got, ["kafka", "kafka-0", "data-kafka-1"]);
}

#[test]
fn load_balancers_and_volumes_for_teardown() {
    assert_eq!(
        readiness::load_balancers(&fixture("services.json")).unwrap(),
        vec![("kafka".to_string(), "kafka-external".to_string()), ("analytics".into(), "dashboard".into())]
    );
    let ours = vec!["kafka".to_string(), "cassandra".to_string()];
    assert_eq!(
        readiness::volumes_of(&fixture("persistentvolumes.json"), &ours).unwrap(),
        vec!["pvc-0c1e5a2b-1111-4a4a-9b9b-000000000001", "pvc-0c1e5a2b-1111-4a4a-9b9b-000000000002"]
    );
}

#[test]
fn pod_selectors_match_the_templates_labels() {
    let s = spec(BIG);
    let sel: Vec<String> = render::workloads(&s).iter().map(|w| w.pod_selector.clone()).collect();
    let text = rendered(&s);
    for (w, sel) in render::workloads(&s).iter().zip(&sel) {
        for pair in sel.split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            assert!(text.contains(&format!("{k}: {v}")), "{} selector {sel}: {k}: {v} not in the manifests", w.name);
        }
    }
    insta::assert_debug_snapshot!("pod_selectors", sel);
}

#[test]
fn smoke_commands() {
    let s = spec("");
    let checks =
        smoke::checks(&s, "kubectl --kubeconfig /etc/kubernetes/admin.conf", "/var/lib/tagstack/stack", "0badc0de");
    let text: String = checks
        .iter()
        .map(|c| {
            let steps: String = c
                .steps
                .iter()
                .map(|st| format!("  - {}\n    $ {}\n    expect: {:?}\n", st.what, st.command, st.expect))
                .collect();
            format!("{} / {}\n{steps}  cleanup: {:?}\n", c.component.as_str(), c.name, c.cleanup)
        })
        .collect();
    insta::assert_snapshot!("smoke_commands", text);
}

#[test]
fn smoke_commands_parse_as_shell() {
    let s = spec(BIG);
    for c in smoke::checks(&s, "kubectl", "/var/lib/tagstack/stack", "0badc0de") {
        for st in c.steps.iter().map(|s| s.command.clone()).chain(c.cleanup.clone()) {
            let out = std::process::Command::new("bash").args(["-n", "-c", &st]).output().unwrap();
            assert!(out.status.success(), "{st}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    assert_eq!(smoke::sh_quote("it's"), r"'it'\''s'");
}

#[test]
fn judge_finds_the_expected_line() {
    let out = "Picked up JAVA_TOOL_OPTIONS\nPi is roughly 3.1416271141627114\n";
    assert_eq!(smoke::judge(out, "Pi is roughly"), Some("Pi is roughly 3.1416271141627114"));
    assert_eq!(smoke::judge("Processed a total of 0 messages", "tagstack smoke x"), None);
}

#[test]
fn storage_class_preflight() {
    let list = |items: &str| format!(r#"{{"apiVersion":"v1","kind":"List","items":[{items}]}}"#);
    let gp3 = r#"{"metadata":{"name":"gp3","annotations":{"storageclass.kubernetes.io/is-default-class":"true"}},"provisioner":"ebs.csi.aws.com"}"#;
    let local = r#"{"metadata":{"name":"local-path"},"provisioner":"rancher.io/local-path"}"#;
    assert_eq!(readiness::check_storage_class(&list(gp3), Some("gp3")), Ok(()));
    assert_eq!(readiness::check_storage_class(&list(gp3), None), Ok(()));
    assert_eq!(readiness::check_storage_class(&list(local), Some("local-path")), Ok(()));
    let missing = readiness::check_storage_class(&list(local), Some("gp3")).unwrap_err();
    assert!(
        missing.contains("\"gp3\" (stack.storage_class) does not exist in the cluster (it has: local-path)"),
        "{missing}"
    );
    let no_default = readiness::check_storage_class(&list(local), None).unwrap_err();
    assert!(no_default.contains("no default StorageClass"), "{no_default}");
    let empty = readiness::check_storage_class(&list(""), None).unwrap_err();
    assert!(empty.contains("(classes: none)"), "{empty}");
}

#[test]
fn spark_examples_jar_follows_the_image_tag() {
    let jar = render::spark_examples_jar;
    assert_eq!(jar("apache/spark:4.1.0").as_deref(), Some("spark-examples_2.13-4.1.0.jar"));
    assert_eq!(
        jar("apache/spark:4.0.1-scala2.13-java17-python3-ubuntu").as_deref(),
        Some("spark-examples_2.13-4.0.1.jar")
    );
    assert_eq!(jar("registry.local:5000/spark:3.5.6").as_deref(), Some("spark-examples_2.12-3.5.6.jar"));
    assert_eq!(jar("apache/spark:latest"), None);
    assert_eq!(jar("apache/spark@sha256:0123"), None);
    assert_eq!(jar("registry.local:5000/spark"), None);
}

#[test]
fn a_failed_step_keeps_its_cause() {
    let s = spec("");
    let checks = smoke::checks(&s, "kubectl", "/var/lib/tagstack/stack", "0badc0de");
    let consume = &checks[0].steps[2];
    let timed_out = crate::remote::Output {
        code: Some(0),
        stdout: String::new(),
        stderr: "[2026-11-22 05:00:00,000] ERROR Error processing message, terminating consumer process:  (org.apache.kafka.tools.consumer.ConsoleConsumer)\norg.apache.kafka.common.errors.TimeoutException\nProcessed a total of 0 messages\n".into(),
    };
    let why = smoke::judge_step(consume, &timed_out).unwrap_err();
    assert!(why.starts_with("consume on kafka-2: expected \"tagstack smoke 0badc0de\" in its output; got: "), "{why}");
    assert!(why.ends_with("TimeoutException | Processed a total of 0 messages"), "{why}");
    let refused = crate::remote::Output {
        code: Some(1),
        stdout: String::new(),
        stderr: "Error from server (BadRequest): pod kafka-0 does not have a host assigned\n".into(),
    };
    let why = smoke::judge_step(&checks[0].steps[0], &refused).unwrap_err();
    assert_eq!(
        why,
        "create topic tagstack-smoke-0badc0de exited with 1: Error from server (BadRequest): pod kafka-0 does not have a host assigned"
    );
    let ok = crate::remote::Output { code: Some(0), stdout: "tagstack smoke 0badc0de\n".into(), stderr: String::new() };
    assert_eq!(smoke::judge_step(consume, &ok), Ok(()));
}

#[test]
fn namespaces_of_someone_else_are_not_taken_over() {
    let ns = |name: &str, labels: &str| format!(r#"{{"metadata":{{"name":"{name}","labels":{{{labels}}}}}}}"#);
    let ours = r#""app.kubernetes.io/managed-by":"tagstack","app.kubernetes.io/instance":"demo-dev""#;
    let other_env = r#""app.kubernetes.io/managed-by":"tagstack","app.kubernetes.io/instance":"demo-prod""#;
    let json = format!(
        r#"{{"items":[{},{},{},{}]}}"#,
        ns("kafka", ours),
        ns("cassandra", other_env),
        ns("spark", r#""team":"data""#),
        ns("default", "")
    );
    let wanted: Vec<String> = ["kafka", "cassandra", "spark", "analytics"].map(String::from).to_vec();
    assert_eq!(readiness::foreign_namespaces(&json, &wanted, "demo-dev").unwrap(), ["cassandra", "spark"]);
    assert_eq!(readiness::object_names(&json).unwrap(), ["kafka", "cassandra", "spark", "default"]);
}

#[test]
fn the_live_kafka_quorum_is_read_from_the_statefulsets() {
    let sts = |name: &str, voters: &str| {
        format!(
            r#"{{"kind":"StatefulSet","metadata":{{"name":"{name}"}},"spec":{{"template":{{"spec":{{"containers":[{{"name":"kafka","env":[{{"name":"POD_NAME"}},{{"name":"KAFKA_CONTROLLER_QUORUM_VOTERS","value":"{voters}"}}]}}]}}}}}}}}"#
        )
    };
    let json = format!(r#"{{"items":[{},{}]}}"#, sts("kafka", "0@a:9093"), r#"{"metadata":{"name":"other"}}"#);
    assert_eq!(readiness::kafka_voters_in(&json).unwrap(), [("kafka".to_string(), "0@a:9093".to_string())]);
    // What tagstack renders is what it compares with.
    let k = spec("").stack.kafka.unwrap();
    assert!(rendered(&spec("")).contains(&format!("value: \"{}\"", render::kafka_voters(&k))));
}
