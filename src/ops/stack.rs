//! The stack stage: render the manifests; run each component's script before the apply (its
//! Secrets, made on the control plane); apply them on the control plane with
//! `kubectl apply --server-side`; wait until every workload is ready (naming the ones that are
//! not, with their pods and last events); run each component's script once ready (Cassandra's
//! superuser); refuse to switch a running Cassandra to authentication or required TLS
//! silently; report status,
//! run the smoke checks, and delete the stack's volumes, load balancers and (with the last stack
//! of the cluster) its CA before `down` removes the cluster. All kubectl runs on the control plane over [`Fleet`]; the kubectl command lines
//! are built here as text. It never reads a secret: the scripts do, on the node.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use crate::cluster::ClusterNode;
use crate::cluster::render::{NODE_DIR, addons};
use crate::config::{Spec, format_duration};
use crate::hint;
use crate::poll::{Check, Look, Timeout, poll_until};
use crate::remote::Fleet;
use crate::reporter::Reporter;
use crate::stack::readiness::{self, WorkloadStatus};
use crate::stack::render::{LABEL_MANAGED_BY, MANAGER};
use crate::stack::smoke::StepOutput;
use crate::stack::{
    APPLY, Component, Endpoint, Workload, endpoints, manifests, smoke_checks, smoke_manifests, workloads,
};
use crate::stack::{cassandra, cassandra_ring};

pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// Where the manifests go on the control plane.
pub fn stack_dir() -> String {
    format!("{NODE_DIR}/stack")
}

/// Every file `tagstack render` writes, relative to its output directory: the cluster add-ons
/// (a kustomization that applies them in tagstack's order), one manifest per component and,
/// with `[monitoring]` on, the monitoring add-on's.
pub fn rendered_files(spec: &Spec) -> Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    let mut resources = Vec::new();
    for addon in addons(spec) {
        if addon.files.is_empty() {
            resources.push(addon.source.clone());
        }
        for (path, content) in &addon.files {
            files.push((Path::new("addons").join(path), content.clone()));
            // A kustomization directory is a resource by its directory.
            let resource = path.strip_suffix("/kustomization.yaml").map_or_else(|| path.clone(), |d| format!("{d}/"));
            resources.push(resource);
        }
    }
    let kustomization = format!(
        "# The cluster add-ons of {} in the order `tagstack up` applies them: kubectl apply -k addons/\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}",
        spec.id.cluster_name(),
        resources.iter().map(|r| format!("  - {r}\n")).collect::<String>()
    );
    files.insert(0, (PathBuf::from("addons/kustomization.yaml"), kustomization));
    for m in manifests(spec)?.into_iter().chain(smoke_manifests(spec)?) {
        files.push((Path::new("stack").join(&m.file), m.content));
    }
    if let Some(m) = crate::monitoring::deploy::manifest(spec)? {
        files.push((Path::new("monitoring").join(&m.file), m.content));
    }
    Ok(files)
}

/// Writes [`rendered_files`] under `out`; returns the paths written.
pub fn write_rendered(spec: &Spec, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, content) in rendered_files(spec)? {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// What `up` reports for the stack, and `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StackReport {
    pub workloads: Vec<WorkloadStatus>,
    pub endpoints: Vec<Endpoint>,
}

/// This environment's StatefulSets and Deployments (a cluster may hold other environments').
fn list_workloads(spec: &Spec) -> String {
    format!("{KUBECTL} get statefulsets,deployments -A -l {} -o json", owned_selector(spec))
}

/// Checks, before anything is applied, what would otherwise fail late or destroy data: a
/// namespace of the same name that tagstack did not make (`down` deletes the stack's
/// namespaces), clients the first network policies would cut off, a change of the running
/// Kafka quorum, claims that could never bind. The
/// reads run concurrently. Returns how Cassandra's ring starts (`stack::cassandra_ring`), when
/// Cassandra is on.
async fn preflight(spec: &Spec, fleet: &Fleet, cp: &ClusterNode) -> Result<Option<cassandra_ring::Plan>> {
    let read =
        |command: String| async move { fleet.read(&cp.name, "stack", &command).await.map_err(anyhow::Error::from) };
    let kafka_sets = async {
        match &spec.stack.kafka {
            Some(k) => {
                read(format!("{KUBECTL} get statefulsets -n {} -l {} -o json", k.namespace, owned_selector(spec)))
                    .await
                    .map(Some)
            }
            None => Ok(None),
        }
    };
    let (namespaces, policies, classes, kafka_sets) = tokio::try_join!(
        read(format!("{KUBECTL} get namespaces -o json")),
        read(format!("{KUBECTL} get networkpolicies -A -l {} -o json", owned_selector(spec))),
        read(format!("{KUBECTL} get storageclasses -o json")),
        kafka_sets
    )?;
    let foreign = readiness::foreign_namespaces(&namespaces, &spec.stack.namespaces(), &spec.id.cluster_name())?;
    if !foreign.is_empty() {
        let err = anyhow!(
            "namespace(s) {} exist in the cluster without tagstack's labels for {}: refusing to take them over (`tagstack down` deletes the stack's namespaces)",
            foreign.join(", "),
            spec.id.cluster_name()
        );
        return Err(hint::attach(
            err,
            "set another stack.<component>.namespace, or delete the namespace if it is a leftover",
        ));
    }
    refuse_cutting_off_clients(spec, &namespaces, &policies, read).await?;
    // Kafka cannot change a static KRaft quorum in place: refuse rather than break the brokers.
    if let (Some(k), Some(live)) = (&spec.stack.kafka, &kafka_sets) {
        refuse_plaintext_kafka(k, live)?;
        let want = crate::stack::kafka::voters(k);
        if let Some((sts, was)) = readiness::kafka_voters_in(live)?.into_iter().find(|(_, v)| *v != want) {
            let err = anyhow!(
                "the Kafka quorum would change (StatefulSet {}/{sts} runs with voters {was}; the config now gives {want}): Kafka cannot change a static KRaft quorum on a running cluster",
                k.namespace,
            );
            return Err(hint::attach(
                err,
                format!(
                    "restore stack.kafka.brokers / stack.kafka.controllers, or start Kafka over: delete its namespace {} (its data goes with it) and run `tagstack up` again",
                    k.namespace
                ),
            ));
        }
    }
    if spec.stack.kafka.is_some() || spec.stack.cassandra.is_some() {
        readiness::check_storage_class(&classes, spec.stack.storage_class.as_deref())?;
    }
    if let Some(c) = &spec.stack.cassandra {
        let sets =
            read(format!("{KUBECTL} get statefulsets -n {} -l {} -o json", c.namespace, owned_selector(spec))).await?;
        refuse_silent_auth_change(c, &sets)?;
        refuse_silent_tls_change(c, &sets)?;
        let claims = read(format!("{KUBECTL} get persistentvolumeclaims -n {} -o json", c.namespace)).await?;
        return Ok(Some(cassandra_ring::decide(&cassandra_ring::observe(&sets, &claims)?, c.replicas)));
    }
    Ok(None)
}

/// A scale-up of a `Parallel` Cassandra StatefulSet by more than one node, one node at a time:
/// apply `replicas` and wait until that node has bootstrapped (its CQL port opens only then),
/// so that no two nodes ever bootstrap together (`cassandra_ring`).
async fn grow_cassandra(
    spec: &Spec,
    fleet: &Fleet,
    cp: &ClusterNode,
    ring: &cassandra_ring::Plan,
    replicas: u32,
    r: &dyn Reporter,
) -> Result<()> {
    let mut step = spec.clone();
    if let Some(c) = step.stack.cassandra.as_mut() {
        c.replicas = replicas;
    }
    let Some(m) = crate::stack::cassandra_manifest(&step, ring)? else { return Ok(()) };
    let path = format!("{}/{}", stack_dir(), m.file);
    r.start("stack/cassandra", &format!("grow cassandra to {replicas} node(s), one bootstrap at a time"));
    fleet.upload(&cp.name, "stack", &path, &m.content, false).await?;
    fleet
        .read(&cp.name, "stack", &format!("{KUBECTL} {APPLY} -f {path}"))
        .await
        .with_context(|| format!("applying {} with {replicas} Cassandra node(s) ({path} on {})", m.file, cp.name))?;
    let watch = Watch {
        what: "stack",
        components: vec![Component::Cassandra],
        expected: workloads(&step).into_iter().filter(|w| w.component == Component::Cassandra).collect(),
        list: list_workloads(spec),
    };
    wait_ready(spec, fleet, cp, r, &watch).await?;
    Ok(())
}

/// An environment whose Cassandra was created before tagstack turned authentication on: `up`
/// would roll every node onto PasswordAuthenticator, and every client that connects without
/// credentials (all of them, until now) would be refused. That is never done silently: `up`
/// stops before changing anything and says how to migrate.
fn refuse_silent_auth_change(c: &crate::config::CassandraSpec, sets: &str) -> Result<()> {
    let Some(commands) = readiness::statefulset_commands(sets, "cassandra")? else { return Ok(()) };
    if cassandra::runs_with_auth(&commands) {
        return Ok(());
    }
    let err = anyhow!(
        "Cassandra in namespace {} runs without authentication (created before tagstack turned it on); applying this version would restart every node with PasswordAuthenticator and CassandraAuthorizer, and every client without credentials would be refused: nothing was changed",
        c.namespace
    );
    Err(hint::attach(
        err,
        format!(
            "migrate deliberately (docs/security.md, \"Migrating an existing environment\"): give your clients the credentials first (after the migration: Secret {}/{}), or recreate Cassandra: delete its namespace {} (its data goes with it) and run `tagstack up` again",
            c.namespace,
            cassandra::ADMIN_SECRET,
            c.namespace
        ),
    ))
}

/// A stack that ran before tagstack applied network policies accepted every pod of the cluster;
/// the first `up` that applies them admits only namespaces labelled `tagstack/client=true`
/// (docs/network-policies.md). Cutting off an application that way would be a silent outage, so
/// `up` stops, before changing anything, while a namespace with pods has not been labelled
/// either way, and names each one.
/// `namespaces` and `policies` are preflight's reads (`get namespaces`, this environment's
/// NetworkPolicies); the pods are read only on that first `up`.
async fn refuse_cutting_off_clients<F>(
    spec: &Spec,
    namespaces: &str,
    policies: &str,
    read: impl Fn(String) -> F,
) -> Result<()>
where
    F: std::future::Future<Output = Result<String>>,
{
    let wanted = spec.stack.namespaces();
    if !readiness::policies_introduced(namespaces, policies, &wanted, &spec.id.cluster_name())? {
        return Ok(());
    }
    let pods = read(format!("{KUBECTL} get pods -A -o json")).await?;
    let cut = readiness::clients_cut_off(namespaces, &pods)?;
    let Some(first) = cut.first() else { return Ok(()) };
    let label = crate::stack::netpol::CLIENT_LABEL;
    let err = anyhow!(
        "this version of tagstack enforces network policies on the stack (namespaces {}), which ran without them: pods in namespace(s) {} (not labelled {label}) would no longer reach Kafka, Cassandra or the Spark master: nothing was changed",
        wanted.join(", "),
        cut.join(", "),
    );
    Err(hint::attach(
        err,
        format!(
            "label each of them: `kubectl label namespace {first} {label}=true` if its pods use the stack, `{label}=false` if not; then run `tagstack up` again (docs/network-policies.md)"
        ),
    ))
}

/// An environment whose Cassandra was created with client TLS optional and plaintext gossip:
/// requiring TLS would refuse every plaintext client, and a rolling restart onto internode
/// encryption splits the ring while it runs (a restarted node speaks only TLS on the storage
/// port, the others only plaintext). Cassandra's own way is three rolling restarts (keystores
/// with `optional: true`, then `internode_encryption: all`, then `optional: false`: the comments
/// of `server_encryption_options` in conf/cassandra.yaml); `up` does not do that, so it stops
/// before changing anything and says how to migrate.
fn refuse_silent_tls_change(c: &crate::config::CassandraSpec, sets: &str) -> Result<()> {
    let Some(commands) = readiness::statefulset_commands(sets, "cassandra")? else { return Ok(()) };
    if cassandra::runs_with_required_tls(&commands) {
        return Ok(());
    }
    let err = anyhow!(
        "Cassandra in namespace {} accepts plaintext clients and gossips in plaintext (created before tagstack required TLS); applying this version would refuse every plaintext client and split the ring while the nodes restart one by one: nothing was changed",
        c.namespace
    );
    Err(hint::attach(
        err,
        format!(
            "migrate deliberately (docs/security.md, \"Migrating an existing environment\"): move your clients to TLS first (the CA: Secret {}/{}, key ca), or recreate Cassandra: delete its namespace {} (its data goes with it) and run `tagstack up` again",
            c.namespace,
            cassandra::TLS_SECRET,
            c.namespace
        ),
    ))
}

/// An environment whose Kafka was created before TLS and SCRAM: its listeners are PLAINTEXT and
/// its clients connect without TLS or credentials. Applying this version would restart every
/// broker with SASL_SSL only, and every one of those clients would be cut off: `up` stops
/// before changing anything and says how to migrate (as for Cassandra).
fn refuse_plaintext_kafka(k: &crate::config::KafkaSpec, sets: &str) -> Result<()> {
    let live = readiness::kafka_env_in(sets, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP")?;
    let Some((sts, _)) = live.iter().find(|(_, map)| crate::stack::kafka::runs_plaintext(map)) else { return Ok(()) };
    let err = anyhow!(
        "Kafka in namespace {ns} runs PLAINTEXT listeners (StatefulSet {ns}/{sts}, created before tagstack turned TLS and SCRAM on); applying this version would restart every broker with SASL_SSL only, and every client without TLS and credentials would be cut off: nothing was changed",
        ns = k.namespace
    );
    Err(hint::attach(
        err,
        format!(
            "migrate deliberately (docs/security.md, \"Migrating an existing environment\"): move your clients first (after the migration: `tagstack kafka user add NAME` and `tagstack kafka client-config NAME`), or recreate Kafka: delete its namespace {} (its data goes with it) and run `tagstack up` again",
            k.namespace
        ),
    ))
}

/// Before a Cassandra StatefulSet shrinks (`stack.cassandra.replicas` lowered), each node that
/// goes leaves the ring with `nodetool decommission`, highest ordinal first, so its token ranges
/// stream to the nodes that stay; a StatefulSet that just deleted the pods would take their
/// replicas with them. Only with every member Up/Normal; a node already gone from the ring (a
/// run stopped after its decommission) is skipped. Returns the ordinals that left.
async fn shrink_cassandra(spec: &Spec, fleet: &Fleet, cp: &ClusterNode, r: &dyn Reporter) -> Result<Vec<u32>> {
    let Some(c) = &spec.stack.cassandra else { return Ok(Vec::new()) };
    let read = async |cmd: String| fleet.read(&cp.name, "stack", &cmd).await.map_err(anyhow::Error::from);
    let sets =
        read(format!("{KUBECTL} get statefulsets -n {} -l {} -o json", c.namespace, owned_selector(spec))).await?;
    let Some(live) = readiness::statefulset_replicas(&sets, "cassandra")? else { return Ok(Vec::new()) };
    if c.replicas >= live {
        return Ok(Vec::new());
    }
    let leaving: Vec<u32> = (c.replicas..live).rev().collect();
    let ring =
        read(cassandra::status(KUBECTL, c)).await.context("reading `nodetool status` before Cassandra shrinks")?;
    let down = cassandra::not_up_normal(&ring);
    if !down.is_empty() {
        let err = anyhow!(
            "Cassandra would shrink from {live} to {} nodes, but not every node is Up/Normal: {}; nothing was decommissioned",
            c.replicas,
            down.join("; ")
        );
        return Err(hint::attach(err, "let the ring recover (`tagstack status`), then run `tagstack up` again"));
    }
    let members = cassandra::ring_addresses(&ring);
    // The namespace is the environment's (preflight refused a foreign one of that name).
    let pods = read(format!("{KUBECTL} get pods -n {} -o json", c.namespace)).await?;
    let ips = readiness::pod_ips(&pods)?;
    let key = "stack/cassandra";
    for &o in &leaving {
        let pod = format!("cassandra-{o}");
        let Some((_, ip)) = ips.iter().find(|(name, _)| *name == pod) else { continue };
        if !members.contains(ip) {
            continue;
        }
        r.start(key, &format!("decommission {pod}: its data streams to the nodes that stay"));
        let out = fleet.exec(&cp.name, "stack", &cassandra::decommission(KUBECTL, c, o)).await?;
        if out.code != Some(0) {
            r.fail(key, &format!("decommission {pod}: refused"));
            let said = format!("{}\n{}", out.stdout.trim(), out.stderr.trim());
            let err = anyhow!(
                "Cassandra refused to decommission {pod} (shrinking from {live} to {} nodes): {}; the StatefulSet was not changed",
                c.replicas,
                said.trim()
            );
            return Err(hint::attach(
                err,
                format!(
                    "every keyspace's replication factor must fit in {} nodes first (ALTER KEYSPACE ... WITH replication, including system_auth, system_distributed and system_traces), or restore stack.cassandra.replicas = {live}",
                    c.replicas
                ),
            ));
        }
        r.finish(key, &format!("{pod} decommissioned"));
    }
    Ok(leaving)
}

/// The claims of the pods a shrink removed: a StatefulSet keeps them (and their EBS volumes,
/// which cost money), and a later scale-up would start a pod on a decommissioned node's data,
/// which Cassandra refuses to rejoin.
async fn forget_claims(spec: &Spec, fleet: &Fleet, cp: &ClusterNode, left: &[u32]) -> Result<()> {
    let Some(c) = &spec.stack.cassandra else { return Ok(()) };
    for &o in left {
        let cmd = format!("{KUBECTL} delete pvc -n {} {} --ignore-not-found", c.namespace, cassandra::claim(o));
        fleet.read(&cp.name, "stack", &cmd).await?;
    }
    Ok(())
}

/// Uploads and applies every component's manifest (each file holds its own namespace, so the
/// components go concurrently), then waits for all of them.
pub async fn deploy(spec: &Spec, fleet: &Fleet, cp: &ClusterNode, r: &dyn Reporter) -> Result<StackReport> {
    let ring = preflight(spec, fleet, cp).await?;
    let left = shrink_cassandra(spec, fleet, cp, r).await?;
    let dir = stack_dir();
    for script in crate::stack::before_apply(spec, KUBECTL, &dir)? {
        run_script(fleet, cp, &dir, &script, r).await?;
    }
    let mut manifests = manifests(spec)?;
    if let (Some(c), Some(ring)) = (&spec.stack.cassandra, &ring) {
        if ring.start == cassandra_ring::Start::Existing {
            fleet.read(&cp.name, "stack", &cassandra_ring::forget(KUBECTL, &c.namespace)).await?;
        }
        for &replicas in &ring.steps {
            grow_cassandra(spec, fleet, cp, ring, replicas, r).await?;
        }
        if let Some(m) = crate::stack::cassandra_manifest(spec, ring)? {
            manifests.iter_mut().filter(|x| x.component == Component::Cassandra).for_each(|x| *x = m.clone());
        }
    }
    let applies = manifests.into_iter().map(|m| {
        let dir = &dir;
        async move {
            let key = format!("stack/{}", m.component.as_str());
            let path = format!("{dir}/{}", m.file);
            r.start(&key, &format!("apply {}", m.component.as_str()));
            let applied = async {
                fleet.upload(&cp.name, "stack", &path, &m.content, false).await?;
                fleet.read(&cp.name, "stack", &format!("{KUBECTL} {APPLY} -f {path}")).await
            }
            .await;
            match applied {
                Ok(_) => {
                    r.update(&key, &format!("{}: applied, waiting until ready", m.component.as_str()));
                    Ok(())
                }
                Err(e) => {
                    r.fail(&key, &format!("apply {}: failed", m.component.as_str()));
                    Err(anyhow::Error::new(e).context(format!("applying {} ({path} on {})", m.file, cp.name)))
                }
            }
        }
    });
    for result in futures_util::future::join_all(applies).await {
        result?;
    }
    let workloads = wait_ready(spec, fleet, cp, r, &stack_watch(spec)).await?;
    if let (Some(c), Some(cassandra_ring::Plan { start: cassandra_ring::Start::New, .. })) =
        (&spec.stack.cassandra, &ring)
    {
        // Every node saved its tokens: from now on a node with an empty volume bootstraps.
        fleet.read(&cp.name, "stack", &cassandra_ring::forget(KUBECTL, &c.namespace)).await?;
    }
    for script in crate::stack::after_ready(spec, KUBECTL, &dir)? {
        run_script(fleet, cp, &dir, &script, r).await?;
    }
    forget_claims(spec, fleet, cp, &left).await?;
    Ok(StackReport { workloads, endpoints: endpoints(spec) })
}

/// Uploads one of a component's scripts beside its manifest and runs it on the control plane
/// (its output is logged, never a secret: the scripts read those on the node).
async fn run_script(
    fleet: &Fleet,
    cp: &ClusterNode,
    dir: &str,
    script: &crate::stack::Manifest,
    r: &dyn Reporter,
) -> Result<()> {
    let label = format!("{}: {}", script.component.as_str(), script.file);
    let key = format!("stack/{}", script.component.as_str());
    upload_and_run(fleet, cp, dir, script, r, &key, (&label, &format!("{label} done"), &format!("{label} failed")))
        .await
}

/// Uploads `script` to `dir` on the control plane (executable) and runs it there, its output
/// streamed to the reporter under `key`; `says` is what the reporter shows at the start, on
/// success and on failure. The one way the stack's and Kafka's scripts run.
pub(super) async fn upload_and_run(
    fleet: &Fleet,
    cp: &ClusterNode,
    dir: &str,
    script: &crate::stack::Manifest,
    r: &dyn Reporter,
    key: &str,
    says: (&str, &str, &str),
) -> Result<()> {
    let path = format!("{dir}/{}", script.file);
    r.start(key, says.0);
    let ran = async {
        fleet.upload(&cp.name, "stack", &path, &script.content, true).await?;
        fleet.run(&cp.name, "stack", &path, r).await
    }
    .await;
    match ran {
        Ok(_) => {
            r.finish(key, says.1);
            Ok(())
        }
        Err(e) => {
            r.fail(key, says.2);
            Err(anyhow::Error::new(e).context(format!("running {path} on {}", cp.name)))
        }
    }
}

/// What a wait for rollouts is about: the stack's workloads, or the monitoring add-on's.
pub(super) struct Watch {
    /// "stack" or "monitoring", for messages.
    pub what: &'static str,
    /// Reported ready one by one, in this order; one that names no workload (Spark without
    /// standalone workers) is ready once applied.
    pub components: Vec<Component>,
    pub expected: Vec<Workload>,
    /// The kubectl command that lists them as JSON.
    pub list: String,
}

fn stack_watch(spec: &Spec) -> Watch {
    Watch { what: "stack", components: components(spec), expected: workloads(spec), list: list_workloads(spec) }
}

/// Polls until every workload of `watch` has rolled out, reporting each component once it is
/// ready.
pub(super) async fn wait_ready(
    spec: &Spec,
    fleet: &Fleet,
    cp: &ClusterNode,
    r: &dyn Reporter,
    watch: &Watch,
) -> Result<Vec<WorkloadStatus>> {
    let expected = &watch.expected;
    let mut finished: Vec<Component> = Vec::new();
    // Checked after each look: the first that ends past stack.ready_timeout is the last.
    let waited = poll_until(
        spec.stack.ready_timeout,
        Duration::from_secs(3),
        Check::AfterLook,
        async |_| {
            let json = match fleet.read(&cp.name, "stack", &watch.list).await {
                Ok(json) => json,
                Err(e) => return Ok(Look::Waiting(Rollout::Unread(e))),
            };
            let statuses = readiness::workload_status(expected, &json)?;
            for &component in &watch.components {
                if finished.contains(&component) {
                    continue;
                }
                let mine: Vec<&WorkloadStatus> = statuses.iter().filter(|s| s.component == component).collect();
                let key = format!("stack/{}", component.as_str());
                let summary = mine.iter().map(|s| format!("{} {}/{}", s.name, s.ready, s.desired)).collect::<Vec<_>>();
                if mine.iter().all(|s| s.done) {
                    let what = if summary.is_empty() { "applied".to_string() } else { summary.join(", ") };
                    r.finish(&key, &format!("{} ready ({what})", component.as_str()));
                    finished.push(component);
                } else {
                    r.update(&key, &format!("{}: {}", component.as_str(), summary.join(", ")));
                }
            }
            anyhow::Ok(if statuses.iter().all(|s| s.done) {
                Look::Done(statuses)
            } else {
                Look::Waiting(Rollout::NotReady(statuses))
            })
        },
        |waiting| {
            // An API server or SSH hiccup is no reason to give up a long wait.
            if let Rollout::Unread(e) = waiting {
                r.note(&format!("reading the {}'s workloads failed, retrying: {e}", watch.what));
            }
        },
    )
    .await?;
    let (statuses, started) = match waited {
        Ok(statuses) => return Ok(statuses),
        Err(Timeout { last: Rollout::Unread(e), .. }) => return Err(e.into()),
        Err(Timeout { last: Rollout::NotReady(statuses), started }) => (statuses, started),
    };
    let waiting: Vec<&WorkloadStatus> = statuses.iter().filter(|s| !s.done).collect();
    for s in &waiting {
        r.fail(&format!("stack/{}", s.component.as_str()), &format!("{}: not ready", s.component.as_str()));
    }
    let mut why = Vec::new();
    for s in &waiting {
        why.push(diagnose(fleet, cp, s, expected).await);
    }
    let err = anyhow!(
        "{} of {} {} workload(s) not ready after {} (stack.ready_timeout {}):\n{}",
        waiting.len(),
        statuses.len(),
        watch.what,
        format_duration(started.elapsed()),
        format_duration(spec.stack.ready_timeout),
        why.join("\n")
    );
    Err(hint::attach(
        err,
        "fix the cause (often resources or storage: see the events) and run `tagstack up` again; what is ready stays",
    ))
}

/// Why a look at the volumes of `down`'s namespaces was not the end of the wait.
enum Released {
    /// These are still there.
    Not(Vec<String>),
    /// `kubectl get` failed.
    Unread(crate::remote::RemoteError),
}

/// Why a look at the rollouts was not the end of the wait.
enum Rollout {
    /// `kubectl get` failed (an API server or SSH hiccup).
    Unread(crate::remote::RemoteError),
    /// Read; some workloads have not rolled out.
    NotReady(Vec<WorkloadStatus>),
}

fn components(spec: &Spec) -> Vec<Component> {
    crate::stack::components(spec).iter().map(|c| c.component()).collect()
}

/// Names a workload that is not ready: its pods' phases and reasons and its last events.
async fn diagnose(fleet: &Fleet, cp: &ClusterNode, s: &WorkloadStatus, expected: &[Workload]) -> String {
    let mut out = format!(
        "  {}: {:?} {}/{} has {}/{} ready",
        s.component.as_str(),
        s.kind,
        s.namespace,
        s.name,
        s.ready,
        s.desired
    );
    if s.missing {
        out.push_str(" (it does not exist: was it deleted?)");
        return out;
    }
    let Some(w) = expected.iter().find(|w| w.name == s.name && w.namespace == s.namespace) else {
        return out;
    };
    let selector = &w.pod_selector;
    let pods = fleet
        .read(&cp.name, "stack", &format!("{KUBECTL} get pods -n {} -l {selector} -o json", s.namespace))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|json| readiness::pods(&json));
    match pods {
        Ok(pods) if pods.is_empty() => out.push_str("\n    pods: none created"),
        Ok(pods) => {
            for p in pods {
                let why = p.why.map(|w| format!(": {w}")).unwrap_or_default();
                let ready = if p.ready { "ready" } else { "not ready" };
                out.push_str(&format!("\n    pod {} {} ({ready}){why}", p.name, p.phase));
            }
        }
        Err(e) => out.push_str(&format!("\n    pods: could not be read: {e:#}")),
    }
    let events = fleet
        .read(&cp.name, "stack", &format!("{KUBECTL} get events -n {} -o json", s.namespace))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|json| readiness::events(&json, &s.name, 5));
    match events {
        Ok(events) if events.is_empty() => out.push_str("\n    events: none"),
        Ok(events) => {
            out.push_str("\n    last events:");
            for e in events {
                let times = if e.count > 1 { format!(" (x{})", e.count) } else { String::new() };
                out.push_str(&format!("\n      {} {} {}: {}{times}", e.kind, e.reason, e.object, e.message));
            }
        }
        Err(e) => out.push_str(&format!("\n    events: could not be read: {e:#}")),
    }
    out
}

/// Desired and ready replicas of every workload, for `status`.
pub async fn status(spec: &Spec, fleet: &Fleet, cp: &ClusterNode) -> Result<StackReport> {
    let json = fleet.read(&cp.name, "stack", &list_workloads(spec)).await?;
    Ok(StackReport { workloads: readiness::workload_status(&workloads(spec), &json)?, endpoints: endpoints(spec) })
}

/// One smoke check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeResult {
    pub component: Component,
    pub check: &'static str,
    pub ok: bool,
    pub millis: u64,
    /// The line that proved it, or what failed.
    pub detail: String,
}

/// Runs every check (all of them, even after a failure) and returns their outcomes.
pub async fn smoke(spec: &Spec, fleet: &Fleet, cp: &ClusterNode, r: &dyn Reporter) -> Result<Vec<SmokeResult>> {
    let nonce = format!("{:08x}", fastrand::u32(..));
    for m in smoke_manifests(spec)? {
        fleet.upload(&cp.name, "smoke", &format!("{}/{}", stack_dir(), m.file), &m.content, false).await?;
    }
    let mut out = Vec::new();
    for check in smoke_checks(spec, KUBECTL, &stack_dir(), &nonce) {
        let key = format!("smoke/{}", check.component.as_str());
        r.start(&key, &format!("{}: {}", check.component.as_str(), check.name));
        let started = Instant::now();
        let mut result: Result<String, String> = Ok(String::new());
        for step in &check.steps {
            r.update(&key, &format!("{}: {}", check.component.as_str(), step.what));
            let out = match fleet.exec(&cp.name, "smoke", &step.command).await {
                Ok(out) => StepOutput { code: out.code, stdout: out.stdout, stderr: out.stderr },
                Err(e) => {
                    result = Err(format!("{}: {e}", step.what));
                    break;
                }
            };
            if let Err(why) = crate::stack::smoke::judge_step(step, &out) {
                result = Err(why);
                break;
            }
            if let Some(line) = step.expect.as_deref().and_then(|e| crate::stack::smoke::judge(&out.stdout, e)) {
                result = Ok(line.trim().to_string());
            }
        }
        if let Some(cleanup) = &check.cleanup {
            let _ = fleet.read(&cp.name, "smoke", cleanup).await;
        }
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (ok, detail) = match result {
            Ok(line) => {
                r.finish(&key, &format!("{}: {} ({millis} ms)", check.component.as_str(), check.name));
                (true, line)
            }
            Err(e) => {
                r.fail(&key, &format!("{}: {} failed", check.component.as_str(), check.name));
                (false, e)
            }
        };
        out.push(SmokeResult { component: check.component, check: check.name, ok, millis, detail });
    }
    Ok(out)
}

/// What `down` removed from the live cluster before deleting it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterCleanup {
    pub load_balancers: Vec<String>,
    pub namespaces: Vec<String>,
    /// PersistentVolumes of the stack still present when the wait ended (on AWS their EBS
    /// volumes are then swept by tags).
    pub volumes_left: Vec<String>,
    /// What failed; the other steps still ran.
    pub errors: Vec<String>,
}

/// The label selector of everything tagstack applied for this environment.
pub fn owned_selector(spec: &Spec) -> String {
    crate::stack::render::owned_selector(&spec.id.cluster_name())
}

/// Deletes the namespaces tagstack created for this environment (found by their labels, so a
/// component disabled since is included and a namespace of someone else's never is) with
/// their claims, so the storage driver deletes the volumes, and waits, bounded, for those
/// volumes to go. With `whole_cluster` (the cluster is about to be deleted, on AWS) every
/// LoadBalancer Service goes first, since its load balancer would hold the VPC. A failed step
/// is recorded and the others still run.
pub async fn teardown(
    spec: &Spec,
    fleet: &Fleet,
    cp: &ClusterNode,
    whole_cluster: bool,
    r: &dyn Reporter,
) -> Result<ClusterCleanup> {
    let mut report = ClusterCleanup::default();
    let kubectl = |command: String| async move { fleet.read(&cp.name, "cleanup", &command).await };
    r.start("stack/cleanup", "delete the stack and its volumes");
    if whole_cluster {
        let services = kubectl(format!("{KUBECTL} get services -A -o json")).await?;
        for (ns, name) in readiness::load_balancers(&services)? {
            r.update("stack/cleanup", &format!("delete LoadBalancer service {ns}/{name}"));
            match kubectl(format!(
                "{KUBECTL} delete service -n {ns} {name} --ignore-not-found --wait=true --timeout=300s"
            ))
            .await
            {
                Ok(_) => report.load_balancers.push(format!("{ns}/{name}")),
                Err(e) => report.errors.push(format!("deleting LoadBalancer service {ns}/{name}: {e}")),
            }
        }
    }
    let listed = kubectl(format!("{KUBECTL} get namespaces -l {} -o json", owned_selector(spec))).await?;
    let namespaces = readiness::object_names(&listed)?;
    if !namespaces.is_empty() {
        r.update("stack/cleanup", &format!("delete namespaces {}", namespaces.join(", ")));
        match kubectl(format!(
            "{KUBECTL} delete namespace {} --ignore-not-found --wait=true --timeout=600s",
            namespaces.join(" ")
        ))
        .await
        {
            Ok(_) => report.namespaces = namespaces.clone(),
            Err(e) => report.errors.push(format!("deleting namespaces {}: {e}", namespaces.join(", "))),
        }
    }
    // What a namespace cannot hold (the monitoring add-on's ClusterRoles and their bindings)
    // goes by the same labels; a component disabled since is included.
    if let Err(e) = kubectl(format!(
        "{KUBECTL} delete clusterrolebindings,clusterroles -l {} --ignore-not-found --wait=true --timeout=120s",
        owned_selector(spec)
    ))
    .await
    {
        report.errors.push(format!("deleting the cluster roles labelled for {}: {e}", spec.id.cluster_name()));
    }
    // The environment's CA (kube-system/tagstack-ca: its key signs the stack's certificates)
    // outlives no tagstack stack. It is one Secret per cluster, made by the first environment
    // that needed it and used by every other on the same (static) cluster, so it goes with the
    // last of them: when no namespace tagstack labelled remains.
    match kubectl(format!("{KUBECTL} get namespaces -l {LABEL_MANAGED_BY}={MANAGER} -o json")).await {
        Ok(left) if readiness::object_names(&left)?.is_empty() => {
            if let Err(e) = kubectl(format!(
                "{KUBECTL} delete secrets -n kube-system -l {LABEL_MANAGED_BY}={MANAGER} --ignore-not-found"
            ))
            .await
            {
                report
                    .errors
                    .push(format!("deleting the stack's CA kube-system/{}: {e}", crate::stack::tls::CA_SECRET));
            }
        }
        Ok(_) => {}
        Err(e) => report.errors.push(format!("listing tagstack's namespaces: {e}")),
    }
    // The volumes go asynchronously after their claims: wait, bounded, so `down` is not cut
    // short by a slow detach.
    // Checked before each look: the one begun past the deadline is the last, whatever it reads.
    let waited = poll_until(
        Duration::from_secs(300),
        Duration::from_secs(3),
        Check::BeforeLook,
        async |_| match kubectl(format!("{KUBECTL} get persistentvolumes -o json")).await {
            Ok(pvs) => {
                let left = readiness::volumes_of(&pvs, &namespaces)?;
                anyhow::Ok(if left.is_empty() { Look::Done(left) } else { Look::Waiting(Released::Not(left)) })
            }
            Err(e) => Ok(Look::Waiting(Released::Unread(e))),
        },
        |waiting| match waiting {
            Released::Not(left) => {
                r.update("stack/cleanup", &format!("waiting for {} volume(s) to be released", left.len()));
            }
            // One failed read is no reason to give up on the rest of the wait.
            Released::Unread(e) => r.update("stack/cleanup", &format!("reading volumes failed, retrying: {e}")),
        },
    )
    .await?;
    match waited {
        Ok(left) | Err(Timeout { last: Released::Not(left), .. }) => report.volumes_left = left,
        Err(Timeout { last: Released::Unread(e), .. }) => report.errors.push(format!("reading volumes: {e}")),
    }
    let summary = format!(
        "deleted {} load balancer(s) and namespace(s) {}",
        report.load_balancers.len(),
        if report.namespaces.is_empty() { "-".into() } else { report.namespaces.join(", ") }
    );
    if report.errors.is_empty() {
        r.finish("stack/cleanup", &summary);
    } else {
        r.fail("stack/cleanup", &format!("{summary}; {} step(s) failed", report.errors.len()));
    }
    Ok(report)
}
