//! Whether the configured workers can hold the stack's StatefulSets that need one node per
//! replica (`stack::one_per_node`): judged from the configuration alone, so that `plan` refuses
//! a `workers.count` below that before anything runs, and `up` before its first call. The
//! cluster's own StatefulSets (users' too) are judged again from what the cluster reports when
//! a worker leaves (`cluster::drain::unplaceable`, in `ops::retire`). Pure.

use super::PlanError;
use crate::config::{NodeRole, Provider, Spec};
use crate::stack::OnePerNode;

/// The workers the stack's pods can run on: the control plane takes none (kubeadm taints it
/// `node-role.kubernetes.io/control-plane:NoSchedule`).
pub fn workers(spec: &Spec) -> (u32, String) {
    match &spec.provider {
        Provider::Aws => (spec.workers.count, format!("workers.count = {}", spec.workers.count)),
        Provider::Static { nodes } => {
            let n = nodes.iter().filter(|n| n.role == NodeRole::Worker).count();
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            (n, format!("{n} static worker(s)"))
        }
    }
}

/// The first StatefulSet with more replicas than there are workers, as a refusal.
pub fn check(spec: &Spec, sets: &[OnePerNode]) -> Result<(), PlanError> {
    let (n, what) = workers(spec);
    match sets.iter().find(|s| s.replicas > n) {
        None => Ok(()),
        Some(s) => Err(PlanError::TooFewWorkers {
            workers: what,
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            replicas: s.replicas,
            setting: s.setting.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{AWS_BASE, STATIC_BASE, parse};
    use crate::stack::Component;

    fn set(replicas: u32) -> OnePerNode {
        OnePerNode {
            component: Component::Kafka,
            namespace: "kafka".into(),
            name: "kafka".into(),
            replicas,
            setting: "stack.kafka.brokers",
        }
    }

    #[test]
    fn fewer_workers_than_one_per_node_replicas_is_refused_with_the_numbers_and_a_hint() {
        let spec = parse(&format!("{AWS_BASE}\n[workers]\ncount = 2\n"));
        assert!(check(&spec, &[set(2)]).is_ok());
        assert!(check(&spec, &[]).is_ok());
        let err = check(&spec, &[set(1), set(3)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "too few workers (workers.count = 2) for StatefulSet kafka/kafka: its 3 replicas must each run on \
             their own worker (required pod anti-affinity on kubernetes.io/hostname); nothing was changed\n  \
             hint: keep at least 3 workers, or lower the replicas of kafka/kafka (stack.kafka.brokers) first"
        );
    }

    #[test]
    fn a_static_environment_counts_its_worker_nodes() {
        let spec = parse(STATIC_BASE);
        assert_eq!(workers(&spec), (1, "1 static worker(s)".to_string()));
        assert!(check(&spec, &[set(1)]).is_ok());
        assert!(matches!(check(&spec, &[set(2)]), Err(PlanError::TooFewWorkers { replicas: 2, .. })));
    }

    /// The stack's own StatefulSets declare what their templates require: today none (Kafka's
    /// and Cassandra's anti-affinity is preferred, so a short cluster doubles pods up rather
    /// than leaving them Pending), and a template that starts requiring it must declare it.
    #[test]
    fn the_declarations_match_the_templates() {
        let spec = parse(&format!(
            "{AWS_BASE}\n[stack.kafka]\nbrokers = 3\n[stack.cassandra]\nreplicas = 3\n[stack.spark]\nworkers = 2\n"
        ));
        let declared = crate::stack::one_per_node(&spec);
        for m in crate::stack::manifests(&spec).unwrap() {
            let required = m.content.split("podAntiAffinity:").skip(1).any(|after| {
                let block = after.split("\n      containers:").next().unwrap_or(after);
                block.contains("requiredDuringSchedulingIgnoredDuringExecution")
            });
            assert_eq!(
                required,
                declared.iter().any(|d| d.component == m.component),
                "{}: required pod anti-affinity and Part::one_per_node disagree",
                m.file
            );
        }
        assert!(declared.is_empty());
    }
}
