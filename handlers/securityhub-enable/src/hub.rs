//! The hub itself: DescribeHub, EnableSecurityHub, DisableSecurityHub, its configuration
//! (ControlFindingGenerator, AutoEnableControls) and who governs it.

use std::collections::BTreeMap;

use aws_sdk_securityhub::types::ControlFindingGenerator;
use aws_sdk_securityhub::Client as SecurityHub;
use serde::{Deserialize, Serialize};
use tapguard_shared::{is_access_denied, HandlerError, Invocation};

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

/// The hub as DescribeHub answers it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hub {
    pub arn: String,
    pub subscribed_at: String,
    pub auto_enable_controls: bool,
    pub control_finding_generator: String,
}

/// The hub's state as the ledger records it: the prior state of a claim (`enabled: false` means this
/// chain of claimants turned the hub on), and what a claimant asks for (`tags` left out: tags are
/// added side by side, so two claimants asking for different tags do not conflict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubState {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_finding_generator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_enable_controls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

impl HubState {
    pub(crate) fn off() -> Self {
        HubState {
            enabled: false,
            control_finding_generator: None,
            auto_enable_controls: None,
            tags: None,
        }
    }

    pub(crate) fn of(hub: &Hub, tags: BTreeMap<String, String>) -> Self {
        HubState {
            enabled: true,
            control_finding_generator: Some(hub.control_finding_generator.clone()),
            auto_enable_controls: Some(hub.auto_enable_controls),
            tags: Some(tags),
        }
    }
}

pub(crate) fn mentions_configuration_policy(err: &HandlerError) -> bool {
    err.code().is_some_and(is_access_denied) && err.to_string().to_ascii_lowercase().contains("configuration policy")
}

/// The hub, or None when the account is not subscribed (InvalidAccessException).
pub(crate) async fn describe(sh: &SecurityHub, inv: &Invocation) -> Result<Option<Hub>, HandlerError> {
    match inv.aws("securityhub", "DescribeHub", sh.describe_hub().send()).await {
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

/// The administrator account that governs this account: one it is an Enabled member of.
pub(crate) async fn administrator(sh: &SecurityHub, inv: &Invocation) -> Result<Option<String>, HandlerError> {
    let answer = inv
        .aws(
            "securityhub",
            "GetAdministratorAccount",
            sh.get_administrator_account().send(),
        )
        .await?;
    let Some(invitation) = answer.administrator() else {
        return Ok(None);
    };
    let account = invitation.account_id().filter(|a| !a.is_empty());
    // Only an Enabled membership is an association (Member.MemberStatus): Created and Invited are not
    // yet one, Removed, Resigned, Deleted and AccountSuspended no longer are.
    match (account, invitation.member_status()) {
        (Some(account), Some(status)) if status.eq_ignore_ascii_case("enabled") => Ok(Some(account.to_string())),
        (Some(account), status) => {
            tracing::info!(administrator = account, member_status = status.unwrap_or("none"),
                "GetAdministratorAccount names an administrator, but the membership is not Enabled: the account governs its hub");
            Ok(None)
        }
        (None, _) => Ok(None),
    }
}

/// Turns the hub on. Returns false when it turned out to be on already (enabled meanwhile).
pub(crate) async fn enable(
    sh: &SecurityHub,
    inv: &Invocation,
    default_standards: bool,
    generator: &str,
    tags: &BTreeMap<String, String>,
) -> Result<bool, HandlerError> {
    let request = sh
        .enable_security_hub()
        .enable_default_standards(default_standards)
        .control_finding_generator(ControlFindingGenerator::from(generator))
        .set_tags((!tags.is_empty()).then(|| tags.clone().into_iter().collect()));
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

/// Turns the hub off. Already off is fine.
pub(crate) async fn disable(sh: &SecurityHub, inv: &Invocation) -> Result<(), HandlerError> {
    match inv
        .aws("securityhub", "DisableSecurityHub", sh.disable_security_hub().send())
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.code() == Some("InvalidAccessException") => Ok(()),
        Err(err) => Err(err),
    }
}

/// One of the hub's two settings, changed with its own UpdateSecurityHubConfiguration call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Setting<'a> {
    Generator(&'a str),
    AutoEnableControls(bool),
}

impl Setting<'_> {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Setting::Generator(_) => "ControlFindingGenerator",
            Setting::AutoEnableControls(_) => "AutoEnableControls",
        }
    }

    pub(crate) fn is_met_by(&self, hub: &Hub) -> bool {
        match self {
            Setting::Generator(g) => hub.control_finding_generator == *g,
            Setting::AutoEnableControls(a) => hub.auto_enable_controls == *a,
        }
    }
}

pub(crate) async fn configure(sh: &SecurityHub, inv: &Invocation, setting: Setting<'_>) -> Result<(), HandlerError> {
    let request = sh.update_security_hub_configuration();
    let request = match setting {
        Setting::Generator(g) => request.control_finding_generator(ControlFindingGenerator::from(g)),
        Setting::AutoEnableControls(a) => request.auto_enable_controls(a),
    };
    inv.aws("securityhub", "UpdateSecurityHubConfiguration", request.send())
        .await?;
    Ok(())
}
