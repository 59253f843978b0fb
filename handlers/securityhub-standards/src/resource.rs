//! Custom::SecurityHubStandards: the requested Security Hub standards subscribed and READY, answered
//! SUCCESS only after GetEnabledStandards shows each one READY, and the requested controls disabled and
//! read back.
//!
//! Each standard and each disabled control is an account setting that several resources may claim (a
//! replacement, a rename, two stacks): each is claimed in the ownership ledger before it is changed,
//! with its state before the first claimant. Only the last claimant to go puts it back: a standard is
//! disabled only if it was off before the first claimant, a control enabled again only if it was
//! enabled before. A request that fails part-way gives up what it had claimed and undoes it first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_securityhub::types::StandardsStatus;
use aws_sdk_securityhub::Client as SecurityHub;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapguard_shared::ledger::{self, Record};
use tapguard_shared::verify;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::claims::{self, Claimed};
use crate::controls::{self, parse_control_arn, Controls, DisabledControl, Target};
use crate::legacy::Ownership;
use crate::properties::{expand_all, standards_arn, Properties, Standard};
use crate::standards::{is_central_denial, Standards, Subscription};
use crate::ID_PREFIX;

const HANDLER: &str = "securityhub-standards";
const CENTRAL_ADVICE: &str = "the account is centrally managed: only the delegated administrator's configuration \
                              policy changes its standards and controls. Change the policy associated with this \
                              account (or its OU) in the delegated administrator account, or leave it out of this \
                              resource";
const RETAIN_ADVICE: &str = "retry the Delete; to let the stack go on without it, retain the resource \
                             (DeletionPolicy: Retain, or skip it in DELETE_FAILED) and put the standards and \
                             controls back by hand";

/// What the resource's own record keeps besides the settings it claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The ids of every standard that was on when the resource was created, requested or not: a standard
    /// a later Update adds is never counted as this resource's own if it was on before.
    #[serde(default)]
    pub on_at_create: BTreeSet<String>,
    /// The controls (their claim settings) an Update turned back on when it gave them up, and that the
    /// verify pass expects to stay enabled while no one claims them disabled.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub reenabled: BTreeSet<String>,
    /// The last Create or Update found the account under a central configuration policy and only
    /// verified: the resource changed nothing, so its Delete changes nothing either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub centrally_managed: bool,
}

pub struct SecurityHubStandards {
    securityhub: SecurityHub,
    pub(crate) ledger: Ledger,
    first_poll: Duration,
}

/// Where a resource's ledger entry is, and what an old-format id carries.
struct Entry {
    key: String,
    legacy: Option<Ownership>,
}

/// What giving up one claim leaves to do.
enum Decision {
    /// Another resource still claims it, or its prior state needs nothing done.
    Leave,
    /// This was the last claim: restore.
    Restore,
    /// Prior state unknown: left as it is.
    Unknown,
}

/// What giving up claims put back: the ids of the standards disabled, and the claim settings of the
/// controls turned back on (or left on) because they were enabled before the first claimant.
#[derive(Default)]
struct Released {
    standards: Vec<String>,
    controls: Vec<String>,
}

/// What a converge produced, for the answer.
struct Converged {
    ready: BTreeMap<String, Subscription>,
    adopted: BTreeSet<String>,
    disabled: BTreeSet<String>,
    settings: Vec<String>,
}

impl SecurityHubStandards {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(SecurityHub::new(config), Ledger::new(config, HANDLER))
    }

    pub fn from_clients(securityhub: SecurityHub, ledger: Ledger) -> Self {
        SecurityHubStandards {
            securityhub,
            ledger,
            first_poll: Duration::from_millis(500),
        }
    }

    /// Polls faster (unit tests).
    pub fn with_first_poll(mut self, first_poll: Duration) -> Self {
        self.first_poll = first_poll;
        self
    }

    pub(crate) fn standards(&self) -> Standards<'_> {
        Standards {
            securityhub: &self.securityhub,
            first_poll: self.first_poll,
        }
    }

    pub(crate) fn controls(&self) -> Controls<'_> {
        Controls {
            securityhub: &self.securityhub,
        }
    }

    fn entry(physical_id: &str) -> Result<Entry, HandlerError> {
        if let Some(key) = ledger::key_of(ID_PREFIX, physical_id) {
            return Ok(Entry { key, legacy: None });
        }
        let ownership = Ownership::parse(physical_id)?;
        Ok(Entry {
            key: ledger::legacy_key(physical_id),
            legacy: Some(ownership),
        })
    }

    /// The prior state an old-format id gives each setting `props` name: standards and controls it
    /// found on (adopted) were on, the others this resource turned on or off.
    async fn legacy_priors(
        &self,
        inv: &Invocation,
        ownership: &Ownership,
        props: &Properties,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let Ok(standards) = expand_all(inv, &props.standards) else {
            warn!("the old properties do not parse: nothing is taken over from the old physical id");
            return out;
        };
        for s in &standards {
            out.insert(
                claims::standard(s),
                claims::standard_on(ownership.adopted.contains(&s.id)),
            );
        }
        let on: Vec<Standard> = standards
            .into_iter()
            .filter(|s| subscriptions.get(&s.id).is_some_and(Subscription::is_on))
            .collect();
        let entries: Vec<DisabledControl> = props
            .disabled_controls
            .iter()
            .filter(|c| match &c.standards_control_arn {
                Some(arn) => parse_control_arn(arn).is_some_and(|(id, _)| on.iter().any(|s| s.id == id)),
                None => true,
            })
            .cloned()
            .collect();
        if entries.is_empty() || on.is_empty() {
            return out;
        }
        match self.controls().read(inv, &entries, &on, subscriptions, false).await {
            Ok(found) => {
                for (target, _, _) in found {
                    let adopted = ownership.controls_adopted.contains(&target.key());
                    out.insert(claims::control(&target), claims::control_off(adopted));
                }
            }
            Err(err) => warn!(error = %err, "the old resource's controls could not be read: they are left as they are"),
        }
        out
    }

    /// Claims, enables and verifies what `props` ask, for the resource `entry`. On any error, what this
    /// request claimed anew is given up and undone before the error is returned.
    async fn converge(
        &self,
        inv: &Invocation,
        entry: &Entry,
        props: &Properties,
        old: Option<&Properties>,
        physical_id: String,
    ) -> Result<Outcome, HandlerError> {
        let st = self.standards();
        st.require_hub(inv).await?;
        let standards = st.resolve(inv, props).await?;
        if props.centrally_managed {
            return self
                .verify_central(inv, &entry.key, &standards, props, physical_id, None)
                .await;
        }
        let existing = st.subscriptions(inv, None).await?;
        let on_now: BTreeSet<String> = existing
            .values()
            .filter(|s| s.is_on())
            .map(|s| s.standard_id.clone())
            .collect();
        let loaded = self.ledger.load::<State>(inv, &entry.key).await?;
        let legacy = match (&loaded, &entry.legacy, old) {
            (None, Some(ownership), Some(old)) => self.legacy_priors(inv, ownership, old, &existing).await,
            _ => BTreeMap::new(),
        };
        let mut record = loaded.unwrap_or_else(|| {
            self.ledger.record(
                inv,
                State {
                    on_at_create: on_now.clone(),
                    ..State::default()
                },
            )
        });
        let mut dirty = record.settings.is_empty();
        for setting in legacy.keys() {
            if !record.settings.contains(setting) {
                record.settings.push(setting.clone());
                dirty = true;
            }
        }
        let before = record.settings.clone();
        for s in &standards {
            let setting = claims::standard(s);
            if !record.settings.contains(&setting) {
                record.settings.push(setting);
                dirty = true;
            }
        }
        if dirty {
            self.ledger.save(inv, &entry.key, &record).await?;
        }
        verify::remember_repair(&self.ledger, inv, &entry.key, &mut record, props.repair_drift).await?;
        let wait_seconds = props.wait_seconds;
        match self
            .claim_and_apply(inv, &entry.key, &mut record, &legacy, &standards, &existing, props)
            .await
        {
            Ok(done) => {
                // Removed from the properties: given up, after the new set is in place.
                let removed: Vec<String> = before.iter().filter(|s| !done.settings.contains(s)).cloned().collect();
                let mut reenabled = record.state.reenabled.clone();
                if !removed.is_empty() {
                    let released = self
                        .release_settings(inv, &entry.key, &removed, &BTreeMap::new(), wait_seconds)
                        .await?;
                    reenabled.extend(released.controls);
                }
                // A control claimed disabled again is no longer one this resource turned back on.
                reenabled.retain(|s| !done.settings.contains(s));
                if record.settings != done.settings
                    || record.state.reenabled != reenabled
                    || record.state.centrally_managed
                {
                    record.settings = done.settings.clone();
                    record.state.reenabled = reenabled;
                    record.state.centrally_managed = false;
                    self.ledger.save(inv, &entry.key, &record).await?;
                }
                Ok(Self::outcome(physical_id, &standards, &done, false))
            }
            Err(err) => {
                let new: Vec<String> = record
                    .settings
                    .iter()
                    .filter(|s| !before.contains(s))
                    .cloned()
                    .collect();
                inv.step("undoing what this request changed");
                match self
                    .release_settings(inv, &entry.key, &new, &BTreeMap::new(), wait_seconds)
                    .await
                {
                    Ok(Released { standards: undone, .. }) => {
                        record.settings.retain(|s| before.contains(s));
                        if record.settings.is_empty() {
                            self.ledger.forget(inv, &entry.key).await?;
                        } else {
                            self.ledger.save(inv, &entry.key, &record).await?;
                        }
                        if is_central_denial(&err) {
                            return self
                                .verify_central(inv, &entry.key, &standards, props, physical_id, Some(&err))
                                .await;
                        }
                        let standards: Vec<&str> = undone.iter().map(String::as_str).collect();
                        Err(if standards.is_empty() {
                            err
                        } else {
                            err.with_note(&format!(
                                "disabled again what this request had enabled: {}",
                                standards.join(", ")
                            ))
                        })
                    }
                    Err(undo) => {
                        warn!(error = %undo, "undoing what this request changed failed");
                        Err(err.with_note(&format!(
                            "undoing what this request had changed failed too ({undo}): the rollback will try again"
                        )))
                    }
                }
            }
        }
    }

    /// Under a central configuration policy (`CentrallyManaged`, or a change refused as `denial`): reads, changes nothing,
    /// and answers whether the policy gives what the properties ask. SUCCESS records the resource as
    /// centrally managed with no claims, so its Delete changes nothing; FAILED names what the policy does
    /// not give.
    async fn verify_central(
        &self,
        inv: &Invocation,
        key: &str,
        standards: &[Standard],
        props: &Properties,
        physical_id: String,
        denial: Option<&HandlerError>,
    ) -> Result<Outcome, HandlerError> {
        let why = match denial {
            Some(denial) => denial.to_string(),
            None => format!(
                "{}/{} is declared centrally managed (CentrallyManaged)",
                inv.account_id, inv.region
            ),
        };
        info!(reason = %why, "the account's standards are set by a central configuration policy: verifying, not changing");
        inv.step("verifying the standards the central configuration policy gives");
        let subscriptions = self.standards().subscriptions(inv, None).await?;
        let missing: Vec<String> = standards
            .iter()
            .filter_map(|s| match subscriptions.get(&s.id) {
                Some(sub) if sub.status == StandardsStatus::Ready.as_str() => None,
                Some(sub) => Some(format!("{} ({})", s.arn, sub.status)),
                None => Some(format!("{} (not enabled)", s.arn)),
            })
            .collect();
        if !missing.is_empty() {
            return Err(HandlerError::Failed(format!(
                "{why}; the central configuration policy does not give the requested standard{} {} in {}/{}: {CENTRAL_ADVICE}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                inv.account_id,
                inv.region
            )));
        }
        let mut disabled = BTreeSet::new();
        if !props.disabled_controls.is_empty() {
            let found = self
                .controls()
                .read(inv, &props.disabled_controls, standards, &subscriptions, true)
                .await?;
            let enabled: Vec<String> = found
                .iter()
                .filter(|(_, _, state)| !state.disabled)
                .map(|(target, _, _)| target.key())
                .collect();
            if !enabled.is_empty() {
                return Err(HandlerError::Failed(format!(
                    "{why}; the central configuration policy keeps the control{} {} enabled in {}/{}, which this \
                     resource asks to disable: {CENTRAL_ADVICE}",
                    if enabled.len() == 1 { "" } else { "s" },
                    enabled.join(", "),
                    inv.account_id,
                    inv.region
                )));
            }
            disabled = controls::keys(found.iter().map(|(target, _, _)| target));
        }
        let mut record = match self.ledger.load::<State>(inv, key).await? {
            Some(record) => record,
            None => self.ledger.record(inv, State::default()),
        };
        record.state.centrally_managed = true;
        self.ledger.save(inv, key, &record).await?;
        let ready = standards
            .iter()
            .filter_map(|s| subscriptions.get(&s.id).map(|sub| (s.id.clone(), sub.clone())))
            .collect();
        let done = Converged {
            ready,
            adopted: standards.iter().map(|s| s.id.clone()).collect(),
            disabled,
            settings: Vec::new(),
        };
        Ok(Self::outcome(physical_id, standards, &done, true))
    }

    #[allow(clippy::too_many_arguments)]
    async fn claim_and_apply(
        &self,
        inv: &Invocation,
        key: &str,
        record: &mut Record<State>,
        legacy: &BTreeMap<String, Value>,
        standards: &[Standard],
        existing: &BTreeMap<String, Subscription>,
        props: &Properties,
    ) -> Result<Converged, HandlerError> {
        let st = self.standards();
        // An old-format resource's state moves into the ledger first.
        for (setting, prior) in legacy {
            let wants = match claims::parse(inv, setting) {
                Some(Claimed::Control(_)) => claims::control_off(true),
                _ => claims::standard_on(true),
            };
            self.ledger.claim(inv, key, setting, wants, Some(prior.clone())).await?;
        }
        let mut adopted = BTreeSet::new();
        for s in standards {
            let was_on =
                existing.get(&s.id).is_some_and(Subscription::is_on) || record.state.on_at_create.contains(&s.id);
            let claim = self
                .ledger
                .claim(
                    inv,
                    key,
                    &claims::standard(s),
                    claims::standard_on(true),
                    Some(claims::standard_on(was_on)),
                )
                .await?;
            if claims::was_on(claim.prior.as_ref()) != Some(false) {
                adopted.insert(s.id.clone());
            }
        }
        let mut enabled_here = Vec::new();
        for standard in standards {
            if existing.get(&standard.id).is_some_and(Subscription::is_on) {
                continue;
            }
            enabled_here.push(st.enable(inv, standard).await?);
        }
        let subscription_arns: Vec<String> = standards
            .iter()
            .filter_map(|s| {
                enabled_here
                    .iter()
                    .find(|e| e.standard_id == s.id)
                    .or_else(|| existing.get(&s.id))
                    .map(|e| e.arn.clone())
            })
            .collect();
        let (wait, note) = st.wait_budget(inv, props.wait_seconds);
        let ready = st
            .wait_ready(
                inv,
                standards,
                &subscription_arns,
                wait,
                note.as_deref(),
                !props.disabled_controls.is_empty(),
            )
            .await?;
        let mut settings: Vec<String> = standards.iter().map(claims::standard).collect();
        let disabled = self
            .apply_controls(inv, key, record, standards, &ready, props, &mut settings)
            .await?;
        Ok(Converged {
            ready,
            adopted,
            disabled,
            settings,
        })
    }

    /// Claims the requested controls, turns off those that are on, then reads them all back off.
    /// Returns the keys of every requested control (verified off).
    #[allow(clippy::too_many_arguments)]
    async fn apply_controls(
        &self,
        inv: &Invocation,
        key: &str,
        record: &mut Record<State>,
        standards: &[Standard],
        ready: &BTreeMap<String, Subscription>,
        props: &Properties,
        settings: &mut Vec<String>,
    ) -> Result<BTreeSet<String>, HandlerError> {
        if props.disabled_controls.is_empty() {
            return Ok(BTreeSet::new());
        }
        let controls = self.controls();
        inv.step("reading the controls to disable");
        let found = controls
            .read(inv, &props.disabled_controls, standards, ready, true)
            .await?;
        let mut dirty = false;
        for (target, _, _) in &found {
            let setting = claims::control(target);
            if !record.settings.contains(&setting) {
                record.settings.push(setting.clone());
                dirty = true;
            }
            settings.push(setting);
        }
        if dirty {
            self.ledger.save(inv, key, record).await?;
        }
        for (target, _, state) in &found {
            self.ledger
                .claim(
                    inv,
                    key,
                    &claims::control(target),
                    claims::control_off(true),
                    Some(claims::control_off(state.disabled)),
                )
                .await?;
        }
        let to_disable: Vec<(&Target, &str)> = found
            .iter()
            .filter(|(_, _, s)| !s.disabled)
            .map(|(t, reason, _)| (t, reason.as_str()))
            .collect();
        controls.set(inv, &to_disable, true).await?;
        inv.step("verifying the disabled controls");
        let after = controls
            .read(inv, &props.disabled_controls, standards, ready, true)
            .await?;
        if let Some((target, _, _)) = after.iter().find(|(_, _, s)| !s.disabled) {
            return Err(HandlerError::NotVerified(format!(
                "control {} still reads enabled in {}/{} after it was disabled: check for another automation or a \
                 configuration policy that enables it",
                target.key(),
                inv.account_id,
                inv.region
            )));
        }
        Ok(controls::keys(after.iter().map(|(t, _, _)| t)))
    }

    /// Whether this resource is the last claimant of `setting` and what the prior state was; read
    /// before anything is given up, so a restore that fails leaves the claim for a retry.
    async fn decide(
        &self,
        inv: &Invocation,
        key: &str,
        setting: &str,
        legacy: Option<&Value>,
    ) -> Result<(Decision, Option<Value>), HandlerError> {
        let existing = self.ledger.claims(inv, setting).await?;
        let mine = existing.iter().find(|c| c.claimant.key == key);
        let others: Vec<String> = existing
            .iter()
            .filter(|c| c.claimant.key != key)
            .map(|c| c.claimant.to_string())
            .collect();
        if !others.is_empty() {
            info!(
                setting,
                still_claimed_by = others.join("; "),
                "other resources still claim it: left as it is"
            );
            return Ok((Decision::Leave, None));
        }
        let prior = match mine {
            Some(claim) => claim.prior.clone(),
            None => legacy.cloned(),
        };
        Ok(match prior {
            Some(prior) => (Decision::Restore, Some(prior)),
            None => (Decision::Unknown, None),
        })
    }

    /// Gives up the claims on `settings`: the last claimant turns controls that were enabled before
    /// back on, then disables standards that were off before, and reads both back.
    async fn release_settings(
        &self,
        inv: &Invocation,
        key: &str,
        settings: &[String],
        legacy: &BTreeMap<String, Value>,
        wait_seconds: Option<u32>,
    ) -> Result<Released, HandlerError> {
        if settings.is_empty() {
            return Ok(Released::default());
        }
        let st = self.standards();
        let hub_on = st.hub_is_on(inv).await?;
        let subscriptions = if hub_on {
            st.subscriptions(inv, None).await?
        } else {
            info!("Security Hub is off: its standards and controls went with it");
            BTreeMap::new()
        };
        let mut controls_back = Vec::new();
        let mut standards_off = Vec::new();
        let mut release = Vec::new();
        for setting in settings {
            let Some(claimed) = claims::parse(inv, setting) else {
                warn!(
                    setting,
                    "not a setting this handler names: its claim is dropped, nothing else done"
                );
                release.push(setting.clone());
                continue;
            };
            let (decision, prior) = self.decide(inv, key, setting, legacy.get(setting)).await?;
            match (decision, claimed) {
                (Decision::Leave, _) => {}
                (Decision::Unknown, claimed) => warn!(
                    setting,
                    ?claimed,
                    "the ledger holds no prior state for it (deleted by someone?): left as it is"
                ),
                (Decision::Restore, Claimed::Control(target)) => {
                    if claims::was_off(prior.as_ref()) == Some(false) {
                        controls_back.push(target);
                    }
                }
                (Decision::Restore, Claimed::Standard(standard)) => {
                    if claims::was_on(prior.as_ref()) == Some(false) {
                        standards_off.push(standard);
                    }
                }
            }
            release.push(setting.clone());
        }
        if hub_on {
            self.enable_controls(inv, &controls_back, &subscriptions).await?;
        }
        let to_disable: Vec<&Subscription> = standards_off
            .iter()
            .filter_map(|s| subscriptions.get(&s.id).filter(|sub| sub.is_on()))
            .collect();
        let (wait, _) = st.wait_budget(inv, wait_seconds);
        st.disable_and_verify(inv, &to_disable, wait)
            .await
            .map_err(|err| err.with_note(RETAIN_ADVICE))?;
        for setting in &release {
            self.ledger.release(inv, key, setting).await?;
        }
        Ok(Released {
            standards: to_disable.iter().map(|s| s.standard_id.clone()).collect(),
            controls: controls_back.iter().map(claims::control).collect(),
        })
    }

    /// Turns the controls back on that still read disabled, in standards that are still on, and reads
    /// them back: a control left off is a FAILED.
    async fn enable_controls(
        &self,
        inv: &Invocation,
        targets: &[Target],
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<(), HandlerError> {
        let controls = self.controls();
        let mut off = Vec::new();
        for target in targets {
            if !subscriptions.get(target.standard_id()).is_some_and(Subscription::is_on) {
                continue;
            }
            if self.read_one(inv, target, subscriptions).await? {
                off.push(target);
            }
        }
        if off.is_empty() {
            return Ok(());
        }
        let updates: Vec<(&Target, &str)> = off.iter().map(|t| (*t, "")).collect();
        let left_off = |cause: String| {
            HandlerError::Failed(format!(
                "{cause}: the control{} {} would be left disabled; {RETAIN_ADVICE}",
                if off.len() == 1 { "" } else { "s" },
                off.iter().map(|t| t.key()).collect::<Vec<_>>().join(", ")
            ))
        };
        controls
            .set(inv, &updates, false)
            .await
            .map_err(|err| left_off(err.to_string()))?;
        inv.step("verifying the controls are enabled again");
        for target in &off {
            if self.read_one(inv, target, subscriptions).await? {
                return Err(left_off(format!(
                    "control {} still reads disabled after it was enabled again",
                    target.key()
                )));
            }
        }
        Ok(())
    }

    /// Whether one control reads disabled now.
    pub(crate) async fn read_one(
        &self,
        inv: &Invocation,
        target: &Target,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<bool, HandlerError> {
        let standard = Standard {
            id: target.standard_id().to_string(),
            arn: match target {
                Target::Association { standards_arn, .. } => standards_arn.clone(),
                Target::Arn { standard_id, .. } => standards_arn(&inv.partition, &inv.region, standard_id),
            },
        };
        let found = self
            .controls()
            .read(inv, &[target.entry()], &[standard], subscriptions, false)
            .await?;
        Ok(found.iter().any(|(_, _, state)| state.disabled))
    }

    /// Gives up every claim of the resource and forgets its record.
    async fn release_all(
        &self,
        inv: &Invocation,
        entry: &Entry,
        props: Option<&Properties>,
        undoing_create: bool,
    ) -> Result<(), HandlerError> {
        let wait_seconds = props.and_then(|p| p.wait_seconds);
        let (settings, legacy) = match (self.ledger.load::<State>(inv, &entry.key).await?, &entry.legacy) {
            (Some(record), _) if record.state.centrally_managed => {
                info!(
                    "the resource found the account under a central configuration policy and changed nothing: \
                     its Delete changes nothing either"
                );
                for setting in &record.settings {
                    self.ledger.release(inv, &entry.key, setting).await?;
                }
                return self.ledger.forget(inv, &entry.key).await;
            }
            (Some(record), _) => (record.settings, BTreeMap::new()),
            (None, Some(ownership)) => {
                let Some(props) = props else {
                    warn!("the properties do not parse: which standards this resource enabled is unknown, all are left on");
                    return Ok(());
                };
                let st = self.standards();
                if !st.hub_is_on(inv).await? {
                    info!("Security Hub is off: its standards went with it");
                    return Ok(());
                }
                let subscriptions = st.subscriptions(inv, None).await?;
                let legacy = self.legacy_priors(inv, ownership, props, &subscriptions).await;
                (legacy.keys().cloned().collect(), legacy)
            }
            (None, None) if undoing_create => {
                info!("the failed Create had claimed nothing: nothing to undo");
                return Ok(());
            }
            (None, None) => {
                warn!(
                    parameter = self.ledger.record_name(&entry.key),
                    "the ledger holds no record of this resource (deleted by someone?): what it enabled is unknown, \
                     so every standard and control is left as it is"
                );
                return Ok(());
            }
        };
        self.release_settings(inv, &entry.key, &settings, &legacy, wait_seconds)
            .await?;
        self.ledger.forget(inv, &entry.key).await
    }

    fn outcome(physical_id: String, standards: &[Standard], done: &Converged, centrally_managed: bool) -> Outcome {
        let join =
            |f: &dyn Fn(&Standard) -> Option<String>| standards.iter().filter_map(f).collect::<Vec<_>>().join(",");
        Outcome::new(physical_id)
            .with("EnabledStandards", join(&|s| Some(s.arn.clone())))
            .with(
                "SubscriptionArns",
                join(&|s| done.ready.get(&s.id).map(|r| r.arn.clone())),
            )
            .with(
                "Adopted",
                join(&|s| done.adopted.contains(&s.id).then(|| s.arn.clone())),
            )
            .with(
                "Statuses",
                join(&|s| done.ready.get(&s.id).map(|r| format!("{}={}", s.id, r.status))),
            )
            .with(
                "DisabledControls",
                done.disabled.iter().map(String::as_str).collect::<Vec<_>>().join(","),
            )
            .with("CentrallyManaged", centrally_managed)
    }
}

impl CustomResource for SecurityHubStandards {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::SecurityHubStandards";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call (the fault matrix in tests/fault_matrix.rs injects
    /// each fault into each one, and fails on any call not listed here).
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        ("securityhub", "DescribeHub"),
        ("securityhub", "DescribeStandards"),
        ("securityhub", "GetEnabledStandards"),
        ("securityhub", "BatchEnableStandards"),
        ("securityhub", "BatchDisableStandards"),
        ("securityhub", "DescribeStandardsControls"),
        ("securityhub", "UpdateStandardsControl"),
        ("securityhub", "BatchGetStandardsControlAssociations"),
        ("securityhub", "BatchUpdateStandardsControlAssociations"),
        // The ownership ledger.
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let entry = Entry {
            key: inv.request_id.clone(),
            legacy: None,
        };
        let physical_id = ledger::physical_id(ID_PREFIX, &inv.region, &entry.key);
        self.converge(inv, &entry, &props, None, physical_id).await
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        // The physical id stays (also an old-format one): a new id would make CloudFormation delete the
        // old one, and that Delete would give up claims this resource still stands for.
        let entry = Self::entry(physical_id)?;
        self.converge(inv, &entry, &props, old.as_ref(), physical_id.to_string())
            .await
    }

    async fn delete(&self, inv: &Invocation, physical_id: &str, props: Option<Properties>) -> Result<(), HandlerError> {
        let entry = Self::entry(physical_id)?;
        self.release_all(inv, &entry, props.as_ref(), false).await
    }

    async fn undo_create(
        &self,
        inv: &Invocation,
        request_id: &str,
        props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        let entry = Entry {
            key: request_id.to_string(),
            legacy: None,
        };
        self.release_all(inv, &entry, props.as_ref(), true).await
    }

    /// See `verify.rs`; repairs only what resources with RepairDrift ask for (`repair.rs`).
    async fn verify(&self, inv: &Invocation) -> Result<Vec<verify::ResourceReport>, HandlerError> {
        verify::repairing_pass(self, inv).await
    }
}
