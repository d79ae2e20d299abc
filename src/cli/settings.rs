//! Flags, environment and config file resolved into one [`Settings`] value before any work.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::args::GlobalArgs;
use crate::config::{self, ConfigError, Spec};
use crate::ops::Connection;
use crate::ui::{Mode, Output};

/// A command-line problem (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}{}", crate::ui::HintLine(.hint))]
pub struct UsageError {
    pub message: String,
    pub hint: String,
}

/// What every command needs, config or not.
#[derive(Debug)]
pub struct Common {
    pub output: Output,
    pub progress: Mode,
    pub yes: bool,
}

/// Settings of a command that works on one environment file.
#[derive(Debug)]
pub struct Settings {
    pub spec: Spec,
    pub connection: Connection,
    pub common: Common,
}

pub fn config_path(g: &GlobalArgs) -> Result<PathBuf, UsageError> {
    match (&g.config, &g.env) {
        (Some(path), _) => Ok(path.clone()),
        (None, Some(name)) => {
            if !config::is_valid_name(name) {
                return Err(UsageError {
                    message: format!("{name:?} is not an environment name"),
                    hint: "pass -e NAME for config/NAME.toml (lowercase letters, digits, dashes), or -c FILE".into(),
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

pub fn common(g: &GlobalArgs) -> Common {
    let plain = g.no_progress
        || !std::io::stderr().is_terminal()
        || std::env::var_os("CI").is_some()
        // No spinner escape sequences for people who asked for plain output.
        || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let progress = if g.events {
        Mode::Events
    } else if g.quiet {
        Mode::Quiet
    } else if plain {
        Mode::Lines
    } else {
        Mode::Bars
    };
    Common { output: g.output, progress, yes: g.yes }
}

pub fn resolve(g: &GlobalArgs) -> anyhow::Result<Settings> {
    let path = config_path(g)?;
    let spec: Spec = config::load(&path).map_err(|e: ConfigError| anyhow::Error::new(e))?;
    let connection = Connection {
        region: Some(g.region.clone().unwrap_or_else(|| spec.region.clone())),
        profile: g.profile.clone(),
        endpoint_url: spec.endpoint_url.clone(),
    };
    Ok(Settings { spec, connection, common: common(g) })
}

/// For commands without a config (`reap`): region from the flag or the standard chain.
pub fn connection_without_config(g: &GlobalArgs) -> Connection {
    Connection { region: g.region.clone(), profile: g.profile.clone(), endpoint_url: None }
}
