//! Volumes and network interfaces the cluster created and tagged with the environment's
//! ownership tags (the EBS CSI driver runs with `--extra-tags`): found for `down`, deleted
//! once the instances are gone. Never created here, and nothing untagged is ever touched.

use anyhow::Result;

use super::Aws;
use super::Ctx;
use super::error::AwsResultExt;
use super::tags::{owned, owner_filters, tag_value};
use crate::config::{EnvId, TAG_COMPONENT};
use crate::plan::observed::Leftover;

/// The tag the EBS CSI driver puts on a volume it made for a claim.
const TAG_PVC_NAMESPACE: &str = "kubernetes.io/created-for/pvc/namespace";
const TAG_PVC_NAME: &str = "kubernetes.io/created-for/pvc/name";

pub async fn volumes(aws: &Aws, env: &EnvId) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let mut pages = aws.ec2.describe_volumes().set_filters(Some(owner_filters(env))).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.op("DescribeVolumes")?;
        // An attached root volume is deleted with its instance; listing it would only be noise.
        // (moto omits DeleteOnTermination, hence also our own component tag.) A detached one
        // is a leftover like any other.
        let goes_with_instance = |v: &&aws_sdk_ec2::types::Volume| {
            v.attachments().iter().any(|a| {
                a.delete_on_termination() == Some(true) || tag_value(v.tags(), TAG_COMPONENT) == Some("root-volume")
            })
        };
        for v in page.volumes().iter().filter(|v| owned(env, v.tags()) && !goes_with_instance(v)) {
            let claim = match (tag_value(v.tags(), TAG_PVC_NAMESPACE), tag_value(v.tags(), TAG_PVC_NAME)) {
                (Some(ns), Some(name)) => Some(format!("pvc {ns}/{name}")),
                _ => tag_value(v.tags(), "Name").map(str::to_string),
            };
            out.push(Leftover {
                id: v.volume_id().unwrap_or_default().to_string(),
                state: v.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
                name: claim,
            });
        }
    }
    Ok(out)
}

pub async fn network_interfaces(aws: &Aws, env: &EnvId) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    // Only detached ones: an attached interface belongs to something still running.
    let mut filters = owner_filters(env);
    filters.push(aws_sdk_ec2::types::Filter::builder().name("status").values("available").build());
    let mut pages = aws.ec2.describe_network_interfaces().set_filters(Some(filters)).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.op("DescribeNetworkInterfaces")?;
        for n in page.network_interfaces().iter().filter(|n| owned(env, n.tag_set())) {
            out.push(Leftover {
                id: n.network_interface_id().unwrap_or_default().to_string(),
                state: n.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                name: tag_value(n.tag_set(), "Name").map(str::to_string),
            });
        }
    }
    Ok(out)
}

/// A volume still attached to a terminating instance is `in-use` for a while: retried.
pub async fn delete_volume(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    cx.delete(format!("deleting volume {id}"), key, || async {
        cx.aws.ec2.delete_volume().volume_id(id).send().await.op("DeleteVolume").map(|_| ())
    })
    .await
}

pub async fn delete_network_interface(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    cx.delete(format!("deleting network interface {id}"), key, || async {
        cx.aws
            .ec2
            .delete_network_interface()
            .network_interface_id(id)
            .send()
            .await
            .op("DeleteNetworkInterface")
            .map(|_| ())
    })
    .await
}
