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
use aws_sdk_iam::operation::list_access_keys::ListAccessKeysOutput;
use aws_sdk_iam::operation::list_user_tags::ListUserTagsOutput;
use aws_sdk_iam::types::{AccessKey, AccessKeyMetadata, ReportStateType, StatusType};
use aws_smithy_types::date_time::Format;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tapguard_shared::{is_throttling, HandlerError, Invocation};
use tracing::{info, warn};

use crate::report::{self, ReportUser};
use crate::resource::{AccessKeyRotation, Mode, Properties, Tuning};

const DAY: i64 = 86_400;

/// The user tag that records when this pass deactivated a key: `tap:rotation-deactivated:<key id>` =
/// the time. IAM keeps no deactivation date, and without it a key that was long over age when it was
/// deactivated would look past its grace period the day after.
pub const DEACTIVATED_TAG_PREFIX: &str = "tap:rotation-deactivated:";

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

/// What the user's tags say: exempt or not, and when this pass deactivated which key.
#[derive(Debug, Default)]
struct UserTags {
    exempt: bool,
    /// Key id -> epoch seconds of its deactivation by this pass.
    deactivated: std::collections::HashMap<String, i64>,
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
        let Some(tags) = self.user_tags(user).await? else {
            return Ok(());
        };
        if tags.exempt {
            result.exempt = true;
            info!(
                user,
                tag = self.props.exempt_tag_key,
                "user is exempt: reported, not touched"
            );
            return Ok(());
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
            Mode::Rotate => {
                self.rotate(user, &keys, &tags, result, &mut expected, &mut handled)
                    .await?
            }
        }
        // Keys that were already Inactive when this pass began: delete them once past the grace period.
        for key in keys.iter().filter(|k| !k.active && !handled.contains(&k.id)) {
            if self.deletable(key, &tags).await? {
                self.delete_expired(user, &key.id, &tags).await?;
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
        tags: &UserTags,
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
                if !self.deletable(other, tags).await? {
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
                self.delete_expired(user, &other.id, tags).await?;
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
        // The date first: a key this pass deactivated always carries it, so its grace period is known.
        let marker = aws_sdk_iam::types::Tag::builder()
            .key(format!("{DEACTIVATED_TAG_PREFIX}{key_id}"))
            .value(
                aws_smithy_types::DateTime::from_secs(epoch_now())
                    .fmt(Format::DateTime)
                    .unwrap_or_default(),
            )
            .build()
            .map_err(|err| HandlerError::Failed(format!("building the deactivation tag: {err}")))?;
        self.call("iam", "TagUser", || {
            self.handler.iam.tag_user().user_name(user).tags(marker.clone()).send()
        })
        .await?;
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

    /// Deletes an inactive key past its grace period, and the date this pass recorded for it.
    async fn delete_expired(&self, user: &str, key_id: &str, tags: &UserTags) -> Result<(), HandlerError> {
        self.delete_key(user, key_id).await?;
        if self.props.dry_run || !tags.deactivated.contains_key(key_id) {
            return Ok(());
        }
        let tag_key = format!("{DEACTIVATED_TAG_PREFIX}{key_id}");
        if let Err(err) = self
            .call("iam", "UntagUser", || {
                self.handler.iam.untag_user().user_name(user).tag_keys(&tag_key).send()
            })
            .await
        {
            // The key is gone, which is what counts; a stale date names a key that no longer exists.
            warn!(user, tag = tag_key, reason = %err, "the deactivation date tag could not be removed");
        }
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

    /// The grace rule (see the README). A key is deleted when it is Inactive, at least
    /// MaxKeyAgeDays + GraceDays old, not used in the last GraceDays days (GetAccessKeyLastUsed), and, when
    /// this pass deactivated it, deactivated at least GraceDays ago (the user's deactivation tag). This
    /// pass deactivates a key only once it is over MaxKeyAgeDays, so an older inactive key has been past
    /// the deactivation age for the whole grace period; its last use shows nobody relied on it then.
    /// GraceDays 0 keeps every inactive key.
    async fn deletable(&self, key: &Key, tags: &UserTags) -> Result<bool, HandlerError> {
        let grace = i64::from(self.props.grace_days);
        if grace == 0 || key.active {
            return Ok(false);
        }
        if self.now - key.created < (i64::from(self.props.max_key_age_days) + grace) * DAY {
            return Ok(false);
        }
        if tags
            .deactivated
            .get(&key.id)
            .is_some_and(|&at| self.now - at < grace * DAY)
        {
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

    /// Every page of one of a user's IAM listings; `None` when the user no longer exists (deleted since
    /// the report). Each page goes through `call`, so a throttled page is retried on its own.
    async fn user_pages<P, E, F, Fut>(&self, operation: &str, mut fetch: F) -> Result<Option<Vec<P>>, HandlerError>
    where
        P: IamPage,
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<P, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut pages = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = match self.call("iam", operation, || fetch(marker.clone())).await {
                Ok(page) => page,
                Err(err) if err.code() == Some("NoSuchEntity") => return Ok(None),
                Err(err) => return Err(err),
            };
            marker = page.next_marker();
            pages.push(page);
            if marker.is_none() {
                return Ok(Some(pages));
            }
        }
    }

    /// The user's keys; `None` when the user no longer exists (deleted since the report).
    async fn list_keys(&self, user: &str) -> Result<Option<Vec<Key>>, HandlerError> {
        let iam = &self.handler.iam;
        let pages = self
            .user_pages("ListAccessKeys", |marker| {
                iam.list_access_keys().user_name(user).set_marker(marker).send()
            })
            .await?;
        Ok(pages.map(|pages| {
            pages
                .iter()
                .flat_map(|page| page.access_key_metadata().iter().filter_map(key_of))
                .collect()
        }))
    }

    /// The user's exemption and deactivation dates; `None` when the user no longer exists.
    async fn user_tags(&self, user: &str) -> Result<Option<UserTags>, HandlerError> {
        let iam = &self.handler.iam;
        let Some(pages) = self
            .user_pages("ListUserTags", |marker| {
                iam.list_user_tags().user_name(user).set_marker(marker).send()
            })
            .await?
        else {
            return Ok(None);
        };
        let mut tags = UserTags::default();
        for tag in pages.iter().flat_map(|page| page.tags()) {
            if tag.key() == self.props.exempt_tag_key {
                tags.exempt = true;
            } else if let Some(key_id) = tag.key().strip_prefix(DEACTIVATED_TAG_PREFIX) {
                // An unreadable date counts as today: the key is kept rather than deleted early.
                let at = report::parse_timestamp(tag.value()).unwrap_or(self.now);
                tags.deactivated.insert(key_id.to_string(), at);
            }
        }
        Ok(Some(tags))
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

/// An IAM listing page: where the next one starts, if there is one.
trait IamPage {
    fn next_marker(&self) -> Option<String>;
}

impl IamPage for ListAccessKeysOutput {
    fn next_marker(&self) -> Option<String> {
        self.marker().filter(|_| self.is_truncated()).map(str::to_string)
    }
}

impl IamPage for ListUserTagsOutput {
    fn next_marker(&self) -> Option<String> {
        self.marker().filter(|_| self.is_truncated()).map(str::to_string)
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use aws_sdk_iam::config::retry::RetryConfig;
    use aws_sdk_iam::operation::create_access_key::{CreateAccessKeyError, CreateAccessKeyOutput};
    use aws_sdk_iam::operation::delete_access_key::DeleteAccessKeyOutput;
    use aws_sdk_iam::operation::generate_credential_report::GenerateCredentialReportOutput;
    use aws_sdk_iam::operation::get_access_key_last_used::GetAccessKeyLastUsedOutput;
    use aws_sdk_iam::operation::get_credential_report::{GetCredentialReportError, GetCredentialReportOutput};
    use aws_sdk_iam::operation::list_access_keys::{ListAccessKeysError, ListAccessKeysOutput};
    use aws_sdk_iam::operation::list_user_tags::ListUserTagsOutput;
    use aws_sdk_iam::operation::tag_user::TagUserOutput;
    use aws_sdk_iam::operation::untag_user::UntagUserOutput;
    use aws_sdk_iam::operation::update_access_key::{UpdateAccessKeyError, UpdateAccessKeyOutput};
    use aws_sdk_iam::types::Tag;
    use aws_sdk_iam::Client as Iam;
    use aws_sdk_secretsmanager::operation::create_secret::{CreateSecretError, CreateSecretOutput};
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;
    use aws_sdk_secretsmanager::Client as SecretsManager;
    use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
    use aws_sdk_sns::Client as Sns;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;
    use aws_smithy_types::{Blob, DateTime};

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNEWSECRETKEY";
    const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:key-rotation";
    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    fn inv() -> Invocation {
        Invocation::detached("eu-west-1", "111122223333")
    }

    fn ago(days: i64) -> i64 {
        epoch_now() - days * DAY
    }

    fn stamp(secs: i64) -> String {
        DateTime::from_secs(secs).fmt(Format::DateTime).unwrap()
    }

    /// (id, active, age in days)
    type K = (&'static str, bool, i64);

    fn report_rule(users: &[(&'static str, &'static [K])]) -> Rule {
        let mut csv = format!("{HEADER}\n");
        for (user, keys) in users {
            let slot = |i: usize| match keys.get(i) {
                Some((_, active, age)) => format!("{active},{},N/A,N/A,N/A", stamp(ago(*age))),
                None => "false,N/A,N/A,N/A,N/A".to_string(),
            };
            csv.push_str(&format!(
                "{user},arn:aws:iam::111122223333:user/{user},2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,{},{},false,N/A,false,N/A\n",
                slot(0),
                slot(1)
            ));
        }
        mock!(Iam::get_credential_report).then_output(move || {
            GetCredentialReportOutput::builder()
                .content(Blob::new(csv.clone()))
                .build()
        })
    }

    fn metadata(user: &str, keys: &[K]) -> ListAccessKeysOutput {
        ListAccessKeysOutput::builder()
            .set_access_key_metadata(Some(
                keys.iter()
                    .map(|(id, active, age)| {
                        AccessKeyMetadata::builder()
                            .user_name(user)
                            .access_key_id(*id)
                            .status(if *active {
                                StatusType::Active
                            } else {
                                StatusType::Inactive
                            })
                            .create_date(DateTime::from_secs(ago(*age)))
                            .build()
                    })
                    .collect(),
            ))
            .build()
            .unwrap()
    }

    /// ListAccessKeys for `user`: `before` on the first call, `after` on later ones (the read-back).
    fn keys_rule(user: &'static str, before: &'static [K], after: &'static [K]) -> Rule {
        mock!(Iam::list_access_keys)
            .match_requests(move |r| r.user_name() == Some(user))
            .sequence()
            .output(move || metadata(user, before))
            .output(move || metadata(user, after))
            .repeatedly()
            .build()
    }

    fn tags_rule(exempt_users: &'static [&'static str]) -> Rule {
        mock!(Iam::list_user_tags).then_compute_output(move |r| {
            let exempt = exempt_users.contains(&r.user_name().unwrap_or_default());
            let tags = if exempt {
                vec![Tag::builder()
                    .key("tap:rotation-exempt")
                    .value("break-glass")
                    .build()
                    .unwrap()]
            } else {
                vec![Tag::builder().key("team").value("data").build().unwrap()]
            };
            ListUserTagsOutput::builder().set_tags(Some(tags)).build().unwrap()
        })
    }

    fn never_used() -> Rule {
        mock!(Iam::get_access_key_last_used).then_output(|| GetAccessKeyLastUsedOutput::builder().build())
    }

    fn create_key_rule(log: &Log, new_id: &'static str) -> Rule {
        let log = log.clone();
        mock!(Iam::create_access_key).then_compute_output(move |r| {
            log.push(format!("CreateAccessKey {}", r.user_name().unwrap_or_default()));
            CreateAccessKeyOutput::builder()
                .access_key(
                    aws_sdk_iam::types::AccessKey::builder()
                        .user_name(r.user_name().unwrap_or_default())
                        .access_key_id(new_id)
                        .status(StatusType::Active)
                        .secret_access_key(SECRET)
                        .create_date(DateTime::from_secs(epoch_now()))
                        .build()
                        .unwrap(),
                )
                .build()
        })
    }

    fn update_rule(log: &Log) -> Rule {
        let log = log.clone();
        mock!(Iam::update_access_key).then_compute_output(move |r| {
            log.push(format!(
                "UpdateAccessKey {} {}",
                r.access_key_id().unwrap_or_default(),
                r.status().map(|s| s.as_str()).unwrap_or_default()
            ));
            UpdateAccessKeyOutput::builder().build()
        })
    }

    fn tag_rule(log: &Log) -> Rule {
        let log = log.clone();
        mock!(Iam::tag_user).then_compute_output(move |r| {
            let tag = &r.tags()[0];
            assert!(tag.value().ends_with('Z'), "the deactivation date is a timestamp");
            log.push(format!("TagUser {} {}", r.user_name().unwrap_or_default(), tag.key()));
            TagUserOutput::builder().build()
        })
    }

    fn untag_rule(log: &Log) -> Rule {
        let log = log.clone();
        mock!(Iam::untag_user).then_compute_output(move |r| {
            log.push(format!(
                "UntagUser {} {}",
                r.user_name().unwrap_or_default(),
                r.tag_keys()[0]
            ));
            UntagUserOutput::builder().build()
        })
    }

    fn delete_rule(log: &Log) -> Rule {
        let log = log.clone();
        mock!(Iam::delete_access_key).then_compute_output(move |r| {
            log.push(format!("DeleteAccessKey {}", r.access_key_id().unwrap_or_default()));
            DeleteAccessKeyOutput::builder().build()
        })
    }

    /// Secrets Manager that stores what it is given and answers it back.
    fn secret_store(log: &Log) -> (Rule, Rule, Rule) {
        let stored: Arc<Mutex<Option<String>>> = Arc::default();
        let (log1, stored1) = (log.clone(), stored.clone());
        let create = mock!(SecretsManager::create_secret).then_compute_output(move |r| {
            log1.push(format!("CreateSecret {}", r.name().unwrap_or_default()));
            log1.secrets
                .lock()
                .unwrap()
                .push(r.secret_string().unwrap_or_default().to_string());
            *stored1.lock().unwrap() = r.secret_string().map(str::to_string);
            CreateSecretOutput::builder()
                .name(r.name().unwrap_or_default())
                .version_id("v1")
                .build()
        });
        let put = mock!(SecretsManager::put_secret_value).then_output(|| PutSecretValueOutput::builder().build());
        let stored2 = stored.clone();
        let get = mock!(SecretsManager::get_secret_value).then_compute_output(move |_| {
            let mut out = GetSecretValueOutput::builder().version_id("v1");
            if let Some(value) = stored2.lock().unwrap().clone() {
                out = out.secret_string(value);
            }
            out.build()
        });
        (create, put, get)
    }

    fn publish_rule(log: &Log) -> Rule {
        let log = log.clone();
        mock!(Sns::publish).then_compute_output(move |r| {
            log.push("Publish".to_string());
            log.messages
                .lock()
                .unwrap()
                .push(r.message().unwrap_or_default().to_string());
            PublishOutput::builder().message_id("m-1").build()
        })
    }

    /// The order of the mutating calls, and what was sent where a secret could leak.
    #[derive(Clone, Default)]
    struct Log {
        calls: Arc<Mutex<Vec<String>>>,
        secrets: Arc<Mutex<Vec<String>>>,
        messages: Arc<Mutex<Vec<String>>>,
    }

    impl Log {
        fn push(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    fn error_metadata(code: &str) -> ErrorMetadata {
        ErrorMetadata::builder()
            .code(code)
            .message(format!("{code} from the mock"))
            .build()
    }

    fn fast() -> Tuning {
        Tuning {
            concurrency: 4,
            throttle_attempts: 8,
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(5),
            report_poll: Duration::from_millis(1),
            report_wait: Duration::from_secs(5),
            deadline_margin: Duration::from_secs(1),
        }
    }

    fn handler(iam: &[&Rule], secrets: &[&Rule], sns: &[&Rule]) -> AccessKeyRotation {
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, iam, |c| c
            .retry_config(RetryConfig::disabled()));
        let secrets = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, secrets, |c| c
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()));
        let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, sns, |c| c
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled()));
        AccessKeyRotation::from_clients(iam, secrets, sns, fast())
    }

    /// A handler whose TagUser/UntagUser calls (the deactivation dates) are recorded in `log`.
    fn handler_logged(log: &Log, iam: &[&Rule], secrets: &[&Rule], sns: &[&Rule]) -> AccessKeyRotation {
        let (tag, untag) = (tag_rule(log), untag_rule(log));
        let mut rules = iam.to_vec();
        rules.extend([&tag, &untag]);
        handler(&rules, secrets, sns)
    }

    fn props(mode: Mode) -> Properties {
        Properties {
            mode,
            notify_topic_arn: Some(TOPIC.into()),
            ..Default::default()
        }
    }

    const OLD: &[K] = &[("AKIAOLD0000000000001", true, 120)];
    const FRESH: &[K] = &[("AKIAFRESH00000000001", true, 10)];
    const ROTATED: &[K] = &[("AKIAOLD0000000000001", false, 120), ("AKIANEW0000000000001", true, 0)];

    #[tokio::test]
    async fn audit_reports_keys_over_age_and_changes_nothing() {
        let log = Log::default();
        let report = report_rule(&[
            ("alice", OLD),
            ("bob", FRESH),
            ("carol", &[("AKIAOLDINACTIVE00001", false, 200)]),
        ]);
        let (alice, carol) = (
            keys_rule("alice", OLD, OLD),
            keys_rule("carol", &[("AKIAOLDINACTIVE00001", false, 200)], &[]),
        );
        let (tags, create, update, delete) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
        );
        let h = handler_logged(
            &log,
            &[&report, &alice, &carol, &tags, &create, &update, &delete],
            &[],
            &[],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Audit)).await.unwrap();
        assert_eq!(
            (summary.users_scanned, summary.candidates, summary.keys_over_age),
            (3, 2, 2)
        );
        assert_eq!(
            (summary.keys_rotated, summary.keys_deactivated, summary.keys_deleted),
            (0, 0, 0)
        );
        assert!(log.calls().is_empty(), "Audit changed something: {:?}", log.calls());
        assert_eq!(
            alice.num_calls() + carol.num_calls(),
            2,
            "each candidate is confirmed once; bob is not listed"
        );
    }

    #[tokio::test]
    async fn rotate_stores_and_announces_the_new_key_before_deactivating_the_old_one() {
        let log = Log::default();
        let report = report_rule(&[("alice", OLD)]);
        let keys = keys_rule("alice", OLD, ROTATED);
        let (tags, create, update, delete) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
        );
        let (sm_create, sm_put, sm_get) = secret_store(&log);
        let publish = publish_rule(&log);
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update, &delete],
            &[&sm_create, &sm_put, &sm_get],
            &[&publish],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        assert_eq!(
            (summary.keys_rotated, summary.keys_deactivated, summary.keys_deleted),
            (1, 1, 0)
        );
        assert_eq!(
            log.calls(),
            vec![
                "CreateAccessKey alice",
                "CreateSecret tap/access-keys/alice",
                "Publish",
                "TagUser alice tap:rotation-deactivated:AKIAOLD0000000000001",
                "UpdateAccessKey AKIAOLD0000000000001 Inactive"
            ]
        );
        assert_eq!(sm_get.num_calls(), 1, "the stored secret is read back");
        assert_eq!(keys.num_calls(), 2, "the keys are read back after the change");

        let stored: serde_json::Value = serde_json::from_str(&log.secrets.lock().unwrap()[0]).unwrap();
        assert_eq!(stored["UserName"], "alice");
        assert_eq!(stored["AccessKeyId"], "AKIANEW0000000000001");
        assert_eq!(stored["SecretAccessKey"], SECRET);
        assert!(stored["CreatedAt"].as_str().is_some_and(|d| d.ends_with('Z')));
        let notice = log.messages.lock().unwrap()[0].clone();
        assert!(!notice.contains(SECRET), "the notice carries the secret: {notice}");
        let notice: serde_json::Value = serde_json::from_str(&notice).unwrap();
        assert_eq!(
            (
                notice["OldAccessKeyId"].as_str(),
                notice["NewAccessKeyId"].as_str(),
                notice["SecretName"].as_str()
            ),
            (
                Some("AKIAOLD0000000000001"),
                Some("AKIANEW0000000000001"),
                Some("tap/access-keys/alice")
            )
        );
        let data = format!("{:?}", summary.data(tapguard_shared::Outcome::new("x")).data);
        assert!(!data.contains(SECRET) && !format!("{:?}", summary.to_json()).contains(SECRET));
    }

    #[tokio::test]
    async fn two_active_keys_are_skipped_and_no_third_key_is_created() {
        let log = Log::default();
        const BOTH: &[K] = &[("AKIAOLD0000000000001", true, 120), ("AKIASECOND0000000001", true, 30)];
        let report = report_rule(&[("alice", BOTH)]);
        let keys = keys_rule("alice", BOTH, BOTH);
        let (tags, create, update, delete, used) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
            never_used(),
        );
        // The secret holds some other key: this is not an unfinished rotation of ours.
        let other_secret = mock!(SecretsManager::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(r#"{"AccessKeyId":"AKIASOMETHINGELSE001"}"#)
                .build()
        });
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update, &delete, &used],
            &[&other_secret],
            &[],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert_eq!(
            (summary.users_skipped, summary.keys_rotated, summary.users_failed()),
            (1, 0, 0)
        );
        assert!(log.calls().is_empty(), "{:?}", log.calls());
    }

    #[tokio::test]
    async fn an_inactive_second_key_past_the_grace_period_is_deleted_first() {
        let log = Log::default();
        const BEFORE: &[K] = &[
            ("AKIAOLD0000000000001", true, 120),
            ("AKIAOLDER00000000001", false, 200),
        ];
        let report = report_rule(&[("alice", BEFORE)]);
        let keys = keys_rule("alice", BEFORE, ROTATED);
        let (tags, create, update, delete, used) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
            never_used(),
        );
        let (sm_create, sm_put, sm_get) = secret_store(&log);
        let publish = publish_rule(&log);
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update, &delete, &used],
            &[&sm_create, &sm_put, &sm_get],
            &[&publish],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        assert_eq!(
            (summary.keys_rotated, summary.keys_deactivated, summary.keys_deleted),
            (1, 1, 1)
        );
        assert_eq!(
            log.calls()[..2],
            ["DeleteAccessKey AKIAOLDER00000000001", "CreateAccessKey alice"]
        );
    }

    #[tokio::test]
    async fn an_inactive_key_used_within_the_grace_period_is_kept_and_blocks_rotation() {
        let log = Log::default();
        const BEFORE: &[K] = &[
            ("AKIAOLD0000000000001", true, 120),
            ("AKIAOLDER00000000001", false, 200),
        ];
        let report = report_rule(&[("alice", BEFORE)]);
        let keys = keys_rule("alice", BEFORE, BEFORE);
        let (tags, create, update, delete) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
        );
        let used_lately = mock!(Iam::get_access_key_last_used).then_output(|| {
            GetAccessKeyLastUsedOutput::builder()
                .access_key_last_used(
                    aws_sdk_iam::types::AccessKeyLastUsed::builder()
                        .last_used_date(DateTime::from_secs(ago(3)))
                        .service_name("s3")
                        .region("eu-west-1")
                        .build()
                        .unwrap(),
                )
                .build()
        });
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update, &delete, &used_lately],
            &[],
            &[],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert_eq!(
            (summary.users_skipped, summary.keys_deleted, summary.keys_rotated),
            (1, 0, 0)
        );
        assert!(log.calls().is_empty(), "{:?}", log.calls());
    }

    #[tokio::test]
    async fn limit_exceeded_on_create_fails_the_user_and_leaves_the_old_key_active() {
        let log = Log::default();
        let report = report_rule(&[("alice", OLD)]);
        let keys = keys_rule("alice", OLD, OLD);
        let (tags, update, delete) = (tags_rule(&[]), update_rule(&log), delete_rule(&log));
        let create =
            mock!(Iam::create_access_key).then_error(|| CreateAccessKeyError::generic(error_metadata("LimitExceeded")));
        let h = handler_logged(&log, &[&report, &keys, &tags, &create, &update, &delete], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert_eq!(summary.users_failed(), 1);
        assert!(
            summary.failures[0]
                .1
                .starts_with("CreateAccessKey failed: LimitExceeded"),
            "{:?}",
            summary.failures
        );
        assert!(log.calls().is_empty(), "nothing may change: {:?}", log.calls());
        let err = summary.verdict(&props(Mode::Rotate)).unwrap_err().to_string();
        assert!(
            err.contains("1 of 1 candidate users failed")
                && err.contains("alice: CreateAccessKey failed: LimitExceeded"),
            "{err}"
        );
        let lenient = Properties {
            fail_on_user_errors: false,
            ..props(Mode::Rotate)
        };
        summary.verdict(&lenient).unwrap();
    }

    #[tokio::test]
    async fn a_secret_that_cannot_be_stored_takes_the_new_key_back_and_keeps_the_old_one_active() {
        let log = Log::default();
        let report = report_rule(&[("alice", OLD)]);
        let keys = keys_rule("alice", OLD, OLD);
        let (tags, create, update, delete) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
        );
        let sm_create = mock!(SecretsManager::create_secret)
            .then_error(|| CreateSecretError::generic(error_metadata("AccessDeniedException")));
        let publish = publish_rule(&log);
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update, &delete],
            &[&sm_create],
            &[&publish],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert_eq!(
            log.calls(),
            vec!["CreateAccessKey alice", "DeleteAccessKey AKIANEW0000000000001"]
        );
        assert_eq!(
            (summary.users_failed(), summary.keys_rotated, summary.keys_deactivated),
            (1, 0, 0)
        );
        let reason = &summary.failures[0].1;
        assert!(
            reason.starts_with("CreateSecret failed: AccessDeniedException"),
            "{reason}"
        );
        assert!(reason.contains("secretsmanager:CreateSecret was denied"), "{reason}");
        assert!(
            reason.contains("the new key AKIANEW0000000000001 was deleted again and AKIAOLD0000000000001 stays active"),
            "{reason}"
        );
        assert!(!reason.contains(SECRET));
    }

    #[tokio::test]
    async fn a_secret_that_does_not_read_back_is_not_counted_as_stored() {
        let log = Log::default();
        let report = report_rule(&[("alice", OLD)]);
        let keys = keys_rule("alice", OLD, OLD);
        let (tags, create, update, delete) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
        );
        let (sm_create, sm_put, _) = secret_store(&log);
        let stale = mock!(SecretsManager::get_secret_value)
            .then_output(|| GetSecretValueOutput::builder().secret_string("{}").build());
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update, &delete],
            &[&sm_create, &sm_put, &stale],
            &[],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert!(summary.failures[0]
            .1
            .contains("GetSecretValue of tap/access-keys/alice does not answer the value"));
        assert_eq!(log.calls().last().unwrap(), "DeleteAccessKey AKIANEW0000000000001");
    }

    #[tokio::test]
    async fn a_failed_notice_keeps_the_old_key_active_and_the_next_pass_finishes_the_rotation() {
        let log = Log::default();
        let report = report_rule(&[("alice", OLD)]);
        let keys = keys_rule("alice", OLD, OLD);
        let (tags, create, update, delete) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
        );
        let (sm_create, sm_put, sm_get) = secret_store(&log);
        let publish = mock!(Sns::publish).then_error(|| PublishError::generic(error_metadata("NotFound")));
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update, &delete],
            &[&sm_create, &sm_put, &sm_get],
            &[&publish],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert_eq!(
            log.calls(),
            vec!["CreateAccessKey alice", "CreateSecret tap/access-keys/alice"]
        );
        let reason = &summary.failures[0].1;
        assert!(reason.starts_with("Publish failed: NotFound"), "{reason}");
        assert!(
            reason.contains(
                "AKIANEW0000000000001 is stored in tap/access-keys/alice and AKIAOLD0000000000001 stays active"
            ),
            "{reason}"
        );

        // Next pass: both keys active, the secret holds the new one: notify and deactivate, no third key.
        const PENDING: &[K] = &[("AKIAOLD0000000000001", true, 121), ("AKIANEW0000000000001", true, 1)];
        let log = Log::default();
        let report = report_rule(&[("alice", PENDING)]);
        let keys = keys_rule("alice", PENDING, ROTATED);
        let (tags, create, update) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIATHIRD00000000001"),
            update_rule(&log),
        );
        let holds_new = mock!(SecretsManager::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder()
                .secret_string(format!(
                    r#"{{"AccessKeyId":"AKIANEW0000000000001","SecretAccessKey":"{SECRET}"}}"#
                ))
                .build()
        });
        let publish = publish_rule(&log);
        let h = handler_logged(
            &log,
            &[&report, &keys, &tags, &create, &update],
            &[&holds_new],
            &[&publish],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        assert_eq!(
            log.calls(),
            vec![
                "Publish",
                "TagUser alice tap:rotation-deactivated:AKIAOLD0000000000001",
                "UpdateAccessKey AKIAOLD0000000000001 Inactive"
            ]
        );
        assert_eq!((summary.keys_rotated, summary.keys_deactivated), (1, 1));
    }

    #[tokio::test]
    async fn a_throttling_storm_is_retried_with_backoff_and_never_aborts_the_pass() {
        let log = Log::default();
        let throttled = || {
            ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build()
        };
        let report = mock!(Iam::get_credential_report)
            .sequence()
            .error(move || GetCredentialReportError::generic(throttled()))
            .times(3)
            .build();
        let report_ok = report_rule(&[("alice", OLD), ("bob", OLD), ("carol", OLD)]);
        let storm = |user: &'static str| {
            mock!(Iam::list_access_keys)
                .match_requests(move |r| r.user_name() == Some(user))
                .sequence()
                .error(move || ListAccessKeysError::generic(throttled()))
                .times(5)
                .output(move || metadata(user, OLD))
                .output(move || metadata(user, &[("AKIAOLD0000000000001", false, 120)]))
                .repeatedly()
                .build()
        };
        let (a, b, c) = (storm("alice"), storm("bob"), storm("carol"));
        let tags = tags_rule(&[]);
        let update = mock!(Iam::update_access_key)
            .sequence()
            .error(move || UpdateAccessKeyError::generic(throttled()))
            .times(4)
            .output(|| UpdateAccessKeyOutput::builder().build())
            .repeatedly()
            .build();
        let delete = delete_rule(&log);
        let h = handler_logged(
            &log,
            &[&report, &report_ok, &a, &b, &c, &tags, &update, &delete],
            &[],
            &[],
        );
        let summary = h.run_pass(&inv(), &props(Mode::Disable)).await.unwrap();
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        assert_eq!((summary.keys_over_age, summary.keys_deactivated), (3, 3));
        assert_eq!(summary.throttled_retries, 3 + 15 + 4);
        assert_eq!(update.num_calls(), 4 + 3);
    }

    #[tokio::test]
    async fn a_user_throttled_past_every_attempt_fails_alone() {
        let throttled = || {
            ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build()
        };
        let report = report_rule(&[("alice", OLD), ("bob", OLD)]);
        let alice = mock!(Iam::list_access_keys)
            .match_requests(|r| r.user_name() == Some("alice"))
            .then_error(move || ListAccessKeysError::generic(throttled()));
        let bob = keys_rule("bob", OLD, OLD);
        let tags = tags_rule(&[]);
        let h = handler(&[&report, &alice, &bob, &tags], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Audit)).await.unwrap();
        assert_eq!(summary.failures.len(), 1);
        assert_eq!(summary.failures[0].0, "alice");
        assert!(summary.failures[0].1.starts_with("ListAccessKeys failed: Throttling"));
        assert_eq!(alice.num_calls(), 8, "every attempt was made");
        assert_eq!(summary.keys_over_age, 1, "bob was still examined");
    }

    #[tokio::test]
    async fn exempt_users_are_reported_and_never_touched() {
        let log = Log::default();
        let report = report_rule(&[("alice", OLD), ("breakglass", OLD)]);
        let (alice, breakglass) = (
            keys_rule("alice", OLD, &[("AKIAOLD0000000000001", false, 120)]),
            keys_rule("breakglass", OLD, OLD),
        );
        let (tags, update) = (tags_rule(&["breakglass"]), update_rule(&log));
        let h = handler_logged(&log, &[&report, &alice, &breakglass, &tags, &update], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Disable)).await.unwrap();
        assert_eq!(
            (summary.users_exempt, summary.keys_over_age, summary.keys_deactivated),
            (1, 2, 1)
        );
        assert_eq!(
            log.calls(),
            vec![
                "TagUser alice tap:rotation-deactivated:AKIAOLD0000000000001",
                "UpdateAccessKey AKIAOLD0000000000001 Inactive"
            ]
        );
        assert_eq!(breakglass.num_calls(), 1, "no read-back: nothing was changed");
    }

    #[tokio::test]
    async fn a_dry_run_reports_every_action_and_makes_no_mutating_call() {
        let log = Log::default();
        const TWO: &[K] = &[
            ("AKIAOLD0000000000001", true, 120),
            ("AKIAOLDER00000000001", false, 200),
        ];
        const DEAD: &[K] = &[("AKIADEAD000000000001", false, 300)];
        let report = report_rule(&[("alice", OLD), ("bob", TWO), ("dave", DEAD)]);
        let (alice, bob, dave) = (
            keys_rule("alice", OLD, OLD),
            keys_rule("bob", TWO, TWO),
            keys_rule("dave", DEAD, DEAD),
        );
        let (tags, create, update, delete, used) = (
            tags_rule(&[]),
            create_key_rule(&log, "AKIANEW0000000000001"),
            update_rule(&log),
            delete_rule(&log),
            never_used(),
        );
        let (sm_create, sm_put, sm_get) = secret_store(&log);
        let publish = publish_rule(&log);
        let h = handler_logged(
            &log,
            &[&report, &alice, &bob, &dave, &tags, &create, &update, &delete, &used],
            &[&sm_create, &sm_put, &sm_get],
            &[&publish],
        );
        let dry = Properties {
            dry_run: true,
            ..props(Mode::Rotate)
        };
        let summary = h.run_pass(&inv(), &dry).await.unwrap();
        assert!(log.calls().is_empty(), "a dry run changed something: {:?}", log.calls());
        assert_eq!(sm_get.num_calls() + sm_put.num_calls(), 0);
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        assert_eq!(
            (summary.keys_rotated, summary.keys_deactivated, summary.keys_deleted),
            (2, 2, 2)
        );
        assert!(summary.dry_run);
        assert_eq!(
            alice.num_calls() + bob.num_calls() + dave.num_calls(),
            3,
            "no read-back after a dry run"
        );
    }

    #[tokio::test]
    async fn disable_deactivates_and_later_deletes_past_the_grace_period() {
        let log = Log::default();
        const MIXED: &[K] = &[
            ("AKIAOLD0000000000001", true, 100),
            ("AKIAGRACE00000000001", false, 100),
        ];
        const EXPIRED: &[K] = &[("AKIAEXPIRED000000001", false, 105)];
        let report = report_rule(&[("alice", MIXED), ("bob", EXPIRED)]);
        let alice = keys_rule(
            "alice",
            MIXED,
            &[
                ("AKIAOLD0000000000001", false, 100),
                ("AKIAGRACE00000000001", false, 100),
            ],
        );
        let bob = keys_rule("bob", EXPIRED, &[]);
        let (tags, update, delete, used) = (tags_rule(&[]), update_rule(&log), delete_rule(&log), never_used());
        let h = handler_logged(&log, &[&report, &alice, &bob, &tags, &update, &delete, &used], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Disable)).await.unwrap();
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        // alice's inactive key is 100 days old: within 90 + 14, kept. bob's is 105: deleted.
        let mut calls = log.calls();
        calls.sort();
        assert_eq!(
            calls,
            vec![
                "DeleteAccessKey AKIAEXPIRED000000001",
                "TagUser alice tap:rotation-deactivated:AKIAOLD0000000000001",
                "UpdateAccessKey AKIAOLD0000000000001 Inactive"
            ]
        );
        assert_eq!((summary.keys_deactivated, summary.keys_deleted), (1, 1));
        let never_delete = Properties {
            grace_days: 0,
            ..props(Mode::Disable)
        };
        let log2 = Log::default();
        let (report, bob, delete) = (
            report_rule(&[("bob", EXPIRED)]),
            keys_rule("bob", EXPIRED, EXPIRED),
            delete_rule(&log2),
        );
        let h = handler_logged(&log, &[&report, &bob, &tags, &delete, &used], &[], &[]);
        let summary = h.run_pass(&inv(), &never_delete).await.unwrap();
        assert_eq!(
            (summary.keys_deleted, log2.calls().len()),
            (0, 0),
            "GraceDays 0 never deletes"
        );
    }

    #[tokio::test]
    async fn a_report_that_cannot_be_read_fails_the_whole_pass() {
        let denied = mock!(Iam::get_credential_report)
            .then_error(|| GetCredentialReportError::generic(error_metadata("AccessDenied")));
        let h = handler(&[&denied], &[], &[]);
        let err = h.run_pass(&inv(), &props(Mode::Audit)).await.unwrap_err();
        assert_eq!(err.code(), Some("AccessDenied"));
        assert!(err.to_string().contains("iam:GetCredentialReport was denied"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_report_is_generated_and_waited_for() {
        let missing = mock!(Iam::get_credential_report)
            .sequence()
            .error(|| GetCredentialReportError::generic(error_metadata("ReportNotPresent")))
            .build();
        let report = report_rule(&[("bob", FRESH)]);
        let generate = mock!(Iam::generate_credential_report)
            .sequence()
            .output(|| {
                GenerateCredentialReportOutput::builder()
                    .state(ReportStateType::Started)
                    .build()
            })
            .output(|| {
                GenerateCredentialReportOutput::builder()
                    .state(ReportStateType::Inprogress)
                    .build()
            })
            .output(|| {
                GenerateCredentialReportOutput::builder()
                    .state(ReportStateType::Complete)
                    .build()
            })
            .build();
        let h = handler(&[&missing, &report, &generate], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Audit)).await.unwrap();
        assert_eq!(
            (generate.num_calls(), summary.users_scanned, summary.candidates),
            (3, 1, 0)
        );
    }

    #[tokio::test]
    async fn a_user_deleted_since_the_report_is_not_a_failure() {
        let report = report_rule(&[("gone", OLD)]);
        let gone =
            mock!(Iam::list_access_keys).then_error(|| ListAccessKeysError::generic(error_metadata("NoSuchEntity")));
        let h = handler(&[&report, &gone], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Rotate)).await.unwrap();
        assert_eq!(
            (summary.candidates, summary.users_failed(), summary.keys_over_age),
            (1, 0, 0)
        );
    }

    #[tokio::test]
    async fn a_key_this_pass_deactivated_is_kept_for_the_grace_period_counted_from_its_deactivation() {
        // 400 days old, deactivated by this pass 5 days ago: the age alone would allow deletion.
        const DEACTIVATED: &[K] = &[("AKIAOLD0000000000001", false, 400)];
        let dated = |days: i64| {
            move |_: &aws_sdk_iam::operation::list_user_tags::ListUserTagsInput| {
                ListUserTagsOutput::builder()
                    .tags(
                        Tag::builder()
                            .key(format!("{DEACTIVATED_TAG_PREFIX}AKIAOLD0000000000001"))
                            .value(stamp(ago(days)))
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap()
            }
        };
        let log = Log::default();
        let (report, keys) = (
            report_rule(&[("alice", DEACTIVATED)]),
            keys_rule("alice", DEACTIVATED, &[]),
        );
        let (recent, delete, used) = (
            mock!(Iam::list_user_tags).then_compute_output(dated(5)),
            delete_rule(&log),
            never_used(),
        );
        let h = handler_logged(&log, &[&report, &keys, &recent, &delete, &used], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Disable)).await.unwrap();
        assert_eq!((summary.keys_deleted, log.calls().len()), (0, 0), "{:?}", log.calls());

        // Fifteen days after its deactivation it goes, and so does its date.
        let log = Log::default();
        let (report, keys) = (
            report_rule(&[("alice", DEACTIVATED)]),
            keys_rule("alice", DEACTIVATED, &[]),
        );
        let (expired, delete) = (
            mock!(Iam::list_user_tags).then_compute_output(dated(15)),
            delete_rule(&log),
        );
        let h = handler_logged(&log, &[&report, &keys, &expired, &delete, &used], &[], &[]);
        let summary = h.run_pass(&inv(), &props(Mode::Disable)).await.unwrap();
        assert!(summary.failures.is_empty(), "{:?}", summary.failures);
        assert_eq!(
            log.calls(),
            vec![
                "DeleteAccessKey AKIAOLD0000000000001",
                "UntagUser alice tap:rotation-deactivated:AKIAOLD0000000000001"
            ]
        );
        assert_eq!(summary.keys_deleted, 1);
    }

    #[test]
    fn secret_names_follow_the_prefix_and_avoid_commas() {
        let p = Properties::default();
        assert_eq!(secret_name(&p, "alice"), "tap/access-keys/alice");
        assert_eq!(secret_name(&p, "ops,bob"), "tap/access-keys/ops_bob");
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let t = Tuning::default();
        for attempt in 1..20 {
            let d = backoff(&t, attempt);
            let ceiling = (t.backoff_base * 2u32.pow(attempt.min(16))).min(t.backoff_cap);
            assert!(d >= ceiling / 2 && d <= ceiling, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn rate_limits_are_recognised_by_code_or_message() {
        let aws = |code: &str, message: &str| HandlerError::Aws {
            service: "iam".into(),
            operation: "ListAccessKeys".into(),
            code: code.into(),
            message: message.into(),
            advice: String::new(),
        };
        assert!(rate_limited(&aws("Throttling", "Rate exceeded")));
        assert!(rate_limited(&aws("UnknownError", "Rate exceeded")));
        assert!(!rate_limited(&aws(
            "LimitExceeded",
            "Cannot exceed quota for AccessKeysPerUser: 2"
        )));
        assert!(!rate_limited(&HandlerError::Failed("Rate exceeded".into())));
    }
}
