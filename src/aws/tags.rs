//! Tag plumbing: ownership filters for Describe calls, the exact-match ownership check (both
//! from [`EnvId::ownership`]), and TagSpecifications for create calls (tags are never added
//! after the fact).

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::config::EnvId;

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

pub fn spec_tags(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

pub fn iam_owned(id: &EnvId, tags: &[aws_sdk_iam::types::Tag]) -> bool {
    id.owns(|k| tags.iter().find(|t| t.key() == k).map(|t| t.value()))
}
