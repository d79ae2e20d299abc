//! Advice for the user, kept apart from the facts. Low-level errors (`aws`, `remote`,
//! `cluster`, `stack`) say what happened; the command layer (`ops`, `cli`), which knows
//! which command is running, attaches what to do about it with [`HintExt::hint`] or
//! [`attach`]. [`render`] is the one way an error reaches a user (`main`, JSON documents,
//! failure lists): the cause chain as anyhow's `{:#}` prints it without the hint layers, then
//! one `\n  hint: ...` line per hint, innermost first, each once.
//!
//! The error types that carry their own structured hint (`config::ConfigError`,
//! `cli::UsageError`, `plan::PlanError`) are always root causes and end their text with a [`Line`],
//! so their hint comes after the chain as well. This module must not know any other module's errors.

use std::fmt;

/// An error with one piece of advice attached; its source is the error it advises on.
#[derive(Debug)]
pub struct Hinted {
    hint: String,
    source: anyhow::Error,
}

impl Hinted {
    pub fn hint(&self) -> &str {
        &self.hint
    }
}

/// Only seen when an error is printed without [`render`]: the advice, marked as such.
impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hint: {}", self.hint)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// `err` with `hint` attached.
pub fn attach(err: impl Into<anyhow::Error>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted { hint: hint.into(), source: err.into() })
}

/// Attaching advice to a failed result, as `anyhow::Context` attaches context.
pub trait HintExt<T> {
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T>;
    fn with_hint<H: Into<String>>(self, hint: impl FnOnce() -> H) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> HintExt<T> for Result<T, E> {
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| attach(e, hint))
    }

    fn with_hint<H: Into<String>>(self, hint: impl FnOnce() -> H) -> anyhow::Result<T> {
        self.map_err(|e| attach(e, hint()))
    }
}

/// The hints attached anywhere in `err`'s chain, innermost first, each once.
pub fn hints(err: &anyhow::Error) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for h in err.chain().rev().filter_map(|e| e.downcast_ref::<Hinted>()) {
        if !out.contains(&h.hint()) {
            out.push(h.hint());
        }
    }
    out
}

/// The error as a user sees it: the chain joined with ": " (hint layers skipped), then the hints.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain().filter(|e| !e.is::<Hinted>()) {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string());
    }
    for h in hints(err) {
        out.push_str(&Line(h).to_string());
    }
    out
}

/// One hint line as every error shows it: for error types that carry their own hint.
pub struct Line<'a>(pub &'a str);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n  hint: {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use anyhow::{Context, anyhow};

    use super::*;

    #[test]
    fn an_error_without_hints_renders_as_its_chain() {
        let err = Err::<(), _>(anyhow!("root cause")).context("outer").unwrap_err();
        assert_eq!(render(&err), "outer: root cause");
        assert_eq!(render(&err), format!("{err:#}"));
        assert!(hints(&err).is_empty());
    }

    #[test]
    fn one_hint_follows_the_chain() {
        let err = attach(anyhow!("node cp: cannot connect"), "check that the node is up");
        assert_eq!(render(&err), "node cp: cannot connect\n  hint: check that the node is up");
    }

    #[test]
    fn a_hint_inside_a_context_chain_is_skipped_in_the_chain_and_shown_after_it() {
        let err = Err::<(), _>(anyhow!("exit code 1"))
            .context("step `init` failed")
            .hint("fix the cause and run `tagstack up` again")
            .context("the cluster stage")
            .unwrap_err();
        assert_eq!(
            render(&err),
            "the cluster stage: step `init` failed: exit code 1\n  hint: fix the cause and run `tagstack up` again"
        );
    }

    #[test]
    fn several_hints_one_line_each_innermost_first_each_once() {
        let err = Err::<(), _>(anyhow!("no host key"))
            .hint("give the node a host_key")
            .context("connecting")
            .hint("run `tagstack status` again")
            .hint("give the node a host_key")
            .unwrap_err();
        assert_eq!(
            render(&err),
            "connecting: no host key\n  hint: give the node a host_key\n  hint: run `tagstack status` again"
        );
    }

    #[test]
    fn a_typed_error_with_its_own_hint_keeps_it_after_the_chain() {
        #[derive(Debug)]
        struct Own;
        impl fmt::Display for Own {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "bad key{}", Line("fix the key"))
            }
        }
        impl std::error::Error for Own {}
        let err = Err::<(), _>(Own).context("loading").hint("then run again").unwrap_err();
        assert_eq!(render(&err), "loading: bad key\n  hint: fix the key\n  hint: then run again");
    }

    #[test]
    fn attached_hints_keep_the_chain_searchable() {
        #[derive(Debug, thiserror::Error)]
        #[error("typed")]
        struct Typed;
        let err = attach(Typed, "advice");
        assert!(err.chain().any(|e| e.is::<Typed>()));
    }
}
