//! The flow test: the rendered NetworkPolicies, read back from the manifests `up` applies, are
//! evaluated for every pair of parties (each stack component's pods, Prometheus and
//! kafka_exporter in `monitoring`, CoreDNS, a client namespace, an unlabelled namespace, the
//! API server and a machine outside the cluster) on every port in play, and must allow exactly
//! the required flows: nothing required blocked, nothing else open.
//!
//! The evaluator implements the subset of NetworkPolicy the policies use, as
//! kubernetes.io/docs/concepts/services-networking/network-policies/ defines it: isolation per
//! direction by `policyTypes`, the union of the selecting policies' rules, `podSelector` /
//! `namespaceSelector` peers (alone or both in one peer: their intersection), `matchLabels`,
//! numeric ports with TCP as the default protocol, and a connection allowed only when the
//! source's egress and the destination's ingress both allow it. Anything else it meets
//! (ipBlock, matchExpressions, named ports, endPort) fails the test, so a policy cannot grow a
//! feature the evaluator would silently misjudge.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::Spec;

fn spec(stack: &str) -> Spec {
    crate::config::testing::parse(&format!("{}{stack}", crate::config::testing::AWS_BASE))
}

const BIG: &str = r#"
[stack.kafka]
controllers = 3

[stack.spark]
workers = 2
"#;

type Labels = BTreeMap<String, String>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A class of senders and receivers: pods of a namespace with some labels, or a host address
/// (the API server on a node, a machine outside), which only an ipBlock could select.
#[derive(Debug, Clone)]
struct Party {
    name: &'static str,
    pod: Option<(String, Labels, Labels)>,
    /// The stack's own pods: their traffic is what the policies decide.
    ours: bool,
}

fn pod(name: &'static str, ns: &str, ns_extra: &[(&str, &str)], pod_labels: &[(&str, &str)], ours: bool) -> Party {
    let mut ns_labels = labels(ns_extra);
    ns_labels.insert("kubernetes.io/metadata.name".into(), ns.into());
    Party { name, pod: Some((ns.into(), ns_labels, labels(pod_labels))), ours }
}

fn parties(spec: &Spec) -> Vec<Party> {
    let cluster = spec.id.cluster_name();
    let c = cluster.as_str();
    let mut out = Vec::new();
    if let Some(k) = &spec.stack.kafka {
        let kafka = |component| {
            [
                ("app.kubernetes.io/name", "kafka"),
                ("app.kubernetes.io/instance", c),
                ("app.kubernetes.io/component", component),
            ]
        };
        out.push(pod("kafka-broker", &k.namespace, &[], &kafka("broker"), true));
        if k.controllers > 0 {
            out.push(pod("kafka-controller", &k.namespace, &[], &kafka("controller"), true));
        }
    }
    if let Some(cs) = &spec.stack.cassandra {
        let labels = [
            ("app.kubernetes.io/name", "cassandra"),
            ("app.kubernetes.io/instance", c),
            ("app.kubernetes.io/component", "database"),
        ];
        out.push(pod("cassandra", &cs.namespace, &[], &labels, true));
    }
    if let Some(s) = &spec.stack.spark {
        // The namespace's client label: asserted in the rendered Namespace below.
        let ns_labels = [("tagstack/client", "true")];
        let spark = |component| {
            [
                ("app.kubernetes.io/name", "spark"),
                ("app.kubernetes.io/instance", c),
                ("app.kubernetes.io/component", component),
            ]
        };
        if s.workers > 0 {
            out.push(pod("spark-master", &s.namespace, &ns_labels, &spark("master"), true));
            out.push(pod("spark-worker", &s.namespace, &ns_labels, &spark("worker"), true));
        }
        // SparkPi's driver (the smoke check's Job) and the executors Spark labels itself.
        out.push(pod(
            "spark-driver",
            &s.namespace,
            &ns_labels,
            &[("app.kubernetes.io/name", "spark-pi"), ("app.kubernetes.io/instance", c)],
            true,
        ));
        out.push(pod("spark-executor", &s.namespace, &ns_labels, &[("spark-role", "executor")], true));
    }
    out.push(pod("prometheus", "monitoring", &[], &[("app.kubernetes.io/name", "prometheus")], false));
    out.push(pod("kafka-exporter", "monitoring", &[], &[("app.kubernetes.io/name", "kafka-exporter")], false));
    out.push(pod("coredns", "kube-system", &[], &[("k8s-app", "kube-dns")], false));
    out.push(pod("client", "shop", &[("tagstack/client", "true")], &[("app", "shop")], false));
    out.push(pod("stranger", "default", &[], &[("app", "other")], false));
    out.push(Party { name: "api-server", pod: None, ours: false });
    out.push(Party { name: "outside", pod: None, ours: false });
    out
}

/// Every port in play; 40000 stands for the random ports Spark's driver and block managers use.
const PORTS: &[(&str, u16)] = &[
    ("UDP", 53),
    ("TCP", 53),
    ("TCP", 443),
    ("TCP", 4040),
    ("TCP", 6443),
    ("TCP", 7000),
    ("TCP", 7001),
    ("TCP", 7077),
    ("TCP", 7199),
    ("TCP", 8080),
    ("TCP", 8081),
    ("TCP", 9042),
    ("TCP", 9092),
    ("TCP", 9093),
    ("TCP", 9094),
    ("TCP", 9100),
    ("TCP", 9308),
    ("TCP", 9404),
    ("TCP", 40000),
];

/// The NetworkPolicies exactly as `up` applies them: the JSON documents of the manifests.
fn rendered_policies(spec: &Spec) -> Vec<Value> {
    let mut out = Vec::new();
    for m in super::super::manifests(spec).unwrap() {
        for doc in m.content.split("\n---\n") {
            let body: String = doc.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
            let body = body.trim().trim_start_matches("---").trim();
            if body.starts_with('{') {
                let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{}: {e}\n{body}", m.file));
                assert_eq!(v["kind"], "NetworkPolicy", "{body}");
                out.push(v);
            } else {
                assert!(
                    !body.contains("kind: NetworkPolicy"),
                    "a policy not in JSON, which this test would skip:\n{body}"
                );
            }
        }
    }
    out
}

fn selects(selector: &Value, labels: &Labels) -> bool {
    let obj = selector.as_object().expect("a label selector is an object");
    for key in obj.keys() {
        assert_eq!(key, "matchLabels", "the evaluator knows matchLabels only: {selector}");
    }
    obj.get("matchLabels").and_then(Value::as_object).is_none_or(|m| {
        m.iter().all(|(k, v)| labels.get(k).map(String::as_str) == Some(v.as_str().expect("a label value is a string")))
    })
}

/// Whether a `from`/`to` peer of a policy in `policy_ns` matches the party.
fn peer_matches(peer: &Value, policy_ns: &str, party: &Party) -> bool {
    let obj = peer.as_object().expect("a peer is an object");
    for key in obj.keys() {
        assert!(key == "podSelector" || key == "namespaceSelector", "the evaluator knows no {key}: {peer}");
    }
    let Some((ns, ns_labels, pod_labels)) = &party.pod else {
        return false;
    };
    let ns_ok = match obj.get("namespaceSelector") {
        Some(sel) => selects(sel, ns_labels),
        None => ns == policy_ns,
    };
    let pod_ok = obj.get("podSelector").is_none_or(|sel| selects(sel, pod_labels));
    ns_ok && pod_ok
}

fn port_matches(ports: Option<&Value>, (proto, port): (&str, u16)) -> bool {
    let Some(ports) = ports.and_then(Value::as_array).filter(|p| !p.is_empty()) else {
        return true;
    };
    ports.iter().any(|p| {
        for key in p.as_object().expect("a port is an object").keys() {
            assert!(key == "port" || key == "protocol", "the evaluator knows no {key}: {p}");
        }
        let number = p["port"].as_u64().expect("numeric ports only");
        p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto && number == u64::from(port)
    })
}

/// Whether `subject`'s policies let the connection through in one direction: `Ingress` from
/// `other`, or `Egress` to it.
fn direction_allows(policies: &[Value], direction: &str, subject: &Party, other: &Party, port: (&str, u16)) -> bool {
    let Some((ns, _, pod_labels)) = &subject.pod else {
        return true;
    };
    let (rules_key, peers_key) = if direction == "Ingress" { ("ingress", "from") } else { ("egress", "to") };
    let applying: Vec<&Value> = policies
        .iter()
        .filter(|p| p["metadata"]["namespace"] == ns.as_str())
        .filter(|p| selects(&p["spec"]["podSelector"], pod_labels))
        .filter(|p| {
            // policyTypes defaults to Ingress, plus Egress when there are egress rules.
            match p["spec"].get("policyTypes").and_then(Value::as_array) {
                Some(types) => types.iter().any(|t| t == direction),
                None => direction == "Ingress" || p["spec"].get("egress").is_some(),
            }
        })
        .collect();
    if applying.is_empty() {
        return true;
    }
    applying.iter().any(|p| {
        p["spec"].get(rules_key).and_then(Value::as_array).into_iter().flatten().any(|rule| {
            let peers_ok = match rule.get(peers_key).and_then(Value::as_array) {
                None => true,
                Some(peers) if peers.is_empty() => true,
                Some(peers) => peers.iter().any(|peer| peer_matches(peer, ns, other)),
            };
            peers_ok && port_matches(rule.get("ports"), port)
        })
    })
}

fn allowed(policies: &[Value], from: &Party, to: &Party, port: (&str, u16)) -> bool {
    direction_allows(policies, "Egress", from, to, port) && direction_allows(policies, "Ingress", to, from, port)
}

/// The table of required flows (docs/network-policies.md): whether `from` must reach `to` on
/// `port`. Everything else must be blocked, except between parties that are not the stack's,
/// whose traffic these policies do not govern.
fn required(from: &Party, to: &Party, (proto, port): (&str, u16), dedicated_controllers: bool) -> bool {
    let tcp = proto == "TCP";
    let kafka = |p: &Party| p.name.starts_with("kafka-") && p.ours;
    let spark = |p: &Party| p.name.starts_with("spark-");
    let monitoring = |p: &Party| p.name == "prometheus" || p.name == "kafka-exporter";
    let client = |p: &Party| p.name == "client" || spark(p);
    let controls = |p: &Party| p.name == "kafka-controller" || (p.name == "kafka-broker" && !dedicated_controllers);
    if !from.ours && !to.ours {
        return true;
    }
    // Each line is one required flow; a connection is required when any line says so.
    let (f, t) = (from.name, to.name);
    // Name lookups, from the namespaces whose egress is closed.
    (t == "coredns" && (kafka(from) || f == "cassandra") && port == 53)
        // Spark's namespace keeps its egress open; its own pods reach each other on any port.
        || (spark(from) && (!to.ours || spark(to)))
        || (kafka(from) && t == "kafka-broker" && tcp && port == 9092)
        || (kafka(from) && t == "kafka-broker" && tcp && port == 9094)
        || (kafka(from) && controls(to) && tcp && port == 9093)
        || ((client(from) || monitoring(from)) && t == "kafka-broker" && tcp && port == 9092)
        || (monitoring(from) && (kafka(to) || t == "cassandra") && tcp && port == 9404)
        || (f == "cassandra" && t == "cassandra" && tcp && [7000, 7001, 9042].contains(&port))
        || (client(from) && t == "cassandra" && tcp && port == 9042)
        || (f == "client" && t == "spark-master" && tcp && port == 7077)
        || (monitoring(from) && spark(to) && tcp && [8080, 8081, 4040].contains(&port))
}

fn check(spec: &Spec) -> Vec<String> {
    let policies = rendered_policies(spec);
    assert!(!policies.is_empty());
    let dedicated = spec.stack.kafka.as_ref().is_some_and(|k| k.controllers > 0);
    let parties = parties(spec);
    let mut wrong = Vec::new();
    let mut open = Vec::new();
    for from in &parties {
        for to in &parties {
            let mut ports = Vec::new();
            for &port in PORTS {
                let (is, should) = (allowed(&policies, from, to, port), required(from, to, port, dedicated));
                if is != should {
                    wrong.push(format!(
                        "{} -> {} {}/{}: allowed {is}, required {should}",
                        from.name, to.name, port.0, port.1
                    ));
                }
                if is {
                    ports.push(format!("{}/{}", port.0, port.1));
                }
            }
            if (from.ours || to.ours) && !ports.is_empty() {
                let all = if ports.len() == PORTS.len() { "any port".to_string() } else { ports.join(" ") };
                open.push(format!("{} -> {}: {all}", from.name, to.name));
            }
        }
    }
    assert!(wrong.is_empty(), "the policies differ from the required flows:\n{}", wrong.join("\n"));
    open
}

#[test]
fn every_flow_between_the_stack_parts_is_exactly_the_required_one() {
    insta::assert_snapshot!("flows_default", check(&spec("")).join("\n"));
    insta::assert_snapshot!("flows_dedicated_controllers_and_spark_workers", check(&spec(BIG)).join("\n"));
}

#[test]
fn the_spark_namespace_is_a_client_and_others_are_not() {
    let s = spec("");
    let manifests = super::super::manifests(&s).unwrap();
    let namespace_doc = |file: &str| {
        let m = manifests.iter().find(|m| m.file == file).unwrap();
        m.content.split("\n---\n").find(|d| d.contains("kind: Namespace")).unwrap().to_string()
    };
    assert!(namespace_doc("spark.yaml").contains("tagstack/client: \"true\""));
    assert!(!namespace_doc("kafka.yaml").contains("tagstack/client"));
    assert!(!namespace_doc("cassandra.yaml").contains("tagstack/client"));
}

#[test]
fn every_stack_namespace_denies_by_default() {
    for s in [spec(""), spec(BIG)] {
        let policies = rendered_policies(&s);
        for ns in ["kafka", "cassandra", "spark"] {
            let deny = policies
                .iter()
                .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == format!("{ns}-default-deny"))
                .unwrap_or_else(|| panic!("no default deny in {ns}"));
            assert_eq!(deny["spec"]["podSelector"], serde_json::json!({}));
            assert_eq!(deny["spec"]["ingress"], serde_json::json!([]));
        }
    }
}
