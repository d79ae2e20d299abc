//! Discovery of everything one (project, environment) owns, read concurrently: EC2 by tag
//! filters, IAM and the S3 backup bucket by the exact names tagstack gives (then their tags), to the [`Depth`] the caller
//! asks for (a teardown skips what only the diff compares). Read-only; it takes the
//! environment's [`EnvId`] and timeouts, never a config (`reap` has none).

use anyhow::{Context, Result};
use aws_sdk_ec2::types::{Filter, IpPermission};
use futures_util::future::try_join_all;
use ipnet::Ipv4Net;

use super::Aws;
use super::error::{AwsError, AwsResultExt};
use super::tags::{iam_owned, owned, owner_filters, tag_value};
use std::sync::Mutex;
use std::time::Duration;

use crate::config::{
    EnvId, NodeRole, TAG_COMPONENT, TAG_EXPIRES_AT, TAG_HOST_KEY, TAG_KEY_SHA256, TAG_RETIRE, TAG_ROLE, Timeouts,
};
use crate::plan::observed::{
    Addresses, Depth, ExpirySeen, IngressRule, Instance, InstanceProfile, InternetGateway, KeyPair, Observed, Role,
    RouteTable, SecurityGroup, Subnet, Vpc,
};

/// Discovery is read-only, so one whose reads AWS kept throttling past the SDK's attempts (or
/// its retry quota) is repeated whole, with backoff, until `timeouts.aws_consistency`: throttling
/// never ends a command before that deadline. Also used for other reads (the AMI lookup).
pub(super) async fn while_throttled<T, F, Fut>(deadline: Duration, mut read: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read().await {
            Err(e) if e.chain().any(|c| c.downcast_ref::<AwsError>().is_some_and(AwsError::throttled)) => {
                let pause = super::retry::backoff(attempt);
                if started.elapsed() + pause > deadline {
                    return Err(e);
                }
                tracing::debug!("discovery throttled ({e:#}); reading again in {pause:?}");
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// Everything the environment owns (see [`while_throttled`]), read to `depth`: the diff's
/// [`Depth::Full`] or the teardown's [`Depth::Teardown`] (two round trips shorter). Needs only
/// who the environment is and its deadlines: `reap` discovers environments it has no config for.
pub async fn discover(aws: &Aws, id: &EnvId, timeouts: &Timeouts, depth: Depth) -> Result<Observed> {
    let deadline = timeouts.aws_consistency;
    while_throttled(deadline, || discover_once(aws, id, deadline, depth)).await
}

/// Only the environment's backup bucket, as a teardown reads it (see [`while_throttled`]):
/// for `backup` and `restore`, which need nothing else.
pub async fn backup_bucket(aws: &Aws, id: &EnvId, timeouts: &Timeouts) -> Result<crate::plan::observed::BackupBucket> {
    while_throttled(timeouts.aws_consistency, || super::s3::discover(aws, id, Depth::Teardown)).await
}

/// The environment's instances (see [`while_throttled`]).
pub async fn discover_instances(aws: &Aws, id: &EnvId, timeouts: &Timeouts) -> Result<Vec<Instance>> {
    while_throttled(timeouts.aws_consistency, || instances(aws, id)).await
}

async fn discover_once(aws: &Aws, id: &EnvId, deadline: Duration, depth: Depth) -> Result<Observed> {
    let seen = Mutex::new(ExpirySeen::default());
    let seen = &seen;
    let (
        vpcs,
        subnets,
        internet_gateways,
        route_tables,
        security_groups,
        key_pairs,
        (roles, instance_profiles),
        instances,
        volumes,
        network_interfaces,
        backup,
    ) = tokio::try_join!(
        vpcs(aws, id, deadline, depth, seen),
        subnets(aws, id, seen),
        igws(aws, id, seen),
        route_tables(aws, id, seen),
        security_groups(aws, id, seen),
        key_pairs(aws, id, seen),
        iam(aws, id, depth, seen),
        instances(aws, id),
        super::leftovers::volumes(aws, id),
        super::leftovers::network_interfaces(aws, id),
        super::s3::discover(aws, id, depth),
    )?;
    let mut expiry = seen.lock().map(|s| s.clone()).unwrap_or_default();
    for i in &instances {
        expiry.record(i.expires_at.as_deref());
    }
    Ok(Observed {
        depth,
        vpcs,
        subnets,
        internet_gateways,
        route_tables,
        security_groups,
        key_pairs,
        roles,
        instance_profiles,
        instances,
        volumes,
        network_interfaces,
        expiry,
        backup,
    })
}

fn record(seen: &Mutex<ExpirySeen>, value: Option<&str>) {
    if let Ok(mut s) = seen.lock() {
        s.record(value);
    }
}

/// Ownership check that also notes the resource's expiry tag.
fn owned_seen(id: &EnvId, tags: &[aws_sdk_ec2::types::Tag], seen: &Mutex<ExpirySeen>) -> bool {
    let mine = owned(id, tags);
    if mine {
        record(seen, tag_value(tags, TAG_EXPIRES_AT));
    }
    mine
}

/// Carries the `tagstack:component` tag tagstack's own create calls set for this kind: a
/// resource only tagged for the environment (by hand) is not provably tagstack's.
fn made_by_tagstack(tags: &[aws_sdk_ec2::types::Tag], component: &str) -> bool {
    tag_value(tags, TAG_COMPONENT) == Some(component)
}

/// DescribeVpcAttribute of a VPC the listing just returned: a VPC created a moment ago may
/// still answer InvalidVpcID.NotFound (EC2 is eventually consistent, "Eventual consistency in
/// the Amazon EC2 API"), retried with backoff until timeouts.aws_consistency.
async fn dns_hostnames(aws: &Aws, deadline: Duration, id: &str) -> Result<bool> {
    let started = std::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let res = aws
            .ec2
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
            .send()
            .await
            .op(format!("DescribeVpcAttribute {id}"));
        match res {
            Ok(attr) => return Ok(attr.enable_dns_hostnames().and_then(|a| a.value()).unwrap_or(false)),
            Err(e) if e.code() == "InvalidVpcID.NotFound" => {
                let pause = super::retry::backoff(attempt);
                if started.elapsed() + pause > deadline {
                    return Err(e.into());
                }
                tokio::time::sleep(pause).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn cidr(s: Option<&str>) -> Option<Ipv4Net> {
    s.and_then(|s| s.parse().ok())
}

/// At [`Depth::Teardown`] without the DNS attribute (a second round trip only the diff needs).
async fn vpcs(aws: &Aws, env: &EnvId, deadline: Duration, depth: Depth, seen: &Mutex<ExpirySeen>) -> Result<Vec<Vpc>> {
    let resp = aws.ec2.describe_vpcs().set_filters(Some(owner_filters(env))).send().await.op("DescribeVpcs")?;
    let mut out = Vec::new();
    for v in resp.vpcs().iter().filter(|v| owned_seen(env, v.tags(), seen)) {
        let id = v.vpc_id().unwrap_or_default().to_string();
        let dns_hostnames = match depth {
            Depth::Full => dns_hostnames(aws, deadline, &id).await?,
            Depth::Teardown => false,
        };
        let made_by_tagstack = made_by_tagstack(v.tags(), "vpc");
        out.push(Vpc { id, cidr: cidr(v.cidr_block()), dns_hostnames, made_by_tagstack });
    }
    Ok(out)
}

async fn subnets(aws: &Aws, id: &EnvId, seen: &Mutex<ExpirySeen>) -> Result<Vec<Subnet>> {
    let resp = aws.ec2.describe_subnets().set_filters(Some(owner_filters(id))).send().await.op("DescribeSubnets")?;
    Ok(resp
        .subnets()
        .iter()
        .filter(|s| owned_seen(id, s.tags(), seen))
        .map(|s| Subnet {
            id: s.subnet_id().unwrap_or_default().to_string(),
            vpc_id: s.vpc_id().unwrap_or_default().to_string(),
            cidr: cidr(s.cidr_block()),
            availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            map_public_ip: s.map_public_ip_on_launch().unwrap_or(false),
        })
        .collect())
}

async fn igws(aws: &Aws, id: &EnvId, seen: &Mutex<ExpirySeen>) -> Result<Vec<InternetGateway>> {
    let resp = aws
        .ec2
        .describe_internet_gateways()
        .set_filters(Some(owner_filters(id)))
        .send()
        .await
        .op("DescribeInternetGateways")?;
    Ok(resp
        .internet_gateways()
        .iter()
        .filter(|g| owned_seen(id, g.tags(), seen))
        .map(|g| InternetGateway {
            id: g.internet_gateway_id().unwrap_or_default().to_string(),
            attached_vpcs: g.attachments().iter().filter_map(|a| a.vpc_id().map(str::to_string)).collect(),
            made_by_tagstack: made_by_tagstack(g.tags(), "igw"),
        })
        .collect())
}

async fn route_tables(aws: &Aws, id: &EnvId, seen: &Mutex<ExpirySeen>) -> Result<Vec<RouteTable>> {
    let resp =
        aws.ec2.describe_route_tables().set_filters(Some(owner_filters(id))).send().await.op("DescribeRouteTables")?;
    Ok(resp
        .route_tables()
        .iter()
        .filter(|r| owned_seen(id, r.tags(), seen))
        .map(|r| RouteTable {
            id: r.route_table_id().unwrap_or_default().to_string(),
            vpc_id: r.vpc_id().unwrap_or_default().to_string(),
            default_route: r
                .routes()
                .iter()
                .find(|rt| rt.destination_cidr_block() == Some("0.0.0.0/0"))
                .and_then(|rt| {
                    rt.gateway_id().or(rt.nat_gateway_id()).or(rt.instance_id()).or(rt.network_interface_id())
                })
                .map(str::to_string),
            associations: r
                .associations()
                .iter()
                .filter(|a| !a.main().unwrap_or(false))
                .filter_map(|a| Some((a.route_table_association_id()?.to_string(), a.subnet_id()?.to_string())))
                .collect(),
            made_by_tagstack: made_by_tagstack(r.tags(), "rtb"),
        })
        .collect())
}

fn ingress(group_id: &str, perms: &[IpPermission]) -> Vec<IngressRule> {
    let mut out = Vec::new();
    for p in perms {
        let proto = p.ip_protocol().unwrap_or("");
        if proto == "-1" && p.user_id_group_pairs().iter().any(|g| g.group_id() == Some(group_id)) {
            out.push(IngressRule::SelfAll);
        }
        for r in p.ip_ranges() {
            let c = cidr(r.cidr_ip());
            match (proto, p.from_port(), p.to_port(), c) {
                ("tcp", Some(from), Some(to), Some(cidr)) if from == to && u16::try_from(from).is_ok() => {
                    out.push(IngressRule::Tcp { port: u16::try_from(from).unwrap_or(0), cidr });
                }
                _ => out.push(IngressRule::Other(format!(
                    "{proto} {}-{} from {}",
                    p.from_port().unwrap_or(-1),
                    p.to_port().unwrap_or(-1),
                    r.cidr_ip().unwrap_or("?")
                ))),
            }
        }
        for g in p.user_id_group_pairs().iter().filter(|g| g.group_id() != Some(group_id)) {
            out.push(IngressRule::Other(format!("{proto} from group {}", g.group_id().unwrap_or("?"))));
        }
        for r in p.ipv6_ranges() {
            out.push(IngressRule::Other(format!("{proto} from {}", r.cidr_ipv6().unwrap_or("?"))));
        }
    }
    out.sort();
    out.dedup();
    out
}

async fn security_groups(aws: &Aws, id: &EnvId, seen: &Mutex<ExpirySeen>) -> Result<Vec<SecurityGroup>> {
    let resp = aws
        .ec2
        .describe_security_groups()
        .set_filters(Some(owner_filters(id)))
        .send()
        .await
        .op("DescribeSecurityGroups")?;
    Ok(resp
        .security_groups()
        .iter()
        .filter(|g| owned_seen(id, g.tags(), seen))
        .map(|g| {
            let id = g.group_id().unwrap_or_default().to_string();
            SecurityGroup {
                ingress: ingress(&id, g.ip_permissions()),
                vpc_id: g.vpc_id().unwrap_or_default().to_string(),
                made_by_tagstack: made_by_tagstack(g.tags(), "sg"),
                id,
            }
        })
        .collect())
}

async fn key_pairs(aws: &Aws, id: &EnvId, seen: &Mutex<ExpirySeen>) -> Result<Vec<KeyPair>> {
    let resp = aws.ec2.describe_key_pairs().set_filters(Some(owner_filters(id))).send().await.op("DescribeKeyPairs")?;
    Ok(resp
        .key_pairs()
        .iter()
        .filter(|k| owned_seen(id, k.tags(), seen))
        .map(|k| KeyPair {
            id: k.key_pair_id().unwrap_or_default().to_string(),
            name: k.key_name().unwrap_or_default().to_string(),
            public_key_sha256: tag_value(k.tags(), TAG_KEY_SHA256).map(str::to_string),
        })
        .collect())
}

async fn instances(aws: &Aws, id: &EnvId) -> Result<Vec<Instance>> {
    let mut filters = owner_filters(id);
    filters.push(
        Filter::builder()
            .name("instance-state-name")
            .set_values(Some(["pending", "running", "stopping", "stopped", "shutting-down"].map(String::from).to_vec()))
            .build(),
    );
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = aws
            .ec2
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .op("DescribeInstances")?;
        for i in resp.reservations().iter().flat_map(|r| r.instances()) {
            if !owned(id, i.tags()) {
                continue;
            }
            // An instance without a valid role tag is not one we launched; leave it alone.
            let Some(role) = tag_value(i.tags(), TAG_ROLE).and_then(NodeRole::parse) else { continue };
            out.push(Instance {
                id: i.instance_id().unwrap_or_default().to_string(),
                role,
                state: crate::plan::observed::InstanceState::parse(
                    i.state().and_then(|s| s.name()).map_or("", |n| n.as_str()),
                ),
                instance_type: i.instance_type().map_or_else(String::new, |t| t.as_str().to_string()),
                subnet_id: i.subnet_id().map(str::to_string),
                addresses: Addresses {
                    private_ip: i.private_ip_address().map(str::to_string),
                    public_ip: i.public_ip_address().map(str::to_string),
                    private_dns: i.private_dns_name().filter(|s| !s.is_empty()).map(str::to_string),
                },
                launch_time: i.launch_time().map(ToString::to_string),
                expires_at: tag_value(i.tags(), TAG_EXPIRES_AT).map(str::to_string),
                host_key: tag_value(i.tags(), TAG_HOST_KEY).map(str::to_string),
                retiring: tag_value(i.tags(), TAG_RETIRE).is_some(),
                security_groups: i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect(),
                imds_hop_limit: i.metadata_options().and_then(|m| m.http_put_response_hop_limit()),
            });
        }
        token = resp.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| (a.role, &a.launch_time, &a.id).cmp(&(b.role, &b.launch_time, &b.id)));
    Ok(out)
}

/// IAM is global and has no server-side tag filter, so each name this environment's roles and
/// instance profiles would have is read directly (GetRole, GetInstanceProfile: both answers carry
/// the tags), all at once, and only what carries our tags is kept. [`NodeRole::ALL`] is fixed and
/// a profile is named after its role, so these names are every IAM name tagstack ever creates
/// for the environment (tagstack never used other names; a role of another name with our tags
/// was made by hand and is not read, so `plan::diff`'s "not a role this version of tagstack uses"
/// no longer meets one). A listing by name prefix would also read every look-alike environment's
/// (`dev` beside `dev-2`) and grow with the account. A role or profile of that name without our
/// tags is someone else's: not returned, so the plan never touches it (`up` then refuses to
/// create over it).
async fn iam(
    aws: &Aws,
    id: &EnvId,
    depth: Depth,
    seen: &Mutex<ExpirySeen>,
) -> Result<(Vec<Role>, Vec<InstanceProfile>)> {
    let names: Vec<String> = NodeRole::ALL.iter().map(|r| id.iam_name(*r)).collect();
    let (roles, profiles) = tokio::try_join!(
        try_join_all(names.iter().map(|name| role(aws, id, depth, seen, name))),
        try_join_all(names.iter().map(|name| instance_profile(aws, id, seen, name))),
    )?;
    let mut roles: Vec<Role> = roles.into_iter().flatten().collect();
    let mut profiles: Vec<InstanceProfile> = profiles.into_iter().flatten().collect();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    profiles.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((roles, profiles))
}

/// The role of that name if it is ours, with its inline policies (read concurrently) at
/// [`Depth::Full`]; a teardown strips the role by listing its policies itself
/// (`aws::strip_role`), so it does not wait for the documents here.
async fn role(aws: &Aws, id: &EnvId, depth: Depth, seen: &Mutex<ExpirySeen>, name: &str) -> Result<Option<Role>> {
    let got = match aws.iam.get_role().role_name(name).send().await.op(format!("GetRole {name}")) {
        Err(e) if e.code() == "NoSuchEntity" => return Ok(None),
        other => other?,
    };
    let Some(role) = got.role() else { return Ok(None) };
    if !iam_owned(id, role.tags()) {
        return Ok(None);
    }
    record(seen, role.tags().iter().find(|t| t.key() == TAG_EXPIRES_AT).map(|t| t.value()));
    if depth == Depth::Teardown {
        return Ok(Some(Role { name: name.to_string(), inline_policies: Vec::new() }));
    }
    let names = aws.iam.list_role_policies().role_name(name).send().await.op(format!("ListRolePolicies {name}"))?;
    let inline_policies = try_join_all(names.policy_names().iter().map(|p| async move {
        let doc = aws
            .iam
            .get_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .op(format!("GetRolePolicy {name}/{p}"))?;
        let text = percent_decode(doc.policy_document());
        let value = serde_json::from_str(&text).with_context(|| format!("policy {p} of role {name} is not JSON"))?;
        anyhow::Ok((p.clone(), value))
    }))
    .await?;
    Ok(Some(Role { name: name.to_string(), inline_policies }))
}

/// The instance profile of that name if it is ours, with the roles in it.
async fn instance_profile(
    aws: &Aws,
    id: &EnvId,
    seen: &Mutex<ExpirySeen>,
    name: &str,
) -> Result<Option<InstanceProfile>> {
    let got = aws
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .op(format!("GetInstanceProfile {name}"));
    let got = match got {
        Err(e) if e.code() == "NoSuchEntity" => return Ok(None),
        other => other?,
    };
    let Some(profile) = got.instance_profile() else { return Ok(None) };
    if !iam_owned(id, profile.tags()) {
        return Ok(None);
    }
    record(seen, profile.tags().iter().find(|t| t.key() == TAG_EXPIRES_AT).map(|t| t.value()));
    Ok(Some(InstanceProfile {
        name: name.to_string(),
        roles: profile.roles().iter().map(|r| r.role_name().to_string()).collect(),
    }))
}

/// IAM returns policy documents URL-encoded (RFC 3986).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_iam_documents() {
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(percent_decode("{\"a\":1}"), "{\"a\":1}");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a+b%20c"), "a+b c");
    }
}
