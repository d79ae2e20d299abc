//! `kubeconfig`, `ssh` and `smoke`: commands that reach into a running cluster through the
//! environment's nodes. They decide nothing about the cluster; they connect, run, close.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;

use super::cluster::{env_dir, fetch_kubeconfig, write_env_files};
use super::env::Env;
use super::nodes::{nodes, on_control_plane};
use super::stack::{self, SmokeResult};
use crate::hint;

/// Fetches the cluster's admin kubeconfig into the environment's directory (0600).
pub async fn kubeconfig(env: &Env<'_>) -> Result<PathBuf> {
    let nodes = nodes(env).await?;
    on_control_plane(env.spec, &nodes, async |fleet, cp| fetch_kubeconfig(fleet, env.spec, cp).await).await
}

/// No node of that name; the names there are.
#[derive(Debug, thiserror::Error)]
#[error("no node named {node:?}")]
pub struct NoSuchNode {
    pub node: String,
    pub names: Vec<String>,
}

/// Runs `ssh -F <env ssh_config> -- NODE [command]` and waits for it.
pub async fn ssh(env: &Env<'_>, node: &str, command: &[String]) -> Result<()> {
    let nodes = nodes(env).await?;
    if !nodes.iter().any(|n| n.name == node) {
        let names = nodes.iter().map(|n| n.name.clone()).collect();
        return Err(NoSuchNode { node: node.to_string(), names }.into());
    }
    let files = write_env_files(env.spec, &nodes)?;
    // `--` before the node: ssh parses options after the destination too, so without it a
    // command word such as `-oProxyCommand=...` would configure the local ssh. After `--`
    // every word is the remote command (joined by ssh with spaces, as `ssh HOST CMD...` does).
    let status = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&files.ssh_config)
        .arg("--")
        .arg(node)
        .args(command)
        .status()
        .context("running ssh")?;
    // SIGPIPE: whoever read ssh's output went away (`tagstack ssh cp -- cmd | head`): a quiet
    // end, as for tagstack's own output.
    const SIGPIPE: i32 = 13;
    match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
        (Some(0), _) | (None, Some(SIGPIPE)) => Ok(()),
        (Some(code), _) => {
            bail!("ssh to {node} exited with {code} (environment files: {})", env_dir(env.spec).display())
        }
        (None, signal) => bail!("ssh to {node} was killed by signal {}", signal.unwrap_or_default()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    pub ok: bool,
    pub checks: Vec<SmokeResult>,
}

impl SmokeReport {
    /// Error naming every failed check.
    pub fn check(&self) -> Result<()> {
        if !self.ok {
            let failed: Vec<String> = self
                .checks
                .iter()
                .filter(|r| !r.ok)
                .map(|r| format!("{} ({}): {}", r.component.as_str(), r.check, r.detail))
                .collect();
            let err = anyhow!("{} smoke check(s) failed:\n  {}", failed.len(), failed.join("\n  "));
            return Err(hint::attach(err, "`tagstack status` shows which workloads are not ready"));
        }
        Ok(())
    }
}

/// Runs every smoke check of the enabled components (all of them, even after a failure).
pub async fn smoke(env: &Env<'_>) -> Result<SmokeReport> {
    let nodes = nodes(env).await?;
    let checks =
        on_control_plane(env.spec, &nodes, async |fleet, cp| stack::smoke(env.spec, fleet, cp, env.reporter).await)
            .await?;
    Ok(SmokeReport { ok: checks.iter().all(|r| r.ok), checks })
}
