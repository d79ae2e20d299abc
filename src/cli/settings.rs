//! Flags, environment and config file resolved into one [`Settings`] value before any work.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::args::GlobalArgs;
use crate::aws::Connection;
use crate::config::{self, ConfigError, Spec};
use crate::ui::{Mode, Output};

/// A command-line problem (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}\n  hint: {hint}")]
pub struct UsageError {
    pub message: String,
    pub hint: String,
}

#[derive(Debug)]
pub struct Settings {
    pub spec: Spec,
    pub connection: Connection,
    pub output: Output,
    pub progress: Mode,
    pub yes: bool,
}

pub fn config_path(g: &GlobalArgs) -> Result<PathBuf, UsageError> {
    match (&g.config, &g.env) {
        (Some(path), _) => Ok(path.clone()),
        (None, Some(name)) => {
            if name.is_empty() || name.contains('/') || name.contains("..") {
                return Err(UsageError {
                    message: format!("{name:?} is not an environment name"),
                    hint: "pass -e NAME for config/NAME.toml, or -c FILE".into(),
                });
            }
            Ok(PathBuf::from("config").join(format!("{name}.toml")))
        }
        (None, None) => Err(UsageError {
            message: "no environment given".into(),
            hint: "pass -e NAME (reads config/NAME.toml) or -c FILE".into(),
        }),
    }
}

pub fn resolve(g: &GlobalArgs) -> anyhow::Result<Settings> {
    let path = config_path(g)?;
    let spec: Spec = config::load(&path).map_err(|e: ConfigError| anyhow::Error::new(e))?;
    let connection = Connection {
        region: g.region.clone().unwrap_or_else(|| spec.region.clone()),
        profile: g.profile.clone(),
        endpoint_url: spec.endpoint_url.clone(),
    };
    let progress = if g.quiet {
        Mode::Quiet
    } else if g.no_progress || !std::io::stderr().is_terminal() || std::env::var_os("CI").is_some() {
        Mode::Lines
    } else {
        Mode::Bars
    };
    Ok(Settings { spec, connection, output: g.output, progress, yes: g.yes })
}
