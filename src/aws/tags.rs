//! Tag plumbing: ownership filters for Describe calls, the exact-match ownership check, and
//! TagSpecifications for create calls (tags are never added after the fact).

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::config::{Spec, TAG_ENV, TAG_PROJECT};

/// Server-side filter on project and environment.
pub fn owner_filters(spec: &Spec) -> Vec<Filter> {
    vec![
        Filter::builder().name(format!("tag:{TAG_PROJECT}")).values(&spec.project).build(),
        Filter::builder().name(format!("tag:{TAG_ENV}")).values(&spec.environment).build(),
    ]
}

/// Client-side check too: a filter is a query, ownership is a rule.
pub fn owned(spec: &Spec, tags: &[Tag]) -> bool {
    let get = |k: &str| tags.iter().find(|t| t.key() == Some(k)).and_then(Tag::value);
    get(TAG_PROJECT) == Some(spec.project.as_str()) && get(TAG_ENV) == Some(spec.environment.as_str())
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

pub fn iam_owned(spec: &Spec, tags: &[aws_sdk_iam::types::Tag]) -> bool {
    let get = |k: &str| tags.iter().find(|t| t.key() == k).map(|t| t.value());
    get(TAG_PROJECT) == Some(spec.project.as_str()) && get(TAG_ENV) == Some(spec.environment.as_str())
}
