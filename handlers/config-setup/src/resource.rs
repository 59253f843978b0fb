//! Custom::ConfigSetup: the AWS Config recorder, its delivery channel and AWS managed rules, in that
//! order, answering SUCCESS only after reading back a recording recorder and every requested rule.
//!
//! Config allows one customer managed recorder and one delivery channel per region, and accounts often
//! have them already (an organization, Control Tower): existing ones are adopted, never duplicated.
//! The recorder, the channel and each rule are account settings that several resources may claim (a
//! replacement, a rename, two stacks): each resource claims them in the ownership ledger before its
//! first change, with the state found before the first claimant changed them, and only the last
//! claimant to go puts that state back, where the setting still holds what the claimants asked for.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_config::types::{ConfigRule, ConfigurationRecorder, ConfigurationRecorderStatus, DeliveryChannel};
use aws_sdk_config::Client;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tapguard_shared::ledger::{self, Record, Release};
use tapguard_shared::verify::{self, ControlCheck, ResourceReport, Verifier};
use tapguard_shared::{is_access_denied, CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::advice::delivery_advice;
use crate::channel::{self, ChannelPrior, ChannelSettings, ChannelWants};
use crate::controls::{self, CHANNEL_CONTROL, RECORDER_CONTROL};
use crate::legacy::Ownership;
use crate::properties::{validate, Desired, Properties};
use crate::recorder::{self, RecorderPrior, RecorderSettings, RecorderWants};
use crate::rules::{self, RuleDefinition, RulePrior, RuleWants};
use crate::ID_PREFIX;

const HANDLER: &str = "config-setup";

/// The region's customer managed recorder, as a ledger setting (the ledger is per account and region).
pub fn recorder_setting() -> String {
    ledger::setting(&["config", "recorder"])
}

/// The region's delivery channel.
pub fn channel_setting() -> String {
    ledger::setting(&["config", "channel"])
}

/// One Config rule, by name.
pub fn rule_setting(name: &str) -> String {
    ledger::setting(&["config", "rule", name])
}

/// What a resource's ledger record keeps besides the list of its claims.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordState {
    /// The recorder this resource uses (an adopted one keeps its own name).
    #[serde(default)]
    pub recorder_name: Option<String>,
    /// The rules this resource claims, by name.
    #[serde(default)]
    pub rules: Vec<String>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Config in the region as read from AWS.
#[derive(Debug, Clone, Default)]
struct State {
    recorder: Option<ConfigurationRecorder>,
    service_linked: Vec<String>,
    status: Option<ConfigurationRecorderStatus>,
    channel: Option<DeliveryChannel>,
    rules: BTreeMap<String, ConfigRule>,
}

impl State {
    fn recorder_name(&self) -> Option<&str> {
        self.recorder.as_ref().and_then(|r| r.name())
    }

    fn is_recording(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.recording())
    }

    /// What each setting is now, as a prior for a claim made before changing it.
    fn observed(&self, desired: &Desired) -> BTreeMap<String, Value> {
        let mut map = BTreeMap::new();
        map.insert(
            recorder_setting(),
            json(&RecorderPrior::observed(self.recorder.as_ref(), self.is_recording())),
        );
        map.insert(channel_setting(), json(&ChannelPrior::observed(self.channel.as_ref())));
        for rule in &desired.rules {
            map.insert(
                rule_setting(&rule.name),
                json(&RulePrior::observed(
                    self.rules.get(&rule.name).filter(|r| !rules::is_deleting(r)),
                )),
            );
        }
        map
    }
}

/// The priors of this resource's claims, as the ledger holds them (`None`: unknown).
#[derive(Debug, Default)]
struct Priors {
    recorder: Option<RecorderPrior>,
    channel: Option<ChannelPrior>,
    rules: BTreeMap<String, Option<RulePrior>>,
}

/// Where a resource's ledger entry is, and what an old-format id says it created.
struct Entry {
    key: String,
    legacy: Option<Ownership>,
}

/// What a released claim leaves to do.
enum Restore<P, W> {
    /// Another resource still claims it, or its prior state is unknown: leave it.
    Leave,
    /// This was the last claim: put `prior` back where the setting still holds `wants`.
    To { prior: P, wants: Option<W> },
}

/// A release in progress: whose claims, and what the restores must read back.
struct Undo<'a> {
    key: &'a str,
    /// A failed Create's undo: settings it had not claimed yet are no news.
    undoing: bool,
    state: &'a State,
    expect: Vec<Expect>,
    /// The settings whose claims go once the restores are read back: a Delete that fails or is cut off
    /// before keeps them, so its retry still knows the prior state.
    settled: Vec<String>,
}

/// One thing a restore must read back.
#[derive(Debug)]
enum Expect {
    RuleGone(String),
    RuleIs(RuleDefinition),
    NotRecording,
    ChannelGone,
    ChannelIs(ChannelSettings),
    RecorderGone,
    RecorderIs(RecorderSettings),
}

pub struct ConfigSetup {
    pub(crate) config: Client,
    pub(crate) ledger: Ledger,
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn parse<T: DeserializeOwned>(value: Option<Value>) -> Option<T> {
    value.and_then(|v| serde_json::from_value(v).ok())
}

impl ConfigSetup {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(Client::new(config), Ledger::new(config, HANDLER))
    }

    pub fn from_clients(config: Client, ledger: Ledger) -> Self {
        ConfigSetup { config, ledger }
    }

    fn entry(physical_id: &str) -> Result<Entry, HandlerError> {
        if let Some(key) = ledger::key_of(ID_PREFIX, physical_id) {
            return Ok(Entry { key, legacy: None });
        }
        match Ownership::parse(physical_id) {
            Some(own) => Ok(Entry {
                key: ledger::legacy_key(physical_id),
                legacy: Some(own),
            }),
            None => Err(HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues: what this resource claims cannot be \
                 found"
            ))),
        }
    }

    fn check_region(inv: &Invocation, physical_id: &str) -> Result<(), HandlerError> {
        let region = physical_id
            .strip_prefix(ID_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .map(|(region, _)| region);
        match region {
            Some(region) if !inv.region.is_empty() && region != inv.region => Err(HandlerError::Failed(format!(
                "this resource set up AWS Config in {region}, but the function runs in {}: deploy the function in \
                 {region} to manage it",
                inv.region
            ))),
            _ => Ok(()),
        }
    }

    /// The region's Config setup, with its service-linked recorders (reported in Data only).
    async fn read_state(&self, inv: &Invocation) -> Result<State, HandlerError> {
        let mut state = self.read_settings(inv).await?;
        // Only reported in Data: a region where the list cannot be read still gets its Config.
        state.service_linked = match recorder::list_service_linked(&self.config, inv).await {
            Ok(names) => names,
            Err(err) => {
                warn!(error = %err, "the service-linked recorders could not be listed");
                vec![format!("unknown ({})", err.code().unwrap_or("error"))]
            }
        };
        Ok(state)
    }

    /// The region's Config setup without the service-linked recorders: what a read-back compares. This
    /// handler never changes those (their services own them), so listing them again after a change would
    /// only spend the event's time, retrying a list whose answer is for Data only.
    async fn read_settings(&self, inv: &Invocation) -> Result<State, HandlerError> {
        let recorder = recorder::read(&self.config, inv).await?;
        let status = match recorder.as_ref().and_then(|r| r.name()) {
            Some(name) => recorder::read_status(&self.config, inv, name).await?,
            None => None,
        };
        Ok(State {
            recorder,
            service_linked: Vec::new(),
            status,
            channel: channel::read(&self.config, inv).await?,
            rules: rules::read_all(&self.config, inv).await?,
        })
    }

    /// Records and claims the recorder, the channel and every requested rule for `key`, before any
    /// change. `observed` holds, for the settings whose prior this resource may still have to record,
    /// their state now; a setting absent from it gets the prior already in the ledger (or unknown).
    async fn claim_all(
        &self,
        inv: &Invocation,
        key: &str,
        desired: &Desired,
        recorder_name: &str,
        observed: &BTreeMap<String, Value>,
    ) -> Result<(Record<RecordState>, Priors), HandlerError> {
        let names: Vec<String> = desired.rules.iter().map(|r| r.name.clone()).collect();
        let mut settings = vec![recorder_setting(), channel_setting()];
        settings.extend(names.iter().map(|n| rule_setting(n)));
        let fresh = RecordState {
            recorder_name: Some(recorder_name.to_string()),
            rules: names.clone(),
        };
        let mut record = self.ledger.begin(inv, key, &settings, fresh).await?;
        verify::remember_repair(&self.ledger, inv, key, &mut record, desired.repair_drift).await?;
        let mut state = record.state.clone();
        state.recorder_name = Some(recorder_name.to_string());
        for name in &names {
            if !state.rules.contains(name) {
                state.rules.push(name.clone());
            }
        }
        if state != record.state {
            record.state = state;
            self.ledger.save(inv, key, &record).await?;
        }

        let mut priors = Priors::default();
        let recorder = self
            .ledger
            .claim(
                inv,
                key,
                &recorder_setting(),
                json(&RecorderWants::of(desired)),
                observed.get(&recorder_setting()).cloned(),
            )
            .await?;
        priors.recorder = parse(recorder.prior);
        let channel = self
            .ledger
            .claim(
                inv,
                key,
                &channel_setting(),
                json(&ChannelWants::of(desired)),
                observed.get(&channel_setting()).cloned(),
            )
            .await?;
        priors.channel = parse(channel.prior);
        for rule in &desired.rules {
            let setting = rule_setting(&rule.name);
            let claim = self
                .ledger
                .claim(
                    inv,
                    key,
                    &setting,
                    json(&RuleWants::of(rule)),
                    observed.get(&setting).cloned(),
                )
                .await?;
            priors.rules.insert(rule.name.clone(), parse(claim.prior));
        }
        Ok((record, priors))
    }

    /// Brings recorder, channel, recording and rules to `desired` in Config's order, calling only what
    /// differs. When the region's recorder has another name than `recorder_name`, the caller has
    /// established that it is this resource's own and may be replaced under the new name.
    async fn converge(
        &self,
        inv: &Invocation,
        desired: &Desired,
        recorder_name: &str,
        state: &State,
    ) -> Result<Option<i64>, HandlerError> {
        // When this operation first changed the recorder, the channel or recording (seconds since the
        // epoch): delivery failures attempted before then are stale.
        let mut changed_at: Option<i64> = None;
        let mut changed = || {
            changed_at.get_or_insert_with(now_secs);
        };
        // The recorder first: a delivery channel cannot exist without one.
        let mut recording = state.is_recording();
        match &state.recorder {
            Some(current) if current.name() == Some(recorder_name) => {
                if !RecorderWants::of(desired).is_met_by(current) {
                    let wanted = recorder::wanted(recorder_name, desired, Some(current));
                    recorder::put(&self.config, inv, wanted, Some(desired)).await?;
                    changed();
                }
            }
            Some(current) => {
                // Config cannot rename a recorder: replace this resource's own one under the new name.
                let old = current.name().unwrap_or_default();
                info!(
                    from = old,
                    to = recorder_name,
                    "renaming the recorder this resource created"
                );
                if recording {
                    recorder::stop(&self.config, inv, old).await?;
                }
                recorder::delete(&self.config, inv, old).await?;
                let wanted = recorder::wanted(recorder_name, desired, Some(current));
                recorder::put(&self.config, inv, wanted, Some(desired)).await?;
                changed();
                recording = false;
            }
            None => {
                let wanted = recorder::wanted(recorder_name, desired, None);
                recorder::put(&self.config, inv, wanted, Some(desired)).await?;
                changed();
            }
        }

        match &state.channel {
            Some(current) => {
                if !ChannelWants::of(desired).is_met_by(current) {
                    let name = current.name().unwrap_or(channel::DEFAULT_NAME);
                    let wanted = channel::wanted(name, desired, Some(current));
                    channel::put(&self.config, inv, wanted, Some(desired)).await?;
                    changed();
                }
            }
            None => {
                let wanted = channel::wanted(channel::DEFAULT_NAME, desired, None);
                channel::put(&self.config, inv, wanted, Some(desired)).await?;
                changed();
            }
        }

        // Recording needs both the recorder and the channel.
        if !recording {
            recorder::start(&self.config, inv, recorder_name).await?;
            changed();
        }

        // Rules last: they evaluate what the recorder records.
        for rule in &desired.rules {
            let wants = RuleWants::of(rule);
            // A rule Config is still deleting is as good as gone: it is put again once the deletion is done.
            match state.rules.get(&rule.name).filter(|r| !rules::is_deleting(r)) {
                None => {
                    let tag = Some(rules::owner_tag(inv));
                    rules::put(&self.config, inv, rules::wanted(rule), tag, Some((desired, rule))).await?;
                }
                Some(current) if !wants.is_met_by(current) => {
                    rules::put(&self.config, inv, rules::wanted(rule), None, Some((desired, rule))).await?;
                }
                Some(_) => {}
            }
        }
        Ok(changed_at)
    }

    /// Reads everything back and answers the state only if it is what was asked for.
    async fn read_back(
        &self,
        inv: &Invocation,
        desired: &Desired,
        recorder_name: &str,
        changed_at: Option<i64>,
    ) -> Result<(State, String), HandlerError> {
        inv.step("verifying the AWS Config setup");
        let after = self.read_settings(inv).await?;
        let region = &inv.region;
        let recorder = after
            .recorder
            .as_ref()
            .filter(|r| r.name() == Some(recorder_name))
            .ok_or_else(|| {
                HandlerError::NotVerified(format!(
                    "DescribeConfigurationRecorders does not show the recorder {recorder_name} in {region} \
                     (it shows {:?}): check for another automation that manages AWS Config here",
                    after.recorder_name()
                ))
            })?;
        if !RecorderWants::of(desired).is_met_by(recorder) {
            return Err(HandlerError::NotVerified(format!(
                "the recorder {recorder_name} does not read back with the requested role and recording group \
                 (role {:?}): check for another automation that manages AWS Config here",
                recorder.role_arn()
            )));
        }
        let channel = after.channel.as_ref().ok_or_else(|| {
            HandlerError::NotVerified(format!(
                "DescribeDeliveryChannels shows no delivery channel in {region} after PutDeliveryChannel: \
                 check for another automation that deletes it"
            ))
        })?;
        if !ChannelWants::of(desired).is_met_by(channel) {
            return Err(HandlerError::NotVerified(format!(
                "the delivery channel {} reads back with bucket {:?}, not {}: check for another automation that \
                 manages AWS Config here",
                channel.name().unwrap_or_default(),
                channel.s3_bucket_name(),
                desired.bucket
            )));
        }
        let status = after.status.as_ref().ok_or_else(|| {
            HandlerError::NotVerified(format!(
                "DescribeConfigurationRecorderStatus gives no status for {recorder_name}"
            ))
        })?;
        // The recorder's lastStatus is its last recording event; how deliveries go is the channel's
        // status. A failure attempted before this operation changed the setup is stale: the next delivery
        // (hours away) tells.
        let channel_name = channel.name().unwrap_or(channel::DEFAULT_NAME);
        let delivery = channel::read_status(&self.config, inv, channel_name).await?;
        let failures = delivery.as_ref().map(channel::delivery_failures).unwrap_or_default();
        let (stale, current): (Vec<_>, Vec<_>) = failures
            .into_iter()
            .partition(|f| changed_at.is_some_and(|t| f.attempted_at.is_none_or(|a| a <= t)));
        if let Some(failure) = current.first() {
            return Err(HandlerError::NotVerified(format!(
                "DescribeDeliveryChannelStatus shows the {failure} for the channel {channel_name} ({})",
                delivery_advice(&failure.code, desired)
            )));
        }
        let delivery_status = match (&delivery, stale.first()) {
            (_, Some(failure)) => {
                warn!(%failure, "a delivery failed before this operation changed AWS Config: the next delivery tells");
                format!("pending: the last attempt, before this change, was a {failure}")
            }
            (Some(d), None) => channel::describe_status(d),
            (None, None) => "unknown".to_string(),
        };
        if !status.recording() {
            return Err(HandlerError::NotVerified(format!(
                "the recorder {recorder_name} is not recording after StartConfigurationRecorder: check for an SCP \
                 or another automation that stops it"
            )));
        }
        for rule in &desired.rules {
            let Some(current) = after.rules.get(&rule.name) else {
                return Err(HandlerError::NotVerified(format!(
                    "DescribeConfigRules does not show the rule {} ({}) after PutConfigRule",
                    rule.name,
                    rule.field()
                )));
            };
            if rules::is_deleting(current) {
                return Err(HandlerError::NotVerified(format!(
                    "the rule {} is being deleted ({}): retry once the deletion has finished",
                    rule.name,
                    current.config_rule_state().map_or("", |s| s.as_str())
                )));
            }
            if !RuleWants::of(rule).is_met_by(current) {
                return Err(HandlerError::NotVerified(format!(
                    "the rule {} does not read back as requested ({}): check for another automation that \
                     manages it",
                    rule.name,
                    rule.field()
                )));
            }
        }
        Ok((after, delivery_status))
    }

    fn outcome(physical_id: String, state: &State, desired: &Desired, recorder_name: &str, priors: &Priors) -> Outcome {
        let status = state.status.as_ref();
        let adopted = |exists: Option<bool>| exists.map_or("unknown".to_string(), |e| e.to_string());
        let rules_created: Vec<&str> = desired
            .rules
            .iter()
            .map(|r| r.name.as_str())
            .filter(|n| {
                priors
                    .rules
                    .get(*n)
                    .is_some_and(|p| p.as_ref().is_some_and(|p| !p.exists))
            })
            .collect();
        Outcome::new(physical_id)
            .with("RecorderName", recorder_name)
            .with(
                "DeliveryChannelName",
                state.channel.as_ref().and_then(|c| c.name()).unwrap_or_default(),
            )
            .with("Recording", status.is_some_and(|s| s.recording()))
            .with(
                "LastStatus",
                status.and_then(|s| s.last_status()).map_or("", |s| s.as_str()),
            )
            .with("RecorderAdopted", adopted(priors.recorder.as_ref().map(|p| p.exists)))
            .with("ChannelAdopted", adopted(priors.channel.as_ref().map(|p| p.exists)))
            .with(
                "RuleNames",
                desired
                    .rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .with("RulesCreated", rules_created.join(","))
            .with("ServiceLinkedRecorders", state.service_linked.join(","))
    }

    /// Says what giving up this resource's claim on `setting` leaves to do (the claim itself goes only
    /// after the restore is read back, see `Undo::settled`). `legacy` is the prior an old-format id
    /// carries (with what it asked for), used when the ledger holds no claim yet.
    async fn released<P: DeserializeOwned + Serialize, W: DeserializeOwned + Serialize>(
        &self,
        inv: &Invocation,
        key: &str,
        setting: &str,
        legacy: Option<(P, Option<W>)>,
        undoing: bool,
    ) -> Result<Restore<P, W>, HandlerError> {
        Ok(match self.ledger.pending_release(inv, key, setting).await? {
            Release::StillClaimed(_) => Restore::Leave,
            Release::Last { prior, wants } => match parse::<P>(prior) {
                Some(p) => Restore::To {
                    prior: p,
                    wants: serde_json::from_value(wants).ok(),
                },
                None => {
                    warn!(
                        setting,
                        "the state of this setting before its first claimant is unknown (the ledger was lost): \
                         left as it is"
                    );
                    Restore::Leave
                }
            },
            Release::Unclaimed => match legacy {
                Some((prior, wants)) => Restore::To { prior, wants },
                None => {
                    if !undoing {
                        warn!(
                            setting,
                            parameter = self.ledger.record_name(key),
                            "the ledger holds no claim of this resource on this setting (deleted by someone?): \
                             its prior state is unknown, so it is left as it is"
                        );
                    }
                    Restore::Leave
                }
            },
        })
    }

    /// Drops the claims of the settings an undo restored and read back.
    async fn drop_settled(&self, inv: &Invocation, key: &str, settled: &[String]) -> Result<(), HandlerError> {
        for setting in settled {
            self.ledger.drop_claim(inv, key, setting).await?;
        }
        Ok(())
    }

    async fn release_rule(
        &self,
        inv: &Invocation,
        undo: &mut Undo<'_>,
        name: &str,
        legacy: Option<(RulePrior, Option<RuleWants>)>,
    ) -> Result<(), HandlerError> {
        let (key, expect) = (undo.key, &mut undo.expect);
        let setting = rule_setting(name);
        let restore = self.released(inv, key, &setting, legacy, undo.undoing).await?;
        undo.settled.push(setting);
        let Restore::To { prior, wants } = restore else {
            return Ok(());
        };
        let current = undo.state.rules.get(name);
        let ours = current.is_some_and(|c| wants.as_ref().is_none_or(|w| w.is_met_by(c)));
        match (prior.exists, current, prior.definition) {
            (false, None, _) => Ok(()),
            (false, Some(_), _) if ours => {
                expect.push(Expect::RuleGone(name.to_string()));
                rules::delete(&self.config, inv, name).await
            }
            (true, None, _) => {
                info!(
                    rule = name,
                    "the rule found before the first claimant was deleted since: left as it is"
                );
                Ok(())
            }
            (true, Some(_), None) => {
                info!(
                    rule = name,
                    "the rule was adopted by a resource made before the ledger: left as it is"
                );
                Ok(())
            }
            (true, Some(c), Some(def)) if RuleDefinition::of(c) == def => Ok(()),
            (true, Some(_), Some(def)) if ours => {
                let rule = def.rule()?;
                expect.push(Expect::RuleIs(def));
                rules::put(&self.config, inv, rule, None, None).await
            }
            (_, Some(_), _) => {
                info!(
                    rule = name,
                    "the rule was changed by someone else since this resource set it: left as it is"
                );
                Ok(())
            }
        }
    }

    /// Gives up the recorder and channel claims; the last claimant puts back what was there before.
    async fn release_recorder_and_channel(
        &self,
        inv: &Invocation,
        entry: &Entry,
        desired: Option<&Desired>,
        undo: &mut Undo<'_>,
    ) -> Result<(), HandlerError> {
        let (key, undoing) = (&entry.key, undo.undoing);
        let legacy_recorder = entry.legacy.as_ref().map(|own| {
            let prior = if own.created_recorder {
                RecorderPrior::absent()
            } else {
                RecorderPrior {
                    exists: true,
                    name: Some(own.recorder_name.clone()),
                    recording: !own.started_recording,
                    settings: None,
                }
            };
            (prior, desired.map(RecorderWants::of))
        });
        let legacy_channel = entry.legacy.as_ref().map(|own| {
            (
                ChannelPrior {
                    exists: !own.created_channel,
                    settings: None,
                },
                desired.map(ChannelWants::of),
            )
        });
        let rec = self
            .released::<RecorderPrior, RecorderWants>(inv, key, &recorder_setting(), legacy_recorder, undoing)
            .await?;
        let chan = self
            .released::<ChannelPrior, ChannelWants>(inv, key, &channel_setting(), legacy_channel, undoing)
            .await?;
        undo.settled.extend([recorder_setting(), channel_setting()]);
        self.restore_recorder_and_channel(inv, &rec, &chan, undo.state, &mut undo.expect)
            .await
    }

    async fn restore_recorder_and_channel(
        &self,
        inv: &Invocation,
        rec: &Restore<RecorderPrior, RecorderWants>,
        chan: &Restore<ChannelPrior, ChannelWants>,
        state: &State,
        expect: &mut Vec<Expect>,
    ) -> Result<(), HandlerError> {
        let current_recorder = state.recorder.as_ref();
        let name = state.recorder_name().unwrap_or_default().to_string();
        let recorder_restore = match rec {
            Restore::To { prior, wants, .. } => match current_recorder {
                None => {
                    if prior.exists {
                        info!("the recorder found before the first claimant was deleted since: left as it is");
                    }
                    None
                }
                Some(c) if wants.as_ref().is_none_or(|w| w.is_met_by(c)) => Some(prior),
                Some(_) => {
                    info!(
                        recorder = name,
                        "the recorder was changed by someone else since this resource set it: left as it is"
                    );
                    None
                }
            },
            Restore::Leave => None,
        };

        // An adopted recorder's prior settings go back first, before anything else changes: its prior
        // role is one this function may not be allowed to pass (iam:PassRole), and a refusal then leaves
        // the recorder, recording and the channel all as they were, with the claims kept for a retry.
        let mut recorder_put_back = false;
        if let (Some(prior), Some(current)) = (recorder_restore, current_recorder) {
            if let (true, Some(settings)) = (prior.exists, &prior.settings) {
                if !settings.is_met_by(current) {
                    let put_back = settings.recorder(prior.name.as_deref().unwrap_or(&name));
                    recorder::put(&self.config, inv, put_back, None)
                        .await
                        .map_err(|err| impossible_recorder_restore(err, settings, current))?;
                    expect.push(Expect::RecorderIs(settings.clone()));
                }
                recorder_put_back = true;
            }
        }

        // Recording off first, if it was off before: a channel cannot be deleted while recording.
        if let Some(prior) = recorder_restore {
            if state.is_recording() && (!prior.exists || !prior.recording) {
                recorder::stop(&self.config, inv, &name).await?;
                expect.push(Expect::NotRecording);
            }
        }

        if let Restore::To { prior, wants, .. } = chan {
            match state.channel.as_ref() {
                None => {
                    if prior.exists {
                        info!("the delivery channel found before the first claimant was deleted since: left as it is");
                    }
                }
                Some(c) if !wants.as_ref().is_none_or(|w| w.is_met_by(c)) => info!(
                    channel = c.name(),
                    "the delivery channel was changed by someone else since this resource set it: left as it is"
                ),
                Some(c) => match (prior.exists, &prior.settings) {
                    (false, _) => {
                        channel::delete(&self.config, inv, c.name().unwrap_or(channel::DEFAULT_NAME)).await?;
                        expect.push(Expect::ChannelGone);
                    }
                    (true, None) => {
                        info!("the delivery channel was adopted by a resource made before the ledger: left as it is")
                    }
                    (true, Some(settings)) => {
                        if ChannelSettings::of(c) != *settings {
                            channel::put(&self.config, inv, settings.channel(), None).await?;
                            expect.push(Expect::ChannelIs(settings.clone()));
                        }
                    }
                },
            }
        }

        if let (Some(prior), Some(_)) = (recorder_restore, current_recorder) {
            match (prior.exists, &prior.settings) {
                (false, _) => {
                    recorder::delete(&self.config, inv, &name).await?;
                    expect.push(Expect::RecorderGone);
                }
                (true, None) => info!(
                    recorder = name,
                    "the recorder was adopted by a resource made before the ledger: its settings are left as they are"
                ),
                (true, Some(_)) => debug_assert!(recorder_put_back, "put back before the channel"),
            }
        }
        Ok(())
    }

    /// Reads back what the restores did.
    async fn verify_restored(&self, inv: &Invocation, expect: &[Expect]) -> Result<(), HandlerError> {
        if expect.is_empty() {
            return Ok(());
        }
        inv.step("verifying the restored AWS Config settings");
        let after = self.read_settings(inv).await?;
        for e in expect {
            let ok = match e {
                Expect::RuleGone(name) => after.rules.get(name).is_none_or(rules::is_deleting),
                Expect::RuleIs(def) => after
                    .rules
                    .get(&def.name)
                    .is_some_and(|r| RuleDefinition::of(r) == *def),
                Expect::NotRecording => !after.is_recording(),
                Expect::ChannelGone => after.channel.is_none(),
                Expect::ChannelIs(s) => after.channel.as_ref().is_some_and(|c| ChannelSettings::of(c) == *s),
                Expect::RecorderGone => after.recorder.is_none(),
                Expect::RecorderIs(s) => after.recorder.as_ref().is_some_and(|r| s.is_met_by(r)),
            };
            if !ok {
                return Err(HandlerError::NotVerified(format!(
                    "AWS Config does not read back as restored ({e:?}): check for another automation that manages \
                     AWS Config here, then retry the Delete"
                )));
            }
        }
        Ok(())
    }

    /// Gives up every claim of the resource `entry`, restoring what the last claimant must, and drops
    /// its record. `undoing` is a failed Create's undo: settings it had not claimed yet are no news.
    async fn release_all(
        &self,
        inv: &Invocation,
        entry: &Entry,
        props: Option<&Properties>,
        undoing: bool,
    ) -> Result<(), HandlerError> {
        let record = self.ledger.load::<RecordState>(inv, &entry.key).await?;
        if record.is_none() && entry.legacy.is_none() {
            if undoing {
                info!("the failed Create had claimed nothing: nothing to undo");
                return Ok(());
            }
            warn!(
                parameter = self.ledger.record_name(&entry.key),
                "the ledger holds no record of this resource (deleted by someone?): only claims still in the ledger \
                 are released, and nothing whose prior state is unknown is turned off"
            );
        }
        let desired = props.and_then(|p| validate(p, &inv.region).ok());
        let state = self.read_settings(inv).await?;
        if let Some(own) = entry.legacy.as_ref().filter(|_| record.is_none()) {
            if own.created_recorder && state.recorder_name().is_some_and(|n| n != own.recorder_name) {
                info!(
                    ours = own.recorder_name,
                    found = state.recorder_name(),
                    "the recorder this old-format id names was replaced (a rename by Update, or by someone else): \
                     everything is left to its new owner"
                );
                return Ok(());
            }
        }
        let names: Vec<String> = match (&record, props) {
            (Some(r), _) => r.state.rules.clone(),
            (None, Some(p)) => p.rule_names().into_iter().map(str::to_string).collect(),
            (None, None) => state.rules.keys().cloned().collect(),
        };
        let created_by_legacy = match &entry.legacy {
            Some(_) if record.is_none() => rules::tagged_by(&self.config, inv, &state.rules, &names).await?,
            _ => BTreeSet::new(),
        };

        // Rules first, then recording, channel and recorder: the reverse of Create.
        let mut undo = Undo {
            key: &entry.key,
            undoing,
            state: &state,
            expect: Vec::new(),
            settled: Vec::new(),
        };
        for name in &names {
            let legacy = entry.legacy.as_ref().map(|_| {
                let prior = RulePrior {
                    exists: !created_by_legacy.contains(name),
                    definition: None,
                };
                let wants = desired
                    .as_ref()
                    .and_then(|d| d.rules.iter().find(|r| r.name == *name))
                    .map(RuleWants::of);
                (prior, wants)
            });
            self.release_rule(inv, &mut undo, name, legacy).await?;
        }
        self.release_recorder_and_channel(inv, entry, desired.as_ref(), &mut undo)
            .await?;
        self.verify_restored(inv, &undo.expect).await?;
        self.drop_settled(inv, &entry.key, &undo.settled).await?;
        self.ledger.forget(inv, &entry.key).await
    }

    /// The recorder an Update uses: the region's (adopted under its own name), or a rename of the one
    /// this resource created, when it is the only claimant.
    async fn recorder_for_update(
        &self,
        inv: &Invocation,
        entry: &Entry,
        state: &State,
        desired: &Desired,
        props: &Properties,
        old: Option<&Properties>,
    ) -> Result<String, HandlerError> {
        let Some(current) = state.recorder_name() else {
            return Ok(desired.recorder_name.clone());
        };
        let renamed = old.is_some_and(|o| o.recorder_name() != props.recorder_name());
        if !renamed || current == desired.recorder_name {
            return Ok(current.to_string());
        }
        let claims = self.ledger.claims(inv, &recorder_setting()).await?;
        let own = claims.iter().find(|c| c.claimant.key == entry.key);
        let others: Vec<String> = claims
            .iter()
            .filter(|c| c.claimant.key != entry.key)
            .map(|c| c.claimant.to_string())
            .collect();
        let created = match own {
            Some(claim) => parse::<RecorderPrior>(claim.prior.clone()).is_some_and(|p| !p.exists),
            None => entry.legacy.as_ref().is_some_and(|l| l.created_recorder),
        };
        if created && others.is_empty() {
            return Ok(desired.recorder_name.clone());
        }
        let why = if !created {
            format!("the recorder {current} was adopted, not created, by this resource")
        } else {
            format!("the recorder {current} is also claimed by {}", others.join("; "))
        };
        Err(HandlerError::InvalidProperty {
            property: "RecorderName".into(),
            problem: format!(
                "changed to {:?}, but {why}: Config cannot rename a recorder, and this resource does not delete a \
                 recorder another resource or someone else relies on; set RecorderName back to {:?}",
                props.recorder_name(),
                old.map(|o| o.recorder_name()).unwrap_or(current),
            ),
        })
    }
}

/// A recorder whose prior settings cannot be put back (the prior role is gone, or cannot be passed).
fn impossible_recorder_restore(
    err: HandlerError,
    prior: &RecorderSettings,
    current: &ConfigurationRecorder,
) -> HandlerError {
    let prior_role = prior.role_arn.as_deref().unwrap_or("(none)");
    let current_role = current.role_arn().unwrap_or("(none)");
    warn!(prior_role, current_role, error = %err, "the recorder's prior settings cannot be put back");
    let why = if err.code().is_some_and(is_access_denied) {
        format!(
            "this function may not pass the role {prior_role} to AWS Config (iam:PassRole: template.yml allows only \
             roles under ConfigRolePath)"
        )
    } else {
        format!("the role {prior_role} may no longer exist or trust config.amazonaws.com")
    };
    err.with_advice(format!(
        "the recorder's prior settings cannot be put back: {why}. Nothing else of the recorder, recording or the \
         delivery channel was changed back, and the claims stay in the ledger. The recorder keeps the role \
         {current_role}, which deleting this stack may remove, leaving AWS Config unable to record. Allow passing \
         the prior role (or recreate it) and retry the Delete, or retain this resource (DeletionPolicy: Retain) \
         and set the recorder's role by hand"
    ))
}

impl Verifier for ConfigSetup {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Reads, and only reads, what the claim on `setting` asks for: the recorder and its status, the
    /// channel and its delivery status, or one rule. A read that fails makes its controls unknown.
    async fn check(&self, inv: &Invocation, setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let damaged = |control: &str| {
            vec![ControlCheck::unknown(
                control,
                "a claim",
                "the claim in the ledger is damaged",
            )]
        };
        if setting == recorder_setting() {
            let Some(wants) = parse::<RecorderWants>(Some(wants.clone())) else {
                return damaged(RECORDER_CONTROL);
            };
            let observed = async {
                let recorder = recorder::read(&self.config, inv).await?;
                let status = match recorder.as_ref().and_then(|r| r.name()) {
                    Some(name) => recorder::read_status(&self.config, inv, name).await?,
                    None => None,
                };
                Ok::<_, HandlerError>((recorder, status))
            };
            return match observed.await {
                Ok((recorder, status)) => controls::recorder_checks(&wants, recorder.as_ref(), status.as_ref()),
                Err(err) => [
                    RECORDER_CONTROL,
                    controls::RECORDING_CONTROL,
                    controls::LAST_STATUS_CONTROL,
                ]
                .iter()
                .map(|c| ControlCheck::unknown(c, "as claimed", &err))
                .collect(),
            };
        }
        if setting == channel_setting() {
            let Some(wants) = parse::<ChannelWants>(Some(wants.clone())) else {
                return damaged(CHANNEL_CONTROL);
            };
            let observed = async {
                let current = channel::read(&self.config, inv).await?;
                let status = match current.as_ref().and_then(|c| c.name()) {
                    Some(name) => channel::read_status(&self.config, inv, name).await?,
                    None => None,
                };
                Ok::<_, HandlerError>((current, status))
            };
            return match observed.await {
                Ok((current, status)) => controls::channel_checks(&wants, current.as_ref(), status.as_ref()),
                Err(err) => [CHANNEL_CONTROL, controls::DELIVERING_CONTROL]
                    .iter()
                    .map(|c| ControlCheck::unknown(c, "as claimed", &err))
                    .collect(),
            };
        }
        let Some(name) = controls::rule_name_of(setting) else {
            return vec![ControlCheck::unknown(
                setting,
                "a setting of this handler",
                "not a setting this handler claims",
            )];
        };
        let Some(wants) = parse::<RuleWants>(Some(wants.clone())) else {
            return damaged(&controls::rule_control(&name));
        };
        match rules::read_one(&self.config, inv, &name).await {
            Ok(current) => vec![controls::rule_check(&name, &wants, current.as_ref())],
            Err(err) => vec![ControlCheck::unknown(
                &controls::rule_control(&name),
                "ACTIVE, as claimed",
                &err,
            )],
        }
    }

    /// See `repair.rs`: a stopped recorder started again, a missing or changed rule put back.
    async fn repair(
        &self,
        inv: &Invocation,
        setting: &str,
        wants: &Value,
        _drifted: &[ControlCheck],
    ) -> Result<Vec<String>, HandlerError> {
        self.repair_setting(inv, setting, wants).await
    }
}

impl CustomResource for ConfigSetup {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::ConfigSetup";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call (the fault matrix in tests/fault_matrix.rs injects
    /// each fault into each one, and fails on any call not listed here).
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        ("config", "DescribeConfigurationRecorders"),
        ("config", "ListConfigurationRecorders"),
        ("config", "DescribeConfigurationRecorderStatus"),
        ("config", "PutConfigurationRecorder"),
        ("config", "StartConfigurationRecorder"),
        ("config", "StopConfigurationRecorder"),
        ("config", "DeleteConfigurationRecorder"),
        ("config", "DescribeDeliveryChannels"),
        ("config", "DescribeDeliveryChannelStatus"),
        ("config", "PutDeliveryChannel"),
        ("config", "DeleteDeliveryChannel"),
        ("config", "DescribeConfigRules"),
        ("config", "PutConfigRule"),
        ("config", "DeleteConfigRule"),
        ("config", "ListTagsForResource"),
        // The ownership ledger.
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let desired = validate(&props, &inv.region)?;
        let key = inv.request_id.clone();
        let state = self.read_state(inv).await?;
        if !state.service_linked.is_empty() {
            info!(
                recorders = state.service_linked.join(","),
                "service-linked recorders found: their services own them; left as they are"
            );
        }
        // One customer managed recorder per region: adopt it under its own name rather than fail on a second.
        let recorder_name = state.recorder_name().unwrap_or(&desired.recorder_name).to_string();
        let (_, priors) = self
            .claim_all(inv, &key, &desired, &recorder_name, &state.observed(&desired))
            .await?;
        let changed_at = self.converge(inv, &desired, &recorder_name, &state).await?;
        let (mut after, delivery) = self.read_back(inv, &desired, &recorder_name, changed_at).await?;
        after.service_linked = state.service_linked;
        let physical_id = ledger::physical_id(ID_PREFIX, &inv.region, &key);
        Ok(Self::outcome(physical_id, &after, &desired, &recorder_name, &priors).with("DeliveryStatus", delivery))
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        let desired = validate(&props, &inv.region)?;
        let entry = Self::entry(physical_id)?;
        Self::check_region(inv, physical_id)?;
        let record = self.ledger.load::<RecordState>(inv, &entry.key).await?;
        let state = self.read_state(inv).await?;
        let recorder_name = self
            .recorder_for_update(inv, &entry, &state, &desired, &props, old.as_ref())
            .await?;

        // The prior of a setting this resource claims already is in the ledger; a rule new to this
        // Update is observed now; after a lost ledger, what the old properties asked for is unknown.
        let old_rules: Vec<String> = old
            .as_ref()
            .map(|o| o.rule_names().into_iter().map(str::to_string).collect())
            .unwrap_or_default();
        let mut observed = state.observed(&desired);
        let mut created_by_legacy = BTreeSet::new();
        match (&record, &entry.legacy) {
            (Some(r), _) => observed.retain(|setting, _| !r.settings.contains(setting)),
            (None, Some(own)) => {
                created_by_legacy = rules::tagged_by(&self.config, inv, &state.rules, &old_rules).await?;
                let recorder = if own.created_recorder {
                    RecorderPrior::absent()
                } else {
                    RecorderPrior {
                        exists: true,
                        name: Some(own.recorder_name.clone()),
                        recording: !own.started_recording,
                        settings: None,
                    }
                };
                observed.insert(recorder_setting(), json(&recorder));
                observed.insert(
                    channel_setting(),
                    json(&ChannelPrior {
                        exists: !own.created_channel,
                        settings: None,
                    }),
                );
                for name in &old_rules {
                    let prior = RulePrior {
                        exists: !created_by_legacy.contains(name),
                        definition: None,
                    };
                    observed.insert(rule_setting(name), json(&prior));
                }
            }
            (None, None) => {
                warn!(
                    parameter = self.ledger.record_name(&entry.key),
                    "the ledger holds no record of this resource (deleted by someone?): the prior state of what it \
                     claimed is unknown, and will never be turned off"
                );
                observed.remove(&recorder_setting());
                observed.remove(&channel_setting());
                for name in &old_rules {
                    observed.remove(&rule_setting(name));
                }
            }
        }
        let (mut record, priors) = self
            .claim_all(inv, &entry.key, &desired, &recorder_name, &observed)
            .await?;
        let changed_at = self.converge(inv, &desired, &recorder_name, &state).await?;

        // Rules no longer asked for give up their claim (a failed Update's rollback comes here too).
        let wanted: BTreeSet<&str> = desired.rules.iter().map(|r| r.name.as_str()).collect();
        let mut removed: Vec<String> = record
            .state
            .rules
            .iter()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        for name in old_rules.iter().filter(|n| !wanted.contains(n.as_str())) {
            if !removed.contains(name) {
                removed.push(name.clone());
            }
        }
        if !removed.is_empty() {
            let olds = old.as_ref().and_then(|o| validate(o, &inv.region).ok());
            let mut undo = Undo {
                key: &entry.key,
                undoing: false,
                state: &state,
                expect: Vec::new(),
                settled: Vec::new(),
            };
            for name in &removed {
                let legacy = entry
                    .legacy
                    .as_ref()
                    .filter(|_| created_by_legacy.contains(name))
                    .map(|_| {
                        let wants = olds
                            .as_ref()
                            .and_then(|d| d.rules.iter().find(|r| r.name == *name))
                            .map(RuleWants::of);
                        (RulePrior::observed(None), wants)
                    });
                self.release_rule(inv, &mut undo, name, legacy).await?;
            }
            self.verify_restored(inv, &undo.expect).await?;
            self.drop_settled(inv, &entry.key, &undo.settled).await?;
            record.state.rules.retain(|n| wanted.contains(n.as_str()));
            let gone: BTreeSet<String> = removed.iter().map(|n| rule_setting(n)).collect();
            record.settings.retain(|s| !gone.contains(s));
            self.ledger.save(inv, &entry.key, &record).await?;
        }
        let (mut after, delivery) = self.read_back(inv, &desired, &recorder_name, changed_at).await?;
        after.service_linked = state.service_linked.clone();
        // The physical id stays: a new one would make CloudFormation delete this resource.
        Ok(
            Self::outcome(physical_id.to_string(), &after, &desired, &recorder_name, &priors)
                .with("DeliveryStatus", delivery),
        )
    }

    async fn delete(&self, inv: &Invocation, physical_id: &str, props: Option<Properties>) -> Result<(), HandlerError> {
        let entry = Self::entry(physical_id)?;
        Self::check_region(inv, physical_id)?;
        self.release_all(inv, &entry, props.as_ref(), false).await
    }

    async fn verify(&self, inv: &Invocation) -> Result<Vec<ResourceReport>, HandlerError> {
        // Repairs only what resources with RepairDrift ask for (see `repair.rs`); read-only otherwise.
        verify::repairing_pass(self, inv).await
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
}
