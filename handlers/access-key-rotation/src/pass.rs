//! One pass over the account's IAM users: the credential report picks the candidates, ListAccessKeys
//! confirms each, and the mode decides what happens to keys over age.
//!
//! The order inside a rotation is what keeps a user from being locked out: the old key is deactivated
//! only after the new key exists, its secret is stored and read back in Secrets Manager, and the user
//! has been told. Any step failing stops that user there, with the old key still active.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{AccessKey, AccessKeyMetadata, ReportStateType, StatusType};
use aws_smithy_types::date_time::Format;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tapguard_shared::{is_throttling, HandlerError, Invocation};
use tracing::{info, warn};

use crate::report::{self, ReportUser};
use crate::resource::{AccessKeyRotation, Mode, Properties, Tuning};

const DAY: i64 = 86_400;

/// What one pass found and did, over every user.
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
    pub users_exempt: usize,
    /// Users left alone because rotating them would break the 2-key limit or could lock them out.
    pub users_skipped: usize,
    /// (user, reason), in user-name order.
    pub failures: Vec<(String, String)>,
    pub throttled_retries: u64,
}

impl Summary {
    pub fn users_failed(&self) -> usize {
        self.failures.len()
    }
}

/// One access key as ListAccessKeys shows it.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    id: String,
    active: bool,
    /// Epoch seconds.
    created: i64,
}

/// What happened to one user.
#[derive(Debug, Default)]
struct UserResult {
    over_age: usize,
    rotated: usize,
    deactivated: usize,
    deleted: usize,
    exempt: bool,
    skipped: bool,
    failure: Option<String>,
}

/// What the read-back after a user's changes must show.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    Inactive(String),
    Active(String),
    Gone(String),
}

impl AccessKeyRotation {
    /// Runs one pass. Errors only when the pass cannot run at all; per-user failures are in the summary.
    pub async fn run_pass(&self, inv: &Invocation, props: &Properties) -> Result<Summary, HandlerError> {
        let pass = Pass {
            handler: self,
            inv,
            props,
            now: epoch_now(),
            throttled: AtomicU64::new(0),
        };
        inv.step("reading the IAM credential report");
        let users = pass.credential_report().await?;
        let cutoff = pass.now - i64::from(props.max_key_age_days) * DAY;
        let mut candidates: Vec<String> = users
            .iter()
            .filter(|u| u.has_key_created_before(cutoff))
            .map(|u| u.user.clone())
            .collect();
        candidates.sort();
        info!(
            users = users.len(),
            candidates = candidates.len(),
            mode = props.mode.as_str(),
            dry_run = props.dry_run,
            "credential report read"
        );

        let mut results: Vec<(String, UserResult)> = stream::iter(candidates.iter().cloned())
            .map(|user| {
                let pass = &pass;
                async move {
                    let result = pass.user(&user).await;
                    (user, result)
                }
            })
            .buffer_unordered(self.tuning.concurrency.max(1))
            .collect()
            .await;
        results.sort_by(|a, b| a.0.cmp(&b.0));

        let mut summary = Summary {
            mode: props.mode,
            dry_run: props.dry_run,
            users_scanned: users.len(),
            candidates: candidates.len(),
            ..Default::default()
        };
        for (user, r) in results {
            summary.keys_over_age += r.over_age;
            summary.keys_rotated += r.rotated;
            summary.keys_deactivated += r.deactivated;
            summary.keys_deleted += r.deleted;
            summary.users_exempt += usize::from(r.exempt);
            summary.users_skipped += usize::from(r.skipped);
            if let Some(reason) = r.failure {
                summary.failures.push((user, reason));
            }
        }
        summary.throttled_retries = pass.throttled.load(Ordering::Relaxed);
        Ok(summary)
    }
}

struct Pass<'a> {
    handler: &'a AccessKeyRotation,
    inv: &'a Invocation,
    props: &'a Properties,
    now: i64,
    throttled: AtomicU64,
}

impl Pass<'_> {
    fn tuning(&self) -> &Tuning {
        &self.handler.tuning
    }

    /// One AWS call, retried with backoff while AWS throttles: a rate limit slows the pass, never ends it.
    async fn call<T, E, F, Fut>(&self, service: &str, operation: &str, mut request: F) -> Result<T, HandlerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 1;
        loop {
            match self.inv.aws(service, operation, request()).await {
                Err(err) if rate_limited(&err) && attempt < self.tuning().throttle_attempts => {
                    self.throttled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff(self.tuning(), attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn credential_report(&self) -> Result<Vec<ReportUser>, HandlerError> {
        let iam = &self.handler.iam;
        // An existing report (AWS keeps one for 4 hours) saves generating one; keys are confirmed anyway.
        let report = match self
            .call("iam", "GetCredentialReport", || iam.get_credential_report().send())
            .await
        {
            Ok(report) => report,
            Err(err)
                if matches!(
                    err.code(),
                    Some("ReportNotPresent" | "ReportExpired" | "ReportInProgress")
                ) =>
            {
                self.generate_report().await?;
                self.call("iam", "GetCredentialReport", || iam.get_credential_report().send())
                    .await?
            }
            Err(err) => return Err(err),
        };
        let content = report.content().ok_or_else(|| {
            HandlerError::Failed(
                "GetCredentialReport answered without content: no key was examined; run the pass again".into(),
            )
        })?;
        let text = std::str::from_utf8(content.as_ref())
            .map_err(|_| HandlerError::Failed("the credential report is not UTF-8 text: no key was examined".into()))?;
        report::parse(text)
            .map_err(|problem| HandlerError::Failed(format!("the credential report could not be read: {problem}")))
    }

    async fn generate_report(&self) -> Result<(), HandlerError> {
        let started = Instant::now();
        let mut poll = Duration::from_millis(250);
        loop {
            let out = self
                .call("iam", "GenerateCredentialReport", || {
                    self.handler.iam.generate_credential_report().send()
                })
                .await?;
            if out.state() == Some(&ReportStateType::Complete) {
                return Ok(());
            }
            if started.elapsed() >= self.tuning().report_wait {
                return Err(HandlerError::Failed(format!(
                    "GenerateCredentialReport was still {} after {} s: no key was examined; run the pass again later",
                    out.state().map(|s| s.as_str()).unwrap_or("not complete"),
                    started.elapsed().as_secs()
                )));
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(self.tuning().report_poll);
        }
    }

    async fn user(&self, user: &str) -> UserResult {
        let mut result = UserResult::default();
        if self
            .inv
            .time_left()
            .is_some_and(|left| left < self.tuning().deadline_margin)
        {
            result.failure =
                Some("not examined: too little time was left before the function's deadline; raise its timeout".into());
            return result;
        }
        if let Err(err) = self.examine(user, &mut result).await {
            warn!(user, reason = %err, "user failed; the pass goes on with the others");
            result.failure = Some(err.to_string());
        }
        result
    }

    async fn examine(&self, user: &str, result: &mut UserResult) -> Result<(), HandlerError> {
        let Some(keys) = self.list_keys(user).await? else {
            return Ok(());
        };
        let over: Vec<&Key> = keys.iter().filter(|k| self.over_age(k)).collect();
        if over.is_empty() {
            // The report was older than the keys: already rotated or deleted since.
            return Ok(());
        }
        result.over_age = over.len();
        for key in &over {
            info!(
                user,
                access_key_id = key.id,
                status = if key.active { "Active" } else { "Inactive" },
                age_days = (self.now - key.created) / DAY,
                "access key over age"
            );
        }
        match self.is_exempt(user).await? {
            None => return Ok(()),
            Some(true) => {
                result.exempt = true;
                info!(
                    user,
                    tag = self.props.exempt_tag_key,
                    "user is exempt: reported, not touched"
                );
                return Ok(());
            }
            Some(false) => {}
        }
        let mut expected = Vec::new();
        let mut handled = HashSet::new();
        match self.props.mode {
            Mode::Audit => return Ok(()),
            Mode::Disable => {
                for key in keys.iter().filter(|k| k.active && self.over_age(k)) {
                    self.deactivate(user, &key.id).await?;
                    result.deactivated += 1;
                    expected.push(Expect::Inactive(key.id.clone()));
                    handled.insert(key.id.clone());
                }
            }
            Mode::Rotate => self.rotate(user, &keys, result, &mut expected, &mut handled).await?,
        }
        // Keys that were already Inactive when this pass began: delete them once past the grace period.
        for key in keys.iter().filter(|k| !k.active && !handled.contains(&k.id)) {
            if self.deletable(key).await? {
                self.delete_key(user, &key.id).await?;
                result.deleted += 1;
                expected.push(Expect::Gone(key.id.clone()));
            }
        }
        self.verify(user, &expected).await
    }

    async fn rotate(
        &self,
        user: &str,
        keys: &[Key],
        result: &mut UserResult,
        expected: &mut Vec<Expect>,
        handled: &mut HashSet<String>,
    ) -> Result<(), HandlerError> {
        let old_active: Vec<&Key> = keys.iter().filter(|k| k.active && self.over_age(k)).collect();
        let old = match old_active.as_slice() {
            [] => return Ok(()),
            [old] => *old,
            _ => {
                return self.skip(
                    user,
                    result,
                    "both access keys are active and over age: a new key would be a third; deactivate or delete one by hand",
                )
            }
        };
        match keys.iter().find(|k| k.id != old.id) {
            None => {}
            Some(other) if other.active => {
                // A rotation that stopped after storing the new key (e.g. the notification failed) is
                // recognised by the secret holding the other key: finish it instead of skipping forever.
                if self.stored_key_id(user).await?.as_deref() == Some(other.id.as_str()) {
                    info!(
                        user,
                        new_access_key_id = other.id,
                        "resuming a rotation whose new key is already stored"
                    );
                    self.announce_and_deactivate(user, &old.id, &other.id).await?;
                    result.rotated += 1;
                    result.deactivated += 1;
                    handled.insert(old.id.clone());
                    expected.push(Expect::Inactive(old.id.clone()));
                    expected.push(Expect::Active(other.id.clone()));
                    return Ok(());
                }
                return self.skip(
                    user,
                    result,
                    "both access key slots hold active keys: a new key would be a third (the IAM limit is 2); \
                     have the user retire one of them",
                );
            }
            Some(other) => {
                if !self.deletable(other).await? {
                    return self.skip(
                        user,
                        result,
                        &format!(
                            "the second slot holds inactive key {} that is not past the grace period ({} days): \
                             it is kept, so there is no room for a new key yet",
                            other.id, self.props.grace_days
                        ),
                    );
                }
                self.delete_key(user, &other.id).await?;
                result.deleted += 1;
                handled.insert(other.id.clone());
                expected.push(Expect::Gone(other.id.clone()));
            }
        }

        if self.props.dry_run {
            info!(
                user,
                old_access_key_id = old.id,
                "dry run: would create a new key, store it, notify, and deactivate the old key"
            );
            result.rotated += 1;
            result.deactivated += 1;
            handled.insert(old.id.clone());
            return Ok(());
        }
        let iam = &self.handler.iam;
        let created = self
            .call("iam", "CreateAccessKey", || {
                iam.create_access_key().user_name(user).send()
            })
            .await?;
        let new_key = created
            .access_key()
            .ok_or_else(|| HandlerError::Failed("CreateAccessKey answered without a key".into()))?;
        let new_id = new_key.access_key_id().to_string();
        let stored = self.store_secret(user, new_key).await;
        drop(created);
        if let Err(err) = stored {
            // Without its secret stored, the new key is useless and unrecoverable: take it back.
            return Err(match self.delete_key(user, &new_id).await {
                Ok(()) => HandlerError::Failed(format!(
                    "{err}; the new key {new_id} was deleted again and {} stays active",
                    old.id
                )),
                Err(delete_err) => HandlerError::Failed(format!(
                    "{err}; deleting the new key {new_id} failed too ({delete_err}): delete it by hand (its secret \
                     is lost); {} stays active",
                    old.id
                )),
            });
        }
        info!(
            user,
            new_access_key_id = new_id,
            secret = secret_name(self.props, user),
            "new access key stored"
        );
        self.announce_and_deactivate(user, &old.id, &new_id).await?;
        result.rotated += 1;
        result.deactivated += 1;
        handled.insert(old.id.clone());
        expected.push(Expect::Inactive(old.id.clone()));
        expected.push(Expect::Active(new_id));
        Ok(())
    }

    fn skip(&self, user: &str, result: &mut UserResult, why: &str) -> Result<(), HandlerError> {
        warn!(user, reason = why, "rotation skipped");
        result.skipped = true;
        Ok(())
    }

    /// Notifies (when a topic is set), then deactivates the old key: the user knows before losing it.
    async fn announce_and_deactivate(&self, user: &str, old_id: &str, new_id: &str) -> Result<(), HandlerError> {
        let secret = secret_name(self.props, user);
        if let Some(topic) = self.props.topic() {
            let message = json!({
                "Event": "AccessKeyRotated",
                "Account": self.inv.account_id,
                "UserName": user,
                "OldAccessKeyId": old_id,
                "NewAccessKeyId": new_id,
                "SecretName": secret,
                "OldKeyStatus": "Inactive",
                "DryRun": self.props.dry_run,
            })
            .to_string();
            let subject: String = format!("IAM access key rotated for {user}").chars().take(99).collect();
            if self.props.dry_run {
                info!(user, topic, "dry run: would publish the rotation notice");
            } else {
                self.call("sns", "Publish", || {
                    self.handler
                        .sns
                        .publish()
                        .topic_arn(topic)
                        .subject(&subject)
                        .message(&message)
                        .send()
                })
                .await
                .map_err(|err| {
                    HandlerError::Failed(format!(
                        "{err}; the new key {new_id} is stored in {secret} and {old_id} stays active until the \
                         notice goes out (the next pass retries)"
                    ))
                })?;
            }
        }
        self.deactivate(user, old_id).await
    }

    async fn deactivate(&self, user: &str, key_id: &str) -> Result<(), HandlerError> {
        if self.props.dry_run {
            info!(user, access_key_id = key_id, "dry run: would deactivate the key");
            return Ok(());
        }
        self.call("iam", "UpdateAccessKey", || {
            self.handler
                .iam
                .update_access_key()
                .user_name(user)
                .access_key_id(key_id)
                .status(StatusType::Inactive)
                .send()
        })
        .await?;
        info!(user, access_key_id = key_id, "access key deactivated");
        Ok(())
    }

    async fn delete_key(&self, user: &str, key_id: &str) -> Result<(), HandlerError> {
        if self.props.dry_run {
            info!(user, access_key_id = key_id, "dry run: would delete the inactive key");
            return Ok(());
        }
        self.call("iam", "DeleteAccessKey", || {
            self.handler
                .iam
                .delete_access_key()
                .user_name(user)
                .access_key_id(key_id)
                .send()
        })
        .await?;
        info!(user, access_key_id = key_id, "access key deleted");
        Ok(())
    }

    /// The grace rule. A key is deleted when it is Inactive, at least MaxKeyAgeDays + GraceDays old, and
    /// not used in the last GraceDays days. This pass deactivates a key only once it is over MaxKeyAgeDays,
    /// so such a key has been past the deactivation age for the whole grace period, and its last use
    /// (GetAccessKeyLastUsed) shows it was not active then. A key someone else deactivated recently, or
    /// a younger inactive key, is kept. GraceDays 0 keeps every inactive key.
    async fn deletable(&self, key: &Key) -> Result<bool, HandlerError> {
        let grace = i64::from(self.props.grace_days);
        if grace == 0 || key.active {
            return Ok(false);
        }
        if self.now - key.created < (i64::from(self.props.max_key_age_days) + grace) * DAY {
            return Ok(false);
        }
        let used = self
            .call("iam", "GetAccessKeyLastUsed", || {
                self.handler
                    .iam
                    .get_access_key_last_used()
                    .access_key_id(&key.id)
                    .send()
            })
            .await?;
        let last_used = used
            .access_key_last_used()
            .and_then(|u| u.last_used_date())
            .map(|d| d.secs());
        Ok(last_used.is_none_or(|t| self.now - t >= grace * DAY))
    }

    /// The user's keys; `None` when the user no longer exists (deleted since the report).
    async fn list_keys(&self, user: &str) -> Result<Option<Vec<Key>>, HandlerError> {
        let mut keys = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = match self
                .call("iam", "ListAccessKeys", || {
                    self.handler
                        .iam
                        .list_access_keys()
                        .user_name(user)
                        .set_marker(marker.clone())
                        .send()
                })
                .await
            {
                Ok(page) => page,
                Err(err) if err.code() == Some("NoSuchEntity") => return Ok(None),
                Err(err) => return Err(err),
            };
            keys.extend(page.access_key_metadata().iter().filter_map(key_of));
            match page.marker().filter(|_| page.is_truncated()) {
                Some(next) => marker = Some(next.to_string()),
                None => return Ok(Some(keys)),
            }
        }
    }

    /// Whether the user carries the exempt tag; `None` when the user no longer exists.
    async fn is_exempt(&self, user: &str) -> Result<Option<bool>, HandlerError> {
        let mut marker: Option<String> = None;
        loop {
            let page = match self
                .call("iam", "ListUserTags", || {
                    self.handler
                        .iam
                        .list_user_tags()
                        .user_name(user)
                        .set_marker(marker.clone())
                        .send()
                })
                .await
            {
                Ok(page) => page,
                Err(err) if err.code() == Some("NoSuchEntity") => return Ok(None),
                Err(err) => return Err(err),
            };
            if page.tags().iter().any(|t| t.key() == self.props.exempt_tag_key) {
                return Ok(Some(true));
            }
            match page.marker().filter(|_| page.is_truncated()) {
                Some(next) => marker = Some(next.to_string()),
                None => return Ok(Some(false)),
            }
        }
    }

    /// Stores the new key's secret and reads it back: the write counts only once it can be read.
    async fn store_secret(&self, user: &str, key: &AccessKey) -> Result<(), HandlerError> {
        let name = secret_name(self.props, user);
        let created_at = key
            .create_date()
            .and_then(|d| d.fmt(Format::DateTime).ok())
            .unwrap_or_else(|| {
                aws_smithy_types::DateTime::from_secs(self.now)
                    .fmt(Format::DateTime)
                    .unwrap_or_default()
            });
        let value = json!({
            "UserName": user,
            "AccessKeyId": key.access_key_id(),
            "SecretAccessKey": key.secret_access_key(),
            "CreatedAt": created_at,
        })
        .to_string();
        let secrets = &self.handler.secrets;
        let version = match self
            .call("secretsmanager", "CreateSecret", || {
                secrets
                    .create_secret()
                    .name(&name)
                    .description(format!("IAM access key of {user}, stored by Custom::AccessKeyRotation"))
                    .set_kms_key_id(self.props.kms_key().map(str::to_string))
                    .secret_string(&value)
                    .send()
            })
            .await
        {
            Ok(out) => out.version_id().map(str::to_string),
            Err(err) if err.code() == Some("ResourceExistsException") => self
                .call("secretsmanager", "PutSecretValue", || {
                    secrets.put_secret_value().secret_id(&name).secret_string(&value).send()
                })
                .await?
                .version_id()
                .map(str::to_string),
            Err(err) => return Err(err),
        };
        let read = self
            .call("secretsmanager", "GetSecretValue", || {
                secrets
                    .get_secret_value()
                    .secret_id(&name)
                    .set_version_id(version.clone())
                    .send()
            })
            .await?;
        if read.secret_string() != Some(value.as_str()) {
            return Err(HandlerError::NotVerified(format!(
                "GetSecretValue of {name} does not answer the value just written: check for another writer or \
                 a resource policy on the secret"
            )));
        }
        Ok(())
    }

    /// The key id the user's secret holds now, if there is one.
    async fn stored_key_id(&self, user: &str) -> Result<Option<String>, HandlerError> {
        let name = secret_name(self.props, user);
        let read = match self
            .call("secretsmanager", "GetSecretValue", || {
                self.handler.secrets.get_secret_value().secret_id(&name).send()
            })
            .await
        {
            Ok(read) => read,
            Err(err) if err.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(err) => return Err(err),
        };
        Ok(read
            .secret_string()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v.get("AccessKeyId").and_then(|id| id.as_str()).map(str::to_string)))
    }

    /// Reads the user's keys back and checks every change this pass made, and that there is no third key.
    async fn verify(&self, user: &str, expected: &[Expect]) -> Result<(), HandlerError> {
        if expected.is_empty() || self.props.dry_run {
            return Ok(());
        }
        let after = self.list_keys(user).await?.unwrap_or_default();
        let find = |id: &str| after.iter().find(|k| k.id == id);
        for expectation in expected {
            let problem = match expectation {
                Expect::Inactive(id) if find(id).is_none_or(|k| k.active) => Some(format!("{id} is not Inactive")),
                Expect::Active(id) if find(id).is_none_or(|k| !k.active) => Some(format!("{id} is not Active")),
                Expect::Gone(id) if find(id).is_some() => Some(format!("{id} still exists")),
                _ => None,
            };
            if let Some(problem) = problem {
                return Err(HandlerError::NotVerified(format!(
                    "ListAccessKeys for {user} after the changes: {problem}; check for another automation \
                     changing this user's keys"
                )));
            }
        }
        if after.len() > 2 {
            return Err(HandlerError::NotVerified(format!(
                "ListAccessKeys for {user} shows {} keys, over the limit of 2",
                after.len()
            )));
        }
        Ok(())
    }

    fn over_age(&self, key: &Key) -> bool {
        self.now - key.created > i64::from(self.props.max_key_age_days) * DAY
    }
}

fn key_of(meta: &AccessKeyMetadata) -> Option<Key> {
    Some(Key {
        id: meta.access_key_id()?.to_string(),
        active: meta.status() == Some(&StatusType::Active),
        created: meta.create_date()?.secs(),
    })
}

/// `<SecretPrefix><user>`; a comma (allowed in IAM user names, not in secret names) becomes `_`.
pub fn secret_name(props: &Properties, user: &str) -> String {
    format!("{}{}", props.secret_prefix, user.replace(',', "_"))
}

fn rate_limited(err: &HandlerError) -> bool {
    match err {
        HandlerError::Aws { code, message, .. } => is_throttling(code) || message.contains("Rate exceeded"),
        _ => false,
    }
}

/// Exponential backoff with jitter, so throttled workers do not retry in step.
fn backoff(tuning: &Tuning, attempt: u32) -> Duration {
    let ceiling = tuning
        .backoff_base
        .saturating_mul(1u32 << attempt.min(16))
        .min(tuning.backoff_cap);
    ceiling.mul_f64(rand::random_range(0.5..=1.0))
}

fn epoch_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
