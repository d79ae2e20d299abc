//! The validated, resolved environment: what every later stage reads. Pure data, no I/O.

use std::path::PathBuf;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde::Serialize;

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
/// RFC 3339 UTC time after which `tagstack reap` may delete the environment.
pub const TAG_EXPIRES_AT: &str = "tagstack:expires-at";

#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub file: PathBuf,
    pub project: String,
    pub environment: String,
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
    /// `ttl` from the config: new environments expire this long after creation.
    pub ttl: Option<Duration>,
    /// The expiry the resources should carry, resolved by `ops` at run time (never from the
    /// file): `None` means no expiry tag.
    pub expires_at: Option<String>,
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
    /// A Spec that identifies an environment found by its tags (for `reap`), with no file
    /// behind it. Only project, environment, region and timeouts mean anything: enough to
    /// discover by tags and tear down, never to create.
    pub fn for_teardown(project: &str, environment: &str, region: &str) -> Spec {
        Spec {
            file: PathBuf::from(format!("(tags of {project}/{environment})")),
            project: project.to_string(),
            environment: environment.to_string(),
            region: region.to_string(),
            endpoint_url: None,
            admin_cidrs: Vec::new(),
            kubernetes_version: KubeVersion { major: 1, minor: 36, patch: None },
            network: NetworkSpec { vpc_cidr: Ipv4Net::default(), subnets: Vec::new() },
            ssh: SshSpec {
                public_key_path: PathBuf::new(),
                private_key_path: PathBuf::new(),
                known_hosts: None,
                public_key: String::new(),
                user: String::new(),
            },
            ami: AmiSpec::Id(String::new()),
            control_plane: NodeGroupSpec { count: 0, instance_type: String::new(), root_volume_gb: 0 },
            workers: NodeGroupSpec { count: 0, instance_type: String::new(), root_volume_gb: 0 },
            timeouts: Timeouts {
                aws_consistency: Duration::from_secs(120),
                instances_running: Duration::from_secs(600),
            },
            provider: Provider::Aws,
            cluster: ClusterSpec::default(),
            stack: StackSpec {
                ready_timeout: Duration::from_secs(900),
                storage_class: None,
                kafka: None,
                cassandra: None,
                spark: None,
            },
            ttl: None,
            expires_at: None,
        }
    }

    /// `<project>-<env>`: the Kubernetes cluster name and the stem of every `Name` tag.
    pub fn cluster_name(&self) -> String {
        format!("{}-{}", self.project, self.environment)
    }

    /// `Name` tag for a component, e.g. `demo-dev-vpc`.
    pub fn name_of(&self, component: &str) -> String {
        format!("{}-{}", self.cluster_name(), component)
    }

    /// Every IAM name this environment owns starts with this.
    pub fn iam_prefix(&self) -> String {
        format!("tagstack-{}-{}-", self.project, self.environment)
    }

    pub fn iam_name(&self, role: NodeRole) -> String {
        format!("{}{}", self.iam_prefix(), role.as_str())
    }

    pub fn key_pair_name(&self) -> String {
        format!("tagstack-{}", self.cluster_name())
    }

    pub fn group(&self, role: NodeRole) -> &NodeGroupSpec {
        match role {
            NodeRole::ControlPlane => &self.control_plane,
            NodeRole::Worker => &self.workers,
        }
    }

    /// The tags every resource carries (ownership + Name), for a component.
    pub fn tags(&self, component: &str) -> Vec<(String, String)> {
        vec![
            (TAG_PROJECT.to_string(), self.project.clone()),
            (TAG_ENV.to_string(), self.environment.clone()),
            (TAG_COMPONENT.to_string(), component.to_string()),
            ("Name".to_string(), self.name_of(component)),
            (format!("kubernetes.io/cluster/{}", self.cluster_name()), "owned".to_string()),
        ]
        .into_iter()
        .chain(self.expires_at.iter().map(|e| (TAG_EXPIRES_AT.to_string(), e.clone())))
        .collect()
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            pod_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 244, 0, 0), 16).unwrap_or_default(),
            service_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default(),
            max_parallel_ssh: 51,
            bootstrap_timeout: Duration::from_secs(900),
            node_address: NodeAddress::Public,
        }
    }
}
