//! The standards: the catalog (DescribeStandards), the account's subscriptions (GetEnabledStandards),
//! BatchEnableStandards / BatchDisableStandards, and the wait for READY.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_securityhub::types::{StandardsStatus, StandardsSubscription, StandardsSubscriptionRequest};
use aws_sdk_securityhub::Client as SecurityHub;
use tapguard_shared::{is_access_denied, is_throttling, HandlerError, Invocation};
use tokio::time::Instant;

use crate::controls;
use crate::properties::{expand_all, standard_id, Properties, Standard};

/// Kept back from the Lambda deadline for undoing what a failed request enabled, and for answering.
const ROLLBACK_RESERVE: Duration = Duration::from_secs(10);
/// The wait when neither WaitSeconds nor a Lambda deadline bounds it.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
pub(crate) const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// One subscription as GetEnabledStandards or BatchEnableStandards answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub arn: String,
    pub standard_id: String,
    pub status: String,
    pub reason: Option<String>,
    /// StandardsControlsUpdatable: `NOT_READY_FOR_UPDATES` while the standard's controls cannot be read
    /// or changed yet (AWS: also for a while after READY).
    pub controls_updatable: Option<String>,
}

impl Subscription {
    fn from_sdk(s: &StandardsSubscription) -> Option<Self> {
        let arn = s.standards_subscription_arn()?.to_string();
        let standard_id = s
            .standards_arn()
            .and_then(standard_id)
            .or_else(|| standard_id(&arn))?
            .to_string();
        Some(Subscription {
            arn,
            standard_id,
            status: s
                .standards_status()
                .map(|st| st.as_str().to_string())
                .unwrap_or_default(),
            reason: s
                .standards_status_reason()
                .and_then(|r| r.status_reason_code())
                .map(|c| c.as_str().to_string()),
            controls_updatable: s.standards_controls_updatable().map(|u| u.as_str().to_string()),
        })
    }

    /// Whether its controls may be read and changed now.
    pub(crate) fn controls_ready(&self) -> bool {
        self.controls_updatable.as_deref() != Some("NOT_READY_FOR_UPDATES")
    }

    pub(crate) fn is_on(&self) -> bool {
        self.status != StandardsStatus::Deleting.as_str()
    }
}

/// What a person should do about a standard that ended INCOMPLETE or FAILED.
pub(crate) fn advice_for_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("NO_AVAILABLE_CONFIGURATION_RECORDER") => {
            "turn on AWS Config first (a configuration recorder that records the resources the standard checks, \
             e.g. a Custom::ConfigSetup this resource DependsOn), then retry"
        }
        Some("MAXIMUM_NUMBER_OF_CONFIG_RULES_EXCEEDED") => {
            "the account has reached the AWS Config rules quota: delete unused Config rules or raise the quota, \
             then retry"
        }
        Some("NO_AVAILABLE_MULTICLOUD_CONNECTOR") => {
            "the standard needs a multicloud connector: create one in Security Hub, then retry"
        }
        Some("INTERNAL_ERROR") => "Security Hub failed on its side: retry the stack operation",
        _ => "look at the standard in the Security Hub console for what failed, correct it, then retry",
    }
}

pub(crate) struct Standards<'a> {
    pub securityhub: &'a SecurityHub,
    pub first_poll: Duration,
}

impl Standards<'_> {
    pub(crate) async fn hub_is_on(&self, inv: &Invocation) -> Result<bool, HandlerError> {
        match inv
            .aws("securityhub", "DescribeHub", self.securityhub.describe_hub().send())
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.code() == Some("InvalidAccessException") => Ok(false),
            Err(err) => Err(err),
        }
    }

    pub(crate) async fn require_hub(&self, inv: &Invocation) -> Result<(), HandlerError> {
        if self.hub_is_on(inv).await? {
            Ok(())
        } else {
            Err(hub_not_enabled(inv))
        }
    }

    /// Every standards ARN Security Hub offers in this region.
    pub(crate) async fn catalog(&self, inv: &Invocation) -> Result<BTreeSet<String>, HandlerError> {
        let mut arns = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = inv
                .aws(
                    "securityhub",
                    "DescribeStandards",
                    self.securityhub
                        .describe_standards()
                        .set_next_token(token.clone())
                        .send(),
                )
                .await?;
            arns.extend(
                page.standards()
                    .iter()
                    .filter_map(|s| s.standards_arn())
                    .map(str::to_string),
            );
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(arns),
            }
        }
    }

    /// The requested standards, each checked against what DescribeStandards offers here.
    pub(crate) async fn resolve(&self, inv: &Invocation, props: &Properties) -> Result<Vec<Standard>, HandlerError> {
        if props.standards.is_empty() {
            return Err(HandlerError::InvalidProperty {
                property: "Standards".into(),
                problem: "give at least one standard".into(),
            });
        }
        let standards = expand_all(inv, &props.standards)?;
        controls::check(&props.disabled_controls, &standards)?;
        let catalog = self.catalog(inv).await?;
        for (index, standard) in standards.iter().enumerate() {
            if !catalog.contains(&standard.arn) {
                let offered: Vec<&str> = catalog.iter().filter_map(|a| standard_id(a)).collect();
                return Err(HandlerError::InvalidProperty {
                    property: format!("Standards[{index}]"),
                    problem: format!(
                        "{} ({}) is not a standard Security Hub offers in {} (DescribeStandards lists: {})",
                        standard.id,
                        standard.arn,
                        inv.region,
                        offered.join(", ")
                    ),
                });
            }
        }
        Ok(standards)
    }

    /// The account's subscriptions by standard id, optionally only the given subscription ARNs.
    pub(crate) async fn subscriptions(
        &self,
        inv: &Invocation,
        only: Option<&[String]>,
    ) -> Result<BTreeMap<String, Subscription>, HandlerError> {
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let request = self
                .securityhub
                .get_enabled_standards()
                .set_standards_subscription_arns(only.map(<[String]>::to_vec))
                .set_next_token(token.clone());
            let page = match inv.aws("securityhub", "GetEnabledStandards", request.send()).await {
                Err(err) if err.code() == Some("InvalidAccessException") => return Err(hub_not_enabled(inv)),
                other => other?,
            };
            for subscription in page.standards_subscriptions().iter().filter_map(Subscription::from_sdk) {
                out.insert(subscription.standard_id.clone(), subscription);
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Subscribes one standard. One call per standard, so a rejection names its standard and the ones
    /// enabled before it can be disabled again.
    pub(crate) async fn enable(&self, inv: &Invocation, standard: &Standard) -> Result<Subscription, HandlerError> {
        let answer = inv
            .aws(
                "securityhub",
                "BatchEnableStandards",
                self.securityhub
                    .batch_enable_standards()
                    .standards_subscription_requests(
                        StandardsSubscriptionRequest::builder()
                            .standards_arn(&standard.arn)
                            .build(),
                    )
                    .send(),
            )
            .await
            .map_err(|err| explain_configuration_policy(err.with_context(&format!("enabling {}", standard.id))))?;
        answer
            .standards_subscriptions()
            .iter()
            .filter_map(Subscription::from_sdk)
            .find(|s| s.standard_id == standard.id)
            .ok_or_else(|| {
                HandlerError::Failed(format!(
                    "BatchEnableStandards for {} answered without its subscription: retry the stack operation",
                    standard.id
                ))
            })
    }

    pub(crate) async fn disable(&self, inv: &Invocation, subscriptions: &[&Subscription]) -> Result<(), HandlerError> {
        if subscriptions.is_empty() {
            return Ok(());
        }
        let arns: Vec<String> = subscriptions.iter().map(|s| s.arn.clone()).collect();
        inv.aws(
            "securityhub",
            "BatchDisableStandards",
            self.securityhub
                .batch_disable_standards()
                .set_standards_subscription_arns(Some(arns))
                .send(),
        )
        .await
        .map_err(explain_configuration_policy)?;
        Ok(())
    }

    /// How long to wait for READY: WaitSeconds, cut to what the Lambda deadline leaves.
    pub(crate) fn wait_budget(&self, inv: &Invocation, wait_seconds: Option<u32>) -> (Duration, Option<String>) {
        let requested = wait_seconds.map(|s| Duration::from_secs(u64::from(s)));
        let available = inv.time_left().map(|t| t.saturating_sub(ROLLBACK_RESERVE));
        match (requested, available) {
            (Some(r), Some(a)) if r > a => (
                a,
                Some(format!(
                    "WaitSeconds {} was cut to {} s to answer before the Lambda timeout",
                    r.as_secs(),
                    a.as_secs()
                )),
            ),
            (Some(r), _) => (r, None),
            (None, Some(a)) => (a, None),
            (None, None) => (DEFAULT_WAIT, None),
        }
    }

    /// Polls until every subscription is READY. INCOMPLETE or FAILED, or PENDING when the wait is over,
    /// is an error naming the standard.
    pub(crate) async fn wait_ready(
        &self,
        inv: &Invocation,
        standards: &[Standard],
        subscription_arns: &[String],
        wait: Duration,
        wait_note: Option<&str>,
        controls: bool,
    ) -> Result<BTreeMap<String, Subscription>, HandlerError> {
        let started = Instant::now();
        let deadline = started + wait;
        let mut delay = self.first_poll;
        loop {
            inv.step(format!(
                "waiting for the standards to be READY ({} s so far)",
                started.elapsed().as_secs()
            ));
            let current = match self.subscriptions(inv, Some(subscription_arns)).await {
                // The SDK already retried; while time remains, the next poll is the retry.
                Err(err) if err.code().is_some_and(is_throttling) && Instant::now() + delay < deadline => None,
                other => Some(other?),
            };
            if let Some(current) = current {
                let mut pending = Vec::new();
                let mut not_updatable = Vec::new();
                for standard in standards {
                    let Some(subscription) = current.get(&standard.id) else {
                        return Err(HandlerError::NotVerified(format!(
                            "GetEnabledStandards does not list {} in {}/{} after it was enabled: check for another \
                             automation that disables standards",
                            standard.id, inv.account_id, inv.region
                        )));
                    };
                    match subscription.status.as_str() {
                        // Controls to change wait until the standard's controls are updatable.
                        "READY" if controls && !subscription.controls_ready() => {
                            not_updatable.push(standard.id.as_str())
                        }
                        "READY" => {}
                        "PENDING" => pending.push(standard.id.as_str()),
                        status => {
                            let reason = subscription.reason.as_deref();
                            return Err(HandlerError::Failed(format!(
                                "standard {} is {status} in {}/{} (StandardsStatusReason {}): {}",
                                standard.id,
                                inv.account_id,
                                inv.region,
                                reason.unwrap_or("none given"),
                                match status {
                                    "DELETING" =>
                                        "it is being disabled by someone else: find out who, then retry".to_string(),
                                    // AWS: FAILED is a standard that could not be disabled.
                                    "FAILED" => format!(
                                        "FAILED means Security Hub CSPM could not disable it (an earlier \
                                         BatchDisableStandards failed): {}",
                                        advice_for_reason(reason)
                                    ),
                                    _ => advice_for_reason(reason).to_string(),
                                }
                            )));
                        }
                    }
                }
                if pending.is_empty() && not_updatable.is_empty() {
                    return Ok(current);
                }
                let now = Instant::now();
                if now >= deadline && pending.is_empty() {
                    return Err(HandlerError::Failed(format!(
                        "{} READY, but StandardsControlsUpdatable still NOT_READY_FOR_UPDATES after waiting {} s in \
                         {}/{}{}: its controls cannot be changed yet; raise WaitSeconds (and the function's timeout), \
                         or retry later",
                        not_updatable.join(", "),
                        started.elapsed().as_secs(),
                        inv.account_id,
                        inv.region,
                        wait_note.map(|n| format!(" ({n})")).unwrap_or_default()
                    )));
                }
                if now >= deadline {
                    return Err(HandlerError::Failed(format!(
                        "{} still PENDING after waiting {} s for READY in {}/{}{}: raise WaitSeconds (and the \
                         function's timeout), or look at the standard in the Security Hub console",
                        pending.join(", "),
                        started.elapsed().as_secs(),
                        inv.account_id,
                        inv.region,
                        wait_note.map(|n| format!(" ({n})")).unwrap_or_default()
                    )));
                }
                tokio::time::sleep(delay.min(deadline - now)).await;
            } else {
                tokio::time::sleep(delay).await;
            }
            delay = (delay * 2).min(MAX_POLL_INTERVAL);
        }
    }

    /// Disables `subscriptions` and reads them back: DELETING or gone is accepted (AWS has taken the
    /// request and finishes it without us).
    pub(crate) async fn disable_and_verify(
        &self,
        inv: &Invocation,
        subscriptions: &[&Subscription],
        wait: Duration,
    ) -> Result<(), HandlerError> {
        if subscriptions.is_empty() {
            return Ok(());
        }
        self.disable(inv, subscriptions).await?;
        inv.step("verifying the standards are being disabled");
        let arns: Vec<String> = subscriptions.iter().map(|s| s.arn.clone()).collect();
        let deadline = Instant::now() + wait;
        let mut delay = self.first_poll;
        loop {
            let after = self.subscriptions(inv, Some(&arns)).await?;
            if let Some(failed) = after.values().find(|s| s.status == StandardsStatus::Failed.as_str()) {
                return Err(HandlerError::Failed(format!(
                    "Security Hub CSPM could not disable {} in {}/{}: GetEnabledStandards answers FAILED \
                     (StandardsStatusReason {}): {}",
                    failed.standard_id,
                    inv.account_id,
                    inv.region,
                    failed.reason.as_deref().unwrap_or("none given"),
                    advice_for_reason(failed.reason.as_deref())
                )));
            }
            if let Some(still_on) = after.values().find(|s| s.is_on()) {
                return Err(HandlerError::NotVerified(format!(
                    "GetEnabledStandards answers {} {} in {}/{} after BatchDisableStandards: check for another \
                     automation that enables standards",
                    still_on.standard_id, still_on.status, inv.account_id, inv.region
                )));
            }
            if after.is_empty() || Instant::now() + delay >= deadline {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_POLL_INTERVAL);
        }
    }
}

/// A denial by a central configuration policy is not a missing permission: granting the action to the
/// role would change nothing, so the advice says where the decision is made.
pub(crate) fn explain_configuration_policy(err: HandlerError) -> HandlerError {
    if is_central_denial(&err) {
        err.with_advice(
            "this account's standards are set by the delegated administrator's configuration policy: change the \
             policy in that account, or leave these standards out of this resource",
        )
    } else {
        err
    }
}

/// Whether a change was refused because a central configuration policy of the delegated administrator
/// governs the account: the only sign a member account gets, as Security Hub's reads of the central
/// configuration (DescribeOrganizationConfiguration, GetConfigurationPolicyAssociation) are the
/// administrator's.
pub(crate) fn is_central_denial(err: &HandlerError) -> bool {
    matches!(err, HandlerError::Aws { code, message, .. }
    if is_access_denied(code) && {
        let message = message.to_ascii_lowercase();
        message.contains("configuration policy") || message.contains("centrally managed")
    })
}

pub(crate) fn hub_not_enabled(inv: &Invocation) -> HandlerError {
    HandlerError::Failed(format!(
        "Security Hub is not enabled in {}/{}: add a Custom::SecurityHubEnable and DependsOn it",
        inv.account_id, inv.region
    ))
}
