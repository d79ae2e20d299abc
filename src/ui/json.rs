//! The versioned JSON contract (`--output json`, `schema_version` 1): one typed document per
//! command, printed in the [`Envelope`]. Every document but `reap`'s is printed with its keys
//! sorted at every level, as version 1 always printed them; `reap` keeps its field order.
//! Adding a key is compatible; renaming or removing one needs a new `SCHEMA_VERSION`.

use std::path::PathBuf;

use serde::Serialize;

use super::{Envelope, SCHEMA_VERSION, print_json};
use crate::ops::access::SmokeReport;
use crate::ops::cluster::NodeState;
use crate::ops::live::{AwsLive, Live};
use crate::ops::stack::{ClusterCleanup, StackReport};
use crate::ops::upgrade::KubernetesPlan;
use crate::ops::{DownReport, ReapReport, Status};
use crate::plan::{Change, ExpiryChange, Plan, Summary};

/// Where a document comes from: the envelope's fields.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub project: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// Prints `data` as `command`'s document, keys sorted at every level.
pub fn print<T: Serialize>(source: Source<'_>, command: &str, data: &T) -> anyhow::Result<()> {
    let data = serde_json::to_value(data)?;
    print_in_order(source, command, &data)
}

/// Prints `data` with its keys in the order its type declares them.
pub fn print_in_order<T: Serialize>(source: Source<'_>, command: &str, data: &T) -> anyhow::Result<()> {
    print_json(&Envelope {
        schema_version: SCHEMA_VERSION,
        command,
        project: source.project,
        environment: source.environment,
        region: source.region,
        data,
    })
}

#[derive(Serialize)]
pub struct PlanDoc<'a> {
    pub converged: bool,
    pub summary: Summary,
    pub changes: &'a [Change],
    pub expiry: Option<&'a ExpiryChange>,
    /// IMDS hop limits and the worker's legacy policy `up` changes after its cluster stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardening: Option<&'a crate::plan::Hardening>,
    /// What the cluster runs against `kubernetes_version`; absent until the cluster stage ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<&'a KubernetesPlan>,
    /// The image new nodes launch from; absent for a project that never baked one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<&'a crate::ops::bake::ImageChoice>,
}

impl<'a> PlanDoc<'a> {
    pub fn new(plan: &'a Plan) -> Self {
        Self {
            converged: plan.is_converged(),
            summary: plan.summary(),
            changes: &plan.changes,
            expiry: plan.expiry.as_ref(),
            hardening: plan.hardening.as_ref(),
            kubernetes: None,
            image: None,
        }
    }

    pub fn with_image(self, image: Option<&'a crate::ops::bake::ImageChoice>) -> Self {
        Self { image, ..self }
    }

    pub fn with_kubernetes(self, kubernetes: Option<&'a KubernetesPlan>) -> Self {
        Self { kubernetes, ..self }
    }
}

/// One row of the `cluster.nodes` list of `status`.
#[derive(Serialize)]
pub struct NodeStateDoc<'a> {
    pub name: &'a str,
    pub node_name: &'a str,
    pub role: crate::config::NodeRole,
    pub ready: bool,
    /// Why the node is not ready; null when it is.
    pub reason: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum ClusterDoc<'a> {
    Nodes { nodes: Vec<NodeStateDoc<'a>> },
    Error { error: &'a str },
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum StackDoc<'a> {
    Report(&'a StackReport),
    Error { error: &'a str },
}

fn node_states(states: &[(NodeState, String)]) -> Vec<NodeStateDoc<'_>> {
    states
        .iter()
        .map(|(st, why)| NodeStateDoc {
            name: &st.name,
            node_name: &st.node_name,
            role: st.role,
            ready: st.ready,
            reason: if st.ready { None } else { Some(why) },
        })
        .collect()
}

/// `status` of a static environment, and the live half of an AWS one.
#[derive(Serialize)]
pub struct LiveDoc<'a> {
    pub cluster: Option<ClusterDoc<'a>>,
    pub stack: Option<StackDoc<'a>>,
    /// Only with `[monitoring]` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringDoc<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum MonitoringDoc<'a> {
    Report(&'a crate::ops::monitoring::MonitoringReport),
    Error { error: &'a str },
}

impl<'a> LiveDoc<'a> {
    pub fn of(live: &'a Live) -> Self {
        let stack = live.stack.as_ref().map(|s| match s {
            Ok(report) => StackDoc::Report(report),
            Err(e) => StackDoc::Error { error: e },
        });
        let monitoring = live.monitoring.as_ref().map(|m| match m {
            Ok(report) => MonitoringDoc::Report(report),
            Err(e) => MonitoringDoc::Error { error: e },
        });
        Self { cluster: Some(ClusterDoc::Nodes { nodes: node_states(&live.nodes) }), stack, monitoring }
    }

    pub fn of_aws(live: &'a AwsLive) -> Self {
        match live {
            AwsLive::NotBootstrapped => Self { cluster: None, stack: None, monitoring: None },
            AwsLive::Reachable(live) => Self::of(live),
            AwsLive::Unreachable(e) => {
                Self { cluster: Some(ClusterDoc::Error { error: e }), stack: None, monitoring: None }
            }
        }
    }
}

#[derive(Serialize)]
pub struct StatusDoc<'a> {
    #[serde(flatten)]
    pub infra: &'a Status,
    #[serde(flatten)]
    pub live: LiveDoc<'a>,
}

#[derive(Serialize)]
pub struct DownDoc<'a> {
    #[serde(flatten)]
    pub report: Option<&'a DownReport>,
    pub cluster_cleanup: Option<&'a ClusterCleanup>,
    /// `down --delete-images`: the environment's baked images deregistered, with their
    /// snapshots (absent without the flag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_images: Option<&'a [(String, Vec<String>)]>,
}

pub type SmokeDoc = SmokeReport;

#[derive(Serialize)]
pub struct RenderDoc<'a> {
    pub files: &'a [PathBuf],
}

pub type ReapDoc = ReapReport;
