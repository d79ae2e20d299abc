//! Look-alike resources that tagstack must never touch: an untagged VPC, a VPC tagged for a
//! sibling environment with this environment's Name, a security group with this environment's
//! name and only the project tag, and an IAM role with the environment's name prefix but
//! another environment's tags. Made with the SDK client of the harness, straight to moto.

use aws_sdk_ec2::types::ResourceType;

use super::{TestEnv, tag_spec};

pub struct Decoys {
    /// The untagged VPC and the sibling environment's.
    pub vpcs: Vec<String>,
    pub sg: String,
    pub role: String,
}

impl Decoys {
    pub fn make(env: &TestEnv) -> Decoys {
        let ec2 = env.ec2();
        let iam = env.iam();
        let p = env.project.clone();
        let sibling = format!("{}i", env.environment);
        env.block(async {
            let untagged = ec2.create_vpc().cidr_block("10.61.0.0/16").send().await.unwrap();
            let other = ec2
                .create_vpc()
                .cidr_block("10.61.0.0/16")
                .tag_specifications(tag_spec(
                    &[
                        ("tagstack:project", &p),
                        ("tagstack:env", &sibling),
                        ("tagstack:component", "vpc"),
                        ("Name", &format!("{p}-{}-vpc", env.environment)),
                    ],
                    ResourceType::Vpc,
                ))
                .send()
                .await
                .unwrap();
            let other_id = other.vpc().unwrap().vpc_id().unwrap().to_string();
            let sg = ec2
                .create_security_group()
                .group_name(format!("{p}-{}-sg", env.environment))
                .description("decoy")
                .vpc_id(&other_id)
                .tag_specifications(tag_spec(
                    &[("tagstack:project", &p), ("tagstack:component", "sg")],
                    ResourceType::SecurityGroup,
                ))
                .send()
                .await
                .unwrap();
            let role = format!("tagstack-{p}-{}-decoy", env.environment);
            foreign_role(&iam, &p, &role).await;
            Decoys {
                vpcs: vec![untagged.vpc().unwrap().vpc_id().unwrap().to_string(), other_id],
                sg: sg.group_id().unwrap().to_string(),
                role,
            }
        })
    }

    /// Every decoy is still there; then they are removed so the shared emulator stays small.
    pub fn check_and_remove(&self, env: &TestEnv) -> Result<(), String> {
        let ec2 = env.ec2();
        let iam = env.iam();
        env.block(async {
            let vpcs =
                ec2.describe_vpcs().set_vpc_ids(Some(self.vpcs.clone())).send().await.map_err(|e| format!("{e:?}"))?;
            if vpcs.vpcs().len() != 2 {
                return Err(format!("a decoy VPC was deleted: {:?} left of {:?}", vpcs.vpcs(), self.vpcs));
            }
            let sgs = ec2.describe_security_groups().group_ids(&self.sg).send().await.map_err(|e| format!("{e:?}"))?;
            if sgs.security_groups().len() != 1 {
                return Err("the decoy security group was deleted".into());
            }
            iam.get_role()
                .role_name(&self.role)
                .send()
                .await
                .map_err(|e| format!("the decoy role was deleted: {e:?}"))?;
            iam.delete_role().role_name(&self.role).send().await.unwrap();
            ec2.delete_security_group().group_id(&self.sg).send().await.unwrap();
            for v in &self.vpcs {
                ec2.delete_vpc().vpc_id(v).send().await.unwrap();
            }
            Ok(())
        })
    }
}

/// A role named `name` with the project's tag but another environment's: tagstack's names,
/// not its ownership.
pub async fn foreign_role(iam: &aws_sdk_iam::Client, project: &str, name: &str) {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .tags(aws_sdk_iam::types::Tag::builder().key("tagstack:project").value(project).build().unwrap())
        .tags(aws_sdk_iam::types::Tag::builder().key("tagstack:env").value("other").build().unwrap())
        .send()
        .await
        .unwrap();
}

/// Buckets tagstack must never touch: one of a sibling environment (its own name and tags) and
/// one of a look-alike name with this environment's tags but no component (made by hand). Each
/// holds one object, so "untouched" can be checked.
pub struct DecoyBuckets {
    pub names: Vec<String>,
}

pub const DECOY_OBJECT: &str = "keep/me.db";

impl DecoyBuckets {
    pub fn make(env: &TestEnv) -> DecoyBuckets {
        let s3 = env.s3();
        let p = env.project.clone();
        let sibling = format!("{}i", env.environment);
        let names =
            vec![format!("tagstack-{p}-{sibling}-{}", super::MOTO_ACCOUNT), format!("{}-copy", env.backup_bucket())];
        let tags = [vec![("tagstack:project", p), ("tagstack:env", sibling)], vec![]];
        env.block(async {
            for (name, tags) in names.iter().zip(tags) {
                s3.create_bucket()
                    .bucket(name)
                    .create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(super::REGION))
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap();
                if !tags.is_empty() {
                    let set = tags
                        .iter()
                        .map(|(k, v)| aws_sdk_s3::types::Tag::builder().key(*k).value(v).build().unwrap())
                        .collect();
                    let tagging = aws_sdk_s3::types::Tagging::builder().set_tag_set(Some(set)).build().unwrap();
                    s3.put_bucket_tagging().bucket(name).tagging(tagging).send().await.unwrap();
                }
                s3.put_object()
                    .bucket(name)
                    .key(DECOY_OBJECT)
                    .body(aws_sdk_s3::primitives::ByteStream::from_static(b"decoy"))
                    .send()
                    .await
                    .unwrap();
            }
        });
        DecoyBuckets { names }
    }

    /// Every decoy still exists with its object.
    pub fn assert_untouched(&self, env: &TestEnv) {
        let s3 = env.s3();
        env.block(async {
            for name in &self.names {
                let listed = s3.list_objects_v2().bucket(name).send().await.unwrap();
                let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
                assert_eq!(keys, [DECOY_OBJECT], "decoy bucket {name} was touched");
            }
        });
    }
}
