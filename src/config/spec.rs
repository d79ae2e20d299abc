//! The validated, resolved environment: what every later stage reads. Pure data, no I/O.
//! Configuration only: who the environment is lives in [`EnvId`] (`Spec::id`), and a run's
//! state (the expiry it tags with) is passed where it is used, never patched in here. The
//! defaults that are not a section's own (`Timeouts`, `ClusterSpec`) have their one home in
//! the `Default` impls below; `tagstack init`'s template is kept in step by a unit test.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Serialize;

use super::id::EnvId;

/// Prefix of every tagstack tag key.
pub const TAG_PROJECT: &str = "tagstack:project";
pub const TAG_ENV: &str = "tagstack:env";
pub const TAG_COMPONENT: &str = "tagstack:component";
pub const TAG_ROLE: &str = "tagstack:role";
/// SHA-256 of the imported public key, so a changed key file shows up as drift without
/// depending on how EC2 computes fingerprints.
pub const TAG_KEY_SHA256: &str = "tagstack:public-key-sha256";
/// The SSH host key (`type base64`) tagstack read from an instance's console at first boot
/// and verified there: how any machine verifies the node once the console no longer shows it.
pub const TAG_HOST_KEY: &str = "tagstack:ssh-host-key";
/// Set by `tagstack replace` (RFC 3339 UTC, when): the instance is leaving. The plan no longer
/// counts it, so `up` launches its replacement, then retires it (drain, delete, terminate).
pub const TAG_RETIRE: &str = "tagstack:retire";
/// RFC 3339 UTC time after which `tagstack reap` may delete the environment.
pub const TAG_EXPIRES_AT: &str = "tagstack:expires-at";
/// The content address of a baked node image (`bake::Recipe::hash`), on the image, its
/// snapshots and its builder: what `up`, `plan` and `bake` match a config against.
pub const TAG_BAKE_HASH: &str = "tagstack:bake-hash";
/// On a bake's builder: `generalised` once its disk was made an image (no host keys left, so
/// nothing connects to it again); a rerun then makes the image instead of using it.
pub const TAG_BAKE_STEP: &str = "tagstack:bake-step";
/// `tagstack:component` of everything a bake makes: the builder, the image, its snapshots.
pub const BAKE_COMPONENT: &str = "bake";

#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub file: PathBuf,
    /// Project and environment: who the environment is (flattened: the JSON keeps both keys).
    #[serde(flatten)]
    pub id: EnvId,
    pub region: String,
    pub endpoint_url: Option<String>,
    pub admin_cidrs: Vec<Ipv4Net>,
    pub kubernetes_version: KubeVersion,
    pub network: NetworkSpec,
    pub ssh: SshSpec,
    pub ami: AmiSpec,
    pub control_plane: NodeGroupSpec,
    pub workers: NodeGroupSpec,
    pub timeouts: Timeouts,
    pub provider: Provider,
    pub cluster: ClusterSpec,
    pub stack: StackSpec,
    /// `ttl` from the config: new environments expire this long after creation. The expiry
    /// a run gives the resources is not config: `plan::expiry::resolve` decides it per run.
    pub ttl: Option<Duration>,
    /// `[backup]`: `None` when absent (no bucket, no `tagstack backup`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<super::backup::BackupSpec>,
    /// `[monitoring]` with `enabled = true`; `None`: no monitoring add-on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<super::monitoring::MonitoringSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkSpec {
    pub vpc_cidr: Ipv4Net,
    pub subnets: Vec<SubnetSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetSpec {
    pub cidr: Ipv4Net,
    pub availability_zone: String,
}

/// Where the nodes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Provider {
    /// EC2 instances that tagstack creates.
    Aws,
    /// Machines that already exist; only the cluster stage runs.
    Static { nodes: Vec<StaticNode> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaticNode {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub role: NodeRole,
    pub host_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterSpec {
    /// Flannel's pod network (its manifest's default); must not overlap the nodes' network.
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    /// How many nodes are worked on at once over SSH.
    pub max_parallel_ssh: usize,
    /// Deadline for the whole bootstrap, and for all nodes to be Ready.
    #[serde(with = "secs")]
    pub bootstrap_timeout: Duration,
    /// How long a scale-down waits for one node's pods to be evicted (`kubectl drain
    /// --timeout`), honouring PodDisruptionBudgets. The default, 45 minutes, outlasts the
    /// 1800 s termination grace period the Cassandra template gives `nodetool drain`.
    #[serde(with = "secs")]
    pub drain_timeout: Duration,
    /// Which address of an AWS instance tagstack connects to (SSH, and the kubeconfig's server).
    pub node_address: NodeAddress,
}

/// `cluster.node_address`: the instances' public IPs (default), or their private IPs for a
/// machine inside the VPC (a CI runner there, a VPN, a peered network).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeAddress {
    #[default]
    Public,
    Private,
}

/// The data stack on the cluster; a component that is `None` is disabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackSpec {
    /// Deadline for every component to be ready after it was applied.
    #[serde(with = "secs")]
    pub ready_timeout: Duration,
    /// The PVCs' StorageClass; `None` leaves it to the cluster's default class.
    pub storage_class: Option<String>,
    pub kafka: Option<KafkaSpec>,
    pub cassandra: Option<CassandraSpec>,
    pub spark: Option<SparkSpec>,
}

/// A container's CPU request and memory (request = limit, so the JVM is never OOM-killed by a
/// neighbour's burst).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub cpu: String,
    pub memory_mib: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaSpec {
    pub namespace: String,
    pub image: String,
    pub brokers: u32,
    /// 0: every broker is also a KRaft controller (combined mode).
    pub controllers: u32,
    pub storage_gb: u32,
    pub heap_mib: u32,
    pub resources: Resources,
    /// Never printed as a secret: it only names the cluster.
    pub cluster_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CassandraSpec {
    pub namespace: String,
    pub image: String,
    pub replicas: u32,
    pub storage_gb: u32,
    pub heap_mib: u32,
    pub resources: Resources,
    pub datacenter: String,
    pub rack: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SparkSpec {
    pub namespace: String,
    pub image: String,
    /// Standalone workers; 0 means no standalone master (spark-submit on Kubernetes only).
    pub workers: u32,
    pub worker: Resources,
}

impl StackSpec {
    /// The namespaces the stack owns (deleted by `down`), without repeats.
    pub fn namespaces(&self) -> Vec<String> {
        let all = [
            self.kafka.as_ref().map(|k| &k.namespace),
            self.cassandra.as_ref().map(|c| &c.namespace),
            self.spark.as_ref().map(|s| &s.namespace),
        ];
        let mut out: Vec<String> = Vec::new();
        for ns in all.into_iter().flatten() {
            if !out.contains(ns) {
                out.push(ns.clone());
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.kafka.is_none() && self.cassandra.is_none() && self.spark.is_none()
    }
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SshSpec {
    pub public_key_path: PathBuf,
    /// The private key tagstack connects with (never read by tagstack; passed to ssh -i).
    pub private_key_path: PathBuf,
    /// A known_hosts file to trust (static provider), in addition to per-node host keys.
    pub known_hosts: Option<PathBuf>,
    /// The public key line (`ssh-ed25519 AAAA... comment`); public, safe to log.
    pub public_key: String,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AmiSpec {
    Id(String),
    Lookup { owner: String, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeGroupSpec {
    pub count: u32,
    pub instance_type: String,
    pub root_volume_gb: u32,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timeouts {
    /// Per-step deadline for eventual-consistency retries (NotFound after create, IAM
    /// propagation, DependencyViolation on delete).
    pub aws_consistency: Duration,
    /// How long `up` waits for instances to run and `down` for them to terminate.
    pub instances_running: Duration,
}

/// The two node roles. The string form is the `tagstack:role` tag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    ControlPlane,
    Worker,
}

impl NodeRole {
    pub const ALL: [NodeRole; 2] = [NodeRole::ControlPlane, NodeRole::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::ControlPlane => "control-plane",
            NodeRole::Worker => "worker",
        }
    }

    pub fn parse(s: &str) -> Option<NodeRole> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl Spec {
    pub fn group(&self, role: NodeRole) -> &NodeGroupSpec {
        match role {
            NodeRole::ControlPlane => &self.control_plane,
            NodeRole::Worker => &self.workers,
        }
    }
}

/// The `[timeouts]` defaults: also what `reap` waits with, having no config to read.
impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { aws_consistency: Duration::from_secs(120), instances_running: Duration::from_secs(600) }
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            pod_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16).unwrap_or_default(),
            service_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default(),
            max_parallel_ssh: 51,
            bootstrap_timeout: Duration::from_secs(900),
            drain_timeout: Duration::from_secs(2700),
            node_address: NodeAddress::Public,
        }
    }
}
