//! Commands that touch no cloud: `init`, `completions`, `man`.

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Outcome;
use super::args::{Cli, GlobalArgs};
use super::settings::{UsageError, config_path};

const INIT_TEMPLATE: &str = include_str!("../../templates/init.toml");

/// The starter config for an environment name (pure, so tests can parse it).
pub fn starter_config(project: &str, environment: &str) -> String {
    INIT_TEMPLATE.replace("{{project}}", project).replace("{{environment}}", environment)
}

pub fn init(g: &GlobalArgs, force: bool) -> Result<Outcome> {
    let path = config_path(g)?;
    let environment = path.file_stem().and_then(|s| s.to_str()).unwrap_or("dev").to_string();
    if !crate::config::is_valid_name(&environment) {
        return Err(UsageError {
            message: format!("{} does not name a valid environment ({environment:?})", path.display()),
            hint: "name the file after the environment, e.g. config/dev.toml".into(),
        }
        .into());
    }
    if path.exists() && !force {
        return Err(UsageError {
            message: format!("{} already exists", path.display()),
            hint: "pass --force to overwrite it".into(),
        }
        .into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let project = std::env::current_dir()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .filter(|n| crate::config::is_valid_name(n))
        .unwrap_or_else(|| "myproject".to_string());
    std::fs::write(&path, starter_config(&project, &environment))
        .with_context(|| format!("writing {}", path.display()))?;
    crate::ui::print_text(&format!("{}\n", path.display()));
    Ok(Outcome::Success)
}

pub fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tagstack", &mut buf);
    crate::ui::write_stdout(&buf);
    Ok(Outcome::Success)
}

pub fn man() -> Result<Outcome> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
    crate::ui::write_stdout(&buf);
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn starter_config_is_a_valid_config() {
        let text = starter_config("acme", "dev");
        let spec = crate::config::parse(Path::new("config/dev.toml"), &text, Some(Path::new("/home/u")), &|_| {
            Ok("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGd0BzvS3R+uygL7/APZNYODv64EwSfYypxOYC5em7nB me".into())
        })
        .unwrap();
        assert_eq!((spec.id.project.as_str(), spec.id.environment.as_str()), ("acme", "dev"));
        assert_eq!(spec.ttl, Some(std::time::Duration::from_secs(8 * 3600)));
        assert_eq!(spec.workers.count, 3);
        assert!(!text.contains("{{"), "unrendered placeholder");
    }

    /// The template spells the defaults out for the reader; they must be the ones `config`
    /// applies (their one home), so the starter config means the same as leaving them out.
    #[test]
    fn starter_config_writes_the_defaults() {
        use crate::config::testing;
        let parse = |text: &str| {
            let mut json = serde_json::to_value(testing::parse(text)).unwrap();
            // No default: the template sets a `ttl` on purpose, and an example admin network.
            for key in ["ttl", "admin_cidrs"] {
                json.as_object_mut().unwrap().remove(key);
            }
            json
        };
        // The required keys alone (the same environment, network and subnet as the template).
        let required = testing::AWS_BASE.replace("kubernetes_version = \"1.36\"\n", "");
        assert_ne!(required, testing::AWS_BASE, "the test environment no longer sets the version");
        assert_eq!(parse(&starter_config("demo", "dev")), parse(&required));
    }
}
