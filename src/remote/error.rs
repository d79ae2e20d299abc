//! What can go wrong on a node, always naming the node (and the step, exit code and last
//! output lines when a script failed). Facts only: what to do about them depends on the
//! command that ran into them, so `ops::advice` adds it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    Connect { node: String, address: String, message: String },
    HostKey { node: String, address: String, expected: String, presented: String },
    Step { node: String, step: String, exit_code: Option<i32>, last_lines: Vec<String>, message: String },
    Local { what: String, message: String },
}

impl RemoteError {
    pub fn node(&self) -> &str {
        match self {
            RemoteError::Connect { node, .. } | RemoteError::HostKey { node, .. } | RemoteError::Step { node, .. } => {
                node
            }
            RemoteError::Local { .. } => "",
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Connect { node, address, message } => {
                write!(f, "node {node} ({address}): cannot connect over SSH: {message}")
            }
            RemoteError::HostKey { node, address, expected, presented } => write!(
                f,
                "node {node} ({address}): its SSH host key changed: expected {expected}, the server presents {presented}; refusing to connect"
            ),
            RemoteError::Step { node, step, exit_code, last_lines, message } => {
                write!(f, "node {node}: step `{step}` failed")?;
                if let Some(c) = exit_code {
                    write!(f, " with exit code {c}")?;
                }
                write!(f, ": {message}")?;
                if !last_lines.is_empty() {
                    write!(f, "\n  last lines:")?;
                    for l in last_lines {
                        write!(f, "\n    | {l}")?;
                    }
                }
                Ok(())
            }
            RemoteError::Local { what, message } => write!(f, "{what}: {message}"),
        }
    }
}

impl std::error::Error for RemoteError {}

/// Several nodes failed in one phase.
#[derive(Debug)]
pub struct RemoteErrors(pub Vec<RemoteError>);

impl fmt::Display for RemoteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RemoteErrors {}
