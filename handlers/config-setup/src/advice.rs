//! What a person should do about a failed Config call, and the "already gone is fine" predicate.

use tapguard_shared::{is_access_denied, is_throttling, HandlerError};
use tracing::info;

use crate::properties::{Desired, DesiredRule};

pub fn gone_is_fine(result: Result<impl Sized, HandlerError>) -> Result<(), HandlerError> {
    match result {
        Ok(_) => Ok(()),
        Err(err)
            if matches!(
                err.code(),
                Some(
                    "NoSuchConfigRuleException"
                        | "NoSuchConfigurationRecorderException"
                        | "NoSuchDeliveryChannelException"
                )
            ) =>
        {
            info!(error = %err, "already gone");
            Ok(())
        }
        Err(err) => Err(err),
    }
}

pub fn delivery_advice(code: &str, desired: &Desired) -> String {
    let bucket = &desired.bucket;
    match code {
        "InsufficientDeliveryPolicyException" | "AccessDenied" => format!(
            "the bucket policy of {bucket} does not let config.amazonaws.com write: allow it s3:GetBucketAcl and \
             s3:ListBucket on the bucket and s3:PutObject on {}AWSLogs/<account>/Config/*, then retry",
            desired
                .key_prefix
                .as_deref()
                .map(|p| format!("{p}/"))
                .unwrap_or_default()
        ),
        "NoSuchBucketException" | "NoSuchBucket" => {
            format!("the bucket {bucket} does not exist: create it or correct DeliveryBucketName")
        }
        _ => "correct what the message describes, then retry the stack operation".to_string(),
    }
}

/// Replaces the generic advice of a failed Config call with what a person should do about this resource.
pub fn advise(err: HandlerError, desired: Option<&Desired>, rule: Option<&DesiredRule>) -> HandlerError {
    let Some(code) = err.code().map(str::to_string) else {
        return err;
    };
    if is_access_denied(&code) || is_throttling(&code) {
        return err;
    }
    let specific = match (code.as_str(), desired) {
        ("InsufficientDeliveryPolicyException" | "NoSuchBucketException", Some(d)) => Some(delivery_advice(&code, d)),
        ("InsufficientPermissionsException" | "InvalidRoleException", Some(d)) => Some(format!(
            "Config cannot use the role {}: its trust policy must let config.amazonaws.com assume it, it needs the \
             AWS_ConfigRole managed policy (or equal), and the function needs iam:PassRole on it",
            d.role_arn
        )),
        ("InvalidSNSTopicARNException", Some(d)) => Some(format!(
            "the topic {} does not exist or does not let config.amazonaws.com publish: create it or correct \
             DeliverySnsTopicArn",
            d.sns_topic_arn.as_deref().unwrap_or_default()
        )),
        ("InvalidS3KeyPrefixException", _) => Some("correct DeliveryS3KeyPrefix".to_string()),
        ("InvalidRecordingGroupException" | "InvalidResourceTypeException", _) => Some(
            "correct AllSupported, IncludeGlobalResourceTypes or ResourceTypes (the types must be ones Config \
             records)"
                .to_string(),
        ),
        ("MaxNumberOfConfigurationRecordersExceededException" | "MaxNumberOfDeliveryChannelsExceededException", _) => {
            Some(
                "another recorder or channel appeared while this resource was working: retry the stack operation, \
                 and this resource adopts it"
                    .to_string(),
            )
        }
        ("MaxNumberOfConfigRulesExceededException", _) => Some(
            "the account's quota of Config rules is reached: delete unused rules or ask for a higher quota".to_string(),
        ),
        ("LastDeliveryChannelDeleteFailedException", _) => Some(
            "the recorder is recording again (something restarted it): stop the recorder, then retry the delete"
                .to_string(),
        ),
        ("ResourceInUseException", _) => rule.map(|r| {
            format!(
                "{}: Config is still deleting or evaluating the rule {} (it stays DELETING for a while after a \
                 delete): wait a few minutes, then retry the stack operation",
                r.field(),
                r.name
            )
        }),
        ("InvalidParameterValueException" | "ValidationException", _) => rule.map(|r| {
            format!(
                "{}: check that SourceIdentifier {} is an AWS managed rule available in this region, that \
                 InputParameters names only its parameters and every required one, and that \
                 MaximumExecutionFrequency is given only for periodic rules",
                r.field(),
                r.source_identifier
            )
        }),
        _ => None,
    };
    match specific {
        Some(advice) => err.with_advice(advice),
        None => err,
    }
}
