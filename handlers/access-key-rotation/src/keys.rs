//! IAM: a user's access keys and tags, and the calls that change them. Every call goes through
//! [`Aws::call`]; nothing here decides anything.

use std::future::Future;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput;
use aws_sdk_iam::operation::list_user_tags::ListUserTagsOutput;
use aws_sdk_iam::types::{AccessKey, AccessKeyMetadata, StatusType, Tag};
use tapguard_shared::HandlerError;
use tracing::info;

use crate::calls::Aws;

/// One access key as ListAccessKeys shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub id: String,
    pub active: bool,
    /// Epoch seconds.
    pub created: i64,
}

/// An IAM listing page: where the next one starts, if there is one.
trait IamPage {
    fn next_marker(&self) -> Option<String>;
}

impl IamPage for ListAccessKeysOutput {
    fn next_marker(&self) -> Option<String> {
        self.marker().filter(|_| self.is_truncated()).map(str::to_string)
    }
}

impl IamPage for ListUserTagsOutput {
    fn next_marker(&self) -> Option<String> {
        self.marker().filter(|_| self.is_truncated()).map(str::to_string)
    }
}

/// Every page of one of a user's IAM listings; `None` when the user no longer exists. Each page goes
/// through `call`, so a throttled page is retried on its own.
async fn user_pages<P, E, F, Fut>(aws: &Aws<'_>, operation: &str, mut fetch: F) -> Result<Option<Vec<P>>, HandlerError>
where
    P: IamPage,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<P, SdkError<E>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut pages = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = match aws.call("iam", operation, || fetch(marker.clone())).await {
            Ok(page) => page,
            Err(err) if err.code() == Some("NoSuchEntity") => return Ok(None),
            Err(err) => return Err(err),
        };
        marker = page.next_marker();
        pages.push(page);
        if marker.is_none() {
            return Ok(Some(pages));
        }
    }
}

/// The user's keys; `None` when the user no longer exists (deleted since the report).
pub async fn list(aws: &Aws<'_>, user: &str) -> Result<Option<Vec<Key>>, HandlerError> {
    let pages = user_pages(aws, "ListAccessKeys", |marker| {
        aws.iam.list_access_keys().user_name(user).set_marker(marker).send()
    })
    .await?;
    Ok(pages.map(|pages| {
        pages
            .iter()
            .flat_map(|page| page.access_key_metadata().iter().filter_map(key_of))
            .collect()
    }))
}

/// The user's tags as (key, value); `None` when the user no longer exists.
pub async fn tags(aws: &Aws<'_>, user: &str) -> Result<Option<Vec<(String, String)>>, HandlerError> {
    let pages = user_pages(aws, "ListUserTags", |marker| {
        aws.iam.list_user_tags().user_name(user).set_marker(marker).send()
    })
    .await?;
    Ok(pages.map(|pages| {
        pages
            .iter()
            .flat_map(|page| page.tags())
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }))
}

fn key_of(meta: &AccessKeyMetadata) -> Option<Key> {
    Some(Key {
        id: meta.access_key_id()?.to_string(),
        active: meta.status() == Some(&StatusType::Active),
        created: meta.create_date()?.secs(),
    })
}

/// A new key. The answer holds the secret access key: the caller stores it and drops it.
pub async fn create(aws: &Aws<'_>, user: &str) -> Result<AccessKey, HandlerError> {
    let out = aws
        .call("iam", "CreateAccessKey", || {
            aws.iam.create_access_key().user_name(user).send()
        })
        .await?;
    let key = out
        .access_key
        .ok_or_else(|| HandlerError::Failed("CreateAccessKey answered without a key".into()))?;
    info!(user, access_key_id = key.access_key_id(), "access key created");
    Ok(key)
}

pub async fn deactivate(aws: &Aws<'_>, user: &str, key_id: &str) -> Result<(), HandlerError> {
    aws.call("iam", "UpdateAccessKey", || {
        aws.iam
            .update_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .status(StatusType::Inactive)
            .send()
    })
    .await?;
    info!(user, access_key_id = key_id, "access key deactivated");
    Ok(())
}

/// Deletes a key; already gone is fine.
pub async fn delete(aws: &Aws<'_>, user: &str, key_id: &str) -> Result<(), HandlerError> {
    match aws
        .call("iam", "DeleteAccessKey", || {
            aws.iam.delete_access_key().user_name(user).access_key_id(key_id).send()
        })
        .await
    {
        Ok(_) => {}
        Err(err) if err.code() == Some("NoSuchEntity") => {}
        Err(err) => return Err(err),
    }
    info!(user, access_key_id = key_id, "access key deleted");
    Ok(())
}

/// When the key was last used (epoch seconds); `None` when it never was (IAM leaves LastUsedDate out:
/// never used since tracking began in April 2015).
pub async fn last_used(aws: &Aws<'_>, key_id: &str) -> Result<Option<i64>, HandlerError> {
    let used = aws
        .call("iam", "GetAccessKeyLastUsed", || {
            aws.iam.get_access_key_last_used().access_key_id(key_id).send()
        })
        .await?;
    Ok(used
        .access_key_last_used()
        .and_then(|u| u.last_used_date())
        .map(|d| d.secs()))
}

pub async fn tag(aws: &Aws<'_>, user: &str, key: &str, value: &str) -> Result<(), HandlerError> {
    let tag = Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|err| HandlerError::Failed(format!("building the tag {key}: {err}")))?;
    aws.call("iam", "TagUser", || {
        aws.iam.tag_user().user_name(user).tags(tag.clone()).send()
    })
    .await?;
    Ok(())
}

pub async fn untag(aws: &Aws<'_>, user: &str, key: &str) -> Result<(), HandlerError> {
    aws.call("iam", "UntagUser", || {
        aws.iam.untag_user().user_name(user).tag_keys(key).send()
    })
    .await?;
    Ok(())
}
