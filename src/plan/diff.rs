//! (Spec, Observed) -> Plan. The safety core lives here: two
//! resources claiming one logical resource is an error naming both, never a silent pick.

use std::collections::BTreeSet;

use super::desired::{ingress_rules, inline_policy_values, public_key_sha256};
use super::model::{Action, Change, ExpiryChange, Fix, Kind, Plan};
use super::observed::{Instance, Observed};
use crate::config::{NodeRole, Spec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{count} {kind} resources are tagged for this environment ({ids}); tagstack will not pick one\n  hint: delete the one you do not want, or fix its tagstack:env tag, then run again"
    )]
    Duplicate { kind: &'static str, count: usize, ids: String },
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

fn healed(kind: Kind, name: String, id: String, kept: Option<&str>) -> Change {
    Change::new(kind, name, Action::Delete, Some(id)).with_note(format!(
        "duplicate of {} made by tagstack (a lost create answer); nothing depends on it",
        kept.unwrap_or("?")
    ))
}

/// Live instances of a role ([`super::observed::InstanceState::is_live`]), oldest first.
pub fn live_instances(observed: &Observed, role: NodeRole) -> Vec<&Instance> {
    let mut v: Vec<&Instance> = observed.instances.iter().filter(|i| i.role == role && i.state.is_live()).collect();
    v.sort_by(|a, b| a.launch_time.cmp(&b.launch_time).then(a.id.cmp(&b.id)));
    v
}

pub fn diff(spec: &Spec, o: &Observed) -> Result<Plan, PlanError> {
    let mut changes = Vec::new();

    // VPC: an empty duplicate has no subnet, route table or security group of ours in it and
    // no gateway attached.
    let vpc_empty = |v: &super::observed::Vpc| {
        !o.subnets.iter().any(|s| s.vpc_id == v.id)
            && !o.route_tables.iter().any(|r| r.vpc_id == v.id)
            && !o.security_groups.iter().any(|g| g.vpc_id == v.id)
            && !o.internet_gateways.iter().any(|g| g.attached_vpcs.contains(&v.id))
    };
    let (vpc, extra_vpcs) = heal(Kind::Vpc, &o.vpcs, |v| v.id.clone(), |v| v.made_by_tagstack, vpc_empty)?;
    let vpc_id = vpc.map(|v| v.id.clone());
    changes.push(match vpc {
        None => Change::new(Kind::Vpc, spec.name_of("vpc"), Action::Create, None),
        Some(v) => {
            let mut fixes = vec![];
            if !v.dns_hostnames {
                fixes.push(Fix::EnableDnsHostnames);
            }
            let mut c = Change::new(Kind::Vpc, spec.name_of("vpc"), Action::Keep, Some(v.id.clone())).with_fixes(fixes);
            if v.cidr.is_some_and(|cidr| cidr != spec.network.vpc_cidr) {
                c.note = Some(format!(
                    "its block differs from the config ({}); a VPC block cannot change in place",
                    spec.network.vpc_cidr
                ));
            }
            c
        }
    });
    for v in extra_vpcs {
        changes.push(healed(Kind::Vpc, spec.name_of("vpc"), v.id.clone(), vpc_id.as_deref()));
    }

    // Subnets: matched by CIDR inside our VPC; anything else tagged for us is extra.
    let in_vpc = |vpc: &str| vpc_id.as_deref() == Some(vpc);
    let mut subnet_ids = Vec::new();
    for want in &spec.network.subnets {
        let found =
            unique(Kind::Subnet, o.subnets.iter().filter(|s| s.cidr == Some(want.cidr) && in_vpc(&s.vpc_id)), |s| {
                s.id.clone()
            })?;
        let name = format!("{} ({})", want.cidr, want.availability_zone);
        changes.push(match found {
            None => Change::new(Kind::Subnet, name, Action::Create, None),
            Some(s) => {
                subnet_ids.push(s.id.clone());
                let fixes = if s.map_public_ip { vec![] } else { vec![Fix::EnableMapPublicIp] };
                let mut c = Change::new(Kind::Subnet, name, Action::Keep, Some(s.id.clone())).with_fixes(fixes);
                if s.availability_zone != want.availability_zone {
                    c.note = Some(format!(
                        "it is in {}, the config says {}; delete it to move it",
                        s.availability_zone, want.availability_zone
                    ));
                }
                c
            }
        });
    }
    for s in &o.subnets {
        if !subnet_ids.contains(&s.id) {
            let name = s.cidr.map_or_else(|| s.id.clone(), |c| format!("{c} ({})", s.availability_zone));
            changes.push(
                Change::new(Kind::Subnet, name, Action::Delete, Some(s.id.clone())).with_note("not in the config"),
            );
        }
    }

    // Internet gateway
    let igw_empty = |g: &super::observed::InternetGateway| {
        g.attached_vpcs.is_empty() && !o.route_tables.iter().any(|r| r.default_route.as_deref() == Some(g.id.as_str()))
    };
    let (igw, extra_igws) =
        heal(Kind::InternetGateway, &o.internet_gateways, |g| g.id.clone(), |g| g.made_by_tagstack, igw_empty)?;
    changes.push(match igw {
        None => Change::new(Kind::InternetGateway, spec.name_of("igw"), Action::Create, None),
        Some(g) => {
            let attached = vpc_id.as_ref().is_some_and(|v| g.attached_vpcs.contains(v));
            let fixes = if attached { vec![] } else { vec![Fix::AttachGateway] };
            Change::new(Kind::InternetGateway, spec.name_of("igw"), Action::Keep, Some(g.id.clone())).with_fixes(fixes)
        }
    });
    for g in extra_igws {
        changes.push(healed(Kind::InternetGateway, spec.name_of("igw"), g.id.clone(), igw.map(|k| k.id.as_str())));
    }

    // Route table: default route to our igw, associated with every desired subnet.
    let (rtb, extra_rtbs) = heal(
        Kind::RouteTable,
        &o.route_tables,
        |r| r.id.clone(),
        |r| r.made_by_tagstack,
        |r| r.associations.is_empty(),
    )?;
    changes.push(match rtb {
        None => Change::new(Kind::RouteTable, spec.name_of("rtb"), Action::Create, None),
        Some(r) => {
            let mut fixes = vec![];
            let igw_id = igw.map(|g| g.id.as_str());
            if igw_id.is_none() || r.default_route.as_deref() != igw_id {
                fixes.push(Fix::SetDefaultRoute { current: r.default_route.clone() });
            }
            for want in &spec.network.subnets {
                let sid =
                    o.subnets.iter().find(|s| s.cidr == Some(want.cidr) && in_vpc(&s.vpc_id)).map(|s| s.id.clone());
                let associated = sid.as_ref().is_some_and(|sid| r.associations.iter().any(|(_, s)| s == sid));
                if !associated {
                    fixes.push(Fix::Associate { subnet: want.cidr.to_string() });
                }
            }
            Change::new(Kind::RouteTable, spec.name_of("rtb"), Action::Keep, Some(r.id.clone())).with_fixes(fixes)
        }
    });
    for r in extra_rtbs {
        changes.push(healed(Kind::RouteTable, spec.name_of("rtb"), r.id.clone(), rtb.map(|k| k.id.as_str())));
    }

    // Security group
    let sg_unused = |g: &super::observed::SecurityGroup| {
        !o.instances.iter().any(|i| i.security_groups.contains(&g.id))
            && !o.security_groups.iter().any(|other| {
                other.id != g.id
                    && other.ingress.iter().any(|r| matches!(r, super::observed::IngressRule::Other(x) if x.ends_with(&format!("from group {}", g.id))))
            })
    };
    let (sg, extra_sgs) =
        heal(Kind::SecurityGroup, &o.security_groups, |g| g.id.clone(), |g| g.made_by_tagstack, sg_unused)?;
    let want_rules = ingress_rules(spec);
    changes.push(match sg {
        None => {
            let fixes = want_rules.iter().cloned().map(Fix::Authorize).collect();
            let mut c = Change::new(Kind::SecurityGroup, spec.name_of("sg"), Action::Create, None);
            c.fixes = fixes;
            c
        }
        Some(g) => {
            let have: BTreeSet<_> = g.ingress.iter().cloned().collect();
            let want: BTreeSet<_> = want_rules.iter().cloned().collect();
            let mut fixes: Vec<Fix> = want.difference(&have).cloned().map(Fix::Authorize).collect();
            fixes.extend(have.difference(&want).cloned().map(Fix::Revoke));
            Change::new(Kind::SecurityGroup, spec.name_of("sg"), Action::Keep, Some(g.id.clone())).with_fixes(fixes)
        }
    });
    for g in extra_sgs {
        changes.push(healed(Kind::SecurityGroup, spec.name_of("sg"), g.id.clone(), sg.map(|k| k.id.as_str())));
    }

    // Key pair
    let key = unique(Kind::KeyPair, &o.key_pairs, |k| format!("{} ({})", k.name, k.id))?;
    let want_hash = public_key_sha256(&spec.ssh.public_key);
    changes.push(match key {
        None => Change::new(Kind::KeyPair, spec.key_pair_name(), Action::Create, None),
        Some(k) => {
            let fixes =
                if k.public_key_sha256.as_deref() == Some(want_hash.as_str()) { vec![] } else { vec![Fix::ReplaceKey] };
            Change::new(Kind::KeyPair, k.name.clone(), Action::Keep, Some(k.id.clone())).with_fixes(fixes)
        }
    });

    // IAM: one role + one instance profile per node role, named, so duplicates cannot exist.
    let wanted_iam: Vec<String> = NodeRole::ALL.iter().map(|r| spec.iam_name(*r)).collect();
    for role in NodeRole::ALL {
        let name = spec.iam_name(role);
        let want_policies = inline_policy_values(role);
        changes.push(match o.roles.iter().find(|r| r.name == name) {
            None => {
                let mut c = Change::new(Kind::IamRole, &name, Action::Create, None);
                c.fixes = want_policies.iter().map(|(n, _)| Fix::PutPolicy { name: n.clone() }).collect();
                c
            }
            Some(r) => {
                let mut fixes: Vec<Fix> = want_policies
                    .iter()
                    .filter(|(n, doc)| !r.inline_policies.iter().any(|(hn, hd)| hn == n && hd == doc))
                    .map(|(n, _)| Fix::PutPolicy { name: n.clone() })
                    .collect();
                fixes.extend(
                    r.inline_policies
                        .iter()
                        .filter(|(hn, _)| !want_policies.iter().any(|(n, _)| n == hn))
                        .map(|(hn, _)| Fix::DeletePolicy { name: hn.clone() }),
                );
                Change::new(Kind::IamRole, &name, Action::Keep, Some(name.clone())).with_fixes(fixes)
            }
        });
    }
    for r in o.roles.iter().filter(|r| !wanted_iam.contains(&r.name)) {
        changes.push(
            Change::new(Kind::IamRole, &r.name, Action::Delete, Some(r.name.clone()))
                .with_note("not a role this version of tagstack uses"),
        );
    }
    for role in NodeRole::ALL {
        let name = spec.iam_name(role);
        changes.push(match o.instance_profiles.iter().find(|p| p.name == name) {
            None => {
                let mut c = Change::new(Kind::InstanceProfile, &name, Action::Create, None);
                c.fixes = vec![Fix::AddRole { role: name.clone() }];
                c
            }
            Some(p) => {
                let mut fixes = vec![];
                for other in p.roles.iter().filter(|r| **r != name) {
                    fixes.push(Fix::RemoveRole { role: other.clone() });
                }
                if !p.roles.contains(&name) {
                    fixes.push(Fix::AddRole { role: name.clone() });
                }
                Change::new(Kind::InstanceProfile, &name, Action::Keep, Some(name.clone())).with_fixes(fixes)
            }
        });
    }
    for p in o.instance_profiles.iter().filter(|p| !wanted_iam.contains(&p.name)) {
        changes.push(
            Change::new(Kind::InstanceProfile, &p.name, Action::Delete, Some(p.name.clone()))
                .with_note("not a profile this version of tagstack uses"),
        );
    }

    // Instances: count-based per role; scale-down terminates the newest first.
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
        let mut fixes = Vec::new();
        if live.len() < want {
            fixes.push(Fix::Launch { count: want - live.len() });
        }
        let kept = &live[..live.len().min(want)];
        let stopped: Vec<String> = kept.iter().filter(|i| i.state.is_stopped()).map(|i| i.id.clone()).collect();
        if !stopped.is_empty() {
            fixes.push(Fix::Start { ids: stopped });
        }
        if live.len() > want {
            fixes.push(Fix::Terminate { ids: ids(&live[want..]) });
        }
        let action = if live.is_empty() && want > 0 { Action::Create } else { Action::Keep };
        if want == 0 && live.is_empty() {
            continue;
        }
        let mut c = Change::new(Kind::Instances, role.as_str(), action, None);
        c.id = (!kept.is_empty()).then(|| ids(kept).join(","));
        c.role = Some(role);
        c = if action == Action::Create { Change { fixes, ..c } } else { c.with_fixes(fixes) };
        c.note = Some(format!("{want} wanted, {} running or stopped", live.len()));
        changes.push(c);
    }

    let expiry = match &spec.expires_at {
        Some(to) if !o.is_empty() && (o.expiry.untagged > 0 || o.expiry.values.iter().any(|v| v != to)) => {
            Some(ExpiryChange { from: o.expiry.earliest().map(str::to_string), to: to.clone() })
        }
        _ => None,
    };
    Ok(Plan { changes, expiry })
}
