//! The account's Shield Advanced subscription: one per account, with a one-year commitment.

use aws_sdk_shield::types::AutoRenew;
use aws_sdk_shield::Client as Shield;
use serde::{Deserialize, Serialize};
use tapguard_shared::{HandlerError, Invocation};

/// The subscription as DescribeSubscription answers it (also the shape of the ledger's prior state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionState {
    pub exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The end of the current commitment, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// `ProactiveEngagementStatus`: ENABLED, DISABLED or PENDING; absent before proactive engagement was
    /// ever set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proactive_engagement: Option<String>,
}

pub(crate) async fn read(shield: &Shield, inv: &Invocation) -> Result<SubscriptionState, HandlerError> {
    match inv
        .aws("shield", "DescribeSubscription", shield.describe_subscription().send())
        .await
    {
        Ok(out) => {
            let s = out.subscription();
            Ok(SubscriptionState {
                exists: s.is_some(),
                auto_renew: s.and_then(|s| s.auto_renew()).map(|a| a.as_str().to_string()),
                arn: s.and_then(|s| s.subscription_arn()).map(str::to_string),
                end_time: s
                    .and_then(|s| s.end_time())
                    .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
                proactive_engagement: s
                    .and_then(|s| s.proactive_engagement_status())
                    .map(|p| p.as_str().to_string()),
            })
        }
        Err(err) if err.code() == Some("ResourceNotFoundException") => Ok(SubscriptionState {
            exists: false,
            auto_renew: None,
            arn: None,
            end_time: None,
            proactive_engagement: None,
        }),
        Err(err) => Err(err),
    }
}

pub(crate) async fn create(shield: &Shield, inv: &Invocation) -> Result<(), HandlerError> {
    inv.aws("shield", "CreateSubscription", shield.create_subscription().send())
        .await
        .map_err(|err| {
            if err.code() == Some("ResourceAlreadyExistsException") {
                err.with_advice("a subscription appeared meanwhile: retry the stack operation to adopt it")
            } else {
                err
            }
        })?;
    Ok(())
}

pub(crate) async fn set_auto_renew(shield: &Shield, inv: &Invocation, value: AutoRenew) -> Result<(), HandlerError> {
    let update = shield.update_subscription().auto_renew(value).send();
    inv.aws("shield", "UpdateSubscription", update).await?;
    Ok(())
}
