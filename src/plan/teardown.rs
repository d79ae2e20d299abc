//! What `down` deletes and in which order: the one place that decides it. Each step names the
//! steps it must wait for; `ops::infra::teardown` runs them exactly so (every step as soon as
//! its dependencies succeeded, never after one failed), so the tests of this module are tests
//! of `down`'s order. Pure: no tokio, no SDK.

use std::ops::Deref;

use super::diff::live_instances;
use super::model::{Action, Change, Kind, Plan};
use super::observed::Observed;
use crate::config::NodeRole;

/// One AWS operation of the teardown; the ids it needs were read at discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Every role's instances in one call, then the wait until they are terminated.
    Terminate {
        ids: Vec<String>,
    },
    DeleteVolume {
        id: String,
    },
    DeleteNetworkInterface {
        id: String,
    },
    DeleteKeyPair {
        name: String,
    },
    DeleteSecurityGroup {
        id: String,
    },
    /// A route table cannot be deleted while subnets are associated with it.
    DisassociateRouteTable {
        id: String,
        associations: Vec<String>,
    },
    DeleteRouteTable {
        id: String,
    },
    /// The VPC cannot be deleted while a gateway is attached; the gateway itself can go later.
    DetachInternetGateway {
        id: String,
        vpcs: Vec<String>,
    },
    DeleteInternetGateway {
        id: String,
    },
    DeleteSubnet {
        id: String,
    },
    DeleteVpc {
        id: String,
    },
    /// A profile cannot be deleted while it holds a role: the roles discovery saw in it that
    /// are not the environment's (those leave it with [`Op::StripRole`]).
    EmptyInstanceProfile {
        name: String,
        roles: Vec<String>,
    },
    DeleteInstanceProfile {
        name: String,
    },
    /// A role cannot be deleted while it has policies or sits in a profile.
    StripRole {
        name: String,
    },
    DeleteRole {
        name: String,
    },
    /// Every object version and delete marker, then the bucket (`down --delete-backups`).
    DeleteBucket {
        name: String,
    },
}

/// What `down` does with the environment's backup bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backups {
    /// The default: snapshots outlive the environment (restoring into a new one is their
    /// point); `down` says it kept them.
    #[default]
    Keep,
    /// `down --delete-backups` (and `reap`): emptied and deleted.
    Delete,
}

/// One operation, the plan entries (indices into the plan's changes) whose fate it decides,
/// and the steps (indices into [`Teardown::steps`], always earlier ones) that must have
/// succeeded before it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub changes: Vec<usize>,
    pub op: Op,
    pub after: Vec<usize>,
}

/// The teardown: `first` (the instances, which everything else waits for; if it fails nothing
/// else runs, so the next `down` finds a consistent environment), then `steps`, each as soon
/// as the steps it names in `after` succeeded (never if one failed). Derefs to the [`Plan`] of
/// deletions (one entry per resource) that `describe` prints.
#[derive(Debug, Clone, Default)]
pub struct Teardown {
    plan: Plan,
    pub first: Option<Step>,
    pub steps: Vec<Step>,
    /// The entries in the order `down`'s report lists them: each branch together (instances,
    /// what the cluster left, the network from the outside in, the key pair, IAM).
    report: Vec<usize>,
    /// The environment's backup bucket when it exists and is kept ([`Backups::Keep`]).
    pub kept_bucket: Option<String>,
}

impl Deref for Teardown {
    type Target = Plan;

    fn deref(&self) -> &Plan {
        &self.plan
    }
}

impl Teardown {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The entries in the order `down`'s report lists them.
    pub fn report_order(&self) -> &[usize] {
        &self.report
    }

    /// The steps by how many must run before them (after `first`): the round trips on the
    /// critical path are the number of stages, when each step is one round trip.
    pub fn stages(&self) -> Vec<Vec<&Step>> {
        let mut level = vec![0usize; self.steps.len()];
        let mut stages: Vec<Vec<&Step>> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            level[i] = step.after.iter().map(|&d| level[d] + 1).max().unwrap_or(0);
            if stages.len() <= level[i] {
                stages.resize_with(level[i] + 1, Vec::new);
            }
            stages[level[i]].push(step);
        }
        stages
    }
}

/// The teardown that keeps the backup bucket ([`Backups::Keep`]).
pub fn teardown(o: &Observed) -> Teardown {
    teardown_with(o, Backups::Keep)
}

pub fn teardown_with(o: &Observed, backups: Backups) -> Teardown {
    let mut t = Builder::default();
    let mut instances = Vec::new();
    let mut ids = Vec::new();
    for role in NodeRole::ALL {
        let live = live_instances(o, role);
        if !live.is_empty() {
            let role_ids: Vec<String> = live.iter().map(|i| i.id.clone()).collect();
            let mut c = Change::new(Kind::Instances, role.as_str(), Action::Delete, Some(role_ids.join(",")));
            c.role = Some(role);
            instances.push(t.add(c));
            ids.extend(role_ids);
        }
    }
    let first = (!ids.is_empty()).then(|| Step { changes: instances, op: Op::Terminate { ids }, after: Vec::new() });

    // Entries in the order `describe` lists them: instances, what the cluster left, the key
    // pair, the network from the outside in, IAM.
    let volumes: Vec<usize> =
        o.volumes.iter().map(|v| t.delete(Kind::Volume, v.name.as_deref().unwrap_or(&v.id), &v.id)).collect();
    let enis: Vec<usize> = o
        .network_interfaces
        .iter()
        .map(|n| t.delete(Kind::NetworkInterface, n.name.as_deref().unwrap_or(&n.id), &n.id))
        .collect();
    let keys: Vec<usize> = o.key_pairs.iter().map(|k| t.delete(Kind::KeyPair, &k.name, &k.id)).collect();
    let groups: Vec<usize> = o.security_groups.iter().map(|g| t.delete(Kind::SecurityGroup, &g.id, &g.id)).collect();
    let tables: Vec<usize> = o.route_tables.iter().map(|r| t.delete(Kind::RouteTable, &r.id, &r.id)).collect();
    let gateways: Vec<usize> =
        o.internet_gateways.iter().map(|g| t.delete(Kind::InternetGateway, &g.id, &g.id)).collect();
    let subnets: Vec<usize> = o
        .subnets
        .iter()
        .map(|s| t.delete(Kind::Subnet, &s.cidr.map_or_else(|| s.id.clone(), |c| c.to_string()), &s.id))
        .collect();
    let vpcs: Vec<usize> = o.vpcs.iter().map(|v| t.delete(Kind::Vpc, &v.id, &v.id)).collect();
    let profiles: Vec<usize> =
        o.instance_profiles.iter().map(|p| t.delete(Kind::InstanceProfile, &p.name, &p.name)).collect();
    let roles: Vec<usize> = o.roles.iter().map(|r| t.delete(Kind::IamRole, &r.name, &r.name)).collect();

    // Steps in the order the report lists their entries; each names only earlier steps.
    // Volumes hold nothing else up.
    for (v, &c) in o.volumes.iter().zip(&volumes) {
        t.step(c, Op::DeleteVolume { id: v.id.clone() }, Vec::new());
    }
    // The network from the outside in. A left-over interface holds its subnet and security
    // groups; a subnet waits for the route tables' associations, the VPC for the gateways'
    // detachment (neither for the deletion that follows). Subnets and the VPC wait for every
    // step before them, so a failure leaves the environment whole enough to finish later.
    let eni_steps: Vec<usize> = o
        .network_interfaces
        .iter()
        .zip(&enis)
        .map(|(n, &c)| t.step(c, Op::DeleteNetworkInterface { id: n.id.clone() }, Vec::new()))
        .collect();
    let mut unhooked = Vec::new();
    for (g, &c) in o.security_groups.iter().zip(&groups) {
        unhooked.push(t.step(c, Op::DeleteSecurityGroup { id: g.id.clone() }, eni_steps.clone()));
    }
    let mut removed = Vec::new();
    for (r, &c) in o.route_tables.iter().zip(&tables) {
        let associations = r.associations.iter().map(|(assoc, _)| assoc.clone()).collect();
        let d = t.step(c, Op::DisassociateRouteTable { id: r.id.clone(), associations }, eni_steps.clone());
        unhooked.push(d);
        removed.push((c, Op::DeleteRouteTable { id: r.id.clone() }, d));
    }
    let mut gateway_deletes = Vec::new();
    for (g, &c) in o.internet_gateways.iter().zip(&gateways) {
        let vpcs = g.attached_vpcs.clone();
        let d = t.step(c, Op::DetachInternetGateway { id: g.id.clone(), vpcs }, eni_steps.clone());
        unhooked.push(d);
        gateway_deletes.push((c, Op::DeleteInternetGateway { id: g.id.clone() }, d));
    }
    let mut before_vpc: Vec<usize> = unhooked.clone();
    for (c, op, d) in removed {
        before_vpc.push(t.step(c, op, vec![d]));
    }
    for (c, op, d) in gateway_deletes {
        t.step(c, op, vec![d]);
    }
    for (s, &c) in o.subnets.iter().zip(&subnets) {
        before_vpc.push(t.step(c, Op::DeleteSubnet { id: s.id.clone() }, unhooked.clone()));
    }
    for (v, &c) in o.vpcs.iter().zip(&vpcs) {
        t.step(c, Op::DeleteVpc { id: v.id.clone() }, before_vpc.clone());
    }
    for (k, &c) in o.key_pairs.iter().zip(&keys) {
        t.step(c, Op::DeleteKeyPair { name: k.name.clone() }, Vec::new());
    }
    // IAM: a role loses its policies and its place in every profile (ours or not) while the
    // profiles lose any role that is not ours; then each goes.
    let ours = |role: &String| o.roles.iter().any(|r| &r.name == role);
    let mut emptied: Vec<Vec<usize>> = Vec::new();
    for (p, &c) in o.instance_profiles.iter().zip(&profiles) {
        let foreign: Vec<String> = p.roles.iter().filter(|r| !ours(r)).cloned().collect();
        emptied.push(if foreign.is_empty() {
            Vec::new()
        } else {
            vec![t.step(c, Op::EmptyInstanceProfile { name: p.name.clone(), roles: foreign }, Vec::new())]
        });
    }
    let stripped: Vec<usize> = o
        .roles
        .iter()
        .zip(&roles)
        .map(|(r, &c)| t.step(c, Op::StripRole { name: r.name.clone() }, Vec::new()))
        .collect();
    for ((p, &c), mut after) in o.instance_profiles.iter().zip(&profiles).zip(emptied) {
        after.extend(o.roles.iter().zip(&stripped).filter(|(r, _)| p.roles.contains(&r.name)).map(|(_, &s)| s));
        t.step(c, Op::DeleteInstanceProfile { name: p.name.clone() }, after);
    }
    for ((r, &c), s) in o.roles.iter().zip(&roles).zip(stripped) {
        t.step(c, Op::DeleteRole { name: r.name.clone() }, vec![s]);
    }
    // The bucket depends on nothing and nothing on it: no instance writes to it (the
    // operator's machine uploads), so it may go at once.
    let bucket = o.backup.ours().map(|_| o.backup.name.clone());
    let (buckets, kept_bucket) = match (bucket, backups) {
        (Some(name), Backups::Delete) => {
            let c = t.delete(Kind::BackupBucket, &name, &name);
            t.step(c, Op::DeleteBucket { name }, Vec::new());
            (vec![c], None)
        }
        (kept, _) => (Vec::new(), kept),
    };
    let report = [
        first.as_ref().map(|s| s.changes.clone()).unwrap_or_default(),
        volumes,
        enis,
        groups,
        tables,
        gateways,
        subnets,
        vpcs,
        keys,
        profiles,
        roles,
        buckets,
    ]
    .concat();
    Teardown {
        plan: Plan { changes: t.changes, expiry: None, hardening: None },
        first,
        steps: t.steps,
        report,
        kept_bucket,
    }
}

#[derive(Default)]
struct Builder {
    changes: Vec<Change>,
    steps: Vec<Step>,
}

impl Builder {
    fn add(&mut self, c: Change) -> usize {
        self.changes.push(c);
        self.changes.len() - 1
    }

    fn delete(&mut self, kind: Kind, name: &str, id: &str) -> usize {
        self.add(Change::new(kind, name, Action::Delete, Some(id.to_string())))
    }

    fn step(&mut self, change: usize, op: Op, after: Vec<usize>) -> usize {
        self.steps.push(Step { changes: vec![change], op, after });
        self.steps.len() - 1
    }
}
