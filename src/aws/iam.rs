//! IAM roles, inline policies and instance profiles for the nodes. Names carry the
//! `tagstack-<project>-<env>-` prefix and tags carry ownership; deletes check neither again
//! (the caller only passes what discovery proved we own).

use std::future::Future;

use anyhow::Result;
use aws_sdk_iam::types::Tag;
use futures_util::future::join_all;

use super::client::no_sdk_retry_iam;
use super::error::{AwsError, AwsResultExt, Phase};
use super::retry::Found;
use super::tags::iam_owned;
use super::{Ctx, all};
use crate::plan::desired::TRUST_POLICY;

const PATH: &str = "/tagstack/";

fn iam_tags(cx: &Ctx<'_>, component: &str) -> Result<Vec<Tag>> {
    cx.tags(component).into_iter().map(|(k, v)| Ok(Tag::builder().key(k).value(v).build()?)).collect()
}

/// IAM creates take no idempotency token; names are unique (a repeat meets
/// EntityAlreadyExists, IAM API reference, CreateRole / CreateInstanceProfile errors). Sent
/// once; after an ambiguous failure or EntityAlreadyExists the entity of that name is looked
/// up (`tags_of`: its tags, `None` when the answer has no entity) and adopted if its tags say
/// it is this environment's; one of that name with other tags fails the create, naming `what`.
async fn create_named<C, CFut, T, TFut>(cx: &Ctx<'_>, what: &str, create: C, tags_of: T) -> Result<()>
where
    C: FnMut() -> CFut,
    CFut: Future<Output = Result<(), AwsError>>,
    T: Fn() -> TFut,
    TFut: Future<Output = Result<Option<Vec<Tag>>, AwsError>>,
{
    cx.retry(format!("creating {what}"), "iam", Phase::Create)
        .create_once(&["EntityAlreadyExists"], create, || async {
            match tags_of().await {
                Err(e) if e.code() == "NoSuchEntity" => Ok(Found::Nothing),
                Err(e) => Err(e.into()),
                Ok(Some(tags)) if iam_owned(cx.id, &tags) => Ok(Found::Ours(())),
                Ok(_) => Ok(Found::Foreign(what.to_string())),
            }
        })
        .await
}

/// See [`create_named`]; the role's tags are read with ListRoleTags.
pub async fn create_role(cx: &Ctx<'_>, name: &str) -> Result<()> {
    let tags = iam_tags(cx, "iam-role")?;
    let create = || async {
        cx.aws
            .iam
            .create_role()
            .role_name(name)
            .path(PATH)
            .assume_role_policy_document(TRUST_POLICY)
            .description(format!("tagstack nodes of {}", cx.id.cluster_name()))
            .set_tags(Some(tags.clone()))
            .customize()
            .config_override(no_sdk_retry_iam())
            .send()
            .await
            .op(format!("CreateRole {name}"))
            .map(|_| ())
    };
    let tags_of = || async {
        let got = cx.aws.iam.list_role_tags().role_name(name).send().await.op(format!("ListRoleTags {name}"))?;
        Ok(Some(got.tags().to_vec()))
    };
    create_named(cx, &format!("role {name}"), create, tags_of).await
}

pub async fn put_policy(cx: &Ctx<'_>, role: &str, policy: &str, document: &str) -> Result<()> {
    cx.retry(format!("putting policy {policy} on role {role}"), "iam", Phase::Create)
        .run(|| async {
            cx.aws
                .iam
                .put_role_policy()
                .role_name(role)
                .policy_name(policy)
                .policy_document(document)
                .send()
                .await
                .op("PutRolePolicy")
        })
        .await?;
    Ok(())
}

pub async fn delete_policy(cx: &Ctx<'_>, role: &str, policy: &str) -> Result<()> {
    cx.delete(format!("deleting policy {policy} of role {role}"), "iam", || async {
        cx.aws
            .iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(policy)
            .send()
            .await
            .op("DeleteRolePolicy")
            .map(|_| ())
    })
    .await?;
    Ok(())
}

/// See [`create_named`]; the profile's tags are read with GetInstanceProfile.
pub async fn create_profile(cx: &Ctx<'_>, name: &str) -> Result<()> {
    let tags = iam_tags(cx, "instance-profile")?;
    let create = || async {
        cx.aws
            .iam
            .create_instance_profile()
            .instance_profile_name(name)
            .path(PATH)
            .set_tags(Some(tags.clone()))
            .customize()
            .config_override(no_sdk_retry_iam())
            .send()
            .await
            .op(format!("CreateInstanceProfile {name}"))
            .map(|_| ())
    };
    let tags_of = || async {
        let got = cx
            .aws
            .iam
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .op(format!("GetInstanceProfile {name}"))?;
        Ok(got.instance_profile().map(|p| p.tags().to_vec()))
    };
    create_named(cx, &format!("instance profile {name}"), create, tags_of).await
}

/// Role names in the instance profile, read now.
async fn profile_roles(cx: &Ctx<'_>, profile: &str) -> Result<Vec<String>> {
    let got = cx
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(profile)
        .send()
        .await
        .op(format!("GetInstanceProfile {profile}"))?;
    Ok(got
        .instance_profile()
        .map(|p| p.roles().iter().map(|r| r.role_name().to_string()).collect())
        .unwrap_or_default())
}

pub async fn add_role_to_profile(cx: &Ctx<'_>, profile: &str, role: &str) -> Result<()> {
    // A role created a moment ago may answer NoSuchEntity here: retried as consistency.
    let res = cx
        .retry(format!("adding role {role} to instance profile {profile}"), "iam", Phase::Create)
        .run(|| async {
            cx.aws
                .iam
                .add_role_to_instance_profile()
                .instance_profile_name(profile)
                .role_name(role)
                .send()
                .await
                .op("AddRoleToInstanceProfile")
        })
        .await;
    match res {
        Ok(_) => Ok(()),
        // A profile holds one role (IAM quotas); the repeat of an add whose answer was lost
        // meets LimitExceeded. Done if the role in the profile is this one.
        Err(super::retry::RetryError::Fatal { source, .. })
            if source.code() == "LimitExceeded" && profile_roles(cx, profile).await?.iter().any(|r| r == role) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn remove_role_from_profile(cx: &Ctx<'_>, profile: &str, role: &str) -> Result<()> {
    cx.delete(format!("removing role {role} from instance profile {profile}"), "iam", || async {
        cx.aws
            .iam
            .remove_role_from_instance_profile()
            .instance_profile_name(profile)
            .role_name(role)
            .send()
            .await
            .op("RemoveRoleFromInstanceProfile")
            .map(|_| ())
    })
    .await?;
    Ok(())
}

/// Empties and deletes a profile whose roles are not known yet (the extras `up` removes).
pub async fn delete_profile(cx: &Ctx<'_>, name: &str) -> Result<&'static str> {
    let roles = match cx
        .aws
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .op(format!("GetInstanceProfile {name}"))
    {
        Err(e) if e.code() == "NoSuchEntity" => return Ok("already gone"),
        Err(e) => return Err(e.into()),
        Ok(p) => p
            .instance_profile()
            .map(|p| p.roles().iter().map(|r| r.role_name().to_string()).collect::<Vec<_>>())
            .unwrap_or_default(),
    };
    empty_profile(cx, name, &roles).await?;
    delete_empty_profile(cx, name).await
}

/// Removes the given roles from a profile, all at once.
pub async fn empty_profile(cx: &Ctx<'_>, name: &str, roles: &[String]) -> Result<&'static str> {
    all(roles.iter().map(|role| remove_role_from_profile(cx, name, role))).await?;
    Ok("emptied")
}

pub async fn delete_empty_profile(cx: &Ctx<'_>, name: &str) -> Result<&'static str> {
    cx.delete(format!("deleting instance profile {name}"), "iam", || async {
        cx.aws
            .iam
            .delete_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .op("DeleteInstanceProfile")
            .map(|_| ())
    })
    .await
}

/// Deletes a role with everything that blocks it: inline policies, attached managed policies
/// and membership in instance profiles.
pub async fn delete_role(cx: &Ctx<'_>, name: &str) -> Result<&'static str> {
    if strip_role(cx, name).await? == GONE {
        return Ok(GONE);
    }
    delete_stripped_role(cx, name).await
}

const GONE: &str = "already gone";

/// Removes what blocks deleting a role (inline policies, attached managed policies, membership
/// in instance profiles): the three lists at once, then every removal at once.
pub async fn strip_role(cx: &Ctx<'_>, name: &str) -> Result<&'static str> {
    let iam = &cx.aws.iam;
    let (inline, attached, profiles) = tokio::join!(
        async { iam.list_role_policies().role_name(name).send().await.op(format!("ListRolePolicies {name}")) },
        async {
            iam.list_attached_role_policies()
                .role_name(name)
                .send()
                .await
                .op(format!("ListAttachedRolePolicies {name}"))
        },
        async {
            iam.list_instance_profiles_for_role()
                .role_name(name)
                .send()
                .await
                .op(format!("ListInstanceProfilesForRole {name}"))
        },
    );
    let inline = match inline {
        Err(e) if e.code() == "NoSuchEntity" => return Ok(GONE),
        other => other?,
    };
    let (attached, profiles) = (attached?, profiles?);
    let policies = inline.policy_names().iter().map(|p| delete_policy(cx, name, p));
    let detach = attached.attached_policies().iter().filter_map(|p| p.policy_arn()).map(|arn| async move {
        iam.detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .op(format!("DetachRolePolicy {name}"))
            .map(|_| ())
            .map_err(anyhow::Error::from)
    });
    let unlink =
        profiles.instance_profiles().iter().map(|p| remove_role_from_profile(cx, p.instance_profile_name(), name));
    let (a, b, c) = tokio::join!(join_all(policies), join_all(detach), join_all(unlink));
    for r in a.into_iter().chain(b).chain(c) {
        r?;
    }
    Ok("stripped")
}

pub async fn delete_stripped_role(cx: &Ctx<'_>, name: &str) -> Result<&'static str> {
    cx.delete(format!("deleting role {name}"), "iam", || async {
        cx.aws.iam.delete_role().role_name(name).send().await.op("DeleteRole").map(|_| ())
    })
    .await
}
