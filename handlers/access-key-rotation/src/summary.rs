//! What one pass found and did, and how it becomes Data, a log line (the metrics' source) or a FAILED
//! reason.

use serde_json::{json, Value};
use tapguard_shared::{HandlerError, Outcome};
use tracing::info;

use crate::properties::{Mode, Properties};

/// The summary's log message; template.yml's metric filters (UsersWaiting, ...) match it.
pub const PASS_FINISHED: &str = "access key rotation pass finished";

#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub mode: Mode,
    pub dry_run: bool,
    pub users_scanned: usize,
    /// Users the report showed with a key over age (then confirmed one by one).
    pub candidates: usize,
    pub keys_over_age: usize,
    pub keys_rotated: usize,
    pub keys_deactivated: usize,
    pub keys_deleted: usize,
    /// Keys a cut pass had created and never handed over, deleted by this pass.
    pub keys_undone: usize,
    pub users_exempt: usize,
    /// Left alone because rotating them would break the 2-key limit.
    pub users_skipped: usize,
    /// Past the overlap, old key still in use: kept active.
    pub users_waiting: usize,
    /// A key this resource deactivated was reactivated by someone: left alone.
    pub users_overridden: usize,
    /// Not reached before the deadline (or the run budget): the next run starts with them.
    pub users_deferred: usize,
    /// (user, reason), in user-name order.
    pub failures: Vec<(String, String)>,
    pub throttled_retries: u64,
    /// The last user this pass started, when some were deferred: where the next run resumes.
    pub resume_after: Option<String>,
}

impl Summary {
    pub fn users_failed(&self) -> usize {
        self.failures.len()
    }

    fn counts(&self) -> [(&'static str, usize); 13] {
        [
            ("UsersScanned", self.users_scanned),
            ("KeysOverAge", self.keys_over_age),
            ("KeysRotated", self.keys_rotated),
            ("KeysDeactivated", self.keys_deactivated),
            ("KeysDeleted", self.keys_deleted),
            ("KeysUndone", self.keys_undone),
            ("UsersExempt", self.users_exempt),
            ("UsersSkipped", self.users_skipped),
            ("UsersWaiting", self.users_waiting),
            ("UsersOverridden", self.users_overridden),
            ("UsersDeferred", self.users_deferred),
            ("UsersFailed", self.users_failed()),
            ("Candidates", self.candidates),
        ]
    }

    /// Data for CloudFormation: counts only (never a key id, never a secret).
    pub fn data(&self, outcome: Outcome) -> Outcome {
        let mut outcome = outcome;
        for (name, count) in self.counts() {
            if name != "Candidates" {
                outcome = outcome.with(name, count);
            }
        }
        outcome.with("Mode", self.mode.as_str()).with("DryRun", self.dry_run)
    }

    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (name, count) in self.counts() {
            if name != "Candidates" {
                out.insert(name.into(), json!(count));
            }
        }
        out.insert("Mode".into(), json!(self.mode.as_str()));
        out.insert("DryRun".into(), json!(self.dry_run));
        out.insert("ThrottledRetries".into(), json!(self.throttled_retries));
        Value::Object(out)
    }

    pub fn log(&self, trigger: &str) {
        info!(
            trigger,
            users_scanned = self.users_scanned,
            candidates = self.candidates,
            keys_over_age = self.keys_over_age,
            keys_rotated = self.keys_rotated,
            keys_deactivated = self.keys_deactivated,
            keys_deleted = self.keys_deleted,
            keys_undone = self.keys_undone,
            users_exempt = self.users_exempt,
            users_skipped = self.users_skipped,
            users_waiting = self.users_waiting,
            users_overridden = self.users_overridden,
            users_deferred = self.users_deferred,
            users_failed = self.users_failed(),
            throttled_retries = self.throttled_retries,
            mode = self.mode.as_str(),
            dry_run = self.dry_run,
            "{PASS_FINISHED}"
        );
    }

    /// A pass with per-user failures is FAILED unless FailOnUserErrors is false. Deferred users are
    /// not failures: the next run starts with them.
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
