//! What the config asks for, as resources: names, tags, security-group rules and IAM policy
//! documents, pure functions of the [`Spec`]; and the deterministic ClientTokens, pure
//! functions of the [`EnvId`] and the parent's id, which `ops::infra::apply` computes when it
//! sends the create and `aws` only passes on.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::observed::{IngressRule, InstanceState};
use crate::config::{EnvId, NodeRole, Spec};

pub const TRUST_POLICY: &str = include_str!("../../templates/iam/trust-ec2.json");
const CCM_CONTROL_PLANE: &str = include_str!("../../templates/iam/cloud-provider-control-plane.json");
const CCM_NODE: &str = include_str!("../../templates/iam/cloud-provider-node.json");
const EBS_CSI: &str = include_str!("../../templates/iam/ebs-csi.json");
/// Denies the nodes' roles adding or removing `tagstack:*` tags on existing resources. The
/// cloud-controller-manager's policy allows ec2:CreateTags on any resource, and whatever runs
/// with host networking on a node can reach the role through IMDS: without this, it could rewrite the
/// `tagstack:ssh-host-key` tags that verify the nodes, or tag a foreign resource as the
/// environment's so that `down` deletes it. Tagging on create (the EBS CSI driver's volumes,
/// with `ec2:CreateAction` set) stays allowed.
const GUARD: &str = include_str!("../../templates/iam/tagstack-guard.json");

/// IMDS `HttpPutResponseHopLimit` of every node: 1, so the IMDSv2 token's answer does not
/// survive the extra hop into a pod's network namespace and no pod gets the node's role; only
/// host-network processes reach it (aws-ebs-csi-driver v1.64.0 `docs/install.md`, "IMDS (EC2)
/// Metadata": with a hop limit of 1 a driver "run inside a container" cannot reach IMDSv2; it
/// "must be run in host networking mode, or with a hop limit of at least 2"). On the control
/// plane those are the cloud-controller-manager and the EBS CSI controller (`cluster::addons`),
/// which is why only that role may touch volumes.
pub const IMDS_HOP_LIMIT: i32 = 1;

/// The inline policy a worker role carried when pods could reach IMDS (the EBS CSI controller
/// then ran on workers). An environment from before keeps it until `up`'s cluster stage has
/// moved the controller to the control plane (`ops::harden`), then loses it.
pub const LEGACY_WORKER_POLICY: &str = "ebs-csi";

/// Inline policies per node role, by name. Only the control plane calls AWS APIs that change
/// anything: the cloud-controller-manager and the EBS CSI controller run there with host
/// networking. A worker keeps upstream's read-only node policy (DescribeInstances and ECR
/// image pulls, cloud-provider-aws `docs/prerequisites.md`, for a kubelet credential provider)
/// and the guard; nothing on it may attach, detach, create or delete a volume.
pub fn inline_policies(role: NodeRole) -> Vec<(&'static str, &'static str)> {
    match role {
        NodeRole::ControlPlane => vec![
            ("cloud-provider-control-plane", CCM_CONTROL_PLANE),
            ("cloud-provider-node", CCM_NODE),
            ("ebs-csi", EBS_CSI),
            ("tagstack-guard", GUARD),
        ],
        NodeRole::Worker => vec![("cloud-provider-node", CCM_NODE), ("tagstack-guard", GUARD)],
    }
}

/// Parsed policy documents, for comparing with what IAM returns.
pub fn inline_policy_values(role: NodeRole) -> Vec<(String, Value)> {
    inline_policies(role)
        .into_iter()
        .map(|(name, doc)| (name.to_string(), serde_json::from_str(doc).unwrap_or(Value::Null)))
        .collect()
}

/// The cluster security group's ingress: everything from itself, SSH and API from admins.
pub fn ingress_rules(spec: &Spec) -> Vec<IngressRule> {
    let mut rules = vec![IngressRule::SelfAll];
    for cidr in &spec.admin_cidrs {
        rules.push(IngressRule::Tcp { port: 22, cidr: *cidr });
        rules.push(IngressRule::Tcp { port: 6443, cidr: *cidr });
    }
    rules.sort();
    rules
}

/// Hex SHA-256 of the public key's type and data (the comment is ignored).
pub fn public_key_sha256(public_key: &str) -> String {
    let mut parts = public_key.split_whitespace();
    let material = format!("{} {}", parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    hex(&Sha256::digest(material.as_bytes()))
}

/// Deterministic RunInstances ClientToken (<= 64 chars). It includes the subnet id so that a
/// `down` + `up` (new subnet) never replays the old, terminated reservation, and the number of
/// instances already present so a scale-up is a new request while a retry of a crashed launch
/// is the same one.
pub fn client_token(id: &EnvId, role: NodeRole, subnet_id: &str, existing: usize, launch: usize) -> String {
    let input = format!("{}/{}/{}/{subnet_id}/{existing}/{launch}", id.project, id.environment, role.as_str());
    let digest = hex(&Sha256::digest(input.as_bytes()));
    format!("tagstack-{}", digest.get(..48).unwrap_or(&digest))
}

/// Deterministic ClientToken for a create that takes one besides RunInstances (today:
/// CreateRouteTable): environment, component and the parent's id (`scope`, e.g. the VPC), so a
/// `down` + `up` (new VPC) is a new request while a retry, or the `up` after a crash, is the
/// same one. EC2 tokens are up to 64 ASCII characters ("Ensuring idempotency in Amazon EC2 API
/// requests", <https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html>).
pub fn resource_token(id: &EnvId, component: &str, scope: &str) -> String {
    let input = format!("{}/{}/{component}/{scope}", id.project, id.environment);
    let digest = hex(&Sha256::digest(input.as_bytes()));
    format!("tagstack-{}", digest.get(..48).unwrap_or(&digest))
}

/// The ClientToken of the next attempt after `token` was answered with dead resources.
/// EC2 answers a repeated token with the original request's result ("Ensuring idempotency in
/// Amazon EC2 API requests", <https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html>:
/// a retry "completes successfully without performing any further actions", the result "might
/// contain updated information"; for RunInstances "the same response is returned", only the
/// instances' state may differ, and the token "is valid for at least 24 hours after the
/// termination of the instance", API reference "Ensuring Idempotency",
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Run_Instance_Idempotency.html>). So
/// the deterministic tokens above are the same request in a later run too: once those
/// instances were terminated (a scale down and up again, a `down` that stopped half way) or
/// that route table deleted, the answer names dead resources. The next attempt's token is
/// derived from the dead one and the dead ids, so it is as deterministic (a lost answer to
/// *it* is replayed as well, and the next run walks the same chain) and new for every
/// generation of dead resources.
pub fn successor_token(token: &str, dead_ids: &[String]) -> String {
    let mut ids: Vec<&str> = dead_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    let input = format!("{token}/after/{}", ids.join(","));
    let digest = hex(&Sha256::digest(input.as_bytes()));
    format!("tagstack-{}", digest.get(..48).unwrap_or(&digest))
}

/// The ids of a RunInstances answer that are not new instances of this launch: gone or going
/// (not [`InstanceState::is_live`]: a repeated token's answer shows the instances' state now),
/// or already among the role's `kept` instances (a repeated token can also name instances the
/// plan counted as existing: launched by the same request in an earlier run, and the older
/// ones terminated since). Empty when the answer is this launch.
pub fn stale_launch(launched: &[(String, InstanceState)], kept: &[String]) -> Vec<String> {
    launched.iter().filter(|(id, state)| !state.is_live() || kept.contains(id)).map(|(id, _)| id.clone()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dead result's successor token is deterministic, differs from the dead one and per
    /// set of dead ids (not their order), and fits EC2's 64 characters.
    #[test]
    fn successor_tokens_are_deterministic_and_new_per_dead_result() {
        let t = resource_token(&EnvId::new("demo", "dev"), "rtb", "vpc-1");
        let a = successor_token(&t, &["i-2".into(), "i-1".into()]);
        assert_eq!(a, successor_token(&t, &["i-1".into(), "i-2".into()]));
        assert_ne!(a, t);
        assert_ne!(a, successor_token(&t, &["i-1".into()]));
        assert_ne!(successor_token(&a, &["i-3".into()]), successor_token(&t, &["i-3".into()]));
        assert!(a.len() <= 64 && a.is_ascii(), "{a}");
    }

    /// Terminated, shutting-down and already-kept instances are not this launch's.
    #[test]
    fn a_launch_answer_naming_dead_or_kept_instances_is_stale() {
        let launched = |states: &[(&str, &str)]| -> Vec<(String, InstanceState)> {
            states.iter().map(|(id, s)| ((*id).to_string(), InstanceState::parse(s))).collect()
        };
        let kept = vec!["i-old".to_string()];
        assert!(stale_launch(&launched(&[("i-1", "pending"), ("i-2", "running")]), &kept).is_empty());
        assert_eq!(
            stale_launch(&launched(&[("i-1", "terminated"), ("i-2", "shutting-down"), ("i-3", "pending")]), &kept),
            ["i-1", "i-2"]
        );
        assert_eq!(stale_launch(&launched(&[("i-old", "running")]), &kept), ["i-old"]);
    }

    #[test]
    fn every_policy_document_is_valid_json_with_statements() {
        for role in NodeRole::ALL {
            for (name, doc) in inline_policy_values(role) {
                assert!(doc["Statement"].as_array().is_some_and(|s| !s.is_empty()), "{name}");
            }
        }
        let trust: Value = serde_json::from_str(TRUST_POLICY).unwrap();
        assert_eq!(trust["Statement"][0]["Principal"]["Service"], "ec2.amazonaws.com");
    }

    /// Both node roles are denied tagging existing resources with `tagstack:*` keys (the host
    /// keys that verify the nodes, the ownership that `down` trusts), while tag-on-create (the
    /// EBS CSI driver's volumes) is not denied: IAM's `ec2:CreateAction` is set only then
    /// (EC2 User Guide, "Grant permission to tag Amazon EC2 resources during creation").
    #[test]
    fn node_roles_may_not_write_tagstack_tags_on_existing_resources() {
        for role in NodeRole::ALL {
            let policies = inline_policy_values(role);
            let (_, guard) = policies.iter().find(|(n, _)| n == "tagstack-guard").expect("guard policy");
            let deny = &guard["Statement"][0];
            assert_eq!(deny["Effect"], "Deny");
            assert_eq!(deny["Action"], serde_json::json!(["ec2:CreateTags", "ec2:DeleteTags"]));
            assert_eq!(deny["Condition"]["ForAnyValue:StringLike"]["aws:TagKeys"], serde_json::json!(["tagstack:*"]));
            assert_eq!(deny["Condition"]["Null"]["ec2:CreateAction"], "true");
        }
        // tagstack:ssh-host-key is one of the keys it covers.
        assert!(crate::config::TAG_HOST_KEY.starts_with("tagstack:"));
    }

    /// kubernetes-sigs/aws-ebs-csi-driver `docs/example-iam-policy.json` at the tag tagstack
    /// installs (v1.64.0), verbatim; see tests/fixtures/upstream/README.md.
    const UPSTREAM_EBS_CSI_EXAMPLE: &str =
        include_str!("../../tests/fixtures/upstream/ebs-csi-example-iam-policy-v1.64.0.json");

    /// Every action an `Allow` statement of a policy document names (`Action` is a string or
    /// a list in IAM's grammar).
    fn allowed_actions(doc: &Value) -> std::collections::BTreeSet<String> {
        let statements = doc["Statement"].as_array().cloned().unwrap_or_default();
        statements
            .iter()
            .filter(|s| s["Effect"] == "Allow")
            .flat_map(|s| match &s["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(list) => list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// The driver calls each action its example policy lists (v1.64.0 calls
    /// DescribeInstanceTypes at runtime for multi-card instances, LockSnapshot for snapshot
    /// locks, CopyVolumes for clones); a missing one fails that feature with
    /// UnauthorizedOperation on a real cluster, so the policy of the role its controller runs
    /// with (the control plane's, since IMDS hop limit 1) must allow all.
    #[test]
    fn ebs_csi_policy_allows_every_action_of_the_upstream_example() {
        let upstream: Value = serde_json::from_str(UPSTREAM_EBS_CSI_EXAMPLE).unwrap();
        let wanted = allowed_actions(&upstream);
        assert!(wanted.contains("ec2:DescribeInstanceTypes"), "the fixture is not the v1.64.0 example");
        let role = NodeRole::ControlPlane;
        let (_, ours) = inline_policy_values(role).into_iter().find(|(n, _)| n == "ebs-csi").unwrap();
        let have = allowed_actions(&ours);
        let missing: Vec<&String> = wanted.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "the ebs-csi policy of the {} role lacks actions the upstream v1.64.0 example allows: {missing:?}",
            role.as_str()
        );
    }

    /// A worker runs nothing that may change EC2 (no pod reaches IMDS; the EBS CSI controller
    /// and the CCM run on the control plane): no Allow of its policies names a volume or
    /// instance mutation, nor a wildcard that would cover one.
    #[test]
    fn the_worker_role_may_not_touch_volumes_or_instances() {
        let allowed: std::collections::BTreeSet<String> =
            inline_policy_values(NodeRole::Worker).iter().flat_map(|(_, doc)| allowed_actions(doc)).collect();
        for action in allowed.iter() {
            assert!(
                action.starts_with("ec2:Describe") || action.starts_with("ecr:"),
                "the worker role allows {action}"
            );
            assert!(!action.contains('*'), "the worker role allows the wildcard {action}");
        }
        assert!(!inline_policies(NodeRole::Worker).iter().any(|(n, _)| *n == LEGACY_WORKER_POLICY));
    }

    /// The policy documents each role gets, by name: a change to a role's rights shows here.
    #[test]
    fn policy_documents_per_role() {
        for role in NodeRole::ALL {
            let docs: Vec<(String, Value)> = inline_policy_values(role);
            insta::assert_json_snapshot!(format!("policies_{}", role.as_str()), docs);
        }
    }

    #[test]
    fn key_hash_ignores_comment() {
        assert_eq!(public_key_sha256("ssh-ed25519 AAAA me@a"), public_key_sha256("ssh-ed25519 AAAA other"));
        assert_ne!(public_key_sha256("ssh-ed25519 AAAA"), public_key_sha256("ssh-ed25519 AAAB"));
    }
}
