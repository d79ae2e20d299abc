//! `[backup]`: etcd snapshots kept in an S3 bucket the environment owns (issue 12). Its
//! defaults have their home here; the bucket's name is [`super::EnvId::backup_bucket`]'s.
//! Validation only: it must not talk to AWS or know how a snapshot is taken.

use serde::Serialize;

use super::error::ConfigError;
use super::field::Ctx;
use super::raw::{RawBackup, S};

/// Snapshots older than this are expired by the bucket's lifecycle rule: two weeks of daily
/// backups, enough to notice a bad change after a weekend and roll back past it.
pub const DEFAULT_RETENTION_DAYS: u32 = 14;
/// Ten years: beyond that a lifecycle rule is no retention policy but a typo.
pub const MAX_RETENTION_DAYS: i64 = 3650;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupSpec {
    /// Days after which S3 expires a snapshot (the lifecycle rule's `Expiration.Days`).
    pub retention_days: u32,
}

/// `None` when the section is absent: no bucket is created and `tagstack backup` refuses.
pub(super) fn backup(cx: &Ctx, raw: Option<&S<RawBackup>>, is_aws: bool) -> Result<Option<BackupSpec>, ConfigError> {
    let Some(section) = raw else { return Ok(None) };
    if !is_aws {
        return cx.err(
            section.span(),
            "backup",
            "[backup] keeps etcd snapshots in an S3 bucket the environment owns; a static environment owns no AWS resources".into(),
            "remove [backup], or use provider = \"aws\"",
        );
    }
    let retention_days = match &section.get_ref().retention_days {
        None => DEFAULT_RETENTION_DAYS,
        Some(v) => {
            let n = *v.get_ref();
            if !(1..=MAX_RETENTION_DAYS).contains(&n) {
                return cx.err(
                    v.span(),
                    "backup.retention_days",
                    format!("{n} is not a number of days from 1 to {MAX_RETENTION_DAYS}"),
                    &format!("S3 expires snapshots after whole days; the default is {DEFAULT_RETENTION_DAYS}"),
                );
            }
            u32::try_from(n).unwrap_or(DEFAULT_RETENTION_DAYS)
        }
    };
    Ok(Some(BackupSpec { retention_days }))
}
