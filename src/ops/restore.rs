//! `tagstack restore SNAPSHOT`: which snapshot (`latest`, a key in the environment's backup
//! bucket, or a local file), fetched into the environment's directory (0600, deleted after) and
//! checked the way `etcdutl snapshot restore` checks it (and against the `sha256` `backup`
//! recorded with the object) before anything on the cluster is touched; then, once the CLI has
//! asked, uploaded to the control plane and restored there by `cluster::etcd`'s script (which
//! owns the order, the swap and the resume), and the API server and the nodes waited for.
//! Decides nothing about etcd itself and never prompts.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;

use super::env::Env;
use super::nodes::on_control_plane;
use crate::aws;
use crate::cluster::etcd::{self, SnapshotCheck};
use crate::config::{Provider, format_duration};
use crate::hint;
use crate::poll::{Check, Look, poll_until};

/// What `restore` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The newest snapshot in the environment's bucket.
    Latest,
    /// A key in the environment's bucket (as `backup` printed it).
    Key(String),
    /// A snapshot file on this machine.
    File(PathBuf),
}

impl Source {
    /// `latest`, a file that exists here, or else a key in the bucket: a key never names a
    /// local file by accident, since `backup` keys start with `<project>-<env>/`, and a path
    /// that does not exist is refused as a missing key with both spellings in the error.
    pub fn parse(arg: &str) -> Source {
        if arg == "latest" {
            Source::Latest
        } else if Path::new(arg).is_file() {
            Source::File(PathBuf::from(arg))
        } else {
            Source::Key(arg.to_string())
        }
    }
}

/// A snapshot fetched and checked, ready to be restored: what the CLI shows before it asks.
#[derive(Debug)]
pub struct Prepared {
    /// `s3://bucket/key` or the local path.
    pub from: String,
    pub check: SnapshotCheck,
    /// When the object was stored (S3 only).
    pub taken: Option<String>,
    file: Fetched,
}

#[derive(Debug)]
enum Fetched {
    /// Downloaded into the environment's directory; removed when dropped.
    Temp(tempfile::NamedTempFile),
    Local(PathBuf),
}

impl Prepared {
    fn path(&self) -> &Path {
        match &self.file {
            Fetched::Temp(t) => t.path(),
            Fetched::Local(p) => p,
        }
    }
}

/// What `restore` did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub from: String,
    pub size: u64,
    pub sha256: String,
    /// The control plane restored (tagstack's name for it).
    pub node: String,
    /// The data directory etcd ran on before, kept on the control plane.
    pub kept: String,
}

/// Fetches and checks the snapshot; touches nothing on the cluster.
pub async fn prepare(env: &Env<'_>, source: &Source) -> Result<Prepared> {
    let spec = env.spec;
    let wanted = match source {
        Source::File(path) => {
            let check = check_file(path)?;
            return Ok(Prepared {
                from: path.display().to_string(),
                check,
                taken: None,
                file: Fetched::Local(path.clone()),
            });
        }
        Source::Latest => None,
        Source::Key(key) => Some(key),
    };
    if matches!(spec.provider, Provider::Static { .. }) {
        return Err(hint::attach(
            anyhow!("a static environment has no backup bucket"),
            "pass the path of a snapshot file instead",
        ));
    }
    let bucket = super::backup::our_bucket(env).await?;
    let aws = env.aws().await;
    let all = aws::list_snapshots(aws, &bucket, &spec.id.backup_prefix()).await?;
    let object = match wanted {
        None => all.last().cloned().ok_or_else(|| {
            hint::attach(anyhow!("the backup bucket {bucket} holds no snapshot"), "take one with `tagstack backup`")
        })?,
        Some(key) => all.iter().find(|o| &o.key == key).cloned().ok_or_else(|| {
            let newest = all.last().map_or_else(|| "none yet".to_string(), |o| o.key.clone());
            hint::attach(
                anyhow!("no snapshot {key:?} in the backup bucket {bucket}, and no such file here"),
                format!("pass `latest`, a key as `tagstack backup` printed it (newest: {newest}), or a file path"),
            )
        })?,
    };
    let dir = super::cluster::env_dir(spec);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // 0600 (tempfile's default) and removed when dropped: the snapshot holds every Secret.
    let local = tempfile::Builder::new()
        .prefix("etcd-restore-")
        .suffix(".db")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a file for the snapshot in {}", dir.display()))?;
    let from = format!("s3://{bucket}/{}", object.key);
    env.reporter.start("download", &format!("download {from}"));
    let recorded = match aws::get_snapshot(aws, &bucket, &object.key, local.path()).await {
        Ok(sha) => sha,
        Err(e) => {
            env.reporter.fail("download", "download: failed");
            return Err(e);
        }
    };
    env.reporter.finish("download", &format!("downloaded {from}"));
    let check = check_file(local.path()).with_context(|| format!("{from} is not usable"))?;
    if let Some(recorded) = recorded
        && recorded != check.sha256
    {
        return Err(anyhow!(
            "{from} has SHA-256 {}, not the {recorded} `tagstack backup` recorded with it: it changed after the upload",
            check.sha256
        ));
    }
    Ok(Prepared { from, check, taken: object.last_modified, file: Fetched::Temp(local) })
}

fn check_file(path: &Path) -> Result<SnapshotCheck> {
    let size = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    etcd::check_snapshot(std::io::BufReader::new(file), size)
        .with_context(|| format!("{} ({size} bytes) is not an intact etcd snapshot", path.display()))
}

/// Restores `prepared` on the control plane, then waits for the API server and every node.
pub async fn run(env: &Env<'_>, prepared: &Prepared) -> Result<RestoreReport> {
    let spec = env.spec;
    let r = env.reporter;
    let nodes = super::nodes::nodes(env).await?;
    let id = etcd::restore_id(&crate::plan::expiry::format(SystemTime::now()));
    let script = etcd::restore_script(&prepared.check.sha256, &id)?;
    let budget = spec.cluster.bootstrap_timeout;
    let (node, kept) = on_control_plane(spec, &nodes, async |fleet, cp| {
        r.start("restore", &format!("upload the snapshot to {}", cp.name));
        let path = format!("{}/etcd-restore.sh", crate::cluster::render::NODE_DIR);
        let uploaded = async {
            fleet.upload_file(&cp.name, "restore", &etcd::restore_snapshot_path(), prepared.path()).await?;
            fleet.upload(&cp.name, "restore", &path, &script, true).await
        };
        if let Err(e) = uploaded.await {
            r.fail("restore", "upload: failed");
            return Err(e.into());
        }
        r.update("restore", &format!("restore etcd on {} (the API server is down meanwhile)", cp.name));
        let lines = match fleet.run(&cp.name, "restore", &path, r).await {
            Ok(lines) => lines,
            Err(e) => {
                r.fail("restore", "etcd restore: failed");
                return Err(hint::attach(
                    anyhow::Error::from(e),
                    "run the same `tagstack restore` again: it resumes where it stopped (the node keeps its state in /var/lib/tagstack/restore)",
                ));
            }
        };
        let kept = crate::cluster::parse::value(&lines, "kept").unwrap_or_default().to_string();
        r.finish("restore", &format!("etcd restored on {}; the old data is kept in {kept}", cp.name));
        r.start("ready", "wait for the API server and every node to be Ready");
        let external_cloud = spec.provider == Provider::Aws;
        let waited = poll_until(
            budget,
            Duration::from_secs(2),
            Check::BeforeLook,
            async |_last| {
                // The API server is restarting: a failed read is one more reason to wait.
                anyhow::Ok(match super::cluster::node_states(fleet, cp, &nodes, external_cloud).await {
                    Ok(states) => {
                        let waiting = super::cluster::not_ready(&states);
                        if waiting.is_empty() { Look::Done(()) } else { Look::Waiting(waiting) }
                    }
                    Err(e) => Look::Waiting(vec![format!("the API server: {e:#}")]),
                })
            },
            |waiting| r.update("ready", &format!("waiting for {}", waiting.join(", "))),
        )
        .await?;
        match waited {
            Ok(()) => r.finish("ready", &format!("API server up, {} node(s) Ready", nodes.len())),
            Err(timeout) => {
                r.fail("ready", "cluster not ready");
                return Err(hint::attach(
                    anyhow!(
                        "etcd was restored, but the cluster is not ready after {} (cluster.bootstrap_timeout): {}",
                        format_duration(timeout.waited()),
                        timeout.last.join("; ")
                    ),
                    format!(
                        "look at the control plane (`tagstack ssh {}`, `crictl ps -a`); the old data is in {kept}",
                        cp.name
                    ),
                ));
            }
        }
        anyhow::Ok((cp.name.clone(), kept))
    })
    .await?;
    Ok(RestoreReport {
        from: prepared.from.clone(),
        size: prepared.check.size,
        sha256: prepared.check.sha256.clone(),
        node,
        kept,
    })
}

#[cfg(test)]
mod tests {
    use super::Source;

    #[test]
    fn latest_a_file_here_or_else_a_key() {
        assert_eq!(Source::parse("latest"), Source::Latest);
        let f = tempfile::NamedTempFile::new().unwrap();
        let p = f.path().to_str().unwrap();
        assert_eq!(Source::parse(p), Source::File(p.into()));
        assert_eq!(
            Source::parse("demo-dev/etcd-2026-11-30T13:45:00Z.db"),
            Source::Key("demo-dev/etcd-2026-11-30T13:45:00Z.db".into())
        );
        assert_eq!(Source::parse("/nowhere/x.db"), Source::Key("/nowhere/x.db".into()));
    }
}
