//! The infra stage of `up`: discover, diff, then apply the typed plan as a fixed DAG.
//! Network, key pair, IAM and AMI lookup run concurrently; each role's instances launch in
//! one RunInstances once their dependencies exist; the critical path does not grow with the
//! node count. The ClientTokens (RunInstances, CreateRouteTable) are computed here, with
//! `plan::desired`, when the subnet or VPC they name is known: it may be created in this run.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::aws::{self, Ctx, LaunchTarget};
use crate::config::Spec;
use crate::hint;
use crate::ops::inventory::{Node, inventory};
use crate::plan::desired::{client_token, inline_policies, resource_token, stale_launch, successor_token};
use crate::plan::infra::{DefaultRoute, IamPlan, InstanceGroup, Removable, Removal};
use crate::plan::{Change, Depth, Hardening, InfraPlan, Summary, diff_infra, expiry};
use crate::reporter::Reporter;

#[derive(Debug, Clone, Serialize)]
pub struct InfraReport {
    /// False when the environment already matched the config and nothing was called.
    pub changed: bool,
    pub summary: Summary,
    pub changes: Vec<Change>,
    /// `tagstack:expires-at` of the environment, if it has one.
    pub expires_at: Option<String>,
    pub nodes: Vec<Node>,
    /// Workers the plan retires: drained and removed by `ops::retire` after the cluster stage,
    /// not by this stage.
    #[serde(skip)]
    pub retire: Vec<String>,
    /// What `up` changes after the cluster stage (`super::harden`); empty once done.
    #[serde(skip)]
    pub hardening: Hardening,
}

/// `ttl` is `up --ttl`: it (re)sets the expiry of the whole environment to now + ttl.
pub async fn run(aws: &aws::Aws, spec: &Spec, ttl: Option<Duration>, reporter: &dyn Reporter) -> Result<InfraReport> {
    reporter.start("discover", "discovering resources by tag");
    let observed = aws::discover(aws, &spec.id, &spec.timeouts, Depth::Full).await?;
    // This run's expiry: in the plan (re-tag what exists) and in every create call.
    let expires_at = expiry::resolve(ttl, spec.ttl, &observed.expiry, SystemTime::now());
    let infra = diff_infra(spec, &observed, expires_at.as_deref())?;
    let plan = infra.to_plan();
    let retire: Vec<String> = infra.instances.iter().flat_map(|g| g.retire.iter().cloned()).collect();
    reporter.finish(
        "discover",
        &format!("{} owned resources found", plan.changes.iter().filter(|c| c.id.is_some()).count()),
    );
    if plan.is_converged() {
        return Ok(InfraReport {
            changed: false,
            summary: plan.summary(),
            changes: plan.changes,
            expires_at,
            nodes: inventory(&observed.instances),
            retire,
            hardening: infra.hardening,
        });
    }
    let cx = Ctx::new(aws, &spec.id, spec.timeouts, reporter).expiring(expires_at.as_deref());
    apply(&cx, spec, &infra).await?;
    if let Some(e) = &plan.expiry {
        step(reporter, "expiry", &format!("set expiry to {}", e.to), aws::set_expiry(&cx, &observed, &e.to)).await?;
    }
    let instances = aws::discover_instances(aws, &spec.id, &spec.timeouts).await?;
    Ok(InfraReport {
        changed: true,
        summary: plan.summary(),
        changes: plan.changes,
        expires_at,
        nodes: inventory(&instances),
        retire,
        hardening: infra.hardening.clone(),
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

struct Network {
    subnets: Vec<String>,
    sg: String,
}

async fn network(cx: &Ctx<'_>, spec: &Spec, plan: &InfraPlan) -> Result<Network> {
    let r = cx.reporter;
    let vpc = &plan.vpc;
    let vpc_id = match &vpc.id {
        None => step(r, "vpc", &format!("create VPC {}", vpc.name), aws::create_vpc(cx, spec.network.vpc_cidr)).await?,
        Some(id) => id.clone(),
    };
    let vpc_id = vpc_id.as_str();
    // Nothing else waits for DNS hostnames (only the instances' names need them, long after),
    // so the attribute is set beside the subnets; a run killed before it leaves a fix the next
    // plan shows.
    let dns = async {
        if vpc.id.is_none() || vpc.fix.enable_dns_hostnames {
            step(r, "vpc", &format!("enable DNS hostnames on {vpc_id}"), aws::enable_dns_hostnames(cx, vpc_id)).await?;
        }
        anyhow::Ok(())
    };

    let subnets = futures_util::future::try_join_all(plan.subnets.iter().map(|s| async move {
        let (c, want) = (&s.subnet, &s.want);
        let key = format!("subnet/{}", want.cidr);
        let id = match &c.id {
            None => {
                step(r, &key, &format!("create subnet {}", c.name), aws::create_subnet(cx, &key, vpc_id, want)).await?
            }
            Some(id) => {
                if c.fix.map_public_ip {
                    step(r, &key, &format!("map public IPs in {id}"), aws::enable_map_public_ip(cx, &key, id)).await?;
                }
                id.clone()
            }
        };
        anyhow::Ok((want.cidr, id))
    }));
    let igw = async {
        let c = &plan.gateway;
        let id = match &c.id {
            None => {
                step(r, "igw", &format!("create internet gateway {}", c.name), aws::create_internet_gateway(cx, vpc_id))
                    .await?
            }
            Some(id) => id.clone(),
        };
        if c.id.is_none() || c.fix.attach {
            step(r, "igw", &format!("attach {id} to {vpc_id}"), aws::attach_internet_gateway(cx, &id, vpc_id)).await?;
        }
        anyhow::Ok(id)
    };
    let sg = async {
        let c = &plan.security_group;
        let (add, del) = (&c.fix.authorize, &c.fix.revoke);
        let id = match &c.id {
            None => {
                let id =
                    step(r, "sg", &format!("create security group {}", c.name), aws::create_security_group(cx, vpc_id))
                        .await?;
                step(r, "sg", &format!("allow ingress on {id}"), aws::authorize(cx, &id, add)).await?;
                id
            }
            Some(id) => {
                if !add.is_empty() {
                    step(r, "sg", &format!("allow {} rule(s) on {id}", add.len()), aws::authorize(cx, id, add)).await?;
                }
                if !del.is_empty() {
                    step(r, "sg", &format!("revoke {} rule(s) on {id}", del.len()), aws::revoke(cx, id, del)).await?;
                }
                id.clone()
            }
        };
        anyhow::Ok(id)
    };
    let rtb = async {
        let c = &plan.route_table;
        match &c.id {
            None => step(r, "rtb", &format!("create route table {}", c.name), route_table(cx, vpc_id)).await,
            Some(id) => Ok(id.clone()),
        }
    };
    let ((), subnet_ids, igw_id, sg_id, rtb_id) = tokio::try_join!(dns, subnets, igw, sg, rtb)?;

    // Route and associations need the gateway and the subnets; a new table gets both whole.
    let c = &plan.route_table;
    let created = c.id.is_none();
    let route = async {
        if created || c.fix.default_route.is_some() {
            let replace = matches!(c.fix.default_route, Some(DefaultRoute::Replace { .. }));
            let what = format!("route 0.0.0.0/0 to {igw_id}");
            step(r, "rtb", &what, aws::set_default_route(cx, &rtb_id, &igw_id, replace)).await?;
        }
        anyhow::Ok(())
    };
    // By CIDR: the plan names the config subnets to associate, the subnet step their ids.
    // Each association is its own call, independent of the route and of each other.
    let to_associate =
        subnet_ids.iter().filter(|(cidr, _)| created || c.fix.associate.contains(cidr)).map(|(_, id)| id);
    let associations = futures_util::future::try_join_all(to_associate.map(|sid| {
        let rtb_id = rtb_id.as_str();
        async move {
            let key = format!("rtb/{sid}");
            step(r, &key, &format!("associate {sid} with {rtb_id}"), aws::associate(cx, rtb_id, sid)).await
        }
    }));
    tokio::try_join!(route, associations)?;
    Ok(Network { subnets: subnet_ids.into_iter().map(|(_, id)| id).collect(), sg: sg_id })
}

async fn key_pair(cx: &Ctx<'_>, spec: &Spec, plan: &InfraPlan) -> Result<String> {
    let c = &plan.key_pair;
    let r = cx.reporter;
    if c.id.is_none() {
        step(r, "key", &format!("import key pair {}", c.name), aws::import_key_pair(cx, &spec.ssh.public_key)).await?;
    } else if c.fix.replace {
        step(r, "key", &format!("re-import key pair {}", c.name), async {
            aws::delete_key_pair(cx, "key", &c.name).await?;
            aws::import_key_pair(cx, &spec.ssh.public_key).await
        })
        .await?;
    }
    Ok(cx.id.key_pair_name())
}

/// A role, then its policies and its profile at once, then the profile's membership. The
/// profile waits for the role: a role name taken by someone else stops `up` before anything
/// of that name is made.
async fn iam_role(cx: &Ctx<'_>, iam: &IamPlan) -> Result<()> {
    let (name, role) = (&iam.name, iam.role);
    let r = cx.reporter;
    let key = format!("iam/{}", role.as_str());
    let key = key.as_str();
    let docs: BTreeMap<&str, &str> = inline_policies(role).into_iter().collect();
    let (role_change, profile) = (&iam.iam_role, &iam.profile);
    let create_role = async {
        if role_change.id.is_none() {
            step(r, key, &format!("create role {name}"), aws::create_role(cx, name)).await?;
        }
        anyhow::Ok(())
    };
    let profile_key = format!("{key}/profile");
    let create_profile = async {
        if profile.id.is_none() {
            step(r, &profile_key, &format!("create instance profile {name}"), aws::create_profile(cx, name)).await?;
        }
        for role in &profile.fix.remove_roles {
            step(
                r,
                &profile_key,
                &format!("remove role {role} from {name}"),
                aws::remove_role_from_profile(cx, name, role),
            )
            .await?;
        }
        anyhow::Ok(())
    };
    create_role.await?;
    // Each policy under its own key: the progress lines of concurrent steps stay apart.
    let puts = futures_util::future::try_join_all(role_change.fix.put_policies.iter().map(|p| {
        let doc = docs.get(p.as_str()).copied().unwrap_or("{}");
        async move {
            step(r, &format!("{key}/{p}"), &format!("put policy {p} on {name}"), aws::put_policy(cx, name, p, doc))
                .await
        }
    }));
    let deletes = futures_util::future::try_join_all(role_change.fix.delete_policies.iter().map(|p| async move {
        step(r, &format!("{key}/{p}"), &format!("delete policy {p} of {name}"), aws::delete_policy(cx, name, p)).await
    }));
    let membership = async {
        if let Some(role) = &profile.fix.add_role {
            step(r, key, &format!("add role {role} to {name}"), aws::add_role_to_profile(cx, name, role)).await?;
        }
        anyhow::Ok(())
    };
    let profile_then_membership = async {
        create_profile.await?;
        membership.await
    };
    tokio::try_join!(puts, deletes, profile_then_membership)?;
    Ok(())
}

/// What the instance groups launch into and with.
struct LaunchWith<'a> {
    spec: &'a Spec,
    subnet: &'a str,
    sg: &'a str,
    key_name: &'a str,
    ami: Option<&'a aws::Ami>,
}

/// Launch, start, then terminate, as the plan lists them; returns (started, ended) ids.
async fn instances(cx: &Ctx<'_>, g: &InstanceGroup, with: &LaunchWith<'_>) -> Result<(Vec<String>, Vec<String>)> {
    let r = cx.reporter;
    let role = g.role;
    let key = format!("nodes/{}", role.as_str());
    let mut started = Vec::new();
    if g.launch > 0 {
        let ami = with.ami.context("AMI was not resolved")?;
        // The profile `iam_role` made sure of (named, so its name is known without a lookup).
        let profile = cx.id.iam_name(role);
        let target = LaunchTarget {
            role,
            group: with.spec.group(role),
            count: g.launch,
            // Each attempt's own, set by `launch`.
            token: "",
            subnet_id: with.subnet,
            security_group_id: with.sg,
            key_name: with.key_name,
            profile_name: &profile,
            ami,
        };
        let what = format!("launch {} {} node(s)", g.launch, role.as_str());
        started.extend(step(r, &key, &what, launch(cx, &key, g, target)).await?);
    }
    if !g.start.is_empty() {
        step(r, &key, &format!("start {}", g.start.join(", ")), aws::start(cx, &key, &g.start)).await?;
        started.extend(g.start.iter().cloned());
    }
    if !g.terminate.is_empty() {
        step(r, &key, &format!("terminate {}", g.terminate.join(", ")), aws::terminate(cx, &key, &g.terminate)).await?;
    }
    Ok((started, g.terminate.clone()))
}

/// How many dead answers in a row one create rides out (one per generation of resources made
/// by the same token chain and deleted since: a scale down and up again, a `down` that stopped
/// half way, within the token's lifetime) before it gives up rather than loop.
const MAX_DEAD_ANSWERS: usize = 16;

/// RunInstances with the group's deterministic ClientToken; an answer naming instances that
/// are not new (terminated, shutting down, or already kept: the answer of the same token in
/// an earlier run, `plan::desired::stale_launch`) is followed by a launch of what is still
/// missing with the successor token (`successor_token`). Returns the new instances' ids.
async fn launch(cx: &Ctx<'_>, key: &str, g: &InstanceGroup, base: LaunchTarget<'_>) -> Result<Vec<String>> {
    // Known only now: the subnet may have been created in this run.
    // A replacement names the instances it replaces: the same counts as an earlier
    // scale-up would otherwise replay that launch's reservation.
    let mut token = if g.replacing.is_empty() {
        client_token(cx.id, g.role, base.subnet_id, g.kept.len(), g.launch)
    } else {
        resource_token(
            cx.id,
            &format!("replace/{}", g.role.as_str()),
            &format!("{}/{}", base.subnet_id, g.replacing.join(",")),
        )
    };
    let mut new = Vec::new();
    for _ in 0..MAX_DEAD_ANSWERS {
        let target = LaunchTarget { token: &token, count: g.launch - new.len(), ..base.clone() };
        let launched = aws::launch(cx, key, &target).await?;
        let stale = stale_launch(&launched, &g.kept);
        new.extend(launched.into_iter().map(|(id, _)| id).filter(|id| !stale.contains(id)));
        if stale.is_empty() || new.len() >= g.launch {
            return Ok(new);
        }
        cx.reporter.note(&format!(
            "EC2 answered the launch of {} {} node(s) with {} (terminated or already counted: the answer to the same ClientToken in an earlier run); launching {} again with a new token",
            target.count,
            g.role.as_str(),
            stale.join(", "),
            g.launch - new.len()
        ));
        token = successor_token(&token, &stale);
    }
    anyhow::bail!(
        "{MAX_DEAD_ANSWERS} launches of {} node(s) in a row were answered with terminated instances (ClientToken replays); the last token was {token}",
        g.role.as_str()
    )
}

/// CreateRouteTable with the deterministic ClientToken (environment + VPC); an answer naming a
/// route table that no longer exists (deleted by a `down` that stopped before the VPC:
/// `aws::route_table_exists`) is followed by a create with the successor token.
async fn route_table(cx: &Ctx<'_>, vpc_id: &str) -> Result<String> {
    let mut token = resource_token(cx.id, "rtb", vpc_id);
    for _ in 0..MAX_DEAD_ANSWERS {
        let id = aws::create_route_table(cx, vpc_id, &token).await?;
        if aws::route_table_exists(cx, &id).await? {
            return Ok(id);
        }
        cx.reporter.note(&format!(
            "EC2 answered the route table's create with {id}, which no longer exists (the answer to the same ClientToken in an earlier run); creating it again with a new token"
        ));
        token = successor_token(&token, &[id]);
    }
    anyhow::bail!(
        "{MAX_DEAD_ANSWERS} creates of the route table in {vpc_id} in a row were answered with route tables that no longer exist (ClientToken replays); the last token was {token}"
    )
}

async fn apply(cx: &Ctx<'_>, spec: &Spec, plan: &InfraPlan) -> Result<()> {
    let r = cx.reporter;
    let ami = async {
        if plan.needs_launch() {
            let (ami, choice, _) = step(r, "ami", "resolve AMI", crate::ops::bake::launch_image(cx, spec)).await?;
            if choice.baked {
                r.note(&format!("new nodes launch from {}: {}", choice.image_id, choice.why));
            }
            Ok(Some(ami))
        } else {
            Ok(None)
        }
    };
    let iam = futures_util::future::try_join_all(plan.iam.iter().map(|i| iam_role(cx, i)));
    let (net, key_name, _, ami, ()) =
        tokio::try_join!(network(cx, spec, plan), key_pair(cx, spec, plan), iam, ami, backup_bucket(cx, spec, plan))?;
    let subnet = net.subnets.first().context("no subnet to launch into")?;

    let with = LaunchWith { spec, subnet, sg: &net.sg, key_name: &key_name, ami: ami.as_ref() };
    let results = futures_util::future::try_join_all(plan.instances.iter().map(|g| instances(cx, g, &with))).await?;
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

/// The backup bucket: its own branch of the DAG (nothing waits for it, it waits for
/// nothing). Created, tagged, then every missing setting at once.
async fn backup_bucket(cx: &Ctx<'_>, spec: &Spec, plan: &InfraPlan) -> Result<()> {
    let Some(b) = &plan.backup_bucket else { return Ok(()) };
    let r = cx.reporter;
    let name = b.name.as_str();
    if b.id.is_none() {
        step(r, "backups", &format!("create bucket {name}"), aws::create_bucket(cx, name, &spec.region)).await?;
    }
    if b.fix != crate::plan::infra::BucketFix::default() {
        step(r, "backups", &format!("configure bucket {name}"), aws::configure_bucket(cx, name, &b.fix)).await?;
    }
    Ok(())
}

/// Owned resources the config no longer wants, and empty duplicates tagstack made; removed
/// last, once nothing depends on them.
async fn remove_extras(cx: &Ctx<'_>, plan: &InfraPlan) -> Result<()> {
    let r = cx.reporter;
    let heal = &cx.healing();
    for c in &plan.removals {
        let id = c.id.as_str();
        match c.what {
            Removable::Subnet => {
                step(r, "extra", &format!("delete subnet {id} (not in config)"), aws::delete_subnet(cx, "extra", id))
                    .await?;
            }
            Removable::InstanceProfile => {
                step(r, "extra", &format!("delete instance profile {id}"), aws::delete_profile(cx, id)).await?;
            }
            Removable::IamRole => {
                step(r, "extra", &format!("delete role {id}"), aws::delete_role(cx, id)).await?;
            }
            // Empty duplicates tagstack itself made (plan::diff's healing rule): nothing
            // depends on them, so they go without detaching or disassociating anything.
            Removable::Vpc => {
                let what = format!("delete duplicate VPC {id} (empty, made by tagstack)");
                let done = step(r, "heal", &what, aws::delete_vpc(heal, "heal", id)).await;
                refused_heal(cx, c, done.map(|_| ())).await?;
            }
            Removable::InternetGateway => {
                let what = format!("delete duplicate internet gateway {id} (unattached, made by tagstack)");
                let done = step(r, "heal", &what, aws::delete_internet_gateway(heal, "heal", id, &[])).await;
                refused_heal(cx, c, done.map(|_| ())).await?;
            }
            Removable::RouteTable => {
                let what = format!("delete duplicate route table {id} (unassociated, made by tagstack)");
                let done = step(r, "heal", &what, aws::delete_route_table(heal, "heal", id, &[])).await;
                refused_heal(cx, c, done.map(|_| ())).await?;
            }
            Removable::SecurityGroup => {
                let what = format!("delete duplicate security group {id} (unused, made by tagstack)");
                let done = step(r, "heal", &what, aws::delete_security_group(heal, "heal", id)).await;
                refused_heal(cx, c, done.map(|_| ())).await?;
            }
        }
    }
    Ok(())
}

/// A heal delete AWS refused with DependencyViolation (final at once: `aws::error::Phase::Heal`)
/// becomes an error that names the duplicate, the one kept, and what holds the duplicate:
/// resources without the environment's tags, which discovery does not see, so the plan judged
/// it empty. Other outcomes pass through.
async fn refused_heal(cx: &Ctx<'_>, c: &Removal, done: Result<()>) -> Result<()> {
    let Err(err) = done else { return Ok(()) };
    let refused = err
        .chain()
        .any(|e| e.downcast_ref::<aws::error::AwsError>().is_some_and(|a| a.code() == "DependencyViolation"));
    if !refused {
        return Err(err);
    }
    let (kind, holders) = match c.what {
        Removable::Vpc => ("VPC", aws::vpc_contents(cx, &c.id).await),
        Removable::SecurityGroup => ("security group", aws::group_users(cx, &c.id).await),
        Removable::InternetGateway => ("internet gateway", Vec::new()),
        Removable::RouteTable => ("route table", Vec::new()),
        Removable::Subnet | Removable::IamRole | Removable::InstanceProfile => return Err(err),
    };
    let id = &c.id;
    let kept = c.kept.as_deref().unwrap_or("?");
    let held = if holders.is_empty() { String::new() } else { format!("; in it:\n  {}", holders.join("\n  ")) };
    let err = err.context(format!(
        "duplicate {kind} {id} (made by tagstack beside {kept}, the {kind} this environment uses) cannot be deleted: AWS refuses while it holds resources that do not carry the environment's tags (discovery does not see them, so the plan judged {id} empty){held}"
    ));
    Err(hint::attach(
        err,
        format!(
            "tagstack never deletes what it does not own: delete or move what is in {id} if nothing needs it (then `tagstack up` deletes {id}), or delete {id} yourself; {kept} is the one tagstack keeps"
        ),
    ))
}
