//! EC2 instances: AMI resolution, one RunInstances per role (MinCount = MaxCount, the
//! ClientToken the caller computed, IMDSv2 at hop limit 1, encrypted gp3, tags in the call), the
//! hop limit of an instance launched before, start, terminate
//! and the SDK waiters; console output and the host keys read from it (the parsing is
//! `cluster::console`'s, passed in by the caller).

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceType,
    ResourceType, VolumeType,
};

use super::Ctx;
use super::error::{AwsResultExt, NoHostKeys, NoImage, NotRunning, Phase, is_throttling_code};
use super::tags::spec_tags;
use crate::config::{AmiSpec, NodeGroupSpec, NodeRole, TAG_HOST_KEY, TAG_ROLE, format_duration};
use crate::plan::desired::IMDS_HOP_LIMIT;
use crate::plan::observed::InstanceState;
use crate::poll::{Check, Look, poll_until};
use aws_sdk_ec2::error::ProvideErrorMetadata;

#[derive(Debug, Clone)]
pub struct Ami {
    pub id: String,
    pub root_device: String,
}

/// Looks the image up (by id, or newest matching owner + name) to learn its root device name.
/// `region` is the config's, named when nothing matches.
pub async fn resolve_ami(cx: &Ctx<'_>, ami: &AmiSpec, region: &str) -> Result<Ami> {
    let req = cx.aws.ec2.describe_images();
    let (req, what) = match ami {
        AmiSpec::Id(id) => (req.image_ids(id), format!("AMI {id}")),
        AmiSpec::Lookup { owner, name } => (
            req.owners(owner)
                .filters(Filter::builder().name("name").values(name).build())
                .filters(Filter::builder().name("state").values("available").build()),
            format!("AMI owner {owner} name {name}"),
        ),
    };
    let resp = super::discover::while_throttled(cx.timeouts.aws_consistency, || {
        let (req, op) = (req.clone(), format!("DescribeImages ({what})"));
        async move { Ok(req.send().await.op(op)?) }
    })
    .await?;
    let newest = resp.images().iter().max_by(|a, b| a.creation_date().cmp(&b.creation_date()));
    let Some(img) = newest else {
        return Err(NoImage { what, region: region.to_string() }.into());
    };
    Ok(Ami {
        id: img.image_id().unwrap_or_default().to_string(),
        root_device: img.root_device_name().unwrap_or("/dev/sda1").to_string(),
    })
}

/// Where and how to launch one role's instances.
#[derive(Debug, Clone)]
pub struct LaunchTarget<'a> {
    pub role: NodeRole,
    /// The role's `[control_plane]` or `[workers]`: instance type and root volume.
    pub group: &'a NodeGroupSpec,
    pub count: usize,
    /// RunInstances' ClientToken (`plan::desired::client_token`, computed by `ops::up`): the
    /// same launch always sends the same one, so EC2 answers a repeat with the first result.
    pub token: &'a str,
    pub subnet_id: &'a str,
    pub security_group_id: &'a str,
    pub key_name: &'a str,
    pub profile_name: &'a str,
    pub ami: &'a Ami,
}

/// Each instance of the answer with its state as the answer gives it: for a repeated token EC2
/// sends the first answer with the instances' state now, which the caller judges
/// (`plan::desired::stale_launch`).
pub async fn launch(cx: &Ctx<'_>, key: &str, t: &LaunchTarget<'_>) -> Result<Vec<(String, InstanceState)>> {
    let mut tags = cx.tags(&format!("node-{}", t.role.as_str()));
    tags.push((TAG_ROLE.into(), t.role.as_str().into()));
    let run = Run {
        what: format!("launching {} {} instance(s)", t.count, t.role.as_str()),
        op: "RunInstances",
        count: i32::try_from(t.count).context("too many instances")?,
        ami: t.ami,
        instance_type: &t.group.instance_type,
        volume_gb: t.group.root_volume_gb,
        token: t.token,
        subnet_id: t.subnet_id,
        security_group_id: t.security_group_id,
        key_name: t.key_name,
        profile_name: Some(t.profile_name),
        tags,
        volume_tags: cx.tags("root-volume"),
    };
    run_instances(cx, key, run).await
}

/// One RunInstances request as tagstack sends every one (nodes and the bake builder): IMDSv2
/// required at [`IMDS_HOP_LIMIT`], an encrypted gp3 root volume deleted with the instance, a
/// public address in the given subnet, tags on the instance and its volume at creation.
pub(crate) struct Run<'a> {
    /// The retry's description (progress and errors).
    pub what: String,
    /// The operation's name in errors.
    pub op: &'static str,
    pub count: i32,
    pub ami: &'a Ami,
    pub instance_type: &'a str,
    pub volume_gb: u32,
    /// RunInstances' ClientToken: the caller's deterministic one.
    pub token: &'a str,
    pub subnet_id: &'a str,
    pub security_group_id: &'a str,
    pub key_name: &'a str,
    /// `None`: no instance profile (the builder needs no AWS access).
    pub profile_name: Option<&'a str>,
    pub tags: Vec<(String, String)>,
    pub volume_tags: Vec<(String, String)>,
}

pub(crate) async fn run_instances(cx: &Ctx<'_>, key: &str, r: Run<'_>) -> Result<Vec<(String, InstanceState)>> {
    let resp = cx
        .retry(r.what.clone(), key, Phase::Create)
        // The caller's deterministic ClientToken makes a repeat the same request (EC2 answers
        // it with the first reservation), so an ambiguous failure may be retried as is.
        .idempotent()
        .run(|| async {
            cx.aws
                .ec2
                .run_instances()
                .image_id(&r.ami.id)
                .instance_type(InstanceType::from(r.instance_type))
                .min_count(r.count)
                .max_count(r.count)
                .client_token(r.token)
                .key_name(r.key_name)
                .set_iam_instance_profile(
                    r.profile_name.map(|name| IamInstanceProfileSpecification::builder().name(name).build()),
                )
                .metadata_options(
                    InstanceMetadataOptionsRequest::builder()
                        .http_endpoint(InstanceMetadataEndpointState::Enabled)
                        .http_tokens(HttpTokensState::Required)
                        // Pods cannot reach IMDS; see `plan::desired::IMDS_HOP_LIMIT`.
                        .http_put_response_hop_limit(IMDS_HOP_LIMIT)
                        .build(),
                )
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(&r.ami.root_device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .volume_size(i32::try_from(r.volume_gb).unwrap_or(50))
                                .volume_type(VolumeType::Gp3)
                                .encrypted(true)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
                .network_interfaces(
                    InstanceNetworkInterfaceSpecification::builder()
                        .device_index(0)
                        .subnet_id(r.subnet_id)
                        .groups(r.security_group_id)
                        .associate_public_ip_address(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .tag_specifications(spec_tags(ResourceType::Instance, &r.tags))
                .tag_specifications(spec_tags(ResourceType::Volume, &r.volume_tags))
                .send()
                .await
                .op(r.op)
        })
        .await?;
    Ok(resp
        .instances()
        .iter()
        .filter_map(|i| {
            let state = InstanceState::parse(i.state().and_then(|s| s.name()).map_or("", |n| n.as_str()));
            i.instance_id().map(|id| (id.to_string(), state))
        })
        .collect())
}

/// Sets an existing instance's IMDS options to what a launch sends (tokens required, endpoint
/// enabled, [`IMDS_HOP_LIMIT`]). All three are sent: EC2 keeps an option left out
/// (ModifyInstanceMetadataOptions, EC2 API reference: "If no parameter is specified, the
/// existing state is maintained"), but moto 5.2.5 resets it to its default. Takes effect on
/// the running instance, no restart.
pub async fn lower_hop_limit(cx: &Ctx<'_>, key: &str, id: &str) -> Result<()> {
    cx.retry(format!("setting the IMDS hop limit of {id} to {IMDS_HOP_LIMIT}"), key, Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .modify_instance_metadata_options()
                .instance_id(id)
                .http_tokens(HttpTokensState::Required)
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .http_put_response_hop_limit(IMDS_HOP_LIMIT)
                .send()
                .await
                .op(format!("ModifyInstanceMetadataOptions {id}"))
        })
        .await?;
    Ok(())
}

pub async fn start(cx: &Ctx<'_>, key: &str, ids: &[String]) -> Result<()> {
    cx.retry(format!("starting {}", ids.join(", ")), key, Phase::Create)
        .run(|| async {
            cx.aws.ec2.start_instances().set_instance_ids(Some(ids.to_vec())).send().await.op("StartInstances")
        })
        .await?;
    Ok(())
}

pub async fn terminate(cx: &Ctx<'_>, key: &str, ids: &[String]) -> Result<()> {
    cx.delete(format!("terminating {}", ids.join(", ")), key, || async {
        cx.aws
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .op("TerminateInstances")
            .map(|_| ())
    })
    .await?;
    Ok(())
}

fn deadline(cx: &Ctx<'_>) -> Duration {
    cx.timeouts.instances_running
}

/// Runs an SDK waiter (`wait(time left)`, its error tagged with "a throttle") again when one of
/// its polls was throttled past the SDK's attempts: the waiter then fails with OperationFailed,
/// although nothing is wrong with the instances. Until `max`, as the waiter itself.
async fn wait_through_throttling<F, Fut>(max: Duration, mut wait: F) -> Result<()>
where
    F: FnMut(Duration) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), (bool, anyhow::Error)>>,
{
    let started = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match wait(max.saturating_sub(started.elapsed())).await {
            Ok(()) => return Ok(()),
            Err((true, e)) => {
                let pause = super::retry::backoff(attempt);
                if started.elapsed() + pause >= max {
                    return Err(e);
                }
                tracing::debug!("a waiter's poll was throttled; waiting again in {pause:?}");
                tokio::time::sleep(pause).await;
            }
            Err((false, e)) => return Err(e),
        }
    }
}

pub async fn wait_running(cx: &Ctx<'_>, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let d = deadline(cx);
    wait_through_throttling(d, |left| async move {
        let r = cx.aws.ec2.wait_until_instance_running().set_instance_ids(Some(ids.to_vec())).wait(left).await;
        r.map(|_| ()).map_err(|e| (is_throttling_code(e.code().unwrap_or("")), anyhow::anyhow!("{e:?}")))
    })
    .await
    .map_err(|source| NotRunning { instances: ids.join(", "), deadline: format_duration(d), source })?;
    Ok(())
}

pub async fn wait_terminated(cx: &Ctx<'_>, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let d = deadline(cx);
    wait_through_throttling(d, |left| async move {
        let r = cx.aws.ec2.wait_until_instance_terminated().set_instance_ids(Some(ids.to_vec())).wait(left).await;
        r.map(|_| ()).map_err(|e| (is_throttling_code(e.code().unwrap_or("")), anyhow::anyhow!("{e:?}")))
    })
    .await
    .with_context(|| format!("waiting for {} to terminate (deadline {})", ids.join(", "), format_duration(d)))?;
    Ok(())
}

/// What reads a node's host key out of its console text (`cluster::console::host_key`): the
/// parsing is the cluster's, the reading and recording are AWS calls.
pub type HostKeyReader = fn(&str) -> Option<String>;

/// An instance's latest console output, decoded (empty before it has any).
pub async fn console_output(cx: &Ctx<'_>, instance_id: &str) -> Result<String> {
    let resp = cx
        .aws
        .ec2
        .get_console_output()
        .instance_id(instance_id)
        .latest(true)
        .send()
        .await
        .op(format!("GetConsoleOutput {instance_id}"))?;
    Ok(resp
        .output()
        .and_then(crate::base64::decode)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default())
}

/// The host key `read` finds in an instance's console, once it shows one (None before).
async fn console_host_key(cx: &Ctx<'_>, read: HostKeyReader, instance_id: &str) -> Result<Option<String>> {
    Ok(read(&console_output(cx, instance_id).await?))
}

/// EC2 tag values are at most 256 characters: an ed25519 or ECDSA key fits, RSA does not.
const TAG_VALUE_MAX: usize = 256;

/// Records the host key read from the console on the instance, so that a machine that runs
/// tagstack after the console stopped showing it (after a reboot or stop/start: cloud-init
/// prints the keys once per instance) can still verify the node. Best effort: credentials
/// without ec2:CreateTags still connect (the key was verified on the console), with a note.
async fn record_host_key(cx: &Ctx<'_>, instance_id: &str, key: &str) {
    let tag = aws_sdk_ec2::types::Tag::builder().key(TAG_HOST_KEY).value(key).build();
    let sent = cx
        .aws
        .ec2
        .create_tags()
        .resources(instance_id)
        .tags(tag)
        .send()
        .await
        .op(format!("CreateTags {TAG_HOST_KEY} on {instance_id}"));
    if let Err(e) = sent {
        cx.reporter.note(&format!(
            "could not record the verified host key of {instance_id} as the tag {TAG_HOST_KEY} ({e:#}): a machine that never saw its console cannot verify it later"
        ));
    }
}

/// The host keys of the instances the cluster stage has run on (those carrying the tag), for
/// `status` and `down` from any machine: the console's key when it still shows one, else the
/// tag. Read-only (the cluster stage is what records keys) and never waits; a console that
/// cannot be read (denied, throttled) counts as one that shows no key.
pub async fn recorded_host_keys(
    cx: &Ctx<'_>,
    read: HostKeyReader,
    instances: &[(String, String)],
) -> Vec<(String, String)> {
    let consoles = futures_util::future::join_all(instances.iter().map(|(id, _)| console_host_key(cx, read, id))).await;
    instances
        .iter()
        .zip(consoles)
        .map(|((id, tagged), console)| match console {
            Ok(Some(key)) => (id.clone(), key),
            Ok(None) | Err(_) => (id.clone(), tagged.clone()),
        })
        .collect()
}

/// The SSH host key of every instance: from its console output first (cloud-init's first-boot
/// block, read through the authenticated EC2 API), recorded on the instance as a tag when it
/// is not there yet; else from that tag (the console no longer shows it). Waits for consoles
/// that show nothing yet on instances without the tag; the error names those that never did.
/// `instances`: (instance id, the host key tag it carries).
pub async fn wait_host_keys(
    cx: &Ctx<'_>,
    read: HostKeyReader,
    instances: &[(String, Option<String>)],
    deadline: Duration,
) -> Result<Vec<(String, String)>> {
    let mut found: Vec<(String, String)> = Vec::new();
    cx.reporter.start("host-keys", &format!("read SSH host keys of {} instance(s)", instances.len()));
    // Checked after each look: the first that ends past the deadline is the last.
    let waited = poll_until(
        deadline,
        Duration::from_secs(5),
        Check::AfterLook,
        async |_| {
            let missing: Vec<&(String, Option<String>)> =
                instances.iter().filter(|(id, _)| !found.iter().any(|(f, _)| f == id)).collect();
            if missing.is_empty() {
                return Ok(Look::Done(()));
            }
            let results =
                futures_util::future::join_all(missing.iter().map(|(id, _)| console_host_key(cx, read, id))).await;
            for ((id, tagged), r) in missing.iter().zip(results) {
                match (r?, tagged) {
                    (Some(key), tagged) => {
                        if tagged.as_deref() != Some(key.as_str()) {
                            if key.len() <= TAG_VALUE_MAX {
                                record_host_key(cx, id, &key).await;
                            } else {
                                cx.reporter.note(&format!(
                                    "the host key of {id} is longer than an EC2 tag value ({TAG_VALUE_MAX} characters; an RSA-only node?): it is not recorded, so once its console no longer shows it no machine can verify the node"
                                ));
                            }
                        }
                        found.push((id.clone(), key));
                    }
                    (None, Some(tagged)) => found.push((id.clone(), tagged.clone())),
                    (None, None) => {}
                }
            }
            anyhow::Ok(if found.len() < instances.len() { Look::Waiting(()) } else { Look::Done(()) })
        },
        |()| {},
    )
    .await?;
    if let Err(timeout) = waited {
        let still: Vec<&str> =
            instances.iter().filter(|(id, _)| !found.iter().any(|(f, _)| f == id)).map(|(id, _)| id.as_str()).collect();
        cx.reporter.fail("host-keys", "no host keys in the console output");
        return Err(NoHostKeys { instances: still.join(", "), waited: format_duration(timeout.waited()) }.into());
    }
    cx.reporter.finish("host-keys", "host keys verified (console, or the tag recorded from it)");
    Ok(found)
}

/// Marks an instance for `tagstack replace` (`tagstack:retire` = when): from now on the plan
/// launches its replacement and retires it. Idempotent: marking it again changes nothing.
pub async fn mark_retiring(cx: &Ctx<'_>, instance_id: &str, when: &str) -> Result<()> {
    let tag = aws_sdk_ec2::types::Tag::builder().key(crate::config::TAG_RETIRE).value(when).build();
    cx.retry(format!("tagging {instance_id} for replacement"), "replace", Phase::Create)
        .run(|| async {
            cx.aws.ec2.create_tags().resources(instance_id).tags(tag.clone()).send().await.op("CreateTags")
        })
        .await?;
    Ok(())
}
