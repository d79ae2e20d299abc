//! The environment file: TOML model, defaults and validation into a [`Spec`], and [`EnvId`]
//! (who an environment is, and every name and tag derived from that). Pure apart from
//! [`load`], which reads the file, the SSH public key and `ssh.known_hosts`; nothing here
//! talks to AWS.

mod backup;
mod cluster;
mod duration;
mod error;
mod field;
mod id;
mod monitoring;
mod raw;
mod sizing;
mod spec;
mod stack;
mod validate;

use std::path::Path;

pub use backup::{BackupSpec, DEFAULT_RETENTION_DAYS};
pub use cluster::{check_address, is_valid_login};
pub use duration::{MIN_TTL, Refused, at_least, format_duration, parse_duration};
pub use error::ConfigError;
pub use field::is_valid_name;
pub use id::EnvId;
pub use monitoring::{DEFAULT_RETENTION, DEFAULT_STORAGE_GB, MonitoringSpec};
pub use sizing::{Jvm, JvmMemory, cpu_cores};
pub use spec::*;
pub use stack::{MONITORING_NAMESPACE, MONITORING_NODE_NAMESPACE, default_kafka_cluster_id, spark_image_version};
pub use validate::{DEFAULT_KUBE_VERSION, KUBE_MINORS, parse};

/// Reads and validates an environment file from disk.
pub fn load(file: &Path) -> Result<Spec, ConfigError> {
    load_with(file, &|p| std::fs::read_to_string(p), validate::Purpose::Connect)
}

/// Like [`load`], for commands that only render files (`tagstack render`): a missing SSH
/// public key file is no error there, nor is `ssh.known_hosts` read, since nothing rendered
/// uses the keys.
pub fn load_for_render(file: &Path) -> Result<Spec, ConfigError> {
    let placeholder = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB render";
    load_with(file, &|p| std::fs::read_to_string(p).or_else(|_| Ok(placeholder.to_string())), validate::Purpose::Render)
}

fn load_with(
    file: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
    purpose: validate::Purpose,
) -> Result<Spec, ConfigError> {
    let source = std::fs::read_to_string(file).map_err(|e| {
        ConfigError::new(file, format!("cannot read the config file: {e}"))
            .hint("pass -c FILE, or -e NAME for config/NAME.toml")
    })?;
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    validate::parse_for(file, &source, home.as_deref(), read, purpose)
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
