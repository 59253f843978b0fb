//! Custom::SecurityHubStandards: the requested Security Hub standards subscribed and READY, answered
//! SUCCESS only after GetEnabledStandards shows each one READY.
//!
//! The standards that were already on when the resource was created travel in the physical id: Update and
//! Delete disable only standards this resource enabled, and a Create that fails part-way disables what
//! it had enabled before it answers FAILED.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_securityhub::types::{StandardsStatus, StandardsSubscription, StandardsSubscriptionRequest};
use aws_sdk_securityhub::Client as SecurityHub;
use serde::Deserialize;
use tapguard_shared::props::flex;
use tapguard_shared::{is_access_denied, is_throttling, CustomResource, HandlerError, Invocation, Outcome};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::controls::{self, Controls, DisabledControl, Target};

const ID_PREFIX: &str = "securityhub-standards:";
/// The standard AWS publishes as a global ruleset rather than a regional standard.
const CIS_1_2_0: &str = "cis-aws-foundations-benchmark/v/1.2.0";
/// Kept back from the Lambda deadline for disabling what a failed Create enabled, and for answering.
const ROLLBACK_RESERVE: Duration = Duration::from_secs(10);
/// The wait when neither WaitSeconds nor a Lambda deadline bounds it.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Short ids (`aws-foundational-security-best-practices/v/1.0.0`) or standards ARNs.
    pub standards: Vec<String>,
    /// Controls to turn off, each `{StandardsControlArn or ControlId, Reason}`.
    #[serde(default)]
    pub disabled_controls: Vec<DisabledControl>,
    /// How long to wait for every standard to be READY; by default as long as the Lambda timeout allows.
    #[serde(default, deserialize_with = "flex::option_u32")]
    pub wait_seconds: Option<u32>,
}

/// One standard, named by its id (the part after `standards/` or `ruleset/`) and its ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Standard {
    pub id: String,
    pub arn: String,
}

/// `arn:<partition>:securityhub:<region>::standards/<id>`, or the global ruleset ARN of CIS v1.2.0.
pub fn standards_arn(partition: &str, region: &str, id: &str) -> String {
    if id == CIS_1_2_0 {
        format!("arn:{partition}:securityhub:::ruleset/{id}")
    } else {
        format!("arn:{partition}:securityhub:{region}::standards/{id}")
    }
}

/// The id of a standards or subscription ARN: what follows `standards/`, `ruleset/` or `subscription/`.
pub fn standard_id(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let (kind, id) = resource.split_once('/')?;
    matches!(kind, "standards" | "ruleset" | "subscription").then_some(id)
}

/// Expands a short id or checks an ARN; the catalog check comes after, against DescribeStandards.
fn expand(inv: &Invocation, index: usize, given: &str) -> Result<Standard, HandlerError> {
    let given = given.trim();
    let invalid = |problem: String| HandlerError::InvalidProperty {
        property: format!("Standards[{index}]"),
        problem,
    };
    if given.starts_with("arn:") {
        let id = standard_id(given)
            .filter(|_| given.contains(":securityhub:"))
            .ok_or_else(|| invalid(format!("{given:?} is not a Security Hub standards ARN")))?;
        return Ok(Standard {
            id: id.to_string(),
            arn: given.to_string(),
        });
    }
    let id = given.trim_start_matches("standards/").trim_start_matches("ruleset/");
    if id.is_empty() || !id.contains("/v/") {
        return Err(invalid(format!(
            "{given:?} is neither a standards ARN nor a short id such as aws-foundational-security-best-practices/v/1.0.0"
        )));
    }
    Ok(Standard {
        id: id.to_string(),
        arn: standards_arn(&inv.partition, &inv.region, id),
    })
}

/// The requested standards, in order, without duplicates; unchecked against the catalog.
fn expand_all(inv: &Invocation, given: &[String]) -> Result<Vec<Standard>, HandlerError> {
    let mut out: Vec<Standard> = Vec::new();
    for (index, g) in given.iter().enumerate() {
        let standard = expand(inv, index, g)?;
        if !out.iter().any(|s| s.id == standard.id) {
            out.push(standard);
        }
    }
    Ok(out)
}

/// The standards that were on, and the requested controls that were off, before this resource was
/// created; fixed for the resource's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership {
    pub region: String,
    pub adopted: BTreeSet<String>,
    /// `<standard id>#<control>` of the controls that were already disabled.
    pub controls_adopted: BTreeSet<String>,
}

impl Ownership {
    pub fn physical_id(&self) -> String {
        let join = |set: &BTreeSet<String>| set.iter().map(String::as_str).collect::<Vec<_>>().join(",");
        let mut id = format!("{ID_PREFIX}{}:adopted={}", self.region, join(&self.adopted));
        if !self.controls_adopted.is_empty() {
            id.push_str(&format!(":controls-adopted={}", join(&self.controls_adopted)));
        }
        id
    }

    pub fn parse(physical_id: &str) -> Result<Self, HandlerError> {
        let malformed = || {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues (expected \
                 {ID_PREFIX}<region>:adopted=<standard ids, comma-separated>[:controls-adopted=<controls>])"
            ))
        };
        let rest = physical_id.strip_prefix(ID_PREFIX).ok_or_else(malformed)?;
        let (region, rest) = rest.split_once(":adopted=").ok_or_else(malformed)?;
        let (adopted, controls_adopted) = rest.split_once(":controls-adopted=").unwrap_or((rest, ""));
        let set = |list: &str| -> BTreeSet<String> {
            list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
        };
        Ok(Ownership {
            region: region.to_string(),
            adopted: set(adopted),
            controls_adopted: set(controls_adopted),
        })
    }
}

/// One subscription as GetEnabledStandards or BatchEnableStandards answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub arn: String,
    pub standard_id: String,
    pub status: String,
    pub reason: Option<String>,
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
        })
    }

    fn is_on(&self) -> bool {
        self.status != StandardsStatus::Deleting.as_str()
    }
}

/// What a person should do about a standard that ended INCOMPLETE or FAILED.
fn advice_for_reason(reason: Option<&str>) -> &'static str {
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

pub struct SecurityHubStandards {
    securityhub: SecurityHub,
    first_poll: Duration,
}

impl SecurityHubStandards {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_client(SecurityHub::new(config))
    }

    pub fn from_client(securityhub: SecurityHub) -> Self {
        SecurityHubStandards {
            securityhub,
            first_poll: Duration::from_millis(500),
        }
    }

    /// Polls faster (unit tests).
    pub fn with_first_poll(mut self, first_poll: Duration) -> Self {
        self.first_poll = first_poll;
        self
    }

    async fn hub_is_on(&self, inv: &Invocation) -> Result<bool, HandlerError> {
        match inv
            .aws("securityhub", "DescribeHub", self.securityhub.describe_hub().send())
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.code() == Some("InvalidAccessException") => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn require_hub(&self, inv: &Invocation) -> Result<(), HandlerError> {
        if self.hub_is_on(inv).await? {
            Ok(())
        } else {
            Err(hub_not_enabled(inv))
        }
    }

    /// Every standards ARN Security Hub offers in this region.
    async fn catalog(&self, inv: &Invocation) -> Result<BTreeSet<String>, HandlerError> {
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
    async fn resolve(&self, inv: &Invocation, props: &Properties) -> Result<Vec<Standard>, HandlerError> {
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
    async fn subscriptions(
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
    async fn enable(&self, inv: &Invocation, standard: &Standard) -> Result<Subscription, HandlerError> {
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

    async fn disable(&self, inv: &Invocation, subscriptions: &[&Subscription]) -> Result<(), HandlerError> {
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
    fn wait_budget(&self, inv: &Invocation, props: &Properties) -> (Duration, Option<String>) {
        let requested = props.wait_seconds.map(|s| Duration::from_secs(u64::from(s)));
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
    async fn wait_ready(
        &self,
        inv: &Invocation,
        standards: &[Standard],
        subscription_arns: &[String],
        wait: Duration,
        wait_note: Option<&str>,
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
                for standard in standards {
                    let Some(subscription) = current.get(&standard.id) else {
                        return Err(HandlerError::NotVerified(format!(
                            "GetEnabledStandards does not list {} in {}/{} after it was enabled: check for another \
                             automation that disables standards",
                            standard.id, inv.account_id, inv.region
                        )));
                    };
                    match subscription.status.as_str() {
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
                                if status == "DELETING" {
                                    "it is being disabled by someone else: find out who, then retry"
                                } else {
                                    advice_for_reason(reason)
                                }
                            )));
                        }
                    }
                }
                if pending.is_empty() {
                    return Ok(current);
                }
                let now = Instant::now();
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

    /// Disables what this invocation enabled, and says so in the reason of the error that caused it.
    async fn roll_back(&self, inv: &Invocation, enabled_here: &[Subscription], cause: HandlerError) -> HandlerError {
        if enabled_here.is_empty() {
            return cause;
        }
        let ids: Vec<&str> = enabled_here.iter().map(|s| s.standard_id.as_str()).collect();
        inv.step("disabling the standards this request enabled");
        let refs: Vec<&Subscription> = enabled_here.iter().collect();
        match self.disable(inv, &refs).await {
            Ok(()) => HandlerError::Failed(format!(
                "{cause}; disabled again what this request had enabled: {}",
                ids.join(", ")
            )),
            Err(err) => {
                warn!(reason = %err, "could not disable the standards this request enabled");
                HandlerError::Failed(format!(
                    "{cause}; then disabling what this request had enabled failed too ({err}): disable {} by hand",
                    ids.join(", ")
                ))
            }
        }
    }

    /// Enables the missing standards, waits for all to be READY, and undoes its own enabling on failure.
    async fn converge(
        &self,
        inv: &Invocation,
        standards: &[Standard],
        existing: &BTreeMap<String, Subscription>,
        props: &Properties,
    ) -> Result<(BTreeMap<String, Subscription>, Vec<Subscription>), HandlerError> {
        let mut enabled_here = Vec::new();
        for standard in standards {
            if existing.get(&standard.id).is_some_and(Subscription::is_on) {
                continue;
            }
            match self.enable(inv, standard).await {
                Ok(subscription) => enabled_here.push(subscription),
                Err(err) => return Err(self.roll_back(inv, &enabled_here, err).await),
            }
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
        let (wait, note) = self.wait_budget(inv, props);
        match self
            .wait_ready(inv, standards, &subscription_arns, wait, note.as_deref())
            .await
        {
            Ok(ready) => Ok((ready, enabled_here)),
            Err(err) => Err(self.roll_back(inv, &enabled_here, err).await),
        }
    }

    /// Turns off the requested controls that are on, then reads them all back off. Returns the keys of
    /// every requested control (verified off), and of those that were off already.
    async fn apply_controls(
        &self,
        inv: &Invocation,
        standards: &[Standard],
        ready: &BTreeMap<String, Subscription>,
        props: &Properties,
    ) -> Result<(BTreeSet<String>, BTreeSet<String>), HandlerError> {
        if props.disabled_controls.is_empty() {
            return Ok(Default::default());
        }
        let controls = Controls {
            securityhub: &self.securityhub,
        };
        inv.step("reading the controls to disable");
        let found = controls
            .read(inv, &props.disabled_controls, standards, ready, true)
            .await?;
        let already = controls::keys(found.iter().filter(|(_, _, s)| s.disabled).map(|(t, _, _)| t));
        let to_disable: Vec<(&Target, &str)> = found
            .iter()
            .filter(|(_, _, s)| !s.disabled)
            .map(|(t, reason, _)| (t, reason.as_str()))
            .collect();
        if let Err(err) = controls.set(inv, &to_disable, true).await {
            // Part of them may be off already: this request turns back on what it turned off.
            if let Err(undo) = controls.set(inv, &to_disable, false).await {
                warn!(reason = %undo, "could not turn back on the controls this request disabled");
            }
            return Err(err);
        }
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
        Ok((controls::keys(after.iter().map(|(t, _, _)| t)), already))
    }

    /// Turns back on the controls of `props` that this resource turned off, in the standards that stay on,
    /// except those in `still_wanted`. A control someone has since disabled with another reason is theirs.
    async fn restore_controls(
        &self,
        inv: &Invocation,
        props: &Properties,
        staying: &[Standard],
        subscriptions: &BTreeMap<String, Subscription>,
        ownership: &Ownership,
        still_wanted: &BTreeSet<String>,
    ) -> Result<(), HandlerError> {
        let entries: Vec<DisabledControl> = props
            .disabled_controls
            .iter()
            .filter(|c| match &c.standards_control_arn {
                Some(arn) => controls::parse_control_arn(arn)
                    .is_some_and(|(standard_id, _)| staying.iter().any(|s| s.id == standard_id)),
                None => true,
            })
            .cloned()
            .collect();
        if entries.is_empty() || staying.is_empty() {
            return Ok(());
        }
        let controls = Controls {
            securityhub: &self.securityhub,
        };
        let found = controls.read(inv, &entries, staying, subscriptions, false).await?;
        let to_enable: Vec<(&Target, &str)> = found
            .iter()
            .filter(|(t, reason, s)| {
                s.disabled
                    && s.reason.as_deref().is_none_or(|r| r == reason)
                    && !ownership.controls_adopted.contains(&t.key())
                    && !still_wanted.contains(&t.key())
            })
            .map(|(t, reason, _)| (t, reason.as_str()))
            .collect();
        controls.set(inv, &to_enable, false).await
    }

    fn outcome(
        ownership: &Ownership,
        standards: &[Standard],
        ready: &BTreeMap<String, Subscription>,
        disabled_controls: &BTreeSet<String>,
    ) -> Outcome {
        let join =
            |f: &dyn Fn(&Standard) -> Option<String>| standards.iter().filter_map(f).collect::<Vec<_>>().join(",");
        Outcome::new(ownership.physical_id())
            .with("EnabledStandards", join(&|s| Some(s.arn.clone())))
            .with("SubscriptionArns", join(&|s| ready.get(&s.id).map(|r| r.arn.clone())))
            .with(
                "Adopted",
                join(&|s| ownership.adopted.contains(&s.id).then(|| s.arn.clone())),
            )
            .with(
                "Statuses",
                join(&|s| ready.get(&s.id).map(|r| format!("{}={}", s.id, r.status))),
            )
            .with(
                "DisabledControls",
                disabled_controls
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            )
    }
}

/// A denial by a central configuration policy is not a missing permission: granting the action to the
/// role would change nothing, so the advice says where the decision is made.
fn explain_configuration_policy(err: HandlerError) -> HandlerError {
    let by_policy = matches!(&err, HandlerError::Aws { code, message, .. }
        if is_access_denied(code) && message.to_ascii_lowercase().contains("configuration policy"));
    if by_policy {
        err.with_advice(
            "this account's standards are set by the delegated administrator's configuration policy: change the \
             policy in that account, or leave these standards out of this resource",
        )
    } else {
        err
    }
}

fn hub_not_enabled(inv: &Invocation) -> HandlerError {
    HandlerError::Failed(format!(
        "Security Hub is not enabled in {}/{}: add a Custom::SecurityHubEnable and DependsOn it",
        inv.account_id, inv.region
    ))
}

impl CustomResource for SecurityHubStandards {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::SecurityHubStandards";
    const ID_PREFIX: &'static str = ID_PREFIX;

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        self.require_hub(inv).await?;
        let standards = self.resolve(inv, &props).await?;
        let existing = self.subscriptions(inv, None).await?;
        let adopted = standards
            .iter()
            .filter(|s| existing.get(&s.id).is_some_and(Subscription::is_on))
            .map(|s| s.id.clone())
            .collect();
        let (ready, enabled_here) = self.converge(inv, &standards, &existing, &props).await?;
        let (disabled, controls_adopted) = match self.apply_controls(inv, &standards, &ready, &props).await {
            Ok(controls) => controls,
            Err(err) => return Err(self.roll_back(inv, &enabled_here, err).await),
        };
        let ownership = Ownership {
            region: inv.region.clone(),
            adopted,
            controls_adopted,
        };
        Ok(Self::outcome(&ownership, &standards, &ready, &disabled))
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        // The adopted set stays the one Create found: a new physical id would make CloudFormation delete
        // the old one, and that Delete would disable standards this resource still stands for.
        let ownership = Ownership::parse(physical_id)?;
        self.require_hub(inv).await?;
        let standards = self.resolve(inv, &props).await?;
        let existing = self.subscriptions(inv, None).await?;
        for standard in &standards {
            if existing.get(&standard.id).is_some_and(Subscription::is_on) && !ownership.adopted.contains(&standard.id)
            {
                info!(
                    standard = standard.id,
                    "added standard is already on: counted as this resource's from now"
                );
            }
        }
        let (ready, enabled_here) = self.converge(inv, &standards, &existing, &props).await?;
        let (disabled, _) = match self.apply_controls(inv, &standards, &ready, &props).await {
            Ok(controls) => controls,
            Err(err) => return Err(self.roll_back(inv, &enabled_here, err).await),
        };

        // Removed standards go only after the new set is READY, so a failed Update leaves the old set on.
        let previous = match &old {
            Some(old) => expand_all(inv, &old.standards)?,
            None => {
                warn!("the previous properties do not parse: no standard or control is restored by this update");
                Vec::new()
            }
        };
        if let Some(old) = &old {
            // Controls no longer listed go back on in the standards that stay on: the requested ones, and
            // adopted ones that are no longer requested (they stay on too).
            let mut staying: Vec<Standard> = standards.clone();
            staying.extend(
                previous
                    .iter()
                    .filter(|p| ownership.adopted.contains(&p.id) && !standards.iter().any(|s| s.id == p.id))
                    .cloned(),
            );
            let mut subscriptions = existing.clone();
            subscriptions.extend(ready.clone());
            self.restore_controls(inv, old, &staying, &subscriptions, &ownership, &disabled)
                .await?;
        }
        let removed: Vec<&Subscription> = previous
            .iter()
            .filter(|p| !standards.iter().any(|s| s.id == p.id) && !ownership.adopted.contains(&p.id))
            .filter_map(|p| existing.get(&p.id).filter(|s| s.is_on()))
            .collect();
        self.disable(inv, &removed).await?;
        Ok(Self::outcome(&ownership, &standards, &ready, &disabled))
    }

    async fn delete(&self, inv: &Invocation, physical_id: &str, props: Option<Properties>) -> Result<(), HandlerError> {
        let ownership = Ownership::parse(physical_id)?;
        let Some(props) = props else {
            warn!("the properties do not parse: which standards this resource enabled is unknown, all are left on");
            return Ok(());
        };
        let (staying, ours): (Vec<Standard>, Vec<Standard>) = expand_all(inv, &props.standards)?
            .into_iter()
            .partition(|s| ownership.adopted.contains(&s.id));
        if ours.is_empty() && (staying.is_empty() || props.disabled_controls.is_empty()) {
            return Ok(());
        }
        if !self.hub_is_on(inv).await? {
            info!("Security Hub is off: its standards went with it");
            return Ok(());
        }
        let existing = self.subscriptions(inv, None).await?;
        // Adopted standards stay on: the controls this resource turned off in them go back on.
        self.restore_controls(inv, &props, &staying, &existing, &ownership, &BTreeSet::new())
            .await?;
        let to_disable: Vec<&Subscription> = ours
            .iter()
            .filter_map(|s| existing.get(&s.id).filter(|e| e.is_on()))
            .collect();
        self.disable(inv, &to_disable).await?;

        inv.step("verifying the standards are being disabled");
        let arns: Vec<String> = to_disable.iter().map(|s| s.arn.clone()).collect();
        if arns.is_empty() {
            return Ok(());
        }
        let (wait, _) = self.wait_budget(inv, &props);
        let deadline = Instant::now() + wait;
        let mut delay = self.first_poll;
        loop {
            let after = self.subscriptions(inv, Some(&arns)).await?;
            if let Some(still_on) = after.values().find(|s| s.is_on()) {
                return Err(HandlerError::NotVerified(format!(
                    "GetEnabledStandards answers {} {} in {}/{} after BatchDisableStandards: check for another \
                     automation that enables standards",
                    still_on.standard_id, still_on.status, inv.account_id, inv.region
                )));
            }
            // DELETING is accepted: AWS has taken the request and finishes it without us.
            if after.is_empty() || Instant::now() + delay >= deadline {
                return Ok(());
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_POLL_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_securityhub::operation::batch_disable_standards::BatchDisableStandardsOutput;
    use aws_sdk_securityhub::operation::batch_enable_standards::{
        BatchEnableStandardsError, BatchEnableStandardsOutput,
    };
    use aws_sdk_securityhub::operation::batch_get_standards_control_associations::BatchGetStandardsControlAssociationsOutput;
    use aws_sdk_securityhub::operation::batch_update_standards_control_associations::BatchUpdateStandardsControlAssociationsOutput;
    use aws_sdk_securityhub::operation::describe_hub::{DescribeHubError, DescribeHubOutput};
    use aws_sdk_securityhub::operation::describe_standards::DescribeStandardsOutput;
    use aws_sdk_securityhub::operation::get_enabled_standards::{GetEnabledStandardsError, GetEnabledStandardsOutput};
    use aws_sdk_securityhub::types::{
        AssociationStatus, StandardsControlAssociationDetail, StandardsControlAssociationUpdate, UnprocessedErrorCode,
        UnprocessedStandardsControlAssociationUpdate,
    };
    use aws_sdk_securityhub::types::{Standard as SdkStandard, StandardsStatusReason, StatusReasonCode};
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;

    const ACCOUNT: &str = "111122223333";
    const FSBP: &str = "aws-foundational-security-best-practices/v/1.0.0";
    const CIS_14: &str = "cis-aws-foundations-benchmark/v/1.4.0";

    fn inv() -> Invocation {
        Invocation::detached("eu-west-1", ACCOUNT)
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder().code(code).message(message).build()
    }

    fn arn(id: &str) -> String {
        standards_arn("aws", "eu-west-1", id)
    }

    fn subscription_arn(id: &str) -> String {
        format!("arn:aws:securityhub:eu-west-1:{ACCOUNT}:subscription/{id}")
    }

    fn sub(id: &str, status: StandardsStatus, reason: Option<StatusReasonCode>) -> StandardsSubscription {
        let mut b = StandardsSubscription::builder()
            .standards_subscription_arn(subscription_arn(id))
            .standards_arn(arn(id))
            .standards_status(status);
        if let Some(reason) = reason {
            b = b.standards_status_reason(StandardsStatusReason::builder().status_reason_code(reason).build());
        }
        b.build()
    }

    fn hub_on() -> Rule {
        mock!(SecurityHub::describe_hub).then_output(|| {
            DescribeHubOutput::builder()
                .hub_arn(format!("arn:aws:securityhub:eu-west-1:{ACCOUNT}:hub/default"))
                .build()
        })
    }

    fn catalog() -> Rule {
        mock!(SecurityHub::describe_standards).then_output(|| {
            DescribeStandardsOutput::builder()
                .set_standards(Some(
                    [FSBP, CIS_1_2_0, CIS_14, "pci-dss/v/3.2.1"]
                        .iter()
                        .map(|id| SdkStandard::builder().standards_arn(arn(id)).build())
                        .collect(),
                ))
                .build()
        })
    }

    type Read = Vec<(&'static str, StandardsStatus, Option<StatusReasonCode>)>;

    /// GetEnabledStandards answers, in order; the last one repeats.
    fn reads(answers: Vec<Read>) -> Rule {
        let mut seq = mock!(SecurityHub::get_enabled_standards).sequence();
        let count = answers.len();
        for (i, answer) in answers.into_iter().enumerate() {
            let make = move || {
                GetEnabledStandardsOutput::builder()
                    .set_standards_subscriptions(Some(
                        answer
                            .iter()
                            .map(|(id, st, r)| sub(id, st.clone(), r.clone()))
                            .collect(),
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

    fn enable_ok() -> Rule {
        mock!(SecurityHub::batch_enable_standards).then_output(|| {
            // The mock cannot see the request, so it answers for every standard the tests enable.
            BatchEnableStandardsOutput::builder()
                .set_standards_subscriptions(Some(
                    [FSBP, CIS_1_2_0, CIS_14, "pci-dss/v/3.2.1"]
                        .iter()
                        .map(|id| sub(id, StandardsStatus::Pending, None))
                        .collect(),
                ))
                .build()
        })
    }

    fn disable_ok() -> Rule {
        mock!(SecurityHub::batch_disable_standards).then_output(|| BatchDisableStandardsOutput::builder().build())
    }

    fn handler(rules: &[&Rule]) -> SecurityHubStandards {
        SecurityHubStandards::from_client(mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules))
            .with_first_poll(Duration::from_millis(1))
    }

    fn props(standards: &[&str]) -> Properties {
        Properties {
            standards: standards.iter().map(|s| s.to_string()).collect(),
            disabled_controls: Vec::new(),
            wait_seconds: Some(5),
        }
    }

    use StandardsStatus::{Failed, Incomplete, Pending, Ready};

    #[tokio::test]
    async fn create_enables_the_missing_waits_for_ready_and_reports_adopted() {
        let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
        let enabled = reads(vec![
            vec![(FSBP, Ready, None)],
            vec![(FSBP, Ready, None), (CIS_1_2_0, Pending, None)],
            vec![(FSBP, Ready, None), (CIS_1_2_0, Ready, None)],
        ]);
        let h = handler(&[&hub, &cat, &enabled, &enable, &disable]);
        let out = h.create(&inv(), props(&[FSBP, CIS_1_2_0])).await.unwrap();
        assert_eq!(enable.num_calls(), 1, "only the missing standard is enabled");
        assert_eq!(disable.num_calls(), 0);
        assert_eq!(enabled.num_calls(), 3, "read, PENDING, READY");
        assert_eq!(
            out.physical_id,
            format!("securityhub-standards:eu-west-1:adopted={FSBP}")
        );
        assert_eq!(
            out.data["EnabledStandards"],
            format!("{},arn:aws:securityhub:::ruleset/{CIS_1_2_0}", arn(FSBP))
        );
        assert_eq!(out.data["Adopted"], arn(FSBP));
        assert_eq!(
            out.data["SubscriptionArns"],
            format!("{},{}", subscription_arn(FSBP), subscription_arn(CIS_1_2_0))
        );
        assert_eq!(out.data["Statuses"], format!("{FSBP}=READY,{CIS_1_2_0}=READY"));
    }

    #[tokio::test]
    async fn incomplete_and_failed_give_the_reason_and_disable_what_this_create_enabled() {
        for (status, reason, advice) in [
            (
                Incomplete,
                StatusReasonCode::NoAvailableConfigurationRecorder,
                "turn on AWS Config first",
            ),
            (
                Failed,
                StatusReasonCode::MaximumNumberOfConfigRulesExceeded,
                "AWS Config rules quota",
            ),
            (
                Incomplete,
                StatusReasonCode::InternalError,
                "Security Hub failed on its side",
            ),
            (
                Failed,
                StatusReasonCode::NoAvailableMulticloudConnector,
                "multicloud connector",
            ),
        ] {
            let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
            let enabled = reads(vec![vec![], vec![(CIS_14, status.clone(), Some(reason.clone()))]]);
            let h = handler(&[&hub, &cat, &enabled, &enable, &disable]);
            let err = h.create(&inv(), props(&[CIS_14])).await.unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "standard {CIS_14} is {} in {ACCOUNT}/eu-west-1 (StandardsStatusReason {})",
                    status.as_str(),
                    reason.as_str()
                )),
                "{err}"
            );
            assert!(err.contains(advice), "{err}");
            assert!(
                err.ends_with(&format!("disabled again what this request had enabled: {CIS_14}")),
                "{err}"
            );
            assert_eq!(disable.num_calls(), 1);
        }
    }

    #[tokio::test]
    async fn an_adopted_standard_being_disabled_meanwhile_is_failed_and_not_touched() {
        let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
        let enabled = reads(vec![
            vec![(FSBP, Ready, None)],
            vec![(FSBP, StandardsStatus::Deleting, None)],
        ]);
        let err = handler(&[&hub, &cat, &enabled, &enable, &disable])
            .create(&inv(), props(&[FSBP]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("standard {FSBP} is DELETING in {ACCOUNT}/eu-west-1")),
            "{err}"
        );
        assert!(err.contains("being disabled by someone else"), "{err}");
        assert_eq!(
            enable.num_calls() + disable.num_calls(),
            0,
            "adopted: neither enabled nor disabled"
        );
    }

    #[tokio::test]
    async fn still_pending_when_the_wait_is_over_is_failed_naming_the_standard() {
        let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
        let enabled = reads(vec![vec![], vec![(CIS_14, Pending, None)]]);
        let h = handler(&[&hub, &cat, &enabled, &enable, &disable]);
        let mut p = props(&[CIS_14]);
        p.wait_seconds = Some(0);
        let err = h.create(&inv(), p).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{CIS_14} still PENDING after waiting 0 s for READY")),
            "{err}"
        );
        assert_eq!(
            disable.num_calls(),
            1,
            "the PENDING standard this create enabled is disabled again"
        );
    }

    #[tokio::test]
    async fn a_rejected_second_standard_disables_the_first() {
        let (hub, cat, disable) = (hub_on(), catalog(), disable_ok());
        let enabled = reads(vec![vec![]]);
        let enable = mock!(SecurityHub::batch_enable_standards)
            .sequence()
            .output(|| {
                BatchEnableStandardsOutput::builder()
                    .standards_subscriptions(sub(FSBP, Pending, None))
                    .build()
            })
            .error(|| BatchEnableStandardsError::generic(meta("InvalidInputException", "not available")))
            .build();
        let h = handler(&[&hub, &cat, &enabled, &enable, &disable]);
        let err = h.create(&inv(), props(&[FSBP, CIS_14])).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "BatchEnableStandards failed: InvalidInputException: not available (enabling {CIS_14})"
            )),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("disabled again what this request had enabled: {FSBP}")),
            "{err}"
        );
        assert_eq!(disable.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_configuration_policy_denial_says_where_the_standards_are_decided() {
        let (hub, cat) = (hub_on(), catalog());
        let enabled = reads(vec![vec![]]);
        let enable = mock!(SecurityHub::batch_enable_standards).then_error(|| {
            BatchEnableStandardsError::generic(meta(
                "AccessDeniedException",
                "Account 111122223333 is managed by a configuration policy",
            ))
        });
        let err = handler(&[&hub, &cat, &enabled, &enable])
            .create(&inv(), props(&[FSBP]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("BatchEnableStandards failed: AccessDeniedException: Account 111122223333 is managed"),
            "{err}"
        );
        assert!(err.contains("delegated administrator's configuration policy"), "{err}");
        assert!(!err.contains("grant it"), "{err}");
    }

    #[tokio::test]
    async fn no_hub_is_failed_with_the_remedy() {
        let hub = mock!(SecurityHub::describe_hub).then_error(|| {
            DescribeHubError::generic(meta(
                "InvalidAccessException",
                "Account is not subscribed to AWS Security Hub",
            ))
        });
        let enable = enable_ok();
        let err = handler(&[&hub, &enable])
            .create(&inv(), props(&[FSBP]))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Security Hub is not enabled in {ACCOUNT}/eu-west-1: add a Custom::SecurityHubEnable and DependsOn it"
            )
        );
        assert_eq!(enable.num_calls(), 0);
    }

    #[tokio::test]
    async fn throttled_polls_are_retried_until_ready() {
        let (hub, cat, enable) = (hub_on(), catalog(), enable_ok());
        let enabled = mock!(SecurityHub::get_enabled_standards)
            .sequence()
            .output(|| GetEnabledStandardsOutput::builder().build())
            .error(|| GetEnabledStandardsError::generic(meta("ThrottlingException", "Rate exceeded")))
            .times(2)
            .output(|| {
                GetEnabledStandardsOutput::builder()
                    .standards_subscriptions(sub(FSBP, Ready, None))
                    .build()
            })
            .repeatedly()
            .build();
        let out = handler(&[&hub, &cat, &enabled, &enable])
            .create(&inv(), props(&[FSBP]))
            .await
            .unwrap();
        assert_eq!(out.data["Statuses"], format!("{FSBP}=READY"));
        assert_eq!(enabled.num_calls(), 4);
    }

    #[tokio::test]
    async fn an_unknown_standard_is_refused_before_any_change() {
        let (hub, cat, enable) = (hub_on(), catalog(), enable_ok());
        let err = handler(&[&hub, &cat, &enable])
            .create(&inv(), props(&[FSBP, "nist-800-53/v/5.0.0"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid property Standards[1]: nist-800-53/v/5.0.0"),
            "{err}"
        );
        assert!(err.contains("DescribeStandards lists"), "{err}");
        assert_eq!(enable.num_calls(), 0);

        let err = expand(&inv(), 0, "pci").unwrap_err().to_string();
        assert!(
            err.starts_with("invalid property Standards[0]: \"pci\" is neither"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn update_enables_added_and_disables_removed_ones_it_owns_only() {
        let ownership = Ownership {
            region: "eu-west-1".into(),
            adopted: [FSBP.to_string()].into(),
            controls_adopted: Default::default(),
        };
        let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
        let enabled = reads(vec![
            vec![(FSBP, Ready, None), (CIS_1_2_0, Ready, None)],
            vec![(CIS_14, Ready, None)],
        ]);
        let h = handler(&[&hub, &cat, &enabled, &enable, &disable]);
        let out = h
            .update(
                &inv(),
                &ownership.physical_id(),
                props(&[CIS_14]),
                Some(props(&[FSBP, CIS_1_2_0])),
            )
            .await
            .unwrap();
        assert_eq!(out.physical_id, ownership.physical_id(), "never a replacement");
        assert_eq!((enable.num_calls(), disable.num_calls()), (1, 1));
        assert_eq!(out.data["Adopted"], "");
    }

    #[tokio::test]
    async fn a_noop_update_makes_no_mutating_call() {
        let ownership = Ownership {
            region: "eu-west-1".into(),
            adopted: Default::default(),
            controls_adopted: Default::default(),
        };
        let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
        let enabled = reads(vec![vec![(FSBP, Ready, None)]]);
        let h = handler(&[&hub, &cat, &enabled, &enable, &disable]);
        h.update(&inv(), &ownership.physical_id(), props(&[FSBP]), Some(props(&[FSBP])))
            .await
            .unwrap();
        assert_eq!(enable.num_calls() + disable.num_calls(), 0);
    }

    #[tokio::test]
    async fn delete_disables_only_what_this_resource_enabled() {
        let ownership = Ownership {
            region: "eu-west-1".into(),
            adopted: [FSBP.to_string()].into(),
            controls_adopted: Default::default(),
        };
        let (hub, disable) = (hub_on(), disable_ok());
        let enabled = reads(vec![
            vec![(FSBP, Ready, None), (CIS_14, Ready, None)],
            vec![(CIS_14, StandardsStatus::Deleting, None)],
            vec![],
        ]);
        handler(&[&hub, &enabled, &disable])
            .delete(&inv(), &ownership.physical_id(), Some(props(&[FSBP, CIS_14])))
            .await
            .unwrap();
        assert_eq!(disable.num_calls(), 1);

        let (enabled, disable) = (reads(vec![vec![(FSBP, Ready, None)]]), disable_ok());
        handler(&[&enabled, &disable])
            .delete(&inv(), &ownership.physical_id(), Some(props(&[FSBP])))
            .await
            .unwrap();
        assert_eq!(
            (enabled.num_calls(), disable.num_calls()),
            (0, 0),
            "adopted only: nothing to do"
        );
    }

    fn association_reads(statuses: Vec<AssociationStatus>) -> Rule {
        let mut seq = mock!(SecurityHub::batch_get_standards_control_associations).sequence();
        for status in statuses {
            seq = seq.output(move || {
                BatchGetStandardsControlAssociationsOutput::builder()
                    .standards_control_association_details(
                        StandardsControlAssociationDetail::builder()
                            .standards_arn(arn(FSBP))
                            .security_control_id("IAM.1")
                            .security_control_arn("arn:aws:securityhub:eu-west-1:111122223333:security-control/IAM.1")
                            .association_status(status.clone())
                            .build(),
                    )
                    .build()
            });
        }
        seq.build()
    }

    fn with_control(standards: &[&str]) -> Properties {
        let mut p = props(standards);
        p.disabled_controls = vec![DisabledControl {
            standards_control_arn: None,
            control_id: Some("IAM.1".into()),
            reason: "break-glass user".into(),
        }];
        p
    }

    #[tokio::test]
    async fn a_disabled_control_is_set_and_read_back() {
        let (hub, cat, enable) = (hub_on(), catalog(), enable_ok());
        let enabled = reads(vec![vec![], vec![(FSBP, Ready, None)]]);
        let associations = association_reads(vec![AssociationStatus::Enabled, AssociationStatus::Disabled]);
        let update = mock!(SecurityHub::batch_update_standards_control_associations)
            .then_output(|| BatchUpdateStandardsControlAssociationsOutput::builder().build());
        let out = handler(&[&hub, &cat, &enabled, &enable, &associations, &update])
            .create(&inv(), with_control(&[FSBP]))
            .await
            .unwrap();
        assert_eq!(out.data["DisabledControls"], format!("{FSBP}#IAM.1"));
        assert_eq!(update.num_calls(), 1);
        assert!(!out.physical_id.contains("controls-adopted"), "{}", out.physical_id);
    }

    #[tokio::test]
    async fn a_control_that_reads_enabled_after_disabling_is_failed_and_the_create_rolled_back() {
        let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
        let enabled = reads(vec![vec![], vec![(FSBP, Ready, None)]]);
        let associations = association_reads(vec![AssociationStatus::Enabled, AssociationStatus::Enabled]);
        let update = mock!(SecurityHub::batch_update_standards_control_associations)
            .then_output(|| BatchUpdateStandardsControlAssociationsOutput::builder().build());
        let err = handler(&[&hub, &cat, &enabled, &enable, &disable, &associations, &update])
            .create(&inv(), with_control(&[FSBP]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("not verified: control {FSBP}#IAM.1 still reads enabled")),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("disabled again what this request had enabled: {FSBP}")),
            "{err}"
        );
        assert_eq!(disable.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_refused_control_update_names_the_control_and_the_error() {
        let (hub, cat, enabled) = (hub_on(), catalog(), reads(vec![vec![(FSBP, Ready, None)]]));
        let associations = association_reads(vec![AssociationStatus::Enabled]);
        let update = mock!(SecurityHub::batch_update_standards_control_associations).then_output(|| {
            BatchUpdateStandardsControlAssociationsOutput::builder()
                .unprocessed_association_updates(
                    UnprocessedStandardsControlAssociationUpdate::builder()
                        .standards_control_association_update(
                            StandardsControlAssociationUpdate::builder()
                                .standards_arn(arn(FSBP))
                                .security_control_id("IAM.1")
                                .association_status(AssociationStatus::Disabled)
                                .build(),
                        )
                        .error_code(UnprocessedErrorCode::AccessDenied)
                        .error_reason("managed by a configuration policy")
                        .build(),
                )
                .build()
        });
        let err = handler(&[&hub, &cat, &enabled, &associations, &update])
            .create(&inv(), with_control(&[FSBP]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "BatchUpdateStandardsControlAssociations did not update IAM.1 in {}: ACCESS_DENIED: managed by",
                arn(FSBP)
            )),
            "{err}"
        );
        assert_eq!(update.num_calls(), 2, "the refused change is undone: turned back on");
    }

    #[test]
    fn short_ids_and_arns_expand_with_partition_and_region() {
        let cn = Invocation::detached("cn-north-1", ACCOUNT);
        assert_eq!(
            expand(&cn, 0, CIS_1_2_0).unwrap().arn,
            "arn:aws-cn:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0"
        );
        assert_eq!(
            expand(&cn, 0, "pci-dss/v/4.0.1").unwrap().arn,
            "arn:aws-cn:securityhub:cn-north-1::standards/pci-dss/v/4.0.1"
        );
        let given = "arn:aws:securityhub:eu-west-1::standards/nist-800-53/v/5.0.0";
        assert_eq!(
            expand(&inv(), 0, given).unwrap(),
            Standard {
                id: "nist-800-53/v/5.0.0".into(),
                arn: given.into()
            }
        );
        assert!(expand(&inv(), 2, "arn:aws:s3:::bucket")
            .unwrap_err()
            .to_string()
            .contains("Standards[2]"));
        assert_eq!(expand_all(&inv(), &[FSBP.into(), FSBP.into()]).unwrap().len(), 1);
    }

    #[test]
    fn physical_id_round_trips() {
        let ownership = Ownership {
            region: "eu-west-1".into(),
            adopted: [FSBP.to_string(), CIS_1_2_0.to_string()].into(),
            controls_adopted: ["aws-foundational-security-best-practices/v/1.0.0#IAM.1".to_string()].into(),
        };
        assert_eq!(Ownership::parse(&ownership.physical_id()).unwrap(), ownership);
        let none = Ownership {
            region: "eu-west-1".into(),
            adopted: Default::default(),
            controls_adopted: Default::default(),
        };
        assert_eq!(Ownership::parse(&none.physical_id()).unwrap(), none);
        assert!(Ownership::parse("securityhub-standards:eu-west-1").is_err());
    }
}
