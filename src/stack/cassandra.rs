//! Cassandra: its manifest (`templates/stack/cassandra.yaml.j2` with the gossip seeds, the CQL
//! probe and its JVM budget), the StatefulSet `up` waits for, the contact points, and its
//! smoke check (one CQL write and read at LOCAL_QUORUM). Pure.

use anyhow::Result;
use minijinja::context;

use super::model::{Component, DisruptionCheck, Endpoint, Manifest, Workload, WorkloadKind};
use super::render::{CASSANDRA_PROBE, Part, labels, pod_selector, probe_script, template};
use super::smoke::{Check, Step, exec};
use crate::config::{CassandraSpec, Jvm, JvmMemory, Spec};

const TEMPLATE: (&str, &str) = ("cassandra.yaml", include_str!("../../templates/stack/cassandra.yaml.j2"));

/// Cassandra as configured in `[stack.cassandra]`.
pub struct Cassandra<'a> {
    spec: &'a Spec,
    c: &'a CassandraSpec,
}

impl<'a> Cassandra<'a> {
    /// `None` when Cassandra is disabled.
    pub fn of(spec: &'a Spec) -> Option<Cassandra<'a>> {
        spec.stack.cassandra.as_ref().map(|c| Cassandra { spec, c })
    }
}

/// The first two pods (one when there is only one) seed the gossip.
pub fn seeds(namespace: &str, replicas: u32) -> String {
    (0..replicas.clamp(1, 2))
        .map(|i| format!("cassandra-{i}.cassandra-headless.{namespace}.svc.cluster.local"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Part for Cassandra<'_> {
    fn component(&self) -> Component {
        Component::Cassandra
    }

    fn manifest(&self) -> Result<Manifest> {
        let (spec, c) = (self.spec, self.c);
        let content = template(
            TEMPLATE,
            context! {
                cluster_name => spec.id.cluster_name(),
                labels => labels(spec),
                storage_class => spec.stack.storage_class,
                c => c,
                seeds => seeds(&c.namespace, c.replicas),
                jvm => JvmMemory::new(Jvm::Cassandra, c.heap_mib, &c.resources.cpu),
                jvm_flags => JvmMemory::new(Jvm::Cassandra, c.heap_mib, &c.resources.cpu).flags(),
                probe => probe_script(CASSANDRA_PROBE, 9042),
            },
        )?;
        Ok(Manifest { component: Component::Cassandra, file: TEMPLATE.0.into(), content })
    }

    fn workloads(&self) -> Vec<Workload> {
        vec![Workload {
            component: Component::Cassandra,
            kind: WorkloadKind::StatefulSet,
            namespace: self.c.namespace.clone(),
            name: "cassandra".into(),
            replicas: self.c.replicas,
            pod_selector: pod_selector(self.spec, "cassandra", None),
        }]
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint {
            component: Component::Cassandra,
            what: "contact points",
            address: format!("cassandra-client.{}.svc.cluster.local:9042", self.c.namespace),
        }
    }

    /// A Cassandra node is about to stop: every other node must be Up and Normal (`UN` in
    /// `nodetool status`), or a replica set loses a second member and QUORUM reads and writes
    /// fail for its token ranges. The JVM of nodetool is kept small as in the preStop hook.
    fn disruption_check(&self, kubectl: &str) -> Option<DisruptionCheck> {
        let c = self.c;
        Some(DisruptionCheck {
            component: Component::Cassandra,
            namespace: c.namespace.clone(),
            what: "every node Up and Normal",
            command: status(kubectl, c),
            failing: not_up_normal,
        })
    }

    fn smoke(&self, kubectl: &str, _stack_dir: &str, nonce: &str) -> Check {
        let c = self.c;
        let value = format!("tagstack-{nonce}");
        let rf = c.replicas.min(3);
        let cql = format!(
            "CONSISTENCY LOCAL_QUORUM; CREATE KEYSPACE IF NOT EXISTS tagstack_smoke WITH replication = {{'class': 'NetworkTopologyStrategy', '{dc}': {rf}}}; \
             CREATE TABLE IF NOT EXISTS tagstack_smoke.roundtrip (id text PRIMARY KEY, value text); \
             INSERT INTO tagstack_smoke.roundtrip (id, value) VALUES ('{nonce}', '{value}'); \
             SELECT value FROM tagstack_smoke.roundtrip WHERE id = '{nonce}';",
            dc = c.datacenter,
        );
        Check {
            component: Component::Cassandra,
            name: "CQL write and read",
            steps: vec![Step {
                what: "cqlsh on cassandra-0".into(),
                command: exec(kubectl, &c.namespace, "cassandra-0", "cassandra", false, &["cqlsh", "-e", &cql]),
                expect: Some(value),
            }],
            cleanup: None,
        }
    }
}

/// The node lines of `nodetool status`: the first column is U(p)/D(own) then
/// N(ormal)/L(eaving)/J(oining)/M(oving), as its legend says.
fn node_lines(status: &str) -> impl Iterator<Item = &str> {
    status.lines().map(str::trim).filter(|l| {
        let mut c = l.chars();
        matches!(c.next(), Some('U' | 'D'))
            && matches!(c.next(), Some('N' | 'L' | 'J' | 'M'))
            && c.next().is_some_and(char::is_whitespace)
    })
}

/// The node lines of `nodetool status` whose state is not `UN` (Up/Normal).
pub fn not_up_normal(output: &str) -> Vec<String> {
    node_lines(output).filter(|l| !l.starts_with("UN")).map(str::to_string).collect()
}

/// `nodetool status` as seen from `cassandra-0`.
pub fn status(kubectl: &str, c: &CassandraSpec) -> String {
    exec(kubectl, &c.namespace, "cassandra-0", "cassandra", false, &["env", "MAX_HEAP_SIZE=128M", "nodetool", "status"])
}

/// `nodetool decommission` in the pod of `ordinal`: the node streams its token ranges to the
/// others and leaves the ring (Cassandra's "Removing nodes" docs). Cassandra itself refuses
/// while a keyspace's replication factor exceeds the nodes that would be left (5.0's
/// `StorageService.decommission`, unless `--force`, which tagstack never passes). A node that
/// already left answers a second decommission with exit 0.
pub fn decommission(kubectl: &str, c: &CassandraSpec, ordinal: u32) -> String {
    exec(
        kubectl,
        &c.namespace,
        &format!("cassandra-{ordinal}"),
        "cassandra",
        false,
        &["env", "MAX_HEAP_SIZE=128M", "nodetool", "decommission"],
    )
}

/// The claim of the pod `ordinal` (the StatefulSet's `data` volumeClaimTemplate): a StatefulSet
/// that shrinks keeps it, and with it an EBS volume and a decommissioned node's data.
pub fn claim(ordinal: u32) -> String {
    format!("data-cassandra-{ordinal}")
}

/// The addresses in `nodetool status`'s node lines: the ring's members.
pub fn ring_addresses(status: &str) -> Vec<String> {
    node_lines(status).filter_map(|l| l.split_whitespace().nth(1).map(str::to_string)).collect()
}
