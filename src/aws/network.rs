//! VPC, subnets, internet gateway, route table, security group and key pair: create (tagged in
//! the create call), fix drift, delete. Every call that may race AWS's eventual consistency
//! goes through [`Ctx::retry`].

use anyhow::{Context, Result};
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{AttributeBooleanValue, IpPermission, IpRange, ResourceType, UserIdGroupPair};
use ipnet::Ipv4Net;

use aws_sdk_ec2::types::Filter;

use super::client::no_sdk_retry_ec2;
use super::error::{AwsResultExt, Phase, is_throttling_code};
use super::retry::Found;
use super::tags::{owned, owner_filters, spec_tags, tag_value};
use super::{Ctx, all};
use crate::config::{SubnetSpec, TAG_COMPONENT, TAG_KEY_SHA256};
use crate::plan::desired::public_key_sha256;
use crate::plan::observed::IngressRule;
use crate::poll::{Check, Look, poll_until};

fn yes() -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(true).build()
}

fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Ours and made by tagstack as this component (not only tagged for the environment).
fn made_as(cx: &Ctx<'_>, tags: &[aws_sdk_ec2::types::Tag], component: &str) -> bool {
    owned(cx.id, tags) && tag_value(tags, TAG_COMPONENT) == Some(component)
}

/// CreateVpc has no idempotency token (EC2 API reference, CreateVpc request parameters; the
/// SDK's CreateVpcInput has no client_token): sent once, re-discovered by tags after an
/// ambiguous failure.
pub async fn create_vpc(cx: &Ctx<'_>, cidr: Ipv4Net) -> Result<String> {
    let cidr = cidr.to_string();
    let id = cx
        .retry(format!("creating VPC {cidr}"), "vpc", Phase::Create)
        .create_once(
            &[],
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .create_vpc()
                    .cidr_block(&cidr)
                    .tag_specifications(spec_tags(ResourceType::Vpc, &cx.tags("vpc")))
                    .customize()
                    .config_override(no_sdk_retry_ec2())
                    .send()
                    .await
                    .op("CreateVpc")?;
                Ok(resp.vpc().and_then(|v| v.vpc_id()).map(str::to_string))
            },
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .describe_vpcs()
                    .set_filters(Some(owner_filters(cx.id)))
                    .send()
                    .await
                    .op("DescribeVpcs")?;
                let mine = resp.vpcs().iter().find(|v| made_as(cx, v.tags(), "vpc") && v.cidr_block() == Some(&cidr));
                Ok(mine.map_or(Found::Nothing, |v| Found::Ours(v.vpc_id().map(str::to_string))))
            },
        )
        .await?
        .context("CreateVpc returned no VPC id")?;
    Ok(id)
}

pub async fn enable_dns_hostnames(cx: &Ctx<'_>, vpc_id: &str) -> Result<()> {
    cx.retry(format!("enabling DNS hostnames on {vpc_id}"), "vpc", Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .modify_vpc_attribute()
                .vpc_id(vpc_id)
                .enable_dns_hostnames(yes())
                .send()
                .await
                .op("ModifyVpcAttribute")
        })
        .await?;
    Ok(())
}

pub async fn create_subnet(cx: &Ctx<'_>, key: &str, vpc_id: &str, want: &SubnetSpec) -> Result<String> {
    let mut tags = cx.tags("subnet");
    // The AWS cloud provider puts internet-facing load balancers in subnets with this tag.
    tags.push(("kubernetes.io/role/elb".into(), "1".into()));
    let cidr = want.cidr.to_string();
    // No idempotency token on CreateSubnet; a repeat meets InvalidSubnet.Conflict (the range
    // is taken), so the range is the unique attribute to look for.
    let id = cx
        .retry(format!("creating subnet {cidr} in {vpc_id}"), key, Phase::Create)
        .create_once(
            &["InvalidSubnet.Conflict"],
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .create_subnet()
                    .vpc_id(vpc_id)
                    .cidr_block(&cidr)
                    .availability_zone(&want.availability_zone)
                    .tag_specifications(spec_tags(ResourceType::Subnet, &tags))
                    .customize()
                    .config_override(no_sdk_retry_ec2())
                    .send()
                    .await
                    .op("CreateSubnet")?;
                Ok(resp.subnet().and_then(|s| s.subnet_id()).map(str::to_string))
            },
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .describe_subnets()
                    .filters(filter("vpc-id", vpc_id))
                    .filters(filter("cidr-block", &cidr))
                    .send()
                    .await
                    .op("DescribeSubnets")?;
                Ok(match resp.subnets().first() {
                    None => Found::Nothing,
                    Some(s) if made_as(cx, s.tags(), "subnet") => Found::Ours(s.subnet_id().map(str::to_string)),
                    Some(s) => Found::Foreign(format!("subnet {}", s.subnet_id().unwrap_or(&cidr))),
                })
            },
        )
        .await?
        .context("CreateSubnet returned no subnet id")?;
    enable_map_public_ip(cx, key, &id).await?;
    Ok(id)
}

pub async fn enable_map_public_ip(cx: &Ctx<'_>, key: &str, subnet_id: &str) -> Result<()> {
    cx.retry(format!("mapping public IPs in {subnet_id}"), key, Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .modify_subnet_attribute()
                .subnet_id(subnet_id)
                .map_public_ip_on_launch(yes())
                .send()
                .await
                .op("ModifySubnetAttribute")
        })
        .await?;
    Ok(())
}

/// No idempotency token on CreateInternetGateway: sent once, re-discovered by tags (an
/// unattached gateway of ours, or one already on `vpc_id`) after an ambiguous failure.
pub async fn create_internet_gateway(cx: &Ctx<'_>, vpc_id: &str) -> Result<String> {
    let id = cx
        .retry("creating internet gateway", "igw", Phase::Create)
        .create_once(
            &[],
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .create_internet_gateway()
                    .tag_specifications(spec_tags(ResourceType::InternetGateway, &cx.tags("igw")))
                    .customize()
                    .config_override(no_sdk_retry_ec2())
                    .send()
                    .await
                    .op("CreateInternetGateway")?;
                Ok(resp.internet_gateway().and_then(|g| g.internet_gateway_id()).map(str::to_string))
            },
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .describe_internet_gateways()
                    .set_filters(Some(owner_filters(cx.id)))
                    .send()
                    .await
                    .op("DescribeInternetGateways")?;
                let free = |g: &&aws_sdk_ec2::types::InternetGateway| {
                    g.attachments().iter().all(|a| a.vpc_id() == Some(vpc_id))
                };
                let mine = resp.internet_gateways().iter().filter(|g| made_as(cx, g.tags(), "igw")).find(free);
                Ok(mine.map_or(Found::Nothing, |g| Found::Ours(g.internet_gateway_id().map(str::to_string))))
            },
        )
        .await?;
    id.context("CreateInternetGateway returned no id")
}

/// VPC ids the gateway is attached to.
async fn igw_attachments(cx: &Ctx<'_>, igw_id: &str) -> Result<Vec<String>> {
    let resp = cx
        .aws
        .ec2
        .describe_internet_gateways()
        .internet_gateway_ids(igw_id)
        .send()
        .await
        .op("DescribeInternetGateways")?;
    Ok(resp
        .internet_gateways()
        .iter()
        .flat_map(|g| g.attachments())
        .filter_map(|a| a.vpc_id().map(str::to_string))
        .collect())
}

pub async fn attach_internet_gateway(cx: &Ctx<'_>, igw_id: &str, vpc_id: &str) -> Result<()> {
    let res = cx
        .retry(format!("attaching {igw_id} to {vpc_id}"), "igw", Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .attach_internet_gateway()
                .internet_gateway_id(igw_id)
                .vpc_id(vpc_id)
                .send()
                .await
                .op("AttachInternetGateway")
        })
        .await;
    match res {
        Ok(_) => Ok(()),
        // The SDK's retry of an attach whose answer was lost: "Resource.AlreadyAssociated"
        // (EC2 API error codes: also returned when the gateway is already attached). Done if
        // it is attached to this VPC.
        Err(super::retry::RetryError::Fatal { source, .. })
            if source.code() == "Resource.AlreadyAssociated"
                && igw_attachments(cx, igw_id).await?.iter().any(|v| v == vpc_id) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The 0.0.0.0/0 target and the associated subnets of a route table, read now.
async fn route_table_state(cx: &Ctx<'_>, rtb_id: &str) -> Result<(Option<String>, Vec<String>)> {
    let resp = cx.aws.ec2.describe_route_tables().route_table_ids(rtb_id).send().await.op("DescribeRouteTables")?;
    let Some(t) = resp.route_tables().first() else { return Ok((None, Vec::new())) };
    let target = t
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .and_then(|r| r.gateway_id())
        .map(str::to_string);
    let subnets = t.associations().iter().filter_map(|a| a.subnet_id().map(str::to_string)).collect();
    Ok((target, subnets))
}

/// CreateRouteTable takes a ClientToken (EC2 API reference, CreateRouteTable, and
/// <https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html>; aws-sdk-ec2
/// 1.274's CreateRouteTableInput has `client_token` and fills a random one when none is given,
/// as it does for RunInstances; CreateVpcInput, CreateSubnetInput, CreateInternetGatewayInput,
/// CreateSecurityGroupInput and ImportKeyPairInput have none). The caller's `token`
/// (`plan::desired::resource_token`) is deterministic (environment + VPC), so a retry by the
/// SDK, by us, or by the next `up` after a crash is the same request: EC2 answers it with the
/// first result.
pub async fn create_route_table(cx: &Ctx<'_>, vpc_id: &str, token: &str) -> Result<String> {
    let resp = cx
        .retry(format!("creating route table in {vpc_id}"), "rtb", Phase::Create)
        .idempotent()
        .run(|| async {
            cx.aws
                .ec2
                .create_route_table()
                .vpc_id(vpc_id)
                .client_token(token)
                .tag_specifications(spec_tags(ResourceType::RouteTable, &cx.tags("rtb")))
                .send()
                .await
                .op("CreateRouteTable")
        })
        .await?;
    Ok(resp.route_table().and_then(|r| r.route_table_id()).context("CreateRouteTable returned no id")?.to_string())
}

/// Whether the route table `create_route_table` answered with exists. A repeated ClientToken
/// is answered with the first result even after that route table was deleted (see
/// `plan::desired::successor_token`), and such an answer looks like a fresh one. But a table
/// created a moment ago may also not be visible yet (EC2 is eventually consistent, "Eventual
/// consistency in the Amazon EC2 API"; the same NotFound CreateRoute and AssociateRouteTable
/// ride out), so "gone" is only concluded when it stays unseen until
/// `timeouts.aws_consistency`. One read when it is there (the usual case), beside the gateway's
/// create and attach, not on `up`'s critical path.
pub async fn route_table_exists(cx: &Ctx<'_>, rtb_id: &str) -> Result<bool> {
    let seen = poll_until(
        cx.timeouts.aws_consistency,
        std::time::Duration::from_secs(1),
        Check::AfterLook,
        async |_| {
            let resp = cx
                .aws
                .ec2
                .describe_route_tables()
                .filters(filter("route-table-id", rtb_id))
                .send()
                .await
                .op(format!("DescribeRouteTables {rtb_id}"));
            match resp {
                Ok(r) if r.route_tables().iter().any(|t| t.route_table_id() == Some(rtb_id)) => Ok(Look::Done(())),
                Ok(_) => Ok(Look::Waiting(())),
                Err(e) if e.code() == "InvalidRouteTableID.NotFound" || is_throttling_code(e.code()) => {
                    Ok(Look::Waiting(()))
                }
                Err(e) => Err(anyhow::Error::from(e)),
            }
        },
        |()| tracing::debug!("route table {rtb_id} not visible yet"),
    )
    .await?;
    Ok(seen.is_ok())
}

/// Points 0.0.0.0/0 at the gateway, replacing another target if there is one.
pub async fn set_default_route(cx: &Ctx<'_>, rtb_id: &str, igw_id: &str, replace: bool) -> Result<()> {
    let res = cx
        .retry(format!("routing 0.0.0.0/0 in {rtb_id} to {igw_id}"), "rtb", Phase::Create)
        .run(|| async {
            if replace {
                cx.aws
                    .ec2
                    .replace_route()
                    .route_table_id(rtb_id)
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id(igw_id)
                    .send()
                    .await
                    .op("ReplaceRoute")
                    .map(|_| ())
            } else {
                cx.aws
                    .ec2
                    .create_route()
                    .route_table_id(rtb_id)
                    .destination_cidr_block("0.0.0.0/0")
                    .gateway_id(igw_id)
                    .send()
                    .await
                    .op("CreateRoute")
                    .map(|_| ())
            }
        })
        .await;
    match res {
        Ok(()) => Ok(()),
        // The SDK's retry of a CreateRoute whose answer was lost meets RouteAlreadyExists:
        // done if the route is the one we asked for.
        Err(super::retry::RetryError::Fatal { source, .. })
            if source.code() == "RouteAlreadyExists"
                && route_table_state(cx, rtb_id).await?.0.as_deref() == Some(igw_id) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// AssociateRouteTable takes no token, and EC2 does not promise to refuse a repeat the way it
/// refuses a duplicate name (moto accepts it and makes a second association), so it is sent
/// like a create without a token: once, and after an ambiguous failure only if the subnet is
/// not associated yet.
pub async fn associate(cx: &Ctx<'_>, rtb_id: &str, subnet_id: &str) -> Result<()> {
    cx.retry(format!("associating {subnet_id} with {rtb_id}"), "rtb", Phase::Create)
        .create_once(
            &["Resource.AlreadyAssociated"],
            || async {
                cx.aws
                    .ec2
                    .associate_route_table()
                    .route_table_id(rtb_id)
                    .subnet_id(subnet_id)
                    .customize()
                    .config_override(no_sdk_retry_ec2())
                    .send()
                    .await
                    .op("AssociateRouteTable")
                    .map(|_| ())
            },
            || async {
                let associated = route_table_state(cx, rtb_id).await?.1.iter().any(|s| s == subnet_id);
                Ok(if associated { Found::Ours(()) } else { Found::Nothing })
            },
        )
        .await
}

pub async fn create_security_group(cx: &Ctx<'_>, vpc_id: &str) -> Result<String> {
    let name = cx.id.name_of("sg");
    // No idempotency token; the group name is unique per VPC (a repeat meets
    // InvalidGroup.Duplicate), so it is what to look for.
    let id = cx
        .retry(format!("creating security group {name} in {vpc_id}"), "sg", Phase::Create)
        .create_once(
            &["InvalidGroup.Duplicate"],
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .create_security_group()
                    .group_name(&name)
                    .description(format!(
                        "tagstack cluster {}: all traffic between nodes, SSH and API from admin CIDRs",
                        cx.id.cluster_name()
                    ))
                    .vpc_id(vpc_id)
                    .tag_specifications(spec_tags(ResourceType::SecurityGroup, &cx.tags("sg")))
                    .customize()
                    .config_override(no_sdk_retry_ec2())
                    .send()
                    .await
                    .op("CreateSecurityGroup")?;
                Ok(resp.group_id().map(str::to_string))
            },
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .describe_security_groups()
                    .filters(filter("vpc-id", vpc_id))
                    .filters(filter("group-name", &name))
                    .send()
                    .await
                    .op("DescribeSecurityGroups")?;
                Ok(match resp.security_groups().first() {
                    None => Found::Nothing,
                    Some(g) if made_as(cx, g.tags(), "sg") => Found::Ours(g.group_id().map(str::to_string)),
                    Some(g) => Found::Foreign(format!("security group {}", g.group_id().unwrap_or(&name))),
                })
            },
        )
        .await?;
    id.context("CreateSecurityGroup returned no id")
}

fn permission(group_id: &str, rule: &IngressRule) -> Option<IpPermission> {
    match rule {
        IngressRule::SelfAll => Some(
            IpPermission::builder()
                .ip_protocol("-1")
                .user_id_group_pairs(UserIdGroupPair::builder().group_id(group_id).description("cluster nodes").build())
                .build(),
        ),
        IngressRule::Tcp { port, cidr } => Some(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(i32::from(*port))
                .to_port(i32::from(*port))
                .ip_ranges(IpRange::builder().cidr_ip(cidr.to_string()).description("tagstack admin_cidrs").build())
                .build(),
        ),
        // Rules we did not write are reported as drift; we cannot rebuild them faithfully.
        IngressRule::Other(_) => None,
    }
}

pub async fn authorize(cx: &Ctx<'_>, sg_id: &str, rules: &[IngressRule]) -> Result<()> {
    let perms: Vec<IpPermission> = rules.iter().filter_map(|r| permission(sg_id, r)).collect();
    if perms.is_empty() {
        return Ok(());
    }
    let send = |perms: Vec<IpPermission>| async move {
        cx.retry(format!("authorizing ingress on {sg_id}"), "sg", Phase::Create)
            .run(|| async {
                cx.aws
                    .ec2
                    .authorize_security_group_ingress()
                    .group_id(sg_id)
                    .set_ip_permissions(Some(perms.clone()))
                    .send()
                    .await
                    .op("AuthorizeSecurityGroupIngress")
                    .map(|_| ())
            })
            .await
    };
    let duplicate = |e: &super::retry::RetryError| matches!(e, super::retry::RetryError::Fatal { source, .. } if source.code() == "InvalidPermission.Duplicate");
    match send(perms.clone()).await {
        Ok(()) => Ok(()),
        // A repeat of a call whose answer was lost (the SDK retries it): some or all rules are
        // there already. Authorize them one by one; a duplicate one is done.
        Err(e) if duplicate(&e) => {
            for p in perms {
                match send(vec![p]).await {
                    Err(e) if !duplicate(&e) => return Err(e.into()),
                    _ => {}
                }
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn revoke(cx: &Ctx<'_>, sg_id: &str, rules: &[IngressRule]) -> Result<()> {
    let perms: Vec<IpPermission> = rules.iter().filter_map(|r| permission(sg_id, r)).collect();
    if perms.is_empty() {
        if !rules.is_empty() {
            cx.reporter
                .note(&format!("{sg_id} has ingress rules tagstack did not write; remove them by hand if unwanted"));
        }
        return Ok(());
    }
    cx.aws
        .ec2
        .revoke_security_group_ingress()
        .group_id(sg_id)
        .set_ip_permissions(Some(perms))
        .send()
        .await
        .op(format!("RevokeSecurityGroupIngress {sg_id}"))?;
    Ok(())
}

/// `public_key`: the OpenSSH public key line (`ssh.public_key`'s content).
pub async fn import_key_pair(cx: &Ctx<'_>, public_key: &str) -> Result<String> {
    let mut tags = cx.tags("key");
    tags.push((TAG_KEY_SHA256.into(), public_key_sha256(public_key)));
    let name = cx.id.key_pair_name();
    let want = public_key_sha256(public_key);
    // No idempotency token; key names are unique per region (a repeat meets
    // InvalidKeyPair.Duplicate): look it up by name, adopt it if its tags say ours and this key.
    let id = cx
        .retry(format!("importing key pair {name}"), "key", Phase::Create)
        .create_once(
            &["InvalidKeyPair.Duplicate"],
            || async {
                let resp = cx
                    .aws
                    .ec2
                    .import_key_pair()
                    .key_name(&name)
                    .public_key_material(Blob::new(public_key.as_bytes()))
                    .tag_specifications(spec_tags(ResourceType::KeyPair, &tags))
                    .customize()
                    .config_override(no_sdk_retry_ec2())
                    .send()
                    .await
                    .op(format!("ImportKeyPair {name}"))?;
                Ok(resp.key_pair_id().unwrap_or_default().to_string())
            },
            || async {
                let resp = cx.aws.ec2.describe_key_pairs().key_names(&name).send().await.op("DescribeKeyPairs");
                let resp = match resp {
                    Err(e) if e.code() == "InvalidKeyPair.NotFound" => return Ok(Found::Nothing),
                    other => other?,
                };
                Ok(match resp.key_pairs().first() {
                    None => Found::Nothing,
                    Some(k)
                        if made_as(cx, k.tags(), "key")
                            && tag_value(k.tags(), TAG_KEY_SHA256) == Some(want.as_str()) =>
                    {
                        Found::Ours(k.key_pair_id().unwrap_or_default().to_string())
                    }
                    Some(_) => Found::Foreign(format!("key pair {name}")),
                })
            },
        )
        .await?;
    Ok(id)
}

/// By name: every EC2 implementation accepts it (moto ignores KeyPairId on delete).
pub async fn delete_key_pair(cx: &Ctx<'_>, key: &str, name: &str) -> Result<&'static str> {
    cx.delete(format!("deleting key pair {name}"), key, || async {
        cx.aws.ec2.delete_key_pair().key_name(name).send().await.op("DeleteKeyPair").map(|_| ())
    })
    .await
}

pub async fn delete_security_group(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    cx.delete(format!("deleting security group {id}"), key, || async {
        cx.aws.ec2.delete_security_group().group_id(id).send().await.op("DeleteSecurityGroup").map(|_| ())
    })
    .await
}

/// Disassociates, then deletes (the heal path of `up`; `down` runs the two as separate stages).
pub async fn delete_route_table(
    cx: &Ctx<'_>,
    key: &str,
    id: &str,
    associations: &[(String, String)],
) -> Result<&'static str> {
    let ids: Vec<String> = associations.iter().map(|(assoc, _)| assoc.clone()).collect();
    disassociate_route_table(cx, key, id, &ids).await?;
    delete_unassociated_route_table(cx, key, id).await
}

/// Removes every subnet association of a route table, all at once.
pub async fn disassociate_route_table(
    cx: &Ctx<'_>,
    key: &str,
    id: &str,
    associations: &[String],
) -> Result<&'static str> {
    let each = associations.iter().map(|assoc| {
        cx.delete(format!("disassociating {assoc} from {id}"), key, move || async move {
            cx.aws
                .ec2
                .disassociate_route_table()
                .association_id(assoc)
                .send()
                .await
                .op("DisassociateRouteTable")
                .map(|_| ())
        })
    });
    all(each).await?;
    Ok("disassociated")
}

pub async fn delete_unassociated_route_table(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    cx.delete(format!("deleting route table {id}"), key, || async {
        cx.aws.ec2.delete_route_table().route_table_id(id).send().await.op("DeleteRouteTable").map(|_| ())
    })
    .await
}

/// Detaches, then deletes (the heal path of `up`; `down` runs the two as separate stages).
pub async fn delete_internet_gateway(cx: &Ctx<'_>, key: &str, id: &str, vpcs: &[String]) -> Result<&'static str> {
    detach_internet_gateway(cx, key, id, vpcs).await?;
    delete_detached_internet_gateway(cx, key, id).await
}

pub async fn detach_internet_gateway(cx: &Ctx<'_>, key: &str, id: &str, vpcs: &[String]) -> Result<&'static str> {
    // Detaching fails with DependencyViolation while instances still hold public IPs.
    let each = vpcs.iter().map(|vpc| {
        cx.delete(format!("detaching {id} from {vpc}"), key, move || async move {
            cx.aws
                .ec2
                .detach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc)
                .send()
                .await
                .op("DetachInternetGateway")
                .map(|_| ())
        })
    });
    all(each).await?;
    Ok("detached")
}

pub async fn delete_detached_internet_gateway(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    cx.delete(format!("deleting internet gateway {id}"), key, || async {
        cx.aws
            .ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .op("DeleteInternetGateway")
            .map(|_| ())
    })
    .await
}

pub async fn delete_subnet(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    cx.delete(format!("deleting subnet {id}"), key, || async {
        cx.aws.ec2.delete_subnet().subnet_id(id).send().await.op("DeleteSubnet").map(|_| ())
    })
    .await
}

pub async fn delete_vpc(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    cx.delete(format!("deleting VPC {id}"), key, || async {
        cx.aws.ec2.delete_vpc().vpc_id(id).send().await.op("DeleteVpc").map(|_| ())
    })
    .await
}

/// What is in a VPC that keeps AWS from deleting it, read after a DependencyViolation to say
/// so: its subnets, network interfaces, security groups other than the default, route tables
/// other than the main one, attached internet gateways (EC2 API reference, DeleteVpc,
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DeleteVpc.html>: "you
/// must detach or delete all gateways and resources that are associated with the VPC"). Read
/// at once, and only after the refusal; a failed read is named, not hidden.
pub async fn vpc_contents(cx: &Ctx<'_>, vpc_id: &str) -> Vec<String> {
    let ec2 = &cx.aws.ec2;
    let by_vpc = || vec![filter("vpc-id", vpc_id)];
    let (subnets, enis, groups, tables, gateways) = tokio::join!(
        ec2.describe_subnets().set_filters(Some(by_vpc())).send(),
        ec2.describe_network_interfaces().set_filters(Some(by_vpc())).send(),
        ec2.describe_security_groups().set_filters(Some(by_vpc())).send(),
        ec2.describe_route_tables().set_filters(Some(by_vpc())).send(),
        ec2.describe_internet_gateways().filters(filter("attachment.vpc-id", vpc_id)).send(),
    );
    let mut out = Vec::new();
    let mut add = |what: &str, read: Result<Vec<String>, String>| match read {
        Ok(found) => out.extend(found),
        Err(e) => out.push(format!("({what} could not be read: {e})")),
    };
    add(
        "subnets",
        subnets.op("DescribeSubnets").map_err(|e| e.to_string()).map(|r| {
            r.subnets()
                .iter()
                .map(|s| format!("subnet {} ({})", s.subnet_id().unwrap_or("?"), s.cidr_block().unwrap_or("?")))
                .collect()
        }),
    );
    add(
        "network interfaces",
        enis.op("DescribeNetworkInterfaces")
            .map_err(|e| e.to_string())
            .map(|r| r.network_interfaces().iter().map(network_interface).collect()),
    );
    add(
        "security groups",
        groups.op("DescribeSecurityGroups").map_err(|e| e.to_string()).map(|r| {
            r.security_groups()
                .iter()
                .filter(|g| g.group_name() != Some("default"))
                .map(|g| format!("security group {} ({})", g.group_id().unwrap_or("?"), g.group_name().unwrap_or("?")))
                .collect()
        }),
    );
    add(
        "route tables",
        tables.op("DescribeRouteTables").map_err(|e| e.to_string()).map(|r| {
            r.route_tables()
                .iter()
                .filter(|t| !t.associations().iter().any(|a| a.main().unwrap_or(false)))
                .map(|t| format!("route table {}", t.route_table_id().unwrap_or("?")))
                .collect()
        }),
    );
    add(
        "internet gateways",
        gateways.op("DescribeInternetGateways").map_err(|e| e.to_string()).map(|r| {
            r.internet_gateways()
                .iter()
                .map(|g| format!("internet gateway {} (attached)", g.internet_gateway_id().unwrap_or("?")))
                .collect()
        }),
    );
    out
}

/// The network interfaces using a security group, read after a DependencyViolation on its
/// delete to say what holds it (a failed read is named).
pub async fn group_users(cx: &Ctx<'_>, group_id: &str) -> Vec<String> {
    let read = cx
        .aws
        .ec2
        .describe_network_interfaces()
        .filters(filter("group-id", group_id))
        .send()
        .await
        .op("DescribeNetworkInterfaces");
    match read {
        Ok(r) => r.network_interfaces().iter().map(network_interface).collect(),
        Err(e) => vec![format!("(network interfaces could not be read: {e})")],
    }
}

/// "network interface eni-… (its description, else its type)".
fn network_interface(n: &aws_sdk_ec2::types::NetworkInterface) -> String {
    let what = n
        .description()
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .or_else(|| n.interface_type().map(|t| t.as_str().to_string()))
        .unwrap_or_else(|| "no description".into());
    format!("network interface {} ({what})", n.network_interface_id().unwrap_or("?"))
}

/// Re-tags every owned resource with a new expiry: EC2 resources in one CreateTags call per
/// 100 ids, IAM roles and instance profiles one by one.
pub async fn set_expiry(cx: &Ctx<'_>, observed: &crate::plan::Observed, expires_at: &str) -> Result<()> {
    use crate::config::TAG_EXPIRES_AT;
    let o = observed;
    let ids: Vec<String> = o
        .vpcs
        .iter()
        .map(|v| v.id.clone())
        .chain(o.subnets.iter().map(|s| s.id.clone()))
        .chain(o.internet_gateways.iter().map(|g| g.id.clone()))
        .chain(o.route_tables.iter().map(|r| r.id.clone()))
        .chain(o.security_groups.iter().map(|g| g.id.clone()))
        .chain(o.key_pairs.iter().map(|k| k.id.clone()))
        .chain(o.instances.iter().map(|i| i.id.clone()))
        .collect();
    let tag = aws_sdk_ec2::types::Tag::builder().key(TAG_EXPIRES_AT).value(expires_at).build();
    for chunk in ids.chunks(100) {
        cx.retry(
            format!("tagging {} resources with {TAG_EXPIRES_AT}={expires_at}", chunk.len()),
            "expiry",
            Phase::Create,
        )
        .run(|| async {
            cx.aws.ec2.create_tags().set_resources(Some(chunk.to_vec())).tags(tag.clone()).send().await.op("CreateTags")
        })
        .await?;
    }
    let iam_tag = aws_sdk_iam::types::Tag::builder().key(TAG_EXPIRES_AT).value(expires_at).build()?;
    for r in &o.roles {
        cx.aws
            .iam
            .tag_role()
            .role_name(&r.name)
            .tags(iam_tag.clone())
            .send()
            .await
            .op(format!("TagRole {}", r.name))?;
    }
    for p in &o.instance_profiles {
        cx.aws
            .iam
            .tag_instance_profile()
            .instance_profile_name(&p.name)
            .tags(iam_tag.clone())
            .send()
            .await
            .op(format!("TagInstanceProfile {}", p.name))?;
    }
    if o.backup.ours().is_some() {
        super::s3::set_bucket_expiry(cx, &o.backup.name, expires_at).await?;
    }
    Ok(())
}
