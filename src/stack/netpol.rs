//! The stack's NetworkPolicies: which traffic each component's pods accept and send (issue 14,
//! item 3). One function per component builds its policies as Kubernetes objects; `render`
//! writes them after the component's own manifest (same file, so its namespace exists first).
//! The flows, and who a "client" is, are decided here and nowhere else; docs/network-policies.md
//! is the table, and `tests.rs` (`every_flow_between_the_stack_parts`) evaluates the rendered
//! policies against it. Pure: no I/O, and no opinion on whether the CNI enforces them
//! (`cluster::addons` decides the CNI).
//!
//! Semantics relied on (kubernetes.io/docs/concepts/services-networking/network-policies/,
//! "The two sorts of pod isolation", "Behavior of to and from selectors"): a pod selected by a
//! policy with `Ingress` (`Egress`) in its `policyTypes` accepts (sends) only what the union of
//! those policies' rules allows; a connection needs both the source's egress and the
//! destination's ingress; a peer with only `podSelector` means pods of the policy's own
//! namespace, one with only `namespaceSelector` every pod of those namespaces, both in one peer
//! their intersection; a port without `protocol` is TCP; traffic from the pod's own node (the
//! kubelet's probes) is always allowed.
//!
//! Each object is written as JSON, which is YAML (a YAML 1.2 stream may hold JSON documents),
//! so the flow test reads back exactly the applied text without a YAML parser.

use serde_json::{Value, json};

use super::model::Component;
use super::render::{LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, LABEL_PART_OF, MANAGER};
use crate::config::Spec;

/// A namespace whose pods may connect to the stack's client ports (Kafka 9092, Cassandra 9042,
/// the Spark master 7077) carries this label with the value "true". The Spark namespace has it
/// (jobs read and write Kafka and Cassandra); users label their applications' namespaces.
pub const CLIENT_LABEL: &str = "tagstack/client";

/// Where Prometheus runs (docs/monitoring.md, "Scrape contract").
pub use crate::config::MONITORING_NAMESPACE;

/// The label the API server sets on every namespace, its name as value (immutable; Kubernetes
/// 1.22+, kubernetes.io/docs/reference/labels-annotations-taints/#kubernetes-io-metadata-name).
const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// The JMX exporter agent's port on Kafka and Cassandra (its one home: `monitoring::content`), scraped from
/// `monitoring` (docs/monitoring.md).
pub const METRICS_PORT: u16 = crate::monitoring::content::JMX_EXPORTER_PORT;
/// Spark's web UIs: master, worker, application (driver); Prometheus scrapes them.
pub const SPARK_UI_PORTS: [u16; 3] = [8080, 8081, 4040];
pub const KAFKA_CLIENT_PORT: u16 = super::kafka::CLIENT_PORT;
pub const KAFKA_CONTROLLER_PORT: u16 = super::kafka::CONTROLLER_PORT;
/// Between brokers (the INTERNAL listener, mutual TLS).
pub const KAFKA_INTERNAL_PORT: u16 = super::kafka::INTERNAL_PORT;
/// Gossip and streaming between Cassandra nodes: 7000, and 7001, the legacy TLS port Cassandra
/// 4+ still opens when internode encryption keeps `enable_legacy_ssl_storage_port`.
pub const CASSANDRA_INTERNODE_PORTS: [u16; 2] = [7000, 7001];
pub const CQL_PORT: u16 = 9042;
pub const SPARK_MASTER_PORT: u16 = 7077;

/// The NetworkPolicies of one component, in the order they are written.
pub fn policies(spec: &Spec, component: Component) -> Vec<Value> {
    match component {
        Component::Kafka => spec.stack.kafka.as_ref().map(|k| kafka(spec, &k.namespace, k.controllers)),
        Component::Cassandra => spec.stack.cassandra.as_ref().map(|c| cassandra(spec, &c.namespace)),
        Component::Spark => spec.stack.spark.as_ref().map(|s| spark(spec, &s.namespace)),
        // The monitoring add-on's namespace has no policy of its own: it only connects out.
        Component::Monitoring => None,
    }
    .unwrap_or_default()
}

/// The policies as YAML documents to append to the component's manifest (empty when none);
/// each says why in its `tagstack/why` annotation, which `kubectl describe` shows.
pub fn render(spec: &Spec, component: Component) -> String {
    let mut out = String::new();
    for p in policies(spec, component) {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(&p).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn policy(spec: &Spec, namespace: &str, name: &str, why: &str, pods: Value, rules: Rules) -> Value {
    let cluster = spec.id.cluster_name();
    let mut types = Vec::new();
    let mut spec_obj = object(vec![("podSelector", pods)]);
    if let Some(ingress) = rules.ingress {
        types.push("Ingress");
        spec_obj["ingress"] = Value::Array(ingress);
    }
    if let Some(egress) = rules.egress {
        types.push("Egress");
        spec_obj["egress"] = Value::Array(egress);
    }
    spec_obj["policyTypes"] = json!(types);
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_PART_OF: MANAGER,
                LABEL_MANAGED_BY: MANAGER,
                LABEL_INSTANCE: cluster,
            },
            "annotations": { "tagstack/why": why },
        },
        "spec": spec_obj,
    })
}

/// `Some(rules)`: the policy isolates that direction and allows these rules (`Some(vec![])`
/// allows nothing); `None`: it says nothing about that direction.
#[derive(Default)]
struct Rules {
    ingress: Option<Vec<Value>>,
    egress: Option<Vec<Value>>,
}

/// A JSON object of the fields given, moved in.
fn object(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn every_pod() -> Value {
    json!({})
}

fn pods_of(spec: &Spec, app: &str, component: Option<&str>) -> Value {
    let mut labels = json!({ LABEL_NAME: app, LABEL_INSTANCE: spec.id.cluster_name() });
    if let Some(c) = component {
        labels[LABEL_COMPONENT] = json!(c);
    }
    json!({ "matchLabels": labels })
}

/// Pods of the policy's own namespace matching `selector`.
fn peer_pods(selector: Value) -> Value {
    object(vec![("podSelector", selector)])
}

/// Every pod of the namespaces matching `labels`.
fn peer_namespaces(labels: Value) -> Value {
    object(vec![("namespaceSelector", object(vec![("matchLabels", labels)]))])
}

fn clients() -> Value {
    peer_namespaces(json!({ CLIENT_LABEL: "true" }))
}

fn monitoring() -> Value {
    peer_namespaces(json!({ NAMESPACE_NAME: MONITORING_NAMESPACE }))
}

fn tcp(ports: &[u16]) -> Value {
    Value::Array(ports.iter().map(|p| json!({ "protocol": "TCP", "port": p })).collect())
}

fn rule(peers: Vec<Value>, ports: &[u16]) -> Value {
    object(vec![("from", Value::Array(peers)), ("ports", tcp(ports))])
}

fn egress_rule(peers: Vec<Value>, ports: &[u16]) -> Value {
    object(vec![("to", Value::Array(peers)), ("ports", tcp(ports))])
}

/// Every pod of the namespace: nothing in unless a policy allows it; nothing out either when
/// `egress` (the Spark namespace keeps its egress, see [`spark`]).
fn default_deny(spec: &Spec, namespace: &str, owner: &str, egress: bool) -> Value {
    policy(
        spec,
        namespace,
        &format!("{owner}-default-deny"),
        if egress {
            "deny all traffic in and out unless another policy allows it"
        } else {
            "deny all traffic in unless another policy allows it"
        },
        every_pod(),
        Rules { ingress: Some(Vec::new()), egress: egress.then(Vec::new) },
    )
}

/// Name lookups: CoreDNS in kube-system (kubeadm labels its pods `k8s-app: kube-dns`,
/// kubernetes/kubernetes cmd/kubeadm/app/phases/addons/dns/manifests.go). Egress policies see
/// the destination after kube-proxy's DNAT of the kube-dns Service, so the pods are selected.
fn dns(spec: &Spec, namespace: &str, owner: &str) -> Value {
    let coredns = json!({
        "namespaceSelector": { "matchLabels": { NAMESPACE_NAME: "kube-system" } },
        "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
    });
    policy(
        spec,
        namespace,
        &format!("{owner}-dns"),
        "name lookups from every pod of the namespace to CoreDNS",
        every_pod(),
        Rules {
            egress: Some(vec![json!({
                "to": [coredns],
                "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }],
            })]),
            ..Rules::default()
        },
    )
}

/// Brokers take clients (labelled namespaces, and `monitoring`'s kafka_exporter) and each other
/// on 9092 (the smoke check's tools run in Kafka pods), each other on 9094 (INTERNAL: replication,
/// mutual TLS; `kafka.rs`); the controller quorum takes every Kafka node on 9093 (brokers fetch metadata from
/// it, voters replicate to each other); Prometheus scrapes the agent on 9404. Kafka pods send
/// only to Kafka pods and DNS.
fn kafka(spec: &Spec, ns: &str, dedicated_controllers: u32) -> Vec<Value> {
    let kafka_pods = || peer_pods(pods_of(spec, "kafka", None));
    let brokers_also_control = dedicated_controllers == 0;
    let mut broker_in = vec![
        rule(vec![kafka_pods(), clients(), monitoring()], &[KAFKA_CLIENT_PORT]),
        rule(vec![kafka_pods()], &[KAFKA_INTERNAL_PORT]),
        rule(vec![monitoring()], &[METRICS_PORT]),
    ];
    if brokers_also_control {
        broker_in.push(rule(vec![kafka_pods()], &[KAFKA_CONTROLLER_PORT]));
    }
    let mut out = vec![
        default_deny(spec, ns, "kafka", true),
        dns(spec, ns, "kafka"),
        policy(
            spec,
            ns,
            "kafka-broker",
            "brokers: clients, kafka_exporter and other brokers on 9092, brokers on 9094, Prometheus on 9404",
            pods_of(spec, "kafka", Some("broker")),
            Rules { ingress: Some(broker_in), ..Rules::default() },
        ),
    ];
    if !brokers_also_control {
        out.push(policy(
            spec,
            ns,
            "kafka-controller",
            "the KRaft quorum: every Kafka node on 9093, Prometheus on 9404",
            pods_of(spec, "kafka", Some("controller")),
            Rules {
                ingress: Some(vec![
                    rule(vec![kafka_pods()], &[KAFKA_CONTROLLER_PORT]),
                    rule(vec![monitoring()], &[METRICS_PORT]),
                ]),
                ..Rules::default()
            },
        ));
    }
    out.extend(agent_download(spec, ns, "kafka", "kafka"));
    out.push(policy(
        spec,
        ns,
        "kafka-peers",
        "Kafka nodes send only to Kafka nodes (replication, the quorum, metadata)",
        pods_of(spec, "kafka", None),
        Rules {
            egress: Some(vec![egress_rule(
                vec![kafka_pods()],
                &[KAFKA_CLIENT_PORT, KAFKA_CONTROLLER_PORT, KAFKA_INTERNAL_PORT],
            )]),
            ..Rules::default()
        },
    ));
    out
}

/// Nodes gossip and stream on 7000/7001 and coordinate on 9042 between themselves; clients
/// use 9042; Prometheus scrapes 9404. JMX (7199) stays local: nodetool runs in the pod.
fn cassandra(spec: &Spec, ns: &str) -> Vec<Value> {
    let peers = || peer_pods(pods_of(spec, "cassandra", None));
    let mut internode: Vec<u16> = CASSANDRA_INTERNODE_PORTS.to_vec();
    internode.push(CQL_PORT);
    let mut out = vec![
        default_deny(spec, ns, "cassandra", true),
        dns(spec, ns, "cassandra"),
        policy(
            spec,
            ns,
            "cassandra",
            "Cassandra: nodes on 7000/7001/9042, clients on 9042, Prometheus on 9404; nodes send only to nodes",
            pods_of(spec, "cassandra", None),
            Rules {
                ingress: Some(vec![
                    rule(vec![peers()], &internode),
                    rule(vec![clients()], &[CQL_PORT]),
                    rule(vec![monitoring()], &[METRICS_PORT]),
                ]),
                egress: Some(vec![egress_rule(vec![peers()], &internode)]),
            },
        ),
    ];
    out.extend(agent_download(spec, ns, "cassandra", "cassandra"));
    out
}

/// With `[monitoring]`, each Kafka and Cassandra pod's init container downloads the JMX exporter
/// agent from its GitHub release (src/monitoring/deploy.rs; its SHA-256 is checked before it
/// runs): HTTPS to public addresses only, never the VPC, the pods, the services or the instance
/// metadata (a policy selects pods, not containers, so the server's container could too).
fn agent_download(spec: &Spec, ns: &str, owner: &str, app: &str) -> Option<Value> {
    spec.monitoring.as_ref()?;
    let public = json!({
        "ipBlock": {
            "cidr": "0.0.0.0/0",
            "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"],
        },
    });
    Some(policy(
        spec,
        ns,
        &format!("{owner}-jmx-agent-download"),
        "monitoring: the JMX exporter agent's download (HTTPS to public addresses)",
        pods_of(spec, app, None),
        Rules { egress: Some(vec![egress_rule(vec![public], &[443])]), ..Rules::default() },
    ))
}

/// The Spark namespace runs user code: drivers and executors (labelled by Spark itself, not by
/// tagstack) talk on ports Spark picks at random (`spark.driver.port`, `spark.blockManager.port`:
/// "random" by default, Spark docs/configuration.md), so every pod of the namespace may reach
/// every other on any port. From outside: clients to the standalone master on 7077, Prometheus
/// to the UIs, where Spark's own PrometheusServlet serves the metrics, JVM ones included (no
/// agent runs in Spark: docs/monitoring.md). Egress stays open: drivers call the API server, whose
/// address after the `kubernetes` Service's DNAT is a node's on 6443 (not a pod, so only an
/// `ipBlock` of the control plane could name it), and jobs read sources anywhere.
fn spark(spec: &Spec, ns: &str) -> Vec<Value> {
    let scraped: Vec<u16> = SPARK_UI_PORTS.to_vec();
    vec![
        default_deny(spec, ns, "spark", false),
        policy(
            spec,
            ns,
            "spark-in-namespace",
            "drivers, executors, master and workers reach each other on any port",
            every_pod(),
            Rules { ingress: Some(vec![json!({ "from": [peer_pods(every_pod())] })]), ..Rules::default() },
        ),
        policy(
            spec,
            ns,
            "spark-master",
            "clients submit to the standalone master on 7077",
            pods_of(spec, "spark", Some("master")),
            Rules { ingress: Some(vec![rule(vec![clients()], &[SPARK_MASTER_PORT])]), ..Rules::default() },
        ),
        policy(
            spec,
            ns,
            "spark-monitoring",
            "Prometheus scrapes the web UIs (8080 master, 8081 worker, 4040 driver)",
            every_pod(),
            Rules { ingress: Some(vec![rule(vec![monitoring()], &scraped)]), ..Rules::default() },
        ),
    ]
}

#[cfg(test)]
mod tests;
