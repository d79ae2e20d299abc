//! `tagstack down`: delete everything the environment owns, in reverse dependency order.
//! Only what discovery proved we own is touched. Independent branches (network, key pair,
//! IAM) continue when one fails, so one stuck resource does not leak the others; every
//! failure is reported.

use anyhow::{Result, bail};
use serde::Serialize;

use crate::aws::{self, Ctx};
use crate::plan::{Change, Kind, Observed, Plan, teardown};
use crate::reporter::Reporter;

#[derive(Debug, Clone, Serialize)]
pub struct Deletion {
    #[serde(flatten)]
    pub change: Change,
    /// "deleted", "already gone", "failed: ..." or "not attempted: ..." (a stage before it
    /// failed, e.g. the subnets and VPC behind a gateway that did not detach).
    pub outcome: String,
}

const NOT_ATTEMPTED: &str = "not attempted";

impl Deletion {
    fn failed(&self) -> bool {
        self.outcome.starts_with("failed")
    }

    fn not_attempted(&self) -> bool {
        self.outcome.starts_with(NOT_ATTEMPTED)
    }

    fn label(&self) -> String {
        format!("{} {}", self.change.kind.as_str(), self.change.id.as_deref().unwrap_or(&self.change.name))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    pub deleted: Vec<Deletion>,
    pub failed: usize,
    /// Resources left because a stage before theirs failed (listed in `deleted` with an
    /// outcome starting "not attempted").
    #[serde(skip_serializing_if = "is_zero")]
    pub not_attempted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The teardown plan, for the confirmation prompt.
pub async fn preview(aws: &aws::Aws, spec: &crate::config::Spec) -> Result<(Observed, Plan)> {
    let observed = aws::discover(aws, spec).await?;
    let plan = teardown(&observed);
    Ok((observed, plan))
}

pub async fn down(cx: &Ctx<'_>, observed: &Observed, plan: &Plan) -> Result<DownReport> {
    let r = cx.reporter;
    let mut deleted = Vec::new();
    let record = |deleted: &mut Vec<Deletion>, c: &Change, res: &Result<&'static str>| {
        let outcome = match res {
            Ok(s) => (*s).to_string(),
            Err(e) => format!("failed: {e:#}"),
        };
        deleted.push(Deletion { change: c.clone(), outcome });
    };

    // 1. Instances, all roles in one call, waited until terminated: everything else depends on them.
    let ids: Vec<String> = plan
        .of_kind(Kind::Instances)
        .flat_map(|c| {
            c.id.as_deref().unwrap_or("").split(',').filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>()
        })
        .collect();
    if !ids.is_empty() {
        let res = async {
            r.start("nodes", &format!("terminate {} instance(s)", ids.len()));
            aws::terminate(cx, "nodes", &ids).await?;
            r.update("nodes", &format!("wait for {} instance(s) to terminate", ids.len()));
            aws::wait_terminated(cx, &ids).await?;
            r.finish("nodes", &format!("terminated {} instance(s)", ids.len()));
            anyhow::Ok("deleted")
        }
        .await;
        if res.is_err() {
            r.fail("nodes", "terminate instances: failed");
        }
        for c in plan.of_kind(Kind::Instances) {
            record(&mut deleted, c, &res);
        }
        if let Err(e) = res {
            // The network cannot go while instances hold it; IAM could, but leave it so the
            // next `down` finds a consistent environment to finish.
            let left: Vec<String> = plan
                .changes
                .iter()
                .filter(|c| c.kind != Kind::Instances)
                .map(|c| format!("{} {}", c.kind.as_str(), c.id.as_deref().unwrap_or(&c.name)))
                .collect();
            let left = if left.is_empty() { String::new() } else { format!("\n  not attempted: {}", left.join(", ")) };
            return Err(
                e.context(format!("terminating instances; nothing else was deleted, run `tagstack down` again{left}"))
            );
        }
    }

    // Volumes hold nothing else up, so they go on their own branch.
    let (volumes, net, key, iam) = tokio::join!(
        all(r, cx, observed, plan.of_kind(Kind::Volume).collect()),
        network(cx, observed, plan),
        key_pairs(cx, plan),
        iam(cx, plan)
    );
    deleted.extend(volumes);
    deleted.extend(net);
    deleted.extend(key);
    deleted.extend(iam);
    let failed = deleted.iter().filter(|d| d.failed()).count();
    let not_attempted = deleted.iter().filter(|d| d.not_attempted()).count();
    Ok(DownReport { deleted, failed, not_attempted })
}

async fn run_one(
    r: &dyn Reporter,
    c: &Change,
    what: String,
    f: impl std::future::Future<Output = Result<&'static str>>,
) -> Deletion {
    let key = format!("{}/{}", c.kind.as_str(), c.id.as_deref().unwrap_or(&c.name));
    r.start(&key, &what);
    let res = f.await;
    match &res {
        Ok(o) => r.finish(&key, &format!("{what}: {o}")),
        Err(_) => r.fail(&key, &format!("{what}: failed")),
    }
    Deletion { change: c.clone(), outcome: res.map_or_else(|e| format!("failed: {e:#}"), str::to_string) }
}

async fn all(r: &dyn Reporter, cx: &Ctx<'_>, observed: &Observed, changes: Vec<&Change>) -> Vec<Deletion> {
    futures_util::future::join_all(changes.into_iter().map(|c| async move {
        let id = c.id.clone().unwrap_or_default();
        let key = format!("{}/{id}", c.kind.as_str());
        let what = format!("delete {} {id}", c.kind.as_str());
        let key_ref = key.as_str();
        match c.kind {
            Kind::SecurityGroup => run_one(r, c, what, aws::delete_security_group(cx, key_ref, &id)).await,
            Kind::RouteTable => {
                let assocs = observed
                    .route_tables
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| t.associations.clone())
                    .unwrap_or_default();
                run_one(r, c, what, aws::delete_route_table(cx, key_ref, &id, &assocs)).await
            }
            Kind::InternetGateway => {
                let vpcs = observed
                    .internet_gateways
                    .iter()
                    .find(|g| g.id == id)
                    .map(|g| g.attached_vpcs.clone())
                    .unwrap_or_default();
                run_one(r, c, what, aws::delete_internet_gateway(cx, key_ref, &id, &vpcs)).await
            }
            Kind::Subnet => run_one(r, c, what, aws::delete_subnet(cx, key_ref, &id)).await,
            Kind::Vpc => run_one(r, c, what, aws::delete_vpc(cx, key_ref, &id)).await,
            Kind::KeyPair => run_one(r, c, what, aws::delete_key_pair(cx, key_ref, &c.name)).await,
            Kind::InstanceProfile => run_one(r, c, what, aws::delete_profile(cx, &id)).await,
            Kind::IamRole => run_one(r, c, what, aws::delete_role(cx, &id)).await,
            Kind::Volume => run_one(r, c, what, aws::delete_volume(cx, key_ref, &id)).await,
            Kind::NetworkInterface => run_one(r, c, what, aws::delete_network_interface(cx, key_ref, &id)).await,
            Kind::Instances => Deletion { change: c.clone(), outcome: "deleted".into() },
        }
    }))
    .await
}

/// Left-over network interfaces first (one holds its subnet and security groups), then
/// security groups, route tables and gateways, then subnets, then the VPC; a stage runs only
/// if the one before it fully succeeded (otherwise it would only time out).
async fn network(cx: &Ctx<'_>, observed: &Observed, plan: &Plan) -> Vec<Deletion> {
    let stages: [&[Kind]; 4] = [
        &[Kind::NetworkInterface],
        &[Kind::SecurityGroup, Kind::RouteTable, Kind::InternetGateway],
        &[Kind::Subnet],
        &[Kind::Vpc],
    ];
    let mut out = Vec::new();
    let mut blocked_by: Option<String> = None;
    for kinds in stages {
        let changes: Vec<&Change> = plan.changes.iter().filter(|c| kinds.contains(&c.kind)).collect();
        if let Some(why) = &blocked_by {
            // Left because of an earlier stage: said so, so the report names everything left.
            out.extend(changes.into_iter().map(|c| {
                cx.reporter.note(&format!(
                    "{} {}: {NOT_ATTEMPTED} (behind {why})",
                    c.kind.as_str(),
                    c.id.as_deref().unwrap_or(&c.name)
                ));
                Deletion { change: c.clone(), outcome: format!("{NOT_ATTEMPTED}: behind the failed {why}") }
            }));
            continue;
        }
        let res = all(cx.reporter, cx, observed, changes).await;
        let failed: Vec<String> = res.iter().filter(|d| d.failed()).map(Deletion::label).collect();
        out.extend(res);
        if !failed.is_empty() {
            blocked_by = Some(failed.join(", "));
        }
    }
    out
}

async fn key_pairs(cx: &Ctx<'_>, plan: &Plan) -> Vec<Deletion> {
    all(cx.reporter, cx, &Observed::default(), plan.of_kind(Kind::KeyPair).collect()).await
}

/// Profiles before roles: a role still in a profile cannot be deleted.
async fn iam(cx: &Ctx<'_>, plan: &Plan) -> Vec<Deletion> {
    let mut out = all(cx.reporter, cx, &Observed::default(), plan.of_kind(Kind::InstanceProfile).collect()).await;
    out.extend(all(cx.reporter, cx, &Observed::default(), plan.of_kind(Kind::IamRole).collect()).await);
    out
}

/// Error for a `down` that left something behind.
pub fn check(report: &DownReport) -> Result<()> {
    if report.failed > 0 {
        let names: Vec<String> =
            report.deleted.iter().filter(|d| d.failed()).map(|d| format!("{}: {}", d.label(), d.outcome)).collect();
        let left: Vec<String> = report.deleted.iter().filter(|d| d.not_attempted()).map(Deletion::label).collect();
        let left = if left.is_empty() {
            String::new()
        } else {
            format!("\n{} resource(s) not attempted because of it:\n  {}", left.len(), left.join("\n  "))
        };
        bail!(
            "{} resource(s) could not be deleted:\n  {}{left}\n  hint: run `tagstack down` again; it only retries what is left",
            report.failed,
            names.join("\n  ")
        );
    }
    Ok(())
}
