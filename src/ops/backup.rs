//! `tagstack backup`: an etcd snapshot taken on the control plane (through the etcd static pod,
//! `cluster::etcd`), fetched over SSH into the environment's directory (0600), checked the way
//! `etcdutl snapshot restore` checks it, and uploaded by this machine to the environment's S3
//! bucket under `<cluster>/etcd-<RFC 3339 UTC>.db` with SSE-S3. The upload is the operator's
//! credentials' doing, never a node's: no node role needs any S3 permission (issue 12: "only
//! the control plane's role may write to that bucket"; with this design no role may, which is
//! the least privilege there is). Also the newest snapshot for `status`.

use std::time::SystemTime;

use anyhow::{Context, Result};
use serde::Serialize;

use super::env::Env;
use super::nodes::on_control_plane;
use crate::aws::{self, SnapshotObject};
use crate::cluster::etcd::{self, NODE_SNAPSHOT};
use crate::plan::observed::{BackupBucket, BucketSeen};
use crate::plan::{PlanError, expiry};

/// What `backup` stored.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// Of the whole snapshot file, hex; also the object's `sha256` metadata.
    pub sha256: String,
    /// RFC 3339 UTC, the time in the key.
    pub taken_at: String,
}

/// `[backup]` is not in the config: there is no bucket to write to.
#[derive(Debug, thiserror::Error)]
#[error("{project}/{environment} has no [backup] section: there is no bucket to keep snapshots in")]
pub struct NotConfigured {
    pub project: String,
    pub environment: String,
}

/// The environment's bucket, which `up` must have made.
pub(super) async fn our_bucket(env: &Env<'_>) -> Result<String> {
    let spec = env.spec;
    if spec.backup.is_none() {
        return Err(NotConfigured { project: spec.id.project.clone(), environment: spec.id.environment.clone() }.into());
    }
    let BackupBucket { name, seen } = aws::backup_bucket(env.aws().await, &spec.id, &spec.timeouts).await?;
    match seen {
        BucketSeen::Ours(_) => Ok(name),
        BucketSeen::Absent => Err(crate::hint::attach(
            anyhow::anyhow!("the backup bucket {name} does not exist yet"),
            "run `tagstack up` (its infra stage creates the bucket [backup] asks for)",
        )),
        BucketSeen::Foreign { why } => Err(PlanError::ForeignBucket { name, why }.into()),
    }
}

pub async fn run(env: &Env<'_>) -> Result<BackupReport> {
    let spec = env.spec;
    let r = env.reporter;
    let bucket = our_bucket(env).await?;
    let nodes = super::nodes::nodes(env).await?;
    let dir = super::cluster::env_dir(spec);
    // Created 0600 (tempfile's default) inside the environment's 0700 directory, removed when
    // dropped: the snapshot holds every Secret of the cluster and is not kept here.
    let local = tempfile::Builder::new()
        .prefix("etcd-snapshot-")
        .suffix(".db")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a file for the snapshot in {}", dir.display()))?;
    let taken_at = expiry::format(SystemTime::now());
    on_control_plane(spec, &nodes, async |fleet, cp| {
        let script = etcd::snapshot_script(cp)?;
        let path = format!("{}/etcd-snapshot.sh", crate::cluster::render::NODE_DIR);
        fleet.upload(&cp.name, "backup", &path, &script, true).await?;
        r.start("backup", &format!("etcd snapshot on {}", cp.name));
        let lines = match fleet.run(&cp.name, "backup", &path, r).await {
            Ok(lines) => lines,
            Err(e) => {
                r.fail("backup", "etcd snapshot: failed");
                return Err(e.into());
            }
        };
        let remote = crate::cluster::parse::value(&lines, "snapshot").unwrap_or(NODE_SNAPSHOT).to_string();
        r.update("backup", &format!("fetch {remote} from {}", cp.name));
        let fetched = fleet.download(&cp.name, "backup", &remote, local.path()).await;
        // The node keeps no copy either way.
        let _ = fleet.exec(&cp.name, "backup", &format!("rm -f -- {}", crate::shell::sh_quote(&remote))).await;
        fetched?;
        r.finish("backup", &format!("etcd snapshot fetched from {}", cp.name));
        anyhow::Ok(())
    })
    .await?;
    let size = std::fs::metadata(local.path()).with_context(|| format!("reading {}", local.path().display()))?.len();
    let file = std::fs::File::open(local.path()).with_context(|| format!("opening {}", local.path().display()))?;
    let check = etcd::check_snapshot(std::io::BufReader::new(file), size)
        .with_context(|| format!("the snapshot fetched from the control plane ({size} bytes) is not usable"))?;
    let key = spec.id.backup_key(&taken_at);
    r.start("upload", &format!("upload s3://{bucket}/{key}"));
    match aws::put_snapshot(env.aws().await, &bucket, &key, local.path(), &check.sha256).await {
        Ok(()) => r.finish("upload", &format!("uploaded s3://{bucket}/{key} ({size} bytes)")),
        Err(e) => {
            r.fail("upload", "upload: failed");
            return Err(e);
        }
    }
    Ok(BackupReport { bucket, key, size: check.size, sha256: check.sha256, taken_at })
}

/// The newest snapshot of the environment and its bucket, for `status`: `None` when there
/// is no bucket of ours (nothing configured, nothing made yet).
#[derive(Debug, Clone, Serialize)]
pub struct Newest {
    pub bucket: String,
    /// `None` when the bucket holds no snapshot yet.
    pub snapshot: Option<SnapshotObject>,
}

pub async fn newest(aws: &aws::Aws, spec: &crate::config::Spec, bucket: &BackupBucket) -> Result<Option<Newest>> {
    if bucket.ours().is_none() {
        return Ok(None);
    }
    let all = aws::list_snapshots(aws, &bucket.name, &spec.id.backup_prefix()).await?;
    Ok(Some(Newest { bucket: bucket.name.clone(), snapshot: all.into_iter().next_back() }))
}

/// A snapshot's age for people: whole days, hours or minutes.
pub fn age(last_modified: &str, now: SystemTime) -> Option<String> {
    let then = expiry::parse(last_modified)?;
    let secs = now.duration_since(then).map_or(0, |d| d.as_secs());
    Some(match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s => format!("{}m", s / 60),
    })
}

#[cfg(test)]
mod tests {
    use super::age;
    use std::time::{Duration, SystemTime};

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ago = |s: u64| crate::plan::expiry::format(now - Duration::from_secs(s));
        assert_eq!(age(&ago(59), now).as_deref(), Some("0m"));
        assert_eq!(age(&ago(3 * 60), now).as_deref(), Some("3m"));
        assert_eq!(age(&ago(5 * 3600 + 10), now).as_deref(), Some("5h"));
        assert_eq!(age(&ago(2 * 86_400 + 7), now).as_deref(), Some("2d"));
        assert_eq!(age("not a time", now), None);
    }
}
