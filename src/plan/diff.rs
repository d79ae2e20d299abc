//! (Spec, Observed, this run's expiry) -> typed plan, one `diff_<kind>` per kind. Every "what
//! to change" decision for `up` lives here, including the safety core: two resources claiming
//! one logical resource is an error naming both, never a silent pick.

use std::collections::BTreeSet;

use super::desired::{IMDS_HOP_LIMIT, LEGACY_WORKER_POLICY, ingress_rules, inline_policy_values, public_key_sha256};
use super::infra::{
    BucketFix, DefaultRoute, Ensure, GatewayFix, IamPlan, InfraPlan, InstanceGroup, KeyPairFix, ProfileFix, Removable,
    Removal, RoleFix, RouteTableFix, SecurityGroupFix, SubnetFix, SubnetPlan, VpcFix,
};
use super::model::{ExpiryChange, Hardening, Kind, Plan};
use super::observed::{Depth, IngressRule, Instance, Observed};
use crate::config::{NodeRole, Spec};

/// A plan that cannot be made. Like `ConfigError`, it carries its own advice (true for every
/// command, which all plan first), written as the hint line every error ends with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{count} {kind} resources are tagged for this environment ({ids}); tagstack will not pick one{}",
        crate::hint::Line("delete the one you do not want, or fix its tagstack:env tag, then run again")
    )]
    Duplicate { kind: &'static str, count: usize, ids: String },
    /// A caller's mistake, not the account's: a teardown's discovery does not read what the
    /// diff compares, and a plan from it would show drift that is not there.
    #[error("internal: the plan needs a full discovery (this one did not read DNS attributes and role policies)")]
    Shallow,
    /// `[backup]` is configured and a bucket of the environment's backup name exists without
    /// its ownership tags (or in another account, or unreadable): tagstack neither uses nor
    /// changes it.
    #[error(
        "S3 bucket {name} exists but is not provably this environment's ({why}); tagstack will not use or change it{}",
        crate::hint::Line(
            "if an interrupted `tagstack up` created it (it tags right after creating), add the tags tagstack:project and tagstack:env of this environment to it; otherwise delete or rename it, or remove [backup] from the config"
        )
    )]
    ForeignBucket { name: String, why: String },
    /// The configuration asks for fewer workers than one of the stack's StatefulSets needs
    /// (one node per replica): refused by `plan` and by `up` before anything runs.
    #[error(
        "too few workers ({workers}) for StatefulSet {namespace}/{name}: its {replicas} replicas must each run on their own worker (required pod anti-affinity on kubernetes.io/hostname); nothing was changed{}",
        crate::hint::Line(&format!("keep at least {replicas} workers, or lower the replicas of {namespace}/{name} ({setting}) first"))
    )]
    TooFewWorkers { workers: String, namespace: String, name: String, replicas: u32, setting: String },
}

fn unique<'a, T>(
    kind: Kind,
    items: impl IntoIterator<Item = &'a T>,
    id: impl Fn(&T) -> String,
) -> Result<Option<&'a T>, PlanError>
where
    T: 'a,
{
    let items: Vec<&T> = items.into_iter().collect();
    match items.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => Err(PlanError::Duplicate {
            kind: kind.as_str(),
            count: many.len(),
            ids: many.iter().map(|t| id(t)).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// One of several resources claiming one logical resource, and the duplicates that may be
/// healed: when every one of them was made by tagstack (its component tag) and all but at
/// most one are empty (`empty`: nothing depends on it), the busy one (else the first by id)
/// is kept and the empty rest are deleted. Otherwise the duplicate is an error naming all.
fn heal<'a, T>(
    kind: Kind,
    items: impl IntoIterator<Item = &'a T>,
    id: impl Fn(&T) -> String,
    made_by_tagstack: impl Fn(&T) -> bool,
    empty: impl Fn(&T) -> bool,
) -> Result<(Option<&'a T>, Vec<&'a T>), PlanError>
where
    T: 'a,
{
    let mut items: Vec<&T> = items.into_iter().collect();
    if items.len() <= 1 {
        return Ok((items.first().copied(), Vec::new()));
    }
    items.sort_by_key(|t| id(t));
    let busy: Vec<&T> = items.iter().copied().filter(|t| !empty(t)).collect();
    if !items.iter().all(|t| made_by_tagstack(t)) || busy.len() > 1 {
        return unique(kind, items, id).map(|one| (one, Vec::new()));
    }
    let keep = busy.first().copied().or(items.first().copied());
    let keep_id = keep.map(&id);
    let rest = items.into_iter().filter(|t| Some(id(t)) != keep_id).collect();
    Ok((keep, rest))
}

fn healed(what: Removable, name: String, id: &str, kept: Option<&str>) -> Removal {
    Removal {
        what,
        name,
        id: id.to_string(),
        note: format!(
            "duplicate of {} made by tagstack (a lost create answer); nothing depends on it",
            kept.unwrap_or("?")
        ),
        kept: kept.map(str::to_string),
    }
}

/// Live instances of a role ([`super::observed::InstanceState::is_live`]), oldest first.
pub fn live_instances(observed: &Observed, role: NodeRole) -> Vec<&Instance> {
    let mut v: Vec<&Instance> = observed.instances.iter().filter(|i| i.role == role && i.state.is_live()).collect();
    v.sort_by(|a, b| a.launch_time.cmp(&b.launch_time).then(a.id.cmp(&b.id)));
    v
}

/// The flat plan `plan`, `status` and the JSON show: [`diff_infra`]'s view.
pub fn diff(spec: &Spec, o: &Observed, expires_at: Option<&str>) -> Result<Plan, PlanError> {
    diff_infra(spec, o, expires_at).map(|p| p.to_plan())
}

/// One diff per kind, in dependency order (a kind's answer may need an earlier one's id).
/// The first duplicate found, in this order, is the error. `expires_at` is the expiry this
/// run gives the environment (`super::expiry::resolve`; `None`: no expiry tag).
pub fn diff_infra(spec: &Spec, o: &Observed, expires_at: Option<&str>) -> Result<InfraPlan, PlanError> {
    if o.depth != Depth::Full {
        return Err(PlanError::Shallow);
    }
    let mut removals = Vec::new();
    let vpc = diff_vpc(spec, o, &mut removals)?;
    let vpc_id = vpc.id.as_deref();
    let subnets = diff_subnets(spec, o, vpc_id, &mut removals)?;
    let gateway = diff_gateway(spec, o, vpc_id, &mut removals)?;
    let route_table = diff_route_table(spec, o, gateway.id.as_deref(), &subnets, &mut removals)?;
    let security_group = diff_security_group(spec, o, &mut removals)?;
    let key_pair = diff_key_pair(spec, o)?;
    let hardening = diff_hardening(spec, o);
    let iam = diff_iam(spec, o, &hardening, &mut removals);
    let instances = diff_instances(spec, o)?;
    let backup_bucket = diff_backup_bucket(spec, o)?;
    Ok(InfraPlan {
        vpc,
        subnets,
        gateway,
        route_table,
        security_group,
        key_pair,
        iam,
        instances,
        removals,
        backup_bucket,
        expiry: diff_expiry(expires_at, o),
        hardening,
    })
}

/// An environment is from before IMDS hop limit 1 while one of its live instances reports a
/// higher hop limit (one that reports none is taken as current: moto, and EC2 always reports
/// it). Then `up` lowers those instances' hop limit and removes the worker role's legacy
/// policy after its cluster stage; until then the worker role keeps that policy (the EBS CSI
/// controller of the old layout runs on a worker and takes the worker role from IMDS).
fn diff_hardening(spec: &Spec, o: &Observed) -> Hardening {
    let hop_limit: Vec<String> = o
        .instances
        .iter()
        .filter(|i| i.state.is_live() && i.imds_hop_limit.is_some_and(|h| h > IMDS_HOP_LIMIT))
        .map(|i| i.id.clone())
        .collect();
    if hop_limit.is_empty() {
        return Hardening::default();
    }
    let worker = spec.id.iam_name(NodeRole::Worker);
    let policies = o
        .roles
        .iter()
        .filter(|r| r.name == worker)
        .flat_map(|r| r.inline_policies.iter())
        .filter(|(name, _)| name == LEGACY_WORKER_POLICY)
        .map(|(name, _)| (worker.clone(), name.clone()))
        .collect();
    Hardening { hop_limit, policies }
}

/// The backup bucket: created and configured when `[backup]` wants it; an existing one
/// without `[backup]` is kept as it is (its snapshots are data: only `down --delete-backups`
/// deletes them); a foreign one stops the plan only when backups are wanted.
fn diff_backup_bucket(spec: &Spec, o: &Observed) -> Result<Option<Ensure<BucketFix>>, PlanError> {
    use super::observed::BucketSeen;
    let name = o.backup.name.as_str();
    match (&spec.backup, &o.backup.seen) {
        (None, BucketSeen::Absent | BucketSeen::Foreign { .. }) => Ok(None),
        (None, BucketSeen::Ours(_)) => Ok(Some(Ensure {
            note: Some("kept: [backup] is not configured; `tagstack down --delete-backups` deletes it".into()),
            ..Ensure::existing(name, name, BucketFix::default())
        })),
        (Some(_), BucketSeen::Foreign { why }) => {
            Err(PlanError::ForeignBucket { name: name.to_string(), why: why.clone() })
        }
        (Some(want), BucketSeen::Absent) => Ok(Some(Ensure::create(name, BucketFix::all(want.retention_days)))),
        (Some(want), BucketSeen::Ours(b)) => {
            let fix = BucketFix {
                encrypt: !b.encrypted,
                block_public_access: !b.public_access_blocked,
                expire_after: (b.retention_days != Some(want.retention_days)).then_some(want.retention_days),
                enforce_owner: !b.owner_enforced,
            };
            Ok(Some(Ensure::existing(name, name, fix)))
        }
    }
}

/// An empty duplicate VPC has no subnet, route table or security group of ours in it and no
/// gateway attached. A block that differs is only noted: it cannot change in place.
fn diff_vpc(spec: &Spec, o: &Observed, removals: &mut Vec<Removal>) -> Result<Ensure<VpcFix>, PlanError> {
    let vpc_empty = |v: &super::observed::Vpc| {
        !o.subnets.iter().any(|s| s.vpc_id == v.id)
            && !o.route_tables.iter().any(|r| r.vpc_id == v.id)
            && !o.security_groups.iter().any(|g| g.vpc_id == v.id)
            && !o.internet_gateways.iter().any(|g| g.attached_vpcs.contains(&v.id))
    };
    let (vpc, extra) = heal(Kind::Vpc, &o.vpcs, |v| v.id.clone(), |v| v.made_by_tagstack, vpc_empty)?;
    let name = spec.id.name_of("vpc");
    removals.extend(extra.iter().map(|v| healed(Removable::Vpc, name.clone(), &v.id, vpc.map(|k| k.id.as_str()))));
    Ok(match vpc {
        None => Ensure::create(name, VpcFix::default()),
        Some(v) => {
            let mut e = Ensure::existing(name, &v.id, VpcFix { enable_dns_hostnames: !v.dns_hostnames });
            if v.cidr.is_some_and(|cidr| cidr != spec.network.vpc_cidr) {
                e.note = Some(format!(
                    "its block differs from the config ({}); a VPC block cannot change in place",
                    spec.network.vpc_cidr
                ));
            }
            e
        }
    })
}

/// Matched by CIDR inside our VPC, never by position: reordering the config's subnets changes
/// nothing. Anything else tagged for us is extra.
fn diff_subnets(
    spec: &Spec,
    o: &Observed,
    vpc_id: Option<&str>,
    removals: &mut Vec<Removal>,
) -> Result<Vec<SubnetPlan>, PlanError> {
    let in_vpc = |vpc: &str| vpc_id == Some(vpc);
    let mut out = Vec::new();
    for want in &spec.network.subnets {
        let found =
            unique(Kind::Subnet, o.subnets.iter().filter(|s| s.cidr == Some(want.cidr) && in_vpc(&s.vpc_id)), |s| {
                s.id.clone()
            })?;
        let name = format!("{} ({})", want.cidr, want.availability_zone);
        let subnet = match found {
            None => Ensure::create(name, SubnetFix::default()),
            Some(s) => {
                let mut e = Ensure::existing(name, &s.id, SubnetFix { map_public_ip: !s.map_public_ip });
                if s.availability_zone != want.availability_zone {
                    e.note = Some(format!(
                        "it is in {}, the config says {}; delete it to move it",
                        s.availability_zone, want.availability_zone
                    ));
                }
                e
            }
        };
        out.push(SubnetPlan { want: want.clone(), subnet });
    }
    let kept: Vec<&str> = out.iter().filter_map(|s| s.subnet.id.as_deref()).collect();
    for s in o.subnets.iter().filter(|s| !kept.contains(&s.id.as_str())) {
        let name = s.cidr.map_or_else(|| s.id.clone(), |c| format!("{c} ({})", s.availability_zone));
        removals.push(Removal {
            what: Removable::Subnet,
            name,
            id: s.id.clone(),
            note: "not in the config".into(),
            kept: None,
        });
    }
    Ok(out)
}

/// An empty duplicate gateway is detached and no route points at it.
fn diff_gateway(
    spec: &Spec,
    o: &Observed,
    vpc_id: Option<&str>,
    removals: &mut Vec<Removal>,
) -> Result<Ensure<GatewayFix>, PlanError> {
    let igw_empty = |g: &super::observed::InternetGateway| {
        g.attached_vpcs.is_empty() && !o.route_tables.iter().any(|r| r.default_route.as_deref() == Some(g.id.as_str()))
    };
    let (igw, extra) =
        heal(Kind::InternetGateway, &o.internet_gateways, |g| g.id.clone(), |g| g.made_by_tagstack, igw_empty)?;
    let name = spec.id.name_of("igw");
    removals.extend(
        extra.iter().map(|g| healed(Removable::InternetGateway, name.clone(), &g.id, igw.map(|k| k.id.as_str()))),
    );
    Ok(match igw {
        None => Ensure::create(name, GatewayFix::default()),
        Some(g) => {
            let attached = vpc_id.is_some_and(|v| g.attached_vpcs.iter().any(|a| a == v));
            Ensure::existing(name, &g.id, GatewayFix { attach: !attached })
        }
    })
}

/// The default route to our gateway, and an association with every config subnet (found by
/// the subnets' diff, so by CIDR).
fn diff_route_table(
    spec: &Spec,
    o: &Observed,
    igw_id: Option<&str>,
    subnets: &[SubnetPlan],
    removals: &mut Vec<Removal>,
) -> Result<Ensure<RouteTableFix>, PlanError> {
    let (rtb, extra) = heal(
        Kind::RouteTable,
        &o.route_tables,
        |r| r.id.clone(),
        |r| r.made_by_tagstack,
        |r| r.associations.is_empty(),
    )?;
    let name = spec.id.name_of("rtb");
    removals
        .extend(extra.iter().map(|r| healed(Removable::RouteTable, name.clone(), &r.id, rtb.map(|k| k.id.as_str()))));
    Ok(match rtb {
        None => Ensure::create(name, RouteTableFix::default()),
        Some(r) => {
            let default_route = (igw_id.is_none() || r.default_route.as_deref() != igw_id).then(|| {
                r.default_route.clone().map_or(DefaultRoute::Add, |current| DefaultRoute::Replace { current })
            });
            let associate = subnets
                .iter()
                .filter(|s| !s.subnet.id.as_ref().is_some_and(|sid| r.associations.iter().any(|(_, a)| a == sid)))
                .map(|s| s.want.cidr)
                .collect();
            Ensure::existing(name, &r.id, RouteTableFix { default_route, associate })
        }
    })
}

/// A duplicate group is unused when no instance has it and no other group's rule names it.
fn diff_security_group(
    spec: &Spec,
    o: &Observed,
    removals: &mut Vec<Removal>,
) -> Result<Ensure<SecurityGroupFix>, PlanError> {
    let sg_unused = |g: &super::observed::SecurityGroup| {
        !o.instances.iter().any(|i| i.security_groups.contains(&g.id))
            && !o.security_groups.iter().any(|other| {
                other.id != g.id
                    && other
                        .ingress
                        .iter()
                        .any(|r| matches!(r, IngressRule::Other(x) if x.ends_with(&format!("from group {}", g.id))))
            })
    };
    let (sg, extra) =
        heal(Kind::SecurityGroup, &o.security_groups, |g| g.id.clone(), |g| g.made_by_tagstack, sg_unused)?;
    let name = spec.id.name_of("sg");
    removals
        .extend(extra.iter().map(|g| healed(Removable::SecurityGroup, name.clone(), &g.id, sg.map(|k| k.id.as_str()))));
    let want_rules = ingress_rules(spec);
    Ok(match sg {
        None => Ensure::create(name, SecurityGroupFix { authorize: want_rules, revoke: Vec::new() }),
        Some(g) => {
            let have: BTreeSet<_> = g.ingress.iter().cloned().collect();
            let want: BTreeSet<_> = want_rules.into_iter().collect();
            let fix = SecurityGroupFix {
                authorize: want.difference(&have).cloned().collect(),
                revoke: have.difference(&want).cloned().collect(),
            };
            Ensure::existing(name, &g.id, fix)
        }
    })
}

/// The key's fingerprint tag against the configured public key.
fn diff_key_pair(spec: &Spec, o: &Observed) -> Result<Ensure<KeyPairFix>, PlanError> {
    let key = unique(Kind::KeyPair, &o.key_pairs, |k| format!("{} ({})", k.name, k.id))?;
    let want_hash = public_key_sha256(&spec.ssh.public_key);
    Ok(match key {
        None => Ensure::create(spec.id.key_pair_name(), KeyPairFix::default()),
        Some(k) => {
            let replace = k.public_key_sha256.as_deref() != Some(want_hash.as_str());
            Ensure::existing(k.name.clone(), &k.id, KeyPairFix { replace })
        }
    })
}

/// One role + one instance profile per node role, named, so duplicates cannot exist; roles
/// and profiles under our prefix with other names are extra.
fn diff_iam(spec: &Spec, o: &Observed, hardening: &Hardening, removals: &mut Vec<Removal>) -> Vec<IamPlan> {
    let wanted: Vec<String> = NodeRole::ALL.iter().map(|r| spec.id.iam_name(*r)).collect();
    let mut out = Vec::new();
    for role in NodeRole::ALL {
        let name = spec.id.iam_name(role);
        let want_policies = inline_policy_values(role);
        let iam_role = match o.roles.iter().find(|r| r.name == name) {
            None => Ensure::create(
                &name,
                RoleFix { put_policies: want_policies.into_iter().map(|(n, _)| n).collect(), delete_policies: vec![] },
            ),
            Some(r) => {
                let put_policies = want_policies
                    .iter()
                    .filter(|(n, doc)| !r.inline_policies.iter().any(|(hn, hd)| hn == n && hd == doc))
                    .map(|(n, _)| n.clone())
                    .collect();
                // A legacy policy `up` removes after the cluster stage is not deleted here.
                let delete_policies = r
                    .inline_policies
                    .iter()
                    .filter(|(hn, _)| !want_policies.iter().any(|(n, _)| n == hn))
                    .filter(|(hn, _)| !hardening.policies.iter().any(|(role, p)| *role == name && p == hn))
                    .map(|(hn, _)| hn.clone())
                    .collect();
                Ensure::existing(&name, &name, RoleFix { put_policies, delete_policies })
            }
        };
        let profile = match o.instance_profiles.iter().find(|p| p.name == name) {
            None => Ensure::create(&name, ProfileFix { remove_roles: vec![], add_role: Some(name.clone()) }),
            Some(p) => {
                let fix = ProfileFix {
                    remove_roles: p.roles.iter().filter(|r| **r != name).cloned().collect(),
                    add_role: (!p.roles.contains(&name)).then(|| name.clone()),
                };
                Ensure::existing(&name, &name, fix)
            }
        };
        out.push(IamPlan { role, name, iam_role, profile });
    }
    for r in o.roles.iter().filter(|r| !wanted.contains(&r.name)) {
        removals.push(Removal {
            what: Removable::IamRole,
            name: r.name.clone(),
            id: r.name.clone(),
            note: "not a role this version of tagstack uses".into(),
            kept: None,
        });
    }
    for p in o.instance_profiles.iter().filter(|p| !wanted.contains(&p.name)) {
        removals.push(Removal {
            what: Removable::InstanceProfile,
            name: p.name.clone(),
            id: p.name.clone(),
            note: "not a profile this version of tagstack uses".into(),
            kept: None,
        });
    }
    out
}

/// Count-based per role over live instances, oldest kept; scale-down removes the newest:
/// workers that joined the cluster are retired (drained first), the others terminated.
/// A role neither wanted nor present has no group.
fn diff_instances(spec: &Spec, o: &Observed) -> Result<Vec<InstanceGroup>, PlanError> {
    let mut out = Vec::new();
    for role in NodeRole::ALL {
        let want = spec.group(role).count as usize;
        let live = live_instances(o, role);
        let ids = |xs: &[&Instance]| xs.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        if role == NodeRole::ControlPlane && live.len() > 1 {
            return Err(PlanError::Duplicate {
                kind: "control-plane instance",
                count: live.len(),
                ids: ids(&live).join(", "),
            });
        }
        if want == 0 && live.is_empty() {
            continue;
        }
        // Workers `tagstack replace` marked are not counted: their replacements launch now.
        let (leaving, counted): (Vec<&Instance>, Vec<&Instance>) =
            live.iter().partition(|i| role == NodeRole::Worker && i.retiring);
        let kept = &counted[..counted.len().min(want)];
        let extra: Vec<&Instance> = counted.get(want..).unwrap_or_default().iter().chain(&leaving).copied().collect();
        let joined = |i: &&Instance| role == NodeRole::Worker && i.host_key.is_some();
        let mut note = format!("{want} wanted, {} running or stopped", live.len());
        if !leaving.is_empty() {
            note.push_str(&format!(", {} being replaced", leaving.len()));
        }
        out.push(InstanceGroup {
            role,
            create: live.is_empty(),
            kept: ids(kept),
            launch: want.saturating_sub(counted.len()),
            start: kept.iter().filter(|i| i.state.is_stopped()).map(|i| i.id.clone()).collect(),
            // A worker the cluster stage ran on (it recorded the host key) holds pods: it is
            // drained and removed from the cluster before it is terminated (`ops::retire`).
            retire: extra.iter().filter(|i| joined(i)).map(|i| i.id.clone()).collect(),
            terminate: extra.iter().filter(|i| !joined(i)).map(|i| i.id.clone()).collect(),
            replacing: ids(&leaving),
            note,
        });
    }
    Ok(out)
}

/// Existing resources are re-tagged when the wanted expiry differs from any seen (or some have
/// none); a new environment gets it in its create calls instead.
fn diff_expiry(expires_at: Option<&str>, o: &Observed) -> Option<ExpiryChange> {
    match expires_at {
        Some(to) if !o.is_empty() && (o.expiry.untagged > 0 || o.expiry.values.iter().any(|v| v != to)) => {
            Some(ExpiryChange { from: o.expiry.earliest().map(str::to_string), to: to.to_string() })
        }
        _ => None,
    }
}
