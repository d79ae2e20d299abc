//! The cluster stage: kubeadm over parallel SSH. Prepare every node at once; create the CA on
//! the control plane so the CA hash (and with tagstack's token, every join config) is known
//! before `kubeadm init`; then init the control plane and join all workers concurrently (joins
//! retry discovery until the API server answers); wait until every node is Ready; fetch the
//! admin kubeconfig. Every step is idempotent, so a failed or interrupted run is resumed by
//! running `up` again.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures_util::StreamExt;
use serde::Serialize;

use super::nodes::hosts;
use crate::cluster::render::{self, InitInput, NODE_DIR};
use crate::cluster::{ClusterNode, addons, endpoint, parse, token};
use crate::config::{NodeRole, Provider, Spec, format_duration};
use crate::hint;
use crate::poll::{Check, Look, poll_until};
use crate::remote::{EnvFiles, Fleet, RemoteError, RemoteErrors, known_hosts, ssh_config};
use crate::reporter::Reporter;

#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub name: String,
    pub node_name: String,
    pub role: NodeRole,
    pub ready: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub kubernetes_version: String,
    pub kubeconfig: PathBuf,
    pub nodes: Vec<NodeState>,
}

/// The environment's local directory: SSH client files, per-node logs, the kubeconfig.
pub fn env_dir(spec: &Spec) -> PathBuf {
    PathBuf::from(".tagstack").join(spec.id.cluster_name())
}

fn private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    // An existing file keeps its old mode on open: enforce 0600 for secrets.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// Writes ssh_config and known_hosts for the nodes; returns the paths.
pub fn write_env_files(spec: &Spec, nodes: &[ClusterNode]) -> Result<EnvFiles> {
    write_env_files_in(spec, &env_dir(spec), nodes)
}

/// [`write_env_files`] in another directory than the environment's own: a bake's builder gets
/// `bake/` under it, so that the files `tagstack ssh` reads keep listing the cluster's nodes.
pub fn write_env_files_in(spec: &Spec, dir: &Path, nodes: &[ClusterNode]) -> Result<EnvFiles> {
    let files = EnvFiles::new(dir);
    private_dir(&files.dir)?;
    private_dir(&files.logs)?;
    let unpinned: Vec<&str> = nodes.iter().filter(|n| n.host_key.is_none()).map(|n| n.name.as_str()).collect();
    if !unpinned.is_empty() && spec.ssh.known_hosts.is_none() {
        return Err(hint::attach(
            anyhow!(
                "no SSH host key is known for {}: tagstack never trusts a host key on first use",
                unpinned.join(", ")
            ),
            "give each [[nodes]] a host_key (its /etc/ssh/ssh_host_ed25519_key.pub), or point ssh.known_hosts at a file that lists them",
        ));
    }
    write_private(&files.known_hosts, &known_hosts(&hosts(nodes)))?;
    let cfg = ssh_config(
        &hosts(nodes),
        &absolute(&spec.ssh.private_key_path),
        &absolute(&files.known_hosts),
        spec.ssh.known_hosts.as_deref(),
    );
    write_private(&files.ssh_config, &cfg)?;
    Ok(files)
}

fn absolute(p: &Path) -> PathBuf {
    std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
}

/// Runs `f` on every node (at most `limit` at once) and waits for all of them, so that one
/// failure does not cut the others short; returns every failure.
async fn on_all<'a, T, F, Fut>(nodes: &'a [ClusterNode], limit: usize, f: F) -> Result<Vec<(String, T)>, RemoteErrors>
where
    F: Fn(&'a ClusterNode) -> Fut,
    Fut: std::future::Future<Output = Result<T, RemoteError>>,
{
    let results: Vec<(String, Result<T, RemoteError>)> = futures_util::stream::iter(nodes)
        .map(|n| {
            let fut = f(n);
            async move { (n.name.clone(), fut.await) }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (name, r) in results {
        match r {
            Ok(v) => ok.push((name, v)),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        ok.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(ok)
    } else {
        errors.sort_by(|a, b| a.node().cmp(b.node()));
        Err(RemoteErrors(errors))
    }
}

pub(super) async fn upload_and_run(
    fleet: &Fleet,
    node: &str,
    step: &str,
    name: &str,
    script: &str,
    r: &dyn Reporter,
) -> Result<Vec<String>, RemoteError> {
    let path = format!("{NODE_DIR}/{name}");
    fleet.upload(node, step, &path, script, true).await?;
    let key = format!("{step}/{node}");
    r.start(&key, step);
    match fleet.run(node, step, &path, r).await {
        Ok(lines) => {
            r.finish(&key, step);
            Ok(lines)
        }
        Err(e) => {
            r.fail(&key, &format!("{step}: failed"));
            Err(e)
        }
    }
}

pub async fn bootstrap(spec: &Spec, nodes: &[ClusterNode], r: &dyn Reporter) -> Result<ClusterReport> {
    let started = Instant::now();
    let limit = spec.cluster.max_parallel_ssh;
    let cp = nodes.iter().find(|n| n.role == NodeRole::ControlPlane).context("no control-plane node")?;
    let workers: Vec<ClusterNode> = nodes.iter().filter(|n| n.role == NodeRole::Worker).cloned().collect();

    let files = write_env_files(spec, nodes)?;
    let token = token::generate()?;
    let mut fleet = Fleet::connect(&hosts(nodes), &files, limit, r).await.map_err(RemoteErrors)?;
    // kubeadm prints the join command with the token: keep it out of logs and progress.
    fleet.redact(&token);
    let fleet = fleet;
    let run = Run { spec, nodes, cp, workers: &workers, token: &token, started, r };
    let result = run_stage(&fleet, run).await;
    // Success or not, no SSH master of ours outlives the stage.
    fleet.close().await;
    let (kubernetes_version, states, kubeconfig) = result?;
    Ok(ClusterReport { kubernetes_version, kubeconfig, nodes: states })
}

/// What one bootstrap works on: the nodes by role, its token, when it started (the stage's
/// deadline counts from there) and where it reports.
#[derive(Clone, Copy)]
struct Run<'a> {
    spec: &'a Spec,
    nodes: &'a [ClusterNode],
    cp: &'a ClusterNode,
    workers: &'a [ClusterNode],
    token: &'a str,
    started: Instant,
    r: &'a dyn Reporter,
}

/// The stage's steps over connected sessions: (Kubernetes version, node states, kubeconfig).
async fn run_stage(fleet: &Fleet, run: Run<'_>) -> Result<(String, Vec<NodeState>, PathBuf)> {
    let Run { spec, nodes, cp, workers, token, started, r } = run;
    let deadline = spec.cluster.bootstrap_timeout;
    let limit = spec.cluster.max_parallel_ssh;

    // 1. Every node at once, all at one Kubernetes patch: the configured one, else the one the
    // control plane already runs (a worker added later must not get a newer patch).
    let pinned = match spec.kubernetes_version.patch {
        Some(p) => Some(format!("{}.{}.{p}", spec.kubernetes_version.major, spec.kubernetes_version.minor)),
        None => control_plane_patch(fleet, spec, cp).await?,
    };
    let prepare_cp = render::prepare_script(spec, pinned.as_deref(), NodeRole::ControlPlane, &cp.private_ip)?;
    let prepare_worker = render::prepare_script(spec, pinned.as_deref(), NodeRole::Worker, &cp.private_ip)?;
    let versions = on_all(nodes, limit, |n| {
        let script = if n.role == NodeRole::ControlPlane { &prepare_cp } else { &prepare_worker };
        upload_and_run(fleet, &n.name, "prepare", "prepare-node.sh", script, r)
    })
    .await?;
    let mut reported = Vec::new();
    for (name, lines) in &versions {
        for key in ["kubeadm-version", "kubelet-version"] {
            let v = parse::value(lines, key).with_context(|| format!("node {name} did not report its {key}"))?;
            reported.push((format!("{name} ({})", key.trim_end_matches("-version")), v.to_string()));
        }
    }
    let kubernetes_version = crate::cluster::versions::same_kubernetes_version(&reported)?;

    // 2. The CA first: its hash goes into every join config.
    let ca_lines = upload_and_run(fleet, &cp.name, "ca", "control-plane-ca.sh", &render::ca_script()?, r).await?;
    let ca_hash = parse::value(&ca_lines, "ca-cert-hash")
        .filter(|h| parse::is_ca_hash(h))
        .context("the control plane printed no valid CA hash")?
        .to_string();

    // The endpoint init writes and workers join through: the stable name for a new cluster;
    // a cluster initialised before keeps its own (read after control-plane-ca.sh, which resets
    // an init of ours that did not finish).
    let existing = fleet.read(&cp.name, "endpoint", endpoint::EXISTING_ENDPOINT_COMMAND).await?;
    let endpoint = endpoint::decide(&spec.id, &existing)?;
    if !endpoint.stable_name {
        r.note(&format!(
            "the cluster keeps the control-plane endpoint {} it was initialised with (kubeadm cannot change it; \
             docs/control-plane-endpoint.md)",
            endpoint.host_port()
        ));
    }

    // 3. Init and all joins concurrently.
    let input =
        InitInput { spec, control_plane: cp, token, kubernetes_version: &kubernetes_version, endpoint: &endpoint };
    let init = async {
        fleet
            .upload(&cp.name, "init", &format!("{NODE_DIR}/kubeadm-init.yaml"), &render::init_config(&input)?, false)
            .await?;
        for (path, content) in render::addons(spec).iter().flat_map(|a| a.files.iter()) {
            fleet.upload(&cp.name, "init", &format!("{NODE_DIR}/addons/{path}"), content, false).await?;
        }
        upload_and_run(fleet, &cp.name, "init", "init-control-plane.sh", &render::init_script(&input)?, r)
            .await
            .map_err(anyhow::Error::from)
    };
    let joins = on_all(workers, limit, |n| {
        let config = render::join_config(spec, &endpoint, n, token, &ca_hash);
        let script = render::join_script(n, &ca_hash);
        async move {
            let local = |e: anyhow::Error| RemoteError::Local {
                what: format!("rendering the join files of {}", n.name),
                message: format!("{e:#}"),
            };
            let config = config.map_err(local)?;
            let script = script.map_err(local)?;
            fleet.upload(&n.name, "join", &format!("{NODE_DIR}/kubeadm-join.yaml"), &config, false).await?;
            upload_and_run(fleet, &n.name, "join", "join-worker.sh", &script, r).await
        }
    });
    // A failed init cannot be joined: report it at once instead of waiting out the workers'
    // discovery timeout (5 minutes with the real kubeadm), and stop the joins still running
    // there (dropping their SSH channels does not stop a remote process). A failed join still
    // lets init finish. The next `up` resets whatever either left (control-plane-ca.sh,
    // join-worker.sh).
    let outcome = {
        tokio::pin!(init, joins);
        tokio::select! {
            r = &mut init => match r {
                Ok(_) => Ok(joins.await),
                Err(e) => Err(e),
            },
            j = &mut joins => match init.await {
                Ok(_) => Ok(j),
                Err(e) => Err(e),
            },
        }
    };
    match outcome {
        Ok(joined) => {
            joined?;
        }
        Err(init_failed) => {
            let (stopped, unstopped) = stop_joins(fleet, workers, limit).await;
            if !stopped.is_empty() {
                r.note(&format!("init failed: stopped the kubeadm join still running on {}", stopped.join(", ")));
            }
            if !unstopped.is_empty() {
                r.note(&format!(
                    "kubeadm join may still be running on {} (the next `tagstack up` stops it)",
                    unstopped.join("; ")
                ));
            }
            return Err(init_failed);
        }
    }

    // 4. Ready, within what is left of the deadline.
    let states = wait_ready(fleet, spec, cp, nodes, deadline.saturating_sub(started.elapsed()), r).await?;

    // 5. The admin kubeconfig, pointed at the endpoint this machine reaches.
    let kubeconfig = fetch_kubeconfig(fleet, spec, cp).await?;
    Ok((kubernetes_version, states, kubeconfig))
}

/// Stops the `kubeadm join` of ours still running on each worker (join-worker.sh --stop, which
/// kills only the pid it recorded). Returns the workers where one was stopped, and those where
/// stopping failed (with why).
async fn stop_joins(fleet: &Fleet, workers: &[ClusterNode], limit: usize) -> (Vec<String>, Vec<String>) {
    let stop = format!("test ! -f {NODE_DIR}/join-worker.sh || bash {NODE_DIR}/join-worker.sh --stop");
    let results: Vec<(String, Result<bool, String>)> = futures_util::stream::iter(workers)
        .map(|n| {
            let stop = &stop;
            async move {
                let res = match tokio::time::timeout(Duration::from_secs(30), fleet.read(&n.name, "join", stop)).await {
                    Ok(Ok(out)) => Ok(out.contains("join: stopping kubeadm join")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer within 30s".to_string()),
                };
                (n.name.clone(), res)
            }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await;
    let mut stopped = Vec::new();
    let mut failed = Vec::new();
    for (name, res) in results {
        match res {
            Ok(true) => stopped.push(name),
            Ok(false) => {}
            Err(why) => failed.push(format!("{name} ({why})")),
        }
    }
    stopped.sort();
    failed.sort();
    (stopped, failed)
}

/// The Kubernetes patch (`1.36.2`) of the kubeadm package installed on the control plane, if it
/// is of the configured minor; `None` on a fresh machine.
async fn control_plane_patch(fleet: &Fleet, spec: &Spec, cp: &ClusterNode) -> Result<Option<String>> {
    let out = fleet.read(&cp.name, "prepare", "dpkg-query -W -f='${Version}' kubeadm 2>/dev/null || true").await?;
    let upstream = out.trim().split('-').next().unwrap_or_default();
    let minor = format!("{}.{}.", spec.kubernetes_version.major, spec.kubernetes_version.minor);
    Ok(upstream.strip_prefix(&minor).filter(|p| !p.is_empty()).map(|_| upstream.to_string()))
}

/// The nodes of `states` that are not ready yet, each with why (what a wait reports).
pub fn not_ready(states: &[(NodeState, String)]) -> Vec<String> {
    states.iter().filter(|(s, _)| !s.ready).map(|(s, why)| format!("{} ({why})", s.node_name)).collect()
}

/// Each node's state as the control plane sees it. With an external cloud provider (AWS) a
/// node counts as ready only once the cloud-controller-manager has initialised it (providerID
/// set, the uninitialized taint gone): until then nothing without a toleration runs there.
pub async fn node_states(
    fleet: &Fleet,
    cp: &ClusterNode,
    nodes: &[ClusterNode],
    external_cloud: bool,
) -> Result<Vec<(NodeState, String)>> {
    let json =
        fleet.read(&cp.name, "nodes", "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json").await?;
    let seen = parse::node_readiness(&json).context("parsing `kubectl get nodes -o json`")?;
    Ok(nodes
        .iter()
        .map(|n| {
            let s = seen.iter().find(|s| s.name == n.node_name);
            let (ready, why) = match s {
                None => (false, "not registered".to_string()),
                Some(s) if !s.ready => (false, s.why.clone()),
                Some(s) if external_cloud && !s.initialized() => (false, uninitialized_reason(s)),
                Some(s) => (true, s.why.clone()),
            };
            let state = NodeState { name: n.name.clone(), node_name: n.node_name.clone(), role: n.role, ready };
            (state, why)
        })
        .collect())
}

fn uninitialized_reason(s: &parse::NodeReadiness) -> String {
    let mut parts = Vec::new();
    if s.taints.iter().any(|t| t == parse::UNINITIALIZED_TAINT) {
        parts.push(format!("taint {}", parse::UNINITIALIZED_TAINT));
    }
    if s.provider_id.as_deref().is_none_or(str::is_empty) {
        parts.push("no spec.providerID".to_string());
    }
    format!("Ready but not initialised by the cloud-controller-manager ({})", parts.join(", "))
}

/// The add-on workloads that have not rolled out yet, each with why.
/// The add-on workloads that have not rolled out yet. With `explain` (for the deadline's
/// error, not every poll) each line also says why: the first pod of it that is not ready, from
/// one `kubectl get pods` per namespace involved.
async fn addons_pending(fleet: &Fleet, spec: &Spec, cp: &ClusterNode, explain: bool) -> Result<Vec<String>> {
    let expected = addons::workloads(spec);
    let json = fleet
        .read(
            &cp.name,
            "addons",
            "kubectl --kubeconfig /etc/kubernetes/admin.conf get daemonsets,deployments -A -o json",
        )
        .await?;
    let rollouts = parse::addon_rollouts(&expected, &json).context("parsing `kubectl get daemonsets,deployments`")?;
    let not_done: Vec<&parse::AddonRollout> = rollouts.iter().filter(|r| !r.done).collect();
    let mut pods_by_namespace: Vec<(&str, Vec<crate::stack::readiness::PodInfo>)> = Vec::new();
    if explain {
        for r in &not_done {
            let ns = r.workload.namespace;
            if pods_by_namespace.iter().any(|(n, _)| *n == ns) {
                continue;
            }
            let pods = fleet
                .read(
                    &cp.name,
                    "addons",
                    &format!("kubectl --kubeconfig /etc/kubernetes/admin.conf get pods -n {ns} -o json"),
                )
                .await
                .ok()
                .and_then(|json| crate::stack::readiness::pods(&json).ok())
                .unwrap_or_default();
            pods_by_namespace.push((ns, pods));
        }
    }
    let mut pending = Vec::new();
    for r in not_done {
        let w = &r.workload;
        let mut line = format!("{:?} {}/{} ({})", w.kind, w.namespace, w.name, r.detail);
        // Why: the first pod that is not ready, with its reason (Pending: the scheduler's).
        let pods =
            pods_by_namespace.iter().find(|(n, _)| *n == w.namespace).map(|(_, p)| p.as_slice()).unwrap_or_default();
        if let Some(p) = pods.iter().find(|p| p.name.starts_with(w.name) && !p.ready) {
            line.push_str(&format!(": pod {} {}", p.name, p.phase));
            if let Some(why) = &p.why {
                line.push_str(&format!(" ({why})"));
            }
        }
        pending.push(line);
    }
    Ok(pending)
}

async fn wait_ready(
    fleet: &Fleet,
    spec: &Spec,
    cp: &ClusterNode,
    nodes: &[ClusterNode],
    budget: Duration,
    r: &dyn Reporter,
) -> Result<Vec<NodeState>> {
    let external_cloud = spec.provider == Provider::Aws;
    let what = if external_cloud { "Ready and initialised" } else { "Ready" };
    r.start("ready", &format!("wait for {} node(s) to be {what} and the add-ons to roll out", nodes.len()));
    // Checked before each look: past the deadline the look is the last, and the one that explains.
    let waited = poll_until(
        budget,
        Duration::from_secs(2),
        Check::BeforeLook,
        async |last| {
            // A failed read (the API server restarting, an SSH hiccup) is one more reason to
            // wait, not the end of the stage: it is reported only if it is still the reason at
            // the deadline.
            let (states, mut waiting) = match node_states(fleet, cp, nodes, external_cloud).await {
                Ok(states) => {
                    let waiting = not_ready(&states);
                    (states, waiting)
                }
                Err(e) => (Vec::new(), vec![format!("reading the nodes: {e:#}")]),
            };
            // The add-ons' state too: a node stays uninitialised or NotReady because the CCM or
            // Flannel does not run, and their pods say why. Their rollout counts once the nodes do.
            match addons_pending(fleet, spec, cp, last).await {
                Ok(addons) if waiting.is_empty() => waiting = addons,
                Ok(addons) => waiting.extend(
                    addons
                        .into_iter()
                        .filter(|a| a.contains("/aws-cloud-controller-manager ") || a.contains("/kube-flannel-ds ")),
                ),
                Err(e) => waiting.push(format!("reading the add-ons: {e:#}")),
            }
            anyhow::Ok(if waiting.is_empty() { Look::Done(states) } else { Look::Waiting(waiting) })
        },
        |waiting| r.update("ready", &format!("waiting for {}", waiting.join(", "))),
    )
    .await?;
    match waited {
        Ok(states) => {
            r.finish("ready", &format!("{} node(s) {what}, add-ons rolled out", nodes.len()));
            Ok(states.into_iter().map(|(s, _)| s).collect())
        }
        Err(timeout) => {
            r.fail("ready", "cluster not ready");
            // Only `up` runs the cluster stage, so its advice is `up`'s.
            let err = anyhow!(
                "the cluster is not ready after {} (cluster.bootstrap_timeout {}): {} not ready:\n    {}",
                format_duration(timeout.waited()),
                format_duration(spec.cluster.bootstrap_timeout),
                timeout.last.len(),
                timeout.last.join("\n    "),
            );
            Err(hint::attach(
                err,
                format!("look at the node logs in {}/logs, then run `tagstack up` again", env_dir(spec).display()),
            ))
        }
    }
}

/// admin.conf with its server set to the control plane's public address (or the SSH address).
pub fn rewrite_server(admin_conf: &str, server: &str) -> String {
    admin_conf
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with("server: ") {
                format!("{}server: {server}", &l[..l.len() - t.len()])
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

pub async fn fetch_kubeconfig(fleet: &Fleet, spec: &Spec, cp: &ClusterNode) -> Result<PathBuf> {
    let admin = fleet.read(&cp.name, "kubeconfig", "cat /etc/kubernetes/admin.conf").await?;
    // The address this machine reaches the control plane on (public, private or static), not
    // the endpoint name, which only the nodes resolve; the API server's certificate carries it
    // (cluster::render's certSANs).
    let host = cp.address.clone();
    let path = env_dir(spec).join("kubeconfig");
    write_private(&path, &rewrite_server(&admin, &format!("https://{host}:{}", endpoint::API_SERVER_PORT)))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::rewrite_server;

    #[test]
    fn server_is_rewritten_keeping_indentation() {
        let conf = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: QUJD\n    server: https://10.0.0.5:6443\n  name: demo\n";
        let out = rewrite_server(conf, "https://203.0.113.9:6443");
        assert!(out.contains("    server: https://203.0.113.9:6443\n"), "{out}");
        assert!(!out.contains("10.0.0.5"));
        assert!(out.contains("certificate-authority-data: QUJD"));
    }
}
