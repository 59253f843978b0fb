//! EC2's per-region EBS default: encryption on or off, and the default KMS key.

use serde::{Deserialize, Serialize};
use tapguard_shared::readback::{self, ReadBack, ReadBackPolicy};
use tapguard_shared::{HandlerError, Invocation};

use crate::ec2::Ec2;

pub(crate) const AWS_MANAGED_ALIAS: &str = "alias/aws/ebs";

/// The region's setting as read from EC2 (also the shape of the prior state in the ledger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefaultEncryption {
    pub enabled: bool,
    pub kms_key_id: String,
}

/// The key a resource asks for, once resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DesiredKey {
    AwsManaged,
    Arn(String),
}

impl DesiredKey {
    /// The key as the ledger records it: the key ARN, or `alias/aws/ebs`.
    pub(crate) fn from_recorded(key: &str) -> Self {
        if is_aws_managed(key) {
            DesiredKey::AwsManaged
        } else {
            DesiredKey::Arn(key.to_string())
        }
    }

    pub(crate) fn recorded(&self) -> &str {
        match self {
            DesiredKey::AwsManaged => AWS_MANAGED_ALIAS,
            DesiredKey::Arn(arn) => arn,
        }
    }

    pub(crate) fn is_met_by(&self, current: &str) -> bool {
        match self {
            DesiredKey::AwsManaged => is_aws_managed(current),
            DesiredKey::Arn(arn) => current == arn,
        }
    }

    pub(crate) fn describe(&self) -> &str {
        match self {
            DesiredKey::AwsManaged => "the AWS managed key alias/aws/ebs",
            DesiredKey::Arn(arn) => arn,
        }
    }
}

pub(crate) fn is_aws_managed(key: &str) -> bool {
    key == AWS_MANAGED_ALIAS || key.ends_with(":alias/aws/ebs")
}

pub(crate) async fn read(ec2: &Ec2, inv: &Invocation) -> Result<DefaultEncryption, HandlerError> {
    let enabled = inv
        .aws("ec2", "GetEbsEncryptionByDefault", ec2.get_ebs_encryption_by_default())
        .await?;
    let kms_key_id = inv
        .aws("ec2", "GetEbsDefaultKmsKeyId", ec2.get_ebs_default_kms_key_id())
        .await?
        .unwrap_or_else(|| AWS_MANAGED_ALIAS.to_string());
    Ok(DefaultEncryption { enabled, kms_key_id })
}

/// Reads the setting until `wanted` accepts it, or the read-back policy runs out: the EC2 API is
/// eventually consistent, and a read right after a change may still answer the value before it.
pub(crate) async fn read_back(
    ec2: &Ec2,
    inv: &Invocation,
    policy: &ReadBackPolicy,
    wanted: impl Fn(&DefaultEncryption) -> bool,
) -> Result<ReadBack<DefaultEncryption>, HandlerError> {
    readback::read_back(
        inv,
        policy,
        "GetEbsEncryptionByDefault and GetEbsDefaultKmsKeyId",
        || read(ec2, inv),
        wanted,
    )
    .await
}

pub(crate) async fn set_key(ec2: &Ec2, inv: &Invocation, key: &DesiredKey) -> Result<(), HandlerError> {
    match key {
        DesiredKey::AwsManaged => {
            inv.aws("ec2", "ResetEbsDefaultKmsKeyId", ec2.reset_ebs_default_kms_key_id())
                .await?;
        }
        DesiredKey::Arn(arn) => {
            let modify = ec2.modify_ebs_default_kms_key_id(arn);
            inv.aws("ec2", "ModifyEbsDefaultKmsKeyId", modify).await?;
        }
    }
    Ok(())
}

pub(crate) async fn enable(ec2: &Ec2, inv: &Invocation) -> Result<(), HandlerError> {
    inv.aws(
        "ec2",
        "EnableEbsEncryptionByDefault",
        ec2.enable_ebs_encryption_by_default(),
    )
    .await?;
    Ok(())
}

pub(crate) async fn disable(ec2: &Ec2, inv: &Invocation) -> Result<(), HandlerError> {
    inv.aws(
        "ec2",
        "DisableEbsEncryptionByDefault",
        ec2.disable_ebs_encryption_by_default(),
    )
    .await?;
    Ok(())
}
