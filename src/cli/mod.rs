//! Command-line front end: clap types, their resolution into [`Settings`], and one thin
//! function per command that calls `ops` and hands the result to `ui`.

mod args;
mod settings;

pub use args::{Cli, Command, GlobalArgs};
pub use settings::{Settings, UsageError, resolve};

use anyhow::Result;

use crate::aws::{Aws, Ctx};
use crate::ops;
use crate::plan;
use crate::ui::{self, Envelope, Output, Progress};

/// What `main` turns into a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// `plan --detailed-exitcode` found changes.
    ChangesPending,
}

fn title(s: &Settings) -> String {
    format!("{}/{} in {}", s.spec.project, s.spec.environment, s.connection.region)
}

fn json<T: serde::Serialize>(s: &Settings, command: &str, data: &T) -> Result<()> {
    ui::print_json(&Envelope {
        schema_version: ui::SCHEMA_VERSION,
        command,
        project: &s.spec.project,
        environment: &s.spec.environment,
        region: &s.connection.region,
        data,
    })
}

pub async fn run(cli: Cli) -> Result<Outcome> {
    let s = resolve(&cli.global)?;
    let aws = Aws::connect(&s.connection).await;
    let progress = Progress::new(s.progress);
    match cli.command {
        Command::Plan { detailed_exitcode } => {
            let (_, plan) = ops::plan(&aws, &s.spec).await?;
            match s.output {
                Output::Json => json(
                    &s,
                    "plan",
                    &serde_json::json!({"converged": plan.is_converged(), "summary": plan.summary(), "changes": plan.changes}),
                )?,
                Output::Human => ui::print_text(&plan::describe(&plan, &title(&s))),
            }
            Ok(if detailed_exitcode && !plan.is_converged() { Outcome::ChangesPending } else { Outcome::Success })
        }
        Command::Up => {
            let report = ops::up(&aws, &s.spec, &progress).await?;
            match s.output {
                Output::Json => json(&s, "up", &report)?,
                Output::Human => ui::print_text(&ui::render::up(&report, &title(&s))),
            }
            Ok(Outcome::Success)
        }
        Command::Status => {
            let st = ops::status(&aws, &s.spec).await?;
            match s.output {
                Output::Json => json(&s, "status", &st)?,
                Output::Human => ui::print_text(&ui::render::status(&st, &title(&s))),
            }
            Ok(Outcome::Success)
        }
        Command::Down => {
            let (observed, plan) = ops::down_preview(&aws, &s.spec).await?;
            if !plan.changes.is_empty() && !s.yes {
                ui::eprint_text(&plan::describe(&plan, &format!("down {}", title(&s))));
                match ui::confirm(&format!("Delete these {} resources of {}?", plan.changes.len(), title(&s))) {
                    Some(true) => {}
                    Some(false) => anyhow::bail!("aborted: nothing was deleted"),
                    None => {
                        return Err(UsageError {
                            message: "refusing to delete without confirmation: stdin is not a terminal".into(),
                            hint: "pass --yes to delete non-interactively".into(),
                        }
                        .into());
                    }
                }
            }
            let cx = Ctx { aws: &aws, spec: &s.spec, reporter: &progress };
            let report = ops::down(&cx, &observed, &plan).await?;
            match s.output {
                Output::Json => json(&s, "down", &report)?,
                Output::Human => ui::print_text(&ui::render::down(&report, &title(&s))),
            }
            ops::down::check(&report)?;
            Ok(Outcome::Success)
        }
    }
}
