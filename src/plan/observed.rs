//! What discovery found in the account for one (project, environment): already filtered by
//! ownership tags, not yet interpreted. Filled by `aws::discover`, read by the diff. Also the
//! one shape of a node's network addresses ([`Addresses`]), which the inventory row carries on.

use std::fmt;

use ipnet::Ipv4Net;
use serde::{Serialize, Serializer};

use crate::config::{NodeAddress, NodeRole};

/// How much discovery reads. Only the diff (`plan`, `status`, `up`) compares what exists with
/// what the config wants, so only it needs the VPC's DNS attribute and the roles' policy
/// documents (DescribeVpcAttribute after DescribeVpcs, ListRolePolicies then GetRolePolicy after
/// GetRole: two round trips on the critical path); `down` and `reap` delete by ids, attachments
/// and ownership, and read nothing more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Depth {
    /// Everything the diff compares.
    #[default]
    Full,
    /// Ids, attachments and ownership: what `plan::teardown` needs. Each `Vpc::dns_hostnames`
    /// is false and each `Role::inline_policies` empty (not read), so `plan::diff` refuses it.
    Teardown,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    /// What was read; `plan::diff` needs [`Depth::Full`].
    #[serde(skip)]
    pub depth: Depth,
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub internet_gateways: Vec<InternetGateway>,
    pub route_tables: Vec<RouteTable>,
    pub security_groups: Vec<SecurityGroup>,
    pub key_pairs: Vec<KeyPair>,
    pub roles: Vec<Role>,
    pub instance_profiles: Vec<InstanceProfile>,
    pub instances: Vec<Instance>,
    /// Volumes and network interfaces created inside the cluster (by the EBS CSI driver) and
    /// carrying the environment's tags; `up` never manages them, `down` deletes what is left.
    pub volumes: Vec<Leftover>,
    pub network_interfaces: Vec<Leftover>,
    /// The `tagstack:expires-at` values seen on owned resources, and how many had none.
    pub expiry: ExpirySeen,
    /// The S3 bucket of the environment's etcd snapshots, looked up by its exact name
    /// (`config::EnvId::backup_bucket`) whether or not `[backup]` is configured: `down` and
    /// `reap` must see it either way.
    #[serde(skip)]
    pub backup: BackupBucket,
}

/// The environment's backup bucket: its name (empty when discovery did not look, e.g. in
/// the pure tests) and what was found under it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupBucket {
    pub name: String,
    pub seen: BucketSeen,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BucketSeen {
    #[default]
    Absent,
    /// Carries this environment's ownership tags (read in this account:
    /// `ExpectedBucketOwner`).
    Ours(Bucket),
    /// A bucket of that name that is not provably ours: never used, changed or deleted.
    Foreign { why: String },
}

/// What the diff compares on our bucket ([`Depth::Full`]; at [`Depth::Teardown`] nothing
/// is read: every field is false/`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Some default server-side encryption (SSE-S3 or SSE-KMS: both encrypt; tagstack sets
    /// SSE-S3 and never downgrades a KMS default someone chose).
    pub encrypted: bool,
    /// All four PublicAccessBlock settings are true.
    pub public_access_blocked: bool,
    /// `Expiration.Days` of tagstack's enabled lifecycle rule, if the bucket has it.
    pub retention_days: Option<u32>,
    /// Object ownership is `BucketOwnerEnforced` (ACLs disabled).
    pub owner_enforced: bool,
}

impl BackupBucket {
    pub fn ours(&self) -> Option<&Bucket> {
        match &self.seen {
            BucketSeen::Ours(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpirySeen {
    pub values: std::collections::BTreeSet<String>,
    pub untagged: usize,
}

impl ExpirySeen {
    pub fn record(&mut self, value: Option<&str>) {
        match value {
            Some(v) => {
                self.values.insert(v.to_string());
            }
            None => self.untagged += 1,
        }
    }

    /// The earliest expiry (RFC 3339 strings in UTC sort chronologically).
    pub fn earliest(&self) -> Option<&str> {
        self.values.iter().next().map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: Option<Ipv4Net>,
    pub dns_hostnames: bool,
    /// Carries the `tagstack:component` tag of tagstack's own create call (not only the
    /// environment's tags): a duplicate that may be healed by deleting it.
    #[serde(skip)]
    pub made_by_tagstack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub cidr: Option<Ipv4Net>,
    pub availability_zone: String,
    pub map_public_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InternetGateway {
    pub id: String,
    pub attached_vpcs: Vec<String>,
    /// Carries the `tagstack:component` tag of tagstack's own create call (not only the
    /// environment's tags): a duplicate that may be healed by deleting it.
    #[serde(skip)]
    pub made_by_tagstack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    /// Target of the 0.0.0.0/0 route, if any (an igw id, or another target id).
    pub default_route: Option<String>,
    /// (association id, subnet id) of explicit subnet associations.
    pub associations: Vec<(String, String)>,
    /// Carries the `tagstack:component` tag of tagstack's own create call (not only the
    /// environment's tags): a duplicate that may be healed by deleting it.
    #[serde(skip)]
    pub made_by_tagstack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum IngressRule {
    /// All traffic from members of the group itself.
    SelfAll,
    /// TCP `port` from a CIDR.
    Tcp { port: u16, cidr: Ipv4Net },
    /// Anything else found on the group (kept verbatim so drift can name it).
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub ingress: Vec<IngressRule>,
    /// Carries the `tagstack:component` tag of tagstack's own create call (not only the
    /// environment's tags): a duplicate that may be healed by deleting it.
    #[serde(skip)]
    pub made_by_tagstack: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyPair {
    pub id: String,
    pub name: String,
    /// Our `tagstack:public-key-sha256` tag.
    pub public_key_sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    pub name: String,
    /// Inline policy name -> document (parsed JSON).
    pub inline_policies: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceProfile {
    pub name: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    pub role: NodeRole,
    pub state: InstanceState,
    pub instance_type: String,
    pub subnet_id: Option<String>,
    #[serde(flatten)]
    pub addresses: Addresses,
    /// RFC 3339, as EC2 reports it; orders scale-down (newest go first).
    pub launch_time: Option<String>,
    pub expires_at: Option<String>,
    /// The verified SSH host key recorded on the instance (`tagstack:ssh-host-key`), if any.
    #[serde(skip)]
    pub host_key: Option<String>,
    /// `tagstack replace` marked it (`tagstack:retire`): not counted, replaced, then retired.
    #[serde(skip)]
    pub retiring: bool,
    /// Security group ids of its network interfaces (a group in use is not an empty duplicate).
    #[serde(skip)]
    pub security_groups: Vec<String>,
    /// IMDS `HttpPutResponseHopLimit` as EC2 reports it; above
    /// `plan::desired::IMDS_HOP_LIMIT` on an instance launched before it was lowered.
    #[serde(skip)]
    pub imds_hop_limit: Option<i32>,
}

/// Where an instance is on the network, as EC2 reports it: each absent until assigned (a
/// pending instance may have no public IP yet). Discovery fills it once; the inventory row
/// (`ops::Node`, flattened into its JSON) carries the same value, and `ops::nodes` resolves it
/// into the cluster stage's required addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Addresses {
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub private_dns: Option<String>,
}

impl Addresses {
    /// The address SSH connects to, per `cluster.node_address`.
    pub fn ssh(&self, which: NodeAddress) -> Option<&String> {
        match which {
            NodeAddress::Public => self.public_ip.as_ref(),
            NodeAddress::Private => self.private_ip.as_ref(),
        }
    }
}

/// An instance's EC2 state, parsed once at discovery. The two questions asked of it have
/// different answers on purpose, so they are two methods: [`InstanceState::is_live`] (does the
/// plan count it) and [`InstanceState::exists`] (does the inventory list it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    /// A name EC2 added after this version, or none at all (kept verbatim for the inventory).
    Other(String),
}

impl InstanceState {
    /// EC2's name for the state (`instance-state-name`).
    pub fn parse(name: &str) -> Self {
        match name {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Other(s) => s,
        }
    }

    /// Counts toward its group's wanted size in the plan: it can be kept (started again if it
    /// is stopped). A shutting-down instance cannot come back, so the plan launches its
    /// replacement now and `down` does not terminate it twice. A state this version does not
    /// know counts, so an unknown name never makes `up` launch a duplicate.
    pub fn is_live(&self) -> bool {
        !matches!(self, Self::ShuttingDown | Self::Terminated)
    }

    /// Still in the account: listed in the node inventory, so `status` shows a node on its
    /// way out (it still holds its addresses) rather than hiding it until it is gone.
    pub fn exists(&self) -> bool {
        *self != Self::Terminated
    }

    pub fn is_running(&self) -> bool {
        *self == Self::Running
    }

    /// Kept by the plan but needs a start.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopping | Self::Stopped)
    }
}

impl From<&str> for InstanceState {
    fn from(name: &str) -> Self {
        Self::parse(name)
    }
}

/// Padding-aware, for the inventory table's column.
impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// EC2's name, as the JSON documents have always shown it.
impl Serialize for InstanceState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A volume or network interface found by the environment's tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub id: String,
    /// EC2 state: `available`, `in-use`, ...
    pub state: String,
    /// What it is for, from its tags (e.g. the PVC `kafka/data-kafka-0`), if known.
    pub name: Option<String>,
}

impl Observed {
    /// True when nothing at all is owned by the environment.
    pub fn is_empty(&self) -> bool {
        self.vpcs.is_empty()
            && self.subnets.is_empty()
            && self.internet_gateways.is_empty()
            && self.route_tables.is_empty()
            && self.security_groups.is_empty()
            && self.key_pairs.is_empty()
            && self.roles.is_empty()
            && self.instance_profiles.is_empty()
            && self.instances.is_empty()
            && self.volumes.is_empty()
            && self.network_interfaces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceState;

    #[test]
    fn instance_states_parse_and_print_as_ec2_names() {
        for name in ["pending", "running", "stopping", "stopped", "shutting-down", "terminated", "rebooting", ""] {
            let state = InstanceState::parse(name);
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(InstanceState::parse("shutting-down"), InstanceState::ShuttingDown);
        assert_eq!(InstanceState::parse("rebooting"), InstanceState::Other("rebooting".into()));
        assert_eq!(format!("{:<10}|", InstanceState::Running), "running   |");
    }

    #[test]
    fn live_for_the_plan_and_existing_for_the_inventory() {
        let live = |n: &str| InstanceState::parse(n).is_live();
        let exists = |n: &str| InstanceState::parse(n).exists();
        for n in ["pending", "running", "stopping", "stopped", "rebooting", ""] {
            assert!(live(n) && exists(n), "{n}");
        }
        // The one state where they differ: going away, but still there.
        assert!(!live("shutting-down") && exists("shutting-down"));
        assert!(!live("terminated") && !exists("terminated"));
        assert!(InstanceState::Running.is_running() && !InstanceState::Pending.is_running());
        let stopped: Vec<&str> = ["pending", "running", "stopping", "stopped", "shutting-down"]
            .into_iter()
            .filter(|n| InstanceState::parse(n).is_stopped())
            .collect();
        assert_eq!(stopped, ["stopping", "stopped"]);
    }
}
