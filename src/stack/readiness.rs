//! Reads `kubectl get ... -o json` output: whether each expected workload is ready (the same
//! rules as `kubectl rollout status`), its pods' phases and the namespace's last events. Pure;
//! unit-tested on saved outputs in `tests/fixtures/kubectl-json/`.

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use super::model::{Component, Workload, WorkloadKind};
use super::render::is_owned;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkloadStatus {
    pub component: Component,
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// Replicas the config asks for.
    pub desired: u32,
    pub ready: u32,
    /// Ready, with every replica on the newest revision of the spec tagstack applied.
    pub done: bool,
    /// Absent from the cluster (not applied yet, or deleted).
    pub missing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    pub name: String,
    pub phase: String,
    pub ready: bool,
    pub node: Option<String>,
    /// Why it is not ready: a container's waiting reason or a failed condition's message.
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventInfo {
    pub object: String,
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: u64,
    pub time: String,
}

fn items(json: &str, what: &str) -> Result<Vec<Value>> {
    let doc: Value = serde_json::from_str(json).with_context(|| format!("parsing `kubectl get {what} -o json`"))?;
    Ok(match doc.get("items") {
        Some(Value::Array(items)) => items.clone(),
        _ => vec![doc],
    })
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64).unwrap_or(0)
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_str)
}

fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::DaemonSet => "DaemonSet",
    }
}

/// Whether one StatefulSet or Deployment object has finished rolling out `want` replicas.
fn rolled_out(obj: &Value, kind: WorkloadKind, want: u64) -> bool {
    let generation = u(obj, &["metadata", "generation"]);
    let observed = u(obj, &["status", "observedGeneration"]);
    let spec_replicas = obj.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    let ready = u(obj, &["status", "readyReplicas"]);
    let updated = u(obj, &["status", "updatedReplicas"]);
    // The controller has not seen the newest spec, or the cluster runs another replica count.
    if observed < generation || (kind != WorkloadKind::DaemonSet && spec_replicas != want) {
        return false;
    }
    match kind {
        WorkloadKind::StatefulSet => {
            let revision_done = match (s(obj, &["status", "currentRevision"]), s(obj, &["status", "updateRevision"])) {
                (Some(cur), Some(upd)) => cur == upd,
                _ => true,
            };
            ready >= want && updated >= want && revision_done
        }
        WorkloadKind::Deployment => {
            let total = u(obj, &["status", "replicas"]);
            let available = u(obj, &["status", "availableReplicas"]);
            // No old replicas left, and every new one available.
            updated >= want && total == updated && available >= want && ready >= want
        }
        // As `kubectl rollout status` judges a RollingUpdate DaemonSet (k8s.io/kubectl
        // pkg/polymorphichelpers/rollout_status.go, DaemonSetStatusViewer): every scheduled
        // pod updated and available. `want` is its own desiredNumberScheduled.
        WorkloadKind::DaemonSet => {
            let desired = u(obj, &["status", "desiredNumberScheduled"]);
            let updated = u(obj, &["status", "updatedNumberScheduled"]);
            let available = u(obj, &["status", "numberAvailable"]);
            desired > 0 && updated >= desired && available >= desired
        }
    }
}

/// Matches the expected workloads to `kubectl get statefulsets,deployments -A -o json`.
pub fn workload_status(expected: &[Workload], json: &str) -> Result<Vec<WorkloadStatus>> {
    let objects = items(json, "statefulsets,deployments")?;
    Ok(expected
        .iter()
        .map(|w| {
            let obj = objects.iter().find(|o| {
                s(o, &["kind"]) == Some(kind_name(w.kind))
                    && s(o, &["metadata", "name"]) == Some(w.name.as_str())
                    && s(o, &["metadata", "namespace"]) == Some(w.namespace.as_str())
            });
            let daemon = w.kind == WorkloadKind::DaemonSet;
            let ready = obj.map_or(0, |o| u(o, &["status", if daemon { "numberReady" } else { "readyReplicas" }]));
            let desired = match obj {
                Some(o) if daemon => u32::try_from(u(o, &["status", "desiredNumberScheduled"])).unwrap_or(u32::MAX),
                _ => w.replicas,
            };
            WorkloadStatus {
                component: w.component,
                kind: w.kind,
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                desired,
                ready: u32::try_from(ready).unwrap_or(u32::MAX),
                done: obj.is_some_and(|o| rolled_out(o, w.kind, u64::from(w.replicas))),
                missing: obj.is_none(),
            }
        })
        .collect())
}

/// `kubectl get pods -o json`: each pod's phase, readiness and why it is not ready.
pub fn pods(json: &str) -> Result<Vec<PodInfo>> {
    let mut out: Vec<PodInfo> = items(json, "pods")?
        .iter()
        .map(|p| {
            let ready = p.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
                cs.iter().any(|c| s(c, &["type"]) == Some("Ready") && s(c, &["status"]) == Some("True"))
            });
            let waiting = p.pointer("/status/containerStatuses").and_then(Value::as_array).and_then(|cs| {
                cs.iter().find_map(|c| {
                    let w = c.pointer("/state/waiting")?;
                    let reason = s(w, &["reason"])?;
                    Some(match s(w, &["message"]) {
                        Some(m) => format!("{reason}: {m}"),
                        None => reason.to_string(),
                    })
                })
            });
            let failed_condition = p.pointer("/status/conditions").and_then(Value::as_array).and_then(|cs| {
                cs.iter().find(|c| s(c, &["status"]) == Some("False") && s(c, &["message"]).is_some()).map(|c| {
                    format!("{}: {}", s(c, &["reason"]).unwrap_or("NotReady"), s(c, &["message"]).unwrap_or_default())
                })
            });
            PodInfo {
                name: s(p, &["metadata", "name"]).unwrap_or("?").to_string(),
                phase: s(p, &["status", "phase"]).unwrap_or("Unknown").to_string(),
                ready,
                node: s(p, &["spec", "nodeName"]).map(str::to_string),
                why: if ready { None } else { waiting.or(failed_condition) },
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether an object is the workload `name`, one of its pods (`name-0`) or one of its claims
/// (`data-name-0`), and not a neighbour that shares the prefix (`kafka-controller-0`,
/// `kafka-headless`).
fn belongs(object: &str, name: &str) -> bool {
    let ordinal = |rest: Option<&str>| {
        rest.and_then(|r| r.strip_prefix('-')).is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    object == name || ordinal(object.strip_prefix(name)) || ordinal(object.strip_prefix(&format!("data-{name}")))
}

/// `kubectl get events -o json`: the newest `limit` events about a StatefulSet `name`, its
/// pods and its claims, oldest first.
pub fn events(json: &str, name: &str, limit: usize) -> Result<Vec<EventInfo>> {
    let mut out: Vec<EventInfo> = items(json, "events")?
        .iter()
        .filter(|e| s(e, &["involvedObject", "name"]).is_some_and(|n| belongs(n, name)))
        .map(|e| EventInfo {
            object: s(e, &["involvedObject", "name"]).unwrap_or_default().to_string(),
            kind: s(e, &["type"]).unwrap_or("Normal").to_string(),
            reason: s(e, &["reason"]).unwrap_or_default().to_string(),
            message: s(e, &["message"]).unwrap_or_default().trim().to_string(),
            count: u(e, &["count"]).max(1),
            time: s(e, &["lastTimestamp"])
                .or_else(|| s(e, &["eventTime"]))
                .or_else(|| s(e, &["firstTimestamp"]))
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    // RFC 3339 UTC timestamps sort as text.
    out.sort_by(|a, b| a.time.cmp(&b.time));
    let skip = out.len().saturating_sub(limit);
    Ok(out.split_off(skip))
}

/// `kubectl get services -A -o json`: (namespace, name) of every LoadBalancer Service.
pub fn load_balancers(json: &str) -> Result<Vec<(String, String)>> {
    Ok(items(json, "services")?
        .iter()
        .filter(|svc| s(svc, &["spec", "type"]) == Some("LoadBalancer"))
        .map(|svc| {
            (
                s(svc, &["metadata", "namespace"]).unwrap_or("default").to_string(),
                s(svc, &["metadata", "name"]).unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// `kubectl get persistentvolumes -o json`: names of the volumes still claimed from one of
/// `namespaces`.
pub fn volumes_of(json: &str, namespaces: &[String]) -> Result<Vec<String>> {
    Ok(items(json, "persistentvolumes")?
        .iter()
        .filter(|pv| s(pv, &["spec", "claimRef", "namespace"]).is_some_and(|ns| namespaces.iter().any(|n| n == ns)))
        .map(|pv| s(pv, &["metadata", "name"]).unwrap_or_default().to_string())
        .collect())
}

/// Why the claims of the stack could not bind (facts only: `ops::advice` says what to do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageClassError {
    #[error("{0}")]
    Unreadable(String),
    #[error("the StorageClass {name:?} (stack.storage_class) does not exist in the cluster (it has: {listed})")]
    Missing { name: String, listed: String },
    #[error(
        "the cluster has no default StorageClass, so the volume claims of Kafka and Cassandra would stay Pending (classes: {listed})"
    )]
    NoDefault { listed: String },
}

/// Whether the claims of the stack can bind: the configured StorageClass exists, or, with none
/// configured, the cluster has a default one. `Err` says what is missing and what exists.
pub fn check_storage_class(json: &str, wanted: Option<&str>) -> Result<(), StorageClassError> {
    let classes = items(json, "storageclasses").map_err(|e| StorageClassError::Unreadable(format!("{e:#}")))?;
    let names: Vec<&str> = classes.iter().filter_map(|c| s(c, &["metadata", "name"])).collect();
    let listed = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    match wanted {
        Some(name) if names.contains(&name) => Ok(()),
        Some(name) => Err(StorageClassError::Missing { name: name.to_string(), listed }),
        None => {
            let default = classes.iter().any(|c| {
                ["storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"]
                    .iter()
                    .any(|a| {
                        c.pointer(&format!("/metadata/annotations/{}", a.replace('/', "~1"))).and_then(Value::as_str)
                            == Some("true")
                    })
            });
            if default { Ok(()) } else { Err(StorageClassError::NoDefault { listed }) }
        }
    }
}

/// `metadata.name` of every object in a `kubectl get -o json` list.
pub fn object_names(json: &str) -> Result<Vec<String>> {
    Ok(items(json, "objects")?.iter().filter_map(|o| s(o, &["metadata", "name"]).map(str::to_string)).collect())
}

/// Of the `wanted` namespaces, those that exist without tagstack's instance label for
/// `cluster` (someone else's, or another environment's).
pub fn foreign_namespaces(json: &str, wanted: &[String], cluster: &str) -> Result<Vec<String>> {
    Ok(items(json, "namespaces")?
        .iter()
        .filter(|ns| s(ns, &["metadata", "name"]).is_some_and(|n| wanted.iter().any(|w| w == n)))
        .filter(|ns| !is_owned(|key| s(ns, &["metadata", "labels", key]), cluster))
        .filter_map(|ns| s(ns, &["metadata", "name"]).map(str::to_string))
        .collect())
}

/// Whether this `up` is the first to apply the network policies to a stack that ran without
/// them (issue 14, item 7): a namespace of `wanted` is already ours (a new stack has no clients
/// yet) and no policy of this environment exists (`policies`: `kubectl get networkpolicies -A
/// -l <owned> -o json`).
pub fn policies_introduced(namespaces: &str, policies: &str, wanted: &[String], cluster: &str) -> Result<bool> {
    let stack_ran = items(namespaces, "namespaces")?.iter().any(|ns| {
        s(ns, &["metadata", "name"]).is_some_and(|n| wanted.iter().any(|w| w == n))
            && is_owned(|key| s(ns, &["metadata", "labels", key]), cluster)
    });
    Ok(stack_ran && items(policies, "networkpolicies")?.is_empty())
}

/// The namespaces whose pods would lose the stack once its policies admit only clients: every
/// namespace with at least one pod that is not Kubernetes' (`kube-*`), not tagstack's (the
/// `app.kubernetes.io/managed-by=tagstack` label: its flows are in the policies), not the
/// monitoring add-on's, and carries no `tagstack/client` label at all (`true` makes it a
/// client; `false` is the user saying it is none: either way the user has decided).
pub fn clients_cut_off(namespaces: &str, pods: &str) -> Result<Vec<String>> {
    let with_pods: Vec<String> =
        items(pods, "pods")?.iter().filter_map(|p| s(p, &["metadata", "namespace"]).map(str::to_string)).collect();
    Ok(items(namespaces, "namespaces")?
        .iter()
        .filter(|ns| s(ns, &["metadata", "labels", super::render::LABEL_MANAGED_BY]) != Some(super::render::MANAGER))
        .filter(|ns| s(ns, &["metadata", "labels", super::netpol::CLIENT_LABEL]).is_none())
        .filter_map(|ns| s(ns, &["metadata", "name"]))
        .filter(|n| with_pods.iter().any(|p| p == n))
        .filter(|n| !n.starts_with("kube-") && *n != crate::config::MONITORING_NAMESPACE)
        .map(str::to_string)
        .collect())
}

/// The `KAFKA_CONTROLLER_QUORUM_VOTERS` of the Kafka StatefulSets in a `kubectl get
/// statefulsets -o json` list: (StatefulSet, voters).
pub fn kafka_voters_in(json: &str) -> Result<Vec<(String, String)>> {
    kafka_env_in(json, "KAFKA_CONTROLLER_QUORUM_VOTERS")
}

/// The value of the environment variable `name` in each StatefulSet of a `kubectl get
/// statefulsets -o json` list that sets it: (StatefulSet, value).
pub fn kafka_env_in(json: &str, name: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for sts in items(json, "statefulsets")? {
        let containers = sts.pointer("/spec/template/spec/containers").and_then(Value::as_array);
        let voters = containers
            .into_iter()
            .flatten()
            .flat_map(|c| c.get("env").and_then(Value::as_array).into_iter().flatten())
            .find_map(|e| (s(e, &["name"]) == Some(name)).then(|| s(e, &["value"]).unwrap_or_default().to_string()));
        if let (Some(name), Some(voters)) = (s(&sts, &["metadata", "name"]), voters) {
            out.push((name.to_string(), voters));
        }
    }
    Ok(out)
}

/// The command and args of every container of the StatefulSet `name`'s pod template, one per
/// line (what a component's config check reads); None when there is no such StatefulSet.
pub fn statefulset_commands(json: &str, name: &str) -> Result<Option<String>> {
    Ok(items(json, "statefulsets")?.iter().find(|o| s(o, &["metadata", "name"]) == Some(name)).map(|o| {
        let containers = o.pointer("/spec/template/spec/containers").and_then(Value::as_array);
        containers
            .into_iter()
            .flatten()
            .flat_map(|c| {
                ["command", "args"]
                    .into_iter()
                    .flat_map(move |k| c.get(k).and_then(Value::as_array).into_iter().flatten())
            })
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }))
}

/// `.spec.replicas` of the StatefulSet `name` in a `kubectl get statefulsets -o json` list.
pub fn statefulset_replicas(json: &str, name: &str) -> Result<Option<u32>> {
    Ok(items(json, "statefulsets")?.iter().find(|o| s(o, &["metadata", "name"]) == Some(name)).map(|o| {
        let n = o.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        u32::try_from(n).unwrap_or(u32::MAX)
    }))
}

/// Pod name -> pod IP, from `kubectl get pods -o json` (pods without an IP are left out).
pub fn pod_ips(json: &str) -> Result<Vec<(String, String)>> {
    Ok(items(json, "pods")?
        .iter()
        .filter_map(|p| Some((s(p, &["metadata", "name"])?.to_string(), s(p, &["status", "podIP"])?.to_string())))
        .collect())
}
