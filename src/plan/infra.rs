//! The plan `up` executes, typed per kind: every resource with the fixes only its kind can
//! have, instance groups with their ids as lists, subnets with the config entry they were
//! matched to by CIDR. The flat [`Plan`] that `plan`, `status`, `up`'s report and the JSON show
//! is a view of it ([`InfraPlan::to_plan`]), so what is shown and what runs cannot disagree.
//! Decides nothing (that is `diff`'s job) and does no I/O.

use ipnet::Ipv4Net;

use super::model::{Action, Change, ExpiryChange, Fix, Hardening, Kind, Plan};
use super::observed::IngressRule;
use crate::config::{NodeRole, SubnetSpec};

/// One resource `up` makes sure of: created when `id` is `None`, else fixed in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensure<F> {
    /// Logical name: the `Name` tag, the IAM name or the subnet CIDR and zone.
    pub name: String,
    /// The AWS id (or IAM name) of the existing resource.
    pub id: Option<String>,
    pub fix: F,
    /// Why it is as it is, when that is not obvious (e.g. a block that cannot change).
    pub note: Option<String>,
}

impl<F: Fixes> Ensure<F> {
    pub fn create(name: impl Into<String>, fix: F) -> Self {
        Self { name: name.into(), id: None, fix, note: None }
    }

    pub fn existing(name: impl Into<String>, id: impl Into<String>, fix: F) -> Self {
        Self { name: name.into(), id: Some(id.into()), fix, note: None }
    }

    fn change(&self, kind: Kind) -> Change {
        let action = if self.id.is_some() { Action::Keep } else { Action::Create };
        let mut c = Change::new(kind, self.name.as_str(), action, self.id.clone()).with_fixes(self.fix.fixes());
        c.note.clone_from(&self.note);
        c
    }
}

/// How a kind's typed fixes read in the flat plan (its text and JSON), in the order `up`
/// applies them.
pub trait Fixes {
    fn fixes(&self) -> Vec<Fix>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpcFix {
    pub enable_dns_hostnames: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetFix {
    pub map_public_ip: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayFix {
    /// An existing gateway not attached to the VPC (a new one is always attached).
    pub attach: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultRoute {
    Add,
    /// 0.0.0.0/0 points elsewhere (`current`): replaced with the gateway.
    Replace {
        current: String,
    },
}

/// A new route table gets the route and every subnet without fixes listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTableFix {
    pub default_route: Option<DefaultRoute>,
    /// Config subnets (by CIDR) not associated with the table.
    pub associate: Vec<Ipv4Net>,
}

/// A new group gets every wanted rule as `authorize`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityGroupFix {
    pub authorize: Vec<IngressRule>,
    pub revoke: Vec<IngressRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPairFix {
    /// The public key file changed: re-import under the same name.
    pub replace: bool,
}

/// Inline policies by name (the documents come from `desired`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleFix {
    pub put_policies: Vec<String>,
    pub delete_policies: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileFix {
    pub remove_roles: Vec<String>,
    pub add_role: Option<String>,
}

/// What the backup bucket lacks (a new one gets all of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketFix {
    pub encrypt: bool,
    pub block_public_access: bool,
    /// The lifecycle rule's days, when the bucket lacks the rule or has other days.
    pub expire_after: Option<u32>,
    pub enforce_owner: bool,
}

impl BucketFix {
    /// Everything, for a new bucket.
    pub fn all(retention_days: u32) -> BucketFix {
        BucketFix { encrypt: true, block_public_access: true, expire_after: Some(retention_days), enforce_owner: true }
    }
}

impl Fixes for BucketFix {
    fn fixes(&self) -> Vec<Fix> {
        [
            self.enforce_owner.then_some(Fix::EnforceBucketOwner),
            self.block_public_access.then_some(Fix::BlockPublicAccess),
            self.encrypt.then_some(Fix::EncryptByDefault),
            self.expire_after.map(|days| Fix::ExpireAfter { days }),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl Fixes for VpcFix {
    fn fixes(&self) -> Vec<Fix> {
        self.enable_dns_hostnames.then_some(Fix::EnableDnsHostnames).into_iter().collect()
    }
}

impl Fixes for SubnetFix {
    fn fixes(&self) -> Vec<Fix> {
        self.map_public_ip.then_some(Fix::EnableMapPublicIp).into_iter().collect()
    }
}

impl Fixes for GatewayFix {
    fn fixes(&self) -> Vec<Fix> {
        self.attach.then_some(Fix::AttachGateway).into_iter().collect()
    }
}

impl Fixes for RouteTableFix {
    fn fixes(&self) -> Vec<Fix> {
        let route = self.default_route.as_ref().map(|r| Fix::SetDefaultRoute {
            current: match r {
                DefaultRoute::Add => None,
                DefaultRoute::Replace { current } => Some(current.clone()),
            },
        });
        route.into_iter().chain(self.associate.iter().map(|c| Fix::Associate { subnet: c.to_string() })).collect()
    }
}

impl Fixes for SecurityGroupFix {
    fn fixes(&self) -> Vec<Fix> {
        let add = self.authorize.iter().cloned().map(Fix::Authorize);
        add.chain(self.revoke.iter().cloned().map(Fix::Revoke)).collect()
    }
}

impl Fixes for KeyPairFix {
    fn fixes(&self) -> Vec<Fix> {
        self.replace.then_some(Fix::ReplaceKey).into_iter().collect()
    }
}

impl Fixes for RoleFix {
    fn fixes(&self) -> Vec<Fix> {
        let put = self.put_policies.iter().map(|n| Fix::PutPolicy { name: n.clone() });
        put.chain(self.delete_policies.iter().map(|n| Fix::DeletePolicy { name: n.clone() })).collect()
    }
}

impl Fixes for ProfileFix {
    fn fixes(&self) -> Vec<Fix> {
        let remove = self.remove_roles.iter().map(|r| Fix::RemoveRole { role: r.clone() });
        remove.chain(self.add_role.iter().map(|r| Fix::AddRole { role: r.clone() })).collect()
    }
}

/// A config subnet and the subnet of the same CIDR found in the VPC, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPlan {
    pub want: SubnetSpec,
    pub subnet: Ensure<SubnetFix>,
}

/// A node role's IAM role (with its inline policies) and instance profile, both named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamPlan {
    pub role: NodeRole,
    pub name: String,
    pub iam_role: Ensure<RoleFix>,
    pub profile: Ensure<ProfileFix>,
}

/// A node role's instances, counted: `kept` plus `launch` is the wanted count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceGroup {
    pub role: NodeRole,
    /// No live instance of the role, and the config wants some.
    pub create: bool,
    /// Live instance ids kept, oldest first.
    pub kept: Vec<String>,
    pub launch: usize,
    /// Kept instances that are stopped or stopping.
    pub start: Vec<String>,
    /// The newest live workers beyond the wanted count that joined the cluster: `up` drains
    /// each, deletes its Node, then terminates it, after the cluster stage.
    pub retire: Vec<String>,
    /// The other newest live instances beyond the wanted count: terminated by the infra stage.
    pub terminate: Vec<String>,
    /// Workers `tagstack replace` marked (among `retire`/`terminate`): the launch replacing
    /// them is a request of its own (its ClientToken names them).
    pub replacing: Vec<String>,
    pub note: String,
}

impl InstanceGroup {
    fn change(&self) -> Change {
        let action = if self.create { Action::Create } else { Action::Keep };
        // The JSON and the text have always shown a group's ids comma-joined in `id`.
        let id = (!self.kept.is_empty()).then(|| self.kept.join(","));
        let mut fixes = Vec::new();
        if self.launch > 0 {
            fixes.push(Fix::Launch { count: self.launch });
        }
        if !self.start.is_empty() {
            fixes.push(Fix::Start { ids: self.start.clone() });
        }
        if !self.retire.is_empty() {
            fixes.push(Fix::Retire { ids: self.retire.clone() });
        }
        if !self.terminate.is_empty() {
            fixes.push(Fix::Terminate { ids: self.terminate.clone() });
        }
        let mut c = Change::new(Kind::Instances, self.role.as_str(), action, id).with_fixes(fixes);
        c.role = Some(self.role);
        c.note = Some(self.note.clone());
        c
    }
}

/// What `up` may delete: owned resources the config no longer wants (subnets, IAM) and empty
/// duplicates tagstack made (VPC, gateway, route table, security group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removable {
    Vpc,
    Subnet,
    InternetGateway,
    RouteTable,
    SecurityGroup,
    IamRole,
    InstanceProfile,
}

impl Removable {
    pub fn kind(self) -> Kind {
        match self {
            Removable::Vpc => Kind::Vpc,
            Removable::Subnet => Kind::Subnet,
            Removable::InternetGateway => Kind::InternetGateway,
            Removable::RouteTable => Kind::RouteTable,
            Removable::SecurityGroup => Kind::SecurityGroup,
            Removable::IamRole => Kind::IamRole,
            Removable::InstanceProfile => Kind::InstanceProfile,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub what: Removable,
    pub name: String,
    /// The AWS id (or IAM name).
    pub id: String,
    pub note: String,
    /// For a healed duplicate, the one kept (its id): named when AWS refuses the delete.
    pub kept: Option<String>,
}

impl Removal {
    fn change(&self) -> Change {
        Change::new(self.what.kind(), self.name.as_str(), Action::Delete, Some(self.id.clone()))
            .with_note(self.note.as_str())
    }
}

/// `diff`'s answer, one field per kind: what `up` applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraPlan {
    pub vpc: Ensure<VpcFix>,
    /// In the config's order (the first is where instances launch).
    pub subnets: Vec<SubnetPlan>,
    pub gateway: Ensure<GatewayFix>,
    pub route_table: Ensure<RouteTableFix>,
    pub security_group: Ensure<SecurityGroupFix>,
    pub key_pair: Ensure<KeyPairFix>,
    /// One per node role, in [`NodeRole::ALL`] order.
    pub iam: Vec<IamPlan>,
    /// One per node role that wants instances or has some.
    pub instances: Vec<InstanceGroup>,
    /// Deleted last, once nothing depends on them; in the flat plan's order.
    pub removals: Vec<Removal>,
    /// The etcd snapshots' bucket: wanted (`[backup]`), or kept because it exists (`up`
    /// never deletes backups). `None`: neither.
    pub backup_bucket: Option<Ensure<BucketFix>>,
    pub expiry: Option<ExpiryChange>,
    /// Run by `up` after its cluster stage, not with the rest.
    pub hardening: Hardening,
}

impl InfraPlan {
    /// The flat view: per kind, what is wanted, then what goes.
    pub fn to_plan(&self) -> Plan {
        let mut changes = Vec::new();
        let removals = |changes: &mut Vec<Change>, what: Removable| {
            changes.extend(self.removals.iter().filter(|r| r.what == what).map(Removal::change));
        };
        changes.push(self.vpc.change(Kind::Vpc));
        removals(&mut changes, Removable::Vpc);
        changes.extend(self.subnets.iter().map(|s| s.subnet.change(Kind::Subnet)));
        removals(&mut changes, Removable::Subnet);
        changes.push(self.gateway.change(Kind::InternetGateway));
        removals(&mut changes, Removable::InternetGateway);
        changes.push(self.route_table.change(Kind::RouteTable));
        removals(&mut changes, Removable::RouteTable);
        changes.push(self.security_group.change(Kind::SecurityGroup));
        removals(&mut changes, Removable::SecurityGroup);
        changes.push(self.key_pair.change(Kind::KeyPair));
        changes.extend(self.iam.iter().map(|i| i.iam_role.change(Kind::IamRole)));
        removals(&mut changes, Removable::IamRole);
        changes.extend(self.iam.iter().map(|i| i.profile.change(Kind::InstanceProfile)));
        removals(&mut changes, Removable::InstanceProfile);
        changes.extend(self.instances.iter().map(InstanceGroup::change));
        changes.extend(self.backup_bucket.iter().map(|b| b.change(Kind::BackupBucket)));
        Plan {
            changes,
            expiry: self.expiry.clone(),
            hardening: (!self.hardening.is_empty()).then(|| self.hardening.clone()),
        }
    }

    /// True when some group launches (only then is an AMI looked up).
    pub fn needs_launch(&self) -> bool {
        self.instances.iter().any(|g| g.launch > 0)
    }
}
