//! What the user should do about a failure, decided for the command that ran into it: the one
//! table from the facts lower layers report as typed errors (a node unreachable over SSH, a
//! changed host key, a failed step, an AWS step out of time, no image, instances not running,
//! no host keys, no containerd for a minor, nodes on different versions, no StorageClass) to
//! the hints `hint::render` prints after the cause chain. A remote failure during `status` says
//! to run `status` again, during `up` to run `up` again. Errors `ops` raises itself attach their
//! advice where they are raised; this table is for facts from `aws`, `remote`, `cluster` and
//! `stack`, which must not know the command. It adds hints only: never changes or hides a fact.

use crate::aws::error::{NoHostKeys, NoImage, NotRunning};
use crate::aws::retry::{DeadlineExceeded, RetryError};
use crate::cluster::upgrade::SkewRefused;
use crate::cluster::versions::{NoContainerd, VersionsDiffer};
use crate::hint;
use crate::remote::{RemoteError, RemoteErrors};
use crate::stack::readiness::StorageClassError;

/// The command whose failure is being advised on: hints name it when they say "run again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Up,
    Plan,
    Status,
    Down,
    Reap,
    Kubeconfig,
    Ssh,
    Smoke,
    Render,
    Backup,
    Restore,
    Bake,
    /// `tagstack monitoring password|open`.
    Monitoring,
    /// `tagstack kafka user add|client-config`.
    Kafka,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Up => "up",
            Command::Plan => "plan",
            Command::Status => "status",
            Command::Down => "down",
            Command::Reap => "reap",
            Command::Kubeconfig => "kubeconfig",
            Command::Ssh => "ssh",
            Command::Smoke => "smoke",
            Command::Render => "render",
            Command::Backup => "backup",
            Command::Restore => "restore",
            Command::Bake => "bake",
            Command::Monitoring => "monitoring",
            Command::Kafka => "kafka",
        }
    }
}

/// `err` with the hints for every fact in its chain, as true for `cmd`. Advising twice adds
/// nothing: a hint already attached is not attached again.
pub fn advise(err: anyhow::Error, cmd: Command) -> anyhow::Error {
    let mut seen: Vec<String> = hint::hints(&err).into_iter().map(str::to_string).collect();
    let mut new = Vec::new();
    for h in hints_for(&err, cmd) {
        if !seen.contains(&h) {
            seen.push(h.clone());
            new.push(h);
        }
    }
    new.into_iter().fold(err, hint::attach)
}

/// `err` as the user of `cmd` reads it: the facts, then the advice.
pub fn render(err: anyhow::Error, cmd: Command) -> String {
    hint::render(&advise(err, cmd))
}

/// The hints for the facts in `err`'s chain, innermost first.
fn hints_for(err: &anyhow::Error, cmd: Command) -> Vec<String> {
    let mut out = Vec::new();
    for cause in err.chain().rev() {
        if let Some(e) = cause.downcast_ref::<RemoteErrors>() {
            out.extend(e.0.iter().filter_map(|e| remote(e, cmd)));
        } else if let Some(e) = cause.downcast_ref::<RemoteError>() {
            out.extend(remote(e, cmd));
        } else if cause.is::<DeadlineExceeded>()
            || cause.downcast_ref::<RetryError>().is_some_and(|e| matches!(e, RetryError::Deadline(_)))
        {
            out.push("AWS is eventually consistent and this did not settle within timeouts.aws_consistency; run the command again, or raise that timeout".into());
        } else if cause.is::<NoImage>() {
            out.push("check ami.id / ami.owner / ami.name and the region".into());
        } else if cause.is::<NotRunning>() {
            out.push("raise timeouts.instances_running, or look at the instances' state in the console".into());
        } else if cause.is::<NoHostKeys>() {
            out.push(format!(
                "cloud-init prints them at first boot, usually within two minutes (run `tagstack {}` again, or raise timeouts.instances_running); a node whose console no longer shows them and that tagstack never saw must be verified by hand (see the README, \"How host keys are trusted\")",
                cmd.name()
            ));
        } else if let Some(e) = cause.downcast_ref::<NoContainerd>() {
            out.push(format!("use kubernetes_version = \"1.{}\"", e.newest));
        } else if let Some(e) = cause.downcast_ref::<VersionsDiffer>() {
            out.push(format!(
                "set kubernetes_version to the exact patch the control plane runs (e.g. \"{}\") and run `tagstack {}` again",
                e.first,
                cmd.name()
            ));
        } else if let Some(e) = cause.downcast_ref::<SkewRefused>() {
            out.push(skew(e));
        } else if let Some(e) = cause.downcast_ref::<StorageClassError>() {
            out.extend(storage_class(e));
        }
    }
    out
}

fn remote(e: &RemoteError, cmd: Command) -> Option<String> {
    let again = format!("run `tagstack {}` again", cmd.name());
    match e {
        RemoteError::Connect { .. } => Some(format!(
            "check that the node is up and sshd listens, and that admin_cidrs / firewalls let you in; then {again}"
        )),
        RemoteError::HostKey { .. } => Some(
            "if the machine was really re-installed, update its host_key (or known_hosts) and run again; otherwise someone may be intercepting the connection".into(),
        ),
        // Only `up` skips what it finished before; other commands simply start over.
        RemoteError::Step { .. } if cmd == Command::Up => {
            Some(format!("fix the cause and {again}; finished steps are not repeated"))
        }
        RemoteError::Step { .. } => Some(format!("fix the cause and {again}")),
        RemoteError::Local { .. } => None,
    }
}

/// The supported path: one minor at a time, or no way down.
fn skew(e: &SkewRefused) -> String {
    let path = e.path();
    match e {
        SkewRefused::Downgrade { running, .. } => format!(
            "tagstack does not downgrade: set kubernetes_version = \"{}\" (what runs), or build a new cluster at the older version (`tagstack down`, then `tagstack up`)",
            running.minor_text()
        ),
        SkewRefused::Skip { .. } | SkewRefused::Unfinished { .. } => {
            let (first, rest) = path.split_first().map(|(f, r)| (f.clone(), r.to_vec())).unwrap_or_default();
            let then: String = rest.iter().map(|m| format!(", then {m}")).collect();
            format!(
                "upgrade to {first} first{then}: set kubernetes_version = \"{first}\" and run `tagstack up`, then raise it by one minor and run it again"
            )
        }
    }
}

fn storage_class(e: &StorageClassError) -> Option<String> {
    match e {
        StorageClassError::Unreadable(_) => None,
        StorageClassError::Missing { .. } => Some(
            "on AWS the cluster stage installs \"gp3\" (`tagstack up --only cluster`); elsewhere set stack.storage_class to an existing class".into(),
        ),
        StorageClassError::NoDefault { .. } => Some(
            "set stack.storage_class to an existing class, or install a provisioner (e.g. local-path-provisioner) and mark its class as the default".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    // Moved from cluster/tests.rs (cluster does not import ops): nodes on different versions
    // get the advice to pin one.
    #[test]
    fn nodes_on_different_versions_are_advised_to_pin_one() {
        use crate::cluster::versions::same_kubernetes_version;
        let differ = vec![("cp".to_string(), "v1.36.1".to_string()), ("w1".to_string(), "v1.36.2".to_string())];
        let e = render(same_kubernetes_version(&differ).unwrap_err(), Command::Up);
        assert!(e.contains("cp v1.36.1, w1 v1.36.2") && e.contains("kubernetes_version"), "{e}");
    }

    fn connect(node: &str) -> RemoteError {
        RemoteError::Connect { node: node.into(), address: "10.0.0.1".into(), message: "refused".into() }
    }

    fn step(node: &str) -> RemoteError {
        RemoteError::Step {
            node: node.into(),
            step: "init".into(),
            exit_code: Some(1),
            last_lines: vec!["boom".into()],
            message: "exit status 1".into(),
        }
    }

    #[test]
    fn a_remote_failure_tells_to_run_the_command_that_failed_again() {
        let up = render(anyhow::Error::new(connect("cp")).context("connecting"), Command::Up);
        assert_eq!(
            up,
            "connecting: node cp (10.0.0.1): cannot connect over SSH: refused\n  hint: check that the node is up and sshd listens, and that admin_cidrs / firewalls let you in; then run `tagstack up` again"
        );
        let status = render(anyhow::Error::new(connect("cp")), Command::Status);
        assert!(status.ends_with("let you in; then run `tagstack status` again"), "{status}");
        assert!(!status.contains("tagstack up"), "{status}");
    }

    #[test]
    fn only_up_promises_that_finished_steps_are_not_repeated() {
        let up = render(step("cp").into(), Command::Up);
        assert!(
            up.ends_with("\n  hint: fix the cause and run `tagstack up` again; finished steps are not repeated"),
            "{up}"
        );
        let smoke = render(step("cp").into(), Command::Smoke);
        assert!(smoke.ends_with("\n  hint: fix the cause and run `tagstack smoke` again"), "{smoke}");
    }

    #[test]
    fn several_failed_nodes_get_their_advice_once() {
        let err: anyhow::Error = RemoteErrors(vec![step("w1"), step("w2"), connect("w3")]).into();
        let text = render(err, Command::Up);
        assert_eq!(text.matches("hint:").count(), 2, "{text}");
        assert!(text.contains("node w1: step `init` failed") && text.contains("node w2: step `init` failed"), "{text}");
    }

    #[test]
    fn advising_twice_adds_nothing() {
        let once = advise(step("cp").into(), Command::Up);
        let twice = advise(advise(step("cp").into(), Command::Up), Command::Up);
        assert_eq!(hint::render(&once), hint::render(&twice));
        assert_eq!(twice.chain().filter(|e| e.is::<hint::Hinted>()).count(), 1);
    }

    #[test]
    fn a_fact_without_advice_stays_as_it_was() {
        let err = Err::<(), _>(anyhow::anyhow!("root")).context("outer").unwrap_err();
        assert_eq!(render(err, Command::Down), "outer: root");
    }

    #[test]
    fn typed_facts_deep_in_a_chain_are_found() {
        let err =
            anyhow::Error::new(NoImage { what: "AMI ami-1".into(), region: "eu-west-1".into() }).context("resolve AMI");
        assert_eq!(
            render(err, Command::Up),
            "resolve AMI: no image matches AMI ami-1 in eu-west-1\n  hint: check ami.id / ami.owner / ami.name and the region"
        );
    }
}
