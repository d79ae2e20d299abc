//! etcd snapshots, the pure half of `tagstack backup` and `restore`: the script that takes a
//! snapshot through the etcd static pod (`templates/cluster/etcd-snapshot.sh.j2`), the script
//! that restores one on the control plane (`templates/cluster/etcd-restore.sh.j2`: how the
//! static pods stop, where etcdutl comes from, how the data directories swap and how a rerun
//! resumes) and the integrity check of a snapshot file. No I/O beyond the reader it is handed;
//! running the scripts, moving files and S3 are `ops::backup`'s and `ops::restore`'s.

use std::io::Read;

use anyhow::{Context, Result};
use minijinja::context;
use sha2::{Digest, Sha256};

use super::model::ClusterNode;

const TEMPLATES: &[(&str, &str)] = &[
    ("etcd-snapshot.sh", include_str!("../../templates/cluster/etcd-snapshot.sh.j2")),
    ("etcd-restore.sh", include_str!("../../templates/cluster/etcd-restore.sh.j2")),
];

/// Where the snapshot waits on the control plane until tagstack has fetched it.
pub const NODE_SNAPSHOT: &str = "/var/lib/tagstack/backup/etcd-snapshot.db";

/// The mirror pod of kubeadm's etcd static pod on `node`: the kubelet names a static pod's
/// mirror `<pod name>-<node name>` ("Create static Pods", Kubernetes docs), and kubeadm's
/// etcd pod is named `etcd`.
pub fn etcd_pod(node: &ClusterNode) -> String {
    format!("etcd-{}", node.node_name)
}

pub fn snapshot_script(node: &ClusterNode) -> Result<String> {
    let env = crate::templates::environment(TEMPLATES)?;
    env.get_template("etcd-snapshot.sh")?
        .render(context! { pod => etcd_pod(node), out => NODE_SNAPSHOT })
        .context("rendering etcd-snapshot.sh")
}

/// The restore's state on the control plane: the uploaded snapshot, etcdutl taken from the etcd
/// image, and `in-progress` (which snapshot, where the old data goes), which lets a rerun
/// resume and refuses a different snapshot over an unfinished restore.
pub const RESTORE_DIR: &str = "/var/lib/tagstack/restore";

/// Where the snapshot is uploaded for a restore.
pub fn restore_snapshot_path() -> String {
    format!("{RESTORE_DIR}/snapshot.db")
}

/// The restore script for a snapshot whose SHA-256 (of the whole file, as `check_snapshot`
/// answers it) is `sha256`. `id` names the kept data directory (`member.before-restore-<id>`)
/// of a restore that starts now; a resumed one keeps the name it recorded.
pub fn restore_script(sha256: &str, id: &str) -> Result<String> {
    anyhow::ensure!(
        sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sha256:?} is not a SHA-256 in hex"
    );
    anyhow::ensure!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        "{id:?} cannot name a directory"
    );
    let env = crate::templates::environment(TEMPLATES)?;
    env.get_template("etcd-restore.sh")?
        .render(context! { state_dir => RESTORE_DIR, snapshot => restore_snapshot_path(), sha256, id })
        .context("rendering etcd-restore.sh")
}

/// The restore id of a time (RFC 3339 UTC, as `plan::expiry::format` writes it): its digits and
/// the `T`/`Z`, e.g. `20261130T134500Z`, so that it names a directory.
pub fn restore_id(rfc3339: &str) -> String {
    rfc3339.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// What the integrity check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCheck {
    pub size: u64,
    /// SHA-256 of the whole file, hex: what tagstack records with the upload.
    pub sha256: String,
}

/// Why a file is not an intact etcd snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSnapshot {
    #[error("{size} bytes is not the size of an etcd snapshot (a multiple of 512 plus its 32-byte SHA-256)")]
    NoChecksum { size: u64 },
    #[error("its SHA-256 trailer does not match its content: the snapshot is damaged")]
    Mismatch,
}

/// The check `etcdutl snapshot restore` makes before it restores (etcd v3.6
/// etcdutl/snapshot/v3_snapshot.go: `hasChecksum` is `size % 512 == sha256.Size`, and the last
/// 32 bytes are the SHA-256 of the rest): the etcd server streams the bolt database and then
/// its SHA-256 (server/etcdserver/api/v3rpc/maintenance.go), and `etcdctl snapshot save`
/// keeps both and refuses a stream without the trailer (client/v3/snapshot/v3_snapshot.go).
/// `size` is the reader's length.
pub fn check_snapshot(mut r: impl Read, size: u64) -> Result<SnapshotCheck> {
    const SHA_LEN: u64 = 32;
    if size % 512 != SHA_LEN {
        return Err(BadSnapshot::NoChecksum { size }.into());
    }
    let mut whole = Sha256::new();
    let mut content = Sha256::new();
    let mut left = size - SHA_LEN;
    let mut buf = vec![0u8; 1 << 16];
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = r.read(&mut buf[..want]).context("reading the snapshot")?;
        if n == 0 {
            return Err(BadSnapshot::NoChecksum { size: size - left }.into());
        }
        whole.update(&buf[..n]);
        content.update(&buf[..n]);
        left -= n as u64;
    }
    let mut trailer = [0u8; 32];
    r.read_exact(&mut trailer).context("reading the snapshot's SHA-256 trailer")?;
    if content.finalize().as_slice() != trailer {
        return Err(BadSnapshot::Mismatch.into());
    }
    whole.update(trailer);
    Ok(SnapshotCheck { size, sha256: hex(&whole.finalize()) })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot as etcd streams it: the database, then its SHA-256.
    fn snapshot(db: &[u8]) -> Vec<u8> {
        let mut out = db.to_vec();
        out.extend_from_slice(&Sha256::digest(db));
        out
    }

    #[test]
    fn an_intact_snapshot_passes_and_is_hashed_whole() {
        let file = snapshot(&[7u8; 4096]);
        let check = check_snapshot(file.as_slice(), file.len() as u64).unwrap();
        assert_eq!(check.size, 4128);
        assert_eq!(check.sha256, hex(&Sha256::digest(&file)));
    }

    #[test]
    fn a_damaged_truncated_or_foreign_file_is_refused() {
        let mut file = snapshot(&[7u8; 4096]);
        file[100] ^= 1;
        let err = check_snapshot(file.as_slice(), file.len() as u64).unwrap_err();
        assert_eq!(err.downcast_ref::<BadSnapshot>(), Some(&BadSnapshot::Mismatch));
        let file = snapshot(&[7u8; 4096]);
        let err = check_snapshot(&file[..4000], 4000).unwrap_err();
        assert_eq!(err.downcast_ref::<BadSnapshot>(), Some(&BadSnapshot::NoChecksum { size: 4000 }));
        let plain = vec![0u8; 4096];
        assert!(check_snapshot(plain.as_slice(), 4096).is_err());
    }

    /// The control plane at 10.0.1.5 under the Kubernetes node name `node_name`.
    fn control_plane(node_name: &str) -> ClusterNode {
        ClusterNode {
            name: "control-plane".into(),
            node_name: node_name.into(),
            role: crate::config::NodeRole::ControlPlane,
            address: "10.0.1.5".into(),
            port: 22,
            user: "ubuntu".into(),
            private_ip: "10.0.1.5".into(),
            public_address: None,
            host_key: None,
        }
    }

    #[test]
    fn the_script_names_the_static_pod_and_the_kubeadm_certificates() {
        let node = control_plane("ip-10-0-1-5.eu-west-3.compute.internal");
        let s = snapshot_script(&node).unwrap();
        assert!(s.contains("kubectl -n kube-system exec etcd-ip-10-0-1-5.eu-west-3.compute.internal -- etcdctl"));
        assert!(s.contains("--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt"));
        assert!(s.contains(&format!("out={NODE_SNAPSHOT}")));
    }

    #[test]
    fn the_restore_script_is_rendered_whole_and_refuses_bad_inputs() {
        let sha = "ab".repeat(32);
        let s = restore_script(&sha, &restore_id("2026-11-30T13:45:00Z")).unwrap();
        insta::assert_snapshot!("etcd_restore", s);
        assert!(s.contains("kept=member.before-restore-20261130T134500Z"));
        assert!(restore_script("not hex", "x").is_err());
        assert!(restore_script(&sha, "../x").is_err());
    }

    /// Both etcd scripts pass shellcheck (installed by scripts/test), as every cluster script does.
    #[test]
    fn the_etcd_scripts_pass_shellcheck() {
        let node = control_plane("node-0");
        for (name, text) in [
            ("etcd-snapshot.sh", snapshot_script(&node).unwrap()),
            ("etcd-restore.sh", restore_script(&"0".repeat(64), "1").unwrap()),
        ] {
            assert!(text.starts_with("#!/usr/bin/env bash\n") && text.contains("set -euo pipefail"), "{name}");
            assert!(!text.contains("{{") && !text.contains("{%"), "{name} has unrendered template syntax");
            crate::testing::shellcheck(name, &text);
        }
    }
}
