//! The hub's tags: ListTagsForResource, TagResource, UntagResource.

use std::collections::BTreeMap;

use aws_sdk_securityhub::Client as SecurityHub;
use tapguard_shared::{HandlerError, Invocation};

pub(crate) type Tags = BTreeMap<String, String>;

pub(crate) async fn list(sh: &SecurityHub, inv: &Invocation, hub_arn: &str) -> Result<Tags, HandlerError> {
    let answer = inv
        .aws(
            "securityhub",
            "ListTagsForResource",
            sh.list_tags_for_resource().resource_arn(hub_arn).send(),
        )
        .await?;
    Ok(answer
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

pub(crate) async fn tag(sh: &SecurityHub, inv: &Invocation, hub_arn: &str, tags: &Tags) -> Result<(), HandlerError> {
    if tags.is_empty() {
        return Ok(());
    }
    let request = sh
        .tag_resource()
        .resource_arn(hub_arn)
        .set_tags(Some(tags.clone().into_iter().collect()));
    inv.aws("securityhub", "TagResource", request.send()).await?;
    Ok(())
}

pub(crate) async fn untag(
    sh: &SecurityHub,
    inv: &Invocation,
    hub_arn: &str,
    keys: &[String],
) -> Result<(), HandlerError> {
    if keys.is_empty() {
        return Ok(());
    }
    let request = sh
        .untag_resource()
        .resource_arn(hub_arn)
        .set_tag_keys(Some(keys.to_vec()));
    inv.aws("securityhub", "UntagResource", request.send()).await?;
    Ok(())
}

/// What to call to bring the tags in `keys` back to `prior` (absent there: removed), for those that
/// still hold the value `set` (anything else is someone's later change). Returns (to tag, to untag).
pub(crate) fn restoring(current: &Tags, set: &Tags, prior: &Tags, keys: &[&String]) -> (Tags, Vec<String>) {
    let mut put = Tags::new();
    let mut remove = Vec::new();
    for key in keys {
        if current.get(*key) != set.get(*key) {
            continue;
        }
        match prior.get(*key) {
            Some(value) if current.get(*key) != Some(value) => {
                put.insert((*key).clone(), value.clone());
            }
            Some(_) => {}
            None => remove.push((*key).clone()),
        }
    }
    (put, remove)
}
