//! Custom::EbsDefaultEncryption: turns on EBS encryption by default in the region with the requested
//! KMS key, and answers SUCCESS only after reading both back.
//!
//! The state found before Create travels in the physical id, so Delete can put back exactly that,
//! and never turns off encryption that was already on before this resource existed.

use aws_sdk_ec2::Client as Ec2;
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_sdk_kms::Client as Kms;
use serde::Deserialize;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Outcome};
use tracing::info;

const ID_PREFIX: &str = "ebs-default-encryption:";
const AWS_MANAGED_ALIAS: &str = "alias/aws/ebs";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Key id, key ARN, alias name or alias ARN; absent or empty means the AWS managed `aws/ebs` key.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

impl Properties {
    fn requested_key(&self) -> Option<&str> {
        self.kms_key_id.as_deref().map(str::trim).filter(|k| !k.is_empty())
    }
}

/// What the region had before this resource first changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorState {
    pub region: String,
    pub enabled: bool,
    pub kms_key_id: String,
}

impl PriorState {
    pub fn physical_id(&self) -> String {
        format!(
            "{ID_PREFIX}{}:was-enabled={}:was-key={}",
            self.region, self.enabled, self.kms_key_id
        )
    }

    pub fn parse(physical_id: &str) -> Result<Self, HandlerError> {
        let malformed = || {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues (expected \
                 {ID_PREFIX}<region>:was-enabled=<true|false>:was-key=<arn>): the prior state cannot be restored"
            ))
        };
        let rest = physical_id.strip_prefix(ID_PREFIX).ok_or_else(malformed)?;
        let (region, rest) = rest.split_once(":was-enabled=").ok_or_else(malformed)?;
        let (enabled, key) = rest.split_once(":was-key=").ok_or_else(malformed)?;
        let enabled = enabled.parse().map_err(|_| malformed())?;
        Ok(PriorState {
            region: region.to_string(),
            enabled,
            kms_key_id: key.to_string(),
        })
    }
}

/// The region's setting as read from EC2.
#[derive(Debug, Clone, PartialEq)]
struct Current {
    enabled: bool,
    kms_key_id: String,
}

/// The key the resource asks for, once resolved.
#[derive(Debug, Clone, PartialEq)]
enum DesiredKey {
    AwsManaged,
    Arn(String),
}

impl DesiredKey {
    fn is_met_by(&self, current: &str) -> bool {
        match self {
            DesiredKey::AwsManaged => is_aws_managed(current),
            DesiredKey::Arn(arn) => current == arn,
        }
    }

    fn describe(&self) -> &str {
        match self {
            DesiredKey::AwsManaged => "the AWS managed key alias/aws/ebs",
            DesiredKey::Arn(arn) => arn,
        }
    }
}

fn is_aws_managed(key: &str) -> bool {
    key == AWS_MANAGED_ALIAS || key.ends_with(":alias/aws/ebs")
}

pub struct EbsDefaultEncryption {
    ec2: Ec2,
    kms: Kms,
}

impl EbsDefaultEncryption {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(Ec2::new(config), Kms::new(config))
    }

    pub fn from_clients(ec2: Ec2, kms: Kms) -> Self {
        EbsDefaultEncryption { ec2, kms }
    }

    async fn read(&self, inv: &Invocation) -> Result<Current, HandlerError> {
        let enabled = inv
            .aws(
                "ec2",
                "GetEbsEncryptionByDefault",
                self.ec2.get_ebs_encryption_by_default().send(),
            )
            .await?
            .ebs_encryption_by_default()
            .unwrap_or(false);
        let kms_key_id = inv
            .aws(
                "ec2",
                "GetEbsDefaultKmsKeyId",
                self.ec2.get_ebs_default_kms_key_id().send(),
            )
            .await?
            .kms_key_id()
            .unwrap_or(AWS_MANAGED_ALIAS)
            .to_string();
        Ok(Current { enabled, kms_key_id })
    }

    /// Checks the requested key exists and can encrypt volumes, and returns its ARN. EC2 itself accepts
    /// any key and fails later, at volume creation: that is the silent failure this check prevents.
    async fn resolve(&self, inv: &Invocation, props: &Properties) -> Result<DesiredKey, HandlerError> {
        let Some(key) = props.requested_key() else {
            return Ok(DesiredKey::AwsManaged);
        };
        let described = inv
            .aws("kms", "DescribeKey", self.kms.describe_key().key_id(key).send())
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
        let problem = if meta.key_state() != Some(&KeyState::Enabled) {
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
        };
        if let Some(problem) = problem {
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

    async fn set_default_key(&self, inv: &Invocation, key: &DesiredKey) -> Result<(), HandlerError> {
        match key {
            DesiredKey::AwsManaged => {
                let reset = self.ec2.reset_ebs_default_kms_key_id().send();
                inv.aws("ec2", "ResetEbsDefaultKmsKeyId", reset).await?;
            }
            DesiredKey::Arn(arn) => {
                let modify = self.ec2.modify_ebs_default_kms_key_id().kms_key_id(arn).send();
                inv.aws("ec2", "ModifyEbsDefaultKmsKeyId", modify).await?;
            }
        }
        Ok(())
    }

    /// Brings the region to the desired state, calling only what differs, then reads it back.
    async fn converge(&self, inv: &Invocation, props: &Properties) -> Result<Current, HandlerError> {
        let desired = self.resolve(inv, props).await?;
        let current = self.read(inv).await?;
        // The key first: volumes created the moment encryption turns on already use the right key.
        if !desired.is_met_by(&current.kms_key_id) {
            self.set_default_key(inv, &desired).await?;
        }
        if !current.enabled {
            inv.aws(
                "ec2",
                "EnableEbsEncryptionByDefault",
                self.ec2.enable_ebs_encryption_by_default().send(),
            )
            .await?;
        }
        inv.step("verifying the EBS default encryption settings");
        let after = self.read(inv).await?;
        if !after.enabled {
            return Err(HandlerError::NotVerified(format!(
                "GetEbsEncryptionByDefault still answers false in {} after EnableEbsEncryptionByDefault: \
                 check for an SCP or another automation that turns it off",
                inv.region
            )));
        }
        if !desired.is_met_by(&after.kms_key_id) {
            return Err(HandlerError::NotVerified(format!(
                "GetEbsDefaultKmsKeyId answers {} in {}, not {}: check for another automation that sets the key",
                after.kms_key_id,
                inv.region,
                desired.describe()
            )));
        }
        Ok(after)
    }

    fn outcome(prior: &PriorState, verified: &Current) -> Outcome {
        Outcome::new(prior.physical_id())
            .with("Enabled", verified.enabled)
            .with("KmsKeyId", &verified.kms_key_id)
            .with("PreviouslyEnabled", prior.enabled)
    }
}

impl CustomResource for EbsDefaultEncryption {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::EbsDefaultEncryption";
    const ID_PREFIX: &'static str = ID_PREFIX;

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let before = self.read(inv).await?;
        let prior = PriorState {
            region: inv.region.clone(),
            enabled: before.enabled,
            kms_key_id: before.kms_key_id,
        };
        let verified = self.converge(inv, &props).await?;
        Ok(Self::outcome(&prior, &verified))
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        // The prior state stays the one found at Create: it is what Delete must restore.
        let prior = PriorState::parse(physical_id)?;
        let verified = self.converge(inv, &props).await?;
        Ok(Self::outcome(&prior, &verified))
    }

    async fn delete(&self, inv: &Invocation, physical_id: &str, props: Option<Properties>) -> Result<(), HandlerError> {
        let prior = PriorState::parse(physical_id)?;
        let current = self.read(inv).await?;

        // Put the key back only if it is still the one this resource set: a later change is someone else's.
        let ours = match &props {
            Some(props) => match self.resolve(inv, props).await {
                Ok(desired) => desired.is_met_by(&current.kms_key_id),
                // The key is gone or unusable now: whatever is set is not something to protect.
                Err(_) => true,
            },
            None => true,
        };
        let prior_key = if is_aws_managed(&prior.kms_key_id) {
            DesiredKey::AwsManaged
        } else {
            DesiredKey::Arn(prior.kms_key_id.clone())
        };
        if ours && !prior_key.is_met_by(&current.kms_key_id) {
            self.set_default_key(inv, &prior_key).await?;
        } else if !ours {
            info!(
                current_key = current.kms_key_id,
                "default EBS key was changed by someone else since: left as it is"
            );
        }
        // Turn encryption off only when this resource turned it on.
        if !prior.enabled && current.enabled {
            inv.aws(
                "ec2",
                "DisableEbsEncryptionByDefault",
                self.ec2.disable_ebs_encryption_by_default().send(),
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::disable_ebs_encryption_by_default::DisableEbsEncryptionByDefaultOutput;
    use aws_sdk_ec2::operation::enable_ebs_encryption_by_default::{
        EnableEbsEncryptionByDefaultError, EnableEbsEncryptionByDefaultOutput,
    };
    use aws_sdk_ec2::operation::get_ebs_default_kms_key_id::GetEbsDefaultKmsKeyIdOutput;
    use aws_sdk_ec2::operation::get_ebs_encryption_by_default::GetEbsEncryptionByDefaultOutput;
    use aws_sdk_ec2::operation::modify_ebs_default_kms_key_id::ModifyEbsDefaultKmsKeyIdOutput;
    use aws_sdk_ec2::operation::reset_ebs_default_kms_key_id::ResetEbsDefaultKmsKeyIdOutput;
    use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
    use aws_sdk_kms::types::KeyMetadata;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    const MANAGED: &str = "arn:aws:kms:eu-west-1:111122223333:alias/aws/ebs";
    const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn inv() -> Invocation {
        Invocation::detached("eu-west-1", "111122223333")
    }

    fn encryption_reads(values: &[bool]) -> Rule {
        let mut seq = mock!(Ec2::get_ebs_encryption_by_default).sequence();
        for &v in values {
            seq = seq.output(move || {
                GetEbsEncryptionByDefaultOutput::builder()
                    .ebs_encryption_by_default(v)
                    .build()
            });
        }
        seq.build()
    }

    fn key_reads(values: &[&'static str]) -> Rule {
        let mut seq = mock!(Ec2::get_ebs_default_kms_key_id).sequence();
        for &v in values {
            seq = seq.output(move || GetEbsDefaultKmsKeyIdOutput::builder().kms_key_id(v).build());
        }
        seq.build()
    }

    fn enable_ok() -> Rule {
        mock!(Ec2::enable_ebs_encryption_by_default).then_output(|| {
            EnableEbsEncryptionByDefaultOutput::builder()
                .ebs_encryption_by_default(true)
                .build()
        })
    }

    fn modify_ok() -> Rule {
        mock!(Ec2::modify_ebs_default_kms_key_id)
            .then_output(|| ModifyEbsDefaultKmsKeyIdOutput::builder().kms_key_id(KEY_ARN).build())
    }

    fn reset_ok() -> Rule {
        mock!(Ec2::reset_ebs_default_kms_key_id)
            .then_output(|| ResetEbsDefaultKmsKeyIdOutput::builder().kms_key_id(MANAGED).build())
    }

    fn disable_ok() -> Rule {
        mock!(Ec2::disable_ebs_encryption_by_default).then_output(|| {
            DisableEbsEncryptionByDefaultOutput::builder()
                .ebs_encryption_by_default(false)
                .build()
        })
    }

    fn describe_key_ok() -> Rule {
        mock!(Kms::describe_key).then_output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(
                    KeyMetadata::builder()
                        .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
                        .arn(KEY_ARN)
                        .key_state(KeyState::Enabled)
                        .key_spec(KeySpec::SymmetricDefault)
                        .key_usage(KeyUsageType::EncryptDecrypt)
                        .build()
                        .unwrap(),
                )
                .build()
        })
    }

    fn handler(ec2_rules: &[&Rule], kms_rules: &[&Rule]) -> EbsDefaultEncryption {
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, ec2_rules);
        let kms = mock_client!(aws_sdk_kms, RuleMode::MatchAny, kms_rules);
        EbsDefaultEncryption::from_clients(ec2, kms)
    }

    fn props(key: Option<&str>) -> Properties {
        Properties {
            kms_key_id: key.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn create_on_a_fresh_region_enables_and_verifies() {
        let (reads, keys, enable) = (
            encryption_reads(&[false, false, true]),
            key_reads(&[MANAGED, MANAGED, MANAGED]),
            enable_ok(),
        );
        let (modify, reset) = (modify_ok(), reset_ok());
        let h = handler(&[&reads, &keys, &enable, &modify, &reset], &[]);
        let out = h.create(&inv(), props(None)).await.unwrap();
        assert_eq!(
            out.physical_id,
            format!("ebs-default-encryption:eu-west-1:was-enabled=false:was-key={MANAGED}")
        );
        assert_eq!(out.data["Enabled"], "true");
        assert_eq!(out.data["KmsKeyId"], MANAGED);
        assert_eq!(out.data["PreviouslyEnabled"], "false");
        assert_eq!(enable.num_calls(), 1);
        assert_eq!(
            modify.num_calls() + reset.num_calls(),
            0,
            "the managed key was already the default"
        );
    }

    #[tokio::test]
    async fn create_with_a_customer_key_sets_it_before_enabling() {
        let (reads, keys) = (
            encryption_reads(&[false, false, true]),
            key_reads(&[MANAGED, MANAGED, KEY_ARN]),
        );
        let (enable, modify, describe) = (enable_ok(), modify_ok(), describe_key_ok());
        let h = handler(&[&reads, &keys, &enable, &modify], &[&describe]);
        let out = h.create(&inv(), props(Some("alias/tap-ebs"))).await.unwrap();
        assert_eq!(out.data["KmsKeyId"], KEY_ARN);
        assert_eq!(
            (modify.num_calls(), enable.num_calls(), describe.num_calls()),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn repeat_create_with_everything_in_place_makes_no_mutating_call() {
        let (reads, keys) = (
            encryption_reads(&[true, true, true]),
            key_reads(&[KEY_ARN, KEY_ARN, KEY_ARN]),
        );
        let (enable, modify, reset, describe) = (enable_ok(), modify_ok(), reset_ok(), describe_key_ok());
        let h = handler(&[&reads, &keys, &enable, &modify, &reset], &[&describe]);
        let out = h.create(&inv(), props(Some(KEY_ARN))).await.unwrap();
        assert_eq!(out.data["PreviouslyEnabled"], "true");
        assert_eq!(enable.num_calls() + modify.num_calls() + reset.num_calls(), 0);
    }

    #[tokio::test]
    async fn access_denied_names_the_operation_the_code_and_the_action() {
        let (reads, keys) = (encryption_reads(&[false, false]), key_reads(&[MANAGED, MANAGED]));
        let enable = mock!(Ec2::enable_ebs_encryption_by_default).then_error(|| {
            EnableEbsEncryptionByDefaultError::generic(
                ErrorMetadata::builder()
                    .code("UnauthorizedOperation")
                    .message("You are not authorized")
                    .build(),
            )
        });
        let h = handler(&[&reads, &keys, &enable], &[]);
        let err = h.create(&inv(), props(None)).await.unwrap_err();
        assert_eq!(err.code(), Some("UnauthorizedOperation"));
        let text = err.to_string();
        assert!(
            text.starts_with("EnableEbsEncryptionByDefault failed: UnauthorizedOperation: You are not authorized"),
            "{text}"
        );
        assert!(text.contains("ec2:EnableEbsEncryptionByDefault was denied"), "{text}");
    }

    #[tokio::test]
    async fn a_read_back_that_disagrees_is_failed_not_success() {
        // EnableEbsEncryptionByDefault answers, but the read-back still says false (an SCP or a race).
        let (reads, keys, enable) = (
            encryption_reads(&[false, false, false]),
            key_reads(&[MANAGED, MANAGED, MANAGED]),
            enable_ok(),
        );
        let h = handler(&[&reads, &keys, &enable], &[]);
        let err = h.create(&inv(), props(None)).await.unwrap_err();
        assert!(matches!(err, HandlerError::NotVerified(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("GetEbsEncryptionByDefault still answers false"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_key_read_back_that_disagrees_is_failed() {
        let (reads, keys) = (
            encryption_reads(&[true, true, true]),
            key_reads(&[MANAGED, MANAGED, MANAGED]),
        );
        let (modify, describe) = (modify_ok(), describe_key_ok());
        let h = handler(&[&reads, &keys, &modify], &[&describe]);
        let err = h.create(&inv(), props(Some(KEY_ARN))).await.unwrap_err().to_string();
        assert!(
            err.contains("GetEbsDefaultKmsKeyId answers") && err.contains(KEY_ARN),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unknown_key_is_refused_before_any_ec2_change() {
        let (reads, keys, enable, modify) = (
            encryption_reads(&[false]),
            key_reads(&[MANAGED]),
            enable_ok(),
            modify_ok(),
        );
        let describe = mock!(Kms::describe_key).then_error(|| {
            DescribeKeyError::generic(
                ErrorMetadata::builder()
                    .code("NotFoundException")
                    .message("Alias not found")
                    .build(),
            )
        });
        let h = handler(&[&reads, &keys, &enable, &modify], &[&describe]);
        let err = h
            .create(&inv(), props(Some("alias/missing")))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid property KmsKeyId: alias/missing: DescribeKey failed: NotFoundException"),
            "{err}"
        );
        assert_eq!(enable.num_calls() + modify.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_disabled_key_is_refused() {
        let describe = mock!(Kms::describe_key).then_output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(
                    KeyMetadata::builder()
                        .key_id("k")
                        .arn(KEY_ARN)
                        .key_state(KeyState::Disabled)
                        .build()
                        .unwrap(),
                )
                .build()
        });
        let h = handler(&[], &[&describe]);
        let err = h.resolve(&inv(), &props(Some("k"))).await.unwrap_err().to_string();
        assert!(err.contains("KmsKeyId") && err.contains("Disabled"), "{err}");
    }

    #[tokio::test]
    async fn delete_restores_what_create_found() {
        let prior = PriorState {
            region: "eu-west-1".into(),
            enabled: false,
            kms_key_id: MANAGED.into(),
        };
        let (reads, keys) = (encryption_reads(&[true]), key_reads(&[KEY_ARN]));
        let (reset, disable, describe) = (reset_ok(), disable_ok(), describe_key_ok());
        let h = handler(&[&reads, &keys, &reset, &disable], &[&describe]);
        h.delete(&inv(), &prior.physical_id(), Some(props(Some(KEY_ARN))))
            .await
            .unwrap();
        assert_eq!((reset.num_calls(), disable.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn delete_never_disables_encryption_that_was_on_before() {
        let prior = PriorState {
            region: "eu-west-1".into(),
            enabled: true,
            kms_key_id: MANAGED.into(),
        };
        let (reads, keys, disable, reset) = (
            encryption_reads(&[true]),
            key_reads(&[MANAGED]),
            disable_ok(),
            reset_ok(),
        );
        let h = handler(&[&reads, &keys, &disable, &reset], &[]);
        h.delete(&inv(), &prior.physical_id(), Some(props(None))).await.unwrap();
        assert_eq!(disable.num_calls() + reset.num_calls(), 0);
    }

    #[tokio::test]
    async fn delete_leaves_a_key_someone_else_set_since() {
        const OTHER: &str = "arn:aws:kms:eu-west-1:111122223333:key/other";
        let prior = PriorState {
            region: "eu-west-1".into(),
            enabled: true,
            kms_key_id: MANAGED.into(),
        };
        let (reads, keys, reset, modify, describe) = (
            encryption_reads(&[true]),
            key_reads(&[OTHER]),
            reset_ok(),
            modify_ok(),
            describe_key_ok(),
        );
        let h = handler(&[&reads, &keys, &reset, &modify], &[&describe]);
        h.delete(&inv(), &prior.physical_id(), Some(props(Some(KEY_ARN))))
            .await
            .unwrap();
        assert_eq!(reset.num_calls() + modify.num_calls(), 0);
    }

    #[test]
    fn physical_id_round_trips_and_rejects_strangers() {
        let prior = PriorState {
            region: "cn-north-1".into(),
            enabled: true,
            kms_key_id: "arn:aws-cn:kms:cn-north-1:1:key/a:b".into(),
        };
        assert_eq!(PriorState::parse(&prior.physical_id()).unwrap(), prior);
        assert!(PriorState::parse("ebs-default-encryption:eu-west-1").is_err());
        assert!(PriorState::parse("something-else").is_err());
    }

    #[test]
    fn empty_key_means_the_managed_key() {
        assert_eq!(props(Some("  ")).requested_key(), None);
        assert_eq!(props(Some("alias/x")).requested_key(), Some("alias/x"));
    }
}
