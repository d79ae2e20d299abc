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
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Kafka => "kafka",
            Component::Cassandra => "cassandra",
            Component::Spark => "spark",
        }
    }
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
}

/// A StatefulSet or Deployment `up` waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub component: Component,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
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
