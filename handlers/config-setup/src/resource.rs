//! Custom::ConfigSetup: the AWS Config recorder, its delivery channel and AWS managed rules, in that
//! order, answering SUCCESS only after reading back a recording recorder and every requested rule.
//!
//! Config allows one customer managed recorder and one delivery channel per region, and accounts often
//! have them already (an organization, Control Tower): existing ones are adopted, never duplicated.
//! What this resource created is kept in two places that survive from Create to Update and Delete:
//! the physical id (recorder, channel, whether it started recording) and a tag on each rule it created.
//! Rules are tagged rather than listed in the id because the list changes on Update, and a changed
//! physical id would make CloudFormation delete the old one, taking the still-wanted rules with it.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_config::types::{
    ConfigRule, ConfigSnapshotDeliveryProperties, ConfigurationRecorder, ConfigurationRecorderStatus, DeliveryChannel,
    MaximumExecutionFrequency, Owner, RecordingGroup, RecordingStrategy, RecordingStrategyType, ResourceType, Scope,
    Source, Tag,
};
use aws_sdk_config::Client;
use tapguard_shared::{is_access_denied, is_throttling, CustomResource, HandlerError, Invocation, Outcome};
use tracing::{info, warn};

use crate::properties::{validate, Desired, DesiredRule, Properties, SERVICE_LINKED_PREFIX};

const ID_PREFIX: &str = "config-setup:";
/// The name given to a delivery channel this resource creates (Config's own default).
const CHANNEL_NAME: &str = "default";
/// Tag on every rule this resource created; its value names the stack and the logical resource.
pub const OWNER_TAG: &str = "tapguard:config-setup";
const SERVICE: &str = "config";

/// What this resource created or changed, beyond the rules: it travels in the physical id.
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership {
    pub region: String,
    pub created_recorder: bool,
    pub created_channel: bool,
    /// Recording was off (or there was no recorder) before this resource: Delete turns it off again.
    pub started_recording: bool,
    pub recorder_name: String,
}

impl Ownership {
    /// `config-setup:<region>:created=<recorder,channel|recorder|channel|none>:started-recording=<bool>:<recorder>`;
    /// the recorder name comes last because it may itself contain colons.
    pub fn physical_id(&self) -> String {
        let created: Vec<&str> = [(self.created_recorder, "recorder"), (self.created_channel, "channel")]
            .iter()
            .filter(|(yes, _)| *yes)
            .map(|(_, what)| *what)
            .collect();
        format!(
            "{ID_PREFIX}{}:created={}:started-recording={}:{}",
            self.region,
            if created.is_empty() {
                "none".to_string()
            } else {
                created.join(",")
            },
            self.started_recording,
            self.recorder_name
        )
    }

    pub fn parse(physical_id: &str) -> Result<Self, HandlerError> {
        let malformed = || {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues (expected {ID_PREFIX}<region>:created=<list>:\
                 started-recording=<true|false>:<recorder name>): what this resource created cannot be told"
            ))
        };
        let rest = physical_id.strip_prefix(ID_PREFIX).ok_or_else(malformed)?;
        let parts: Vec<&str> = rest.splitn(4, ':').collect();
        let [region, created, started, recorder] = parts[..] else {
            return Err(malformed());
        };
        let created = created.strip_prefix("created=").ok_or_else(malformed)?;
        let created: Vec<&str> = if created == "none" {
            vec![]
        } else {
            created.split(',').collect()
        };
        if created.iter().any(|c| !matches!(*c, "recorder" | "channel")) || recorder.is_empty() {
            return Err(malformed());
        }
        let started_recording = started
            .strip_prefix("started-recording=")
            .and_then(|s| s.parse().ok())
            .ok_or_else(malformed)?;
        Ok(Ownership {
            region: region.to_string(),
            created_recorder: created.contains(&"recorder"),
            created_channel: created.contains(&"channel"),
            started_recording,
            recorder_name: recorder.to_string(),
        })
    }
}

/// Config in the region as read from AWS.
#[derive(Debug, Clone, Default)]
struct State {
    /// The customer managed recorder, if any (there is at most one).
    recorder: Option<ConfigurationRecorder>,
    /// Names of service-linked recorders: their AWS service owns them; they are reported, never changed.
    service_linked: Vec<String>,
    status: Option<ConfigurationRecorderStatus>,
    channel: Option<DeliveryChannel>,
    rules: BTreeMap<String, ConfigRule>,
}

impl State {
    fn recorder_name(&self) -> Option<&str> {
        self.recorder.as_ref().and_then(|r| r.name())
    }

    fn is_recording(&self, recorder: &str) -> bool {
        self.recorder_name() == Some(recorder) && self.status.as_ref().is_some_and(|s| s.recording())
    }
}

/// One change made by this invocation, with what it replaced: a failed Create undoes them in reverse.
#[derive(Debug, Clone)]
enum Change {
    RecorderCreated(String),
    RecorderChanged(ConfigurationRecorder),
    ChannelCreated(String),
    ChannelChanged(DeliveryChannel),
    RecordingStarted(String),
    RuleCreated(String),
    RuleChanged(ConfigRule),
}

pub struct ConfigSetup {
    config: Client,
}

impl ConfigSetup {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_client(Client::new(config))
    }

    pub fn from_client(config: Client) -> Self {
        ConfigSetup { config }
    }

    async fn read_state(&self, inv: &Invocation) -> Result<State, HandlerError> {
        let mut state = State::default();
        let recorders = inv
            .aws(
                SERVICE,
                "DescribeConfigurationRecorders",
                self.config.describe_configuration_recorders().send(),
            )
            .await?;
        for recorder in recorders.configuration_recorders() {
            let name = recorder.name().unwrap_or_default();
            if recorder.service_principal().is_some() || name.starts_with(SERVICE_LINKED_PREFIX) {
                state.service_linked.push(name.to_string());
            } else if state.recorder.is_none() {
                state.recorder = Some(recorder.clone());
            }
        }
        if let Some(name) = state.recorder_name().map(str::to_string) {
            let status = inv
                .aws(
                    SERVICE,
                    "DescribeConfigurationRecorderStatus",
                    self.config
                        .describe_configuration_recorder_status()
                        .configuration_recorder_names(&name)
                        .send(),
                )
                .await?;
            state.status = status
                .configuration_recorders_status()
                .iter()
                .find(|s| s.name() == Some(name.as_str()))
                .cloned();
        }
        let channels = inv
            .aws(
                SERVICE,
                "DescribeDeliveryChannels",
                self.config.describe_delivery_channels().send(),
            )
            .await?;
        state.channel = channels.delivery_channels().first().cloned();
        let mut next_token: Option<String> = None;
        loop {
            let page = inv
                .aws(
                    SERVICE,
                    "DescribeConfigRules",
                    self.config
                        .describe_config_rules()
                        .set_next_token(next_token.clone())
                        .send(),
                )
                .await?;
            for rule in page.config_rules() {
                if let Some(name) = rule.config_rule_name() {
                    state.rules.insert(name.to_string(), rule.clone());
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                _ => break,
            }
        }
        Ok(state)
    }

    /// The rules among `names` that exist and carry this resource's owner tag.
    async fn owned_rules(
        &self,
        inv: &Invocation,
        state: &State,
        names: &[String],
    ) -> Result<BTreeSet<String>, HandlerError> {
        let owner = owner_token(inv);
        let mut owned = BTreeSet::new();
        for name in names {
            let Some(arn) = state.rules.get(name.as_str()).and_then(|r| r.config_rule_arn()) else {
                continue;
            };
            let tags = inv
                .aws(
                    SERVICE,
                    "ListTagsForResource",
                    self.config.list_tags_for_resource().resource_arn(arn).send(),
                )
                .await?;
            if tags
                .tags()
                .iter()
                .any(|t| t.key() == Some(OWNER_TAG) && t.value() == Some(owner.as_str()))
            {
                owned.insert(name.clone());
            }
        }
        Ok(owned)
    }

    async fn put_recorder(
        &self,
        inv: &Invocation,
        recorder: ConfigurationRecorder,
        desired: Option<&Desired>,
    ) -> Result<(), HandlerError> {
        inv.aws(
            SERVICE,
            "PutConfigurationRecorder",
            self.config
                .put_configuration_recorder()
                .configuration_recorder(recorder)
                .send(),
        )
        .await
        .map_err(|e| advise(e, desired, None))?;
        Ok(())
    }

    async fn put_channel(
        &self,
        inv: &Invocation,
        channel: DeliveryChannel,
        desired: Option<&Desired>,
    ) -> Result<(), HandlerError> {
        inv.aws(
            SERVICE,
            "PutDeliveryChannel",
            self.config.put_delivery_channel().delivery_channel(channel).send(),
        )
        .await
        .map_err(|e| advise(e, desired, None))?;
        Ok(())
    }

    async fn put_rule(
        &self,
        inv: &Invocation,
        rule: ConfigRule,
        owner_tag: Option<Tag>,
        desired: Option<(&Desired, &DesiredRule)>,
    ) -> Result<(), HandlerError> {
        inv.aws(
            SERVICE,
            "PutConfigRule",
            self.config
                .put_config_rule()
                .config_rule(rule)
                .set_tags(owner_tag.map(|t| vec![t]))
                .send(),
        )
        .await
        .map_err(|e| advise(e, desired.map(|d| d.0), desired.map(|d| d.1)))?;
        Ok(())
    }

    async fn start(&self, inv: &Invocation, recorder: &str) -> Result<(), HandlerError> {
        inv.aws(
            SERVICE,
            "StartConfigurationRecorder",
            self.config
                .start_configuration_recorder()
                .configuration_recorder_name(recorder)
                .send(),
        )
        .await
        .map_err(|e| advise(e, None, None))?;
        Ok(())
    }

    async fn stop(&self, inv: &Invocation, recorder: &str) -> Result<(), HandlerError> {
        gone_is_fine(
            inv.aws(
                SERVICE,
                "StopConfigurationRecorder",
                self.config
                    .stop_configuration_recorder()
                    .configuration_recorder_name(recorder)
                    .send(),
            )
            .await,
        )
    }

    async fn delete_rule(&self, inv: &Invocation, rule: &str) -> Result<(), HandlerError> {
        gone_is_fine(
            inv.aws(
                SERVICE,
                "DeleteConfigRule",
                self.config.delete_config_rule().config_rule_name(rule).send(),
            )
            .await,
        )
    }

    async fn delete_channel(&self, inv: &Invocation, channel: &str) -> Result<(), HandlerError> {
        gone_is_fine(
            inv.aws(
                SERVICE,
                "DeleteDeliveryChannel",
                self.config
                    .delete_delivery_channel()
                    .delivery_channel_name(channel)
                    .send(),
            )
            .await
            .map_err(|e| advise(e, None, None)),
        )
    }

    async fn delete_recorder(&self, inv: &Invocation, recorder: &str) -> Result<(), HandlerError> {
        gone_is_fine(
            inv.aws(
                SERVICE,
                "DeleteConfigurationRecorder",
                self.config
                    .delete_configuration_recorder()
                    .configuration_recorder_name(recorder)
                    .send(),
            )
            .await,
        )
    }

    /// Brings recorder, channel, recording and rules to `desired` in Config's order, calling only what differs.
    /// `recorder_name` is the recorder to use; when the region's recorder has another name, the caller has
    /// established that it is this resource's own and may be renamed.
    async fn converge(
        &self,
        inv: &Invocation,
        desired: &Desired,
        recorder_name: &str,
        state: &State,
        owned: &BTreeSet<String>,
        journal: &mut Vec<Change>,
    ) -> Result<(), HandlerError> {
        // The recorder first: a delivery channel cannot exist without one.
        let mut recording = state.is_recording(recorder_name);
        match &state.recorder {
            Some(current) if current.name() == Some(recorder_name) => {
                if !recorder_matches(current, desired) {
                    self.put_recorder(inv, recorder_for(recorder_name, desired, Some(current)), Some(desired))
                        .await?;
                    journal.push(Change::RecorderChanged(current.clone()));
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
                if state.status.as_ref().is_some_and(|s| s.recording()) {
                    self.stop(inv, old).await?;
                }
                self.delete_recorder(inv, old).await?;
                self.put_recorder(inv, recorder_for(recorder_name, desired, Some(current)), Some(desired))
                    .await?;
                journal.push(Change::RecorderCreated(recorder_name.to_string()));
                recording = false;
            }
            None => {
                self.put_recorder(inv, recorder_for(recorder_name, desired, None), Some(desired))
                    .await?;
                journal.push(Change::RecorderCreated(recorder_name.to_string()));
            }
        }

        match &state.channel {
            Some(current) => {
                if !channel_matches(current, desired) {
                    let name = current.name().unwrap_or(CHANNEL_NAME);
                    self.put_channel(inv, channel_for(name, desired, Some(current)), Some(desired))
                        .await?;
                    journal.push(Change::ChannelChanged(current.clone()));
                }
            }
            None => {
                self.put_channel(inv, channel_for(CHANNEL_NAME, desired, None), Some(desired))
                    .await?;
                journal.push(Change::ChannelCreated(CHANNEL_NAME.to_string()));
            }
        }

        // Recording needs both the recorder and the channel.
        if !recording {
            self.start(inv, recorder_name).await?;
            journal.push(Change::RecordingStarted(recorder_name.to_string()));
        }

        // Rules last: they evaluate what the recorder records.
        let owner = owner_tag(inv);
        for rule in &desired.rules {
            match state.rules.get(&rule.name) {
                None => {
                    self.put_rule(inv, rule_for(rule), Some(owner.clone()), Some((desired, rule)))
                        .await?;
                    journal.push(Change::RuleCreated(rule.name.clone()));
                }
                Some(current) if !rule_matches(current, rule) => {
                    let tag = owned.contains(&rule.name).then(|| owner.clone());
                    self.put_rule(inv, rule_for(rule), tag, Some((desired, rule))).await?;
                    journal.push(Change::RuleChanged(current.clone()));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Reads everything back and answers the state only if it is what was asked for.
    async fn verify(&self, inv: &Invocation, desired: &Desired, recorder_name: &str) -> Result<State, HandlerError> {
        inv.step("verifying the AWS Config setup");
        let after = self.read_state(inv).await?;
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
        if !recorder_matches(recorder, desired) {
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
        if !channel_matches(channel, desired) {
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
        if is_failure(status) {
            let code = status.last_error_code().unwrap_or("an unnamed error");
            let message = status.last_error_message().unwrap_or_default();
            return Err(HandlerError::NotVerified(format!(
                "the recorder {recorder_name} reports its last delivery failed: {code}: {message} ({})",
                delivery_advice(code, desired)
            )));
        }
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
            if current
                .config_rule_state()
                .is_some_and(|s| s.as_str().starts_with("DELETING"))
            {
                return Err(HandlerError::NotVerified(format!(
                    "the rule {} is being deleted ({}): retry once the deletion has finished",
                    rule.name,
                    current.config_rule_state().map_or("", |s| s.as_str())
                )));
            }
            if !rule_matches(current, rule) {
                return Err(HandlerError::NotVerified(format!(
                    "the rule {} does not read back as requested ({}): check for another automation that \
                     manages it",
                    rule.name,
                    rule.field()
                )));
            }
        }
        Ok(after)
    }

    /// Undoes a failed Create's changes, newest first; says what was undone or what is left.
    async fn undo(&self, inv: &Invocation, journal: Vec<Change>) -> String {
        if journal.is_empty() {
            return "this Create had changed nothing yet".to_string();
        }
        let mut undone = Vec::new();
        for change in journal.into_iter().rev() {
            let (done, result) = match &change {
                Change::RuleCreated(name) => (format!("deleted rule {name}"), self.delete_rule(inv, name).await),
                Change::RuleChanged(before) => (
                    format!("restored rule {}", before.config_rule_name().unwrap_or_default()),
                    self.put_rule(inv, restatement(before), None, None).await,
                ),
                Change::RecordingStarted(name) => (format!("stopped recorder {name}"), self.stop(inv, name).await),
                Change::ChannelCreated(name) => (
                    format!("deleted delivery channel {name}"),
                    self.delete_channel(inv, name).await,
                ),
                Change::ChannelChanged(before) => (
                    format!("restored delivery channel {}", before.name().unwrap_or_default()),
                    self.put_channel(inv, before.clone(), None).await,
                ),
                Change::RecorderCreated(name) => (
                    format!("deleted recorder {name}"),
                    self.delete_recorder(inv, name).await,
                ),
                Change::RecorderChanged(before) => (
                    format!("restored recorder {}", before.name().unwrap_or_default()),
                    self.put_recorder(inv, recorder_restatement(before), None).await,
                ),
            };
            if let Err(err) = result {
                warn!(error = %err, "undoing a failed Create failed");
                return format!(
                    "undoing this Create failed after it {}: {err}; remove what is left by hand",
                    if undone.is_empty() {
                        "had undone nothing".to_string()
                    } else {
                        undone.join(", ")
                    }
                );
            }
            undone.push(done);
        }
        format!(
            "this Create undid its changes ({}), so nothing is left to clean up",
            undone.join(", ")
        )
    }

    fn outcome(own: &Ownership, state: &State, desired: &Desired, owned: &BTreeSet<String>) -> Outcome {
        let status = state.status.as_ref();
        let rules_created: Vec<&str> = desired
            .rules
            .iter()
            .map(|r| r.name.as_str())
            .filter(|n| owned.contains(*n))
            .collect();
        Outcome::new(own.physical_id())
            .with("RecorderName", &own.recorder_name)
            .with(
                "DeliveryChannelName",
                state.channel.as_ref().and_then(|c| c.name()).unwrap_or_default(),
            )
            .with("Recording", status.is_some_and(|s| s.recording()))
            .with(
                "LastStatus",
                status.and_then(|s| s.last_status()).map_or("", |s| s.as_str()),
            )
            .with("RecorderAdopted", !own.created_recorder)
            .with("ChannelAdopted", !own.created_channel)
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

    fn check_region(inv: &Invocation, own: &Ownership) -> Result<(), HandlerError> {
        if !inv.region.is_empty() && own.region != inv.region {
            return Err(HandlerError::Failed(format!(
                "this resource set up AWS Config in {}, but the function runs in {}: deploy the function in {} to \
                 manage it",
                own.region, inv.region, own.region
            )));
        }
        Ok(())
    }
}

impl CustomResource for ConfigSetup {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::ConfigSetup";
    const ID_PREFIX: &'static str = ID_PREFIX;

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let desired = validate(&props, &inv.region)?;
        let state = self.read_state(inv).await?;
        if !state.service_linked.is_empty() {
            info!(
                recorders = state.service_linked.join(","),
                "service-linked recorders found: their services own them; left as they are"
            );
        }
        // One customer managed recorder per region: adopt it under its own name rather than fail on a second.
        let (recorder_name, created_recorder) = match state.recorder_name() {
            Some(existing) => (existing.to_string(), false),
            None => (desired.recorder_name.clone(), true),
        };
        let own = Ownership {
            region: inv.region.clone(),
            created_recorder,
            created_channel: state.channel.is_none(),
            started_recording: !state.is_recording(&recorder_name),
            recorder_name,
        };
        let names: Vec<String> = desired.rules.iter().map(|r| r.name.clone()).collect();
        let owned_before = self.owned_rules(inv, &state, &names).await?;
        let mut journal = Vec::new();
        let result = match self
            .converge(inv, &desired, &own.recorder_name, &state, &owned_before, &mut journal)
            .await
        {
            Ok(()) => self.verify(inv, &desired, &own.recorder_name).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(after) => {
                let mut owned = owned_before;
                owned.extend(journal.iter().filter_map(|c| match c {
                    Change::RuleCreated(name) => Some(name.clone()),
                    _ => None,
                }));
                Ok(Self::outcome(&own, &after, &desired, &owned))
            }
            Err(err) => {
                inv.step("undoing the failed Create");
                let note = self.undo(inv, journal).await;
                Err(err.with_note(&note))
            }
        }
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        let desired = validate(&props, &inv.region)?;
        let own = Ownership::parse(physical_id)?;
        Self::check_region(inv, &own)?;
        let old_name = old.as_ref().map(|o| o.recorder_name().to_string());
        if !own.created_recorder {
            if let Some(old_name) = old_name.as_deref().filter(|o| *o != props.recorder_name()) {
                return Err(HandlerError::InvalidProperty {
                    property: "RecorderName".into(),
                    problem: format!(
                        "changed to {:?}, but the recorder {} was adopted, not created, by this resource: Config cannot \
                         rename a recorder, and this resource does not delete what it did not create; set RecorderName \
                         back to {old_name:?}",
                        props.recorder_name(),
                        own.recorder_name,
                    ),
                });
            }
        }
        let state = self.read_state(inv).await?;
        let current = state.recorder_name().map(str::to_string);

        let recorder_name = if own.created_recorder {
            match current.as_deref() {
                None => desired.recorder_name.clone(),
                Some(name)
                    if name == desired.recorder_name
                        || name == own.recorder_name
                        || old_name.as_deref() == Some(name) =>
                {
                    desired.recorder_name.clone()
                }
                Some(name) => {
                    return Err(HandlerError::Failed(format!(
                        "the recorder {} this resource created is gone and {name} now records in {}: it is not \
                         this resource's to change; delete it, or remove this resource and adopt it with a new one",
                        own.recorder_name, inv.region
                    )))
                }
            }
        } else {
            if current.as_deref() != Some(own.recorder_name.as_str()) {
                return Err(HandlerError::Failed(format!(
                    "the adopted recorder {} is no longer in {} (found {:?}): recreate it, or replace this resource \
                     (a new logical id) so that it sets up its own",
                    own.recorder_name, inv.region, current
                )));
            }
            own.recorder_name.clone()
        };
        if state.channel.is_none() && !own.created_channel {
            return Err(HandlerError::Failed(format!(
                "the adopted delivery channel is no longer in {}: recreate it, or replace this resource (a new \
                 logical id) so that it sets up its own",
                inv.region
            )));
        }

        let removed: Vec<String> = old
            .as_ref()
            .map(|o| {
                o.rule_names()
                    .into_iter()
                    .filter(|n| !desired.rules.iter().any(|r| r.name == *n))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<String> = desired
            .rules
            .iter()
            .map(|r| r.name.clone())
            .chain(removed.iter().cloned())
            .collect();
        let owned_before = self.owned_rules(inv, &state, &names).await?;

        // CloudFormation rolls a failed Update back with a second Update, so nothing is undone here.
        let mut journal = Vec::new();
        self.converge(inv, &desired, &recorder_name, &state, &owned_before, &mut journal)
            .await?;
        for name in &removed {
            if !state.rules.contains_key(name) {
                continue;
            }
            if owned_before.contains(name) {
                self.delete_rule(inv, name).await?;
            } else {
                info!(
                    rule = name,
                    "rule removed from Rules was adopted, not created: left in place"
                );
            }
        }
        let after = self.verify(inv, &desired, &recorder_name).await?;
        let mut owned = owned_before;
        owned.extend(journal.iter().filter_map(|c| match c {
            Change::RuleCreated(name) => Some(name.clone()),
            _ => None,
        }));
        // A renamed recorder changes the id: CloudFormation's Delete of the old id then finds the old name
        // gone and leaves everything to this one.
        let own = Ownership { recorder_name, ..own };
        Ok(Self::outcome(&own, &after, &desired, &owned))
    }

    async fn delete(&self, inv: &Invocation, physical_id: &str, props: Option<Properties>) -> Result<(), HandlerError> {
        let own = Ownership::parse(physical_id)?;
        Self::check_region(inv, &own)?;
        let state = self.read_state(inv).await?;
        if own.created_recorder && state.recorder_name().is_some_and(|n| n != own.recorder_name) {
            info!(
                ours = own.recorder_name,
                found = state.recorder_name(),
                "the recorder this id names was replaced (a rename by Update, or by someone else): \
                 everything is left to its new owner"
            );
            return Ok(());
        }

        // Rules first, then recording, channel and recorder: the reverse of Create.
        let names: Vec<String> = match &props {
            Some(props) => props.rule_names().into_iter().map(str::to_string).collect(),
            // The properties no longer parse: the owner tag still says which rules are ours.
            None => state.rules.keys().cloned().collect(),
        };
        let owned = self.owned_rules(inv, &state, &names).await?;
        for name in &owned {
            self.delete_rule(inv, name).await?;
        }
        let ours_present = state.recorder_name() == Some(own.recorder_name.as_str());
        if (own.created_recorder || own.started_recording) && state.is_recording(&own.recorder_name) {
            self.stop(inv, &own.recorder_name).await?;
        }
        if own.created_channel {
            match state.channel.as_ref().and_then(|c| c.name()) {
                Some(CHANNEL_NAME) => self.delete_channel(inv, CHANNEL_NAME).await?,
                Some(other) => info!(
                    channel = other,
                    "the delivery channel is not the one this resource created: left in place"
                ),
                None => {}
            }
        }
        if own.created_recorder && ours_present {
            self.delete_recorder(inv, &own.recorder_name).await?;
        }
        Ok(())
    }
}

/// Identifies the resource on the tags of the rules it creates: stable across Updates, distinct per stack.
fn owner_token(inv: &Invocation) -> String {
    let stack = inv.stack_id.splitn(6, ':').nth(5).unwrap_or(&inv.stack_id);
    let token = format!("{stack}/{}", inv.logical_resource_id);
    if token.len() <= 256 {
        token
    } else {
        // Tag values hold 256 characters: keep a readable start and a hash of the whole.
        let hash = token.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut cut = 200;
        while !token.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}#{hash:016x}", &token[..cut])
    }
}

fn owner_tag(inv: &Invocation) -> Tag {
    Tag::builder().key(OWNER_TAG).value(owner_token(inv)).build()
}

fn recording_group(desired: &Desired) -> RecordingGroup {
    let strategy = if desired.all_supported {
        RecordingStrategyType::AllSupportedResourceTypes
    } else {
        RecordingStrategyType::InclusionByResourceTypes
    };
    RecordingGroup::builder()
        .all_supported(desired.all_supported)
        .include_global_resource_types(desired.include_global_resource_types)
        .set_resource_types((!desired.all_supported).then(|| {
            desired
                .resource_types
                .iter()
                .map(|t| ResourceType::from(t.as_str()))
                .collect()
        }))
        .recording_strategy(RecordingStrategy::builder().use_only(strategy).build())
        .build()
}

/// The recorder to put; the recording mode (frequency overrides) of an existing one is kept, as this
/// resource does not manage it.
fn recorder_for(name: &str, desired: &Desired, current: Option<&ConfigurationRecorder>) -> ConfigurationRecorder {
    ConfigurationRecorder::builder()
        .name(name)
        .role_arn(&desired.role_arn)
        .recording_group(recording_group(desired))
        .set_recording_mode(current.and_then(|c| c.recording_mode()).cloned())
        .build()
}

fn recorder_restatement(before: &ConfigurationRecorder) -> ConfigurationRecorder {
    ConfigurationRecorder::builder()
        .set_name(before.name().map(str::to_string))
        .set_role_arn(before.role_arn().map(str::to_string))
        .set_recording_group(before.recording_group().cloned())
        .set_recording_mode(before.recording_mode().cloned())
        .build()
}

fn recorder_matches(current: &ConfigurationRecorder, desired: &Desired) -> bool {
    let Some(group) = current.recording_group() else {
        return false;
    };
    let mut types: Vec<&str> = group.resource_types().iter().map(|t| t.as_str()).collect();
    types.sort();
    current.role_arn() == Some(desired.role_arn.as_str())
        && group.all_supported() == desired.all_supported
        && group.include_global_resource_types() == desired.include_global_resource_types
        && (desired.all_supported || types == desired.resource_types)
}

/// The channel to put; an existing channel's KMS key is kept, as this resource does not manage it.
fn channel_for(name: &str, desired: &Desired, current: Option<&DeliveryChannel>) -> DeliveryChannel {
    DeliveryChannel::builder()
        .name(name)
        .s3_bucket_name(&desired.bucket)
        .set_s3_key_prefix(desired.key_prefix.clone())
        .set_sns_topic_arn(desired.sns_topic_arn.clone())
        .set_s3_kms_key_arn(current.and_then(|c| c.s3_kms_key_arn()).map(str::to_string))
        .config_snapshot_delivery_properties(
            ConfigSnapshotDeliveryProperties::builder()
                .delivery_frequency(MaximumExecutionFrequency::from(desired.frequency.as_str()))
                .build(),
        )
        .build()
}

fn channel_matches(current: &DeliveryChannel, desired: &Desired) -> bool {
    let frequency = current
        .config_snapshot_delivery_properties()
        .and_then(|p| p.delivery_frequency())
        .map_or("TwentyFour_Hours", |f| f.as_str());
    let blank = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
    current.s3_bucket_name() == Some(desired.bucket.as_str())
        && blank(current.s3_key_prefix()) == desired.key_prefix
        && blank(current.sns_topic_arn()) == desired.sns_topic_arn
        && frequency == desired.frequency
}

fn rule_for(rule: &DesiredRule) -> ConfigRule {
    ConfigRule::builder()
        .config_rule_name(&rule.name)
        .source(
            Source::builder()
                .owner(Owner::Aws)
                .source_identifier(&rule.source_identifier)
                .build()
                .expect("owner is set"),
        )
        .set_input_parameters(rule.input_parameters_json())
        .set_maximum_execution_frequency(
            rule.maximum_execution_frequency
                .as_deref()
                .map(MaximumExecutionFrequency::from),
        )
        .set_scope((!rule.scope.is_empty()).then(|| {
            Scope::builder()
                .set_compliance_resource_types(Some(rule.scope.clone()))
                .build()
        }))
        .build()
}

/// A rule as it was, in the shape PutConfigRule takes back (no ARN, id, state or creator).
fn restatement(before: &ConfigRule) -> ConfigRule {
    ConfigRule::builder()
        .set_config_rule_name(before.config_rule_name().map(str::to_string))
        .set_description(before.description().map(str::to_string))
        .set_scope(before.scope().cloned())
        .set_source(before.source().cloned())
        .set_input_parameters(before.input_parameters().map(str::to_string))
        .set_maximum_execution_frequency(before.maximum_execution_frequency().cloned())
        .build()
}

fn rule_matches(current: &ConfigRule, rule: &DesiredRule) -> bool {
    let source_ok = current
        .source()
        .is_some_and(|s| *s.owner() == Owner::Aws && s.source_identifier() == Some(rule.source_identifier.as_str()));
    // Config may reformat the JSON: compare the parameters, not the text.
    let params: BTreeMap<String, String> = current
        .input_parameters()
        .filter(|p| !p.trim().is_empty())
        .and_then(|p| serde_json::from_str::<BTreeMap<String, serde_json::Value>>(p).ok())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    // Not asking for a frequency accepts Config's default for periodic rules.
    let frequency_ok = match (&rule.maximum_execution_frequency, current.maximum_execution_frequency()) {
        (Some(want), Some(have)) => want == have.as_str(),
        (Some(_), None) => false,
        (None, have) => have.is_none_or(|h| h.as_str() == "TwentyFour_Hours"),
    };
    let mut scope: Vec<&str> = current
        .scope()
        .map(|s| s.compliance_resource_types().iter().map(String::as_str).collect())
        .unwrap_or_default();
    scope.sort();
    source_ok && params == rule.input_parameters && frequency_ok && scope == rule.scope
}

fn is_failure(status: &ConfigurationRecorderStatus) -> bool {
    // AWS answers "Failure"; the emulator answers upper case. PENDING is normal until the first delivery.
    status
        .last_status()
        .is_some_and(|s| s.as_str().eq_ignore_ascii_case("failure"))
}

fn gone_is_fine(result: Result<impl Sized, HandlerError>) -> Result<(), HandlerError> {
    match result {
        Ok(_) => Ok(()),
        Err(err)
            if matches!(
                err.code(),
                Some(
                    "NoSuchConfigRuleException"
                        | "NoSuchConfigurationRecorderException"
                        | "NoSuchDeliveryChannelException"
                )
            ) =>
        {
            info!(error = %err, "already gone");
            Ok(())
        }
        Err(err) => Err(err),
    }
}

fn delivery_advice(code: &str, desired: &Desired) -> String {
    let bucket = &desired.bucket;
    match code {
        "InsufficientDeliveryPolicyException" | "AccessDenied" => format!(
            "the bucket policy of {bucket} does not let config.amazonaws.com write: allow it s3:GetBucketAcl and \
             s3:ListBucket on the bucket and s3:PutObject on {}AWSLogs/<account>/Config/*, then retry",
            desired
                .key_prefix
                .as_deref()
                .map(|p| format!("{p}/"))
                .unwrap_or_default()
        ),
        "NoSuchBucketException" | "NoSuchBucket" => {
            format!("the bucket {bucket} does not exist: create it or correct DeliveryBucketName")
        }
        _ => "correct what the message describes, then retry the stack operation".to_string(),
    }
}

/// Replaces the generic advice of a failed Config call with what a person should do about this resource.
fn advise(err: HandlerError, desired: Option<&Desired>, rule: Option<&DesiredRule>) -> HandlerError {
    let Some(code) = err.code().map(str::to_string) else {
        return err;
    };
    if is_access_denied(&code) || is_throttling(&code) {
        return err;
    }
    let specific = match (code.as_str(), desired) {
        ("InsufficientDeliveryPolicyException" | "NoSuchBucketException", Some(d)) => Some(delivery_advice(&code, d)),
        ("InsufficientPermissionsException" | "InvalidRoleException", Some(d)) => Some(format!(
            "Config cannot use the role {}: its trust policy must let config.amazonaws.com assume it, it needs the \
             AWS_ConfigRole managed policy (or equal), and the function needs iam:PassRole on it",
            d.role_arn
        )),
        ("InvalidSNSTopicARNException", Some(d)) => Some(format!(
            "the topic {} does not exist or does not let config.amazonaws.com publish: create it or correct \
             DeliverySnsTopicArn",
            d.sns_topic_arn.as_deref().unwrap_or_default()
        )),
        ("InvalidS3KeyPrefixException", _) => Some("correct DeliveryS3KeyPrefix".to_string()),
        ("InvalidRecordingGroupException" | "InvalidResourceTypeException", _) => Some(
            "correct AllSupported, IncludeGlobalResourceTypes or ResourceTypes (the types must be ones Config \
             records)"
                .to_string(),
        ),
        ("MaxNumberOfConfigurationRecordersExceededException" | "MaxNumberOfDeliveryChannelsExceededException", _) => {
            Some(
                "another recorder or channel appeared while this resource was working: retry the stack operation, \
                 and this resource adopts it"
                    .to_string(),
            )
        }
        ("MaxNumberOfConfigRulesExceededException", _) => Some(
            "the account's quota of Config rules is reached: delete unused rules or ask for a higher quota".to_string(),
        ),
        ("LastDeliveryChannelDeleteFailedException", _) => Some(
            "the recorder is recording again (something restarted it): stop the recorder, then retry the delete"
                .to_string(),
        ),
        ("InvalidParameterValueException" | "ValidationException" | "ResourceInUseException", _) => rule.map(|r| {
            format!(
                "{}: check that SourceIdentifier {} is an AWS managed rule available in this region, that \
                 InputParameters names only its parameters and every required one, and that \
                 MaximumExecutionFrequency is given only for periodic rules",
                r.field(),
                r.source_identifier
            )
        }),
        _ => None,
    };
    match specific {
        Some(advice) => err.with_advice(advice),
        None => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_config::operation::delete_config_rule::{DeleteConfigRuleError, DeleteConfigRuleOutput};
    use aws_sdk_config::operation::delete_configuration_recorder::DeleteConfigurationRecorderOutput;
    use aws_sdk_config::operation::delete_delivery_channel::{DeleteDeliveryChannelError, DeleteDeliveryChannelOutput};
    use aws_sdk_config::operation::describe_config_rules::DescribeConfigRulesOutput;
    use aws_sdk_config::operation::describe_configuration_recorder_status::DescribeConfigurationRecorderStatusOutput;
    use aws_sdk_config::operation::describe_configuration_recorders::DescribeConfigurationRecordersOutput;
    use aws_sdk_config::operation::describe_delivery_channels::DescribeDeliveryChannelsOutput;
    use aws_sdk_config::operation::list_tags_for_resource::ListTagsForResourceOutput;
    use aws_sdk_config::operation::put_config_rule::{PutConfigRuleError, PutConfigRuleOutput};
    use aws_sdk_config::operation::put_configuration_recorder::PutConfigurationRecorderOutput;
    use aws_sdk_config::operation::put_delivery_channel::{PutDeliveryChannelError, PutDeliveryChannelOutput};
    use aws_sdk_config::operation::start_configuration_recorder::{
        StartConfigurationRecorderError, StartConfigurationRecorderOutput,
    };
    use aws_sdk_config::operation::stop_configuration_recorder::StopConfigurationRecorderOutput;
    use aws_sdk_config::types::RecorderStatus;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::111122223333:role/tap-config";
    const BUCKET: &str = "tap-config-111122223333";
    const STACK: &str = "arn:aws:cloudformation:eu-west-1:111122223333:stack/tap/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f";

    fn inv() -> Invocation {
        let mut inv = Invocation::detached("eu-west-1", "111122223333");
        inv.stack_id = STACK.into();
        inv.logical_resource_id = "ConfigSetup".into();
        inv
    }

    fn props(rules: Value) -> Properties {
        tapguard_shared::props::parse(&json!({"RoleArn": ROLE, "DeliveryBucketName": BUCKET, "Rules": rules})).unwrap()
    }

    use serde_json::Value;

    fn keys() -> Value {
        json!({"Name": "keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED", "InputParameters": {"maxAccessKeyAge": "90"}})
    }

    fn volumes() -> Value {
        json!({"Name": "volumes", "SourceIdentifier": "ENCRYPTED_VOLUMES"})
    }

    fn recorder(name: &str) -> ConfigurationRecorder {
        ConfigurationRecorder::builder()
            .name(name)
            .role_arn(ROLE)
            .recording_group(
                RecordingGroup::builder()
                    .all_supported(true)
                    .include_global_resource_types(true)
                    .build(),
            )
            .build()
    }

    fn service_linked() -> ConfigurationRecorder {
        ConfigurationRecorder::builder()
            .name("AWSConfigurationRecorderForSecurityHub")
            .service_principal("securityhub.amazonaws.com")
            .build()
    }

    fn status(name: &str, recording: bool, last: Option<&str>) -> ConfigurationRecorderStatus {
        let b = ConfigurationRecorderStatus::builder().name(name).recording(recording);
        match last {
            Some(l) => b.last_status(RecorderStatus::from(l)),
            None => b,
        }
        .build()
    }

    fn channel(name: &str) -> DeliveryChannel {
        DeliveryChannel::builder()
            .name(name)
            .s3_bucket_name(BUCKET)
            .config_snapshot_delivery_properties(
                ConfigSnapshotDeliveryProperties::builder()
                    .delivery_frequency(MaximumExecutionFrequency::TwentyFourHours)
                    .build(),
            )
            .build()
    }

    fn rule(value: Value) -> ConfigRule {
        let p = props(json!([value]));
        let d = validate(&p, "eu-west-1").unwrap();
        let mut r = rule_for(&d.rules[0]);
        r.config_rule_arn = Some(format!(
            "arn:aws:config:eu-west-1:111122223333:config-rule/{}",
            d.rules[0].name
        ));
        r.config_rule_state = Some(aws_sdk_config::types::ConfigRuleState::Active);
        r
    }

    /// Config as one DescribeX round shows it.
    #[derive(Clone, Default)]
    struct Snapshot {
        recorders: Vec<ConfigurationRecorder>,
        status: Option<ConfigurationRecorderStatus>,
        channels: Vec<DeliveryChannel>,
        rules: Vec<ConfigRule>,
    }

    fn fresh() -> Snapshot {
        Snapshot::default()
    }

    fn set_up(recording: bool, rules: Vec<ConfigRule>) -> Snapshot {
        Snapshot {
            recorders: vec![recorder("default")],
            status: Some(status("default", recording, recording.then_some("PENDING"))),
            channels: vec![channel("default")],
            rules,
        }
    }

    /// Read rules that answer each snapshot in turn (one per `read_state`).
    fn read_rules(snapshots: &[Snapshot]) -> Vec<Rule> {
        let mut recorders = mock!(Client::describe_configuration_recorders).sequence();
        let mut statuses = mock!(Client::describe_configuration_recorder_status).sequence();
        let mut channels = mock!(Client::describe_delivery_channels).sequence();
        let mut rules = mock!(Client::describe_config_rules).sequence();
        for s in snapshots.iter().cloned() {
            let r = s.recorders.clone();
            recorders = recorders.output(move || {
                DescribeConfigurationRecordersOutput::builder()
                    .set_configuration_recorders(Some(r.clone()))
                    .build()
            });
            if let Some(st) = s.status.clone() {
                statuses = statuses.output(move || {
                    DescribeConfigurationRecorderStatusOutput::builder()
                        .configuration_recorders_status(st.clone())
                        .build()
                });
            }
            let c = s.channels.clone();
            channels = channels.output(move || {
                DescribeDeliveryChannelsOutput::builder()
                    .set_delivery_channels(Some(c.clone()))
                    .build()
            });
            let ru = s.rules.clone();
            rules = rules.output(move || {
                DescribeConfigRulesOutput::builder()
                    .set_config_rules(Some(ru.clone()))
                    .build()
            });
        }
        vec![recorders.build(), statuses.build(), channels.build(), rules.build()]
    }

    fn tags(owner: Option<&'static str>) -> Rule {
        mock!(Client::list_tags_for_resource).then_output(move || {
            let b = ListTagsForResourceOutput::builder();
            match owner {
                Some(v) => b.tags(Tag::builder().key(OWNER_TAG).value(v).build()),
                None => b,
            }
            .build()
        })
    }

    const OURS: &str = "stack/tap/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f/ConfigSetup";

    /// Every mutating operation, answering success; `num_calls` says what was called.
    struct Writes {
        put_recorder: Rule,
        put_channel: Rule,
        start: Rule,
        stop: Rule,
        put_rule: Rule,
        delete_rule: Rule,
        delete_channel: Rule,
        delete_recorder: Rule,
    }

    impl Writes {
        fn ok() -> Writes {
            Writes {
                put_recorder: mock!(Client::put_configuration_recorder)
                    .then_output(|| PutConfigurationRecorderOutput::builder().build()),
                put_channel: mock!(Client::put_delivery_channel)
                    .then_output(|| PutDeliveryChannelOutput::builder().build()),
                start: mock!(Client::start_configuration_recorder)
                    .then_output(|| StartConfigurationRecorderOutput::builder().build()),
                stop: mock!(Client::stop_configuration_recorder)
                    .then_output(|| StopConfigurationRecorderOutput::builder().build()),
                put_rule: mock!(Client::put_config_rule).then_output(|| PutConfigRuleOutput::builder().build()),
                delete_rule: mock!(Client::delete_config_rule)
                    .then_output(|| DeleteConfigRuleOutput::builder().build()),
                delete_channel: mock!(Client::delete_delivery_channel)
                    .then_output(|| DeleteDeliveryChannelOutput::builder().build()),
                delete_recorder: mock!(Client::delete_configuration_recorder)
                    .then_output(|| DeleteConfigurationRecorderOutput::builder().build()),
            }
        }

        fn all(&self) -> Vec<&Rule> {
            vec![
                &self.put_recorder,
                &self.put_channel,
                &self.start,
                &self.stop,
                &self.put_rule,
                &self.delete_rule,
                &self.delete_channel,
                &self.delete_recorder,
            ]
        }

        fn total(&self) -> usize {
            self.all().iter().map(|r| r.num_calls()).sum()
        }
    }

    /// A handler over `first` (checked first, e.g. failing writes), then the reads, then `writes`.
    fn handler(first: &[&Rule], reads: &[Rule], more: &[&Rule], writes: &Writes) -> ConfigSetup {
        let mut rules: Vec<&Rule> = first.to_vec();
        rules.extend(reads.iter());
        rules.extend(more.iter().copied());
        rules.extend(writes.all());
        let client = mock_client!(aws_sdk_config, RuleMode::MatchAny, &rules, |c| c.retry_config(
            aws_sdk_config::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1))
                .with_max_backoff(std::time::Duration::from_millis(5))
        ));
        ConfigSetup::from_client(client)
    }

    fn error(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    #[tokio::test]
    async fn fresh_create_puts_everything_and_answers_what_it_read_back() {
        let after = set_up(true, vec![rule(keys())]);
        let (reads, w, tags) = (read_rules(&[fresh(), after]), Writes::ok(), tags(Some(OURS)));
        let h = handler(&[], &reads, &[&tags], &w);
        let out = h.create(&inv(), props(json!([keys()]))).await.unwrap();
        assert_eq!(
            out.physical_id,
            "config-setup:eu-west-1:created=recorder,channel:started-recording=true:default"
        );
        let data = |k: &str| out.data[k].as_str();
        assert_eq!(
            (
                data("RecorderName"),
                data("DeliveryChannelName"),
                data("Recording"),
                data("LastStatus")
            ),
            ("default", "default", "true", "PENDING")
        );
        assert_eq!((data("RecorderAdopted"), data("ChannelAdopted")), ("false", "false"));
        assert_eq!((data("RuleNames"), data("RulesCreated")), ("keys", "keys"));
        assert_eq!(
            (
                w.put_recorder.num_calls(),
                w.put_channel.num_calls(),
                w.start.num_calls(),
                w.put_rule.num_calls()
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(tags.num_calls(), 0, "nothing existed whose owner needed checking");
    }

    #[tokio::test]
    async fn an_existing_recorder_is_adopted_under_its_own_name() {
        let before = Snapshot {
            recorders: vec![recorder("org")],
            status: Some(status("org", false, None)),
            ..fresh()
        };
        let after = Snapshot {
            recorders: vec![recorder("org")],
            status: Some(status("org", true, Some("PENDING"))),
            channels: vec![channel("default")],
            rules: vec![],
        };
        let (reads, w) = (read_rules(&[before, after]), Writes::ok());
        let start_org = mock!(Client::start_configuration_recorder)
            .match_requests(|r| r.configuration_recorder_name() == Some("org"))
            .then_output(|| StartConfigurationRecorderOutput::builder().build());
        let h = handler(&[&start_org], &reads, &[], &w);
        let out = h.create(&inv(), props(json!([]))).await.unwrap();
        assert_eq!(
            out.physical_id,
            "config-setup:eu-west-1:created=channel:started-recording=true:org"
        );
        assert_eq!(out.data["RecorderAdopted"], "true");
        assert_eq!(
            w.put_recorder.num_calls(),
            0,
            "same settings: never a second recorder, no change"
        );
        assert_eq!((w.put_channel.num_calls(), start_org.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_service_linked_recorder_is_reported_and_left_alone() {
        let before = Snapshot {
            recorders: vec![service_linked()],
            ..fresh()
        };
        let mut after = set_up(true, vec![]);
        after.recorders.push(service_linked());
        let (reads, w) = (read_rules(&[before, after]), Writes::ok());
        let put_default = mock!(Client::put_configuration_recorder)
            .match_requests(|r| r.configuration_recorder().and_then(|c| c.name()) == Some("default"))
            .then_output(|| PutConfigurationRecorderOutput::builder().build());
        let h = handler(&[&put_default], &reads, &[], &w);
        let out = h.create(&inv(), props(json!([]))).await.unwrap();
        assert_eq!(
            out.data["ServiceLinkedRecorders"],
            "AWSConfigurationRecorderForSecurityHub"
        );
        assert_eq!(out.data["RecorderName"], "default");
        assert_eq!(
            (put_default.num_calls(), w.put_recorder.num_calls()),
            (1, 0),
            "only our own recorder is put"
        );
    }

    #[tokio::test]
    async fn access_denied_on_start_names_the_action_and_undoes_the_create() {
        let (reads, w) = (read_rules(&[fresh()]), Writes::ok());
        let denied = mock!(Client::start_configuration_recorder).then_error(|| {
            StartConfigurationRecorderError::generic(error("AccessDeniedException", "User is not authorized"))
        });
        let h = handler(&[&denied], &reads, &[], &w);
        let err = h.create(&inv(), props(json!([keys()]))).await.unwrap_err();
        assert_eq!(err.code(), Some("AccessDeniedException"));
        let text = err.to_string();
        assert!(
            text.starts_with("StartConfigurationRecorder failed: AccessDeniedException: User is not authorized"),
            "{text}"
        );
        assert!(
            text.contains("the action config:StartConfigurationRecorder was denied"),
            "{text}"
        );
        assert!(
            text.contains("this Create undid its changes (deleted delivery channel default, deleted recorder default)"),
            "{text}"
        );
        assert_eq!((w.delete_channel.num_calls(), w.delete_recorder.num_calls()), (1, 1));
        assert_eq!((w.put_rule.num_calls(), w.stop.num_calls()), (0, 0));
    }

    #[tokio::test]
    async fn a_failed_create_puts_an_adopted_recorder_back_as_it_was() {
        let mut theirs = recorder("org");
        theirs.role_arn = Some("arn:aws:iam::111122223333:role/org-config".into());
        let before = Snapshot {
            recorders: vec![theirs],
            status: Some(status("org", false, None)),
            channels: vec![channel("org-channel")],
            ..fresh()
        };
        let (reads, w) = (read_rules(&[before]), Writes::ok());
        let restore = mock!(Client::put_configuration_recorder)
            .match_requests(|r| {
                r.configuration_recorder().and_then(|c| c.role_arn())
                    == Some("arn:aws:iam::111122223333:role/org-config")
            })
            .then_output(|| PutConfigurationRecorderOutput::builder().build());
        let denied = mock!(Client::start_configuration_recorder)
            .then_error(|| StartConfigurationRecorderError::generic(error("AccessDeniedException", "denied")));
        let h = handler(&[&restore, &denied], &reads, &[], &w);
        let text = h.create(&inv(), props(json!([]))).await.unwrap_err().to_string();
        assert!(
            text.contains("this Create undid its changes (restored recorder org)"),
            "{text}"
        );
        assert_eq!(
            (w.put_recorder.num_calls(), restore.num_calls()),
            (1, 1),
            "changed, then put back"
        );
        assert_eq!(
            w.put_channel.num_calls() + w.delete_channel.num_calls() + w.delete_recorder.num_calls(),
            0,
            "the adopted channel already matched and nothing adopted is deleted"
        );
    }

    #[tokio::test]
    async fn a_bucket_policy_config_cannot_write_to_is_named_and_the_recorder_undone() {
        let (reads, w) = (read_rules(&[fresh()]), Writes::ok());
        let refused = mock!(Client::put_delivery_channel).then_error(|| {
            PutDeliveryChannelError::generic(error(
                "InsufficientDeliveryPolicyException",
                "Insufficient delivery policy to s3 bucket",
            ))
        });
        let h = handler(&[&refused], &reads, &[], &w);
        let text = h.create(&inv(), props(json!([]))).await.unwrap_err().to_string();
        assert!(
            text.starts_with("PutDeliveryChannel failed: InsufficientDeliveryPolicyException"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "the bucket policy of {BUCKET} does not let config.amazonaws.com write"
            )),
            "{text}"
        );
        assert!(text.contains("undid its changes (deleted recorder default)"), "{text}");
        assert_eq!((w.delete_recorder.num_calls(), w.start.num_calls()), (1, 0));
    }

    #[tokio::test]
    async fn a_failed_last_delivery_is_not_verified_and_undone() {
        let mut after = set_up(true, vec![]);
        after.status = Some(
            ConfigurationRecorderStatus::builder()
                .name("default")
                .recording(true)
                .last_status(RecorderStatus::Failure)
                .last_error_code("InsufficientDeliveryPolicyException")
                .last_error_message("Access denied to the bucket")
                .build(),
        );
        let (reads, w) = (read_rules(&[fresh(), after]), Writes::ok());
        let h = handler(&[], &reads, &[], &w);
        let err = h.create(&inv(), props(json!([]))).await.unwrap_err();
        assert!(matches!(err, HandlerError::NotVerified(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("reports its last delivery failed: InsufficientDeliveryPolicyException: Access denied"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "the bucket policy of {BUCKET} does not let config.amazonaws.com write"
            )),
            "{text}"
        );
        assert!(
            text.contains("stopped recorder default, deleted delivery channel default, deleted recorder default"),
            "{text}"
        );
        assert_eq!(
            (
                w.stop.num_calls(),
                w.delete_channel.num_calls(),
                w.delete_recorder.num_calls()
            ),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn a_recorder_that_is_not_recording_after_start_is_not_verified() {
        let after = set_up(false, vec![]);
        let (reads, w) = (read_rules(&[fresh(), after]), Writes::ok());
        let h = handler(&[], &reads, &[], &w);
        let text = h.create(&inv(), props(json!([]))).await.unwrap_err().to_string();
        assert!(
            text.starts_with("not verified: the recorder default is not recording"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_rule_missing_after_put_is_not_verified_and_deleted_again() {
        let after = set_up(true, vec![]);
        let (reads, w) = (read_rules(&[fresh(), after]), Writes::ok());
        let h = handler(&[], &reads, &[], &w);
        let text = h.create(&inv(), props(json!([keys()]))).await.unwrap_err().to_string();
        assert!(
            text.starts_with("not verified: DescribeConfigRules does not show the rule keys (Rules[0] (keys))"),
            "{text}"
        );
        assert!(text.contains("deleted rule keys, stopped recorder default"), "{text}");
        assert_eq!(w.delete_rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_rule_config_rejects_names_the_rule_field() {
        let (reads, w) = (read_rules(&[fresh()]), Writes::ok());
        let rejected = mock!(Client::put_config_rule)
            .match_requests(|r| r.config_rule().and_then(|c| c.config_rule_name()) == Some("volumes"))
            .then_error(|| {
                PutConfigRuleError::generic(error(
                    "InvalidParameterValueException",
                    "The sourceIdentifier is invalid",
                ))
            });
        let h = handler(&[&rejected], &reads, &[], &w);
        let text = h
            .create(&inv(), props(json!([keys(), volumes()])))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("PutConfigRule failed: InvalidParameterValueException: The sourceIdentifier is invalid (Rules[1] (volumes): check that SourceIdentifier ENCRYPTED_VOLUMES"),
            "{text}"
        );
        assert!(text.contains("deleted rule keys"), "{text}");
    }

    #[tokio::test]
    async fn throttling_is_retried_by_the_sdk() {
        let after = set_up(true, vec![rule(keys())]);
        let (reads, w) = (read_rules(&[fresh(), after]), Writes::ok());
        let throttled = mock!(Client::put_config_rule)
            .sequence()
            .error(|| PutConfigRuleError::generic(error("ThrottlingException", "Rate exceeded")))
            .times(2)
            .output(|| PutConfigRuleOutput::builder().build())
            .build();
        let owner = tags(Some(OURS));
        let h = handler(&[&throttled], &reads, &[&owner], &w);
        let out = h.create(&inv(), props(json!([keys()]))).await.unwrap();
        assert_eq!(throttled.num_calls(), 3, "two throttled attempts, then success");
        assert_eq!(out.data["RulesCreated"], "keys");
    }

    #[tokio::test]
    async fn an_undo_that_fails_says_what_is_left() {
        let (reads, w) = (read_rules(&[fresh()]), Writes::ok());
        let denied = mock!(Client::start_configuration_recorder)
            .then_error(|| StartConfigurationRecorderError::generic(error("AccessDeniedException", "denied")));
        let stuck = mock!(Client::delete_delivery_channel)
            .then_error(|| DeleteDeliveryChannelError::generic(error("AccessDeniedException", "denied too")));
        let h = handler(&[&denied, &stuck], &reads, &[], &w);
        let text = h.create(&inv(), props(json!([]))).await.unwrap_err().to_string();
        assert!(
            text.starts_with("StartConfigurationRecorder failed: AccessDeniedException"),
            "{text}"
        );
        assert!(
            text.contains("undoing this Create failed after it had undone nothing: DeleteDeliveryChannel failed: AccessDeniedException"),
            "{text}"
        );
        assert!(text.contains("remove what is left by hand"), "{text}");
        assert_eq!(
            w.delete_recorder.num_calls(),
            0,
            "a channel still exists: the recorder is not deleted under it"
        );
    }

    fn created_id() -> String {
        Ownership {
            region: "eu-west-1".into(),
            created_recorder: true,
            created_channel: true,
            started_recording: true,
            recorder_name: "default".into(),
        }
        .physical_id()
    }

    fn adopted_id() -> String {
        Ownership {
            region: "eu-west-1".into(),
            created_recorder: false,
            created_channel: false,
            started_recording: false,
            recorder_name: "org".into(),
        }
        .physical_id()
    }

    #[tokio::test]
    async fn a_noop_update_only_reads() {
        let state = set_up(true, vec![rule(keys())]);
        let (reads, w, owner) = (read_rules(&[state.clone(), state]), Writes::ok(), tags(Some(OURS)));
        let h = handler(&[], &reads, &[&owner], &w);
        let p = props(json!([keys()]));
        let out = h.update(&inv(), &created_id(), p.clone(), Some(p)).await.unwrap();
        assert_eq!(out.physical_id, created_id());
        assert_eq!(w.total(), 0, "a no-op Update made a mutating call");
        assert_eq!(out.data["RulesCreated"], "keys");
    }

    #[tokio::test]
    async fn update_deletes_removed_rules_it_created_and_keeps_adopted_ones() {
        let before = set_up(true, vec![rule(keys()), rule(volumes())]);
        let after = set_up(true, vec![rule(volumes())]);
        let (reads, w) = (read_rules(&[before, after]), Writes::ok());
        // keys was created by this resource; volumes was adopted.
        let keys_owner = mock!(Client::list_tags_for_resource)
            .match_requests(|r| r.resource_arn().is_some_and(|a| a.ends_with("/keys")))
            .then_output(|| {
                ListTagsForResourceOutput::builder()
                    .tags(Tag::builder().key(OWNER_TAG).value(OURS).build())
                    .build()
            });
        let no_owner = tags(None);
        let h = handler(&[&keys_owner], &reads, &[&no_owner], &w);
        let out = h
            .update(
                &inv(),
                &created_id(),
                props(json!([volumes()])),
                Some(props(json!([keys(), volumes()]))),
            )
            .await
            .unwrap();
        assert_eq!(w.delete_rule.num_calls(), 1);
        assert_eq!(out.data["RulesCreated"], "");
        assert_eq!(out.data["RuleNames"], "volumes");

        // Removing the adopted rule leaves it in place.
        let state = set_up(true, vec![rule(volumes())]);
        let (reads, w) = (read_rules(&[state.clone(), state]), Writes::ok());
        let no_owner = tags(None);
        let h = handler(&[], &reads, &[&no_owner], &w);
        h.update(&inv(), &created_id(), props(json!([])), Some(props(json!([volumes()]))))
            .await
            .unwrap();
        assert_eq!(w.total(), 0);
    }

    #[tokio::test]
    async fn renaming_an_adopted_recorder_is_refused_before_any_call() {
        let w = Writes::ok();
        let h = handler(&[], &[], &[], &w);
        let mut renamed = props(json!([]));
        renamed.recorder_name = Some("tap".into());
        let err = h
            .update(&inv(), &adopted_id(), renamed, Some(props(json!([]))))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid property RecorderName: changed to \"tap\", but the recorder org was adopted"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn renaming_a_created_recorder_replaces_it_and_changes_the_id() {
        let before = set_up(true, vec![]);
        let mut after = set_up(true, vec![]);
        after.recorders = vec![recorder("tap")];
        after.status = Some(status("tap", true, Some("PENDING")));
        let (reads, w) = (read_rules(&[before, after]), Writes::ok());
        let h = handler(&[], &reads, &[], &w);
        let mut renamed = props(json!([]));
        renamed.recorder_name = Some("tap".into());
        let out = h
            .update(&inv(), &created_id(), renamed, Some(props(json!([]))))
            .await
            .unwrap();
        assert_eq!(
            out.physical_id,
            "config-setup:eu-west-1:created=recorder,channel:started-recording=true:tap"
        );
        assert_eq!(
            (
                w.stop.num_calls(),
                w.delete_recorder.num_calls(),
                w.put_recorder.num_calls(),
                w.start.num_calls()
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(w.delete_channel.num_calls(), 0);
    }

    #[tokio::test]
    async fn delete_removes_what_it_created_in_reverse_order_and_gone_is_fine() {
        let state = set_up(true, vec![rule(keys()), rule(volumes())]);
        let (reads, w) = (read_rules(&[state]), Writes::ok());
        let keys_owner = mock!(Client::list_tags_for_resource)
            .match_requests(|r| r.resource_arn().is_some_and(|a| a.ends_with("/keys")))
            .then_output(|| {
                ListTagsForResourceOutput::builder()
                    .tags(Tag::builder().key(OWNER_TAG).value(OURS).build())
                    .build()
            });
        let gone = mock!(Client::delete_config_rule)
            .then_error(|| DeleteConfigRuleError::generic(error("NoSuchConfigRuleException", "already deleted")));
        let no_owner = tags(None);
        let h = handler(&[&keys_owner, &gone], &reads, &[&no_owner], &w);
        h.delete(&inv(), &created_id(), Some(props(json!([keys(), volumes()]))))
            .await
            .unwrap();
        assert_eq!(gone.num_calls(), 1, "only the rule it created");
        assert_eq!(
            (
                w.stop.num_calls(),
                w.delete_channel.num_calls(),
                w.delete_recorder.num_calls()
            ),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn delete_leaves_adopted_things_as_they_were() {
        let mut state = set_up(true, vec![rule(volumes())]);
        state.recorders = vec![recorder("org")];
        state.status = Some(status("org", true, Some("PENDING")));
        let (reads, w, no_owner) = (read_rules(&[state]), Writes::ok(), tags(None));
        let h = handler(&[], &reads, &[&no_owner], &w);
        h.delete(&inv(), &adopted_id(), Some(props(json!([volumes()]))))
            .await
            .unwrap();
        assert_eq!(w.total(), 0);
    }

    #[tokio::test]
    async fn delete_of_a_renamed_away_id_leaves_everything_to_the_new_one() {
        let mut state = set_up(true, vec![rule(keys())]);
        state.recorders = vec![recorder("tap")];
        state.status = Some(status("tap", true, Some("PENDING")));
        let (reads, w, owner) = (read_rules(&[state]), Writes::ok(), tags(Some(OURS)));
        let h = handler(&[], &reads, &[&owner], &w);
        h.delete(&inv(), &created_id(), Some(props(json!([keys()]))))
            .await
            .unwrap();
        assert_eq!(w.total(), 0);
    }

    #[tokio::test]
    async fn a_channel_that_cannot_be_deleted_while_recording_says_what_to_do() {
        let state = set_up(true, vec![]);
        let (reads, w) = (read_rules(&[state]), Writes::ok());
        let refused = mock!(Client::delete_delivery_channel).then_error(|| {
            DeleteDeliveryChannelError::generic(error("LastDeliveryChannelDeleteFailedException", "recording"))
        });
        let h = handler(&[&refused], &reads, &[], &w);
        let text = h
            .delete(&inv(), &created_id(), Some(props(json!([]))))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("DeleteDeliveryChannel failed: LastDeliveryChannelDeleteFailedException"),
            "{text}"
        );
        assert!(text.contains("stop the recorder, then retry the delete"), "{text}");
    }

    #[tokio::test]
    async fn a_foreign_region_id_is_refused() {
        let w = Writes::ok();
        let h = handler(&[], &[], &[], &w);
        let id = created_id().replace("eu-west-1", "us-east-1");
        let text = h.delete(&inv(), &id, None).await.unwrap_err().to_string();
        assert!(
            text.contains("set up AWS Config in us-east-1, but the function runs in eu-west-1"),
            "{text}"
        );
    }

    #[test]
    fn physical_id_round_trips_and_rejects_strangers() {
        let own = Ownership {
            region: "cn-north-1".into(),
            created_recorder: false,
            created_channel: true,
            started_recording: true,
            recorder_name: "team:recorder".into(),
        };
        assert_eq!(
            own.physical_id(),
            "config-setup:cn-north-1:created=channel:started-recording=true:team:recorder"
        );
        assert_eq!(Ownership::parse(&own.physical_id()).unwrap(), own);
        assert_eq!(Ownership::parse(&adopted_id()).unwrap().recorder_name, "org");
        assert!(Ownership::parse("config-setup:eu-west-1:created=all:started-recording=true:x").is_err());
        assert!(Ownership::parse("config-setup:eu-west-1:created=none:x").is_err());
        assert!(Ownership::parse("ebs-default-encryption:eu-west-1").is_err());
    }

    #[test]
    fn the_owner_tag_fits_a_tag_value() {
        let mut long = inv();
        long.logical_resource_id = "L".repeat(255);
        let token = owner_token(&long);
        assert!(token.len() <= 256 && token.contains('#'), "{token}");
        assert_eq!(owner_token(&inv()), OURS);
    }
}
