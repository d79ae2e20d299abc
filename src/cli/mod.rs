//! Command-line front end: clap types, their resolution into settings, and one thin function
//! per command: settings -> one `ops` call -> `ui`. No workflow lives here.

mod args;
mod local;
mod settings;

pub use args::{Cli, Command, GlobalArgs, KafkaAction, KafkaUserAction, MonitoringAction, OpenTarget, Stage};
pub use settings::{Common, Settings, UsageError, resolve};

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::ops::{self, Env};
use crate::ui::json::{self, DownDoc, LiveDoc, PlanDoc, RenderDoc, Source, StatusDoc};
use crate::ui::{self, Output, Progress};

/// What `main` turns into a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `plan --detailed-exitcode` found changes.
    ChangesPending,
}

fn title(s: &Settings) -> String {
    match s.connection.region.as_deref().filter(|r| !r.is_empty()) {
        Some(region) => format!("{}/{} in {region}", s.spec.id.project, s.spec.id.environment),
        // A static environment has no region.
        None => format!("{}/{}", s.spec.id.project, s.spec.id.environment),
    }
}

fn source(s: &Settings) -> Source<'_> {
    Source {
        project: Some(&s.spec.id.project),
        environment: Some(&s.spec.id.environment),
        region: s.connection.region.as_deref(),
    }
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

/// Runs the command; its error carries the advice for that command (`ops::advice`), which
/// `main` prints after the cause chain.
pub async fn run(cli: Cli) -> Result<Outcome> {
    let advised = advised_as(&cli.command);
    let result = dispatch(cli).await;
    match advised {
        Some(cmd) => result.map_err(|e| ops::advice::advise(e, cmd)),
        None => result,
    }
}

/// The command whose advice an error gets; `None` for the local ones, whose errors are all
/// usage errors with their own hint.
fn advised_as(command: &Command) -> Option<ops::advice::Command> {
    use ops::advice::Command as A;
    match command {
        Command::Plan { .. } => Some(A::Plan),
        Command::Up { .. } => Some(A::Up),
        Command::Status => Some(A::Status),
        Command::Down { .. } => Some(A::Down),
        Command::Reap { .. } => Some(A::Reap),
        Command::Smoke => Some(A::Smoke),
        Command::Kubeconfig { .. } => Some(A::Kubeconfig),
        Command::Ssh { .. } => Some(A::Ssh),
        // What a replacement leaves half-done, `up` finishes (the mark is on the instance).
        Command::Replace { .. } => Some(A::Up),
        Command::Render { .. } => Some(A::Render),
        Command::Backup => Some(A::Backup),
        Command::Restore { .. } => Some(A::Restore),
        Command::Bake { .. } => Some(A::Bake),
        Command::Monitoring { .. } => Some(A::Monitoring),
        Command::Kafka { .. } => Some(A::Kafka),
        Command::Init { .. } | Command::Completions { .. } | Command::Man => None,
    }
}

async fn dispatch(cli: Cli) -> Result<Outcome> {
    let g = &cli.global;
    match cli.command {
        Command::Plan { detailed_exitcode, ttl } => plan_cmd(&resolve(g)?, detailed_exitcode, ttl).await,
        Command::Up { ttl, only } => up_cmd(&resolve(g)?, ttl, only).await,
        Command::Status => status_cmd(&resolve(g)?).await,
        Command::Down { delete_backups, delete_images } => down_cmd(&resolve(g)?, delete_backups, delete_images).await,
        Command::Reap { dry_run, project } => reap_cmd(g, dry_run, project).await,
        Command::Init { force } => local::init(g, force),
        Command::Completions { shell } => local::completions(shell),
        Command::Man => local::man(),
        Command::Render { out } => render_cmd(g, &out),
        Command::Smoke => smoke_cmd(&resolve(g)?).await,
        Command::Backup => backup_cmd(&resolve(g)?).await,
        Command::Restore { snapshot } => restore_cmd(&resolve(g)?, &snapshot).await,
        Command::Bake { prune } => bake_cmd(&resolve(g)?, prune).await,
        Command::Kubeconfig { stdout } => kubeconfig_cmd(&resolve(g)?, stdout).await,
        Command::Ssh { node, command } => ssh_cmd(&resolve(g)?, &node, &command).await,
        Command::Monitoring { action } => monitoring_cmd(&resolve(g)?, action).await,
        Command::Kafka { action } => kafka_cmd(&resolve(g)?, action).await,
        Command::Replace { node } => replace_cmd(&resolve(g)?, &node).await,
    }
}

/// Runs `f` in the environment of `s`, reporting progress as the flags ask.
macro_rules! with_env {
    ($s:expr, |$env:ident| $body:expr) => {{
        let progress = Progress::new($s.common.progress);
        let $env = Env::new(&$s.spec, &$s.connection, &progress);
        $body
    }};
}

async fn plan_cmd(s: &Settings, detailed_exitcode: bool, ttl: Option<Duration>) -> Result<Outcome> {
    refuse_static(s, "plan")?;
    let (plan, kubernetes, image) = with_env!(s, |env| ops::plan::run(&env, ttl).await)?;
    match s.common.output {
        Output::Json => json::print(
            source(s),
            "plan",
            &PlanDoc::new(&plan).with_kubernetes(kubernetes.as_ref()).with_image(image.as_ref()),
        )?,
        Output::Human => {
            let mut text = ui::render::plan(&plan, &title(s));
            text.extend(kubernetes.as_ref().map(ui::render::kubernetes_plan));
            text.extend(image.as_ref().map(ui::render::image_choice));
            ui::print_text(&text);
        }
    }
    let upgrade = matches!(&kubernetes, Some(ops::upgrade::KubernetesPlan::Read { action: "upgrade", .. }));
    Ok(if detailed_exitcode && (!plan.is_converged() || upgrade) { Outcome::ChangesPending } else { Outcome::Success })
}

async fn up_cmd(s: &Settings, ttl: Option<Duration>, only: Option<Stage>) -> Result<Outcome> {
    let only = only.map(|o| match o {
        Stage::Infra => ops::up::Stage::Infra,
        Stage::Cluster => ops::up::Stage::Cluster,
        Stage::Stack => ops::up::Stage::Stack,
    });
    let opts = ops::up::UpOpts { ttl, only };
    let mut show = show_stages(s);
    let (report, result) = with_env!(s, |env| ops::up::run(&env, opts, &mut show).await);
    if let Err(e) = &result
        && e.is::<ops::up::NoInfraStage>()
    {
        return Err(UsageError {
            message: e.to_string(),
            hint: "its machines are yours; `tagstack up` runs the cluster and stack stages on them".into(),
        }
        .into());
    }
    finish_up(s, "up", &report, result)
}

/// Prints each stage of `up` as soon as it is done (human output): the inventory first, so that
/// a person still sees the nodes if a later stage fails.
fn show_stages(s: &Settings) -> impl FnMut(ops::up::Done<'_>) {
    let human = s.common.output == Output::Human;
    let title = title(s);
    move |done| {
        if human {
            ui::print_text(&match done {
                ops::up::Done::Infra(r) => ui::render::up(r, &title),
                ops::up::Done::Cluster(r) => ui::render::cluster(r, &title),
                ops::up::Done::Retire(r) => ui::render::retired(r, &title),
                ops::up::Done::Stack(r) => ui::render::stack(r, &title),
                ops::up::Done::Monitoring(r) => ui::render::monitoring(r, &title),
            });
        }
    }
}

/// What finished is still reported when a later stage fails (a CI job keeps the inventory and
/// the kubeconfig path); the error itself also goes to stderr.
fn finish_up(s: &Settings, command: &str, report: &ops::up::UpReport, result: Result<()>) -> Result<Outcome> {
    if s.common.output != Output::Human {
        json::print(source(s), command, report)?;
    }
    result.map(|()| Outcome::Success)
}

async fn replace_cmd(s: &Settings, node: &str) -> Result<Outcome> {
    refuse_static(s, "replace")?;
    let mut show = show_stages(s);
    let (report, result) = with_env!(s, |env| ops::replace::run(&env, node, &mut show).await);
    if let Err(e) = &result
        && let Some(none) = e.downcast_ref::<ops::access::NoSuchNode>()
    {
        return Err(UsageError { message: none.to_string(), hint: format!("nodes: {}", none.names.join(", ")) }.into());
    }
    finish_up(s, "replace", &report, result)
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

async fn status_cmd(s: &Settings) -> Result<Outcome> {
    let report = with_env!(s, |env| ops::status::run(&env).await)?;
    match (s.common.output, &report) {
        (Output::Json, ops::status::StatusReport::Aws { infra, live }) => {
            json::print(source(s), "status", &StatusDoc { infra, live: LiveDoc::of_aws(live) })?;
        }
        (Output::Json, ops::status::StatusReport::Static { live }) => {
            json::print(source(s), "status", &LiveDoc::of(live))?;
        }
        (Output::Human, ops::status::StatusReport::Aws { infra, live }) => {
            ui::print_text(&ui::render::status(infra, &title(s)));
            ui::print_text(&ui::render::aws_live(live));
        }
        (Output::Human, ops::status::StatusReport::Static { live }) => {
            ui::print_text(&ui::render::live(live, &title(s)));
        }
    }
    Ok(Outcome::Success)
}

async fn down_cmd(s: &Settings, delete_backups: bool, delete_images: bool) -> Result<Outcome> {
    if matches!(s.spec.provider, crate::config::Provider::Static { .. }) {
        return down_static(s).await;
    }
    let progress = Progress::new(s.common.progress);
    let env = Env::new(&s.spec, &s.connection, &progress);
    let backups = if delete_backups { crate::plan::Backups::Delete } else { crate::plan::Backups::Keep };
    let preview = ops::down::preview_with(&env, backups).await?;
    let t = &preview.teardown;
    if !t.changes.is_empty() && !s.common.yes {
        ui::eprint_text(&ui::render::plan(t, &format!("down {}", title(s))));
        confirm(&s.common, &format!("Delete these {} resources of {}?", t.changes.len(), title(s)))?;
    }
    let done = ops::down::run(&env, &preview).await?;
    // Only once the environment is gone, and only when asked: images serve every environment
    // of the project.
    let gone = ops::down::check(&done.report).is_ok();
    let images = if delete_images && gone { Some(ops::bake::delete_images(&env).await?) } else { None };
    match s.common.output {
        Output::Json => json::print(
            source(s),
            "down",
            &DownDoc {
                report: Some(&done.report),
                cluster_cleanup: done.cleanup.as_ref(),
                deleted_images: images.as_deref(),
            },
        )?,
        Output::Human => {
            if let Some(c) = &done.cleanup {
                ui::print_text(&ui::render::cleanup(c));
            }
            ui::print_text(&ui::render::down(&done.report, &title(s)));
            if let Some(images) = &images {
                ui::print_text(&ui::render::deleted_images(images));
            }
        }
    }
    ops::down::check(&done.report)?;
    Ok(Outcome::Success)
}

/// `down` on machines tagstack does not own: what it deployed in the cluster goes; the
/// machines, Kubernetes and everything else in it stay.
async fn down_static(s: &Settings) -> Result<Outcome> {
    let mut namespaces = s.spec.stack.namespaces();
    if s.spec.monitoring.is_some() {
        namespaces.push(crate::monitoring::deploy::NAMESPACE.to_string());
    }
    confirm(
        &s.common,
        &format!(
            "Delete the stack of {} (its namespaces {}, with their volumes)? The machines, Kubernetes and everything else in it stay.",
            title(s),
            if namespaces.is_empty() { "-".to_string() } else { namespaces.join(", ") }
        ),
    )?;
    let cleanup = with_env!(s, |env| ops::down::run_static(&env).await)?;
    match s.common.output {
        Output::Json => {
            json::print(
                source(s),
                "down",
                &DownDoc { report: None, cluster_cleanup: Some(&cleanup), deleted_images: None },
            )?;
        }
        Output::Human => ui::print_text(&ui::render::cleanup(&cleanup)),
    }
    ops::down::check_static(&cleanup)?;
    Ok(Outcome::Success)
}

async fn reap_cmd(g: &GlobalArgs, dry_run: bool, project: Option<String>) -> Result<Outcome> {
    let common = settings::common(g);
    let conn = settings::connection_without_config(g);
    let aws = ops::Aws::connect(&conn).await;
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
    let report = ops::reap(&aws, due, kept, dry_run, &progress).await?;
    match common.output {
        Output::Json => json::print_in_order(
            Source { project: project.as_deref(), environment: None, region: Some(&region) },
            "reap",
            &report,
        )?,
        Output::Human => ui::print_text(&ui::render::reap(&report, &region)),
    }
    if report.failed > 0 {
        anyhow::bail!("{} environment(s) could not be reaped completely; run `tagstack reap` again", report.failed);
    }
    Ok(Outcome::Success)
}

fn render_cmd(g: &GlobalArgs, out: &Path) -> Result<Outcome> {
    let path = settings::config_path(g)?;
    let spec = crate::config::load_for_render(&path).map_err(anyhow::Error::new)?;
    let written = ops::stack::write_rendered(&spec, out)?;
    match settings::common(g).output {
        Output::Json => json::print(
            Source { project: Some(&spec.id.project), environment: Some(&spec.id.environment), region: None },
            "render",
            &RenderDoc { files: &written },
        )?,
        Output::Human => {
            ui::print_text(&written.iter().map(|p| format!("{}\n", p.display())).collect::<String>());
        }
    }
    Ok(Outcome::Success)
}

async fn smoke_cmd(s: &Settings) -> Result<Outcome> {
    if s.spec.stack.is_empty() {
        return Err(UsageError {
            message: "no stack component is enabled".into(),
            hint: "enable [stack.kafka], [stack.cassandra] or [stack.spark] in the config and run `tagstack up`".into(),
        }
        .into());
    }
    let report = with_env!(s, |env| ops::access::smoke(&env).await)?;
    match s.common.output {
        Output::Json => json::print(source(s), "smoke", &report)?,
        Output::Human => ui::print_text(&ui::render::smoke(&report.checks, &title(s))),
    }
    report.check()?;
    Ok(Outcome::Success)
}

async fn backup_cmd(s: &Settings) -> Result<Outcome> {
    refuse_static(s, "backup")?;
    let res = with_env!(s, |env| ops::backup::run(&env).await);
    if let Err(e) = &res
        && let Some(none) = e.downcast_ref::<ops::backup::NotConfigured>()
    {
        return Err(UsageError {
            message: none.to_string(),
            hint: "add a [backup] section (e.g. retention_days = 14) and run `tagstack up`, which creates the bucket"
                .into(),
        }
        .into());
    }
    let report = res?;
    match s.common.output {
        Output::Json => json::print(source(s), "backup", &report)?,
        Output::Human => ui::print_text(&format!(
            "s3://{}/{}\n  {} bytes, sha256 {}\n",
            report.bucket, report.key, report.size, report.sha256
        )),
    }
    Ok(Outcome::Success)
}

/// The snapshot is fetched and checked first; nothing on the cluster is touched before the
/// answer (the same confirmation rules as `down`).
async fn restore_cmd(s: &Settings, snapshot: &str) -> Result<Outcome> {
    let progress = Progress::new(s.common.progress);
    let env = Env::new(&s.spec, &s.connection, &progress);
    let wanted = ops::restore::Source::parse(snapshot);
    let prepared = match ops::restore::prepare(&env, &wanted).await {
        Err(e) if e.downcast_ref::<ops::backup::NotConfigured>().is_some() => {
            return Err(UsageError {
                message: e.to_string(),
                hint: "add a [backup] section and run `tagstack up` and `tagstack backup`, or pass the path of a snapshot file".into(),
            }
            .into());
        }
        other => other?,
    };
    if !s.common.yes {
        let taken = prepared.taken.as_deref().map(|t| format!(", stored {t}")).unwrap_or_default();
        ui::eprint_text(&format!(
            "Restore {} from {} ({} bytes, sha256 {}{taken}).\nThe API server stops meanwhile; every object created since the snapshot is gone from the API (what it made on AWS stays). The current etcd data is kept on the control plane.\n",
            title(s),
            prepared.from,
            prepared.check.size,
            prepared.check.sha256
        ));
        confirm_restore(&format!("Restore etcd of {}?", title(s)))?;
    }
    let report = ops::restore::run(&env, &prepared).await?;
    match s.common.output {
        Output::Json => json::print(source(s), "restore", &report)?,
        Output::Human => ui::print_text(&format!(
            "restored {} from {}\n  {} bytes, sha256 {}\n  old etcd data kept on {} in {}\n",
            title(s),
            report.from,
            report.size,
            report.sha256,
            report.node,
            report.kept
        )),
    }
    Ok(Outcome::Success)
}

async fn bake_cmd(s: &Settings, prune: bool) -> Result<Outcome> {
    refuse_static(s, "bake")?;
    if prune {
        let report = with_env!(s, |env| ops::bake::prune(&env).await)?;
        match s.common.output {
            Output::Json => json::print(source(s), "bake-prune", &report)?,
            Output::Human => ui::print_text(&ui::render::bake_prune(&report)),
        }
        return Ok(Outcome::Success);
    }
    let report = with_env!(s, |env| ops::bake::run(&env).await)?;
    match s.common.output {
        Output::Json => json::print(source(s), "bake", &report)?,
        Output::Human => ui::print_text(&ui::render::bake(&report)),
    }
    Ok(Outcome::Success)
}

/// `confirm`'s rules with a restore's words: nothing was changed when it refuses.
fn confirm_restore(question: &str) -> Result<()> {
    match ui::confirm(question) {
        Some(true) => Ok(()),
        Some(false) => anyhow::bail!("aborted: nothing was restored"),
        None => Err(UsageError {
            message: "refusing to restore without confirmation: stdin is not a terminal".into(),
            hint: "pass --yes to restore non-interactively".into(),
        }
        .into()),
    }
}

async fn kubeconfig_cmd(s: &Settings, to_stdout: bool) -> Result<Outcome> {
    let path = with_env!(s, |env| ops::access::kubeconfig(&env).await)?;
    if to_stdout {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!(e).context(format!("reading {}", path.display())))?;
        ui::print_text(&text);
    } else {
        ui::print_text(&format!("{}\n", path.display()));
    }
    Ok(Outcome::Success)
}

async fn ssh_cmd(s: &Settings, node: &str, command: &[String]) -> Result<Outcome> {
    let res = with_env!(s, |env| ops::access::ssh(&env, node, command).await);
    if let Err(e) = &res
        && let Some(none) = e.downcast_ref::<ops::access::NoSuchNode>()
    {
        return Err(UsageError { message: none.to_string(), hint: format!("nodes: {}", none.names.join(", ")) }.into());
    }
    res.map(|()| Outcome::Success)
}

/// `tagstack kafka user add|client-config`. The client configuration holds the user's password:
/// it goes to stdout and nowhere else (not in JSON, not in a log).
async fn kafka_cmd(s: &Settings, action: KafkaAction) -> Result<Outcome> {
    let usage = |e: anyhow::Error| -> anyhow::Error {
        if let Some(n) = e.downcast_ref::<ops::kafka::NotEnabled>() {
            return UsageError {
                message: n.to_string(),
                hint: "enable [stack.kafka] in the config and run `tagstack up`".into(),
            }
            .into();
        }
        e
    };
    match action {
        KafkaAction::User { action: KafkaUserAction::Add { name, topics } } => {
            let user = crate::stack::kafka::User::named(&name, &topics).map_err(|e| UsageError {
                message: e.to_string(),
                hint: "see `tagstack kafka user add --help`".into(),
            })?;
            with_env!(s, |env| ops::kafka::user_add(&env, &user).await).map_err(usage)?;
            if s.common.output == Output::Json {
                json::print(source(s), "kafka user add", &serde_json::json!({ "user": user.name }))?;
            } else {
                ui::print_text(&format!(
                    "Kafka user {} is ready; its client configuration: tagstack kafka client-config {}\n",
                    user.name, user.name
                ));
            }
        }
        KafkaAction::ClientConfig { name } => {
            let properties = with_env!(s, |env| ops::kafka::client_config(&env, &name).await).map_err(usage)?;
            ui::print_text(&properties);
        }
    }
    Ok(Outcome::Success)
}

/// `tagstack monitoring password|open`. The password goes to stdout and nowhere else (not in
/// JSON, not in a log); `open` prints the URL once the tunnel listens and runs until stopped.
async fn monitoring_cmd(s: &Settings, action: MonitoringAction) -> Result<Outcome> {
    let not_enabled = |e: &anyhow::Error| {
        e.downcast_ref::<ops::monitoring::NotEnabled>().map(|n| UsageError {
            message: n.to_string(),
            hint: "set [monitoring] enabled = true in the config and run `tagstack up`".into(),
        })
    };
    match action {
        MonitoringAction::Password => {
            let res = with_env!(s, |env| ops::monitoring::password(&env).await);
            if let Err(e) = &res
                && let Some(u) = not_enabled(e)
            {
                return Err(u.into());
            }
            ui::print_text(&format!("{}\n", res?));
        }
        MonitoringAction::Open { target, port } => {
            use crate::monitoring::live::Target;
            let target = match target {
                OpenTarget::Grafana => Target::Grafana,
                OpenTarget::Prometheus => Target::Prometheus,
                OpenTarget::Alertmanager => Target::Alertmanager,
            };
            let port = port.unwrap_or_else(|| target.port());
            let json = s.common.output == Output::Json;
            let mut ready = |url: &str| {
                if json {
                    let _ = json::print(source(s), "monitoring open", &serde_json::json!({ "url": url }));
                } else {
                    ui::print_text(&format!("{url}\n"));
                }
            };
            let res = with_env!(s, |env| ops::monitoring::open(&env, target, port, &mut ready).await);
            if let Err(e) = &res
                && let Some(u) = not_enabled(e)
            {
                return Err(u.into());
            }
            res?;
        }
    }
    Ok(Outcome::Success)
}
