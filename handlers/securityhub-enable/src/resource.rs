//! Custom::SecurityHubEnable: Security Hub on in the stack's account and region, with the requested
//! settings, answered SUCCESS only after DescribeHub shows it.
//!
//! The hub is one account setting that several resources may claim (a replacement, a rename, two
//! stacks): each claims it in the ownership ledger before changing anything, with the hub's state
//! before the first claimant (on or off, its ControlFindingGenerator, AutoEnableControls and tags). Only
//! the last claimant to go puts that state back, and only where the hub still holds what the claimants
//! set: the hub is disabled only if this chain of claimants enabled it.

use aws_sdk_securityhub::Client as SecurityHub;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapguard_shared::ledger::{self, Claim, Release};
use tapguard_shared::verify::{self, ControlCheck, Verifier};
use tapguard_shared::{is_access_denied, CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::drift;
use crate::hub::{self, Hub, HubState, ManagedBy, Setting};
use crate::properties::Properties;
use crate::tags::{self, Tags};
use crate::{legacy, ID_PREFIX};

const HANDLER: &str = "securityhub-enable";
const RETAIN_ADVICE: &str = "retry the Delete; to keep the stack moving without it, retain the resource \
                             (DeletionPolicy: Retain, or skip it in DELETE_FAILED) and set the hub by hand";

/// The one setting this resource claims: the region's hub (the ledger is per account and region).
pub fn setting() -> String {
    ledger::setting(&["securityhub-hub", "hub"])
}

/// What the resource's own record keeps besides its claim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The EnableDefaultStandards value this resource enabled the hub with (false when it found it on).
    #[serde(default)]
    pub default_standards: bool,
    /// The tags this resource set, or is about to set, on the hub.
    #[serde(default)]
    pub tags: Tags,
}

pub struct SecurityHubEnable {
    securityhub: SecurityHub,
    ledger: Ledger,
}

/// Where a resource's ledger entry is, and what an old-format id carries.
struct Entry {
    key: String,
    legacy: Option<(HubState, bool)>,
}

fn to_value(state: &HubState) -> Value {
    serde_json::to_value(state).unwrap_or(Value::Null)
}

fn from_value(value: Option<Value>) -> Option<HubState> {
    value.and_then(|v| serde_json::from_value(v).ok())
}

/// The settings a state holds, as the calls that would set them.
fn settings_of(state: &HubState) -> Vec<Setting<'_>> {
    let mut out = Vec::new();
    if let Some(g) = &state.control_finding_generator {
        out.push(Setting::Generator(g));
    }
    if let Some(a) = state.auto_enable_controls {
        out.push(Setting::AutoEnableControls(a));
    }
    out
}

/// The hub's tags before the first claimant: none when the chain turned the hub on.
fn prior_tags(prior: &HubState) -> Option<Tags> {
    if prior.enabled {
        prior.tags.clone()
    } else {
        Some(Tags::new())
    }
}

impl SecurityHubEnable {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(SecurityHub::new(config), Ledger::new(config, HANDLER))
    }

    pub fn from_clients(securityhub: SecurityHub, ledger: Ledger) -> Self {
        SecurityHubEnable { securityhub, ledger }
    }

    fn entry(physical_id: &str) -> Result<Entry, HandlerError> {
        if let Some(key) = ledger::key_of(ID_PREFIX, physical_id) {
            return Ok(Entry { key, legacy: None });
        }
        match legacy::prior_state(physical_id) {
            Some(prior) => Ok(Entry {
                key: ledger::legacy_key(physical_id),
                legacy: Some(prior),
            }),
            None => Err(HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues (expected \
                 {ID_PREFIX}<region>:ledger-<key>, or the older {ID_PREFIX}<region>:<enabled|adopted>:default-standards=<bool>)"
            ))),
        }
    }

    fn wants(props: &Properties, generator: &str) -> HubState {
        HubState {
            enabled: true,
            control_finding_generator: Some(generator.to_string()),
            auto_enable_controls: Some(props.auto_enable_controls),
            tags: None,
        }
    }

    /// Claims the hub for `entry`, turns it on if it is off, applies the settings the account may set,
    /// and reads everything back.
    async fn converge(
        &self,
        inv: &Invocation,
        entry: &Entry,
        props: &Properties,
        physical_id: String,
    ) -> Result<Outcome, HandlerError> {
        let sh = &self.securityhub;
        let generator = props.generator()?;
        let found = hub::describe(sh, inv).await?;
        let observed = match (&entry.legacy, &found) {
            (Some((prior, _)), _) => prior.clone(),
            (None, Some(h)) => HubState::of(h, tags::list(sh, inv, &h.arn).await?),
            (None, None) => HubState::off(),
        };
        let initial = State {
            default_standards: entry.legacy.as_ref().is_some_and(|(_, d)| *d),
            tags: Tags::new(),
        };
        let mut record = self.ledger.begin(inv, &entry.key, &[setting()], initial).await?;
        verify::remember_repair(&self.ledger, inv, &entry.key, &mut record, props.repair_drift).await?;
        let previous_tags = record.state.tags.clone();
        // The tags this resource may set are in its record before it sets them.
        let mut may_set = previous_tags.clone();
        may_set.extend(props.tags.clone());
        if may_set != record.state.tags {
            record.state.tags = may_set;
            self.ledger.save(inv, &entry.key, &record).await?;
        }
        let claim = self
            .ledger
            .claim(
                inv,
                &entry.key,
                &setting(),
                to_value(&Self::wants(props, generator)),
                Some(to_value(&observed)),
            )
            .await?;
        let mut prior = from_value(claim.prior.clone());

        let current = match found {
            Some(h) => h,
            None => {
                if record.state.default_standards || !previous_tags.is_empty() {
                    warn!("Security Hub was turned off outside this stack: enabling it again");
                }
                let enabled = hub::enable(sh, inv, props.enable_default_standards, generator, &props.tags).await?;
                if enabled && record.state.default_standards != props.enable_default_standards {
                    record.state.default_standards = props.enable_default_standards;
                    self.ledger.save(inv, &entry.key, &record).await?;
                }
                let now = hub::describe(sh, inv).await?.ok_or_else(|| not_on(inv))?;
                if !enabled && prior.as_ref().is_some_and(|p| !p.enabled) {
                    // Someone else turned it on meanwhile: it is theirs. The claim is made again with the
                    // hub as it is now, so the last claimant's Delete leaves it on.
                    if let Release::Last { .. } = self.ledger.release(inv, &entry.key, &setting()).await? {
                        let observed = HubState::of(&now, tags::list(sh, inv, &now.arn).await?);
                        let wants = to_value(&Self::wants(props, generator));
                        let claim = self
                            .ledger
                            .claim(inv, &entry.key, &setting(), wants, Some(to_value(&observed)))
                            .await?;
                        prior = from_value(claim.prior);
                    }
                }
                now
            }
        };
        let mut managed_by = match hub::administrator(sh, inv).await? {
            Some(account) => ManagedBy::Administrator(account),
            None => ManagedBy::Account,
        };
        let mut not_applied = self
            .apply_settings(inv, &current, generator, props.auto_enable_controls, &mut managed_by)
            .await?;
        // Taken only by EnableSecurityHub: it stands as it was when the hub was turned on.
        if props.enable_default_standards != record.state.default_standards {
            not_applied.push("EnableDefaultStandards");
        }
        let dropped: Vec<&String> = previous_tags.keys().filter(|k| !props.tags.contains_key(*k)).collect();
        self.apply_tags(
            inv,
            &current.arn,
            &entry.key,
            props,
            &previous_tags,
            &dropped,
            prior.as_ref(),
        )
        .await?;

        inv.step("verifying the Security Hub configuration");
        let verified = hub::describe(sh, inv).await?.ok_or_else(|| not_on(inv))?;
        for wanted in [
            Setting::Generator(generator),
            Setting::AutoEnableControls(props.auto_enable_controls),
        ] {
            if !not_applied.contains(&wanted.name()) && !wanted.is_met_by(&verified) {
                return Err(HandlerError::NotVerified(format!(
                    "DescribeHub answers {} {} in {}/{}, not {}: check for another automation or an administrator \
                     that sets it",
                    wanted.name(),
                    match wanted {
                        Setting::Generator(_) => verified.control_finding_generator.clone(),
                        Setting::AutoEnableControls(_) => verified.auto_enable_controls.to_string(),
                    },
                    inv.account_id,
                    inv.region,
                    match wanted {
                        Setting::Generator(g) => g.to_string(),
                        Setting::AutoEnableControls(a) => a.to_string(),
                    }
                )));
            }
        }
        if record.state.tags != props.tags {
            record.state.tags = props.tags.clone();
            self.ledger.save(inv, &entry.key, &record).await?;
        }
        Ok(Outcome::new(physical_id)
            .with("HubArn", &verified.arn)
            .with("SubscribedAt", &verified.subscribed_at)
            .with("Adopted", prior.as_ref().is_none_or(|p| p.enabled))
            .with("ManagedBy", &managed_by)
            .with("ControlFindingGenerator", &verified.control_finding_generator)
            .with("AutoEnableControls", verified.auto_enable_controls)
            .with("SettingsNotApplied", not_applied.join(",")))
    }

    /// Applies the settings DescribeHub shows differently, one call per setting so that one refused
    /// setting does not hide another that could be applied. Returns the settings left as they were.
    async fn apply_settings(
        &self,
        inv: &Invocation,
        current: &Hub,
        generator: &str,
        auto_enable_controls: bool,
        managed_by: &mut ManagedBy,
    ) -> Result<Vec<&'static str>, HandlerError> {
        let mut not_applied = Vec::new();
        for wanted in [
            Setting::Generator(generator),
            Setting::AutoEnableControls(auto_enable_controls),
        ] {
            if wanted.is_met_by(current) {
                continue;
            }
            if *managed_by == ManagedBy::ConfigurationPolicy {
                not_applied.push(wanted.name());
                continue;
            }
            match hub::configure(&self.securityhub, inv, wanted).await {
                Ok(()) => {}
                Err(err) if hub::mentions_configuration_policy(&err) => {
                    info!(setting = wanted.name(), reason = %err, "hub is managed by a configuration policy: setting left as it is");
                    *managed_by = ManagedBy::ConfigurationPolicy;
                    not_applied.push(wanted.name());
                }
                Err(err)
                    if err.code().is_some_and(is_access_denied)
                        && matches!(managed_by, ManagedBy::Administrator(_)) =>
                {
                    info!(setting = wanted.name(), reason = %err, "the administrator account governs this setting: left as it is");
                    not_applied.push(wanted.name());
                }
                Err(err) => return Err(err),
            }
        }
        Ok(not_applied)
    }

    /// Sets the requested tags that differ, and puts back (to their value before the first claimant,
    /// or removes) the `dropped` tags this resource had set, where they still hold that value and no
    /// other claimant asks for them; then reads the tags back.
    #[allow(clippy::too_many_arguments)]
    async fn apply_tags(
        &self,
        inv: &Invocation,
        hub_arn: &str,
        key: &str,
        props: &Properties,
        previous: &Tags,
        dropped: &[&String],
        prior: Option<&HubState>,
    ) -> Result<(), HandlerError> {
        if props.tags.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let sh = &self.securityhub;
        let current = tags::list(sh, inv, hub_arn).await?;
        let missing: Tags = props
            .tags
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags::tag(sh, inv, hub_arn, &missing).await?;
        let (put, remove) = if dropped.is_empty() {
            (Tags::new(), Vec::new())
        } else {
            match prior.and_then(prior_tags) {
                Some(prior_tags) => {
                    let others = self.others_tags(inv, key).await?;
                    let keys: Vec<&String> = dropped.iter().copied().filter(|k| !others.contains_key(*k)).collect();
                    tags::restoring(&current, previous, &prior_tags, &keys)
                }
                None => {
                    warn!(tags = ?dropped, "the hub's tags before this resource are unknown: dropped tags left as they are");
                    (Tags::new(), Vec::new())
                }
            }
        };
        tags::tag(sh, inv, hub_arn, &put).await?;
        tags::untag(sh, inv, hub_arn, &remove).await?;
        if missing.is_empty() && put.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let after = tags::list(sh, inv, hub_arn).await?;
        if let Some((key, value)) = props.tags.iter().find(|(k, v)| after.get(*k) != Some(*v)) {
            return Err(HandlerError::NotVerified(format!(
                "ListTagsForResource answers {key}={:?} on {hub_arn}, not {value:?}: check for another automation \
                 that sets the hub's tags",
                after.get(key)
            )));
        }
        if let Some(key) = remove.iter().find(|k| after.contains_key(*k)) {
            return Err(HandlerError::NotVerified(format!(
                "ListTagsForResource still answers the tag {key} on {hub_arn} after UntagResource"
            )));
        }
        Ok(())
    }

    /// The tags the other claimants of the hub ask for, from their records.
    async fn others_tags(&self, inv: &Invocation, key: &str) -> Result<Tags, HandlerError> {
        let mut out = Tags::new();
        for claim in self.ledger.claims(inv, &setting()).await? {
            if claim.claimant.key == key || claim.claimant.handler != HANDLER {
                continue;
            }
            if let Some(record) = self.ledger.load::<State>(inv, &claim.claimant.key).await? {
                out.extend(record.state.tags);
            }
        }
        Ok(out)
    }

    /// Gives up this resource's claim on the hub; the last claimant puts back the prior state.
    async fn release(&self, inv: &Invocation, entry: &Entry, undoing_create: bool) -> Result<(), HandlerError> {
        let record = self.ledger.load::<State>(inv, &entry.key).await?;
        let own_tags = record.map(|r| r.state.tags).unwrap_or_default();
        let claims: Vec<Claim> = self.ledger.claims(inv, &setting()).await?;
        let mine = claims.iter().find(|c| c.claimant.key == entry.key).cloned();
        // The claim goes only after the restore is done and read back: a Delete that fails or is cut off
        // on the way keeps it, so its retry still knows the prior state.
        match self.ledger.pending_release(inv, &entry.key, &setting()).await? {
            Release::StillClaimed(_) => {
                if let Some(prior) = mine.and_then(|c| from_value(c.prior)) {
                    self.give_back_tags(inv, &entry.key, &own_tags, &prior).await;
                }
            }
            Release::Last { prior, wants } => {
                self.restore(inv, from_value(prior), from_value(Some(wants)), &own_tags)
                    .await?
            }
            Release::Unclaimed => match &entry.legacy {
                Some((prior, _)) => self.restore(inv, Some(prior.clone()), None, &own_tags).await?,
                None if undoing_create => info!("the failed Create had claimed nothing: nothing to undo"),
                None => warn!(
                    parameter = self.ledger.record_name(&entry.key),
                    "the ledger holds no claim of this resource (deleted by someone?): the hub's prior state is \
                     unknown, so Security Hub is left as it is"
                ),
            },
        }
        self.ledger.drop_claim(inv, &entry.key, &setting()).await?;
        self.ledger.forget(inv, &entry.key).await
    }

    /// Other resources still claim the hub: only the tags this resource set and none of them asks for
    /// go back. Tags are cosmetic: a failure is logged, not fatal.
    async fn give_back_tags(&self, inv: &Invocation, key: &str, own: &Tags, prior: &HubState) {
        let result: Result<(), HandlerError> = async {
            let (Some(prior_tags), false) = (prior_tags(prior), own.is_empty()) else {
                return Ok(());
            };
            let Some(current_hub) = hub::describe(&self.securityhub, inv).await? else {
                return Ok(());
            };
            let others = self.others_tags(inv, key).await?;
            let keys: Vec<&String> = own.keys().filter(|k| !others.contains_key(*k)).collect();
            self.put_tags_back(inv, &current_hub.arn, own, &prior_tags, &keys).await
        }
        .await;
        if let Err(err) = result {
            warn!(error = %err, "the hub's tags this resource set could not be put back: left as they are");
        }
    }

    async fn put_tags_back(
        &self,
        inv: &Invocation,
        hub_arn: &str,
        own: &Tags,
        prior_tags: &Tags,
        keys: &[&String],
    ) -> Result<(), HandlerError> {
        if keys.is_empty() {
            return Ok(());
        }
        let current = tags::list(&self.securityhub, inv, hub_arn).await?;
        let (put, remove) = tags::restoring(&current, own, prior_tags, keys);
        let skipped = keys.len() - put.len() - remove.len();
        if skipped > 0 {
            info!(
                skipped,
                "some tags were changed by someone else since, or already hold their prior value: left as they are"
            );
        }
        tags::tag(&self.securityhub, inv, hub_arn, &put).await?;
        tags::untag(&self.securityhub, inv, hub_arn, &remove).await
    }

    /// Puts the hub back as it was before the first claimant, where it still holds what the claimants
    /// set (`wants`; unknown: anything), then reads it back.
    async fn restore(
        &self,
        inv: &Invocation,
        prior: Option<HubState>,
        wants: Option<HubState>,
        own_tags: &Tags,
    ) -> Result<(), HandlerError> {
        let sh = &self.securityhub;
        let Some(prior) = prior else {
            warn!("the hub's state before the first claimant is unknown: Security Hub is left as it is");
            return Ok(());
        };
        let Some(current) = hub::describe(sh, inv).await? else {
            info!("Security Hub is already off");
            return Ok(());
        };
        if !prior.enabled {
            return self.turn_off(inv).await;
        }
        let mut changed = Vec::new();
        for before in settings_of(&prior) {
            if before.is_met_by(&current) {
                continue;
            }
            let ours = wants.as_ref().is_none_or(|w| {
                settings_of(w)
                    .iter()
                    .any(|s| s.name() == before.name() && s.is_met_by(&current))
            });
            if !ours {
                info!(
                    setting = before.name(),
                    "changed by someone else since this resource set it: left as it is"
                );
                continue;
            }
            match hub::configure(sh, inv, before).await {
                Ok(()) => changed.push(before),
                Err(err) if err.code().is_some_and(is_access_denied) => {
                    warn!(setting = before.name(), reason = %err, "the hub's setting cannot be put back (governed by an administrator or a configuration policy): left as it is");
                }
                Err(err) => {
                    return Err(err.with_note(&format!(
                        "putting back {} as it was before this stack: {RETAIN_ADVICE}",
                        before.name()
                    )))
                }
            }
        }
        match prior_tags(&prior) {
            Some(prior_tags) => {
                let keys: Vec<&String> = own_tags.keys().collect();
                if let Err(err) = self
                    .put_tags_back(inv, &current.arn, own_tags, &prior_tags, &keys)
                    .await
                {
                    warn!(error = %err, "the hub's tags could not be put back: left as they are");
                }
            }
            None if !own_tags.is_empty() => {
                info!("the hub's tags before this stack are unknown: the tags this resource set are left on")
            }
            None => {}
        }
        if changed.is_empty() {
            return Ok(());
        }
        inv.step("verifying the restored Security Hub configuration");
        let after = hub::describe(sh, inv).await?.ok_or_else(|| not_on(inv))?;
        if let Some(setting) = changed.iter().find(|s| !s.is_met_by(&after)) {
            return Err(HandlerError::NotVerified(format!(
                "DescribeHub does not answer the prior {} in {}/{} after UpdateSecurityHubConfiguration: {RETAIN_ADVICE}",
                setting.name(),
                inv.account_id,
                inv.region
            )));
        }
        Ok(())
    }

    /// The chain of claimants turned the hub on: turn it off, unless it is centrally governed by now.
    async fn turn_off(&self, inv: &Invocation) -> Result<(), HandlerError> {
        let sh = &self.securityhub;
        if let Some(administrator) = hub::administrator(sh, inv).await? {
            info!(
                administrator,
                "the hub is now governed by an administrator account: left on"
            );
            return Ok(());
        }
        match hub::disable(sh, inv).await {
            Ok(()) => {}
            Err(err) if hub::mentions_configuration_policy(&err) => {
                info!(reason = %err, "the hub is now managed by a configuration policy: left on");
                return Ok(());
            }
            Err(err) => return Err(err.with_note(RETAIN_ADVICE)),
        }
        inv.step("verifying Security Hub is off");
        if hub::describe(sh, inv).await?.is_some() {
            return Err(HandlerError::NotVerified(format!(
                "DescribeHub still answers a hub in {}/{} after DisableSecurityHub: check for another automation \
                 that enables it",
                inv.account_id, inv.region
            )));
        }
        Ok(())
    }
}

fn not_on(inv: &Invocation) -> HandlerError {
    HandlerError::NotVerified(format!(
        "DescribeHub answers InvalidAccessException (not subscribed) in {}/{}: Security Hub is not on; \
         check for an SCP or another automation that disables it",
        inv.account_id, inv.region
    ))
}

/// The verify pass: DescribeHub, read-only, against the claim's `wants` (the comparison is `drift.rs`);
/// the repair of a resource with RepairDrift.
impl Verifier for SecurityHubEnable {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, inv: &Invocation, _setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let Some(wants) = from_value(Some(wants.clone())) else {
            return drift::unknown(None, "the claim in the ledger is damaged");
        };
        match hub::describe(&self.securityhub, inv).await {
            Ok(observed) => drift::hub(&wants, observed.as_ref()),
            Err(err) => drift::unknown(Some(&wants), &err.to_string()),
        }
    }

    /// Sets the hub's ControlFindingGenerator and AutoEnableControls back to the claim, one call per
    /// setting that differs, as an Update does, then reads them back. A hub that is off is not turned
    /// back on here (enabling it again may subscribe default standards and starts billing: a stack
    /// Update decides), nor is a setting a configuration policy or an administrator governs.
    async fn repair(
        &self,
        inv: &Invocation,
        _setting: &str,
        wants: &Value,
        _drifted: &[ControlCheck],
    ) -> Result<Vec<String>, HandlerError> {
        let wants = from_value(Some(wants.clone()))
            .ok_or_else(|| HandlerError::Failed("the claim in the ledger is damaged: nothing was changed".into()))?;
        let sh = &self.securityhub;
        let Some(current) = hub::describe(sh, inv).await? else {
            return Err(HandlerError::Failed(format!(
                "Security Hub is off in {}/{}: the verify pass does not turn it back on; a stack Update does",
                inv.account_id, inv.region
            )));
        };
        let mut changes = Vec::new();
        for wanted in settings_of(&wants) {
            if wanted.is_met_by(&current) {
                continue;
            }
            hub::configure(sh, inv, wanted).await.map_err(|err| {
                if hub::mentions_configuration_policy(&err) {
                    err.with_note("the hub is managed by a configuration policy: the setting is left as it is")
                } else {
                    err
                }
            })?;
            changes.push(match wanted {
                Setting::Generator(g) => format!(
                    "ControlFindingGenerator set back to {g} (UpdateSecurityHubConfiguration; it was {})",
                    current.control_finding_generator
                ),
                Setting::AutoEnableControls(a) => format!(
                    "AutoEnableControls set back to {a} (UpdateSecurityHubConfiguration; it was {})",
                    current.auto_enable_controls
                ),
            });
        }
        if !changes.is_empty() {
            inv.step("verifying the repaired Security Hub configuration");
            let after = hub::describe(sh, inv).await?.ok_or_else(|| not_on(inv))?;
            if let Some(wanted) = settings_of(&wants).into_iter().find(|w| !w.is_met_by(&after)) {
                return Err(HandlerError::NotVerified(format!(
                    "DescribeHub still answers {} other than claimed in {}/{} after the repair (ControlFindingGenerator {}, AutoEnableControls {}): check for another automation or an administrator that sets it",
                    wanted.name(),
                    inv.account_id,
                    inv.region,
                    after.control_finding_generator,
                    after.auto_enable_controls
                )));
            }
        }
        Ok(changes)
    }
}

impl CustomResource for SecurityHubEnable {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::SecurityHubEnable";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call (the fault matrix in tests/fault_matrix.rs injects
    /// each fault into each one, and fails on any call not listed here).
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        ("securityhub", "DescribeHub"),
        ("securityhub", "EnableSecurityHub"),
        ("securityhub", "DisableSecurityHub"),
        ("securityhub", "UpdateSecurityHubConfiguration"),
        ("securityhub", "GetAdministratorAccount"),
        ("securityhub", "TagResource"),
        ("securityhub", "UntagResource"),
        ("securityhub", "ListTagsForResource"),
        // The ownership ledger.
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        props.generator()?;
        let entry = Entry {
            key: inv.request_id.clone(),
            legacy: None,
        };
        let physical_id = ledger::physical_id(ID_PREFIX, &inv.region, &entry.key);
        self.converge(inv, &entry, &props, physical_id).await
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        // The physical id stays: a new one would make CloudFormation delete the old one, and that Delete
        // would give up the claim this resource still stands for.
        let entry = Self::entry(physical_id)?;
        self.converge(inv, &entry, &props, physical_id.to_string()).await
    }

    async fn delete(
        &self,
        inv: &Invocation,
        physical_id: &str,
        _props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        let entry = Self::entry(physical_id)?;
        self.release(inv, &entry, false).await
    }

    async fn undo_create(
        &self,
        inv: &Invocation,
        request_id: &str,
        _props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        let entry = Entry {
            key: request_id.to_string(),
            legacy: None,
        };
        self.release(inv, &entry, true).await
    }

    /// See `impl Verifier` above: repairs only what resources with RepairDrift ask for.
    async fn verify(&self, inv: &Invocation) -> Result<Vec<verify::ResourceReport>, HandlerError> {
        verify::repairing_pass(self, inv).await
    }
}
