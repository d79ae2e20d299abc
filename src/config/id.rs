//! Who an environment is: its project and environment names, and every name and tag that
//! derives from them (the ownership tags discovery filters and checks, the `Name` tags, IAM
//! names, the key pair, the cluster name, the control plane's endpoint name). All that discovery, `down` and `reap` need to find
//! and delete what an environment owns, so `reap` builds one from tags alone. Pure; it holds
//! no configuration (that is [`super::Spec`]) and no run-time state (the expiry is the run's).

use serde::Serialize;

use super::spec::{NodeRole, TAG_COMPONENT, TAG_ENV, TAG_PROJECT};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EnvId {
    pub project: String,
    pub environment: String,
}

impl EnvId {
    pub fn new(project: &str, environment: &str) -> EnvId {
        EnvId { project: project.to_string(), environment: environment.to_string() }
    }

    /// `<project>-<env>`: the Kubernetes cluster name and the stem of every `Name` tag.
    pub fn cluster_name(&self) -> String {
        format!("{}-{}", self.project, self.environment)
    }

    /// `Name` tag for a component, e.g. `demo-dev-vpc`.
    pub fn name_of(&self, component: &str) -> String {
        format!("{}-{}", self.cluster_name(), component)
    }

    /// Every IAM name this environment owns starts with this.
    pub fn iam_prefix(&self) -> String {
        format!("tagstack-{}-{}-", self.project, self.environment)
    }

    /// The role and the instance profile of a node role share this name.
    pub fn iam_name(&self, role: NodeRole) -> String {
        format!("{}{}", self.iam_prefix(), role.as_str())
    }

    /// The stable name of the control plane's endpoint (kubeadm `controlPlaneEndpoint` of a
    /// cluster created since issue 12), `control-plane.<project>-<env>.tagstack.internal`: every
    /// node resolves it to the control plane through /etc/hosts (`cluster::endpoint`,
    /// docs/control-plane-endpoint.md). Under `.internal`, which ICANN reserved from delegation
    /// for private use (Board resolution 2024.07.29.06), so no public name can shadow it; the
    /// `tagstack` label keeps it clear of AWS's own `.internal` names (`<region>.compute.internal`,
    /// `ec2.internal`), and `<project>-<env>.tagstack.internal` is the zone a Route 53 private
    /// zone would hold if one replaces /etc/hosts later. A valid DNS name: the project and
    /// environment are DNS labels (config validation) and together at most 40 characters.
    pub fn control_plane_endpoint_name(&self) -> String {
        format!("control-plane.{}.tagstack.internal", self.cluster_name())
    }

    /// The S3 bucket of the environment's etcd snapshots (`[backup]`):
    /// `tagstack-<project>-<env>-<account id>`. Bucket names are global across every AWS
    /// account, so the name carries the account's 12-digit id: another account can only take
    /// it by squatting, which discovery sees (`ExpectedBucketOwner`) and refuses, never a
    /// clash between two honest users of the same environment name. No random suffix: a
    /// stateless tool must find its bucket again from the config alone. S3's rules ("General
    /// purpose bucket naming rules", Amazon S3 User Guide): 3-63 characters, lowercase letters,
    /// digits, hyphens, a letter or digit at both ends, no `xn--`/`sthree-` prefix and no
    /// `-s3alias`/`--ol-s3` suffix. Project and environment are lowercase, digits and single
    /// dashes, together at most 40 characters (`config::validate`), so this is at most
    /// 9 + 40 + 2 + 12 = 63, starts with `tagstack-` and ends with digits. The same stem as
    /// the IAM names ([`Self::iam_prefix`]).
    pub fn backup_bucket(&self, account_id: &str) -> String {
        format!("{}{account_id}", self.iam_prefix())
    }

    /// Where the environment's snapshots go in its bucket: `<cluster name>/`.
    pub fn backup_prefix(&self) -> String {
        format!("{}/", self.cluster_name())
    }

    /// The key of a snapshot taken at `at` (RFC 3339 UTC, e.g. `2026-11-30T13:45:00Z`), which
    /// sorts the keys in time order: `<cluster name>/etcd-<at>.db`.
    pub fn backup_key(&self, at: &str) -> String {
        format!("{}etcd-{at}.db", self.backup_prefix())
    }

    /// The name of the baked image of content address `hash` (`tagstack bake`):
    /// `tagstack-<project>-bake-<first 24 hex of the hash>`. EC2 refuses a second image of a
    /// name in an account and region (CreateImage: `InvalidAMIName.Duplicate`), so two bakes of
    /// one config, in any environment of the project, can never both make an image. At most
    /// 9 + 24 + 6 + 24 = 63 characters, within CreateImage's 3-128.
    pub fn baked_image_name(&self, hash: &str) -> String {
        format!("tagstack-{}-bake-{}", self.project, hash.get(..24).unwrap_or(hash))
    }

    pub fn key_pair_name(&self) -> String {
        format!("tagstack-{}", self.cluster_name())
    }

    /// The two tags that make a resource this environment's: filtered on by discovery and
    /// checked again on every answer (a filter is a query, ownership is a rule).
    pub fn ownership(&self) -> [(&'static str, &str); 2] {
        [(TAG_PROJECT, self.project.as_str()), (TAG_ENV, self.environment.as_str())]
    }

    /// Whether a resource's tags (read with `get`) carry exactly this environment's ownership.
    pub fn owns<'t>(&self, get: impl Fn(&str) -> Option<&'t str>) -> bool {
        self.ownership().iter().all(|(k, v)| get(k) == Some(*v))
    }

    /// The tags every resource of a component is created with: ownership, component, `Name`
    /// and the Kubernetes cluster tag the cloud provider looks for. Without the run's expiry,
    /// which the caller adds (`aws::Ctx::tags`).
    pub fn tags(&self, component: &str) -> Vec<(String, String)> {
        let owner = self.ownership().map(|(k, v)| (k.to_string(), v.to_string()));
        owner
            .into_iter()
            .chain([
                (TAG_COMPONENT.to_string(), component.to_string()),
                ("Name".to_string(), self.name_of(component)),
                (format!("kubernetes.io/cluster/{}", self.cluster_name()), "owned".to_string()),
            ])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> EnvId {
        EnvId::new("demo", "dev")
    }

    #[test]
    fn names_derive_from_project_and_environment() {
        let id = id();
        assert_eq!(id.cluster_name(), "demo-dev");
        assert_eq!(id.name_of("vpc"), "demo-dev-vpc");
        assert_eq!(id.iam_prefix(), "tagstack-demo-dev-");
        assert_eq!(id.iam_name(NodeRole::ControlPlane), "tagstack-demo-dev-control-plane");
        assert_eq!(id.iam_name(NodeRole::Worker), "tagstack-demo-dev-worker");
        assert_eq!(id.key_pair_name(), "tagstack-demo-dev");
        assert_eq!(id.control_plane_endpoint_name(), "control-plane.demo-dev.tagstack.internal");
        assert_eq!(id.backup_bucket("123456789012"), "tagstack-demo-dev-123456789012");
        assert_eq!(id.backup_key("2026-11-30T13:45:00Z"), "demo-dev/etcd-2026-11-30T13:45:00Z.db");
    }

    #[test]
    fn the_longest_backup_bucket_name_fits_s3s_limit() {
        // 40 characters of project and environment, the most validation allows.
        let id = EnvId::new("p23456789012345678901234", "e234567890123456");
        let name = id.backup_bucket("123456789012");
        assert_eq!(name.len(), 63);
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn create_tags_carry_ownership_component_name_and_cluster() {
        let tags = id().tags("sg");
        let want: Vec<(String, String)> = [
            ("tagstack:project", "demo"),
            ("tagstack:env", "dev"),
            ("tagstack:component", "sg"),
            ("Name", "demo-dev-sg"),
            ("kubernetes.io/cluster/demo-dev", "owned"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(tags, want);
    }

    #[test]
    fn ownership_is_both_tags_exactly() {
        let id = id();
        assert_eq!(id.ownership(), [("tagstack:project", "demo"), ("tagstack:env", "dev")]);
        let tags = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
        };
        assert!(id.owns(tags(&[("tagstack:project", "demo"), ("tagstack:env", "dev")])));
        // A look-alike environment, a missing tag and another project are not ours.
        assert!(!id.owns(tags(&[("tagstack:project", "demo"), ("tagstack:env", "dev-2")])));
        assert!(!id.owns(tags(&[("tagstack:project", "demo")])));
        assert!(!id.owns(tags(&[("tagstack:project", "demo2"), ("tagstack:env", "dev")])));
        // The ownership tags of every create are the ones `owns` checks.
        let created = id.tags("vpc");
        assert!(id.owns(|k| created.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())));
    }
}
