//! Snapshots of the rendered manifests and smoke commands, and the readiness rules on saved
//! `kubectl get -o json` outputs (tests/fixtures/kubectl-json). Schema validation of the same
//! manifests runs in the integration tests (`kubernetes-validate --strict`).

use std::path::Path;

use super::readiness::{self, WorkloadStatus};
use super::{Component, Manifest, WorkloadKind, cassandra, kafka, render, smoke, spark};
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
    for m in super::manifests(spec).unwrap() {
        out.push_str(&format!("### {}\n{}", m.file, m.content));
    }
    if let Some(job) = spark::pi_job(spec).unwrap() {
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
        kafka::voters(k),
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
    assert_eq!(cassandra::seeds("db", 1), "cassandra-0.cassandra-headless.db.svc.cluster.local");
    assert_eq!(
        cassandra::seeds("db", 5),
        "cassandra-0.cassandra-headless.db.svc.cluster.local,cassandra-1.cassandra-headless.db.svc.cluster.local"
    );
}

#[test]
fn disabled_components_render_nothing() {
    let s =
        spec("[stack.kafka]\nenabled = false\n[stack.cassandra]\nenabled = false\n[stack.spark]\nenabled = false\n");
    assert!(s.stack.is_empty());
    assert!(super::manifests(&s).unwrap().is_empty());
    assert!(super::workloads(&s).is_empty());
    assert!(spark::pi_job(&s).unwrap().is_none());
}

#[test]
fn workloads_and_endpoints() {
    let s = spec(BIG);
    let w: Vec<(Component, WorkloadKind, String, u32)> =
        super::workloads(&s).into_iter().map(|w| (w.component, w.kind, w.name, w.replicas)).collect();
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
    insta::assert_json_snapshot!("endpoints_big", super::endpoints(&s));
    insta::assert_json_snapshot!("endpoints_default", super::endpoints(&spec("")));
}

fn statuses(fixture_name: &str) -> Vec<WorkloadStatus> {
    let s = spec("[stack.spark]\nworkers = 2\n");
    readiness::workload_status(&super::workloads(&s), &fixture(fixture_name)).unwrap()
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
        readiness::workload_status(&super::workloads(&s), r#"{"apiVersion":"v1","kind":"List","items":[]}"#).unwrap();
    assert!(got.iter().all(|s| s.missing && !s.done && s.ready == 0), "{got:?}");
}

#[test]
fn another_replica_count_in_the_cluster_is_not_ready() {
    // The config asks for 5 brokers; the cluster still runs the 3 of the fixture.
    let s = spec("[stack.kafka]\nbrokers = 5\n");
    let got = readiness::workload_status(&super::workloads(&s), &fixture("workloads-ready.json")).unwrap();
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
    let sel: Vec<String> = super::workloads(&s).iter().map(|w| w.pod_selector.clone()).collect();
    let text = rendered(&s);
    for (w, sel) in super::workloads(&s).iter().zip(&sel) {
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
    let checks = super::smoke_checks(
        &s,
        "kubectl --kubeconfig /etc/kubernetes/admin.conf",
        "/var/lib/tagstack/stack",
        "0badc0de",
    );
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
    for c in super::smoke_checks(&s, "kubectl", "/var/lib/tagstack/stack", "0badc0de") {
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
    let missing = readiness::check_storage_class(&list(local), Some("gp3")).unwrap_err().to_string();
    assert!(
        missing.contains("\"gp3\" (stack.storage_class) does not exist in the cluster (it has: local-path)"),
        "{missing}"
    );
    let no_default = readiness::check_storage_class(&list(local), None).unwrap_err().to_string();
    assert!(no_default.contains("no default StorageClass"), "{no_default}");
    let empty = readiness::check_storage_class(&list(""), None).unwrap_err().to_string();
    assert!(empty.contains("(classes: none)"), "{empty}");
}

#[test]
fn spark_examples_jar_follows_the_image_tag() {
    let jar = spark::examples_jar;
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
    let checks = super::smoke_checks(&s, "kubectl", "/var/lib/tagstack/stack", "0badc0de");
    let step = |prefix: &str| checks[0].steps.iter().find(|s| s.what.starts_with(prefix)).unwrap();
    let consume = step("consume");
    let timed_out = smoke::StepOutput {
        code: Some(0),
        stdout: String::new(),
        stderr: "[2026-11-22 05:00:00,000] ERROR Error processing message, terminating consumer process:  (org.apache.kafka.tools.consumer.ConsoleConsumer)\norg.apache.kafka.common.errors.TimeoutException\nProcessed a total of 0 messages\n".into(),
    };
    let why = smoke::judge_step(consume, &timed_out).unwrap_err();
    assert!(why.starts_with("consume on kafka-2: expected \"tagstack smoke 0badc0de\" in its output; got: "), "{why}");
    assert!(why.ends_with("TimeoutException | Processed a total of 0 messages"), "{why}");
    let refused = smoke::StepOutput {
        code: Some(1),
        stdout: String::new(),
        stderr: "Error from server (BadRequest): pod kafka-0 does not have a host assigned\n".into(),
    };
    let why = smoke::judge_step(step("create topic"), &refused).unwrap_err();
    assert_eq!(
        why,
        "create topic tagstack-smoke-0badc0de exited with 1: Error from server (BadRequest): pod kafka-0 does not have a host assigned"
    );
    let ok = smoke::StepOutput { code: Some(0), stdout: "tagstack smoke 0badc0de\n".into(), stderr: String::new() };
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

/// The first `up` that applies the network policies to a stack that ran without them stops
/// while a namespace with pods has not been labelled either way; a new stack, or one that
/// already has its policies, is not held up.
#[test]
fn clients_of_a_stack_without_policies_are_named_before_the_policies_cut_them_off() {
    let ns = |name: &str, labels: &str| format!(r#"{{"metadata":{{"name":"{name}","labels":{{{labels}}}}}}}"#);
    let ours = r#""app.kubernetes.io/managed-by":"tagstack","app.kubernetes.io/instance":"demo-dev""#;
    let other_env = r#""app.kubernetes.io/managed-by":"tagstack","app.kubernetes.io/instance":"demo-prod""#;
    let namespaces = format!(
        r#"{{"items":[{}]}}"#,
        [
            ns("kafka", ours),
            ns("kafka-prod", other_env),
            ns("etl", r#""team":"data""#),
            ns("reports", r#""tagstack/client":"true""#),
            ns("batch", r#""tagstack/client":"false""#),
            ns("idle", ""),
            ns("default", ""),
            ns("kube-system", ""),
            ns("kube-flannel", ""),
            ns("monitoring", ""),
        ]
        .join(",")
    );
    let pods = format!(
        r#"{{"items":[{}]}}"#,
        [
            "kafka",
            "kafka-prod",
            "etl",
            "etl",
            "reports",
            "batch",
            "default",
            "kube-system",
            "kube-flannel",
            "monitoring"
        ]
        .map(|n| format!(r#"{{"metadata":{{"name":"p","namespace":"{n}"}}}}"#))
        .join(",")
    );
    let none = r#"{"items":[]}"#;
    let one_policy = r#"{"items":[{"metadata":{"name":"kafka-default-deny","namespace":"kafka"}}]}"#;
    let wanted: Vec<String> = ["kafka", "cassandra"].map(String::from).to_vec();
    assert!(readiness::policies_introduced(&namespaces, none, &wanted, "demo-dev").unwrap());
    assert!(!readiness::policies_introduced(&namespaces, one_policy, &wanted, "demo-dev").unwrap(), "already enforced");
    assert!(!readiness::policies_introduced(&namespaces, none, &wanted, "demo-test").unwrap(), "a new stack");
    let fresh = format!(r#"{{"items":[{}]}}"#, ns("default", ""));
    assert!(!readiness::policies_introduced(&fresh, none, &wanted, "demo-dev").unwrap(), "a new stack");
    assert_eq!(readiness::clients_cut_off(&namespaces, &pods).unwrap(), ["etl", "default"]);
    assert!(readiness::clients_cut_off(&namespaces, none).unwrap().is_empty(), "no pods, nobody cut off");
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
    assert!(rendered(&spec("")).contains(&format!("value: \"{}\"", kafka::voters(&k))));
}

/// The third argument of `bash -c` of a probe in rendered YAML: the literal block after the
/// `probe:` key of the container named `container`, de-indented.
fn probe_command(manifest: &str, set: &str, probe: &str) -> String {
    let sts = manifest
        .split("\n---\n")
        .find(|d| d.contains("kind: StatefulSet") && d.contains(&format!("\n  name: {set}\n")));
    let sts = sts.unwrap_or_else(|| panic!("no StatefulSet {set}"));
    let start = sts.find(&format!("\n          {probe}:\n")).unwrap_or_else(|| panic!("{set} has no {probe}"));
    let mut lines = sts[start + 1..].lines().skip(1);
    assert_eq!(lines.next(), Some("            exec:"), "{set} {probe} is not an exec probe");
    let head: Vec<&str> = lines.by_ref().take(4).collect();
    assert_eq!(
        head,
        ["              command:", "                - /bin/bash", "                - -c", "                - |"]
    );
    let pad = " ".repeat(18);
    lines
        .take_while(|l| l.is_empty() || l.starts_with(&pad))
        .map(|l| format!("{}\n", l.strip_prefix(&pad).unwrap_or("")))
        .collect()
}

fn manifest(spec: &Spec, file: &str) -> String {
    super::manifests(spec).unwrap().into_iter().find(|m| m.file == file).unwrap().content
}

#[test]
fn no_probe_starts_a_jvm_and_every_probe_is_shellcheck_clean() {
    // Models the issue: `nodetool` in the readiness probe forked a JVM every 15 s inside the
    // Cassandra container's limit. Probes now run bash alone.
    let s = spec(BIG);
    let probes = [
        ("cassandra.yaml", "cassandra", "startupProbe"),
        ("cassandra.yaml", "cassandra", "readinessProbe"),
        ("kafka.yaml", "kafka", "startupProbe"),
        ("kafka.yaml", "kafka", "readinessProbe"),
        ("kafka.yaml", "kafka-controller", "startupProbe"),
        ("kafka.yaml", "kafka-controller", "readinessProbe"),
    ];
    for (file, set, probe) in probes {
        let script = probe_command(&manifest(&s, file), set, probe);
        assert!(!script.contains("nodetool") && !script.contains("java"), "{set} {probe}:\n{script}");
        crate::testing::shellcheck(&format!("{set}-{probe}.sh"), &script);
    }
    let kafka = manifest(&s, "kafka.yaml");
    assert!(probe_command(&kafka, "kafka-controller", "readinessProbe").contains("port=9093"));
    assert!(probe_command(&kafka, "kafka", "readinessProbe").contains("port=9092"));
    assert!(!manifest(&s, "cassandra.yaml").contains("nodetool status"));
}

#[test]
fn every_jvm_pool_is_bounded_from_the_config() {
    // Models cassandra-env.sh of Cassandra 5.0: unset, MaxDirectMemorySize is a quarter of the
    // host's RAM and the GC threads follow the host's cores; HEAP_NEWSIZE is ignored under G1.
    let s = spec("");
    let cassandra = manifest(&s, "cassandra.yaml");
    assert!(!cassandra.contains("name: HEAP_NEWSIZE"), "{cassandra}");
    let c = crate::config::JvmMemory::new(crate::config::Jvm::Cassandra, 1024, "500m");
    assert_eq!((c.direct_mib, c.metaspace_mib, c.processors, c.conc_gc_threads, c.total_mib), (512, 256, 2, 2, 2288));
    assert!(
        cassandra.contains(&format!("- name: JVM_EXTRA_OPTS\n              value: \"{}\"", c.flags())),
        "{cassandra}"
    );
    assert!(cassandra.contains("- name: MAX_DIRECT_MEMORY_SIZE\n              value: \"512M\""), "{cassandra}");
    let k = crate::config::JvmMemory::new(crate::config::Jvm::Kafka, 1024, "250m");
    assert_eq!((k.direct_mib, k.metaspace_mib, k.processors, k.conc_gc_threads, k.total_mib), (256, 192, 2, 1, 1968));
    let kafka = manifest(&s, "kafka.yaml");
    assert!(kafka.contains(&format!("-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true {}\"", k.flags())), "{kafka}");
    for flag in [
        "MaxDirectMemorySize",
        "MaxMetaspaceSize",
        "ReservedCodeCacheSize",
        "ActiveProcessorCount",
        "ParallelGCThreads",
        "ConcGCThreads",
    ] {
        assert!(c.flags().contains(&format!("-XX:{flag}=")) && k.flags().contains(&format!("-XX:{flag}=")), "{flag}");
    }
    // GC and pool threads follow the CPU request, not the host.
    assert_eq!(crate::config::JvmMemory::new(crate::config::Jvm::Cassandra, 4096, "3500m").processors, 4);
    assert_eq!(crate::config::JvmMemory::new(crate::config::Jvm::Kafka, 4096, "6").conc_gc_threads, 2);
    // Every budget the default configs render fits its limit.
    for (b, limit) in [(c, 3072), (k, 2048)] {
        assert!(b.total_mib <= limit, "{b:?}");
    }
}

#[test]
fn startup_probes_give_a_long_first_start_time() {
    // Kafka 4 opens its listeners only once the broker has caught up and been unfenced
    // (SocketServer Acceptor, BrokerServer.startup): a tcpSocket liveness probe from 60 s on
    // restarted a broker in a long log recovery. Cassandra opens 9042 only after bootstrap.
    let s = spec(BIG);
    for (file, hours) in [("kafka.yaml", 1), ("cassandra.yaml", 2)] {
        let text = manifest(&s, file);
        for doc in text.split("\n---\n").filter(|d| d.contains("kind: StatefulSet")) {
            let startup = &doc[doc.find("startupProbe:").unwrap_or_else(|| panic!("{file}: no startupProbe"))..];
            let period: u32 = field(startup, "periodSeconds:");
            let failures: u32 = field(startup, "failureThreshold:");
            assert_eq!(period * failures, hours * 3600, "{file}");
            assert!(!doc.contains("initialDelaySeconds"), "{file}: the startup probe replaces initial delays");
        }
    }
}

fn field(text: &str, key: &str) -> u32 {
    let at = text.find(key).unwrap() + key.len();
    text[at..].lines().next().unwrap().trim().parse().unwrap()
}

/// A one-connection server on 127.0.0.1 that answers the first request with `answer(request)`
/// (None: accept, read, never answer). Returns its port.
fn fake_server(request_len: usize, answer: fn(&[u8]) -> Option<Vec<u8>>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = vec![0; request_len];
        if conn.read_exact(&mut req).is_err() {
            return;
        }
        match answer(&req) {
            Some(bytes) => {
                let _ = conn.write_all(&bytes);
            }
            None => std::thread::sleep(std::time::Duration::from_secs(8)),
        }
    });
    port
}

/// Runs a probe script as kubelet would (`bash -c`), with its time.
fn run_probe(script: &str) -> (bool, std::time::Duration, String) {
    let t = std::time::Instant::now();
    let out = std::process::Command::new("bash").args(["-c", script]).output().unwrap();
    (out.status.success(), t.elapsed(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A TLS 1.2 ClientHello as RFC 5246 7.4 defines it: a handshake record (22) whose length
/// covers the handshake message, a ClientHello (1) whose 3-byte length covers its body, version
/// 3.3, 32 random bytes, no session id, cipher suites, compression methods, then extensions that
/// fill the rest exactly. `first` is the answer's first byte (22 handshake, 21 alert).
/// (The same hello, sent to `openssl s_server`, gets a ServerHello.)
fn tls_answer(req: &[u8], first: u8) -> Option<Vec<u8>> {
    assert_eq!(req[0], 22, "a handshake record");
    let record = usize::from(u16::from_be_bytes([req[3], req[4]]));
    assert_eq!(record, req.len() - 5, "record length");
    assert_eq!(req[5], 1, "ClientHello");
    let hello = usize::from(req[6]) << 16 | usize::from(req[7]) << 8 | usize::from(req[8]);
    assert_eq!(hello, record - 4, "handshake length");
    assert_eq!(&req[9..11], &[3, 3], "TLS 1.2");
    let mut at = 11 + 32;
    at += 1 + usize::from(req[at]);
    let suites = usize::from(u16::from_be_bytes([req[at], req[at + 1]]));
    assert!(suites >= 2 && suites % 2 == 0, "cipher suites");
    at += 2 + suites;
    at += 1 + usize::from(req[at]);
    let extensions = usize::from(u16::from_be_bytes([req[at], req[at + 1]]));
    assert_eq!(at + 2 + extensions, req.len(), "extensions end the hello");
    Some(vec![first, 3, 3, 0, 2, 2, 40])
}

const TLS_HELLO_LEN: usize = 76;

#[test]
fn the_kafka_probe_needs_a_tls_answer_to_its_hello() {
    let probe = |port: u16| render::probe_script(render::KAFKA_PROBE, port);
    let ok = run_probe(&probe(fake_server(TLS_HELLO_LEN, |r| tls_answer(r, 22))));
    assert!(ok.0, "{ok:?}");
    // An alert is still an answer of the listener's TLS engine.
    let alert = run_probe(&probe(fake_server(TLS_HELLO_LEN, |r| tls_answer(r, 21))));
    assert!(alert.0, "{alert:?}");
    // A plaintext Kafka answer (a 4-byte size first) is not.
    let plain = run_probe(&probe(fake_server(TLS_HELLO_LEN, |r| tls_answer(r, 0))));
    assert!(!plain.0 && plain.2.contains("not a TLS answer"), "{plain:?}");
    // Accepts (as the kernel does for a listening socket) but never answers: fails within the
    // probe's timeoutSeconds (5).
    let silent = run_probe(&probe(fake_server(TLS_HELLO_LEN, |_| None)));
    assert!(!silent.0 && silent.1 < std::time::Duration::from_secs(5), "{silent:?}");
    let closed = run_probe(&probe(free_port()));
    assert!(!closed.0 && closed.1 < std::time::Duration::from_secs(2), "{closed:?}");
}

/// CQL native protocol v4 (apache/cassandra doc/native_protocol_v4.spec): a 9-byte header of
/// version, flags, stream (2 bytes), opcode and body length; OPTIONS is 0x05, SUPPORTED 0x06, a
/// response's version byte has the high bit set.
fn cql_supported(req: &[u8]) -> Option<Vec<u8>> {
    assert_eq!(req[0], 0x04, "protocol v4 request");
    assert_eq!(req[4], 0x05, "OPTIONS");
    assert_eq!(&req[5..9], &[0, 0, 0, 0], "no body");
    // SUPPORTED with a string multimap of one key: CQL_VERSION: [3.4.7].
    let mut body = vec![0, 1, 0, 11];
    body.extend(b"CQL_VERSION");
    body.extend([0, 1, 0, 5]);
    body.extend(b"3.4.7");
    let mut out = vec![0x84, 0, req[2], req[3], 0x06];
    out.extend(u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend(body);
    Some(out)
}

/// A TLS server on loopback (python3's ssl module, a certificate made by openssl here) that
/// reads the 9-byte request, checks it is the probe's OPTIONS frame, then sends `answer`'s reply
/// to it (None: stays silent for 8 s). Returns its port and the CA file (the self-signed
/// certificate itself) the probe must trust.
fn fake_tls_server(dir: &Path, answer: fn(&[u8]) -> Option<Vec<u8>>) -> (u16, String) {
    use std::io::BufRead;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert.exists() {
        let made = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    }
    // The probe's request, as CQL v4 defines OPTIONS on stream 0x0074.
    let request = [0x04, 0, 0, 0x74, 0x05, 0, 0, 0, 0];
    let reply = answer(&request).map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>());
    let server = r#"
import socket, ssl, sys, time
cert, key, want, reply = sys.argv[1:5]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
conn, _ = ls.accept()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
tls = ctx.wrap_socket(conn, server_side=True)
req = b""
while len(req) < 9:
    req += tls.recv(9 - len(req))
assert req.hex() == want, req.hex()
if reply == "-":
    time.sleep(8)
else:
    tls.sendall(bytes.fromhex(reply))
    time.sleep(1)
"#;
    let want = request.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut child = std::process::Command::new("python3")
        .args(["-c", server])
        .arg(&cert)
        .arg(&key)
        .args([want, reply.unwrap_or_else(|| "-".into())])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    std::thread::spawn(move || child.wait());
    (line.trim().parse().unwrap(), cert.to_string_lossy().into_owned())
}

#[test]
fn the_cassandra_probe_needs_a_supported_answer() {
    let dir = tempfile::tempdir().unwrap();
    let probe = |(port, ca): (u16, String)| render::cassandra_probe(port, &ca);
    let ok = run_probe(&probe(fake_tls_server(dir.path(), cql_supported)));
    assert!(ok.0, "{ok:?}");
    let error = run_probe(&probe(fake_tls_server(dir.path(), |r| {
        // An ERROR (0x00) frame to the same stream.
        Some(vec![0x84, 0, r[2], r[3], 0x00, 0, 0, 0, 4, 0, 0, 0, 10])
    })));
    assert!(!error.0 && error.2.contains("not a SUPPORTED answer"), "{error:?}");
    let silent = run_probe(&probe(fake_tls_server(dir.path(), |_| None)));
    assert!(!silent.0 && silent.1 < std::time::Duration::from_secs(5), "{silent:?}");
    let closed = run_probe(&probe((free_port(), "/nonexistent/ca.pem".into())));
    assert!(!closed.0 && closed.2.contains("not listening"), "{closed:?}");
    // A node whose certificate the environment's CA did not sign is not ready either.
    let (port, _) = fake_tls_server(dir.path(), cql_supported);
    let other = dir.path().join("other.pem");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other", "-days", "1", "-keyout"])
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let untrusted = run_probe(&render::cassandra_probe(port, &other.to_string_lossy()));
    assert!(!untrusted.0 && untrusted.2.contains("CERTIFICATE_VERIFY_FAILED"), "{untrusted:?}");
}

/// A loopback port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn one_walk_over_the_enabled_components_in_apply_order() {
    let ids = |s: &Spec| super::components(s).iter().map(|c| c.component()).collect::<Vec<_>>();
    // Spark without standalone workers has no workload to wait for, and is still a component.
    let s = spec("");
    assert_eq!(ids(&s), [Component::Kafka, Component::Cassandra, Component::Spark]);
    assert!(super::workloads(&s).iter().all(|w| w.component != Component::Spark));
    assert_eq!(super::endpoints(&s).iter().map(|e| e.component).collect::<Vec<_>>(), ids(&s));
    let s = spec("[stack.kafka]\nenabled = false\n");
    assert_eq!(ids(&s), [Component::Cassandra, Component::Spark]);
    let files: Vec<String> = super::smoke_manifests(&s).unwrap().into_iter().map(|m| m.file).collect();
    assert_eq!(files, ["spark-pi.yaml"]);
}

#[test]
fn disruption_checks_ask_kafka_and_cassandra_and_judge_their_output() {
    let spec = crate::config::testing::parse(&format!(
        "{}\n[stack.kafka]\n[stack.cassandra]\n[stack.spark]\n",
        crate::config::testing::AWS_BASE
    ));
    let checks = super::disruption_checks(&spec, "kubectl --kubeconfig /etc/kubernetes/admin.conf");
    insta::assert_snapshot!(
        checks.iter().map(|c| format!("{} in {} ({}): {}", c.component.as_str(), c.namespace, c.what, c.command)).collect::<Vec<_>>().join("\n"),
        @r"
    kafka in kafka (no under-replicated partitions): printf '%s\n' 'security.protocol=SSL' 'ssl.keystore.type=PEM' 'ssl.keystore.location=/etc/tagstack/tls/keystore.pem' 'ssl.truststore.type=PEM' 'ssl.truststore.location=/etc/tagstack/tls/ca.pem' | kubectl --kubeconfig /etc/kubernetes/admin.conf exec -i -n kafka kafka-0 -c kafka -- '/bin/sh' '-c' 'umask 077 && cat > /tmp/tagstack-internal.properties' && kubectl --kubeconfig /etc/kubernetes/admin.conf exec -n kafka kafka-0 -c kafka -- 'env' 'KAFKA_HEAP_OPTS=-Xmx256m' '/opt/kafka/bin/kafka-topics.sh' '--bootstrap-server' 'localhost:9094' '--command-config' '/tmp/tagstack-internal.properties' '--describe' '--under-replicated-partitions'
    cassandra in cassandra (every node Up and Normal): kubectl --kubeconfig /etc/kubernetes/admin.conf exec -n cassandra cassandra-0 -c cassandra -- 'env' 'MAX_HEAP_SIZE=128M' 'nodetool' 'status'
    "
    );
    // kafka-topics.sh prints nothing when every partition's ISR is its full replica set.
    assert_eq!((checks[0].failing)("\n"), Vec::<String>::new());
    assert_eq!(
        (checks[0].failing)(
            "\tTopic: orders\tTopicId: 3q1\tPartition: 2\tLeader: 1\tReplicas: 2,1,0\tIsr: 1,0\tElr: \tLastKnownElr: \n"
        ),
        ["Topic: orders\tTopicId: 3q1\tPartition: 2\tLeader: 1\tReplicas: 2,1,0\tIsr: 1,0\tElr: \tLastKnownElr:"]
    );
    let status = "Datacenter: dc1\n===============\nStatus=Up/Down\n|/ State=Normal/Leaving/Joining/Moving\n--  Address      Load       Tokens  Owns (effective)  Host ID                               Rack \nUN  10.244.1.5   104.2 KiB  16      100.0%            2f0c6b1e-7d7a-4a57-9c1e-2b8d9d7f9a10  rack1\nDN  10.244.2.7   98.1 KiB   16      100.0%            7a1d2c3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f  rack1\nUL  10.244.3.2   99.0 KiB   16      100.0%            0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e  rack1\n";
    assert_eq!(
        (checks[1].failing)(status),
        [
            "DN  10.244.2.7   98.1 KiB   16      100.0%            7a1d2c3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f  rack1",
            "UL  10.244.3.2   99.0 KiB   16      100.0%            0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e  rack1"
        ]
    );
    assert_eq!(checks.len(), 2, "Spark keeps no data a drain could lose");
}

#[test]
fn a_cassandra_shrink_reads_the_ring_and_decommissions_by_ordinal() {
    let spec = crate::config::testing::parse(&format!(
        "{}\n[stack.kafka]\nenabled = false\n[stack.cassandra]\nreplicas = 4\n",
        crate::config::testing::AWS_BASE
    ));
    let c = spec.stack.cassandra.as_ref().unwrap();
    assert_eq!(
        super::cassandra::decommission("kubectl --kubeconfig /etc/kubernetes/admin.conf", c, 3),
        "kubectl --kubeconfig /etc/kubernetes/admin.conf exec -n cassandra cassandra-3 -c cassandra -- 'env' 'MAX_HEAP_SIZE=128M' 'nodetool' 'decommission'"
    );
    assert_eq!(super::cassandra::claim(3), "data-cassandra-3");
    let status = "Datacenter: dc1\n===============\nStatus=Up/Down\n|/ State=Normal/Leaving/Joining/Moving\n--  Address     Load       Tokens  Owns (effective)  Host ID                               Rack\nUN  10.244.1.5  104.2 KiB  16      75.0%             2f0c6b1e-7d7a-4a57-9c1e-2b8d9d7f9a10  rack1\nUL  10.244.2.7  98.1 KiB   16      75.0%             7a1d2c3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f  rack1\n";
    assert_eq!(super::cassandra::ring_addresses(status), ["10.244.1.5", "10.244.2.7"]);
    let sets =
        r#"{"kind":"List","items":[{"kind":"StatefulSet","metadata":{"name":"cassandra"},"spec":{"replicas":4}}]}"#;
    assert_eq!(super::readiness::statefulset_replicas(sets, "cassandra").unwrap(), Some(4));
    assert_eq!(super::readiness::statefulset_replicas(sets, "kafka").unwrap(), None);
    let pods = r#"{"kind":"List","items":[{"metadata":{"name":"cassandra-0"},"status":{"podIP":"10.244.1.5"}},{"metadata":{"name":"cassandra-3"},"status":{}}]}"#;
    assert_eq!(super::readiness::pod_ips(pods).unwrap(), [("cassandra-0".to_string(), "10.244.1.5".to_string())]);
}

/// The scripts of Cassandra's authentication, and the container command that turns it on: each
/// is shellcheck-clean, none holds a secret (they read the password on the control plane), and
/// they name the Secret, the superuser and system_auth's replication.
#[test]
fn cassandra_auth_scripts() {
    let s = spec(BIG);
    let cassandra_only = |scripts: Vec<Manifest>| -> Vec<Manifest> {
        scripts.into_iter().filter(|m| m.component == Component::Cassandra).collect()
    };
    let before = cassandra_only(
        super::before_apply(&s, "kubectl --kubeconfig /etc/kubernetes/admin.conf", "/var/lib/tagstack/stack").unwrap(),
    );
    let after = cassandra_only(
        super::after_ready(&s, "kubectl --kubeconfig /etc/kubernetes/admin.conf", "/var/lib/tagstack/stack").unwrap(),
    );
    assert_eq!(
        before.iter().map(|m| m.file.as_str()).collect::<Vec<_>>(),
        ["cassandra-secrets.sh", "cassandra-tls.sh"]
    );
    assert_eq!(after.iter().map(|m| m.file.as_str()).collect::<Vec<_>>(), ["cassandra-roles.sh"]);
    let cassandra = manifest(&s, "cassandra.yaml");
    let start = cassandra.find("\n          args:\n            - |\n").unwrap() + 1;
    let pad = " ".repeat(14);
    let command: String = cassandra[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.is_empty() || l.starts_with(&pad))
        .map(|l| format!("{}\n", l.strip_prefix(&pad).unwrap_or("")))
        .collect();
    assert!(cassandra::runs_with_auth(&command), "{command}");
    for (name, script) in
        before.iter().chain(&after).map(|m| (m.file.as_str(), m.content.as_str())).chain([("command", &*command)])
    {
        crate::testing::shellcheck(name, script);
    }
    insta::assert_snapshot!("cassandra_secrets_script", before[0].content);
    insta::assert_snapshot!("cassandra_roles_script", after[0].content);
    insta::assert_snapshot!("cassandra_tls_script", before[1].content);
}

/// An environment whose Cassandra runs without authentication (created before it was turned
/// on) is told apart from one that runs with it, from the live StatefulSet.
#[test]
fn cassandra_without_auth_is_recognised() {
    let s = spec(BIG);
    let cassandra = manifest(&s, "cassandra.yaml");
    let start = cassandra.find("\n          args:\n            - |\n").unwrap() + 1;
    let args: String = cassandra[start..].lines().skip(2).take(20).collect::<Vec<_>>().join("\n");
    let list = |container: serde_json::Value| {
        serde_json::json!({"kind": "List", "items": [{"metadata": {"name": "cassandra"},
            "spec": {"template": {"spec": {"containers": [container]}}}}]})
        .to_string()
    };
    let now = list(serde_json::json!({"name": "cassandra", "command": ["/bin/bash", "-c"], "args": [args]}));
    assert!(cassandra::runs_with_auth(&readiness::statefulset_commands(&now, "cassandra").unwrap().unwrap()));
    let before = list(serde_json::json!({"name": "cassandra", "image": "cassandra:5.0"}));
    assert!(!cassandra::runs_with_auth(&readiness::statefulset_commands(&before, "cassandra").unwrap().unwrap()));
    assert_eq!(readiness::statefulset_commands(&before, "other").unwrap(), None);
}

/// The StatefulSet's pod template in a Cassandra manifest.
fn pod_template(manifest: &str) -> &str {
    let start = manifest.find("\n  template:\n").expect("a pod template");
    let end = manifest.find("\n  volumeClaimTemplates:\n").expect("claim templates");
    &manifest[start..end]
}

#[test]
fn cassandra_new_ring_and_existing_ring_manifests() {
    use super::cassandra_ring::{Plan, Policy, STEADY, Start};
    let spec = spec("");
    let render = |plan: &Plan| super::cassandra_manifest(&spec, plan).unwrap().unwrap().content;
    let new = render(&Plan { start: Start::New, policy: Policy::Parallel, steps: Vec::new() });
    let parallel = render(&Plan { start: Start::Existing, policy: Policy::Parallel, steps: vec![4] });
    let steady = render(&STEADY);
    // What `up` applies and `render` shows for a ring that may hold data.
    let walk = super::manifests(&spec).unwrap();
    assert_eq!(walk.iter().find(|m| m.component == Component::Cassandra).unwrap().content, steady);
    // The pods are the same whichever way the ring started: no restart once the ConfigMap goes.
    assert_eq!(pod_template(&new), pod_template(&steady));
    assert_eq!(pod_template(&parallel), pod_template(&steady));
    assert!(steady.contains("podManagementPolicy: OrderedReady") && !steady.contains("kind: ConfigMap\n"));
    assert!(
        parallel.contains("podManagementPolicy: Parallel") && !parallel.contains("name: cassandra-ring\n  namespace")
    );
    insta::assert_snapshot!("cassandra_new_ring", new);
}

/// Kafka's security settings as rendered, per StatefulSet: listeners, the protocol of each,
/// SASL mechanisms, client authentication, the PEM stores, the authorizer and super.users.
#[test]
fn kafka_security_config() {
    let keys = |text: &str| -> String {
        let mut out = String::new();
        for doc in text.split("\n---\n").filter(|d| d.contains("kind: StatefulSet")) {
            let name = doc.lines().find_map(|l| l.strip_prefix("  name: ")).unwrap();
            out.push_str(&format!("{name}:\n"));
            let mut lines = doc.lines();
            while let Some(l) = lines.next() {
                let Some(key) = l.trim().strip_prefix("- name: KAFKA_") else { continue };
                let wanted = [
                    "LISTENER",
                    "ADVERTISED",
                    "INTER_BROKER",
                    "CONTROLLER_LISTENER",
                    "SSL_",
                    "SASL",
                    "AUTHORIZER",
                    "ALLOW_EVERYONE",
                    "SUPER_USERS",
                ];
                if wanted.iter().any(|w| key.starts_with(w)) {
                    let value = lines.next().unwrap().trim().trim_start_matches("value: ");
                    out.push_str(&format!("  KAFKA_{key} = {value}\n"));
                }
            }
        }
        out
    };
    insta::assert_snapshot!("kafka_security_combined", keys(&manifest(&spec(""), "kafka.yaml")));
    insta::assert_snapshot!("kafka_security_dedicated", keys(&manifest(&spec(BIG), "kafka.yaml")));
}

/// Kafka's scripts: the namespace, the certificate (tls.sh with every pod's name), the admin's
/// and a named user's: shellcheck-clean, no secret in them, each name in its place.
#[test]
fn kafka_scripts() {
    let s = spec(BIG);
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    let before: Vec<Manifest> = super::before_apply(&s, kubectl, "/var/lib/tagstack/stack")
        .unwrap()
        .into_iter()
        .filter(|m| m.component == Component::Kafka)
        .collect();
    assert_eq!(before.iter().map(|m| m.file.as_str()).collect::<Vec<_>>(), ["kafka-namespace.sh", "kafka-tls.sh"]);
    let after: Vec<Manifest> = super::after_ready(&s, kubectl, "/var/lib/tagstack/stack")
        .unwrap()
        .into_iter()
        .filter(|m| m.component == Component::Kafka)
        .collect();
    assert_eq!(after.iter().map(|m| m.file.as_str()).collect::<Vec<_>>(), ["kafka-users.sh"]);
    let user = kafka::User::named("billing", &["orders".into(), "events.*".into()]).unwrap();
    let named = kafka::user_script(&s, kubectl, "/var/lib/tagstack/stack", &user).unwrap();
    assert_eq!(named.file, "kafka-user-billing.sh");
    let tls = &before[1].content;
    for i in 0..3 {
        assert!(tls.contains(&format!("kafka-controller-{i}.kafka-headless.kafka.svc.cluster.local")), "{tls}");
    }
    for name in ["kafka-0.kafka-headless.kafka.svc.cluster.local", "DNS:kafka-bootstrap.kafka.svc.cluster.local"] {
        assert!(tls.contains(name), "{name}: {tls}");
    }
    for m in before.iter().chain(&after).chain([&named]) {
        crate::testing::shellcheck(&m.file, &m.content);
        assert!(!m.content.contains("password=") || m.content.contains("password=%s"), "{}", m.content);
    }
    insta::assert_snapshot!("kafka_tls_script", tls);
    insta::assert_snapshot!("kafka_admin_script", after[0].content);
    insta::assert_snapshot!("kafka_user_script", named.content);
}

#[test]
fn kafka_user_names_and_topics() {
    use kafka::{Topics, User, UserError};
    let u = User::named("billing", &[]).unwrap();
    assert_eq!(u.topics, [Topics { name: "billing.".into(), prefixed: true }], "default: its own prefix");
    let u = User::named("ci-1", &["orders".into(), "events.*".into()]).unwrap();
    assert_eq!(
        u.acls(),
        [
            "--operation Read --operation Write --operation Describe --topic 'orders' --resource-pattern-type literal",
            "--operation Read --operation Write --operation Describe --topic 'events.' --resource-pattern-type prefixed",
            "--operation Read --operation Describe --group 'ci-1' --resource-pattern-type prefixed",
        ]
    );
    assert!(User::admin().acls().is_empty(), "a super user");
    for bad in ["", "Billing", "-x", "x-", "a b", "a;b", &"x".repeat(51)] {
        assert!(matches!(User::named(bad, &[]), Err(UserError::Name(_))), "{bad:?}");
    }
    assert!(matches!(User::named("admin", &[]), Err(UserError::Admin(_))));
    assert!(matches!(User::named("kafka-exporter", &[]), Err(UserError::Exporter(_))));
    for bad in ["*", "a b", "a;b", "..", "x$(id)"] {
        assert!(matches!(User::named("ok", &[bad.into()]), Err(UserError::Topic(_))), "{bad:?}");
    }
}

#[test]
fn kafka_plaintext_listeners_are_recognised() {
    assert!(kafka::runs_plaintext("CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"));
    assert!(!kafka::runs_plaintext("CONTROLLER:SSL,INTERNAL:SSL,CLIENT:SASL_SSL"));
    assert!(kafka::runs_plaintext("CLIENT:SASL_SSL,OLD:PLAINTEXT"));
}

/// The client.properties `tagstack kafka client-config` prints (the password redacted here):
/// continuation lines that java.util.Properties joins into one PEM value with the whitespace
/// Kafka's PemParser needs after the BEGIN and END lines.
#[test]
fn kafka_client_properties() {
    let s = spec("");
    let k = s.stack.kafka.as_ref().unwrap();
    let ca = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2\nZXJ0aWZpY2F0ZQ==\n-----END CERTIFICATE-----\n";
    let password = "0123456789abcdef0123456789abcdef0123456789abcdef";
    let text = kafka::client_properties(k, "billing", password, ca);
    assert!(text.contains(&format!("password=\"{password}\";")));
    // java.util.Properties: a line ending in a backslash continues; the next line's leading blanks go.
    let mut joined = String::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.starts_with("ssl.truststore.certificates=") {
            let mut value = l.to_string();
            while value.ends_with('\\') {
                value.pop();
                value.push_str(lines.next().unwrap().trim_start());
            }
            joined = value;
        }
    }
    assert_eq!(
        joined,
        "ssl.truststore.certificates=-----BEGIN CERTIFICATE----- MIIBszCCAVmgAwIBAgIUQ2 ZXJ0aWZpY2F0ZQ== -----END CERTIFICATE-----"
    );
    insta::assert_snapshot!("kafka_client_properties", text.replace(password, "<redacted>"));
}

/// kafka_exporter's user: describe-only ACLs on every topic and group (nothing on the cluster),
/// its Secret in the monitoring namespace with the CA's certificate (never its key), made by the
/// same users script as every other user.
#[test]
fn kafka_exporter_user() {
    use kafka::User;
    let u = User::exporter();
    assert_eq!(
        u.acls(),
        [
            "--operation Describe --topic '*' --resource-pattern-type literal",
            "--operation Describe --group '*' --resource-pattern-type literal",
        ]
    );
    assert!(u.acls().iter().all(|a| !a.contains("--cluster") && !a.contains("Read") && !a.contains("Write")));
    let s = spec(BIG);
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    let m = kafka::user_script(&s, kubectl, "/var/lib/tagstack/monitoring", &u).unwrap();
    assert_eq!(m.file, "kafka-exporter-user.sh");
    crate::testing::shellcheck(&m.file, &m.content);
    assert!(m.content.contains("name: kafka-exporter\n  namespace: monitoring"), "{}", m.content);
    assert!(
        m.content.contains("get secret tagstack-ca -n kube-system -o jsonpath='{.data.certificate}'"),
        "{}",
        m.content
    );
    assert!(!m.content.contains(".data.key"), "never the CA's key: {}", m.content);
    assert!(!m.content.contains("password=") || m.content.contains("password=%s"), "{}", m.content);
    insta::assert_snapshot!("kafka_exporter_user_script", m.content);
}
