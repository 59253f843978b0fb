//! The resource's properties (also the environment variables of a scheduled run), their validation, and
//! how hard a pass works (`Tuning`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tapguard_shared::props::{self, flex};
use tapguard_shared::HandlerError;

/// The property names, which are also the environment variables a scheduled run reads.
pub const PROPERTY_NAMES: [&str; 11] = [
    "MaxKeyAgeDays",
    "Mode",
    "OverlapDays",
    "GraceDays",
    "ExemptTagKey",
    "SecretPrefix",
    "SecretKmsKeyId",
    "SecretReaderArns",
    "NotifyTopicArn",
    "DryRun",
    "FailOnUserErrors",
];

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum Mode {
    /// Report keys over age; change nothing.
    #[default]
    Audit,
    /// Hand the user a new key (stored in Secrets Manager, announced on SNS) and keep the old one active
    /// through the overlap; deactivate it only once it is no longer used.
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
    /// Days the old key stays active after the new one was handed over.
    #[serde(default = "default_overlap_days", deserialize_with = "flex::u32")]
    pub overlap_days: u32,
    /// Days a deactivated key is kept before it is deleted; 0 means never delete (not with Rotate).
    #[serde(default = "default_grace_days", deserialize_with = "flex::u32")]
    pub grace_days: u32,
    #[serde(default = "default_exempt_tag_key")]
    pub exempt_tag_key: String,
    #[serde(default = "default_secret_prefix")]
    pub secret_prefix: String,
    #[serde(default)]
    pub secret_kms_key_id: Option<String>,
    /// Principals (IAM ARNs) allowed to read every rotated secret besides its user.
    #[serde(default, deserialize_with = "string_list")]
    pub secret_reader_arns: Vec<String>,
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
fn default_overlap_days() -> u32 {
    7
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

/// A list given as a JSON array (CloudFormation's CommaDelimitedList) or as one comma-separated string
/// (an environment variable); empty entries are dropped.
fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items: Vec<String> = match Value::deserialize(d)? {
        Value::Null => Vec::new(),
        Value::String(s) => s.split(',').map(str::to_string).collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(serde::de::Error::custom(format!("expected ARN strings, found {other}"))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a list of ARNs, found {other}"
            )))
        }
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

impl Default for Properties {
    fn default() -> Self {
        props::parse(&json!({})).expect("every property has a default")
    }
}

impl Properties {
    /// Checks what serde cannot: ranges, names AWS would refuse later one user at a time, and settings
    /// that would stall rotation or leave users uninformed.
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
        for reader in &self.secret_reader_arns {
            if !reader.starts_with("arn:") || !reader.contains(":iam::") {
                return invalid(
                    "SecretReaderArns",
                    "each entry must be an IAM principal ARN (arn:<partition>:iam::<account>:role/<name> or user/<name>)",
                );
            }
        }
        if self.mode == Mode::Rotate {
            if self.topic().is_none() {
                return invalid(
                    "NotifyTopicArn",
                    "is required with Mode Rotate: without it nobody is told that a new key is waiting in Secrets \
                     Manager, nor that an old key is still in use; create an SNS topic the key owners (or their \
                     team) subscribe to and give its ARN, or use Mode Audit",
                );
            }
            if self.grace_days == 0 {
                return invalid(
                    "GraceDays",
                    "must be at least 1 with Mode Rotate: 0 keeps every deactivated key for ever, so the user's \
                     second key slot never frees up and rotation stops after one cycle; give the days a \
                     deactivated key is kept before it is deleted (default 14)",
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

    /// Whether this pass may change keys, tags, secrets (never in Audit, never in a dry run).
    pub fn writes(&self) -> bool {
        self.mode != Mode::Audit && !self.dry_run
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

/// How hard the pass works: concurrency, how long it keeps retrying throttled calls, and how much of
/// the invocation it may use.
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
    /// No new user is started once the pass has run this long (the benchmark's stand-in for a shorter
    /// Lambda timeout); `None`: only the deadline counts.
    pub run_budget: Option<Duration>,
    /// No new user is started once this many were (tests cut passes with it); `None`: no limit.
    pub max_users_per_run: Option<usize>,
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
            run_budget: None,
            max_users_per_run: None,
        }
    }
}
