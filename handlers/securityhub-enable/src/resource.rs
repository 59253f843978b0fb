//! Custom::SecurityHubEnable: Security Hub on in the stack's account and region, with the requested
//! settings, answered SUCCESS only after DescribeHub shows it.
//!
//! A hub that is already on is adopted; a hub governed by a delegated administrator or a configuration
//! policy is reported as such, and settings that could not be applied are listed in Data, never hidden.
//! Whether this resource enabled the hub travels in the physical id, so Delete disables only a hub it
//! turned on itself.

use std::collections::BTreeMap;

use aws_sdk_securityhub::types::ControlFindingGenerator;
use aws_sdk_securityhub::Client as SecurityHub;
use serde::Deserialize;
use tapguard_shared::props::flex;
use tapguard_shared::{is_access_denied, CustomResource, HandlerError, Invocation, Outcome};
use tracing::{info, warn};

const ID_PREFIX: &str = "securityhub-enable:";
const GENERATORS: [&str; 2] = ["SECURITY_CONTROL", "STANDARD_CONTROL"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Subscribe FSBP and CIS v1.2.0 when enabling; off because standards are SecurityHubStandards' job.
    #[serde(default, deserialize_with = "flex::bool")]
    pub enable_default_standards: bool,
    /// SECURITY_CONTROL (consolidated findings, the default) or STANDARD_CONTROL.
    #[serde(default)]
    pub control_finding_generator: Option<String>,
    #[serde(default = "default_true", deserialize_with = "flex::bool")]
    pub auto_enable_controls: bool,
    /// Tags for the hub: given to EnableSecurityHub, and set with TagResource on a hub that is on.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

impl Properties {
    fn generator(&self) -> Result<&str, HandlerError> {
        let value = self
            .control_finding_generator
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .unwrap_or("SECURITY_CONTROL");
        GENERATORS
            .iter()
            .find(|g| **g == value)
            .copied()
            .ok_or_else(|| HandlerError::InvalidProperty {
                property: "ControlFindingGenerator".into(),
                problem: format!("{value:?} is not one of {}", GENERATORS.join(", ")),
            })
    }
}

/// Who decides the hub's configuration, as far as the account itself can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum ManagedBy {
    /// This account: its own settings apply.
    Account,
    /// A Security Hub administrator account the account is a member of.
    Administrator(String),
    /// A central configuration policy of the delegated administrator: the account cannot change its hub.
    ConfigurationPolicy,
}

impl std::fmt::Display for ManagedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagedBy::Account => f.write_str("Self"),
            ManagedBy::Administrator(account) => write!(f, "Administrator:{account}"),
            ManagedBy::ConfigurationPolicy => f.write_str("ConfigurationPolicy"),
        }
    }
}

/// What this resource did when it was created; it does not change after, so Delete knows what is its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership {
    pub region: String,
    /// True when this resource's Create turned the hub on; false when it found it on (adopted).
    pub enabled_hub: bool,
    /// The EnableDefaultStandards value EnableSecurityHub was called with (false when adopted).
    pub default_standards: bool,
}

impl Ownership {
    pub fn physical_id(&self) -> String {
        format!(
            "{ID_PREFIX}{}:{}:default-standards={}",
            self.region,
            if self.enabled_hub { "enabled" } else { "adopted" },
            self.default_standards
        )
    }

    pub fn parse(physical_id: &str) -> Result<Self, HandlerError> {
        let malformed = || {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues (expected \
                 {ID_PREFIX}<region>:<enabled|adopted>:default-standards=<bool>)"
            ))
        };
        let rest = physical_id.strip_prefix(ID_PREFIX).ok_or_else(malformed)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [region, how, defaults] = parts[..] else {
            return Err(malformed());
        };
        let enabled_hub = match how {
            "enabled" => true,
            "adopted" => false,
            _ => return Err(malformed()),
        };
        let default_standards = defaults
            .strip_prefix("default-standards=")
            .and_then(|b| b.parse().ok())
            .ok_or_else(malformed)?;
        Ok(Ownership {
            region: region.to_string(),
            enabled_hub,
            default_standards,
        })
    }
}

/// The hub as DescribeHub answers it.
#[derive(Debug, Clone, PartialEq)]
struct Hub {
    arn: String,
    subscribed_at: String,
    auto_enable_controls: bool,
    control_finding_generator: String,
}

fn mentions_configuration_policy(err: &HandlerError) -> bool {
    err.code().is_some_and(is_access_denied) && err.to_string().to_ascii_lowercase().contains("configuration policy")
}

pub struct SecurityHubEnable {
    securityhub: SecurityHub,
}

impl SecurityHubEnable {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_client(SecurityHub::new(config))
    }

    pub fn from_client(securityhub: SecurityHub) -> Self {
        SecurityHubEnable { securityhub }
    }

    /// The hub, or None when the account is not subscribed (InvalidAccessException).
    async fn describe_hub(&self, inv: &Invocation) -> Result<Option<Hub>, HandlerError> {
        match inv
            .aws("securityhub", "DescribeHub", self.securityhub.describe_hub().send())
            .await
        {
            Ok(hub) => Ok(Some(Hub {
                arn: hub.hub_arn().unwrap_or_default().to_string(),
                subscribed_at: hub.subscribed_at().unwrap_or_default().to_string(),
                auto_enable_controls: hub.auto_enable_controls().unwrap_or(true),
                control_finding_generator: hub
                    .control_finding_generator()
                    .map(|g| g.as_str().to_string())
                    .unwrap_or_default(),
            })),
            Err(err) if err.code() == Some("InvalidAccessException") => Ok(None),
            Err(err) => Err(err),
        }
    }

    async fn administrator(&self, inv: &Invocation) -> Result<Option<String>, HandlerError> {
        let answer = inv
            .aws(
                "securityhub",
                "GetAdministratorAccount",
                self.securityhub.get_administrator_account().send(),
            )
            .await?;
        Ok(answer
            .administrator()
            .and_then(|a| a.account_id())
            .filter(|a| !a.is_empty())
            .map(str::to_string))
    }

    /// Turns the hub on. Returns false when it turned out to be on already (enabled meanwhile).
    async fn enable(&self, inv: &Invocation, props: &Properties, generator: &str) -> Result<bool, HandlerError> {
        let request = self
            .securityhub
            .enable_security_hub()
            .enable_default_standards(props.enable_default_standards)
            .control_finding_generator(ControlFindingGenerator::from(generator))
            .set_tags((!props.tags.is_empty()).then(|| props.tags.clone().into_iter().collect()));
        match inv.aws("securityhub", "EnableSecurityHub", request.send()).await {
            Ok(_) => Ok(true),
            // Someone enabled it between DescribeHub and now: it is theirs, so it is adopted.
            Err(err) if err.code() == Some("ResourceConflictException") => Ok(false),
            Err(err) if mentions_configuration_policy(&err) => Err(HandlerError::Failed(format!(
                "{err}; Security Hub is off in {}/{} and the account is managed by a configuration policy: \
                 ask the delegated administrator to associate it with a policy that enables Security Hub",
                inv.account_id, inv.region
            ))),
            Err(err) => Err(err),
        }
    }

    /// Applies the settings DescribeHub shows differently, one call per setting so that one refused
    /// setting does not hide another that could be applied. Returns the settings left as they were.
    async fn apply_settings(
        &self,
        inv: &Invocation,
        hub: &Hub,
        generator: &str,
        auto_enable_controls: bool,
        managed_by: &mut ManagedBy,
    ) -> Result<Vec<&'static str>, HandlerError> {
        let mut not_applied = Vec::new();
        let mut changes = Vec::new();
        if hub.control_finding_generator != generator {
            changes.push("ControlFindingGenerator");
        }
        if hub.auto_enable_controls != auto_enable_controls {
            changes.push("AutoEnableControls");
        }
        for setting in changes {
            if *managed_by == ManagedBy::ConfigurationPolicy {
                not_applied.push(setting);
                continue;
            }
            let request = self.securityhub.update_security_hub_configuration();
            let request = if setting == "ControlFindingGenerator" {
                request.control_finding_generator(ControlFindingGenerator::from(generator))
            } else {
                request.auto_enable_controls(auto_enable_controls)
            };
            match inv
                .aws("securityhub", "UpdateSecurityHubConfiguration", request.send())
                .await
            {
                Ok(_) => {}
                Err(err) if mentions_configuration_policy(&err) => {
                    info!(setting, reason = %err, "hub is managed by a configuration policy: setting left as it is");
                    *managed_by = ManagedBy::ConfigurationPolicy;
                    not_applied.push(setting);
                }
                Err(err)
                    if err.code().is_some_and(is_access_denied)
                        && matches!(managed_by, ManagedBy::Administrator(_)) =>
                {
                    info!(setting, reason = %err, "the administrator account governs this setting: left as it is");
                    not_applied.push(setting);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(not_applied)
    }

    /// Brings an enabled hub to the requested settings where the account may, reads it back, and
    /// builds the answer.
    /// Sets the requested tags that differ with TagResource, and removes with UntagResource the keys the
    /// previous properties set and the new ones drop (when they still hold that value); then reads back.
    async fn apply_tags(
        &self,
        inv: &Invocation,
        hub_arn: &str,
        props: &Properties,
        old: Option<&Properties>,
    ) -> Result<(), HandlerError> {
        let dropped: Vec<(&String, &String)> = old
            .map(|o| o.tags.iter().filter(|(k, _)| !props.tags.contains_key(*k)).collect())
            .unwrap_or_default();
        if props.tags.is_empty() && dropped.is_empty() {
            return Ok(());
        }
        let current = self.tags(inv, hub_arn).await?;
        let missing: Vec<(&String, &String)> = props.tags.iter().filter(|(k, v)| current.get(*k) != Some(*v)).collect();
        if !missing.is_empty() {
            let mut request = self.securityhub.tag_resource().resource_arn(hub_arn);
            for (key, value) in &missing {
                request = request.tags(*key, *value);
            }
            inv.aws("securityhub", "TagResource", request.send()).await?;
        }
        let ours: Vec<String> = dropped
            .iter()
            .filter(|(k, v)| current.get(*k) == Some(*v))
            .map(|(k, _)| (*k).clone())
            .collect();
        if !ours.is_empty() {
            inv.aws(
                "securityhub",
                "UntagResource",
                self.securityhub
                    .untag_resource()
                    .resource_arn(hub_arn)
                    .set_tag_keys(Some(ours.clone()))
                    .send(),
            )
            .await?;
        }
        if missing.is_empty() && ours.is_empty() {
            return Ok(());
        }
        let after = self.tags(inv, hub_arn).await?;
        if let Some((key, value)) = props.tags.iter().find(|(k, v)| after.get(*k) != Some(*v)) {
            return Err(HandlerError::NotVerified(format!(
                "ListTagsForResource answers {key}={:?} on {hub_arn}, not {value:?}: check for another automation \
                 that sets the hub's tags",
                after.get(key)
            )));
        }
        if let Some(key) = ours.iter().find(|k| after.contains_key(*k)) {
            return Err(HandlerError::NotVerified(format!(
                "ListTagsForResource still answers the tag {key} on {hub_arn} after UntagResource"
            )));
        }
        Ok(())
    }

    async fn tags(&self, inv: &Invocation, hub_arn: &str) -> Result<BTreeMap<String, String>, HandlerError> {
        let answer = inv
            .aws(
                "securityhub",
                "ListTagsForResource",
                self.securityhub.list_tags_for_resource().resource_arn(hub_arn).send(),
            )
            .await?;
        Ok(answer
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    /// `enabled_with_defaults` is the EnableDefaultStandards value the hub was last enabled with.
    async fn converge(
        &self,
        inv: &Invocation,
        ownership: &Ownership,
        enabled_with_defaults: bool,
        props: &Properties,
        old: Option<&Properties>,
    ) -> Result<Outcome, HandlerError> {
        let generator = props.generator()?;
        let hub = self.describe_hub(inv).await?.ok_or_else(|| self.not_on(inv))?;
        let mut managed_by = match self.administrator(inv).await? {
            Some(account) => ManagedBy::Administrator(account),
            None => ManagedBy::Account,
        };
        let mut not_applied = self
            .apply_settings(inv, &hub, generator, props.auto_enable_controls, &mut managed_by)
            .await?;
        // Taken only by EnableSecurityHub: it stands as it was when the hub was turned on.
        if props.enable_default_standards != enabled_with_defaults {
            not_applied.push("EnableDefaultStandards");
        }
        self.apply_tags(inv, &hub.arn, props, old).await?;

        inv.step("verifying the Security Hub configuration");
        let verified = self.describe_hub(inv).await?.ok_or_else(|| self.not_on(inv))?;
        if !not_applied.contains(&"ControlFindingGenerator") && verified.control_finding_generator != generator {
            return Err(HandlerError::NotVerified(format!(
                "DescribeHub answers ControlFindingGenerator {} in {}/{}, not {generator}: check for another \
                 automation or an administrator that sets it",
                verified.control_finding_generator, inv.account_id, inv.region
            )));
        }
        if !not_applied.contains(&"AutoEnableControls") && verified.auto_enable_controls != props.auto_enable_controls {
            return Err(HandlerError::NotVerified(format!(
                "DescribeHub answers AutoEnableControls {} in {}/{}, not {}: check for another automation or an \
                 administrator that sets it",
                verified.auto_enable_controls, inv.account_id, inv.region, props.auto_enable_controls
            )));
        }
        Ok(Outcome::new(ownership.physical_id())
            .with("HubArn", &verified.arn)
            .with("SubscribedAt", &verified.subscribed_at)
            .with("Adopted", !ownership.enabled_hub)
            .with("ManagedBy", &managed_by)
            .with("ControlFindingGenerator", &verified.control_finding_generator)
            .with("AutoEnableControls", verified.auto_enable_controls)
            .with("SettingsNotApplied", not_applied.join(",")))
    }

    fn not_on(&self, inv: &Invocation) -> HandlerError {
        HandlerError::NotVerified(format!(
            "DescribeHub answers InvalidAccessException (not subscribed) in {}/{}: Security Hub is not on; \
             check for an SCP or another automation that disables it",
            inv.account_id, inv.region
        ))
    }
}

impl CustomResource for SecurityHubEnable {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::SecurityHubEnable";
    const ID_PREFIX: &'static str = ID_PREFIX;

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let generator = props.generator()?;
        let enabled_hub = match self.describe_hub(inv).await? {
            Some(_) => false,
            None => self.enable(inv, &props, generator).await?,
        };
        let ownership = Ownership {
            region: inv.region.clone(),
            enabled_hub,
            default_standards: enabled_hub && props.enable_default_standards,
        };
        self.converge(inv, &ownership, ownership.default_standards, &props, None)
            .await
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        // Ownership stays what Create found: a new physical id would make CloudFormation delete the old
        // one, and that Delete would disable the hub this resource still stands for.
        let ownership = Ownership::parse(physical_id)?;
        let generator = props.generator()?;
        let mut enabled_with_defaults = ownership.default_standards;
        if self.describe_hub(inv).await?.is_none() {
            // Turned off outside the stack: the stack still says it is on. An adopted hub stays adopted,
            // so this resource's Delete still leaves it on.
            warn!("Security Hub was turned off outside this stack: enabling it again");
            if self.enable(inv, &props, generator).await? {
                enabled_with_defaults = props.enable_default_standards;
            }
        }
        self.converge(inv, &ownership, enabled_with_defaults, &props, old.as_ref())
            .await
    }

    async fn delete(
        &self,
        inv: &Invocation,
        physical_id: &str,
        _props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        let ownership = Ownership::parse(physical_id)?;
        if !ownership.enabled_hub {
            info!("the hub was adopted: left on");
            return Ok(());
        }
        if self.describe_hub(inv).await?.is_none() {
            info!("Security Hub is already off");
            return Ok(());
        }
        if let Some(administrator) = self.administrator(inv).await? {
            info!(
                administrator,
                "the hub is now governed by an administrator account: left on"
            );
            return Ok(());
        }
        match inv
            .aws(
                "securityhub",
                "DisableSecurityHub",
                self.securityhub.disable_security_hub().send(),
            )
            .await
        {
            Ok(_) => {}
            Err(err) if mentions_configuration_policy(&err) => {
                info!(reason = %err, "the hub is now managed by a configuration policy: left on");
                return Ok(());
            }
            Err(err) if err.code() == Some("InvalidAccessException") => {}
            Err(err) => return Err(err),
        }
        inv.step("verifying Security Hub is off");
        if self.describe_hub(inv).await?.is_some() {
            return Err(HandlerError::NotVerified(format!(
                "DescribeHub still answers a hub in {}/{} after DisableSecurityHub: check for another automation \
                 that enables it",
                inv.account_id, inv.region
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_securityhub::operation::describe_hub::{DescribeHubError, DescribeHubOutput};
    use aws_sdk_securityhub::operation::disable_security_hub::DisableSecurityHubOutput;
    use aws_sdk_securityhub::operation::enable_security_hub::{EnableSecurityHubError, EnableSecurityHubOutput};
    use aws_sdk_securityhub::operation::get_administrator_account::GetAdministratorAccountOutput;
    use aws_sdk_securityhub::operation::list_tags_for_resource::ListTagsForResourceOutput;
    use aws_sdk_securityhub::operation::tag_resource::TagResourceOutput;
    use aws_sdk_securityhub::operation::untag_resource::UntagResourceOutput;
    use aws_sdk_securityhub::operation::update_security_hub_configuration::{
        UpdateSecurityHubConfigurationError, UpdateSecurityHubConfigurationOutput,
    };
    use aws_sdk_securityhub::types::Invitation;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    const HUB: &str = "arn:aws:securityhub:eu-west-1:111122223333:hub/default";
    const POLICY_DENIED: &str = "Account 111122223333 is managed by a configuration policy";

    fn inv() -> Invocation {
        Invocation::detached("eu-west-1", "111122223333")
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    fn hub(generator: &'static str, auto: bool) -> DescribeHubOutput {
        DescribeHubOutput::builder()
            .hub_arn(HUB)
            .subscribed_at("2026-11-23T10:00:00.000Z")
            .auto_enable_controls(auto)
            .control_finding_generator(ControlFindingGenerator::from(generator))
            .build()
    }

    /// DescribeHub answers, in order: None = not subscribed, Some = this hub.
    fn hub_reads(answers: &[Option<(&'static str, bool)>]) -> Rule {
        let mut seq = mock!(SecurityHub::describe_hub).sequence();
        for answer in answers.iter().copied() {
            seq = match answer {
                Some((generator, auto)) => seq.output(move || hub(generator, auto)),
                None => seq.error(|| {
                    DescribeHubError::generic(meta(
                        "InvalidAccessException",
                        "Account 111122223333 is not subscribed to AWS Security Hub",
                    ))
                }),
            };
        }
        seq.build()
    }

    fn no_administrator() -> Rule {
        mock!(SecurityHub::get_administrator_account).then_output(|| GetAdministratorAccountOutput::builder().build())
    }

    fn administrator(account: &'static str) -> Rule {
        mock!(SecurityHub::get_administrator_account).then_output(move || {
            GetAdministratorAccountOutput::builder()
                .administrator(
                    Invitation::builder()
                        .account_id(account)
                        .member_status("Enabled")
                        .build(),
                )
                .build()
        })
    }

    fn enable_ok() -> Rule {
        mock!(SecurityHub::enable_security_hub).then_output(|| EnableSecurityHubOutput::builder().build())
    }

    fn update_ok() -> Rule {
        mock!(SecurityHub::update_security_hub_configuration)
            .then_output(|| UpdateSecurityHubConfigurationOutput::builder().build())
    }

    fn tag_ok() -> Rule {
        mock!(SecurityHub::tag_resource).then_output(|| TagResourceOutput::builder().build())
    }

    /// ListTagsForResource answers, in order; the last one repeats.
    fn tag_reads(answers: Vec<Vec<(&'static str, &'static str)>>) -> Rule {
        let mut seq = mock!(SecurityHub::list_tags_for_resource).sequence();
        let count = answers.len();
        for (i, answer) in answers.into_iter().enumerate() {
            let make = move || {
                ListTagsForResourceOutput::builder()
                    .set_tags(Some(
                        answer.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    ))
                    .build()
            };
            if i + 1 == count {
                return seq.output(make).repeatedly().build();
            }
            seq = seq.output(make);
        }
        panic!("give at least one answer")
    }

    fn disable_ok() -> Rule {
        mock!(SecurityHub::disable_security_hub).then_output(|| DisableSecurityHubOutput::builder().build())
    }

    fn handler(rules: &[&Rule]) -> SecurityHubEnable {
        SecurityHubEnable::from_client(mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules))
    }

    fn props() -> Properties {
        Properties {
            enable_default_standards: false,
            control_finding_generator: None,
            auto_enable_controls: true,
            tags: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn create_on_a_fresh_account_enables_and_reads_back() {
        let (reads, admin, enable, update) = (
            hub_reads(&[None, Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
            no_administrator(),
            enable_ok(),
            update_ok(),
        );
        let h = handler(&[&reads, &admin, &enable, &update]);
        let out = h.create(&inv(), props()).await.unwrap();
        assert!(
            out.physical_id.starts_with("securityhub-enable:eu-west-1:enabled:"),
            "{}",
            out.physical_id
        );
        assert_eq!(out.data["HubArn"], HUB);
        assert_eq!(out.data["Adopted"], "false");
        assert_eq!(out.data["ManagedBy"], "Self");
        assert_eq!(out.data["SettingsNotApplied"], "");
        assert_eq!((enable.num_calls(), update.num_calls()), (1, 0));
    }

    #[tokio::test]
    async fn resource_conflict_on_enable_means_adopted_not_failed() {
        // The hub came on between DescribeHub and EnableSecurityHub: someone else's, so adopted.
        let reads = hub_reads(&[None, Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]);
        let enable = mock!(SecurityHub::enable_security_hub).then_error(|| {
            EnableSecurityHubError::generic(meta(
                "ResourceConflictException",
                "Account is already subscribed to Security Hub",
            ))
        });
        let admin = no_administrator();
        let h = handler(&[&reads, &enable, &admin]);
        let out = h.create(&inv(), props()).await.unwrap();
        assert_eq!(out.data["Adopted"], "true");
        assert!(out.physical_id.contains(":adopted:"), "{}", out.physical_id);
    }

    #[tokio::test]
    async fn adopting_applies_differing_settings_and_lists_create_only_ones() {
        let (reads, admin, update) = (
            hub_reads(&[
                Some(("STANDARD_CONTROL", true)),
                Some(("STANDARD_CONTROL", true)),
                Some(("SECURITY_CONTROL", true)),
            ]),
            no_administrator(),
            update_ok(),
        );
        let (list, tag) = (
            tag_reads(vec![
                vec![("team", "platform")],
                vec![("team", "platform"), ("owner", "security")],
            ]),
            tag_ok(),
        );
        let h = handler(&[&reads, &admin, &update, &list, &tag]);
        let mut p = props();
        p.tags.insert("owner".into(), "security".into());
        p.enable_default_standards = true;
        let out = h.create(&inv(), p).await.unwrap();
        assert_eq!((update.num_calls(), tag.num_calls()), (1, 1));
        assert_eq!(out.data["ControlFindingGenerator"], "SECURITY_CONTROL");
        assert_eq!(
            out.data["SettingsNotApplied"], "EnableDefaultStandards",
            "taken only when the hub is enabled"
        );
        assert_eq!(out.data["Adopted"], "true");
    }

    #[tokio::test]
    async fn invalid_access_on_describe_means_not_subscribed_and_other_errors_fail() {
        let (reads, admin, enable) = (
            hub_reads(&[None, Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
            no_administrator(),
            enable_ok(),
        );
        let h = handler(&[&reads, &admin, &enable]);
        h.create(&inv(), props()).await.unwrap();
        assert_eq!(
            enable.num_calls(),
            1,
            "InvalidAccessException from DescribeHub leads to EnableSecurityHub"
        );

        let denied = mock!(SecurityHub::describe_hub)
            .then_error(|| DescribeHubError::generic(meta("AccessDeniedException", "not authorized")));
        let enable = enable_ok();
        let err = handler(&[&denied, &enable]).create(&inv(), props()).await.unwrap_err();
        assert_eq!(err.code(), Some("AccessDeniedException"));
        assert!(err.to_string().contains("securityhub:DescribeHub was denied"), "{err}");
        assert_eq!(enable.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_read_back_without_a_hub_is_failed() {
        let (reads, enable) = (hub_reads(&[None, None]), enable_ok());
        let err = handler(&[&reads, &enable]).create(&inv(), props()).await.unwrap_err();
        assert!(matches!(err, HandlerError::NotVerified(_)), "{err:?}");
        assert!(err.to_string().contains("Security Hub is not on"), "{err}");
    }

    #[tokio::test]
    async fn configuration_policy_denial_is_reported_in_data_not_hidden() {
        let (reads, admin) = (
            hub_reads(&[
                Some(("STANDARD_CONTROL", false)),
                Some(("STANDARD_CONTROL", false)),
                Some(("STANDARD_CONTROL", false)),
            ]),
            administrator("999988887777"),
        );
        let update = mock!(SecurityHub::update_security_hub_configuration)
            .then_error(|| UpdateSecurityHubConfigurationError::generic(meta("AccessDeniedException", POLICY_DENIED)));
        let h = handler(&[&reads, &admin, &update]);
        let out = h.create(&inv(), props()).await.unwrap();
        assert_eq!(out.data["ManagedBy"], "ConfigurationPolicy");
        assert_eq!(
            out.data["SettingsNotApplied"],
            "ControlFindingGenerator,AutoEnableControls"
        );
        assert_eq!(
            out.data["ControlFindingGenerator"], "STANDARD_CONTROL",
            "the truth, not the request"
        );
        assert_eq!(
            update.num_calls(),
            1,
            "once the policy is known, the second setting is not tried"
        );
    }

    #[tokio::test]
    async fn configuration_policy_with_the_hub_off_is_failed() {
        let reads = hub_reads(&[None]);
        let enable = mock!(SecurityHub::enable_security_hub)
            .then_error(|| EnableSecurityHubError::generic(meta("AccessDeniedException", POLICY_DENIED)));
        let err = handler(&[&reads, &enable])
            .create(&inv(), props())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("EnableSecurityHub failed: AccessDeniedException: Account 111122223333 is managed"),
            "{err}"
        );
        assert!(err.contains("ask the delegated administrator"), "{err}");
    }

    #[tokio::test]
    async fn a_plain_access_denied_on_update_is_failed_without_an_administrator() {
        let (reads, admin) = (
            hub_reads(&[Some(("STANDARD_CONTROL", true)), Some(("STANDARD_CONTROL", true))]),
            no_administrator(),
        );
        let update = mock!(SecurityHub::update_security_hub_configuration).then_error(|| {
            UpdateSecurityHubConfigurationError::generic(meta("AccessDeniedException", "not authorized"))
        });
        let err = handler(&[&reads, &admin, &update])
            .create(&inv(), props())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("securityhub:UpdateSecurityHubConfiguration was denied"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_administrator_is_named_in_managed_by() {
        let (reads, admin) = (
            hub_reads(&[
                Some(("SECURITY_CONTROL", true)),
                Some(("SECURITY_CONTROL", true)),
                Some(("SECURITY_CONTROL", true)),
            ]),
            administrator("999988887777"),
        );
        let out = handler(&[&reads, &admin]).create(&inv(), props()).await.unwrap();
        assert_eq!(out.data["ManagedBy"], "Administrator:999988887777");
    }

    #[tokio::test]
    async fn throttling_is_retried_then_reported_with_advice() {
        let throttled = || DescribeHubError::generic(meta("ThrottlingException", "Rate exceeded"));
        let flaky = mock!(SecurityHub::describe_hub)
            .sequence()
            .error(throttled)
            .times(2)
            .output(|| hub("SECURITY_CONTROL", true))
            .repeatedly()
            .build();
        let admin = no_administrator();
        let retrying = |rules: &[&Rule]| {
            SecurityHubEnable::from_client(mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules, |c| c
                .retry_config(
                    aws_smithy_types::retry::RetryConfig::standard()
                        .with_max_attempts(3)
                        .with_initial_backoff(std::time::Duration::from_millis(1))
                )))
        };
        let out = retrying(&[&flaky, &admin]).create(&inv(), props()).await.unwrap();
        assert_eq!(out.data["Adopted"], "true");
        assert_eq!(
            flaky.num_calls(),
            5,
            "two throttled answers retried, then the three reads"
        );

        let always = mock!(SecurityHub::describe_hub).then_error(throttled);
        let err = retrying(&[&always]).create(&inv(), props()).await.unwrap_err();
        assert_eq!(err.code(), Some("ThrottlingException"));
        assert!(err.to_string().contains("kept throttling"), "{err}");
    }

    #[tokio::test]
    async fn delete_disables_only_a_hub_this_resource_enabled() {
        let ours = Ownership {
            region: "eu-west-1".into(),
            enabled_hub: true,
            default_standards: false,
        };
        let (reads, admin, disable) = (
            hub_reads(&[Some(("SECURITY_CONTROL", true)), None]),
            no_administrator(),
            disable_ok(),
        );
        handler(&[&reads, &admin, &disable])
            .delete(&inv(), &ours.physical_id(), None)
            .await
            .unwrap();
        assert_eq!(disable.num_calls(), 1);

        let adopted = Ownership {
            enabled_hub: false,
            ..ours.clone()
        };
        let (reads, disable) = (hub_reads(&[Some(("SECURITY_CONTROL", true))]), disable_ok());
        handler(&[&reads, &disable])
            .delete(&inv(), &adopted.physical_id(), None)
            .await
            .unwrap();
        assert_eq!(
            (reads.num_calls(), disable.num_calls()),
            (0, 0),
            "an adopted hub is not touched"
        );

        let (reads, admin, disable) = (
            hub_reads(&[Some(("SECURITY_CONTROL", true))]),
            administrator("999988887777"),
            disable_ok(),
        );
        handler(&[&reads, &admin, &disable])
            .delete(&inv(), &ours.physical_id(), None)
            .await
            .unwrap();
        assert_eq!(disable.num_calls(), 0, "a centrally managed hub stays on");
    }

    #[tokio::test]
    async fn delete_that_cannot_verify_the_hub_off_is_failed() {
        let ours = Ownership {
            region: "eu-west-1".into(),
            enabled_hub: true,
            default_standards: false,
        };
        let (reads, admin, disable) = (
            hub_reads(&[Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
            no_administrator(),
            disable_ok(),
        );
        let err = handler(&[&reads, &admin, &disable])
            .delete(&inv(), &ours.physical_id(), None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("still answers a hub"), "{err}");
    }

    #[tokio::test]
    async fn update_turns_a_hub_switched_off_outside_the_stack_back_on_and_keeps_ownership() {
        let adopted = Ownership {
            region: "eu-west-1".into(),
            enabled_hub: false,
            default_standards: false,
        };
        let (reads, admin, enable) = (
            hub_reads(&[None, Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
            no_administrator(),
            enable_ok(),
        );
        let out = handler(&[&reads, &admin, &enable])
            .update(&inv(), &adopted.physical_id(), props(), Some(props()))
            .await
            .unwrap();
        assert_eq!(enable.num_calls(), 1);
        assert_eq!(
            out.physical_id,
            adopted.physical_id(),
            "still adopted: Delete leaves it on"
        );
        assert_eq!(out.data["SettingsNotApplied"], "");
    }

    #[tokio::test]
    async fn update_sets_added_tags_removes_dropped_ones_it_set_and_reads_them_back() {
        let ours = Ownership {
            region: "eu-west-1".into(),
            enabled_hub: true,
            default_standards: false,
        };
        let (reads, admin, update, tag, untag) = (
            hub_reads(&[
                Some(("SECURITY_CONTROL", true)),
                Some(("SECURITY_CONTROL", true)),
                Some(("SECURITY_CONTROL", true)),
            ]),
            no_administrator(),
            update_ok(),
            tag_ok(),
            mock!(SecurityHub::untag_resource).then_output(|| UntagResourceOutput::builder().build()),
        );
        let list = tag_reads(vec![
            vec![("old", "x"), ("kept", "someone else's")],
            vec![("owner", "security"), ("kept", "someone else's")],
        ]);
        let mut previous = props();
        previous.tags.insert("old".into(), "x".into());
        previous.tags.insert("kept".into(), "ours".into());
        let mut p = props();
        p.tags.insert("owner".into(), "security".into());
        let out = handler(&[&reads, &admin, &update, &tag, &untag, &list])
            .update(&inv(), &ours.physical_id(), p, Some(previous))
            .await
            .unwrap();
        assert_eq!(out.data["SettingsNotApplied"], "");
        assert_eq!((tag.num_calls(), untag.num_calls(), update.num_calls()), (1, 1, 0));
    }

    #[tokio::test]
    async fn tags_that_do_not_read_back_are_failed() {
        let (reads, admin, tag) = (
            hub_reads(&[Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
            no_administrator(),
            tag_ok(),
        );
        let list = tag_reads(vec![vec![]]);
        let mut p = props();
        p.tags.insert("owner".into(), "security".into());
        let err = handler(&[&reads, &admin, &tag, &list])
            .create(&inv(), p)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("ListTagsForResource answers owner=None"),
            "{err}"
        );
    }

    #[test]
    fn physical_id_round_trips_and_rejects_strangers() {
        let ownership = Ownership {
            region: "cn-north-1".into(),
            enabled_hub: true,
            default_standards: true,
        };
        assert_eq!(Ownership::parse(&ownership.physical_id()).unwrap(), ownership);
        assert!(Ownership::parse("securityhub-enable:eu-west-1:enabled").is_err());
        assert!(Ownership::parse("securityhub-enable:eu-west-1:mine:default-standards=true").is_err());
    }

    #[test]
    fn properties_parse_cloudformation_strings_and_check_the_generator() {
        let p: Properties = tapguard_shared::props::parse(&serde_json::json!({
            "EnableDefaultStandards": "true", "AutoEnableControls": "false", "ControlFindingGenerator": "STANDARD_CONTROL",
            "Tags": {"owner": "security"}
        }))
        .unwrap();
        assert!(p.enable_default_standards && !p.auto_enable_controls);
        assert_eq!(p.generator().unwrap(), "STANDARD_CONTROL");
        let defaults: Properties = tapguard_shared::props::parse(&serde_json::json!({})).unwrap();
        assert!(defaults.auto_enable_controls && !defaults.enable_default_standards);
        assert_eq!(defaults.generator().unwrap(), "SECURITY_CONTROL");
        let wrong = Properties {
            control_finding_generator: Some("BOTH".into()),
            ..defaults
        };
        assert!(wrong
            .generator()
            .unwrap_err()
            .to_string()
            .contains("ControlFindingGenerator"));
    }
}
