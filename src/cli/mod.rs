//! Command-line front end: clap types, their resolution into settings, and one thin function
//! per command that calls `ops` and hands the result to `ui`.

mod args;
mod cluster_cmds;
mod local;
mod settings;
mod stack_cmds;

pub use args::{Cli, Command, GlobalArgs, Stage};
pub use settings::{Common, Settings, UsageError, resolve};

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::aws::{Aws, Ctx};
use crate::ops;
use crate::plan;
use crate::reporter::Reporter;
use crate::ui::{self, Envelope, Output, Progress};

/// What `main` turns into a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `plan --detailed-exitcode` found changes.
    ChangesPending,
}

fn title(s: &Settings) -> String {
    match s.connection.region.as_deref().filter(|r| !r.is_empty()) {
        Some(region) => format!("{}/{} in {region}", s.spec.project, s.spec.environment),
        // A static environment has no region.
        None => format!("{}/{}", s.spec.project, s.spec.environment),
    }
}

fn json<T: Serialize>(s: &Settings, command: &str, data: &T) -> Result<()> {
    ui::print_json(&Envelope {
        schema_version: ui::SCHEMA_VERSION,
        command,
        project: Some(&s.spec.project),
        environment: Some(&s.spec.environment),
        region: s.connection.region.as_deref(),
        data,
    })
}

/// Asks before a destructive step; refuses when nobody can answer.
pub(crate) fn confirm(common: &Common, question: &str) -> Result<()> {
    if common.yes {
        return Ok(());
    }
    match ui::confirm(question) {
        Some(true) => Ok(()),
        Some(false) => anyhow::bail!("aborted: nothing was deleted"),
        None => Err(UsageError {
            message: "refusing to delete without confirmation: stdin is not a terminal".into(),
            hint: "pass --yes to delete non-interactively".into(),
        }
        .into()),
    }
}

pub async fn run(cli: Cli) -> Result<Outcome> {
    let g = &cli.global;
    match cli.command {
        Command::Plan { detailed_exitcode, ttl } => plan_cmd(g, detailed_exitcode, ttl).await,
        Command::Up { ttl, only } => up_cmd(g, ttl, only).await,
        Command::Status => status_cmd(g).await,
        Command::Down => down_cmd(g).await,
        Command::Reap { dry_run, project } => reap_cmd(g, dry_run, project).await,
        Command::Init { force } => local::init(g, force),
        Command::Completions { shell } => local::completions(shell),
        Command::Man => local::man(),
        Command::Render { out } => stack_cmds::render(g, &out),
        Command::Smoke => stack_cmds::smoke(&resolve(g)?).await,
        Command::Kubeconfig { stdout } => cluster_cmds::kubeconfig(&resolve(g)?, stdout).await,
        Command::Ssh { node, command } => cluster_cmds::ssh(&resolve(g)?, &node, &command).await,
    }
}

async fn plan_cmd(g: &GlobalArgs, detailed_exitcode: bool, ttl: Option<Duration>) -> Result<Outcome> {
    let s = resolve(g)?;
    refuse_static(&s, "plan")?;
    let aws = Aws::connect(&s.connection).await;
    let (_, plan) = ops::plan(&aws, &s.spec, ttl).await?;
    match s.common.output {
        Output::Json => json(
            &s,
            "plan",
            &serde_json::json!({
                "converged": plan.is_converged(),
                "summary": plan.summary(),
                "changes": plan.changes,
                "expiry": plan.expiry,
            }),
        )?,
        Output::Human => ui::print_text(&plan::describe(&plan, &title(&s))),
    }
    Ok(if detailed_exitcode && !plan.is_converged() { Outcome::ChangesPending } else { Outcome::Success })
}

async fn up_cmd(g: &GlobalArgs, ttl: Option<Duration>, only: Option<Stage>) -> Result<Outcome> {
    let s = resolve(g)?;
    let is_static = matches!(s.spec.provider, crate::config::Provider::Static { .. });
    if is_static && only == Some(Stage::Infra) {
        return Err(UsageError {
            message: "a static environment has no infra stage".into(),
            hint: "its machines are yours; `tagstack up` runs the cluster and stack stages on them".into(),
        }
        .into());
    }
    let runs = |stage: Stage| only.is_none_or(|o| o == stage);
    let mut doc = serde_json::Map::new();
    let stages = up_stages(&s, ttl, is_static, &runs, &mut doc).await;
    if s.common.output == Output::Json {
        // What finished is still reported when a later stage fails (a CI job keeps the
        // inventory and the kubeconfig path); the error itself also goes to stderr.
        if let Err(e) = &stages {
            doc.insert("error".into(), serde_json::Value::String(format!("{e:#}")));
        }
        json(&s, "up", &doc)?;
    }
    stages.map(|()| Outcome::Success)
}

/// The stages of `up` in order, each adding its report to `doc` (and printing it in human
/// mode as soon as it is done).
async fn up_stages(
    s: &Settings,
    ttl: Option<Duration>,
    is_static: bool,
    runs: &dyn Fn(Stage) -> bool,
    doc: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<()> {
    if !is_static && runs(Stage::Infra) {
        let aws = Aws::connect(&s.connection).await;
        let progress = Progress::new(s.common.progress);
        let report = ops::up(&aws, &s.spec, ttl, &progress).await?;
        if s.common.output == Output::Human {
            // The inventory first: if a later stage fails, the user still sees the nodes.
            ui::print_text(&ui::render::up(&report, &title(s)));
        }
        if let serde_json::Value::Object(map) = serde_json::to_value(&report)? {
            doc.extend(map);
        }
    }
    if runs(Stage::Cluster) || runs(Stage::Stack) {
        let nodes = if runs(Stage::Cluster) {
            let (cluster, nodes) = cluster_cmds::stage(s).await?;
            if s.common.output == Output::Human {
                ui::print_text(&ui::render::cluster(&cluster, &title(s)));
            }
            doc.insert("cluster".into(), serde_json::to_value(&cluster)?);
            nodes
        } else {
            cluster_cmds::nodes(s).await?
        };
        if runs(Stage::Stack) {
            let stack = stack_cmds::stage(s, &nodes).await?;
            if s.common.output == Output::Human {
                ui::print_text(&ui::render::stack(&stack, &title(s)));
            }
            doc.insert("stack".into(), serde_json::to_value(&stack)?);
        }
    }
    Ok(())
}

fn refuse_static(s: &Settings, command: &str) -> Result<()> {
    if matches!(s.spec.provider, crate::config::Provider::Static { .. }) {
        return Err(UsageError {
            message: format!("`{command}` works on AWS resources; a static environment has none"),
            hint: "`tagstack up` bootstraps its machines, `tagstack status` shows their readiness".into(),
        }
        .into());
    }
    Ok(())
}

async fn status_cmd(g: &GlobalArgs) -> Result<Outcome> {
    let s = resolve(g)?;
    if matches!(s.spec.provider, crate::config::Provider::Static { .. }) {
        return cluster_cmds::status(&s).await;
    }
    let aws = Aws::connect(&s.connection).await;
    let st = ops::status(&aws, &s.spec).await?;
    let live = cluster_cmds::aws_live(&s, &aws, &st.nodes).await;
    match s.common.output {
        Output::Json => {
            let mut doc = serde_json::to_value(&st)?;
            let (cluster, stack) = match &live {
                None => (serde_json::Value::Null, serde_json::Value::Null),
                Some(Ok(live)) => cluster_cmds::live_json(live),
                Some(Err(e)) => (serde_json::json!({ "error": e }), serde_json::Value::Null),
            };
            if let Some(map) = doc.as_object_mut() {
                map.insert("cluster".into(), cluster);
                map.insert("stack".into(), stack);
            }
            json(&s, "status", &doc)?;
        }
        Output::Human => {
            ui::print_text(&ui::render::status(&st, &title(&s)));
            match &live {
                None => ui::print_text(
                    "Kubernetes: the cluster stage has not run on these nodes (`tagstack up` runs it).\n",
                ),
                Some(Ok(live)) => ui::print_text(&cluster_cmds::live_text(live, "Kubernetes")),
                Some(Err(e)) => ui::print_text(&format!("Kubernetes: not reachable: {e}\n")),
            }
        }
    }
    Ok(Outcome::Success)
}

async fn down_cmd(g: &GlobalArgs) -> Result<Outcome> {
    let s = resolve(g)?;
    if matches!(s.spec.provider, crate::config::Provider::Static { .. }) {
        return stack_cmds::down_static(&s).await;
    }
    let aws = Aws::connect(&s.connection).await;
    let progress = Progress::new(s.common.progress);
    let (observed, plan) = ops::down_preview(&aws, &s.spec).await?;
    if !plan.changes.is_empty() && !s.common.yes {
        ui::eprint_text(&plan::describe(&plan, &format!("down {}", title(&s))));
        confirm(&s.common, &format!("Delete these {} resources of {}?", plan.changes.len(), title(&s)))?;
    }
    // While the cluster is alive: its load balancers and the stack's volumes, which it would
    // otherwise leave behind. Not reaching it is no reason to keep paying for the rest.
    let inventory = ops::inventory(&observed.instances);
    let cleanup = match cluster_cmds::aws_cleanup(&s, &aws, &inventory).await {
        None => {
            if inventory.iter().any(|n| n.state == "running") {
                progress.note(
                    "the cluster stage has not run on these nodes (no verified host key recorded), so nothing is deleted inside the cluster first; volumes tagged for the environment are deleted on AWS",
                );
            }
            None
        }
        Some(Ok(c)) => {
            for e in &c.errors {
                progress.note(&format!("inside the cluster: {e}; continuing with AWS"));
            }
            Some(c)
        }
        Some(Err(e)) => {
            progress.note(&format!(
                "could not clean up inside the cluster ({e:#}); continuing: volumes tagged for the environment are deleted on AWS, but a load balancer the cluster made would make deleting its subnets fail"
            ));
            None
        }
    };
    let cx = Ctx { aws: &aws, spec: &s.spec, reporter: &progress };
    let report = ops::down(&cx, &plan).await?;
    match s.common.output {
        Output::Json => {
            let mut doc = serde_json::to_value(&report)?;
            if let Some(map) = doc.as_object_mut() {
                map.insert("cluster_cleanup".into(), serde_json::to_value(&cleanup)?);
            }
            json(&s, "down", &doc)?;
        }
        Output::Human => {
            if let Some(c) = &cleanup {
                ui::print_text(&ui::render::cleanup(c));
            }
            ui::print_text(&ui::render::down(&report, &title(&s)));
        }
    }
    ops::down::check(&report)?;
    Ok(Outcome::Success)
}

async fn reap_cmd(g: &GlobalArgs, dry_run: bool, project: Option<String>) -> Result<Outcome> {
    let common = settings::common(g);
    let conn = settings::connection_without_config(g);
    let aws = Aws::connect(&conn).await;
    let Some(region) = aws.region.clone() else {
        return Err(UsageError {
            message: "no region to reap".into(),
            hint: "pass --region, or set AWS_REGION / a profile region".into(),
        }
        .into());
    };
    let progress = Progress::new(common.progress);
    let (due, kept) = ops::reap::find(&aws, project.as_deref()).await?;
    if !due.is_empty() && !dry_run {
        let names: Vec<String> =
            due.iter().map(|e| format!("{}/{} (expired {})", e.project, e.environment, e.expires_at)).collect();
        ui::eprint_text(&format!("Expired environments in {region}:\n  {}\n", names.join("\n  ")));
        confirm(&common, &format!("Delete everything these {} environment(s) own?", due.len()))?;
    }
    let report = ops::reap(&aws, &region, due, kept, dry_run, &progress).await?;
    match common.output {
        Output::Json => ui::print_json(&Envelope {
            schema_version: ui::SCHEMA_VERSION,
            command: "reap",
            project: project.as_deref(),
            environment: None,
            region: Some(&region),
            data: &report,
        })?,
        Output::Human => ui::print_text(&ui::render::reap(&report, &region)),
    }
    if report.failed > 0 {
        anyhow::bail!("{} environment(s) could not be reaped completely; run `tagstack reap` again", report.failed);
    }
    Ok(Outcome::Success)
}
