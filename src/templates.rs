//! The one template engine setup: minijinja in strict mode over templates embedded in the
//! binary. A missing variable is a bug in tagstack, never an empty string in a root script or
//! a manifest.

use anyhow::{Context, Result};
use minijinja::{Environment, UndefinedBehavior};

pub fn environment(templates: &[(&'static str, &'static str)]) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    for (name, source) in templates {
        env.add_template(name, source).with_context(|| format!("template {name}"))?;
    }
    Ok(env)
}
