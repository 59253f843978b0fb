//! Custom::AccessKeyRotation: the properties, the two triggers (custom resource and schedule), and how a
//! pass's summary becomes Data, a log line or a FAILED reason. The pass itself is in `pass.rs`.

use std::time::Duration;

use aws_sdk_iam::Client as Iam;
use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_sdk_sns::Client as Sns;
use serde::Deserialize;
use serde_json::{json, Value};
use tapguard_shared::props::{self, flex};
use tapguard_shared::{CustomResource, HandlerError, Invocation, Outcome};
use tracing::info;

use crate::pass::Summary;

const ID_PREFIX: &str = "access-key-rotation:";

/// The property names, which are also the environment variables a scheduled run reads.
pub const PROPERTY_NAMES: [&str; 9] = [
    "MaxKeyAgeDays",
    "Mode",
    "GraceDays",
    "ExemptTagKey",
    "SecretPrefix",
    "SecretKmsKeyId",
    "NotifyTopicArn",
    "DryRun",
    "FailOnUserErrors",
];

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum Mode {
    /// Report keys over age; change nothing.
    #[default]
    Audit,
    /// Give the user a new key (stored in Secrets Manager, announced on SNS), then deactivate the old one.
    Rotate,
    /// Deactivate keys over age: the user loses them (opt-in).
    Disable,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Audit => "Audit",
            Mode::Rotate => "Rotate",
            Mode::Disable => "Disable",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    #[serde(default = "default_max_key_age_days", deserialize_with = "flex::u32")]
    pub max_key_age_days: u32,
    #[serde(default)]
    pub mode: Mode,
    /// Days a deactivated key is kept before it is deleted; 0 means never delete.
    #[serde(default = "default_grace_days", deserialize_with = "flex::u32")]
    pub grace_days: u32,
    #[serde(default = "default_exempt_tag_key")]
    pub exempt_tag_key: String,
    #[serde(default = "default_secret_prefix")]
    pub secret_prefix: String,
    #[serde(default)]
    pub secret_kms_key_id: Option<String>,
    #[serde(default)]
    pub notify_topic_arn: Option<String>,
    #[serde(default, deserialize_with = "flex::bool")]
    pub dry_run: bool,
    #[serde(default = "default_true", deserialize_with = "flex::bool")]
    pub fail_on_user_errors: bool,
}

fn default_max_key_age_days() -> u32 {
    90
}
fn default_grace_days() -> u32 {
    14
}
fn default_exempt_tag_key() -> String {
    "tap:rotation-exempt".into()
}
fn default_secret_prefix() -> String {
    "tap/access-keys/".into()
}
fn default_true() -> bool {
    true
}

impl Default for Properties {
    fn default() -> Self {
        props::parse(&json!({})).expect("every property has a default")
    }
}

impl Properties {
    /// Checks what serde cannot: ranges and names AWS would refuse later, one user at a time.
    pub fn validate(&self) -> Result<(), HandlerError> {
        let invalid = |property: &str, problem: &str| {
            Err(HandlerError::InvalidProperty {
                property: property.into(),
                problem: problem.into(),
            })
        };
        if self.max_key_age_days == 0 {
            return invalid("MaxKeyAgeDays", "must be at least 1 (days)");
        }
        if self.exempt_tag_key.trim().is_empty() {
            return invalid("ExemptTagKey", "must not be empty");
        }
        if self.secret_prefix.is_empty()
            || !self
                .secret_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
        {
            return invalid(
                "SecretPrefix",
                "must be non-empty and use only letters, digits and /_+=.@- (Secrets Manager's name characters)",
            );
        }
        if let Some(topic) = self.topic() {
            if !topic.starts_with("arn:") || topic.split(':').count() != 6 {
                return invalid(
                    "NotifyTopicArn",
                    "must be an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<name>)",
                );
            }
        }
        Ok(())
    }

    pub fn topic(&self) -> Option<&str> {
        self.notify_topic_arn
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    pub fn kms_key(&self) -> Option<&str> {
        self.secret_kms_key_id
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
    }

    /// The settings of a scheduled run: environment variables named like the properties.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Properties, HandlerError> {
        let mut given = serde_json::Map::new();
        for name in PROPERTY_NAMES {
            if let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) {
                given.insert(name.to_string(), Value::String(value));
            }
        }
        let parsed: Properties = props::parse(&Value::Object(given)).map_err(in_environment)?;
        parsed.validate().map_err(in_environment)?;
        Ok(parsed)
    }
}

fn in_environment(err: HandlerError) -> HandlerError {
    match err {
        HandlerError::InvalidProperty { property, problem } => HandlerError::Failed(format!(
            "invalid environment variable {property}: {problem} (set it in the function's configuration)"
        )),
        other => other,
    }
}

/// How hard the pass works: concurrency, and how long it keeps retrying throttled calls.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Users processed at once.
    pub concurrency: usize,
    /// Attempts per call while AWS throttles (each on top of the SDK's own retries).
    pub throttle_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Waiting for GenerateCredentialReport to complete.
    pub report_poll: Duration,
    pub report_wait: Duration,
    /// No new user is started with less time than this left before the deadline.
    pub deadline_margin: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            concurrency: 8,
            throttle_attempts: 8,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(10),
            report_poll: Duration::from_secs(2),
            report_wait: Duration::from_secs(120),
            deadline_margin: Duration::from_secs(20),
        }
    }
}

pub struct AccessKeyRotation {
    pub(crate) iam: Iam,
    pub(crate) secrets: SecretsManager,
    pub(crate) sns: Sns,
    pub(crate) tuning: Tuning,
}

impl AccessKeyRotation {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(
            Iam::new(config),
            SecretsManager::new(config),
            Sns::new(config),
            Tuning::default(),
        )
    }

    pub fn from_clients(iam: Iam, secrets: SecretsManager, sns: Sns, tuning: Tuning) -> Self {
        AccessKeyRotation {
            iam,
            secrets,
            sns,
            tuning,
        }
    }

    async fn run_for_stack(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        props.validate()?;
        let summary = self.run_pass(inv, &props).await?;
        summary.log("custom resource");
        summary.verdict(&props)?;
        Ok(summary.data(Outcome::new(format!("{ID_PREFIX}{}", inv.account_id))))
    }
}

impl Summary {
    /// Data for CloudFormation: counts only (never a key id, never a secret).
    pub fn data(&self, outcome: Outcome) -> Outcome {
        outcome
            .with("UsersScanned", self.users_scanned)
            .with("KeysOverAge", self.keys_over_age)
            .with("KeysRotated", self.keys_rotated)
            .with("KeysDeactivated", self.keys_deactivated)
            .with("KeysDeleted", self.keys_deleted)
            .with("UsersExempt", self.users_exempt)
            .with("UsersSkipped", self.users_skipped)
            .with("UsersFailed", self.users_failed())
            .with("Mode", self.mode.as_str())
            .with("DryRun", self.dry_run)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "UsersScanned": self.users_scanned,
            "KeysOverAge": self.keys_over_age,
            "KeysRotated": self.keys_rotated,
            "KeysDeactivated": self.keys_deactivated,
            "KeysDeleted": self.keys_deleted,
            "UsersExempt": self.users_exempt,
            "UsersSkipped": self.users_skipped,
            "UsersFailed": self.users_failed(),
            "Mode": self.mode.as_str(),
            "DryRun": self.dry_run,
            "ThrottledRetries": self.throttled_retries,
        })
    }

    fn log(&self, trigger: &str) {
        info!(
            trigger,
            users_scanned = self.users_scanned,
            candidates = self.candidates,
            keys_over_age = self.keys_over_age,
            keys_rotated = self.keys_rotated,
            keys_deactivated = self.keys_deactivated,
            keys_deleted = self.keys_deleted,
            users_exempt = self.users_exempt,
            users_skipped = self.users_skipped,
            users_failed = self.users_failed(),
            throttled_retries = self.throttled_retries,
            mode = self.mode.as_str(),
            dry_run = self.dry_run,
            "access key rotation pass finished"
        );
    }

    /// A pass with per-user failures is FAILED unless FailOnUserErrors is false.
    pub fn verdict(&self, props: &Properties) -> Result<(), HandlerError> {
        if self.failures.is_empty() || !props.fail_on_user_errors {
            return Ok(());
        }
        let first: Vec<String> = self
            .failures
            .iter()
            .take(3)
            .map(|(user, reason)| format!("{user}: {reason}"))
            .collect();
        Err(HandlerError::Failed(format!(
            "{} of {} candidate users failed ({} scanned; rotated {}, deactivated {}, deleted {} for the others); \
             first: {} — fix the cause and update the stack, or set FailOnUserErrors to false to report such \
             failures without failing",
            self.users_failed(),
            self.candidates,
            self.users_scanned,
            self.keys_rotated,
            self.keys_deactivated,
            self.keys_deleted,
            first.join("; ")
        )))
    }
}

impl CustomResource for AccessKeyRotation {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::AccessKeyRotation";
    const ID_PREFIX: &'static str = ID_PREFIX;

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        self.run_for_stack(inv, props).await
    }

    async fn update(
        &self,
        inv: &Invocation,
        _physical_id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        self.run_for_stack(inv, props).await
    }

    async fn delete(
        &self,
        _inv: &Invocation,
        _physical_id: &str,
        _props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        // Keys, secrets and notifications belong to the users now: removing the resource undoes none of it.
        info!("Delete leaves every access key and secret as it is");
        Ok(())
    }

    async fn scheduled(&self, inv: &Invocation, _event: Value) -> Result<Value, HandlerError> {
        let props = Properties::from_lookup(|name| std::env::var(name).ok())?;
        let summary = self.run_pass(inv, &props).await?;
        summary.log("schedule");
        summary.verdict(&props)?;
        Ok(summary.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let p = Properties::default();
        assert_eq!(
            (
                p.max_key_age_days,
                p.mode,
                p.grace_days,
                p.dry_run,
                p.fail_on_user_errors
            ),
            (90, Mode::Audit, 14, false, true)
        );
        assert_eq!(p.exempt_tag_key, "tap:rotation-exempt");
        assert_eq!(p.secret_prefix, "tap/access-keys/");
        assert_eq!((p.topic(), p.kms_key()), (None, None));
    }

    #[test]
    fn cloudformation_strings_parse_and_unknown_names_are_refused() {
        let p: Properties = props::parse(&json!({"MaxKeyAgeDays": "30", "Mode": "Rotate", "DryRun": "true",
            "FailOnUserErrors": "false", "GraceDays": "0"}))
        .unwrap();
        assert_eq!(
            (
                p.max_key_age_days,
                p.mode,
                p.dry_run,
                p.fail_on_user_errors,
                p.grace_days
            ),
            (30, Mode::Rotate, true, false, 0)
        );
        let err = props::parse::<Properties>(&json!({"MaxAgeDays": "30"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("MaxAgeDays") && err.contains("unknown property"), "{err}");
        let err = props::parse::<Properties>(&json!({"Mode": "Delete"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Mode"), "{err}");
    }

    #[test]
    fn validation_names_the_property() {
        let mut p = Properties {
            max_key_age_days: 0,
            ..Default::default()
        };
        assert!(p.validate().unwrap_err().to_string().contains("MaxKeyAgeDays"));
        p.max_key_age_days = 90;
        p.secret_prefix = "keys with spaces/".into();
        assert!(p.validate().unwrap_err().to_string().contains("SecretPrefix"));
        p.secret_prefix = "tap/".into();
        p.notify_topic_arn = Some("my-topic".into());
        assert!(p.validate().unwrap_err().to_string().contains("NotifyTopicArn"));
        p.notify_topic_arn = Some("arn:aws:sns:eu-west-1:111122223333:key-rotation".into());
        p.validate().unwrap();
    }

    #[test]
    fn a_scheduled_run_reads_environment_variables_named_like_the_properties() {
        let env = |name: &str| match name {
            "Mode" => Some("Disable".to_string()),
            "MaxKeyAgeDays" => Some("45".to_string()),
            "NotifyTopicArn" => Some(String::new()),
            _ => None,
        };
        let p = Properties::from_lookup(env).unwrap();
        assert_eq!((p.mode, p.max_key_age_days, p.topic()), (Mode::Disable, 45, None));
        let err = Properties::from_lookup(|n| (n == "Mode").then(|| "Sometimes".to_string()))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid environment variable Mode"), "{err}");
    }
}
