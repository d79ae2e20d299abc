//! Tag plumbing: ownership filters for Describe calls, the exact-match ownership check (both
//! from [`EnvId::ownership`]), and TagSpecifications for create calls (tags are never added
//! after the fact).

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::config::{EnvId, TAG_EXPIRES_AT};

/// Server-side filter on project and environment.
pub fn owner_filters(id: &EnvId) -> Vec<Filter> {
    id.ownership().iter().map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(*v).build()).collect()
}

/// Client-side check too: a filter is a query, ownership is a rule.
pub fn owned(id: &EnvId, tags: &[Tag]) -> bool {
    id.owns(|k| tag_value(tags, k))
}

pub fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(Tag::value)
}

/// The tags a resource of `component` is created with: the environment's ([`EnvId::tags`])
/// plus this run's expiry, when it has one.
pub fn create_tags(id: &EnvId, expires_at: Option<&str>, component: &str) -> Vec<(String, String)> {
    let mut tags = id.tags(component);
    tags.extend(expires_at.map(|e| (TAG_EXPIRES_AT.to_string(), e.to_string())));
    tags
}

pub fn spec_tags(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

pub fn iam_owned(id: &EnvId, tags: &[aws_sdk_iam::types::Tag]) -> bool {
    id.owns(|k| tags.iter().find(|t| t.key() == k).map(|t| t.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag::builder().key(k).value(v).build()
    }

    #[test]
    fn create_tags_add_the_run_expiry_to_the_environment_tags() {
        let id = EnvId::new("demo", "dev");
        assert_eq!(create_tags(&id, None, "vpc"), id.tags("vpc"));
        let with = create_tags(&id, Some("2026-11-22T12:00:00Z"), "vpc");
        assert_eq!(with[..with.len() - 1], id.tags("vpc")[..]);
        assert_eq!(with.last(), Some(&("tagstack:expires-at".to_string(), "2026-11-22T12:00:00Z".to_string())));
    }

    #[test]
    fn filters_and_ownership_come_from_the_identity() {
        let id = EnvId::new("demo", "dev");
        let filters = owner_filters(&id);
        let pairs: Vec<(Option<&str>, &[String])> = filters.iter().map(|f| (f.name(), f.values())).collect();
        assert_eq!(
            pairs,
            [
                (Some("tag:tagstack:project"), &["demo".to_string()][..]),
                (Some("tag:tagstack:env"), &["dev".to_string()][..])
            ]
        );
        assert!(owned(&id, &[tag("tagstack:env", "dev"), tag("tagstack:project", "demo"), tag("Name", "x")]));
        assert!(!owned(&id, &[tag("tagstack:project", "demo"), tag("tagstack:env", "dev-2")]));
        assert!(!owned(&id, &[tag("tagstack:project", "demo")]));
        let iam = |k: &str, v: &str| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().expect("key and value");
        assert!(iam_owned(&id, &[iam("tagstack:project", "demo"), iam("tagstack:env", "dev")]));
        assert!(!iam_owned(&id, &[iam("tagstack:project", "demo"), iam("tagstack:env", "prod")]));
    }
}
