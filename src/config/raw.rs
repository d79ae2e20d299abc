//! The environment file exactly as written: serde structs with spans, strict about unknown keys.
//! Meaning (defaults, ranges, CIDR arithmetic) is `validate.rs`'s job, not this file's.

use serde::Deserialize;
use serde_spanned::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub project: S<String>,
    pub environment: S<String>,
    /// "aws" (default) or "static".
    pub provider: Option<S<String>>,
    pub region: Option<S<String>>,
    pub endpoint_url: Option<S<String>>,
    pub admin_cidrs: Option<S<Vec<S<String>>>>,
    pub kubernetes_version: Option<S<String>>,
    pub ttl: Option<S<String>>,
    pub network: Option<RawNetwork>,
    pub ssh: Option<RawSsh>,
    pub cluster: Option<RawCluster>,
    pub nodes: Option<S<Vec<RawNode>>>,
    pub ami: Option<RawAmi>,
    pub control_plane: Option<RawNodeGroup>,
    pub workers: Option<RawNodeGroup>,
    pub timeouts: Option<RawTimeouts>,
    pub stack: Option<RawStack>,
    pub backup: Option<S<RawBackup>>,
    pub monitoring: Option<S<RawMonitoring>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub vpc_cidr: S<String>,
    pub subnets: S<Vec<RawSubnet>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubnet {
    pub cidr: S<String>,
    pub availability_zone: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub public_key: Option<S<String>>,
    pub private_key: Option<S<String>>,
    pub known_hosts: Option<S<String>>,
    pub user: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub max_parallel_ssh: Option<S<i64>>,
    pub bootstrap_timeout: Option<S<String>>,
    pub drain_timeout: Option<S<String>>,
    pub node_address: Option<S<String>>,
}

/// A machine that already exists (`provider = "static"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: S<String>,
    pub address: S<String>,
    pub port: Option<S<i64>>,
    pub user: Option<S<String>>,
    pub role: S<String>,
    /// The node's SSH host public key (`ssh-ed25519 AAAA...`); or use ssh.known_hosts.
    pub host_key: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmi {
    pub id: Option<S<String>>,
    pub owner: Option<S<String>>,
    pub name: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeGroup {
    pub count: Option<S<i64>>,
    pub instance_type: Option<S<String>>,
    pub root_volume_gb: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub aws_consistency: Option<S<String>>,
    pub instances_running: Option<S<String>>,
}

/// `[stack]`: the data stack on the cluster. Every key is optional; `stack.rs` has the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStack {
    pub ready_timeout: Option<S<String>>,
    pub storage_class: Option<S<String>>,
    pub pin_digests: Option<S<bool>>,
    pub kafka: Option<RawKafka>,
    pub cassandra: Option<RawCassandra>,
    pub spark: Option<RawSpark>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    pub enabled: Option<S<bool>>,
    pub namespace: Option<S<String>>,
    pub image: Option<S<String>>,
    pub brokers: Option<S<i64>>,
    pub controllers: Option<S<i64>>,
    pub storage_gb: Option<S<i64>>,
    pub heap: Option<S<String>>,
    pub cpu: Option<S<String>>,
    pub memory: Option<S<String>>,
    pub cluster_id: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCassandra {
    pub enabled: Option<S<bool>>,
    pub namespace: Option<S<String>>,
    pub image: Option<S<String>>,
    pub replicas: Option<S<i64>>,
    pub storage_gb: Option<S<i64>>,
    pub heap: Option<S<String>>,
    pub cpu: Option<S<String>>,
    pub memory: Option<S<String>>,
    pub datacenter: Option<S<String>>,
    pub rack: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpark {
    pub enabled: Option<S<bool>>,
    pub namespace: Option<S<String>>,
    pub image: Option<S<String>>,
    /// Standalone workers; 0 (default) runs no standalone master: spark-submit on Kubernetes only.
    pub workers: Option<S<i64>>,
    pub worker_cpu: Option<S<String>>,
    pub worker_memory: Option<S<String>>,
}

/// `[backup]`: etcd snapshots in the environment's S3 bucket; `backup.rs` has the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    pub retention_days: Option<S<i64>>,
}

/// `[monitoring]`: the observability add-on; `monitoring.rs` has the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMonitoring {
    pub enabled: Option<S<bool>>,
    pub retention: Option<S<String>>,
    pub storage_gb: Option<S<i64>>,
    pub alert_webhooks: Option<S<Vec<S<String>>>>,
}
