//! The cluster add-ons and the exact upstream release of each: Flannel, the NetworkPolicy
//! engine kube-network-policies (Flannel enforces no policy), and on AWS the
//! cloud-controller-manager (one release per Kubernetes minor), the EBS CSI driver and the gp3
//! StorageClass. One place for every pinned add-on version (sources in docs/first-real-run.md);
//! the workloads whose rollout ends the cluster stage. Pure: no I/O.
//!
//! Every source is an immutable tag, so the same config renders the same add-ons next month.
//! Remote kustomize bases are fetched by the control plane's kubectl with `git` (kustomize clones
//! them), which the init script installs there first.

use serde::Serialize;

use super::render::NODE_DIR;
use crate::config::{KubeVersion, Provider, Spec};

pub const FLANNEL_VERSION: &str = "v0.28.8";
/// kubernetes-sigs/kube-network-policies: the NetworkPolicy engine beside Flannel, which
/// enforces none (docs/network-policies.md, "Enforcement"). Its `install.yaml` is applied at
/// the commit "Update repository manifests to v1.1.1" (ee995c5, the first to name image v1.1.1:
/// the v1.1.1 tag's own manifest still names v1.1.0), so the manifest cannot move under the pin.
pub const KUBE_NETWORK_POLICIES_VERSION: &str = "v1.1.1";
const KUBE_NETWORK_POLICIES_COMMIT: &str = "ee995c5d716873969f9adc0f8239e08aab0e69a0";
/// kubernetes-sigs/aws-ebs-csi-driver tag. The tag sits one commit before "Release 1.64.0",
/// so its base still names driver image v1.63.1: the kustomization sets the image to the tag.
pub const EBS_CSI_VERSION: &str = "v1.64.0";
pub const EBS_CSI_IMAGE: &str = "public.ecr.aws/ebs-csi-driver/aws-ebs-csi-driver";
/// The image the cloud-provider-aws example base deploys; tagstack overrides its tag, because
/// the base pins v1.27.1 on every release branch (UPSTREAM-AUDIT #26).
pub const CCM_IMAGE: &str = "registry.k8s.io/provider-aws/cloud-controller-manager";

/// kubernetes/cloud-provider-aws release per Kubernetes minor: the CCM must match the API
/// server's minor (it may not be newer, and may be at most one minor older: the Kubernetes
/// version skew policy). `config::KUBE_MINORS` accepts only minors listed here (a unit test
/// keeps them in step).
///
/// The newest published patch of each minor (cloud-provider-aws tags; images promoted to
/// registry.k8s.io by kubernetes/k8s.io, v1.36.1 by k8s.io#9796: v1.36.0 was never built).
const CCM_RELEASES: &[(u32, &str)] = &[(33, "v1.33.4"), (34, "v1.34.3"), (35, "v1.35.2"), (36, "v1.36.1")];

/// The cloud-provider-aws tag for a Kubernetes minor, if one is released.
pub fn ccm_release(v: KubeVersion) -> Option<&'static str> {
    CCM_RELEASES.iter().find(|(minor, _)| v.major == 1 && *minor == v.minor).map(|(_, tag)| *tag)
}

/// A cluster add-on applied by the control plane, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addon {
    pub name: &'static str,
    /// A URL, or a file or kustomization directory under [`NODE_DIR`] that tagstack uploads.
    pub source: String,
    pub kustomize: bool,
    /// Fetches a remote kustomize base (needs `git` on the control plane).
    pub remote_base: bool,
    /// Files to upload before applying: a path relative to [`NODE_DIR`]/addons, and content.
    #[serde(skip)]
    pub files: Vec<(String, String)>,
}

/// The cloud-controller-manager from the upstream example base at the release's tag, with its
/// image set to that release (the base itself pins an old image).
fn ccm_kustomization(tag: &str) -> String {
    format!(
        "# The AWS cloud-controller-manager {tag}: the upstream example base at that tag, with the image of the same release.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - github.com/kubernetes/cloud-provider-aws/examples/existing-cluster/base/?ref={tag}
images:
  - name: {CCM_IMAGE}
    newTag: {tag}
"
    )
}

/// The EBS CSI driver's stable overlay, with the controller told to tag every volume it
/// creates with the environment's ownership tags and the Kubernetes cluster tag: that is how
/// `tagstack down` finds volumes left behind by PersistentVolumeClaims, and only those.
///
/// No pod reaches IMDS (every node's hop limit is 1, `plan::desired::IMDS_HOP_LIMIT`), so:
/// - the controller, the only part that calls EC2, runs on the control plane with host
///   networking and takes the control-plane role from IMDS there (one replica: one control
///   plane, and two host-network replicas would both bind the liveness probe's port 9808 on
///   it; the base's PodDisruptionBudget is `maxUnavailable: 1`, so a drain still evicts it);
/// - the node plugin, which never calls EC2 (v1.64.0 `pkg/driver/driver.go`: `NewNodeService`
///   gets no cloud), reads its instance id, type, region and zone from its Node object
///   (`--metadata-sources=kubernetes`, `docs/install.md` "Kubernetes Metadata": the CCM's
///   providerID and labels; the base's `ebs-csi-node-role` already grants `get` on nodes)
///   instead of trying IMDS first and waiting for it to time out.
fn ebs_csi_kustomization(spec: &Spec) -> String {
    format!(
        "# The EBS CSI driver ({EBS_CSI_VERSION}) with tagstack's ownership tags on every volume it creates.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - github.com/kubernetes-sigs/aws-ebs-csi-driver/deploy/kubernetes/overlays/stable/?ref={EBS_CSI_VERSION}
images:
  - name: {EBS_CSI_IMAGE}
    newTag: {EBS_CSI_VERSION}
patches:
  - target:
      kind: Deployment
      name: ebs-csi-controller
    # Container 0 is the driver (ebs-plugin); the sidecars follow it.
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --k8s-tag-cluster-id={cluster}
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --extra-tags={project_tag}={project},{env_tag}={env}
      - op: replace
        path: /spec/replicas
        value: 1
      - op: add
        path: /spec/template/spec/hostNetwork
        value: true
      - op: add
        path: /spec/template/spec/nodeSelector/node-role.kubernetes.io~1control-plane
        value: \"\"
      - op: add
        path: /spec/template/spec/tolerations/-
        value:
          key: node-role.kubernetes.io/control-plane
          effect: NoSchedule
  - target:
      kind: DaemonSet
      name: ebs-csi-node
    # Container 0 is the driver (ebs-plugin).
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --metadata-sources=kubernetes
",
        cluster = spec.id.cluster_name(),
        project_tag = crate::config::TAG_PROJECT,
        project = spec.id.project,
        env_tag = crate::config::TAG_ENV,
        env = spec.id.environment,
    )
}

/// Flannel (VXLAN) first, the NetworkPolicy engine, then on AWS the cloud-controller-manager
/// of the Kubernetes minor, the EBS CSI driver and the default gp3 StorageClass.
pub fn addons(spec: &Spec) -> Vec<Addon> {
    let mut out = vec![
        Addon {
            name: "flannel",
            source: format!(
                "https://github.com/flannel-io/flannel/releases/download/{FLANNEL_VERSION}/kube-flannel.yml"
            ),
            kustomize: false,
            remote_base: false,
            files: Vec::new(),
        },
        Addon {
            name: "kube-network-policies",
            source: format!(
                "https://raw.githubusercontent.com/kubernetes-sigs/kube-network-policies/{KUBE_NETWORK_POLICIES_COMMIT}/install.yaml"
            ),
            kustomize: false,
            remote_base: false,
            files: Vec::new(),
        },
    ];
    if spec.provider == Provider::Aws {
        // The config check refuses a minor without a release; the fallback keeps this total.
        let tag = ccm_release(spec.kubernetes_version).unwrap_or("unreleased");
        out.push(Addon {
            name: "aws-cloud-controller-manager",
            source: format!("{NODE_DIR}/addons/cloud-controller-manager"),
            kustomize: true,
            remote_base: true,
            files: vec![("cloud-controller-manager/kustomization.yaml".into(), ccm_kustomization(tag))],
        });
        out.push(Addon {
            name: "aws-ebs-csi-driver",
            source: format!("{NODE_DIR}/addons/ebs-csi"),
            kustomize: true,
            remote_base: true,
            files: vec![("ebs-csi/kustomization.yaml".into(), ebs_csi_kustomization(spec))],
        });
        out.push(Addon {
            name: "storageclass-gp3",
            source: format!("{NODE_DIR}/addons/storageclass-gp3.yaml"),
            kustomize: false,
            remote_base: false,
            files: vec![("storageclass-gp3.yaml".into(), super::render::STORAGECLASS_GP3.to_string())],
        });
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AddonKind {
    DaemonSet,
    Deployment,
}

/// A workload of the cluster's add-ons that must have rolled out before the cluster counts
/// as ready: until CoreDNS runs no Service name resolves, and until the CSI driver runs no
/// volume attaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddonWorkload {
    pub kind: AddonKind,
    pub namespace: &'static str,
    pub name: &'static str,
}

/// What the cluster stage waits for, besides the nodes (names from the pinned manifests:
/// kubeadm's CoreDNS addon, Flannel's kube-flannel.yml, kube-network-policies' install.yaml,
/// the CCM base, the EBS CSI base).
pub fn workloads(spec: &Spec) -> Vec<AddonWorkload> {
    let w = |kind, namespace, name| AddonWorkload { kind, namespace, name };
    let mut out = vec![
        w(AddonKind::DaemonSet, "kube-flannel", "kube-flannel-ds"),
        w(AddonKind::DaemonSet, "kube-system", "kube-network-policies"),
        w(AddonKind::Deployment, "kube-system", "coredns"),
    ];
    if spec.provider == Provider::Aws {
        out.push(w(AddonKind::DaemonSet, "kube-system", "aws-cloud-controller-manager"));
        out.push(w(AddonKind::Deployment, "kube-system", "ebs-csi-controller"));
        out.push(w(AddonKind::DaemonSet, "kube-system", "ebs-csi-node"));
    }
    out
}
