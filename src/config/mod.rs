//! The environment file: TOML model, defaults and validation into a [`Spec`]. Pure apart from
//! [`load`], which reads the file and the SSH public key; nothing here talks to AWS.

mod cluster;
mod duration;
mod error;
mod raw;
mod spec;
mod validate;

use std::path::Path;

pub use duration::{format_duration, parse_duration};
pub use error::ConfigError;
pub use spec::*;
pub use validate::{DEFAULT_KUBE_VERSION, KUBE_MINORS, is_valid_name, parse};

/// Reads and validates an environment file from disk.
pub fn load(file: &Path) -> Result<Spec, ConfigError> {
    let source = std::fs::read_to_string(file).map_err(|e| {
        ConfigError::new(file, format!("cannot read the config file: {e}"))
            .hint("pass -c FILE, or -e NAME for config/NAME.toml")
    })?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    parse(file, &source, home.as_deref(), &|p| std::fs::read_to_string(p))
}

#[cfg(test)]
mod tests;
