//! The six EC2 calls of EBS encryption by default, made without `aws-sdk-ec2` (`tapguard_shared::api`):
//! the largest SDK crate, about a quarter of a clean package build, for six operations whose answers
//! have one field each. Their requests and answers are those of the EC2 API reference
//! (`GetEbsEncryptionByDefault`, `EnableEbsEncryptionByDefault`, `DisableEbsEncryptionByDefault`,
//! `GetEbsDefaultKmsKeyId`, `ModifyEbsDefaultKmsKeyId`, `ResetEbsDefaultKmsKeyId`).

use std::sync::Arc;

use tapguard_shared::api::query::element;
use tapguard_shared::api::{ApiClient, ApiError, Service, Transport};

pub const EC2: Service = Service {
    signing_name: "ec2",
    service_id: "EC2",
    endpoint_prefix: "ec2",
    gov_fips_is_regional: true,
};

/// An EC2 client for the region's EBS defaults.
#[derive(Clone, Debug)]
pub struct Ec2 {
    api: ApiClient,
}

impl Ec2 {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Ec2 {
            api: ApiClient::new(config, EC2),
        }
    }

    /// The same, its requests answered by `transport` (tests), without waits between attempts.
    pub fn with_transport(config: &aws_config::SdkConfig, transport: Arc<dyn Transport>) -> Self {
        Ec2 {
            api: ApiClient::with_transport(config, EC2, transport).without_backoff(),
        }
    }

    /// `ebsEncryptionByDefault` of `GetEbsEncryptionByDefault`.
    pub async fn get_ebs_encryption_by_default(&self) -> Result<bool, ApiError> {
        let xml = self.api.ec2_query("GetEbsEncryptionByDefault", &[]).await?;
        Ok(element(&xml, "ebsEncryptionByDefault").is_some_and(|v| v == "true"))
    }

    /// `kmsKeyId` of `GetEbsDefaultKmsKeyId`, when the answer has one.
    pub async fn get_ebs_default_kms_key_id(&self) -> Result<Option<String>, ApiError> {
        let xml = self.api.ec2_query("GetEbsDefaultKmsKeyId", &[]).await?;
        Ok(element(&xml, "kmsKeyId").filter(|k| !k.is_empty()))
    }

    pub async fn enable_ebs_encryption_by_default(&self) -> Result<(), ApiError> {
        self.api.ec2_query("EnableEbsEncryptionByDefault", &[]).await.map(drop)
    }

    pub async fn disable_ebs_encryption_by_default(&self) -> Result<(), ApiError> {
        self.api.ec2_query("DisableEbsEncryptionByDefault", &[]).await.map(drop)
    }

    pub async fn modify_ebs_default_kms_key_id(&self, key: &str) -> Result<(), ApiError> {
        self.api
            .ec2_query("ModifyEbsDefaultKmsKeyId", &[("KmsKeyId", key)])
            .await
            .map(drop)
    }

    pub async fn reset_ebs_default_kms_key_id(&self) -> Result<(), ApiError> {
        self.api.ec2_query("ResetEbsDefaultKmsKeyId", &[]).await.map(drop)
    }
}
