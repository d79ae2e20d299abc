//! The flat plan: an ordered list of per-resource changes, what `plan`, `status` and `up`'s
//! report print and serialize (the JSON contract). It is the view of the typed
//! [`super::InfraPlan`] that `up` executes, and the deletions `teardown` lists. Decides nothing;
//! no I/O.

use std::fmt;

use serde::{Serialize, Serializer};

use super::observed::IngressRule;
use crate::config::NodeRole;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    KeyPair,
    IamRole,
    InstanceProfile,
    Instances,
    /// EBS volumes the cluster created for PersistentVolumeClaims (only ever deleted).
    Volume,
    /// Detached network interfaces left in the VPC (only ever deleted).
    NetworkInterface,
    /// The S3 bucket of the etcd snapshots (`[backup]`); `down` deletes it only with
    /// `--delete-backups`.
    BackupBucket,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "internet-gateway",
            Kind::RouteTable => "route-table",
            Kind::SecurityGroup => "security-group",
            Kind::KeyPair => "key-pair",
            Kind::IamRole => "iam-role",
            Kind::InstanceProfile => "instance-profile",
            Kind::Instances => "instances",
            Kind::Volume => "volume",
            Kind::NetworkInterface => "network-interface",
            Kind::BackupBucket => "backup-bucket",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Keep,
    Update,
    Delete,
}

/// One thing to change on an existing (or about-to-exist) resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    EnableDnsHostnames,
    EnableMapPublicIp,
    AttachGateway,
    SetDefaultRoute {
        current: Option<String>,
    },
    Associate {
        subnet: String,
    },
    Authorize(IngressRule),
    Revoke(IngressRule),
    ReplaceKey,
    PutPolicy {
        name: String,
    },
    DeletePolicy {
        name: String,
    },
    AddRole {
        role: String,
    },
    RemoveRole {
        role: String,
    },
    Launch {
        count: usize,
    },
    Start {
        ids: Vec<String>,
    },
    /// Drain, delete the Node, then terminate (a worker that joined the cluster).
    Retire {
        ids: Vec<String>,
    },
    Terminate {
        ids: Vec<String>,
    },
    /// The backup bucket's default encryption (SSE-S3).
    EncryptByDefault,
    BlockPublicAccess,
    ExpireAfter {
        days: u32,
    },
    EnforceBucketOwner,
}

impl fmt::Display for IngressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngressRule::SelfAll => write!(f, "all traffic from the group itself"),
            IngressRule::Tcp { port, cidr } => write!(f, "tcp/{port} from {cidr}"),
            IngressRule::Other(s) => write!(f, "{s}"),
        }
    }
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fix::EnableDnsHostnames => write!(f, "enable DNS hostnames"),
            Fix::EnableMapPublicIp => write!(f, "map public IPs on launch"),
            Fix::AttachGateway => write!(f, "attach to the VPC"),
            Fix::SetDefaultRoute { current: None } => write!(f, "add route 0.0.0.0/0 -> internet gateway"),
            Fix::SetDefaultRoute { current: Some(t) } => {
                write!(f, "replace route 0.0.0.0/0 -> {t} with the internet gateway")
            }
            Fix::Associate { subnet } => write!(f, "associate subnet {subnet}"),
            Fix::Authorize(r) => write!(f, "allow {r}"),
            Fix::Revoke(r) => write!(f, "revoke {r}"),
            Fix::ReplaceKey => write!(f, "re-import: the public key file changed (running nodes keep the old key)"),
            Fix::PutPolicy { name } => write!(f, "put inline policy {name}"),
            Fix::DeletePolicy { name } => write!(f, "delete inline policy {name}"),
            Fix::AddRole { role } => write!(f, "add role {role}"),
            Fix::RemoveRole { role } => write!(f, "remove role {role}"),
            Fix::Launch { count } => write!(f, "launch {count}"),
            Fix::Start { ids } => write!(f, "start {}", ids.join(", ")),
            Fix::Retire { ids } => write!(f, "drain, remove from the cluster, then terminate {}", ids.join(", ")),
            Fix::Terminate { ids } => write!(f, "terminate {}", ids.join(", ")),
            Fix::EncryptByDefault => write!(f, "encrypt objects by default (SSE-S3)"),
            Fix::BlockPublicAccess => write!(f, "block all public access"),
            Fix::ExpireAfter { days } => write!(f, "expire snapshots after {days} days"),
            Fix::EnforceBucketOwner => write!(f, "disable ACLs (bucket owner enforced)"),
        }
    }
}

impl Serialize for Fix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: Kind,
    /// Logical name: the `Name` tag, the IAM name, the subnet CIDR or the node role.
    pub name: String,
    pub action: Action,
    /// The AWS id (or IAM name) when the resource exists.
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<Fix>,
    /// Why: e.g. "not in the config any more".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For instance groups: which role.
    #[serde(skip)]
    pub role: Option<NodeRole>,
}

impl Change {
    pub fn new(kind: Kind, name: impl Into<String>, action: Action, id: Option<String>) -> Self {
        Self { kind, name: name.into(), action, id, fixes: Vec::new(), note: None, role: None }
    }

    pub fn with_fixes(mut self, fixes: Vec<Fix>) -> Self {
        if !fixes.is_empty() && self.action == Action::Keep {
            self.action = Action::Update;
        }
        self.fixes = fixes;
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub keep: usize,
}

/// Existing resources get a new `tagstack:expires-at` (an explicit `up --ttl`, or a `ttl`
/// added to the config of an environment that had none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryChange {
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<ExpiryChange>,
    /// An environment launched when pods could reach IMDS: what `up` changes once its cluster
    /// stage has moved the AWS-calling add-ons to the control plane (not part of the infra
    /// stage, so not counted by [`Plan::is_converged`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardening: Option<Hardening>,
}

/// What an environment from before IMDS hop limit 1 still has: instances whose pods can take
/// the node's role, and the worker role's policy that let the EBS CSI controller run on a
/// worker. `up` removes both after its cluster stage (`ops::infra::harden`), never before: until
/// the add-ons run in their new place, the controller on a worker needs both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Hardening {
    /// Instance ids whose IMDS hop limit is above `plan::desired::IMDS_HOP_LIMIT`.
    pub hop_limit: Vec<String>,
    /// (role name, inline policy name) to delete.
    pub policies: Vec<(String, String)>,
}

impl Hardening {
    pub fn is_empty(&self) -> bool {
        self.hop_limit.is_empty() && self.policies.is_empty()
    }
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
                Action::Keep => s.keep += 1,
            }
        }
        s
    }

    /// True when `up` would make no create, modify or delete call.
    pub fn is_converged(&self) -> bool {
        self.expiry.is_none() && self.changes.iter().all(|c| c.action == Action::Keep)
    }

    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.kind == kind)
    }

    pub fn one(&self, kind: Kind) -> Option<&Change> {
        self.of_kind(kind).find(|c| c.action != Action::Delete)
    }
}
