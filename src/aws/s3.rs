//! The environment's backup bucket on S3 (issue 12): found by its exact name
//! (`config::EnvId::backup_bucket`, with the account id from STS) and its ownership tags,
//! created and configured (tags, SSE-S3, public access blocked, lifecycle retention, ACLs
//! disabled), emptied and deleted; etcd snapshots uploaded, listed and downloaded. Every call
//! names the account as `ExpectedBucketOwner`, so a bucket of that name in another account
//! answers 403 and is never read or written. Decides nothing about *whether* to create or
//! delete (that is `plan`) and never prints.
//!
//! Encryption: SSE-S3 (AES256), not SSE-KMS. S3 has encrypted every new object with SSE-S3
//! since 5 January 2023 ("Setting default server-side encryption behavior for Amazon S3
//! buckets", S3 User Guide); setting it explicitly makes the guarantee a checked, drift-
//! corrected part of the plan. SSE-KMS with the AWS-managed key adds KMS calls (and
//! kms:GenerateDataKey / kms:Decrypt for whoever reads or writes) without a key policy of our
//! own to restrict anyone; a customer-managed key would be one more resource that cannot be
//! deleted at once (a 7-30 day deletion window), which a stateless `down` cannot finish.

use anyhow::{Context, Result};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    Delete, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ObjectIdentifier, ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging,
};

use super::error::{AwsError, AwsResultExt};
use super::{Aws, Ctx};
use crate::config::{EnvId, TAG_EXPIRES_AT};
use crate::plan::infra::BucketFix;
use crate::plan::observed::{BackupBucket, Bucket, BucketSeen, Depth};

/// The id of tagstack's lifecycle rule: the one rule it reads back and rewrites.
pub const RETENTION_RULE: &str = "tagstack-retention";

/// The account the credentials act in (STS GetCallerIdentity, which needs no permission).
pub async fn account_id(aws: &Aws) -> Result<String> {
    let who = aws.sts.get_caller_identity().send().await.op("GetCallerIdentity")?;
    who.account().map(str::to_string).context("GetCallerIdentity answered no account id")
}

/// The backup bucket of the environment, by its exact name, to `depth`. A missing bucket is
/// [`BucketSeen::Absent`]; one whose tags are not ours, that has none, that another account
/// owns (403 under `ExpectedBucketOwner`) or that lives in another region (301) is
/// [`BucketSeen::Foreign`], so an environment without `[backup]` is never stopped by a bucket
/// it does not use (only the diff refuses a foreign one, and only when backups are wanted).
pub(super) async fn discover(aws: &Aws, id: &EnvId, depth: Depth) -> Result<BackupBucket> {
    let account = account_id(aws).await?;
    let name = id.backup_bucket(&account);
    let tags = aws
        .s3
        .get_bucket_tagging()
        .bucket(&name)
        .expected_bucket_owner(&account)
        .send()
        .await
        .op(format!("GetBucketTagging {name}"));
    let tags = match tags {
        Ok(t) => t,
        Err(e) if e.throttled() => return Err(e.into()),
        Err(e) if e.code() == "NoSuchBucket" => return Ok(BackupBucket { name, seen: BucketSeen::Absent }),
        Err(e) => {
            let why = match e.code() {
                "NoSuchTagSet" => "it has no tags".to_string(),
                "AccessDenied" => {
                    "S3 denied reading its tags: another account owns it, or these credentials may not read it"
                        .to_string()
                }
                "PermanentRedirect" | "AuthorizationHeaderMalformed" => "it is in another region".to_string(),
                _ => e.to_string(),
            };
            return Ok(BackupBucket { name, seen: BucketSeen::Foreign { why } });
        }
    };
    let get = |k: &str| tags.tag_set().iter().find(|t| t.key() == k).map(Tag::value);
    if !id.owns(get) {
        let why = "its tagstack:project / tagstack:env tags are not this environment's".to_string();
        return Ok(BackupBucket { name, seen: BucketSeen::Foreign { why } });
    }
    // Its expiry tag is not the environment's expiry (not recorded in `ExpirySeen`): the
    // bucket outlives `down` on purpose, and an old, passed expiry on a kept bucket must not
    // become the expiry of the next environment of the same name (`plan::expiry::resolve`
    // keeps an existing one).
    let bucket = match depth {
        // `down` deletes by name (every version, versioned or not): nothing more to read.
        Depth::Teardown => Bucket::default(),
        Depth::Full => {
            let (encrypted, public_access_blocked, retention_days, owner_enforced) = tokio::try_join!(
                encrypted(aws, &name, &account),
                public_access_blocked(aws, &name, &account),
                retention_days(aws, &name, &account),
                owner_enforced(aws, &name, &account),
            )?;
            Bucket { encrypted, public_access_blocked, retention_days, owner_enforced }
        }
    };
    Ok(BackupBucket { name, seen: BucketSeen::Ours(bucket) })
}

/// `Ok(None)` for the error code that means "not configured".
fn absent<T>(res: Result<T, AwsError>, code: &str) -> Result<Option<T>> {
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == code => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn encrypted(aws: &Aws, name: &str, account: &str) -> Result<bool> {
    let res = aws.s3.get_bucket_encryption().bucket(name).expected_bucket_owner(account).send().await;
    let out = absent(res.op(format!("GetBucketEncryption {name}")), "ServerSideEncryptionConfigurationNotFoundError")?;
    Ok(out
        .and_then(|o| o.server_side_encryption_configuration)
        .is_some_and(|c| c.rules().iter().any(|r| r.apply_server_side_encryption_by_default().is_some())))
}

async fn public_access_blocked(aws: &Aws, name: &str, account: &str) -> Result<bool> {
    let res = aws.s3.get_public_access_block().bucket(name).expected_bucket_owner(account).send().await;
    let out = absent(res.op(format!("GetPublicAccessBlock {name}")), "NoSuchPublicAccessBlockConfiguration")?;
    Ok(out.and_then(|o| o.public_access_block_configuration).is_some_and(|c| {
        [c.block_public_acls, c.ignore_public_acls, c.block_public_policy, c.restrict_public_buckets]
            .iter()
            .all(|v| *v == Some(true))
    }))
}

async fn retention_days(aws: &Aws, name: &str, account: &str) -> Result<Option<u32>> {
    let res = aws.s3.get_bucket_lifecycle_configuration().bucket(name).expected_bucket_owner(account).send().await;
    let out = absent(res.op(format!("GetBucketLifecycleConfiguration {name}")), "NoSuchLifecycleConfiguration")?;
    Ok(out.and_then(|o| {
        o.rules()
            .iter()
            .find(|r| r.id() == Some(RETENTION_RULE) && r.status() == &ExpirationStatus::Enabled)
            .and_then(|r| r.expiration().and_then(LifecycleExpiration::days))
            .and_then(|d| u32::try_from(d).ok())
    }))
}

async fn owner_enforced(aws: &Aws, name: &str, account: &str) -> Result<bool> {
    let res = aws.s3.get_bucket_ownership_controls().bucket(name).expected_bucket_owner(account).send().await;
    let out = absent(res.op(format!("GetBucketOwnershipControls {name}")), "OwnershipControlsNotFoundError")?;
    Ok(out
        .and_then(|o| o.ownership_controls)
        .is_some_and(|c| c.rules().iter().any(|r| r.object_ownership() == &ObjectOwnership::BucketOwnerEnforced)))
}

fn s3_tags(tags: &[(String, String)]) -> Result<Vec<Tag>> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().context("an S3 tag")).collect()
}

/// CreateBucket (ACLs disabled from the start), then its tags at once: a bucket is tagged by
/// a second call (S3 has no tags on CreateBucket that every endpoint honours), so a run that
/// dies between the two leaves a bucket the next discovery calls foreign, and the plan's
/// error says how to adopt it. CreateBucket is safe to repeat for its owner:
/// `BucketAlreadyOwnedByYou` (outside us-east-1; there it answers 200) means a lost answer's
/// create went through.
pub async fn create_bucket(cx: &Ctx<'_>, name: &str, region: &str) -> Result<()> {
    let s3 = &cx.aws.s3;
    // us-east-1 is the one region S3 refuses as a LocationConstraint ("CreateBucket", S3 API
    // Reference: "If you don't specify a Region, the bucket is created in US East (N. Virginia)").
    let location = (region != "us-east-1").then(|| {
        CreateBucketConfiguration::builder().location_constraint(BucketLocationConstraint::from(region)).build()
    });
    let res = s3
        .create_bucket()
        .bucket(name)
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .set_create_bucket_configuration(location)
        .send()
        .await
        .op(format!("CreateBucket {name}"));
    match res {
        Err(e) if e.code() == "BucketAlreadyOwnedByYou" => {}
        other => {
            other?;
        }
    }
    put_tags(cx, name, &cx.tags("backups")).await
}

async fn put_tags(cx: &Ctx<'_>, name: &str, tags: &[(String, String)]) -> Result<()> {
    let account = account_id(cx.aws).await?;
    let tagging = Tagging::builder().set_tag_set(Some(s3_tags(tags)?)).build().context("S3 tagging")?;
    cx.aws
        .s3
        .put_bucket_tagging()
        .bucket(name)
        .expected_bucket_owner(&account)
        .tagging(tagging)
        .send()
        .await
        .op(format!("PutBucketTagging {name}"))?;
    Ok(())
}

/// Re-tags the bucket with a new expiry: PutBucketTagging replaces the whole set, so the
/// environment's tags go with it.
pub async fn set_bucket_expiry(cx: &Ctx<'_>, name: &str, expires_at: &str) -> Result<()> {
    let mut tags = cx.id.tags("backups");
    tags.push((TAG_EXPIRES_AT.to_string(), expires_at.to_string()));
    put_tags(cx, name, &tags).await
}

/// The settings the plan found missing (a new bucket: all), each its own idempotent PUT.
pub async fn configure_bucket(cx: &Ctx<'_>, name: &str, fix: &BucketFix) -> Result<()> {
    let s3 = &cx.aws.s3;
    let account = account_id(cx.aws).await?;
    let account = account.as_str();
    let owner = async {
        if fix.enforce_owner {
            let rule = OwnershipControlsRule::builder()
                .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                .build()
                .context("ownership rule")?;
            let controls = OwnershipControls::builder().rules(rule).build().context("ownership controls")?;
            s3.put_bucket_ownership_controls()
                .bucket(name)
                .expected_bucket_owner(account)
                .ownership_controls(controls)
                .send()
                .await
                .op(format!("PutBucketOwnershipControls {name}"))?;
        }
        anyhow::Ok(())
    };
    let public = async {
        if fix.block_public_access {
            let block = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            s3.put_public_access_block()
                .bucket(name)
                .expected_bucket_owner(account)
                .public_access_block_configuration(block)
                .send()
                .await
                .op(format!("PutPublicAccessBlock {name}"))?;
        }
        anyhow::Ok(())
    };
    let encrypt = async {
        if fix.encrypt {
            let default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .context("encryption default")?;
            let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build();
            let config = ServerSideEncryptionConfiguration::builder().rules(rule).build().context("encryption")?;
            s3.put_bucket_encryption()
                .bucket(name)
                .expected_bucket_owner(account)
                .server_side_encryption_configuration(config)
                .send()
                .await
                .op(format!("PutBucketEncryption {name}"))?;
        }
        anyhow::Ok(())
    };
    let lifecycle = async {
        if let Some(days) = fix.expire_after {
            let days = i32::try_from(days).context("retention days")?;
            // One rule for every key: current snapshots expire after the retention; versions
            // someone kept by enabling versioning go a day after they stop being current; an
            // upload that died half-way is cleaned after a day.
            let rule = LifecycleRule::builder()
                .id(RETENTION_RULE)
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(LifecycleExpiration::builder().days(days).build())
                .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
                )
                .build()
                .context("lifecycle rule")?;
            let config = BucketLifecycleConfiguration::builder().rules(rule).build().context("lifecycle")?;
            s3.put_bucket_lifecycle_configuration()
                .bucket(name)
                .expected_bucket_owner(account)
                .lifecycle_configuration(config)
                .send()
                .await
                .op(format!("PutBucketLifecycleConfiguration {name}"))?;
        }
        anyhow::Ok(())
    };
    tokio::try_join!(owner, public, encrypt, lifecycle)?;
    Ok(())
}

/// Every object version and delete marker (ListObjectVersions lists plain objects of an
/// unversioned bucket too, with version id `null`), 1000 per DeleteObjects, then the bucket.
/// Answers "deleted" or "already gone".
pub async fn delete_bucket(cx: &Ctx<'_>, name: &str) -> Result<&'static str> {
    let s3 = &cx.aws.s3;
    let account = account_id(cx.aws).await?;
    loop {
        let listed = s3
            .list_object_versions()
            .bucket(name)
            .expected_bucket_owner(&account)
            .send()
            .await
            .op(format!("ListObjectVersions {name}"));
        let listed = match listed {
            Err(e) if e.code() == "NoSuchBucket" => return Ok("already gone"),
            other => other?,
        };
        let mut objects: Vec<ObjectIdentifier> = Vec::new();
        let versions = listed.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = listed.delete_markers().iter().map(|m| (m.key(), m.version_id()));
        for (key, version) in versions.chain(markers) {
            let Some(key) = key else { continue };
            objects.push(ObjectIdentifier::builder().key(key).set_version_id(version.map(str::to_string)).build()?);
        }
        if objects.is_empty() {
            break;
        }
        for chunk in objects.chunks(1000) {
            let delete = Delete::builder().set_objects(Some(chunk.to_vec())).quiet(true).build()?;
            let out = s3
                .delete_objects()
                .bucket(name)
                .expected_bucket_owner(&account)
                .delete(delete)
                .send()
                .await
                .op(format!("DeleteObjects {name}"))?;
            if let Some(e) = out.errors().first() {
                anyhow::bail!(
                    "DeleteObjects {name} failed for {} object(s), e.g. {}: {}",
                    out.errors().len(),
                    e.key().unwrap_or("?"),
                    e.message().or(e.code()).unwrap_or("?")
                );
            }
        }
    }
    let res = s3.delete_bucket().bucket(name).expected_bucket_owner(&account).send().await;
    match res.op(format!("DeleteBucket {name}")) {
        Ok(_) => Ok("deleted"),
        Err(e) if e.code() == "NoSuchBucket" => Ok("already gone"),
        Err(e) => Err(e.into()),
    }
}

/// One snapshot in the bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotObject {
    pub key: String,
    pub size: i64,
    /// RFC 3339, as S3 reports it.
    pub last_modified: Option<String>,
}

/// The snapshots under `prefix`, oldest first (their keys carry an RFC 3339 UTC time, which
/// sorts chronologically).
pub async fn list_snapshots(aws: &Aws, bucket: &str, prefix: &str) -> Result<Vec<SnapshotObject>> {
    let account = account_id(aws).await?;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .expected_bucket_owner(&account)
            .set_continuation_token(token.take())
            .send()
            .await
            .op(format!("ListObjectsV2 {bucket}"))?;
        out.extend(page.contents().iter().filter_map(|o| {
            Some(SnapshotObject {
                key: o.key()?.to_string(),
                size: o.size().unwrap_or(0),
                last_modified: o
                    .last_modified()
                    .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
            })
        }));
        token = page.next_continuation_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Uploads a snapshot file with SSE-S3 and its SHA-256 as object metadata (`sha256`), so a
/// restore can check what it downloads.
pub async fn put_snapshot(aws: &Aws, bucket: &str, key: &str, file: &std::path::Path, sha256: &str) -> Result<()> {
    let account = account_id(aws).await?;
    let body = ByteStream::from_path(file).await.with_context(|| format!("reading {}", file.display()))?;
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .expected_bucket_owner(&account)
        .server_side_encryption(ServerSideEncryption::Aes256)
        .content_type("application/octet-stream")
        .metadata("sha256", sha256)
        .body(body)
        .send()
        .await
        .op(format!("PutObject s3://{bucket}/{key}"))?;
    Ok(())
}

/// Downloads a snapshot into `file` (created 0600 by the caller) and answers the `sha256`
/// metadata it was uploaded with, if any.
pub async fn get_snapshot(aws: &Aws, bucket: &str, key: &str, file: &std::path::Path) -> Result<Option<String>> {
    use tokio::io::AsyncWriteExt;
    let account = account_id(aws).await?;
    let out = aws
        .s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .expected_bucket_owner(&account)
        .send()
        .await
        .op(format!("GetObject s3://{bucket}/{key}"))?;
    let sha256 = out.metadata().and_then(|m| m.get("sha256")).cloned();
    let mut body = out.body.into_async_read();
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    tokio::io::copy(&mut body, &mut f).await.with_context(|| format!("writing {}", file.display()))?;
    f.flush().await?;
    Ok(sha256)
}
