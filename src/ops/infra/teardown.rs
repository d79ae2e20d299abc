//! Runs a [`Teardown`] exactly as the plan lists it: `first` (the instances), then every step as
//! soon as the steps it names succeeded, all others concurrently; a step behind a failure is
//! not attempted and says behind which. Owns no order (that is `plan::teardown`) and no retry
//! decision (that is `aws::retry`).

use anyhow::Result;
use futures_util::future::{BoxFuture, FutureExt, Shared, join_all};

use crate::aws::{self, Ctx};
use crate::ops::advice::{self, Command};
use crate::plan::{Change, Op, Step, Teardown};

/// What became of one plan entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// "deleted" or "already gone".
    Done(&'static str),
    Failed(String),
    /// Not attempted because these entries (labels) failed before it.
    Behind(Vec<String>),
}

impl std::fmt::Display for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fate::Done(o) => write!(f, "{o}"),
            Fate::Failed(e) => write!(f, "failed: {e}"),
            Fate::Behind(why) => write!(f, "{NOT_ATTEMPTED}: behind the failed {}", why.join(", ")),
        }
    }
}

impl serde::Serialize for Fate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How one step ended, as the steps after it see it.
#[derive(Debug, Clone)]
enum Ended {
    Ok(&'static str),
    Failed { error: String, label: String },
    Behind(Vec<String>),
}

pub fn label(c: &Change) -> String {
    format!("{} {}", c.kind.as_str(), c.id.as_deref().unwrap_or(&c.name))
}

/// Runs `first`; an error there ends the teardown (nothing else was attempted). Otherwise
/// returns the fate of every entry in the plan's order of entries.
pub async fn run(cx: &Ctx<'_>, t: &Teardown) -> Result<Vec<Fate>> {
    let mut fates: Vec<Option<Fate>> = vec![None; t.changes.len()];
    if let Some(first) = &t.first {
        terminate(cx, first).await.map_err(|e| {
            // The network cannot go while instances hold it; IAM could, but stays so that the
            // next `down` finds a consistent environment to finish.
            let left: Vec<String> = t
                .changes
                .iter()
                .enumerate()
                .filter(|(i, _)| !first.changes.contains(i))
                .map(|(_, c)| label(c))
                .collect();
            let left = if left.is_empty() { String::new() } else { format!("\n  not attempted: {}", left.join(", ")) };
            e.context(format!("terminating instances; nothing else was deleted, run `tagstack down` again{left}"))
        })?;
        for &i in &first.changes {
            fates[i] = Some(Fate::Done("deleted"));
        }
    }
    let ended = run_steps(cx, t).await;
    for (step, end) in t.steps.iter().zip(ended) {
        for &i in &step.changes {
            // An entry's fate is its first failure, else the last of its steps.
            if matches!(fates[i], Some(Fate::Failed(_) | Fate::Behind(_))) {
                continue;
            }
            fates[i] = Some(match end.clone() {
                Ended::Ok(o) => Fate::Done(o),
                Ended::Failed { error, .. } => Fate::Failed(error),
                Ended::Behind(why) => Fate::Behind(why),
            });
        }
    }
    Ok(fates.into_iter().map(|f| f.unwrap_or(Fate::Done("deleted"))).collect())
}

async fn terminate(cx: &Ctx<'_>, first: &Step) -> Result<()> {
    let Op::Terminate { ids } = &first.op else { return Ok(()) };
    let r = cx.reporter;
    let res = async {
        r.start("nodes", &format!("terminate {} instance(s)", ids.len()));
        aws::terminate(cx, "nodes", ids).await?;
        r.update("nodes", &format!("wait for {} instance(s) to terminate", ids.len()));
        aws::wait_terminated(cx, ids).await?;
        r.finish("nodes", &format!("terminated {} instance(s)", ids.len()));
        anyhow::Ok(())
    }
    .await;
    if res.is_err() {
        r.fail("nodes", "terminate instances: failed");
    }
    res
}

/// Every step as a shared future that first awaits the steps it names.
async fn run_steps(cx: &Ctx<'_>, t: &Teardown) -> Vec<Ended> {
    let mut futures: Vec<Shared<BoxFuture<'_, Ended>>> = Vec::with_capacity(t.steps.len());
    for (i, step) in t.steps.iter().enumerate() {
        // A step may wait only for earlier ones (plan::teardown builds them so, its tests check
        // it); one naming a later step is a broken plan and is not run, rather than run early.
        let deps: Option<Vec<_>> = step.after.iter().map(|&d| futures.get(d).cloned()).collect();
        let f = async move {
            let Some(deps) = deps else {
                let label = step.changes.first().and_then(|&c| t.changes.get(c)).map(label).unwrap_or_default();
                return Ended::Failed { error: format!("step {i} waits for a later step"), label };
            };
            let mut behind: Vec<String> = Vec::new();
            for end in join_all(deps).await {
                match end {
                    Ended::Ok(_) => {}
                    Ended::Failed { label, .. } => behind.push(label),
                    Ended::Behind(why) => behind.extend(why),
                }
            }
            let mut unique: Vec<String> = Vec::new();
            for l in behind {
                if !unique.contains(&l) {
                    unique.push(l);
                }
            }
            run_step(cx, t, i, step, unique).await
        };
        futures.push(f.boxed().shared());
    }
    join_all(futures).await
}

/// Reporter key and text of an entry: one line per resource, however many steps it takes.
fn key_and_what(c: &Change) -> (String, String) {
    let id = c.id.clone().unwrap_or_default();
    (format!("{}/{id}", c.kind.as_str()), format!("delete {} {id}", c.kind.as_str()))
}

async fn run_step(cx: &Ctx<'_>, t: &Teardown, index: usize, step: &Step, behind: Vec<String>) -> Ended {
    let r = cx.reporter;
    let Some(&change) = step.changes.first() else { return Ended::Ok("deleted") };
    let c = &t.changes[change];
    let (key, what) = key_and_what(c);
    let first = !t.steps[..index].iter().any(|s| s.changes.contains(&change));
    let last = !t.steps[index + 1..].iter().any(|s| s.changes.contains(&change));
    if !behind.is_empty() {
        let why = behind.join(", ");
        if first {
            r.note(&format!("{}: {NOT_ATTEMPTED} (behind {why})", label(c)));
        } else {
            r.fail(&key, &format!("{what}: {NOT_ATTEMPTED} (behind {why})"));
        }
        return Ended::Behind(behind);
    }
    if first {
        r.start(&key, &what);
    }
    let k = key.as_str();
    let res = match &step.op {
        Op::Terminate { .. } => Ok("deleted"),
        Op::DeleteVolume { id } => aws::delete_volume(cx, k, id).await,
        Op::DeleteNetworkInterface { id } => aws::delete_network_interface(cx, k, id).await,
        Op::DeleteKeyPair { name } => aws::delete_key_pair(cx, k, name).await,
        Op::DeleteSecurityGroup { id } => aws::delete_security_group(cx, k, id).await,
        Op::DisassociateRouteTable { id, associations } => aws::disassociate_route_table(cx, k, id, associations).await,
        Op::DeleteRouteTable { id } => aws::delete_unassociated_route_table(cx, k, id).await,
        Op::DetachInternetGateway { id, vpcs } => aws::detach_internet_gateway(cx, k, id, vpcs).await,
        Op::DeleteInternetGateway { id } => aws::delete_detached_internet_gateway(cx, k, id).await,
        Op::DeleteSubnet { id } => aws::delete_subnet(cx, k, id).await,
        Op::DeleteVpc { id } => aws::delete_vpc(cx, k, id).await,
        Op::EmptyInstanceProfile { name, roles } => aws::empty_profile(cx, name, roles).await,
        Op::DeleteInstanceProfile { name } => aws::delete_empty_profile(cx, name).await,
        Op::StripRole { name } => aws::strip_role(cx, name).await,
        Op::DeleteRole { name } => aws::delete_stripped_role(cx, name).await,
        Op::DeleteBucket { name } => aws::delete_bucket(cx, name).await,
    };
    match res {
        Ok(o) if last => {
            r.finish(&key, &format!("{what}: {o}"));
            Ended::Ok(o)
        }
        Ok(o) => {
            r.update(&key, &format!("{what}: {o}"));
            Ended::Ok(o)
        }
        Err(e) => {
            r.fail(&key, &format!("{what}: failed"));
            // A delete step's only advice (an AWS step out of time) is the same under `reap`.
            Ended::Failed { error: advice::render(e, Command::Down), label: label(c) }
        }
    }
}

const NOT_ATTEMPTED: &str = "not attempted";
