//! VPC, subnets, internet gateway, route table, security group and key pair: create (tagged in
//! the create call), fix drift, delete. Every call that may race AWS's eventual consistency
//! goes through [`Ctx::retry`].

use anyhow::{Context, Result};
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{AttributeBooleanValue, IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::Ctx;
use super::error::{AwsResultExt, Phase};
use super::tags::spec_tags;
use crate::config::{SubnetSpec, TAG_KEY_SHA256};
use crate::plan::desired::public_key_sha256;
use crate::plan::observed::IngressRule;

fn yes() -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(true).build()
}

pub async fn create_vpc(cx: &Ctx<'_>) -> Result<String> {
    let spec = cx.spec;
    let resp = cx
        .aws
        .ec2
        .create_vpc()
        .cidr_block(spec.network.vpc_cidr.to_string())
        .tag_specifications(spec_tags(ResourceType::Vpc, &spec.tags("vpc")))
        .send()
        .await
        .op("CreateVpc")?;
    let id = resp.vpc().and_then(|v| v.vpc_id()).context("CreateVpc returned no VPC id")?.to_string();
    enable_dns_hostnames(cx, &id).await?;
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
    let mut tags = cx.spec.tags("subnet");
    // The AWS cloud provider puts internet-facing load balancers in subnets with this tag.
    tags.push(("kubernetes.io/role/elb".into(), "1".into()));
    let id = cx
        .retry(format!("creating subnet {} in {vpc_id}", want.cidr), key, Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .create_subnet()
                .vpc_id(vpc_id)
                .cidr_block(want.cidr.to_string())
                .availability_zone(&want.availability_zone)
                .tag_specifications(spec_tags(ResourceType::Subnet, &tags))
                .send()
                .await
                .op("CreateSubnet")
        })
        .await?
        .subnet()
        .and_then(|s| s.subnet_id())
        .context("CreateSubnet returned no subnet id")?
        .to_string();
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

pub async fn create_internet_gateway(cx: &Ctx<'_>) -> Result<String> {
    let resp = cx
        .aws
        .ec2
        .create_internet_gateway()
        .tag_specifications(spec_tags(ResourceType::InternetGateway, &cx.spec.tags("igw")))
        .send()
        .await
        .op("CreateInternetGateway")?;
    Ok(resp
        .internet_gateway()
        .and_then(|g| g.internet_gateway_id())
        .context("CreateInternetGateway returned no id")?
        .to_string())
}

pub async fn attach_internet_gateway(cx: &Ctx<'_>, igw_id: &str, vpc_id: &str) -> Result<()> {
    cx.retry(format!("attaching {igw_id} to {vpc_id}"), "igw", Phase::Create)
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
        .await?;
    Ok(())
}

pub async fn create_route_table(cx: &Ctx<'_>, vpc_id: &str) -> Result<String> {
    let resp = cx
        .retry(format!("creating route table in {vpc_id}"), "rtb", Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .create_route_table()
                .vpc_id(vpc_id)
                .tag_specifications(spec_tags(ResourceType::RouteTable, &cx.spec.tags("rtb")))
                .send()
                .await
                .op("CreateRouteTable")
        })
        .await?;
    Ok(resp.route_table().and_then(|r| r.route_table_id()).context("CreateRouteTable returned no id")?.to_string())
}

/// Points 0.0.0.0/0 at the gateway, replacing another target if there is one.
pub async fn set_default_route(cx: &Ctx<'_>, rtb_id: &str, igw_id: &str, replace: bool) -> Result<()> {
    cx.retry(format!("routing 0.0.0.0/0 in {rtb_id} to {igw_id}"), "rtb", Phase::Create)
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
        .await?;
    Ok(())
}

pub async fn associate(cx: &Ctx<'_>, rtb_id: &str, subnet_id: &str) -> Result<()> {
    cx.retry(format!("associating {subnet_id} with {rtb_id}"), "rtb", Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .associate_route_table()
                .route_table_id(rtb_id)
                .subnet_id(subnet_id)
                .send()
                .await
                .op("AssociateRouteTable")
        })
        .await?;
    Ok(())
}

pub async fn create_security_group(cx: &Ctx<'_>, vpc_id: &str) -> Result<String> {
    let name = cx.spec.name_of("sg");
    let resp = cx
        .retry(format!("creating security group {name} in {vpc_id}"), "sg", Phase::Create)
        .run(|| async {
            cx.aws
                .ec2
                .create_security_group()
                .group_name(&name)
                .description(format!(
                    "tagstack cluster {}: all traffic between nodes, SSH and API from admin CIDRs",
                    cx.spec.cluster_name()
                ))
                .vpc_id(vpc_id)
                .tag_specifications(spec_tags(ResourceType::SecurityGroup, &cx.spec.tags("sg")))
                .send()
                .await
                .op("CreateSecurityGroup")
        })
        .await?;
    Ok(resp.group_id().context("CreateSecurityGroup returned no id")?.to_string())
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
        })
        .await?;
    Ok(())
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

pub async fn import_key_pair(cx: &Ctx<'_>) -> Result<String> {
    let spec = cx.spec;
    let mut tags = spec.tags("key");
    tags.push((TAG_KEY_SHA256.into(), public_key_sha256(&spec.ssh.public_key)));
    let resp = cx
        .aws
        .ec2
        .import_key_pair()
        .key_name(spec.key_pair_name())
        .public_key_material(Blob::new(spec.ssh.public_key.as_bytes()))
        .tag_specifications(spec_tags(ResourceType::KeyPair, &tags))
        .send()
        .await
        .op(format!("ImportKeyPair {}", spec.key_pair_name()))?;
    Ok(resp.key_pair_id().unwrap_or_default().to_string())
}

/// By name: every EC2 implementation accepts it (moto ignores KeyPairId on delete).
pub async fn delete_key_pair(cx: &Ctx<'_>, key: &str, name: &str) -> Result<&'static str> {
    let d = cx
        .retry(format!("deleting key pair {name}"), key, Phase::Delete)
        .delete(|| async { cx.aws.ec2.delete_key_pair().key_name(name).send().await.op("DeleteKeyPair").map(|_| ()) })
        .await?;
    Ok(d.as_str())
}

pub async fn delete_security_group(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    let d = cx
        .retry(format!("deleting security group {id}"), key, Phase::Delete)
        .delete(|| async {
            cx.aws.ec2.delete_security_group().group_id(id).send().await.op("DeleteSecurityGroup").map(|_| ())
        })
        .await?;
    Ok(d.as_str())
}

pub async fn delete_route_table(
    cx: &Ctx<'_>,
    key: &str,
    id: &str,
    associations: &[(String, String)],
) -> Result<&'static str> {
    for (assoc, _) in associations {
        cx.retry(format!("disassociating {assoc} from {id}"), key, Phase::Delete)
            .delete(|| async {
                cx.aws
                    .ec2
                    .disassociate_route_table()
                    .association_id(assoc)
                    .send()
                    .await
                    .op("DisassociateRouteTable")
                    .map(|_| ())
            })
            .await?;
    }
    let d = cx
        .retry(format!("deleting route table {id}"), key, Phase::Delete)
        .delete(|| async {
            cx.aws.ec2.delete_route_table().route_table_id(id).send().await.op("DeleteRouteTable").map(|_| ())
        })
        .await?;
    Ok(d.as_str())
}

pub async fn delete_internet_gateway(cx: &Ctx<'_>, key: &str, id: &str, vpcs: &[String]) -> Result<&'static str> {
    for vpc in vpcs {
        // Detaching fails with DependencyViolation while instances still hold public IPs.
        cx.retry(format!("detaching {id} from {vpc}"), key, Phase::Delete)
            .delete(|| async {
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
            .await?;
    }
    let d = cx
        .retry(format!("deleting internet gateway {id}"), key, Phase::Delete)
        .delete(|| async {
            cx.aws
                .ec2
                .delete_internet_gateway()
                .internet_gateway_id(id)
                .send()
                .await
                .op("DeleteInternetGateway")
                .map(|_| ())
        })
        .await?;
    Ok(d.as_str())
}

pub async fn delete_subnet(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    let d = cx
        .retry(format!("deleting subnet {id}"), key, Phase::Delete)
        .delete(|| async { cx.aws.ec2.delete_subnet().subnet_id(id).send().await.op("DeleteSubnet").map(|_| ()) })
        .await?;
    Ok(d.as_str())
}

pub async fn delete_vpc(cx: &Ctx<'_>, key: &str, id: &str) -> Result<&'static str> {
    let d = cx
        .retry(format!("deleting VPC {id}"), key, Phase::Delete)
        .delete(|| async { cx.aws.ec2.delete_vpc().vpc_id(id).send().await.op("DeleteVpc").map(|_| ()) })
        .await?;
    Ok(d.as_str())
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
    Ok(())
}
