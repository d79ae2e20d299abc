//! The monitoring add-on on a running cluster: `up` applies it after the stack (with Grafana's
//! admin Secret, made on the control plane when absent, and with Kafka kafka_exporter's SCRAM
//! user, made by `ops::kafka::make_user`) and waits for it by the stack's rollout rules;
//! `status` shows its workloads and how many alerts fire; `tagstack monitoring password`
//! prints the admin password (only there, only on request); `tagstack monitoring open` tunnels
//! a `kubectl port-forward` on the control plane to this machine's loopback. `down` removes it
//! with the stack's namespaces (`ops::stack::teardown`). What it renders and reads is
//! `crate::monitoring`'s; this module only runs it.

use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::cluster::write_env_files;
use super::env::Env;
use super::nodes::{nodes, on_control_plane};
use super::stack::{KUBECTL, Watch, owned_selector, wait_ready};
use crate::cluster::ClusterNode;
use crate::cluster::render::NODE_DIR;
use crate::config::Spec;
use crate::hint;
use crate::monitoring::deploy::{self, GRAFANA_SECRET, NAMESPACE};
use crate::monitoring::live::{self, Target};
use crate::remote::Fleet;
use crate::reporter::Reporter;
use crate::stack::kafka::User;
use crate::stack::readiness::{self, WorkloadStatus};
use crate::stack::{APPLY, Component};

/// What `up` reports for the add-on, and `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct MonitoringReport {
    pub workloads: Vec<WorkloadStatus>,
    /// Names of the alerts firing now, one per alert (`status` only; `up` just waited for the
    /// rollout, so Prometheus has not evaluated its rules yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firing: Option<Vec<String>>,
    /// Why the alerts could not be read (Prometheus starting, or down); the rest stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts_error: Option<String>,
}

fn watch(spec: &Spec) -> Watch {
    Watch {
        what: "monitoring",
        components: vec![Component::Monitoring],
        expected: deploy::workloads(spec),
        list: list_workloads(spec),
    }
}

/// Every namespace, by the environment's labels: the add-on spans two (`deploy::namespaces`);
/// the stack's workloads in the list are not among the expected ones and are not looked at.
fn list_workloads(spec: &Spec) -> String {
    format!("{KUBECTL} get statefulsets,deployments,daemonsets -A -l {} -o json", owned_selector(spec))
}

/// Applies the add-on (after the stack) and waits until every workload rolled out. `None`
/// with `[monitoring]` off.
pub async fn deploy(
    spec: &Spec,
    fleet: &Fleet,
    cp: &ClusterNode,
    r: &dyn Reporter,
) -> Result<Option<MonitoringReport>> {
    let Some(manifest) = deploy::manifest(spec)? else { return Ok(None) };
    let key = "stack/monitoring";
    r.start(key, "apply monitoring");
    let read = |command: String| async move { fleet.read(&cp.name, "monitoring", &command).await };
    let (namespaces, classes) = tokio::try_join!(
        read(format!("{KUBECTL} get namespaces -o json")),
        read(format!("{KUBECTL} get storageclasses -o json"))
    )?;
    let ours = deploy::namespaces().map(str::to_string);
    let foreign = readiness::foreign_namespaces(&namespaces, &ours, &spec.id.cluster_name())?;
    if let Some(ns) = foreign.first() {
        r.fail(key, "apply monitoring: refused");
        let err = anyhow!(
            "the namespace {ns} exists in the cluster without tagstack's labels for {}: refusing to take it over (`tagstack down` deletes it)",
            spec.id.cluster_name()
        );
        return Err(hint::attach(
            err,
            "delete it if it is a leftover, or turn [monitoring] off: tagstack's monitoring lives in that namespace",
        ));
    }
    // Prometheus's volume binds like the stack's.
    if let Err(e) = readiness::check_storage_class(&classes, spec.stack.storage_class.as_deref()) {
        r.fail(key, "apply monitoring: refused");
        return Err(e.into());
    }
    let path = format!("{}/{}", monitoring_dir(), manifest.file);
    let applied = async {
        fleet.upload(&cp.name, "monitoring", &path, &manifest.content, false).await?;
        // The namespace comes with the file; Grafana's pod waits for its Secret, made next.
        fleet.read(&cp.name, "monitoring", &format!("{KUBECTL} {APPLY} -f {path}")).await?;
        let script = format!("{}/grafana-secret.sh", monitoring_dir());
        fleet.upload(&cp.name, "monitoring", &script, &deploy::grafana_secret_script(spec, KUBECTL), true).await?;
        fleet.read(&cp.name, "monitoring", &format!("bash {script}")).await
    }
    .await;
    if let Err(e) = applied {
        r.fail(key, "apply monitoring: failed");
        return Err(anyhow::Error::new(e).context(format!("applying {} ({path} on {})", manifest.file, cp.name)));
    }
    // kafka_exporter's SCRAM user and its Secret in `monitoring` (which the manifest just made):
    // Kafka is ready (the stack stage waited for it); its pod waits for the Secret, like
    // Grafana's. Rerun: the Secret and its password are kept, the credential and ACLs upserted.
    if spec.stack.kafka.is_some()
        && let Err(e) = super::kafka::make_user(spec, fleet, cp, r, &User::exporter(), &monitoring_dir()).await
    {
        r.fail(key, "apply monitoring: failed");
        return Err(e.context("making kafka_exporter's Kafka user"));
    }
    r.update(key, "monitoring: applied, waiting until ready");
    let workloads = wait_ready(spec, fleet, cp, r, &watch(spec)).await?;
    Ok(Some(MonitoringReport { workloads, firing: None, alerts_error: None }))
}

/// Where the add-on's files go on the control plane, beside the stack's.
fn monitoring_dir() -> String {
    format!("{NODE_DIR}/monitoring")
}

/// The add-on's workloads and firing alerts, for `status`. `None` with `[monitoring]` off.
pub async fn status(spec: &Spec, fleet: &Fleet, cp: &ClusterNode) -> Result<Option<MonitoringReport>> {
    if spec.monitoring.is_none() {
        return Ok(None);
    }
    let (list, alerts) = (list_workloads(spec), format!("{KUBECTL} get --raw {}", live::alerts_path()));
    let (json, alerts) =
        tokio::join!(fleet.read(&cp.name, "monitoring", &list), fleet.read(&cp.name, "monitoring", &alerts));
    let workloads = readiness::workload_status(&deploy::workloads(spec), &json?)?;
    let (firing, alerts_error) = match alerts.map_err(anyhow::Error::from).and_then(|a| live::firing(&a)) {
        Ok(names) => (Some(names), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Ok(Some(MonitoringReport { workloads, firing, alerts_error }))
}

/// `[monitoring]` is off: nothing to show or open.
#[derive(Debug, thiserror::Error)]
#[error("monitoring is not enabled in {0}")]
pub struct NotEnabled(pub String);

/// Grafana's admin password, read from its Secret on the control plane. The read goes through
/// `Fleet::exec`, which logs nothing; the caller prints it to stdout and nowhere else.
pub async fn password(env: &Env<'_>) -> Result<String> {
    if env.spec.monitoring.is_none() {
        return Err(NotEnabled(env.spec.file.display().to_string()).into());
    }
    let nodes = nodes(env).await?;
    let json = on_control_plane(env.spec, &nodes, async |fleet, cp| {
        let cmd = format!("{KUBECTL} get secret -n {NAMESPACE} {GRAFANA_SECRET} -o json");
        let out = fleet.exec(&cp.name, "monitoring", &cmd).await?;
        if out.code != Some(0) {
            let err = anyhow!("reading the Secret {NAMESPACE}/{GRAFANA_SECRET} failed: {}", out.stderr.trim());
            return Err(hint::attach(err, "`tagstack up` creates it with the monitoring add-on"));
        }
        Ok(out.stdout)
    })
    .await?;
    Ok(live::grafana_credentials(&json)?.1)
}

/// Opens the tunnel: `ssh -L 127.0.0.1:PORT:127.0.0.1:PORT` to the control plane, where
/// `kubectl port-forward` listens on its loopback only; nothing is exposed beyond this
/// machine's loopback and the SSH connection. Calls `ready(url)` once the forward listens,
/// then runs until the tunnel ends (Ctrl-C, or ssh exits).
pub async fn open(env: &Env<'_>, target: Target, port: u16, ready: &mut dyn FnMut(&str)) -> Result<()> {
    if env.spec.monitoring.is_none() {
        return Err(NotEnabled(env.spec.file.display().to_string()).into());
    }
    let nodes = nodes(env).await?;
    let cp = nodes.iter().find(|n| n.role == crate::config::NodeRole::ControlPlane).context("no control-plane node")?;
    let files = write_env_files(env.spec, &nodes)?;
    let forward = format!("127.0.0.1:{port}:127.0.0.1:{port}");
    let mut child = tokio::process::Command::new("ssh")
        .arg("-F")
        .arg(&files.ssh_config)
        .args(["-o", "ExitOnForwardFailure=yes", "-L", &forward, "--", &cp.name])
        .arg(as_root(&cp.user, &live::port_forward_command(KUBECTL, target, port)))
        // Held open while tagstack runs: its end is what stops the remote port-forward.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("running ssh")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("ssh has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut announced = false;
    // Stopped by Ctrl-C or SIGTERM: ssh goes too, whatever connections a browser keeps open
    // (ssh itself would wait for them).
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("listening for SIGTERM")?;
    loop {
        tokio::select! {
            line = lines.next_line() => match line.context("reading ssh's output")? {
                Some(line) => {
                    if !announced && live::is_forwarding(&line, port) {
                        announced = true;
                        ready(&format!("http://127.0.0.1:{port}/"));
                    }
                    tracing::debug!(target: "monitoring", "{line}");
                }
                None => break,
            },
            _ = tokio::signal::ctrl_c() => return stop(child).await,
            _ = term.recv() => return stop(child).await,
        }
    }
    drop(stdin);
    let status = child.wait().await.context("waiting for ssh")?;
    if !announced {
        bail!(
            "the tunnel to {} on {} ended before it was ready (ssh exited with {status}); is local port {port} free?",
            target.service(),
            cp.name
        );
    }
    Ok(())
}

/// `command` for the remote shell of `user`, as root: admin.conf is root's only (0600). The same
/// rule as `remote::Fleet`'s (`sudo -n sh -c` unless the login is root); sudo passes stdin on.
fn as_root(user: &str, command: &str) -> String {
    if user == "root" { command.to_string() } else { format!("sudo -n sh -c {}", crate::shell::sh_quote(command)) }
}

/// Ends the tunnel: ssh is killed (its end closes the remote `cat`, which stops the forward).
async fn stop(mut child: tokio::process::Child) -> Result<()> {
    let _ = child.kill().await;
    Ok(())
}
