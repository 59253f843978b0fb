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
            "Config cannot use the role {} (still refused after waiting for IAM to propagate a new role): its trust \
             policy must let config.amazonaws.com assume it, it needs the AWS_ConfigRole managed policy (or equal), \
             and the function needs iam:PassRole on it",
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
        ("ResourceInUseException", _) => Some(match rule {
            Some(r) => format!(
                "{}: Config is still deleting or evaluating the rule {} (a deleted rule stays DELETING for a while, \
                 and this resource waited as long as its deadline allowed): wait until DescribeConfigRules no \
                 longer shows it DELETING, then continue the stack's rollback (ContinueUpdateRollback) if this was \
                 one, or retry the stack operation",
                r.field(),
                r.name
            ),
            None => "Config is still deleting or evaluating the rule (this resource waited as long as its deadline \
                     allowed): wait until DescribeConfigRules no longer shows it DELETING or EVALUATING, then retry \
                     the Delete"
                .to_string(),
        }),
        ("InvalidParameterValueException" | "ValidationException", _) if rule.is_some_and(|r| !r.scope.is_empty()) => {
            rule.map(|r| {
                format!(
                    "{}: if {} is a periodic rule, Config refuses a scope for it (a scope names the resources whose \
                     configuration changes trigger an evaluation): remove ResourceTypesScope; otherwise check that \
                     it is an AWS managed rule available in this region and that InputParameters names only its \
                     parameters and every required one",
                    r.field(),
                    r.source_identifier
                )
            })
        }
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
