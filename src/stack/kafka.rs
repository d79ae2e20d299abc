//! Kafka in KRaft mode: its manifest (`templates/stack/kafka.yaml.j2` with one StatefulSet per
//! set of roles, the static quorum, the replication it can afford and its JVM budget), the
//! StatefulSets `up` waits for, the bootstrap servers, and its smoke check (one message
//! produced on the first broker and consumed on the last). Pure.

use anyhow::Result;
use minijinja::context;
use serde::Serialize;

use super::model::{Component, DisruptionCheck, Endpoint, Manifest, Workload, WorkloadKind};
use super::render::{KAFKA_PROBE, Part, labels, pod_selector, probe_script, template};
use super::smoke::{Check, Step, exec, sh_quote};
use crate::config::{Jvm, JvmMemory, KafkaSpec, Spec};

const TEMPLATE: (&str, &str) = ("kafka.yaml", include_str!("../../templates/stack/kafka.yaml.j2"));

/// Kafka as configured in `[stack.kafka]`.
pub struct Kafka<'a> {
    spec: &'a Spec,
    k: &'a KafkaSpec,
}

impl<'a> Kafka<'a> {
    /// `None` when Kafka is disabled.
    pub fn of(spec: &'a Spec) -> Option<Kafka<'a>> {
        spec.stack.kafka.as_ref().map(|k| Kafka { spec, k })
    }
}

/// One StatefulSet of Kafka nodes with the same roles.
#[derive(Debug, Serialize)]
struct KafkaSet {
    name: &'static str,
    component: &'static str,
    replicas: u32,
    roles: &'static str,
    listeners: &'static str,
    broker: bool,
    controller: bool,
    node_id_offset: u32,
    probe_port: u16,
    /// [`KAFKA_PROBE`] on `probe_port`.
    probe: String,
}

/// Dedicated controllers take node ids from 0 and brokers from 100, so the two never collide.
const BROKER_ID_OFFSET: u32 = 100;

fn sets(k: &KafkaSpec) -> Vec<KafkaSet> {
    if k.controllers == 0 {
        return vec![KafkaSet {
            name: "kafka",
            component: "broker",
            replicas: k.brokers,
            roles: "broker,controller",
            listeners: "PLAINTEXT://:9092,CONTROLLER://:9093",
            broker: true,
            controller: true,
            node_id_offset: 0,
            probe_port: 9092,
            probe: probe_script(KAFKA_PROBE, 9092),
        }];
    }
    vec![
        KafkaSet {
            name: "kafka-controller",
            component: "controller",
            replicas: k.controllers,
            roles: "controller",
            listeners: "CONTROLLER://:9093",
            broker: false,
            controller: true,
            node_id_offset: 0,
            probe_port: 9093,
            probe: probe_script(KAFKA_PROBE, 9093),
        },
        KafkaSet {
            name: "kafka",
            component: "broker",
            replicas: k.brokers,
            roles: "broker",
            listeners: "PLAINTEXT://:9092",
            broker: true,
            controller: false,
            node_id_offset: BROKER_ID_OFFSET,
            probe_port: 9092,
            probe: probe_script(KAFKA_PROBE, 9092),
        },
    ]
}

/// `0@kafka-0.kafka-headless.<ns>.svc.cluster.local:9093,...`: the static KRaft quorum. `up`
/// compares it with the running StatefulSets' before applying (a quorum cannot change in place).
pub fn voters(k: &KafkaSpec) -> String {
    let (set, count) = if k.controllers == 0 { ("kafka", k.brokers) } else { ("kafka-controller", k.controllers) };
    (0..count)
        .map(|i| format!("{i}@{set}-{i}.kafka-headless.{}.svc.cluster.local:9093", k.namespace))
        .collect::<Vec<_>>()
        .join(",")
}

/// Replicas of every topic (and of Kafka's internal ones): three where there are brokers for it.
pub fn replication_factor(k: &KafkaSpec) -> u32 {
    k.brokers.min(3)
}

impl Part for Kafka<'_> {
    fn component(&self) -> Component {
        Component::Kafka
    }

    fn manifest(&self) -> Result<Manifest> {
        let (spec, k) = (self.spec, self.k);
        let replication_factor = replication_factor(k);
        let content = template(
            TEMPLATE,
            context! {
                cluster_name => spec.id.cluster_name(),
                labels => labels(spec),
                storage_class => spec.stack.storage_class,
                k => k,
                sets => sets(k),
                voters => voters(k),
                replication_factor => replication_factor,
                // With one or two brokers a write must not wait for a replica that cannot exist.
                min_insync => if replication_factor >= 3 { 2 } else { 1 },
                jvm => JvmMemory::new(Jvm::Kafka, k.heap_mib, &k.resources.cpu),
                jvm_flags => JvmMemory::new(Jvm::Kafka, k.heap_mib, &k.resources.cpu).flags(),
                jmx => crate::monitoring::deploy::jmx_agent(spec, crate::monitoring::content::Jvm::Kafka),
            },
        )?;
        Ok(Manifest { component: Component::Kafka, file: TEMPLATE.0.into(), content })
    }

    fn workloads(&self) -> Vec<Workload> {
        sets(self.k)
            .into_iter()
            .map(|set| Workload {
                component: Component::Kafka,
                kind: WorkloadKind::StatefulSet,
                namespace: self.k.namespace.clone(),
                name: set.name.into(),
                replicas: set.replicas,
                pod_selector: pod_selector(self.spec, "kafka", Some(set.component)),
            })
            .collect()
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            component: Component::Kafka,
            what: "bootstrap servers",
            address: format!("kafka-bootstrap.{}.svc.cluster.local:9092", self.k.namespace),
        }
    }

    /// A broker is about to stop: every partition must have its full replica set in sync first,
    /// or the partitions it leads or follows drop below their replication (below
    /// `min.insync.replicas`, producers with `acks=all` stop). `--under-replicated-partitions`
    /// prints one line per partition whose ISR is smaller than its replica set, nothing when
    /// all are in sync (apache/kafka TopicCommand, `kafka-topics.sh --help`).
    fn disruption_check(&self, kubectl: &str) -> Option<DisruptionCheck> {
        let k = self.k;
        Some(DisruptionCheck {
            component: Component::Kafka,
            namespace: k.namespace.clone(),
            what: "no under-replicated partitions",
            command: exec(
                kubectl,
                &k.namespace,
                "kafka-0",
                "kafka",
                false,
                &[
                    "env",
                    "KAFKA_HEAP_OPTS=-Xmx256m",
                    "/opt/kafka/bin/kafka-topics.sh",
                    "--bootstrap-server",
                    "localhost:9092",
                    "--describe",
                    "--under-replicated-partitions",
                ],
            ),
            failing: under_replicated,
        })
    }

    fn smoke(&self, kubectl: &str, _stack_dir: &str, nonce: &str) -> Check {
        let k = self.k;
        let topic = format!("tagstack-smoke-{nonce}");
        let message = format!("tagstack smoke {nonce}");
        let bootstrap = "localhost:9092";
        let last = format!("kafka-{}", k.brokers.saturating_sub(1));
        let rf = replication_factor(k).to_string();
        let bin = |tool: &str| format!("/opt/kafka/bin/{tool}");
        // The tools would inherit the broker's KAFKA_HEAP_OPTS (-Xms = the broker's heap) inside
        // the broker's memory limit.
        let kexec = |pod: &str, stdin: bool, argv: &[&str]| {
            let mut with_heap = vec!["env", "KAFKA_HEAP_OPTS=-Xmx256m"];
            with_heap.extend_from_slice(argv);
            exec(kubectl, &k.namespace, pod, "kafka", stdin, &with_heap)
        };
        Check {
            component: Component::Kafka,
            name: "produce and consume one message",
            steps: vec![
                Step {
                    what: format!("create topic {topic}"),
                    command: kexec(
                        "kafka-0",
                        false,
                        &[
                            &bin("kafka-topics.sh"),
                            "--bootstrap-server",
                            bootstrap,
                            "--create",
                            "--if-not-exists",
                            "--topic",
                            &topic,
                            "--partitions",
                            "1",
                            "--replication-factor",
                            &rf,
                        ],
                    ),
                    expect: None,
                },
                Step {
                    what: "produce on kafka-0".into(),
                    command: format!(
                        "printf '%s\\n' {} | {}",
                        sh_quote(&message),
                        kexec(
                            "kafka-0",
                            true,
                            &[&bin("kafka-console-producer.sh"), "--bootstrap-server", bootstrap, "--topic", &topic,]
                        )
                    ),
                    expect: None,
                },
                Step {
                    what: format!("consume on {last}"),
                    command: kexec(
                        &last,
                        false,
                        &[
                            &bin("kafka-console-consumer.sh"),
                            "--bootstrap-server",
                            bootstrap,
                            "--topic",
                            &topic,
                            "--from-beginning",
                            "--max-messages",
                            "1",
                            "--timeout-ms",
                            "60000",
                        ],
                    ),
                    expect: Some(message),
                },
            ],
            cleanup: Some(kexec(
                "kafka-0",
                false,
                &[&bin("kafka-topics.sh"), "--bootstrap-server", bootstrap, "--delete", "--topic", &topic],
            )),
        }
    }
}

/// The partition lines of `kafka-topics.sh --describe --under-replicated-partitions`.
pub fn under_replicated(output: &str) -> Vec<String> {
    output.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}
