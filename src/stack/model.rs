//! What the stack stage produces and reads back: the component ids, rendered manifests, the
//! workloads `up` waits for and the client endpoints. Plain data, shared by every component
//! module, `readiness.rs` and `ops::stack`; no rendering and no decisions here.

use serde::Serialize;

/// A component of the stack, in the order `up` applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Kafka,
    Cassandra,
    Spark,
    /// The monitoring add-on (`crate::monitoring`): not a stack `Part`, applied after the
    /// stack, but its workloads are judged and reported like the stack's.
    Monitoring,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Kafka => "kafka",
            Component::Cassandra => "cassandra",
            Component::Spark => "spark",
            Component::Monitoring => "monitoring",
        }
    }
}

/// A StatefulSet of the stack whose pods must each run on a different node (required pod
/// anti-affinity on `kubernetes.io/hostname`): it needs `replicas` workers, since the control
/// plane takes no workload (kubeadm's `node-role.kubernetes.io/control-plane:NoSchedule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnePerNode {
    pub component: Component,
    pub namespace: String,
    pub name: String,
    pub replicas: u32,
    /// The config key of its replicas, for the hint (e.g. `stack.kafka.brokers`).
    pub setting: &'static str,
}

/// One rendered file: `kafka.yaml` holds every object of Kafka, namespace first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub component: Component,
    pub file: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WorkloadKind {
    StatefulSet,
    Deployment,
    /// One pod per node it tolerates (the monitoring add-on's node-exporter).
    DaemonSet,
}

/// A StatefulSet, Deployment or DaemonSet `up` waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub component: Component,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// For a DaemonSet not known in advance: the status's `desiredNumberScheduled` counts.
    pub replicas: u32,
    /// The label selector of its pods: the same labels the templates put on them.
    #[serde(skip)]
    pub pod_selector: String,
}

/// Where clients connect, from inside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub component: Component,
    pub what: &'static str,
    pub address: String,
}

/// What must hold before a node running one of the component's pods is drained: a command
/// for the control plane, and the lines of its output that say it does not hold (none: safe).
#[derive(Debug, Clone)]
pub struct DisruptionCheck {
    pub component: Component,
    /// Where its pods run: the check applies when one of them is on a leaving node.
    pub namespace: String,
    /// What is checked, for messages: "no under-replicated partitions".
    pub what: &'static str,
    pub command: String,
    pub failing: fn(&str) -> Vec<String>,
}
