//! The live part of `status`: node readiness as the control plane sees it and, with a stack,
//! its workloads, and the monitoring add-on with its firing alerts. Read-only; an unreachable cluster is a state to show, never a failure of
//! `status` on AWS, shown with the advice for `status`.

use anyhow::Result;

use super::advice::{self, Command};
use super::cluster::{NodeState, node_states};
use super::env::Env;
use super::inventory::Node;
use super::monitoring::MonitoringReport;
use super::nodes::{self, on_control_plane};
use super::stack::StackReport;
use crate::cluster::ClusterNode;
use crate::config::Provider;
use crate::remote::Fleet;

/// Each node's state and, for a node not ready, why.
pub struct Live {
    pub nodes: Vec<(NodeState, String)>,
    /// `None` without stack components; an unreadable stack is an error to show.
    pub stack: Option<Result<StackReport, String>>,
    /// `None` without `[monitoring]`; an unreadable add-on is an error to show.
    pub monitoring: Option<Result<MonitoringReport, String>>,
}

/// What `status` knows of the cluster on AWS.
pub enum AwsLive {
    /// The cluster stage has not run on these nodes (no verified host key recorded).
    NotBootstrapped,
    Reachable(Live),
    Unreachable(String),
}

async fn read(env: &Env<'_>, fleet: &Fleet, cp: &ClusterNode, nodes: &[ClusterNode]) -> Result<Live> {
    let stack = async {
        if env.spec.stack.is_empty() {
            None
        } else {
            Some(super::stack::status(env.spec, fleet, cp).await.map_err(|e| advice::render(e, Command::Status)))
        }
    };
    let monitoring = async {
        super::monitoring::status(env.spec, fleet, cp).await.map_err(|e| advice::render(e, Command::Status)).transpose()
    };
    let (states, stack, monitoring) =
        tokio::join!(node_states(fleet, cp, nodes, env.spec.provider == Provider::Aws), stack, monitoring);
    Ok(Live { nodes: states?, stack, monitoring })
}

/// A static environment: its nodes from the config; not reaching them is an error.
pub async fn of_static(env: &Env<'_>) -> Result<Live> {
    let nodes = nodes::nodes(env).await?;
    on_control_plane(env.spec, &nodes, async |fleet, cp| read(env, fleet, cp, &nodes).await).await
}

/// An AWS environment, from any machine, once the cluster stage has run on its nodes.
pub async fn of_aws(env: &Env<'_>, inventory: &[Node]) -> AwsLive {
    let Some(reach) = nodes::reachable(env, inventory).await else { return AwsLive::NotBootstrapped };
    match on_control_plane(env.spec, &reach.pinned, async |fleet, cp| read(env, fleet, cp, &reach.all).await).await {
        Ok(live) => AwsLive::Reachable(live),
        Err(e) => AwsLive::Unreachable(advice::render(e, Command::Status)),
    }
}
