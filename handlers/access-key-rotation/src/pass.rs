//! One pass over the account's IAM users: the credential report picks the candidates, ListAccessKeys
//! and ListUserTags confirm each, and the mode decides what happens.
//!
//! A rotation is spread over passes so that no workload notices it:
//! 1. **hand over**: record the intent on the user, `CreateAccessKey`, store the key in the user's own
//!    secret and read it back, publish the notice, record the hand-over; the old key stays **Active**;
//! 2. **retire**: once `OverlapDays` have passed since the hand-over and the old key has not been used
//!    since the new key was created, deactivate it (a key still in use is reported as waiting);
//! 3. **delete** it after the grace period.
//!
//! A pass can be cut at any step; the next one finishes or undoes what the intent tag says was under
//! way (see `state.rs`). A key that is the current value of its secret is never deleted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use tapguard_shared::{HandlerError, Invocation};
use tracing::{info, warn};

use crate::calls::Aws;
use crate::keys::{self, Key};
use crate::notify::{self, Event, Notice};
use crate::properties::{Mode, Properties, Tuning};
use crate::report::ReportUser;
use crate::resource::AccessKeyRotation;
use crate::secrets::{self, Destination};
use crate::state::{self, Step, UserState, HANDED_OVER_TAG, INTENT_TAG, INTENT_WINDOW};
use crate::summary::Summary;
use crate::{epoch_now, report};

pub const DAY: i64 = 86_400;
/// Clock skew allowed between this function and IAM when matching a key to an intent.
const SKEW: i64 = 120;

/// What happened to one user.
#[derive(Debug, Default)]
struct UserResult {
    over_age: usize,
    rotated: usize,
    deactivated: usize,
    deleted: usize,
    undone: usize,
    exempt: bool,
    skipped: bool,
    waiting: bool,
    overridden: bool,
    deferred: bool,
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
    /// Runs one pass, starting after `resume_after` (the user the last run stopped at). Errors only when
    /// the pass cannot run at all; per-user failures are in the summary.
    pub async fn run_pass(
        &self,
        inv: &Invocation,
        props: &Properties,
        resume_after: Option<&str>,
    ) -> Result<Summary, HandlerError> {
        self.pass(inv, props, resume_after, false).await
    }

    /// Only finishes or undoes the rotations left half-way (the undo of a failed Create).
    pub async fn recover_only(&self, inv: &Invocation, props: &Properties) -> Result<Summary, HandlerError> {
        self.pass(inv, props, None, true).await
    }

    async fn pass(
        &self,
        inv: &Invocation,
        props: &Properties,
        resume_after: Option<&str>,
        recover_only: bool,
    ) -> Result<Summary, HandlerError> {
        let aws = Aws {
            iam: &self.iam,
            secrets: &self.secrets,
            sns: &self.sns,
            sts: &self.sts,
            inv,
            tuning: &self.tuning,
            throttled: AtomicU64::new(0),
        };
        let role_arn = if props.mode == Mode::Rotate && !props.dry_run && !recover_only {
            Some(self.role_arn(&aws).await?)
        } else {
            None
        };
        // The run's budget counts from here: the report is part of the run.
        let started = Instant::now();
        inv.step("reading the IAM credential report");
        let users = report::read(&aws).await?;
        let now = epoch_now();
        let cutoff = now - i64::from(props.max_key_age_days) * DAY;
        let mut candidates: Vec<ReportUser> = users
            .iter()
            .filter(|u| u.has_key_created_before(cutoff))
            .cloned()
            .collect();
        candidates.sort_by(|a, b| a.user.cmp(&b.user));
        let candidates_count = candidates.len();
        // A pass goes through the candidates in name order, over as many runs as it needs: this run goes
        // on after the user the last one stopped at, to the end of the list (the users before it were
        // visited by the earlier runs of the pass). Reaching the end completes the pass; the next run
        // starts a new one. Going round to the first users again instead would make every run of a long
        // list revisit users whose rotation is waiting out its overlap, and no run would ever complete it.
        if let Some(after) = resume_after {
            let split = candidates.partition_point(|u| u.user.as_str() <= after);
            candidates.drain(..split);
        }
        info!(
            users = users.len(),
            candidates = candidates_count,
            this_run = candidates.len(),
            mode = props.mode.as_str(),
            dry_run = props.dry_run,
            resume_after,
            "credential report read"
        );
        let pass = Pass {
            aws: &aws,
            props,
            now,
            started,
            users_started: AtomicUsize::new(0),
            role_arn: role_arn.as_deref().unwrap_or_default(),
            recover_only,
        };
        let results: Vec<(String, UserResult)> = stream::iter(candidates)
            .map(|user| {
                let pass = &pass;
                async move {
                    let result = pass.user(&user).await;
                    (user.user, result)
                }
            })
            .buffered(self.tuning.concurrency.max(1))
            .collect()
            .await;

        let mut summary = Summary {
            mode: props.mode,
            dry_run: props.dry_run,
            users_scanned: users.len(),
            candidates: candidates_count,
            ..Default::default()
        };
        let mut failures = Vec::new();
        for (user, r) in &results {
            summary.keys_over_age += r.over_age;
            summary.keys_rotated += r.rotated;
            summary.keys_deactivated += r.deactivated;
            summary.keys_deleted += r.deleted;
            summary.keys_undone += r.undone;
            summary.users_exempt += usize::from(r.exempt);
            summary.users_skipped += usize::from(r.skipped);
            summary.users_waiting += usize::from(r.waiting);
            summary.users_overridden += usize::from(r.overridden);
            summary.users_deferred += usize::from(r.deferred);
            if let Some(reason) = &r.failure {
                failures.push((user.clone(), reason.clone()));
            }
        }
        if summary.users_deferred > 0 {
            // Where the next run resumes: after the last user this run started, or, when it started none
            // (the deadline came first), where this one was to resume, so no progress is lost.
            summary.resume_after = results
                .iter()
                .rev()
                .find(|(_, r)| !r.deferred)
                .map(|(u, _)| u.clone())
                .or_else(|| resume_after.map(str::to_string));
        }
        failures.sort();
        summary.failures = failures;
        summary.throttled_retries = aws.throttled_retries();
        Ok(summary)
    }

    /// The rotation role's ARN as `aws:PrincipalArn` shows it (the role, not the session): the one
    /// principal besides the user and the readers that the secrets' policy lets read.
    async fn role_arn(&self, aws: &Aws<'_>) -> Result<String, HandlerError> {
        if let Some(arn) = &self.role_arn {
            return Ok(arn.clone());
        }
        let me = aws
            .call("sts", "GetCallerIdentity", || aws.sts.get_caller_identity().send())
            .await?;
        let arn = me.arn().unwrap_or_default();
        role_of_session(arn).ok_or_else(|| {
            HandlerError::Failed(format!(
                "the function runs as {arn}, not as an IAM role or user: the secrets' policy needs the principal's \
                 ARN; run it with its own role"
            ))
        })
    }
}

/// The caller as aws:PrincipalArn shows it: `arn:aws:sts::1:assumed-role/Name/session` becomes the role
/// `arn:aws:iam::1:role/Name`; an IAM user or role ARN stays as it is; anything else (root) is `None`.
pub fn role_of_session(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, _, account, resource] = parts.as_slice() else {
        return None;
    };
    match (*service, resource.split('/').collect::<Vec<_>>().as_slice()) {
        ("sts", ["assumed-role", name, _session]) => Some(format!("arn:{partition}:iam::{account}:role/{name}")),
        ("iam", ["role" | "user", ..]) => Some(arn.to_string()),
        _ => None,
    }
}

struct Pass<'a> {
    aws: &'a Aws<'a>,
    props: &'a Properties,
    now: i64,
    started: Instant,
    /// Users this run has started (`Tuning::max_users_per_run`).
    users_started: AtomicUsize,
    role_arn: &'a str,
    recover_only: bool,
}

impl Pass<'_> {
    fn tuning(&self) -> &Tuning {
        self.aws.tuning
    }

    fn out_of_time(&self) -> bool {
        self.aws
            .inv
            .time_left()
            .is_some_and(|left| left < self.tuning().deadline_margin)
            || self
                .tuning()
                .run_budget
                .is_some_and(|budget| self.started.elapsed() >= budget)
    }

    /// Whether a new user may start: time is left, and the run's user limit (if any) is not reached.
    fn may_start(&self) -> bool {
        if self.out_of_time() {
            return false;
        }
        match self.tuning().max_users_per_run {
            Some(max) => self.users_started.fetch_add(1, Ordering::Relaxed) < max,
            None => true,
        }
    }

    async fn user(&self, user: &ReportUser) -> UserResult {
        let mut result = UserResult::default();
        if !self.may_start() {
            result.deferred = true;
            return result;
        }
        if let Err(err) = self.examine(user, &mut result).await {
            warn!(user = user.user, reason = %err, "user failed; the pass goes on with the others");
            let reason = err.to_string();
            self.notify(Event::Failed, &user.user, None, None, &reason).await;
            result.failure = Some(reason);
        }
        result
    }

    /// Publishes a notice about a change already made (or a state found); a failed publish is logged,
    /// never undoes the change.
    async fn notify(&self, event: Event, user: &str, old: Option<&str>, new: Option<&str>, detail: &str) {
        if !self.props.writes() {
            return;
        }
        let secret = secrets::secret_name(self.props, user);
        let notice = Notice {
            event,
            user,
            secret: &secret,
            old_key: old,
            new_key: new,
            detail,
        };
        if let Err(err) = notify::publish(self.aws, self.props, &notice).await {
            warn!(user, event = event.name(), reason = %err, "the notice could not be published");
        }
    }

    async fn load(&self, user: &str) -> Result<Option<(Vec<Key>, UserState)>, HandlerError> {
        let Some(keys) = keys::list(self.aws, user).await? else {
            return Ok(None);
        };
        let Some(tags) = keys::tags(self.aws, user).await? else {
            return Ok(None);
        };
        let state = UserState::from_tags(
            tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.props.exempt_tag_key,
            self.now,
        );
        Ok(Some((keys, state)))
    }

    async fn examine(&self, report: &ReportUser, result: &mut UserResult) -> Result<(), HandlerError> {
        let user = report.user.as_str();
        let Some((mut keys, mut state)) = self.load(user).await? else {
            return Ok(());
        };
        if state.exempt {
            result.over_age = keys.iter().filter(|k| self.over_age(k)).count();
            result.exempt = true;
            info!(
                user,
                tag = self.props.exempt_tag_key,
                "user is exempt: reported, not touched"
            );
            return Ok(());
        }
        // An unfinished rotation first: finish or undo it, then look at the user afresh.
        if let Some(intent) = state.intent.clone() {
            if !self.props.writes() {
                info!(
                    user,
                    old_access_key_id = intent.key_id,
                    "an unfinished rotation is recorded on the user"
                );
            } else {
                self.recover(user, &keys, &intent, result).await?;
                let Some(reloaded) = self.load(user).await? else {
                    return Ok(());
                };
                (keys, state) = reloaded;
            }
        }
        if self.recover_only {
            return Ok(());
        }
        let over: Vec<&Key> = keys.iter().filter(|k| self.over_age(k)).collect();
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
        // Human overrides win: a key this resource deactivated that is Active again stays Active.
        let overridden: Vec<&Key> = keys
            .iter()
            .filter(|k| k.active && state.deactivated_by_us(&k.id).is_some())
            .collect();
        for key in &overridden {
            result.overridden = true;
            warn!(
                user,
                access_key_id = key.id,
                "a key this resource deactivated was reactivated: left alone"
            );
            if self.props.mode != Mode::Audit {
                self.notify(
                    Event::Overridden,
                    user,
                    Some(&key.id),
                    None,
                    "this key was deactivated by the rotation and reactivated since: it is left active; delete \
                     it once nothing uses it, or remove the user's tag tap:rotation-deactivated:<key id> to let \
                     the rotation retire it again",
                )
                .await;
            }
        }
        let mut expected = Vec::new();
        let mut handled: HashSet<String> = overridden.iter().map(|k| k.id.clone()).collect();
        match self.props.mode {
            Mode::Audit => return Ok(()),
            Mode::Disable => {
                let due: Vec<&Key> = keys
                    .iter()
                    .filter(|k| k.active && self.over_age(k) && !handled.contains(&k.id))
                    .collect();
                for key in due {
                    if self.props.dry_run {
                        info!(user, access_key_id = key.id, "dry run: would deactivate the key");
                    } else {
                        self.deactivate(user, &key.id).await?;
                        expected.push(Expect::Inactive(key.id.clone()));
                    }
                    result.deactivated += 1;
                    handled.insert(key.id.clone());
                }
            }
            Mode::Rotate => {
                self.rotate(report, &keys, &state, result, &mut expected, &mut handled)
                    .await?
            }
        }
        // Inactive keys: deleted once past the grace period.
        for key in keys.iter().filter(|k| !k.active && !handled.contains(&k.id)) {
            if self.deletable(key, &state).await? && self.delete_expired(user, key, &state).await? {
                result.deleted += 1;
                expected.push(Expect::Gone(key.id.clone()));
            }
        }
        self.verify(user, &expected).await
    }

    /// Finishes or undoes the rotation an intent tag says was under way. A key created just after the
    /// intent is either the secret's current value (handed over: announce it and record the hand-over)
    /// or was never handed over (delete it). In the undo of a failed Create, which ends the hand-over, the
    /// secret goes back to how it was too: one the hand-over created and never wrote is deleted (a pass
    /// that goes on to hand over again writes into it instead). Only then is the intent removed.
    async fn recover(
        &self,
        user: &str,
        keys: &[Key],
        intent: &Step,
        result: &mut UserResult,
    ) -> Result<(), HandlerError> {
        let made: Vec<&Key> = keys
            .iter()
            .filter(|k| {
                k.id != intent.key_id && k.created >= intent.at - SKEW && k.created <= intent.at + INTENT_WINDOW
            })
            .collect();
        let held = if !made.is_empty() || self.recover_only {
            Some(secrets::held(self.aws, self.props, user).await?)
        } else {
            None
        };
        let current = held.as_ref().and_then(secrets::Held::key_id);
        for key in made {
            if current == Some(key.id.as_str()) {
                info!(
                    user,
                    new_access_key_id = key.id,
                    "finishing a rotation whose new key is already stored"
                );
                self.announce(user, &intent.key_id, &key.id).await?;
                keys::tag(
                    self.aws,
                    user,
                    HANDED_OVER_TAG,
                    &state::step_value(&key.id, epoch_now()),
                )
                .await?;
                result.rotated += 1;
            } else {
                info!(
                    user,
                    access_key_id = key.id,
                    "deleting a key a cut rotation created and never handed over"
                );
                keys::delete(self.aws, user, &key.id).await?;
                result.undone += 1;
            }
        }
        if self.recover_only && held.is_some_and(|h| h.created_unwritten_since(intent.at, SKEW)) {
            secrets::delete_unwritten(self.aws, self.props, user).await?;
        }
        keys::untag(self.aws, user, INTENT_TAG).await
    }

    async fn announce(&self, user: &str, old: &str, new: &str) -> Result<(), HandlerError> {
        let secret = secrets::secret_name(self.props, user);
        let detail = format!(
            "the new key is in the secret {secret}; the old key {old} stays active for {} days and is deactivated \
             after that once it is no longer used: switch every workload to the new key",
            self.props.overlap_days
        );
        notify::publish(
            self.aws,
            self.props,
            &Notice {
                event: Event::Rotated,
                user,
                secret: &secret,
                old_key: Some(old),
                new_key: Some(new),
                detail: &detail,
            },
        )
        .await
        .map_err(|err| {
            HandlerError::Failed(format!(
                "{err}; the new key {new} is stored in {secret} and {old} stays active; the next pass announces \
                 it again"
            ))
        })
    }

    async fn rotate(
        &self,
        report: &ReportUser,
        keys: &[Key],
        state: &UserState,
        result: &mut UserResult,
        expected: &mut Vec<Expect>,
        handled: &mut HashSet<String>,
    ) -> Result<(), HandlerError> {
        let user = report.user.as_str();
        // A handed-over rotation: retire the old key once the overlap is over and it is unused.
        if let Some(handed) = &state.handed_over {
            match keys.iter().find(|k| k.id == handed.key_id) {
                Some(new) => {
                    if let Some(old) = keys.iter().find(|k| k.id != new.id) {
                        if old.active {
                            handled.insert(old.id.clone());
                            if !handled_by_override(state, old) {
                                return self.retire(user, old, new, handed, result, expected).await;
                            }
                            return Ok(());
                        }
                        // Inactive already (a pass cut between deactivating it and taking the tag off, or a
                        // person deactivated it): the hand-over is over and the grace rule below deletes
                        // the old key in time. Kept as handled, with the tag on, it was never deleted: the
                        // user's second slot stayed taken and the rotation stopped after one cycle.
                        if !self.props.dry_run {
                            keys::untag(self.aws, user, HANDED_OVER_TAG).await?;
                        }
                        return Ok(());
                    }
                    // The old key is gone: the rotation is complete.
                    if !self.props.dry_run {
                        keys::untag(self.aws, user, HANDED_OVER_TAG).await?;
                    }
                    return Ok(());
                }
                None => {
                    // Someone deleted the new key: forget the hand-over, rotate afresh below.
                    warn!(
                        user,
                        access_key_id = handed.key_id,
                        "the handed-over key no longer exists"
                    );
                    if !self.props.dry_run {
                        keys::untag(self.aws, user, HANDED_OVER_TAG).await?;
                    }
                }
            }
        }
        let old_active: Vec<&Key> = keys
            .iter()
            .filter(|k| k.active && self.over_age(k) && !handled.contains(&k.id))
            .collect();
        let old =
            match old_active.as_slice() {
                [] => return Ok(()),
                [old] => *old,
                _ => return self
                    .skip(
                        user,
                        result,
                        "both access keys are active and over age: a new key would be a third; deactivate or delete \
                         one by hand",
                    )
                    .await,
            };
        match keys.iter().find(|k| k.id != old.id) {
            None => {}
            Some(other) if other.active => {
                return self
                    .skip(
                        user,
                        result,
                        "both access key slots hold active keys: a new key would be a third (the IAM limit is 2); \
                         have the user retire one of them",
                    )
                    .await
            }
            Some(other) => {
                if !self.deletable(other, state).await? || !self.delete_expired(user, other, state).await? {
                    return self
                        .skip(
                            user,
                            result,
                            &format!(
                                "the second slot holds inactive key {} that is not past the grace period ({} days): \
                                 it is kept, so there is no room for a new key yet",
                                other.id, self.props.grace_days
                            ),
                        )
                        .await;
                }
                result.deleted += 1;
                handled.insert(other.id.clone());
                expected.push(Expect::Gone(other.id.clone()));
            }
        }
        if self.props.dry_run {
            info!(
                user,
                old_access_key_id = old.id,
                "dry run: would create a new key, store it, notify, and keep the old key active through the overlap"
            );
            result.rotated += 1;
            return Ok(());
        }
        let new_id = self.hand_over(report, &old.id).await?;
        result.rotated += 1;
        expected.push(Expect::Active(old.id.clone()));
        expected.push(Expect::Active(new_id));
        Ok(())
    }

    /// The steps of a hand-over; each failure leaves a state the next pass converges from.
    async fn hand_over(&self, report: &ReportUser, old_id: &str) -> Result<String, HandlerError> {
        let user = report.user.as_str();
        let aws = self.aws;
        // A secret of the name that this rotation did not create: refuse before anything is changed.
        let name = secrets::secret_name(self.props, user);
        if secrets::ownership(aws, &name, user).await? == secrets::Ownership::Foreign {
            return Err(secrets::foreign(&name));
        }
        let intent_at = epoch_now();
        keys::tag(aws, user, INTENT_TAG, &state::step_value(old_id, intent_at)).await?;
        let new_key = match keys::create(aws, user).await {
            Ok(key) => key,
            Err(err) => {
                // Nothing was created; the next pass would find no key to undo either way.
                let _ = keys::untag(aws, user, INTENT_TAG).await;
                return Err(HandlerError::Failed(format!("{err}; {old_id} stays active")));
            }
        };
        let new_id = new_key.access_key_id().to_string();
        let destination = Destination {
            user,
            user_arn: &report.arn,
            role_arn: self.role_arn,
        };
        let stored = secrets::store(aws, self.props, &destination, &new_key, self.now).await;
        drop(new_key);
        if let Err(err) = stored {
            return Err(self.undo_unstored(user, old_id, &new_id, intent_at, err).await);
        }
        self.announce(user, old_id, &new_id).await?;
        keys::tag(aws, user, HANDED_OVER_TAG, &state::step_value(&new_id, epoch_now())).await?;
        keys::untag(aws, user, INTENT_TAG).await?;
        info!(
            user,
            new_access_key_id = new_id,
            old_access_key_id = old_id,
            "new access key handed over; the old key stays active through the overlap"
        );
        Ok(new_id)
    }

    /// The key could not be stored: delete it, unless its secret holds it after all (a read-back that
    /// failed after the write) or that cannot be known (the next pass decides from the intent tag). The
    /// secret goes back to how it was before this hand-over: if the hand-over (started at `intent_at`)
    /// created it and never wrote it, it is deleted; one that existed before keeps its value, which this
    /// hand-over did not change (had it, the secret would hold the new key, which is then kept). The
    /// intent goes only when both are undone, so that the undo of a failed Create finishes what is left.
    async fn undo_unstored(
        &self,
        user: &str,
        old_id: &str,
        new_id: &str,
        intent_at: i64,
        err: HandlerError,
    ) -> HandlerError {
        let held = match secrets::held(self.aws, self.props, user).await {
            Ok(held) => held,
            Err(read_err) => {
                return HandlerError::Failed(format!(
                    "{err}; whether the secret holds the new key {new_id} could not be read ({read_err}): the key \
                     is kept and the next pass decides; {old_id} stays active"
                ))
            }
        };
        if held.key_id() == Some(new_id) {
            return HandlerError::Failed(format!(
                "{err}; the secret holds the new key {new_id} nevertheless: it is kept, {old_id} stays active and \
                 the next pass finishes the hand-over"
            ));
        }
        if let Err(delete_err) = keys::delete(self.aws, user, new_id).await {
            return HandlerError::Failed(format!(
                "{err}; deleting the new key {new_id} failed too ({delete_err}): the next pass deletes it; \
                 {old_id} stays active"
            ));
        }
        let secret = secrets::secret_name(self.props, user);
        let mut undone = format!("{err}; the new key {new_id} was never handed over and was deleted again");
        if held.created_unwritten_since(intent_at, SKEW) {
            if let Err(delete_err) = secrets::delete_unwritten(self.aws, self.props, user).await {
                return HandlerError::Failed(format!(
                    "{undone}, but the empty secret {secret} this hand-over created could not be deleted \
                     ({delete_err}): the undo of a failed Create deletes it, a later pass writes the next key \
                     into it; {old_id} stays active"
                ));
            }
            undone.push_str(&format!(", and the empty secret {secret} it had created too"));
        }
        let _ = keys::untag(self.aws, user, INTENT_TAG).await;
        HandlerError::Failed(format!("{undone}; {old_id} stays active"))
    }

    /// After the overlap, deactivates the old key if it was not used since the new key was created.
    async fn retire(
        &self,
        user: &str,
        old: &Key,
        new: &Key,
        handed: &Step,
        result: &mut UserResult,
        expected: &mut Vec<Expect>,
    ) -> Result<(), HandlerError> {
        let overlap_end = handed.at + i64::from(self.props.overlap_days) * DAY;
        if self.now < overlap_end {
            info!(
                user,
                old_access_key_id = old.id,
                days_left = (overlap_end - self.now + DAY - 1) / DAY,
                "old key kept active: the overlap is not over"
            );
            return Ok(());
        }
        let last_used = keys::last_used(self.aws, &old.id).await?;
        if let Some(used) = last_used.filter(|&used| used >= new.created) {
            result.waiting = true;
            let detail = format!(
                "the old key {} was used on {} after the new key was created: it stays active until nothing uses \
                 it; switch the remaining workloads to the new key in {}",
                old.id,
                state::iso(used),
                secrets::secret_name(self.props, user)
            );
            warn!(
                user,
                old_access_key_id = old.id,
                last_used = state::iso(used),
                "old key still in use: kept active"
            );
            self.notify(Event::Waiting, user, Some(&old.id), Some(&new.id), &detail)
                .await;
            return Ok(());
        }
        if self.props.dry_run {
            info!(user, access_key_id = old.id, "dry run: would deactivate the old key");
            result.deactivated += 1;
            return Ok(());
        }
        self.deactivate(user, &old.id).await?;
        keys::untag(self.aws, user, HANDED_OVER_TAG).await?;
        result.deactivated += 1;
        expected.push(Expect::Inactive(old.id.clone()));
        expected.push(Expect::Active(new.id.clone()));
        self.notify(
            Event::OldKeyDeactivated,
            user,
            Some(&old.id),
            Some(&new.id),
            &format!(
                "unused since the new key was created, the old key is now inactive; it is deleted after {} days \
                 unless it is reactivated",
                self.props.grace_days
            ),
        )
        .await;
        Ok(())
    }

    async fn skip(&self, user: &str, result: &mut UserResult, why: &str) -> Result<(), HandlerError> {
        warn!(user, reason = why, "rotation skipped");
        result.skipped = true;
        self.notify(Event::Skipped, user, None, None, why).await;
        Ok(())
    }

    /// Records the date, then deactivates: a key this resource deactivated always carries it. When
    /// UpdateAccessKey fails and the key reads back Active, the date is taken off again: left on an
    /// active key, it would make every later pass take the key for one a person reactivated and never
    /// retire it (a key that cannot be read back keeps it: whether it was deactivated is not known).
    async fn deactivate(&self, user: &str, key_id: &str) -> Result<(), HandlerError> {
        let tag = state::deactivated_tag(key_id);
        keys::tag(self.aws, user, &tag, &state::iso(epoch_now())).await?;
        let Err(err) = keys::deactivate(self.aws, user, key_id).await else {
            return Ok(());
        };
        let still_active = keys::list(self.aws, user)
            .await
            .ok()
            .flatten()
            .is_some_and(|keys| keys.iter().any(|k| k.id == key_id && k.active));
        if still_active {
            if let Err(untag_err) = keys::untag(self.aws, user, &tag).await {
                return Err(HandlerError::Failed(format!(
                    "{err}; the key {key_id} stays active, and its deactivation date could not be taken off                      ({untag_err}): remove the user's tag {tag}, or later passes take the key for one a person                      reactivated and leave it active"
                )));
            }
        }
        Err(err)
    }

    /// Deletes an inactive key past its grace period, and the date recorded for it; `false` (kept) when
    /// the key is the current value of its secret.
    async fn delete_expired(&self, user: &str, key: &Key, state: &UserState) -> Result<bool, HandlerError> {
        if self.props.dry_run {
            info!(user, access_key_id = key.id, "dry run: would delete the inactive key");
            return Ok(true);
        }
        if secrets::current_key_id(self.aws, self.props, user).await?.as_deref() == Some(key.id.as_str()) {
            warn!(
                user,
                access_key_id = key.id,
                "inactive key kept: it is the current value of the user's secret"
            );
            return Ok(false);
        }
        keys::delete(self.aws, user, &key.id).await?;
        if state.deactivated_by_us(&key.id).is_some() {
            let tag = state::deactivated_tag(&key.id);
            if let Err(err) = keys::untag(self.aws, user, &tag).await {
                // The key is gone, which is what counts; a stale date names a key that no longer exists.
                warn!(user, tag, reason = %err, "the deactivation date tag could not be removed");
            }
        }
        Ok(true)
    }

    /// The grace rule (see the README): Inactive, at least MaxKeyAgeDays + GraceDays old, not used in the
    /// last GraceDays days, and deactivated by this resource at least GraceDays ago when it was.
    /// GraceDays 0 keeps every inactive key.
    async fn deletable(&self, key: &Key, state: &UserState) -> Result<bool, HandlerError> {
        let grace = i64::from(self.props.grace_days);
        if grace == 0 || key.active {
            return Ok(false);
        }
        if self.now - key.created < (i64::from(self.props.max_key_age_days) + grace) * DAY {
            return Ok(false);
        }
        if state
            .deactivated_by_us(&key.id)
            .is_some_and(|at| self.now - at < grace * DAY)
        {
            return Ok(false);
        }
        let last_used = keys::last_used(self.aws, &key.id).await?;
        Ok(last_used.is_none_or(|t| self.now - t >= grace * DAY))
    }

    /// Reads the user's keys back and checks every change this pass made, and that there is no third key.
    async fn verify(&self, user: &str, expected: &[Expect]) -> Result<(), HandlerError> {
        if expected.is_empty() || self.props.dry_run {
            return Ok(());
        }
        let after = keys::list(self.aws, user).await?.unwrap_or_default();
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

fn handled_by_override(state: &UserState, key: &Key) -> bool {
    key.active && state.deactivated_by_us(&key.id).is_some()
}
