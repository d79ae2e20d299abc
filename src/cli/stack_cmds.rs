//! Commands of the stack stage: the stack part of `up`, `render`, `smoke`, and the in-cluster
//! clean-up `down` does first.

use std::path::Path;

use anyhow::Result;

use super::args::GlobalArgs;
use super::cluster_cmds::connect_control_plane;
use super::settings::{Settings, UsageError, config_path};
use super::{Outcome, json, title};
use crate::cluster::ClusterNode;
use crate::ops::stack::{self, StackReport};
use crate::ui::{self, Output, Progress};

/// Applies the stack on a running cluster and waits for it.
pub async fn stage(s: &Settings, nodes: &[ClusterNode]) -> Result<StackReport> {
    if s.spec.stack.is_empty() {
        return Ok(StackReport { workloads: Vec::new(), endpoints: Vec::new() });
    }
    let (fleet, cp) = connect_control_plane(s, nodes).await?;
    let progress = Progress::new(s.common.progress);
    let report = stack::deploy(&s.spec, &fleet, &cp, &progress).await;
    fleet.close().await;
    report
}

pub fn render(g: &GlobalArgs, out: &Path) -> Result<Outcome> {
    let path = config_path(g)?;
    let spec = crate::config::load_for_render(&path).map_err(anyhow::Error::new)?;
    let written = stack::write_rendered(&spec, out)?;
    let common = super::settings::common(g);
    match common.output {
        Output::Json => ui::print_json(&ui::Envelope {
            schema_version: ui::SCHEMA_VERSION,
            command: "render",
            project: Some(&spec.project),
            environment: Some(&spec.environment),
            region: None,
            data: &serde_json::json!({ "files": written }),
        })?,
        Output::Human => {
            ui::print_text(&written.iter().map(|p| format!("{}\n", p.display())).collect::<String>());
        }
    }
    Ok(Outcome::Success)
}

pub async fn smoke(s: &Settings) -> Result<Outcome> {
    if s.spec.stack.is_empty() {
        return Err(UsageError {
            message: "no stack component is enabled".into(),
            hint: "enable [stack.kafka], [stack.cassandra] or [stack.spark] in the config and run `tagstack up`".into(),
        }
        .into());
    }
    let nodes = super::cluster_cmds::nodes(s).await?;
    let (fleet, cp) = connect_control_plane(s, &nodes).await?;
    let progress = Progress::new(s.common.progress);
    let results = stack::smoke(&s.spec, &fleet, &cp, &progress).await;
    fleet.close().await;
    let results = results?;
    let ok = results.iter().all(|r| r.ok);
    match s.common.output {
        Output::Json => json(s, "smoke", &serde_json::json!({ "ok": ok, "checks": results }))?,
        Output::Human => ui::print_text(&ui::render::smoke(&results, &title(s))),
    }
    if !ok {
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| format!("{} ({}): {}", r.component.as_str(), r.check, r.detail))
            .collect();
        anyhow::bail!(
            "{} smoke check(s) failed:\n  {}\n  hint: `tagstack status` shows which workloads are not ready",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(Outcome::Success)
}

/// `down` on machines tagstack does not own: remove what it deployed in the cluster (the
/// namespaces it labelled for this environment, with their volumes); the machines, Kubernetes
/// and everything else in it stay.
pub async fn down_static(s: &Settings) -> Result<Outcome> {
    let namespaces = s.spec.stack.namespaces();
    super::confirm(
        &s.common,
        &format!(
            "Delete the stack of {} (its namespaces {}, with their volumes)? The machines, Kubernetes and everything else in it stay.",
            title(s),
            if namespaces.is_empty() { "-".to_string() } else { namespaces.join(", ") }
        ),
    )?;
    let nodes = super::cluster_cmds::nodes(s).await?;
    let (fleet, cp) = connect_control_plane(s, &nodes).await?;
    let progress = Progress::new(s.common.progress);
    let cleanup = stack::teardown(&s.spec, &fleet, &cp, false, &progress).await;
    fleet.close().await;
    let cleanup = cleanup?;
    let errors = cleanup.errors.clone();
    match s.common.output {
        Output::Json => json(s, "down", &serde_json::json!({ "cluster_cleanup": cleanup }))?,
        Output::Human => ui::print_text(&ui::render::cleanup(&cleanup)),
    }
    if !errors.is_empty() {
        anyhow::bail!(
            "the stack was not removed completely:\n  {}\n  hint: run `tagstack down` again",
            errors.join("\n  ")
        );
    }
    Ok(Outcome::Success)
}
