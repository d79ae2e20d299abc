//! What tagstack installs on a node, in one place: the containerd version pinned per Kubernetes
//! minor, how long `prepare-node` waits for the package lock, and the rule that every node runs
//! the same Kubernetes patch. The pause (sandbox) image is not in this table: `prepare-node` reads
//! it at run time from the installed kubeadm (`kubeadm config images list`), so it always matches
//! what kubeadm expects.
//!
//! Sources, verified on 2026-11-30:
//! - Which containerd lines a Kubernetes minor supports: containerd's `RELEASES.md`, section
//!   "Kubernetes Support" (containerd/containerd, tag v2.3.4 and main at 2026-08-22):
//!   1.33 -> 2.1.0+, 2.0.4+, 1.7.24+, 1.6.36+; 1.34 -> 2.1.3+, 2.0.6+, 1.7.28+, 1.6.39+;
//!   1.35 -> 2.2.0+, 2.1.5+, 1.7.28+; 1.36 -> 2.3.0+, 2.2.0+. No row for 1.37 yet.
//! - Which versions Docker's apt repository serves as `containerd.io` (the package is named
//!   `containerd.io`, its version `2.3.4-2~ubuntu.24.04~noble`: upstream version, Docker's
//!   revision, then `~<distro>.<release>~<codename>`): docker/for-linux#1557 and
//!   docker/containerd-packaging#430 (2.2.1-1~ubuntu.24.04~noble), public install logs of
//!   2.1.5-1, 2.2.5-1, 2.3.4-2 (a revision 2), 2.3.5-1 on noble; docker/packaging#498
//!   (2026-08-19: "we currently ship containerd 2.3 releases as stable"). The revision is not
//!   always 1, so the install asks apt for `containerd.io=<version>-*`.
//! - The containerd 2.x CRI config keeps the sandbox image at
//!   `[plugins.'io.containerd.cri.v1.images'.pinned_images] sandbox` (containerd
//!   `docs/cri/config.md` at v2.1.5, v2.2.5 and v2.3.4); the defaults differ per line
//!   (`internal/cri/config/config.go` `DefaultSandboxImage`: pause:3.10 in 2.1, 3.10.1 in 2.2,
//!   3.10.2 in 2.3), which is why the script sets it from kubeadm instead of trusting the default.
//!
//! Its errors state facts (`NoContainerd`, `VersionsDiffer`); `ops::advice` says what to do.

use std::time::Duration;

use anyhow::{Result, bail};

/// The containerd tagstack installs for one Kubernetes minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerdPin {
    pub kube_minor: u32,
    /// The upstream version installed from Docker's repository (`containerd.io=<version>-*`).
    pub version: &'static str,
    /// RELEASES.md's row for the minor: the oldest supported patch of each supported line.
    pub supported: &'static [&'static str],
}

/// Docker's package name for containerd.
pub const CONTAINERD_PACKAGE: &str = "containerd.io";

/// Newest line of each row that Docker publishes for Ubuntu 24.04. 2.1 reached end of life on
/// 2026-07-03 and 2.2 on 2026-11-06 (RELEASES.md "Current State of containerd Releases"), but
/// they are the newest lines RELEASES.md lists for 1.33/1.34 and 1.35.
const CONTAINERD: &[ContainerdPin] = &[
    ContainerdPin { kube_minor: 33, version: "2.1.5", supported: &["2.1.0", "2.0.4", "1.7.24", "1.6.36"] },
    ContainerdPin { kube_minor: 34, version: "2.1.5", supported: &["2.1.3", "2.0.6", "1.7.28", "1.6.39"] },
    ContainerdPin { kube_minor: 35, version: "2.2.5", supported: &["2.2.0", "2.1.5", "1.7.28"] },
    ContainerdPin { kube_minor: 36, version: "2.3.4", supported: &["2.3.0", "2.2.0"] },
];

/// The containerd pinned for a Kubernetes minor; a minor without a row in containerd's table is
/// refused rather than guessed.
pub fn containerd_for(kube_minor: u32) -> Result<ContainerdPin> {
    match CONTAINERD.iter().find(|p| p.kube_minor == kube_minor) {
        Some(p) => Ok(*p),
        None => Err(NoContainerd {
            kube_minor,
            oldest: CONTAINERD[0].kube_minor,
            newest: CONTAINERD[CONTAINERD.len() - 1].kube_minor,
        }
        .into()),
    }
}

/// A Kubernetes minor without a row in containerd's table (facts only: `ops::advice` says what
/// to do).
#[derive(Debug, thiserror::Error)]
#[error(
    "tagstack has no containerd version for Kubernetes 1.{kube_minor}: containerd's RELEASES.md \"Kubernetes Support\" table lists 1.{oldest} to 1.{newest} (checked 2026-11-30)"
)]
pub struct NoContainerd {
    pub kube_minor: u32,
    pub oldest: u32,
    pub newest: u32,
}

fn parse(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => Some((a, b, c)),
        _ => None,
    }
}

/// Whether containerd `version` (upstream, e.g. `2.2.5`) is supported by the pin's minor: its
/// line is in the row at or above that line's oldest patch, or it is a newer line than any in
/// the row. The same rule is rendered into `prepare-node.sh` (`containerd_supported`).
pub fn containerd_supported(pin: &ContainerdPin, version: &str) -> bool {
    let Some(v) = parse(version) else { return false };
    let rows: Vec<(u32, u32, u32)> = pin.supported.iter().filter_map(|s| parse(s)).collect();
    if let Some(min) = rows.iter().find(|r| (r.0, r.1) == (v.0, v.1)) {
        return v >= *min;
    }
    rows.iter().all(|r| (v.0, v.1) > (r.0, r.1))
}

/// How long `prepare-node` waits, in all, for cloud-init and the dpkg lock on a fresh machine
/// (first-boot unattended-upgrades can hold it for minutes): half of the cluster stage's
/// deadline, at most ten minutes, at least ten seconds.
pub fn package_lock_timeout(bootstrap_timeout: Duration) -> Duration {
    (bootstrap_timeout / 2).clamp(Duration::from_secs(10), Duration::from_secs(600))
}

/// The one Kubernetes version every node reported after `prepare`, or an error naming each
/// node's. `reports` holds (node, `v1.36.1`).
pub fn same_kubernetes_version(reports: &[(String, String)]) -> Result<String> {
    let Some((_, first)) = reports.first() else { bail!("no node reported its Kubernetes version") };
    if reports.iter().all(|(_, v)| v == first) {
        return Ok(first.clone());
    }
    let list: Vec<String> = reports.iter().map(|(n, v)| format!("{n} {v}")).collect();
    Err(VersionsDiffer { reports: list.join(", "), first: first.trim_start_matches('v').to_string() }.into())
}

/// The nodes reported different Kubernetes versions after `prepare`.
#[derive(Debug, thiserror::Error)]
#[error("the nodes run different Kubernetes versions after prepare: {reports}")]
pub struct VersionsDiffer {
    /// `node version` pairs, comma-separated.
    pub reports: String,
    /// The first report's version without the `v`, an example of a patch to pin.
    pub first: String,
}
