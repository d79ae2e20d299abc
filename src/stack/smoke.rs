//! What a smoke check is and how its steps are judged: a check is a few shell command lines
//! for the control plane (each component builds its own: `kafka.rs`, `cassandra.rs`,
//! `spark.rs`), a step passes when it exits 0 and prints what it expects. Pure; `ops::stack`
//! runs the steps and hands their outcome in as a [`StepOutput`], so nothing here knows SSH.

use serde::Serialize;

use super::model::Component;

pub use crate::shell::sh_quote;

/// One step of a check: a shell command line on the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub what: String,
    pub command: String,
    /// The step passes only if its stdout contains this.
    pub expect: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub component: Component,
    pub name: &'static str,
    pub steps: Vec<Step>,
    /// Best effort after the steps, pass or fail (e.g. deleting the test topic).
    pub cleanup: Option<String>,
}

/// How one step ended, as the caller that ran it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutput {
    /// `None` when it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `kubectl exec` of `argv` (each argument quoted) in a pod's container.
pub fn exec(kubectl: &str, namespace: &str, pod: &str, container: &str, stdin: bool, argv: &[&str]) -> String {
    let args: Vec<String> = argv.iter().map(|a| sh_quote(a)).collect();
    format!(
        "{kubectl} exec{} -n {namespace} {pod} -c {container} -- {}",
        if stdin { " -i" } else { "" },
        args.join(" ")
    )
}

/// The line of `output` that shows what a step expected, if it is there.
pub fn judge<'a>(output: &'a str, expect: &str) -> Option<&'a str> {
    output.lines().find(|l| l.contains(expect))
}

/// The last few lines of a command's output, stderr after stdout, on one line.
fn tail(out: &StepOutput) -> String {
    let lines: Vec<&str> = out.stdout.lines().chain(out.stderr.lines()).filter(|l| !l.trim().is_empty()).collect();
    let last = &lines[lines.len().saturating_sub(5)..];
    if last.is_empty() { "no output".to_string() } else { last.join(" | ") }
}

/// Whether one step passed: it exited 0 and, if it expects something, printed it. The error
/// names the step and carries its last output lines (a Kafka consumer that timed out exits 0
/// and says why only on stderr).
pub fn judge_step(step: &Step, out: &StepOutput) -> Result<(), String> {
    match out.code {
        Some(0) => {}
        Some(code) => return Err(format!("{} exited with {code}: {}", step.what, tail(out))),
        None => return Err(format!("{} was killed: {}", step.what, tail(out))),
    }
    match &step.expect {
        Some(expect) if judge(&out.stdout, expect).is_none() => {
            Err(format!("{}: expected {expect:?} in its output; got: {}", step.what, tail(out)))
        }
        _ => Ok(()),
    }
}
