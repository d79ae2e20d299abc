//! The AWS calls of `tagstack bake` (issue 15): the builder instance (launched with the
//! ClientToken `ops` computed, tagged like everything else plus `tagstack:component=bake` and
//! the content address, never a `tagstack:role`, so the plan never counts it as a node), the
//! baked images of a project (found by exact tags, owner `self`), CreateImage (the image
//! tagged in the call; its snapshots after it, since CreateImage's snapshot TagSpecification
//! is not in moto), the SDK's `image_available` waiter, and deregistering an image with its
//! snapshots. Decides nothing: which image to make, use, keep or delete is `ops::bake`'s.

use anyhow::{Context, Result};
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, Image, ResourceType, Tag};

use super::Ctx;
use super::error::{AwsResultExt, Phase};
use super::tags::{owned, owner_filters, spec_tags, tag_value};
use crate::config::{
    BAKE_COMPONENT, TAG_BAKE_HASH, TAG_BAKE_STEP, TAG_COMPONENT, TAG_ENV, TAG_PROJECT, format_duration,
};
use crate::plan::observed::{Addresses, InstanceState};

/// A node image a bake made: any environment of the project (images are shared by them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BakedImage {
    pub id: String,
    pub name: String,
    /// EC2's image state: `pending`, `available`, `failed`, ...
    pub state: String,
    /// `tagstack:bake-hash`.
    pub hash: String,
    /// The `tagstack:env` of the environment that baked it.
    pub environment: String,
    pub created: String,
    /// Its EBS snapshots (block device mappings).
    pub snapshots: Vec<String>,
}

fn baked_image(project: &str, i: &Image) -> Option<BakedImage> {
    let tags = i.tags();
    // Exact tags, as for everything tagstack owns: a filter is a query, ownership is a rule.
    if tag_value(tags, TAG_PROJECT) != Some(project) || tag_value(tags, TAG_COMPONENT) != Some(BAKE_COMPONENT) {
        return None;
    }
    Some(BakedImage {
        id: i.image_id()?.to_string(),
        name: i.name().unwrap_or_default().to_string(),
        state: i.state().map_or_else(String::new, |s| s.as_str().to_string()),
        hash: tag_value(tags, TAG_BAKE_HASH)?.to_string(),
        environment: tag_value(tags, TAG_ENV)?.to_string(),
        created: i.creation_date().unwrap_or_default().to_string(),
        snapshots: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
            .collect(),
    })
}

/// The baked images of the environment's project (owner `self`), every environment's, oldest
/// first; deregistered ones are gone from DescribeImages.
pub async fn baked_images(cx: &Ctx<'_>) -> Result<Vec<BakedImage>> {
    let project = cx.id.project.as_str();
    let req = cx
        .aws
        .ec2
        .describe_images()
        .owners("self")
        .filters(Filter::builder().name(format!("tag:{TAG_PROJECT}")).values(project).build())
        .filters(Filter::builder().name(format!("tag:{TAG_COMPONENT}")).values(BAKE_COMPONENT).build());
    let resp = super::discover::while_throttled(cx.timeouts.aws_consistency, || {
        let req = req.clone();
        async move { Ok(req.send().await.op("DescribeImages (baked images)")?) }
    })
    .await?;
    let mut out: Vec<BakedImage> = resp.images().iter().filter_map(|i| baked_image(project, i)).collect();
    out.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    Ok(out)
}

/// A bake's builder instance, as discovery sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    pub id: String,
    pub state: InstanceState,
    pub hash: String,
    /// `tagstack:bake-step=generalised`: its disk was made an image.
    pub generalised: bool,
    pub addresses: Addresses,
    pub host_key: Option<String>,
}

/// The environment's builders that exist (not terminated), whatever their hash.
pub async fn builders(cx: &Ctx<'_>) -> Result<Vec<Builder>> {
    let mut filters = owner_filters(cx.id);
    filters.push(Filter::builder().name(format!("tag:{TAG_COMPONENT}")).values(BAKE_COMPONENT).build());
    filters.push(
        Filter::builder()
            .name("instance-state-name")
            .set_values(Some(["pending", "running", "stopping", "stopped", "shutting-down"].map(String::from).to_vec()))
            .build(),
    );
    let resp = super::discover::while_throttled(cx.timeouts.aws_consistency, || {
        let req = cx.aws.ec2.describe_instances().set_filters(Some(filters.clone()));
        async move { Ok(req.send().await.op("DescribeInstances (bake builders)")?) }
    })
    .await?;
    let mut out = Vec::new();
    for i in resp.reservations().iter().flat_map(|r| r.instances()) {
        let tags = i.tags();
        if !owned(cx.id, tags) || tag_value(tags, TAG_COMPONENT) != Some(BAKE_COMPONENT) {
            continue;
        }
        let state = InstanceState::parse(i.state().and_then(|s| s.name()).map_or("", |n| n.as_str()));
        if !state.exists() {
            continue;
        }
        out.push(Builder {
            id: i.instance_id().unwrap_or_default().to_string(),
            state,
            hash: tag_value(tags, TAG_BAKE_HASH).unwrap_or_default().to_string(),
            generalised: tag_value(tags, TAG_BAKE_STEP) == Some("generalised"),
            addresses: Addresses {
                private_ip: i.private_ip_address().map(str::to_string),
                public_ip: i.public_ip_address().map(str::to_string),
                private_dns: i.private_dns_name().filter(|s| !s.is_empty()).map(str::to_string),
            },
            host_key: tag_value(tags, crate::config::TAG_HOST_KEY).map(str::to_string),
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The environment's instances running one of `image_ids`: (instance id, image id).
pub async fn instances_on(cx: &Ctx<'_>, image_ids: &[String]) -> Result<Vec<(String, String)>> {
    if image_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut filters = owner_filters(cx.id);
    filters.push(Filter::builder().name("image-id").set_values(Some(image_ids.to_vec())).build());
    let resp = super::discover::while_throttled(cx.timeouts.aws_consistency, || {
        let req = cx.aws.ec2.describe_instances().set_filters(Some(filters.clone()));
        async move { Ok(req.send().await.op("DescribeInstances (on baked images)")?) }
    })
    .await?;
    Ok(resp
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| owned(cx.id, i.tags()))
        .filter_map(|i| Some((i.instance_id()?.to_string(), i.image_id()?.to_string())))
        .collect())
}

/// Where and how to launch a builder.
#[derive(Debug, Clone)]
pub struct BuilderLaunch<'a> {
    /// RunInstances' ClientToken (`plan::desired::resource_token` of the hash and subnet).
    pub token: &'a str,
    pub hash: &'a str,
    pub ami: &'a super::Ami,
    pub instance_type: &'a str,
    /// The image's root volume: the smaller of the two roles', so both can launch from it.
    pub volume_gb: u32,
    pub subnet_id: &'a str,
    pub security_group_id: &'a str,
    pub key_name: &'a str,
}

/// Launches one builder (no instance profile: it needs no AWS access). Each instance of the
/// answer with its state as the answer gives it (a repeated token's answer may name a dead one).
pub async fn launch_builder(cx: &Ctx<'_>, b: &BuilderLaunch<'_>) -> Result<Vec<(String, InstanceState)>> {
    let mut tags = cx.tags(BAKE_COMPONENT);
    tags.push((TAG_BAKE_HASH.into(), b.hash.into()));
    let run = super::instances::Run {
        what: "launching the bake builder".into(),
        op: "RunInstances (bake builder)",
        count: 1,
        ami: b.ami,
        instance_type: b.instance_type,
        volume_gb: b.volume_gb,
        token: b.token,
        subnet_id: b.subnet_id,
        security_group_id: b.security_group_id,
        key_name: b.key_name,
        profile_name: None,
        tags,
        volume_tags: cx.tags(BAKE_COMPONENT),
    };
    super::instances::run_instances(cx, "bake-builder", run).await
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// Tags `resources` (a builder, snapshots), retried through eventual consistency (a new
/// snapshot may not be visible to CreateTags at once).
async fn create_tags(cx: &Ctx<'_>, what: &str, resources: &[String], tags: &[(String, String)]) -> Result<()> {
    if resources.is_empty() {
        return Ok(());
    }
    let tags: Vec<Tag> = tags.iter().map(|(k, v)| tag(k, v)).collect();
    cx.retry(format!("tagging {what}"), "bake-tags", Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .create_tags()
                .set_resources(Some(resources.to_vec()))
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .op("CreateTags")
        })
        .await?;
    Ok(())
}

/// Marks a builder whose disk is being made an image: a rerun must not connect to it again
/// (its host keys are gone) and makes the image from it instead.
pub async fn mark_generalised(cx: &Ctx<'_>, instance_id: &str) -> Result<()> {
    create_tags(cx, instance_id, &[instance_id.to_string()], &[(TAG_BAKE_STEP.into(), "generalised".into())]).await
}

/// CreateImage from the builder, named `name` and tagged `tags` in the call. EC2 has no
/// ClientToken for CreateImage; the name is the idempotency: a second image of the same
/// name in the account and region is refused with `InvalidAMIName.Duplicate` (CreateImage,
/// EC2 API reference: the name must be unique), and then the existing one is the answer.
pub async fn create_image(cx: &Ctx<'_>, instance_id: &str, name: &str, tags: &[(String, String)]) -> Result<String> {
    let sent = cx
        .aws
        .ec2
        .create_image()
        .instance_id(instance_id)
        .name(name)
        .description(format!("tagstack node image of {}, built on {instance_id}", cx.id.project))
        // The snapshot TagSpecification is tagged afterwards (`tag_snapshots`): moto raises
        // NotImplementedError for it (moto/ec2/models/amis.py create_image).
        .tag_specifications(spec_tags(ResourceType::Image, tags))
        .send()
        .await;
    match sent {
        Ok(r) => r.image_id().map(str::to_string).context("CreateImage answered without an image id"),
        Err(e) if e.code() == Some("InvalidAMIName.Duplicate") => {
            let found = image_named(cx, name).await?;
            found.with_context(|| format!("CreateImage: an image named {name} exists, but DescribeImages shows none"))
        }
        Err(e) => Err(e).op(format!("CreateImage {name} from {instance_id}"))?,
    }
}

async fn image_named(cx: &Ctx<'_>, name: &str) -> Result<Option<String>> {
    let resp = cx
        .aws
        .ec2
        .describe_images()
        .owners("self")
        .filters(Filter::builder().name("name").values(name).build())
        .send()
        .await
        .op(format!("DescribeImages (name {name})"))?;
    Ok(resp.images().iter().find_map(|i| i.image_id().map(str::to_string)))
}

/// Waits for the image with the SDK's `image_available` waiter (which fails at once on a
/// `failed` image), up to `deadline`.
pub async fn wait_available(cx: &Ctx<'_>, image_id: &str, deadline: std::time::Duration) -> Result<()> {
    cx.aws
        .ec2
        .wait_until_image_available()
        .image_ids(image_id)
        .wait(deadline)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| {
            format!("waiting for image {image_id} to be available (deadline {})", format_duration(deadline))
        })?;
    Ok(())
}

/// The image's snapshots, read again (they are in its block device mappings once it is
/// available).
pub async fn image_snapshots(cx: &Ctx<'_>, image_id: &str) -> Result<Vec<String>> {
    let resp =
        cx.aws.ec2.describe_images().image_ids(image_id).send().await.op(format!("DescribeImages {image_id}"))?;
    Ok(resp
        .images()
        .iter()
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
        .collect())
}

/// Tags the image's snapshots with the image's tags (idempotent: a rerun tags them again).
pub async fn tag_snapshots(cx: &Ctx<'_>, image_id: &str, tags: &[(String, String)]) -> Result<Vec<String>> {
    let snapshots = image_snapshots(cx, image_id).await?;
    create_tags(cx, &format!("the snapshots of {image_id}"), &snapshots, tags).await?;
    Ok(snapshots)
}

/// Deregisters the image, then deletes its snapshots (a snapshot of a registered image cannot
/// be deleted). Each step treats "already gone" as done.
pub async fn deregister(cx: &Ctx<'_>, image: &BakedImage) -> Result<()> {
    cx.delete(format!("deregistering {}", image.id), "bake-prune", || async {
        cx.aws.ec2.deregister_image().image_id(&image.id).send().await.op("DeregisterImage").map(|_| ())
    })
    .await?;
    for snapshot in &image.snapshots {
        cx.delete(format!("deleting snapshot {snapshot} of {}", image.id), "bake-prune", || async {
            cx.aws.ec2.delete_snapshot().snapshot_id(snapshot).send().await.op("DeleteSnapshot").map(|_| ())
        })
        .await?;
    }
    Ok(())
}
