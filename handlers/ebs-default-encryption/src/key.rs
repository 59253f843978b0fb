//! The KMS key the resource asks for: it must exist and be able to encrypt volumes.

use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_sdk_kms::Client as Kms;
use tapguard_shared::{HandlerError, Invocation};

use crate::encryption::{is_aws_managed, DesiredKey};
use crate::properties::Properties;

/// Checks the requested key exists and can encrypt volumes, and returns its ARN. EC2 itself accepts
/// any key and fails later, at volume creation: that is the silent failure this check prevents.
pub(crate) async fn resolve(kms: &Kms, inv: &Invocation, props: &Properties) -> Result<DesiredKey, HandlerError> {
    let Some(key) = props.requested_key() else {
        return Ok(DesiredKey::AwsManaged);
    };
    // `alias/aws/ebs` or its alias ARN (what GetEbsDefaultKmsKeyId reads back, and so what a GetAtt of
    // this resource's KmsKeyId gives) is the AWS managed key: the same setting as no key at all, so two
    // resources naming it either way agree.
    if is_aws_managed(key) {
        return Ok(DesiredKey::AwsManaged);
    }
    let described = inv
        .aws("kms", "DescribeKey", kms.describe_key().key_id(key).send())
        .await
        .map_err(|err| match err {
            HandlerError::Aws {
                code, message, advice, ..
            } => HandlerError::InvalidProperty {
                property: "KmsKeyId".into(),
                problem: format!(
                    "{key}: DescribeKey failed: {code}: {message} ({})",
                    if code == "NotFoundException" {
                        "give a key id, key ARN or alias that exists in this account and region".to_string()
                    } else {
                        advice
                    }
                ),
            },
            other => other,
        })?;
    let meta = described
        .key_metadata()
        .ok_or_else(|| HandlerError::Failed(format!("DescribeKey for {key} answered without KeyMetadata")))?;
    if let Some(problem) = unusable(meta) {
        return Err(HandlerError::InvalidProperty {
            property: "KmsKeyId".into(),
            problem: format!("{key}: {problem}"),
        });
    }
    let arn = meta
        .arn()
        .ok_or_else(|| HandlerError::Failed(format!("DescribeKey for {key} answered no ARN")))?;
    Ok(DesiredKey::Arn(arn.to_string()))
}

/// Whether a key recorded as the prior default can still be put back: a disabled or deleted key as the
/// default would break every encrypted launch. `None` when it is usable.
pub(crate) async fn restorable(kms: &Kms, inv: &Invocation, key: &DesiredKey) -> Option<String> {
    let DesiredKey::Arn(arn) = key else {
        return None;
    };
    match inv
        .aws("kms", "DescribeKey", kms.describe_key().key_id(arn).send())
        .await
    {
        Ok(out) => out.key_metadata().and_then(unusable),
        Err(err) => Some(err.to_string()),
    }
}

fn unusable(meta: &aws_sdk_kms::types::KeyMetadata) -> Option<String> {
    if meta.key_state() != Some(&KeyState::Enabled) {
        Some(format!(
            "the key is {:?}, not Enabled: enable it or choose another",
            meta.key_state()
        ))
    } else if meta.key_spec().is_some_and(|s| *s != KeySpec::SymmetricDefault) {
        Some("EBS needs a symmetric key (SYMMETRIC_DEFAULT)".to_string())
    } else if meta.key_usage().is_some_and(|u| *u != KeyUsageType::EncryptDecrypt) {
        Some("EBS needs a key whose usage is ENCRYPT_DECRYPT".to_string())
    } else {
        None
    }
}
