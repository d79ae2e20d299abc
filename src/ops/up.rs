//! `tagstack up` for the infra stage: discover, diff, then apply the plan as a fixed DAG.
//! Network, key pair, IAM and AMI lookup run concurrently; each role's instances launch in
//! one RunInstances once their dependencies exist; the critical path does not grow with the
//! node count.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use super::inventory::{Node, inventory};
use crate::aws::{self, Ctx, LaunchTarget};
use crate::config::{NodeRole, Spec};
use crate::plan::desired::{ingress_rules, inline_policies};
use crate::plan::{Action, Change, Fix, Kind, Plan, Summary, diff, expiry};
use crate::reporter::Reporter;

#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// False when the environment already matched the config and nothing was called.
    pub changed: bool,
    pub summary: Summary,
    pub changes: Vec<Change>,
    /// `tagstack:expires-at` of the environment, if it has one.
    pub expires_at: Option<String>,
    pub nodes: Vec<Node>,
}

/// `ttl` is `up --ttl`: it (re)sets the expiry of the whole environment to now + ttl.
pub async fn up(aws: &aws::Aws, spec: &Spec, ttl: Option<Duration>, reporter: &dyn Reporter) -> Result<UpReport> {
    reporter.start("discover", "discovering resources by tag");
    let observed = aws::discover(aws, spec).await?;
    let mut spec = spec.clone();
    spec.expires_at = expiry::resolve(ttl, spec.ttl, &observed.expiry, SystemTime::now());
    let spec = &spec;
    let plan = diff(spec, &observed)?;
    reporter.finish(
        "discover",
        &format!("{} owned resources found", plan.changes.iter().filter(|c| c.id.is_some()).count()),
    );
    if plan.is_converged() {
        return Ok(UpReport {
            changed: false,
            summary: plan.summary(),
            changes: plan.changes,
            expires_at: spec.expires_at.clone(),
            nodes: inventory(&observed.instances),
        });
    }
    let cx = Ctx { aws, spec, reporter };
    apply(&cx, &plan).await?;
    if let Some(e) = &plan.expiry {
        step(reporter, "expiry", &format!("set expiry to {}", e.to), aws::set_expiry(&cx, &observed, &e.to)).await?;
    }
    let instances = aws::discover_instances(aws, spec).await?;
    Ok(UpReport {
        changed: true,
        summary: plan.summary(),
        changes: plan.changes,
        expires_at: spec.expires_at.clone(),
        nodes: inventory(&instances),
    })
}

/// Runs `f` between a reporter start and finish/fail for `key`.
async fn step<T>(
    r: &dyn Reporter,
    key: &str,
    what: &str,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    r.start(key, what);
    match f.await {
        Ok(v) => {
            r.finish(key, what);
            Ok(v)
        }
        Err(e) => {
            r.fail(key, &format!("{what}: failed"));
            Err(e)
        }
    }
}

fn existing(c: &Change) -> Option<String> {
    c.id.clone().filter(|_| c.action != Action::Create)
}

struct Network {
    subnets: Vec<String>,
    sg: String,
}

async fn network(cx: &Ctx<'_>, plan: &Plan) -> Result<Network> {
    let r = cx.reporter;
    let vpc = plan.one(Kind::Vpc).context("plan has no VPC")?;
    let vpc_id = match existing(vpc) {
        None => step(r, "vpc", &format!("create VPC {}", vpc.name), aws::create_vpc(cx)).await?,
        Some(id) => {
            if vpc.fixes.contains(&Fix::EnableDnsHostnames) {
                step(r, "vpc", &format!("enable DNS hostnames on {id}"), aws::enable_dns_hostnames(cx, &id)).await?;
            }
            id
        }
    };
    let vpc_id = vpc_id.as_str();

    let subnet_changes: Vec<&Change> = plan.of_kind(Kind::Subnet).filter(|c| c.action != Action::Delete).collect();
    let subnets = futures_util::future::try_join_all(subnet_changes.iter().zip(&cx.spec.network.subnets).map(
        |(c, want)| async move {
            let key = format!("subnet/{}", want.cidr);
            match existing(c) {
                None => {
                    step(r, &key, &format!("create subnet {}", c.name), aws::create_subnet(cx, &key, vpc_id, want))
                        .await
                }
                Some(id) => {
                    if c.fixes.contains(&Fix::EnableMapPublicIp) {
                        step(r, &key, &format!("map public IPs in {id}"), aws::enable_map_public_ip(cx, &key, &id))
                            .await?;
                    }
                    Ok(id)
                }
            }
        },
    ));
    let igw = async {
        let c = plan.one(Kind::InternetGateway).context("plan has no internet gateway")?;
        let id = match existing(c) {
            None => {
                step(r, "igw", &format!("create internet gateway {}", c.name), aws::create_internet_gateway(cx, vpc_id))
                    .await?
            }
            Some(id) => id,
        };
        if c.action == Action::Create || c.fixes.contains(&Fix::AttachGateway) {
            step(r, "igw", &format!("attach {id} to {vpc_id}"), aws::attach_internet_gateway(cx, &id, vpc_id)).await?;
        }
        anyhow::Ok(id)
    };
    let sg = async {
        let c = plan.one(Kind::SecurityGroup).context("plan has no security group")?;
        let id = match existing(c) {
            None => {
                let id =
                    step(r, "sg", &format!("create security group {}", c.name), aws::create_security_group(cx, vpc_id))
                        .await?;
                step(r, "sg", &format!("allow ingress on {id}"), aws::authorize(cx, &id, &ingress_rules(cx.spec)))
                    .await?;
                id
            }
            Some(id) => {
                let add: Vec<_> = c
                    .fixes
                    .iter()
                    .filter_map(|f| if let Fix::Authorize(x) = f { Some(x.clone()) } else { None })
                    .collect();
                let del: Vec<_> = c
                    .fixes
                    .iter()
                    .filter_map(|f| if let Fix::Revoke(x) = f { Some(x.clone()) } else { None })
                    .collect();
                if !add.is_empty() {
                    step(r, "sg", &format!("allow {} rule(s) on {id}", add.len()), aws::authorize(cx, &id, &add))
                        .await?;
                }
                if !del.is_empty() {
                    step(r, "sg", &format!("revoke {} rule(s) on {id}", del.len()), aws::revoke(cx, &id, &del)).await?;
                }
                id
            }
        };
        anyhow::Ok(id)
    };
    let rtb = async {
        let c = plan.one(Kind::RouteTable).context("plan has no route table")?;
        match existing(c) {
            None => {
                step(r, "rtb", &format!("create route table {}", c.name), aws::create_route_table(cx, vpc_id)).await
            }
            Some(id) => Ok(id),
        }
    };
    let (subnet_ids, igw_id, sg_id, rtb_id) = tokio::try_join!(subnets, igw, sg, rtb)?;

    // Route and associations need the gateway and the subnets.
    let c = plan.one(Kind::RouteTable).context("plan has no route table")?;
    let set_route = c.action == Action::Create || c.fixes.iter().any(|f| matches!(f, Fix::SetDefaultRoute { .. }));
    if set_route {
        let replace = c.fixes.iter().any(|f| matches!(f, Fix::SetDefaultRoute { current: Some(_) }));
        step(r, "rtb", &format!("route 0.0.0.0/0 to {igw_id}"), aws::set_default_route(cx, &rtb_id, &igw_id, replace))
            .await?;
    }
    let to_associate: Vec<&String> = if c.action == Action::Create {
        subnet_ids.iter().collect()
    } else {
        cx.spec
            .network
            .subnets
            .iter()
            .zip(&subnet_ids)
            .filter(|(want, _)| c.fixes.contains(&Fix::Associate { subnet: want.cidr.to_string() }))
            .map(|(_, id)| id)
            .collect()
    };
    for sid in to_associate {
        step(r, "rtb", &format!("associate {sid} with {rtb_id}"), aws::associate(cx, &rtb_id, sid)).await?;
    }
    Ok(Network { subnets: subnet_ids, sg: sg_id })
}

async fn key_pair(cx: &Ctx<'_>, plan: &Plan) -> Result<String> {
    let c = plan.one(Kind::KeyPair).context("plan has no key pair")?;
    let r = cx.reporter;
    match existing(c) {
        None => {
            step(r, "key", &format!("import key pair {}", c.name), aws::import_key_pair(cx)).await?;
        }
        Some(_) if c.fixes.contains(&Fix::ReplaceKey) => {
            step(r, "key", &format!("re-import key pair {}", c.name), async {
                aws::delete_key_pair(cx, "key", &c.name).await?;
                aws::import_key_pair(cx).await
            })
            .await?;
        }
        Some(_) => {}
    }
    Ok(cx.spec.key_pair_name())
}

async fn iam_role(cx: &Ctx<'_>, plan: &Plan, role: NodeRole) -> Result<String> {
    let name = cx.spec.iam_name(role);
    let r = cx.reporter;
    let key = format!("iam/{}", role.as_str());
    let docs: BTreeMap<&str, &str> = inline_policies(role).into_iter().collect();
    if let Some(c) = plan.of_kind(Kind::IamRole).find(|c| c.name == name) {
        if c.action == Action::Create {
            step(r, &key, &format!("create role {name}"), aws::create_role(cx, &name)).await?;
        }
        for f in &c.fixes {
            match f {
                Fix::PutPolicy { name: p } => {
                    let doc = docs.get(p.as_str()).copied().unwrap_or("{}");
                    step(r, &key, &format!("put policy {p} on {name}"), aws::put_policy(cx, &name, p, doc)).await?;
                }
                Fix::DeletePolicy { name: p } => {
                    step(r, &key, &format!("delete policy {p} of {name}"), aws::delete_policy(cx, &name, p)).await?;
                }
                _ => {}
            }
        }
    }
    if let Some(c) = plan.of_kind(Kind::InstanceProfile).find(|c| c.name == name) {
        if c.action == Action::Create {
            step(r, &key, &format!("create instance profile {name}"), aws::create_profile(cx, &name)).await?;
        }
        for f in &c.fixes {
            match f {
                Fix::AddRole { role } => {
                    step(r, &key, &format!("add role {role} to {name}"), aws::add_role_to_profile(cx, &name, role))
                        .await?;
                }
                Fix::RemoveRole { role } => {
                    step(
                        r,
                        &key,
                        &format!("remove role {role} from {name}"),
                        aws::remove_role_from_profile(cx, &name, role),
                    )
                    .await?;
                }
                _ => {}
            }
        }
    }
    Ok(name)
}

async fn apply(cx: &Ctx<'_>, plan: &Plan) -> Result<()> {
    let r = cx.reporter;
    let needs_launch = plan.of_kind(Kind::Instances).any(|c| c.fixes.iter().any(|f| matches!(f, Fix::Launch { .. })));
    let ami = async {
        if needs_launch { step(r, "ami", "resolve AMI", aws::resolve_ami(cx)).await.map(Some) } else { Ok(None) }
    };
    let (net, key_name, cp_profile, worker_profile, ami) = tokio::try_join!(
        network(cx, plan),
        key_pair(cx, plan),
        iam_role(cx, plan, NodeRole::ControlPlane),
        iam_role(cx, plan, NodeRole::Worker),
        ami,
    )?;
    let subnet = net.subnets.first().context("no subnet to launch into")?;

    let groups = plan.of_kind(Kind::Instances).filter_map(|c| Some((c, c.role?)));
    let launches = groups.map(|(c, role)| {
        let profile = if role == NodeRole::ControlPlane { &cp_profile } else { &worker_profile };
        let (ami, key_name, sg) = (ami.as_ref(), &key_name, &net.sg);
        async move {
            let key = format!("nodes/{}", role.as_str());
            let kept: Vec<String> =
                c.id.as_deref().map(|s| s.split(',').map(str::to_string).collect()).unwrap_or_default();
            let mut started = Vec::new();
            let mut ended = Vec::new();
            for f in &c.fixes {
                match f {
                    Fix::Launch { count } => {
                        let ami = ami.context("AMI was not resolved")?;
                        let target = LaunchTarget {
                            role,
                            count: *count,
                            existing: kept.len(),
                            subnet_id: subnet,
                            security_group_id: sg,
                            key_name,
                            profile_name: profile,
                            ami,
                        };
                        let ids = step(
                            r,
                            &key,
                            &format!("launch {count} {} node(s)", role.as_str()),
                            aws::launch(cx, &key, &target),
                        )
                        .await?;
                        started.extend(ids);
                    }
                    Fix::Start { ids } => {
                        step(r, &key, &format!("start {}", ids.join(", ")), aws::start(cx, &key, ids)).await?;
                        started.extend(ids.iter().cloned());
                    }
                    Fix::Terminate { ids } => {
                        step(r, &key, &format!("terminate {}", ids.join(", ")), aws::terminate(cx, &key, ids)).await?;
                        ended.extend(ids.iter().cloned());
                    }
                    _ => {}
                }
            }
            anyhow::Ok((started, ended))
        }
    });
    let results = futures_util::future::try_join_all(launches).await?;
    let started: Vec<String> = results.iter().flat_map(|(s, _)| s.clone()).collect();
    let ended: Vec<String> = results.iter().flat_map(|(_, e)| e.clone()).collect();
    tokio::try_join!(
        async {
            if started.is_empty() {
                Ok(())
            } else {
                step(r, "nodes", &format!("wait for {} node(s) to run", started.len()), aws::wait_running(cx, &started))
                    .await
            }
        },
        async {
            if ended.is_empty() {
                Ok(())
            } else {
                step(
                    r,
                    "nodes-ended",
                    &format!("wait for {} node(s) to terminate", ended.len()),
                    aws::wait_terminated(cx, &ended),
                )
                .await
            }
        },
    )?;
    remove_extras(cx, plan).await
}

/// Owned resources the config no longer wants, and empty duplicates tagstack made; removed
/// last, once nothing depends on them.
async fn remove_extras(cx: &Ctx<'_>, plan: &Plan) -> Result<()> {
    let r = cx.reporter;
    for c in plan.changes.iter().filter(|c| c.action == Action::Delete) {
        let id = c.id.clone().unwrap_or_default();
        match c.kind {
            Kind::Subnet => {
                step(r, "extra", &format!("delete subnet {id} (not in config)"), aws::delete_subnet(cx, "extra", &id))
                    .await?;
            }
            Kind::InstanceProfile => {
                step(r, "extra", &format!("delete instance profile {id}"), aws::delete_profile(cx, &id)).await?;
            }
            Kind::IamRole => {
                step(r, "extra", &format!("delete role {id}"), aws::delete_role(cx, &id)).await?;
            }
            // Empty duplicates tagstack itself made (plan::diff's healing rule): nothing
            // depends on them, so they go without detaching or disassociating anything.
            Kind::Vpc => {
                let what = format!("delete duplicate VPC {id} (empty, made by tagstack)");
                step(r, "heal", &what, aws::delete_vpc(cx, "heal", &id)).await?;
            }
            Kind::InternetGateway => {
                let what = format!("delete duplicate internet gateway {id} (unattached, made by tagstack)");
                step(r, "heal", &what, aws::delete_internet_gateway(cx, "heal", &id, &[])).await?;
            }
            Kind::RouteTable => {
                let what = format!("delete duplicate route table {id} (unassociated, made by tagstack)");
                step(r, "heal", &what, aws::delete_route_table(cx, "heal", &id, &[])).await?;
            }
            Kind::SecurityGroup => {
                let what = format!("delete duplicate security group {id} (unused, made by tagstack)");
                step(r, "heal", &what, aws::delete_security_group(cx, "heal", &id)).await?;
            }
            _ => {}
        }
    }
    Ok(())
}
