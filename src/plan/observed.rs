//! What discovery found in the account for one (project, environment): already filtered by
//! ownership tags, not yet interpreted. Filled by `aws::discover`, read by the diff.

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::config::NodeRole;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
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
    /// EC2 state name: pending, running, stopping, stopped, shutting-down.
    pub state: String,
    pub instance_type: String,
    pub subnet_id: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub private_dns: Option<String>,
    /// RFC 3339, as EC2 reports it; orders scale-down (newest go first).
    pub launch_time: Option<String>,
    pub expires_at: Option<String>,
    /// The verified SSH host key recorded on the instance (`tagstack:ssh-host-key`), if any.
    #[serde(skip)]
    pub host_key: Option<String>,
    /// Security group ids of its network interfaces (a group in use is not an empty duplicate).
    #[serde(skip)]
    pub security_groups: Vec<String>,
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
