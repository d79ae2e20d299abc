//! Finds every environment in the account and region that carries an expiry tag, from the
//! tags alone (no config). Read-only; deciding what has expired is the caller's job.

use std::collections::BTreeMap;

use anyhow::Result;
use aws_sdk_ec2::types::{Filter, Tag};

use super::Aws;
use super::error::AwsResultExt;
use crate::config::{TAG_ENV, TAG_EXPIRES_AT, TAG_PROJECT};

/// One environment with an expiry: the earliest `tagstack:expires-at` among its resources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expiring {
    pub project: String,
    pub environment: String,
    pub expires_at: String,
}

type Found = BTreeMap<(String, String), String>;

fn note(found: &mut Found, project: Option<&str>, env: Option<&str>, at: Option<&str>) {
    if let (Some(p), Some(e), Some(at)) = (project, env, at) {
        let slot = found.entry((p.to_string(), e.to_string())).or_insert_with(|| at.to_string());
        if at < slot.as_str() {
            *slot = at.to_string();
        }
    }
}

fn note_ec2(found: &mut Found, tags: &[Tag]) {
    let get = |k: &str| tags.iter().find(|t| t.key() == Some(k)).and_then(Tag::value);
    note(found, get(TAG_PROJECT), get(TAG_ENV), get(TAG_EXPIRES_AT));
}

pub async fn expiring(aws: &Aws, project: Option<&str>) -> Result<Vec<Expiring>> {
    let mut filters = vec![Filter::builder().name("tag-key").values(TAG_EXPIRES_AT).build()];
    if let Some(p) = project {
        filters.push(Filter::builder().name(format!("tag:{TAG_PROJECT}")).values(p).build());
    }
    let f = Some(filters);
    let ec2 = &aws.ec2;
    let (vpcs, subnets, igws, rtbs, sgs, keys) = tokio::try_join!(
        async { ec2.describe_vpcs().set_filters(f.clone()).send().await.op("DescribeVpcs") },
        async { ec2.describe_subnets().set_filters(f.clone()).send().await.op("DescribeSubnets") },
        async { ec2.describe_internet_gateways().set_filters(f.clone()).send().await.op("DescribeInternetGateways") },
        async { ec2.describe_route_tables().set_filters(f.clone()).send().await.op("DescribeRouteTables") },
        async { ec2.describe_security_groups().set_filters(f.clone()).send().await.op("DescribeSecurityGroups") },
        async { ec2.describe_key_pairs().set_filters(f.clone()).send().await.op("DescribeKeyPairs") },
    )?;
    let mut found = Found::new();
    vpcs.vpcs().iter().for_each(|x| note_ec2(&mut found, x.tags()));
    subnets.subnets().iter().for_each(|x| note_ec2(&mut found, x.tags()));
    igws.internet_gateways().iter().for_each(|x| note_ec2(&mut found, x.tags()));
    rtbs.route_tables().iter().for_each(|x| note_ec2(&mut found, x.tags()));
    sgs.security_groups().iter().for_each(|x| note_ec2(&mut found, x.tags()));
    keys.key_pairs().iter().for_each(|x| note_ec2(&mut found, x.tags()));

    let mut live = f.clone().unwrap_or_default();
    live.push(
        Filter::builder()
            .name("instance-state-name")
            .set_values(Some(["pending", "running", "stopping", "stopped", "shutting-down"].map(String::from).to_vec()))
            .build(),
    );
    let mut token = None;
    loop {
        let page = ec2
            .describe_instances()
            .set_filters(Some(live.clone()))
            .set_next_token(token)
            .send()
            .await
            .op("DescribeInstances")?;
        page.reservations().iter().flat_map(|r| r.instances()).for_each(|i| note_ec2(&mut found, i.tags()));
        token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            break;
        }
    }

    // IAM is global: an environment whose EC2 side is gone may still own roles.
    let mut marker = None;
    loop {
        let page = aws.iam.list_roles().set_marker(marker).send().await.op("ListRoles")?;
        let prefix = project.map_or_else(|| "tagstack-".to_string(), |p| format!("tagstack-{p}-"));
        for r in page.roles().iter().filter(|r| r.role_name().starts_with(&prefix)) {
            // A role deleted since the listing (another run's `down`) is simply gone.
            let tags = match aws.iam.list_role_tags().role_name(r.role_name()).send().await.op("ListRoleTags") {
                Err(e) if e.code() == "NoSuchEntity" => continue,
                other => other?,
            };
            let get = |k: &str| tags.tags().iter().find(|t| t.key() == k).map(|t| t.value());
            if project.is_some_and(|p| get(TAG_PROJECT) != Some(p)) {
                continue;
            }
            note(&mut found, get(TAG_PROJECT), get(TAG_ENV), get(TAG_EXPIRES_AT));
        }
        marker = page.marker().map(str::to_string);
        if !page.is_truncated() || marker.is_none() {
            break;
        }
    }
    Ok(found
        .into_iter()
        .map(|((project, environment), expires_at)| Expiring { project, environment, expires_at })
        .collect())
}
