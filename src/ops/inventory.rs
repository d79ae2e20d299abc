//! The node inventory `up` and `status` print: stable node names from role and launch order,
//! each row the instance's own observed values (its [`Addresses`] as discovery found them).

use serde::Serialize;

use crate::config::NodeRole;
use crate::plan::observed::{Addresses, Instance, InstanceState};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `control-plane` or `worker-N` (N by launch order, oldest first).
    pub name: String,
    pub role: NodeRole,
    pub instance_id: String,
    pub state: InstanceState,
    pub instance_type: String,
    /// `private_dns`, `private_ip`, `public_ip` in the JSON row, as they always were.
    #[serde(flatten)]
    pub addresses: Addresses,
    /// The verified host key recorded on the instance by the cluster stage (a tag), if any.
    #[serde(skip)]
    pub host_key: Option<String>,
}

pub fn inventory(instances: &[Instance]) -> Vec<Node> {
    let mut out = Vec::new();
    for role in NodeRole::ALL {
        let mut of_role: Vec<&Instance> = instances.iter().filter(|i| i.role == role && i.state.exists()).collect();
        of_role.sort_by(|a, b| (&a.launch_time, &a.id).cmp(&(&b.launch_time, &b.id)));
        for (n, i) in of_role.into_iter().enumerate() {
            let name = match role {
                NodeRole::ControlPlane if n == 0 => "control-plane".to_string(),
                NodeRole::ControlPlane => format!("control-plane-{n}"),
                NodeRole::Worker => format!("worker-{n}"),
            };
            out.push(Node {
                name,
                role,
                instance_id: i.id.clone(),
                state: i.state.clone(),
                instance_type: i.instance_type.clone(),
                addresses: i.addresses.clone(),
                host_key: i.host_key.clone(),
            });
        }
    }
    out
}
