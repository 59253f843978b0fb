//! The KMS key the resource asks for: it must exist, be able to encrypt volumes, and its key policy
//! must let EBS use it (`key_policy.rs`). EC2 itself accepts any key and fails later, at volume
//! creation or instance launch: that silent failure is what these checks prevent.

use aws_sdk_kms::types::{KeyManagerType, KeySpec, KeyState, KeyUsageType};
use aws_sdk_kms::Client as Kms;
use tapguard_shared::{is_access_denied, HandlerError, Invocation};

use crate::encryption::{is_aws_managed, DesiredKey, AWS_MANAGED_ALIAS};
use crate::key_policy;
use crate::properties::Properties;

/// Checks the requested key and returns it as the default is to be set. Refused (an invalid
/// property): a key that does not exist, is not Enabled, symmetric and for ENCRYPT_DECRYPT, is another
/// service's AWS managed key, or whose key policy does not let EC2 and the Auto Scaling service-linked
/// role use it. A denied or failed KMS call is answered as that call's error.
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
    let meta = match describe(kms, inv, key).await? {
        Described::Found(meta) => *meta,
        Described::NotFound(err) => return Err(invalid(key, &not_found(&err))),
    };
    if meta.key_manager() == Some(&KeyManagerType::Aws) {
        return aws_managed(kms, inv, key, &meta).await;
    }
    if let Some(problem) = unusable(&meta) {
        return Err(invalid(key, &problem));
    }
    let arn = meta
        .arn()
        .ok_or_else(|| HandlerError::Failed(format!("DescribeKey for {key} answered no ARN")))?;
    let policy = inv
        .aws(
            "kms",
            "GetKeyPolicy",
            kms.get_key_policy().key_id(arn).policy_name("default").send(),
        )
        .await
        .map_err(|err| match err.code() {
            Some("NotFoundException") => invalid(key, &not_found(&err)),
            Some(code) if is_access_denied(code) => err.with_advice(format!(
                "the action kms:GetKeyPolicy on {arn} was denied: grant it to the function's execution role, and \
                 let the key policy allow it, so that the key's policy can be checked"
            )),
            _ => err,
        })?;
    if let Some(problem) = key_policy::problems(
        policy.policy().unwrap_or_default(),
        &inv.partition,
        &inv.account_id,
        &inv.region,
    ) {
        return Err(invalid(
            key,
            &format!(
                "its key policy (GetKeyPolicy) does not let EBS use it: {problem}. EC2 accepts such a key as the \
                 default, and then every encrypted launch with it fails: add those statements to the key policy \
                 or choose another key"
            ),
        ));
    }
    Ok(DesiredKey::Arn(arn.to_string()))
}

/// Whether a key recorded as the prior default can still be put back: `Ok(None)` when it can,
/// `Ok(Some(why))` when it surely cannot (deleted, disabled, pending deletion: as the default it would
/// break every encrypted launch), and the error of DescribeKey when that could not be told (denied, or
/// still failing after the SDK's retries).
pub(crate) async fn restorable(kms: &Kms, inv: &Invocation, key: &DesiredKey) -> Result<Option<String>, HandlerError> {
    let DesiredKey::Arn(arn) = key else {
        return Ok(None);
    };
    match describe(kms, inv, arn).await? {
        Described::Found(meta) => Ok(unusable(&meta)),
        Described::NotFound(err) => Ok(Some(not_found(&err))),
    }
}

/// The ARN of `key` as DescribeKey gives it, without judging the key; `None` when it does not exist.
pub(crate) async fn arn_of(kms: &Kms, inv: &Invocation, key: &str) -> Result<Option<String>, HandlerError> {
    if is_aws_managed(key) {
        return Ok(Some(AWS_MANAGED_ALIAS.to_string()));
    }
    Ok(match describe(kms, inv, key).await? {
        Described::Found(meta) => meta.arn().map(str::to_string),
        Described::NotFound(_) => None,
    })
}

enum Described {
    Found(Box<aws_sdk_kms::types::KeyMetadata>),
    NotFound(HandlerError),
}

/// DescribeKey, its errors told apart: a key that does not exist is an answer about the key; a denied
/// call or one that still fails after the SDK's retries is the call's error (it says nothing of the key).
async fn describe(kms: &Kms, inv: &Invocation, key: &str) -> Result<Described, HandlerError> {
    match inv
        .aws("kms", "DescribeKey", kms.describe_key().key_id(key).send())
        .await
    {
        Ok(out) => out
            .key_metadata()
            .cloned()
            .map(|meta| Described::Found(Box::new(meta)))
            .ok_or_else(|| HandlerError::Failed(format!("DescribeKey for {key} answered without KeyMetadata"))),
        Err(err) if err.code() == Some("NotFoundException") => Ok(Described::NotFound(err)),
        Err(err) => Err(match err.code() {
            Some(code) if is_access_denied(code) => err.with_advice(format!(
                "the action kms:DescribeKey on {key} was denied: grant it to the function's execution role, and let \
                 the key policy allow it to the account"
            )),
            _ => err,
        }),
    }
}

/// An AWS managed key given by its id or ARN: the one of EBS (`aws/ebs`) is the AWS managed default;
/// another service's is refused: AWS managed keys can be used only through the service that created
/// them (AWS KMS Developer Guide, kms:ViaService). DescribeKey of the predefined alias `alias/aws/ebs`
/// gives its key (KMS creates it then if the account has none yet).
async fn aws_managed(
    kms: &Kms,
    inv: &Invocation,
    key: &str,
    meta: &aws_sdk_kms::types::KeyMetadata,
) -> Result<DesiredKey, HandlerError> {
    let ebs = match describe(kms, inv, AWS_MANAGED_ALIAS).await? {
        Described::Found(ebs) => ebs,
        Described::NotFound(err) => return Err(err),
    };
    if ebs.key_id() == meta.key_id() {
        return Ok(DesiredKey::AwsManaged);
    }
    Err(invalid(
        key,
        &format!(
            "DescribeKey says it is an AWS managed key (KeyManager AWS{}), not the one of EBS: an AWS managed key \
             can be used only through the service that created it, so EBS cannot use it. Give alias/aws/ebs (or \
             no key) for the AWS managed key of EBS, or a customer managed key",
            meta.description()
                .filter(|d| !d.is_empty())
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
    ))
}

fn invalid(key: &str, problem: &str) -> HandlerError {
    HandlerError::InvalidProperty {
        property: "KmsKeyId".into(),
        problem: format!("{key}: {problem}"),
    }
}

fn not_found(err: &HandlerError) -> String {
    let (operation, message) = match err {
        HandlerError::Aws { operation, message, .. } => (operation.as_str(), message.as_str()),
        _ => ("DescribeKey", ""),
    };
    format!(
        "{operation} failed: NotFoundException: {message} (give a key id, key ARN or alias that exists in this \
         account and region)"
    )
}

/// Why a key cannot be the default for EBS, by its KeyState (AWS KMS Developer Guide, *Key states of
/// AWS KMS keys*: only an Enabled key can be used in cryptographic operations), spec and usage.
fn unusable(meta: &aws_sdk_kms::types::KeyMetadata) -> Option<String> {
    let state = meta.key_state();
    if state != Some(&KeyState::Enabled) {
        let what = match state {
            Some(KeyState::Disabled) => "is Disabled: enable it (EnableKey) or choose another".to_string(),
            Some(KeyState::PendingDeletion) => "is PendingDeletion (scheduled for deletion): cancel the deletion \
                 (CancelKeyDeletion) and enable it (EnableKey), or choose another"
                .to_string(),
            Some(KeyState::PendingImport) => {
                "is PendingImport: import its key material (ImportKeyMaterial) or choose another".to_string()
            }
            Some(KeyState::Unavailable) => {
                "is Unavailable: its custom key store is disconnected; connect it (ConnectCustomKeyStore) or choose \
                 another"
                    .to_string()
            }
            Some(other) => format!(
                "is {}, not Enabled: wait until it is Enabled or choose another",
                other.as_str()
            ),
            None => "has no KeyState in DescribeKey's answer: choose another".to_string(),
        };
        Some(format!("the key {what}"))
    } else if meta.key_spec().is_some_and(|s| *s != KeySpec::SymmetricDefault) {
        Some("EBS needs a symmetric key (SYMMETRIC_DEFAULT)".to_string())
    } else if meta.key_usage().is_some_and(|u| *u != KeyUsageType::EncryptDecrypt) {
        Some("EBS needs a key whose usage is ENCRYPT_DECRYPT".to_string())
    } else {
        None
    }
}
