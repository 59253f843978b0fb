//! Custom::AccessKeyRotation: the two triggers (custom resource and schedule), the resource's ledger
//! entry, and how a pass's summary becomes the answer. The pass itself is in `pass.rs`.
//!
//! What belongs to the resource, in the ownership ledger: its claim on the account's rotation policy
//! (`iam-access-keys/rotation-policy`: mode, ages, exemption tag, secret prefix). Two resources that
//! would rotate the same users by different rules are refused rather than left to fight; resources
//! asking for the same policy (a replacement, a rename) share the claim. Nothing is restored when the
//! last claimant goes: keys handed over and secrets belong to their users. What belongs to each user
//! (the rotation's steps) is on the user (see `state.rs`).

use aws_sdk_iam::Client as Iam;
use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_sdk_sns::Client as Sns;
use aws_sdk_sts::Client as Sts;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tapguard_shared::ledger::{self, Release};
use tapguard_shared::verify;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::properties::{Properties, Tuning};
use crate::ID_PREFIX;

pub const HANDLER: &str = "access-key-rotation";
/// Overrides the principal found with GetCallerIdentity (not set by template.yml).
pub const PRINCIPAL_VARIABLE: &str = "TAPGUARD_ROTATION_PRINCIPAL_ARN";
/// Overrides `Tuning::deadline_margin`, in seconds (not set by template.yml).
pub const MARGIN_VARIABLE: &str = "TAPGUARD_DEADLINE_MARGIN_SECS";
/// Sets `Tuning::max_users_per_run` (not set by template.yml; tests cut passes with it).
pub const MAX_USERS_VARIABLE: &str = "TAPGUARD_MAX_USERS_PER_RUN";
/// The ledger record that remembers where the last run that ran out of time stopped.
const CURSOR_KEY: &str = "schedule-cursor";

/// The one setting a Rotate or Disable resource claims: the account's rotation policy (the ledger is
/// per account and region; IAM is global, so the claim is made in the function's region).
pub fn setting() -> String {
    ledger::setting(&["iam-access-keys", "rotation-policy"])
}

/// What the claim asks for: the rules that decide what happens to a user's keys.
fn wants(props: &Properties) -> Value {
    json!({
        "Mode": props.mode.as_str(),
        "MaxKeyAgeDays": props.max_key_age_days,
        "OverlapDays": props.overlap_days,
        "GraceDays": props.grace_days,
        "ExemptTagKey": props.exempt_tag_key.to_ascii_lowercase(),
        "SecretPrefix": props.secret_prefix,
    })
}

/// The resource's own record: what its Create set in motion.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RotationRecord {
    pub mode: String,
    pub secret_prefix: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Cursor {
    resume_after: Option<String>,
}

pub struct AccessKeyRotation {
    pub(crate) iam: Iam,
    pub(crate) secrets: SecretsManager,
    pub(crate) sns: Sns,
    pub(crate) sts: Sts,
    pub(crate) ledger: Ledger,
    pub(crate) tuning: Tuning,
    /// The rotation role's ARN; found with GetCallerIdentity when not given.
    pub(crate) role_arn: Option<String>,
}

impl AccessKeyRotation {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let handler = Self::from_clients(
            Iam::new(config),
            SecretsManager::new(config),
            Sns::new(config),
            Sts::new(config),
            Ledger::new(config, HANDLER),
            Tuning::default(),
        );
        // Where the caller is not an IAM role or user (the emulator's test credentials), the principal
        // the secrets' policy exempts is given explicitly.
        let mut handler = match std::env::var(PRINCIPAL_VARIABLE).ok().filter(|v| !v.trim().is_empty()) {
            Some(arn) => handler.with_role_arn(arn),
            None => handler,
        };
        // Tests and the benchmark cut passes short with short deadlines.
        if let Some(secs) = std::env::var(MARGIN_VARIABLE).ok().and_then(|v| v.trim().parse().ok()) {
            handler.tuning.deadline_margin = std::time::Duration::from_secs(secs);
        }
        if let Some(max) = std::env::var(MAX_USERS_VARIABLE)
            .ok()
            .and_then(|v| v.trim().parse().ok())
        {
            handler.tuning.max_users_per_run = Some(max);
        }
        handler
    }

    pub fn from_clients(iam: Iam, secrets: SecretsManager, sns: Sns, sts: Sts, ledger: Ledger, tuning: Tuning) -> Self {
        AccessKeyRotation {
            iam,
            secrets,
            sns,
            sts,
            ledger,
            tuning,
            role_arn: None,
        }
    }

    /// Uses this role ARN in the secrets' policy instead of asking STS.
    pub fn with_role_arn(mut self, arn: impl Into<String>) -> Self {
        self.role_arn = Some(arn.into());
        self
    }

    fn key_of(physical_id: &str) -> String {
        ledger::key_of(ID_PREFIX, physical_id).unwrap_or_else(|| ledger::legacy_key(physical_id))
    }

    /// Records and claims (Rotate and Disable change keys; Audit and dry runs change nothing and claim
    /// nothing), then runs the pass.
    /// `update`: an Update that no longer writes gives up the claim an earlier version of it made.
    async fn converge(
        &self,
        inv: &Invocation,
        key: &str,
        props: &Properties,
        update: bool,
    ) -> Result<crate::Summary, HandlerError> {
        props.validate()?;
        if props.writes() {
            let record = RotationRecord {
                mode: props.mode.as_str().into(),
                secret_prefix: props.secret_prefix.clone(),
            };
            let mut entry = self.ledger.begin(inv, key, &[setting()], record.clone()).await?;
            if entry.state != record {
                entry.state = record;
                self.ledger.save(inv, key, &entry).await?;
            }
            // Nothing to restore when the last claimant goes: `exists: false` says this resource made the
            // policy, and no key or secret is taken back.
            self.ledger
                .claim(inv, key, &setting(), wants(props), Some(json!({"exists": false})))
                .await?;
        } else if update {
            self.release(inv, key).await?;
        }
        // A Create or Update is a new pass (its properties may be new): from the first user. Cut short,
        // it leaves the resume point for the scheduled runs.
        let summary = self.pass_with_cursor(inv, props, false).await?;
        summary.log("custom resource");
        summary.verdict(props)?;
        Ok(summary)
    }

    /// A run of a pass that resumes (`resume`) where the last run that ran out of time stopped, and
    /// remembers where it stopped in turn; a run that reaches the last user completes the pass and clears
    /// the resume point.
    async fn pass_with_cursor(
        &self,
        inv: &Invocation,
        props: &Properties,
        resume: bool,
    ) -> Result<crate::Summary, HandlerError> {
        let saved = if props.writes() {
            match self.ledger.load::<Cursor>(inv, CURSOR_KEY).await {
                Ok(record) => record.map(|r| r.state).unwrap_or_default(),
                Err(err) => {
                    warn!(reason = %err, "the resume point could not be read: the pass starts from the first user");
                    Cursor::default()
                }
            }
        } else {
            Cursor::default()
        };
        let from = if resume { saved.resume_after.as_deref() } else { None };
        let summary = self.run_pass(inv, props, from).await?;
        let next = if summary.resume_after.is_none() && summary.users_deferred > 0 {
            // Cut before it started any user: the resume point stays where it was.
            saved.clone()
        } else {
            Cursor {
                resume_after: summary.resume_after.clone(),
            }
        };
        if props.writes() && next != saved {
            let record = self.ledger.record(inv, next);
            if let Err(err) = self.ledger.save(inv, CURSOR_KEY, &record).await {
                warn!(reason = %err, "the resume point could not be saved: the next run starts from the first user");
            }
        }
        Ok(summary)
    }

    /// Gives up this resource's claim and record. Keys and secrets stay: they belong to their users.
    async fn release(&self, inv: &Invocation, key: &str) -> Result<(), HandlerError> {
        match self.ledger.release(inv, key, &setting()).await? {
            Release::StillClaimed(others) => info!(
                claimants = others.len(),
                "the rotation policy is still claimed by other resources"
            ),
            Release::Last { .. } | Release::Unclaimed => {}
        }
        self.ledger.forget(inv, key).await
    }
}

impl CustomResource for AccessKeyRotation {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::AccessKeyRotation";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call (the fault matrix in tests/fault_matrix.rs injects
    /// each fault into each one, and fails on any call not listed here).
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        // The credential report, the users' keys and the rotation's state on them.
        ("iam", "GetCredentialReport"),
        ("iam", "GenerateCredentialReport"),
        ("iam", "ListAccessKeys"),
        ("iam", "ListUserTags"),
        ("iam", "TagUser"),
        ("iam", "UntagUser"),
        ("iam", "CreateAccessKey"),
        ("iam", "UpdateAccessKey"),
        ("iam", "DeleteAccessKey"),
        ("iam", "GetAccessKeyLastUsed"),
        // Where a new key is handed over.
        ("secretsmanager", "DescribeSecret"),
        ("secretsmanager", "CreateSecret"),
        ("secretsmanager", "PutResourcePolicy"),
        ("secretsmanager", "PutSecretValue"),
        ("secretsmanager", "GetSecretValue"),
        // Only in the undo of a hand-over: the empty secret it created (see `secrets::delete_unwritten`).
        ("secretsmanager", "DeleteSecret"),
        ("sns", "Publish"),
        // The rotation role's ARN for the secrets' policy (unless given).
        ("sts", "GetCallerIdentity"),
        // The ownership ledger and the schedule's resume point.
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let key = inv.request_id.clone();
        let summary = self.converge(inv, &key, &props, false).await?;
        Ok(summary.data(Outcome::new(ledger::physical_id(ID_PREFIX, &inv.region, &key))))
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        // The physical id stays (an old-format `access-key-rotation:<account>` one too): a new id would
        // mean replacement.
        let summary = self.converge(inv, &Self::key_of(physical_id), &props, true).await?;
        Ok(summary.data(Outcome::new(physical_id)))
    }

    async fn delete(
        &self,
        inv: &Invocation,
        physical_id: &str,
        _props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        // Keys, secrets and notices belong to the users now: removing the resource undoes none of it.
        info!("Delete leaves every access key and secret as it is and gives up the resource's claim");
        self.release(inv, &Self::key_of(physical_id)).await
    }

    /// A failed Create (an error, the deadline, a panic): every rotation it left half-way is finished or
    /// undone as the next pass would (a key never handed over is deleted, and the empty secret its
    /// hand-over created with it; one handed over stays, with its old key still active), then the claim
    /// and the record go.
    async fn undo_create(
        &self,
        inv: &Invocation,
        request_id: &str,
        props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        if let Some(props) = props.filter(|p| p.writes() && p.validate().is_ok()) {
            let summary = self.recover_only(inv, &props).await?;
            info!(
                keys_undone = summary.keys_undone,
                keys_rotated = summary.keys_rotated,
                users_failed = summary.users_failed(),
                "rotations the failed Create left half-way were finished or undone"
            );
            if let Some((user, reason)) = summary.failures.first() {
                return Err(HandlerError::Failed(format!(
                    "undoing the failed Create: {user}: {reason}; the user's tag tap:rotation-intent stays, so the \
                     next scheduled pass finishes or undoes it"
                )));
            }
        }
        self.release(inv, request_id).await
    }

    /// Read-only (it never rotates): see `verify.rs`.
    async fn verify(&self, inv: &Invocation) -> Result<Vec<verify::ResourceReport>, HandlerError> {
        verify::pass(self, inv).await
    }

    async fn scheduled(&self, inv: &Invocation, _event: Value) -> Result<Value, HandlerError> {
        let props = Properties::from_lookup(|name| std::env::var(name).ok())?;
        let summary = self.pass_with_cursor(inv, &props, true).await?;
        summary.log("schedule");
        summary.verdict(&props)?;
        Ok(summary.to_json())
    }
}
