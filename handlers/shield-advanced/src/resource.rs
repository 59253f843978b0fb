//! Custom::ShieldAdvanced: an opt-in Shield Advanced subscription (adopted, or created only when asked),
//! and optionally the Shield Response Team's role, answered SUCCESS only after reading both back.
//!
//! A subscription is a one-year commitment that no API call can end: Delete turns auto-renew off for a
//! subscription this resource's claimants created, and says so. The subscription is global, so the
//! claims live in the ledger of the partition's global region (`Ledger::global`).

use aws_sdk_shield::types::AutoRenew;
use aws_sdk_shield::Client as Shield;
use serde_json::{json, Value};
use tapguard_shared::arn::partition_for_region;
use tapguard_shared::ledger::{self, Release};
use tapguard_shared::verify::{self, ControlCheck, Verifier};
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::drift;
use crate::endpoint::{self, SHIELD_REGION};
use crate::engagement::{self, Contact};
use crate::properties::Properties;
use crate::subscription::{self, SubscriptionState};
use crate::{srt, ID_PREFIX};

const HANDLER: &str = "shield-advanced";

/// The settings this resource may claim: the subscription, and the SRT role.
pub fn settings() -> (String, String) {
    (
        ledger::setting(&["shield-advanced", "subscription"]),
        ledger::setting(&["shield-advanced", "srt-role"]),
    )
}

/// The proactive engagement settings this resource may claim: the emergency contacts, and proactive
/// engagement being on.
pub fn engagement_settings() -> (String, String) {
    (
        ledger::setting(&["shield-advanced", "emergency-contacts"]),
        ledger::setting(&["shield-advanced", "proactive-engagement"]),
    )
}

pub struct ShieldAdvanced {
    shield: Shield,
    ledger: Ledger,
}

impl ShieldAdvanced {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        // Shield's API is in us-east-1 whichever region the function runs in.
        let shield_config = aws_sdk_shield::config::Builder::from(config)
            .region(aws_config::Region::new(SHIELD_REGION))
            .build();
        Self::from_clients(Shield::from_conf(shield_config), Ledger::global(config, HANDLER))
    }

    pub fn from_clients(shield: Shield, ledger: Ledger) -> Self {
        ShieldAdvanced { shield, ledger }
    }

    fn key(physical_id: &str) -> Result<String, HandlerError> {
        ledger::key_of(ID_PREFIX, physical_id).ok_or_else(|| {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues: what it did cannot be found"
            ))
        })
    }

    async fn converge(&self, inv: &Invocation, key: &str, props: &Properties) -> Result<Outcome, HandlerError> {
        endpoint::available(partition_for_region(&inv.region), &inv.region)?;
        props.check()?;
        let (subscription_setting, srt_setting) = settings();
        let (contacts_setting, engagement_setting) = engagement_settings();
        let current = subscription::read(&self.shield, inv).await?;
        if !current.exists && !props.creates() {
            return Err(HandlerError::Failed(
                "the account has no Shield Advanced subscription (DescribeSubscription: ResourceNotFoundException) \
                 and CreateSubscription is not true: nothing was changed. Subscribing costs a monthly fee with a \
                 one-year commitment; set CreateSubscription to true (TapStack: EnableShieldAdvanced=true) to subscribe"
                    .into(),
            ));
        }
        let role = props.srt_role();
        let mut claimed = vec![subscription_setting.clone()];
        if role.is_some() {
            claimed.push(srt_setting.clone());
        }
        if props.contacts().is_some() {
            claimed.push(contacts_setting);
        }
        if props.proactive_engagement_on() {
            claimed.push(engagement_setting);
        }
        self.ledger.begin(inv, key, &claimed, ()).await?;
        let claim = self
            .ledger
            .claim(
                inv,
                key,
                &subscription_setting,
                json!({"subscribed": true}),
                Some(to_value(&current)),
            )
            .await?;
        if !current.exists {
            warn!("creating a Shield Advanced subscription: a monthly fee and a one-year commitment start now");
            subscription::create(&self.shield, inv).await?;
        }
        let current_role = srt::read(&self.shield, inv).await?;
        match role {
            Some(role) => {
                self.ledger
                    .claim(
                        inv,
                        key,
                        &srt_setting,
                        json!({"role_arn": role}),
                        Some(json!({"role_arn": current_role})),
                    )
                    .await?;
                if current_role.as_deref() != Some(role) {
                    srt::associate(&self.shield, inv, role).await?;
                }
            }
            // An Update that no longer asks for a role gives up its claim on it.
            None => self.release_srt(inv, key).await?,
        }
        // A subscription created just now has never had proactive engagement set up.
        let engagement_status = current.proactive_engagement.clone().filter(|_| current.exists);
        let contacts = self.converge_engagement(inv, key, props, engagement_status).await?;

        inv.step("verifying the Shield Advanced subscription");
        let after = subscription::read(&self.shield, inv).await?;
        if !after.exists {
            return Err(HandlerError::NotVerified(
                "DescribeSubscription answers ResourceNotFoundException after CreateSubscription".into(),
            ));
        }
        let after_role = srt::read(&self.shield, inv).await?;
        if let Some(role) = role {
            if after_role.as_deref() != Some(role) {
                return Err(HandlerError::NotVerified(format!(
                    "DescribeDRTAccess answers role {after_role:?}, not {role}, after AssociateDRTRole"
                )));
            }
        }
        if props.proactive_engagement_on() && !engagement::is_on(after.proactive_engagement.as_deref()) {
            return Err(HandlerError::NotVerified(format!(
                "DescribeSubscription answers ProactiveEngagementStatus {:?}, not ENABLED, after turning proactive \
                 engagement on",
                after.proactive_engagement
            )));
        }
        let contacts_after = match (&contacts, props.contacts()) {
            (Some(_), Some(wanted)) => {
                let now = engagement::contacts(&self.shield, inv).await?;
                if !engagement::same(&now, &wanted) {
                    return Err(HandlerError::NotVerified(format!(
                        "DescribeEmergencyContactSettings answers {} contacts, not the {} asked for, after \
                         UpdateEmergencyContactSettings",
                        now.len(),
                        wanted.len()
                    )));
                }
                Some(now)
            }
            (known, _) => known.clone(),
        };
        let prior: Option<SubscriptionState> = claim.prior.and_then(|p| serde_json::from_value(p).ok());
        let physical_id = ledger::physical_id(ID_PREFIX, &inv.region, key);
        Ok(Outcome::new(physical_id)
            .with("Subscribed", after.exists)
            .with("SubscriptionArn", after.arn.unwrap_or_default())
            .with("AutoRenew", after.auto_renew.unwrap_or_default())
            .with("CommitmentEndTime", after.end_time.unwrap_or_default())
            .with("Adopted", prior.map_or("unknown".to_string(), |p| p.exists.to_string()))
            .with("SrtRoleArn", after_role.unwrap_or_default())
            .with(
                "ProactiveEngagementStatus",
                after.proactive_engagement.unwrap_or_default(),
            )
            .with(
                "EmergencyContactCount",
                contacts_after.map(|c| c.len().to_string()).unwrap_or_default(),
            ))
    }

    /// Proactive engagement and its contacts, as far as the properties ask; what they no longer ask for
    /// is given up (proactive engagement first: it is off before the contacts it calls are put back).
    /// `status` is ProactiveEngagementStatus now (None: never set up). Returns the contacts read before
    /// any change when they were read.
    async fn converge_engagement(
        &self,
        inv: &Invocation,
        key: &str,
        props: &Properties,
        status: Option<String>,
    ) -> Result<Option<Vec<Contact>>, HandlerError> {
        let (contacts_setting, engagement_setting) = engagement_settings();
        let wanted = props.contacts();
        let wants_on = props.proactive_engagement_on();
        if !wants_on {
            self.release_engagement(inv, key).await?;
        }
        if wanted.is_none() {
            self.release_contacts(inv, key).await?;
        }
        if wanted.is_none() && !wants_on {
            return Ok(None);
        }
        let current = engagement::contacts(&self.shield, inv).await?;
        if let Some(wanted) = &wanted {
            let claim = json!({"contacts": wanted});
            let observed = json!({"contacts": current});
            self.ledger
                .claim(inv, key, &contacts_setting, claim, Some(observed))
                .await?;
        }
        if wants_on {
            let observed = json!({"status": status});
            self.ledger
                .claim(
                    inv,
                    key,
                    &engagement_setting,
                    json!({"status": "ENABLED"}),
                    Some(observed),
                )
                .await?;
        }
        // `check` made sure that turning it on comes with contacts.
        let wanted = wanted.unwrap_or_else(|| current.clone());
        let mut status = status;
        let mut contacts_set = engagement::same(&wanted, &current);
        if wants_on && status.is_none() {
            info!("setting up proactive engagement (AssociateProactiveEngagementDetails, a one-time call)");
            if engagement::associate(&self.shield, inv, &wanted).await? {
                status = Some("ENABLED".into());
                contacts_set = true;
            } else {
                info!("proactive engagement was set up meanwhile: changing it with the calls for later changes");
                contacts_set = false;
            }
        }
        if !contacts_set {
            engagement::set_contacts(&self.shield, inv, &wanted).await?;
        }
        if wants_on && !engagement::is_on(status.as_deref()) {
            engagement::enable(&self.shield, inv).await?;
        }
        if wants_on {
            info!(
                "proactive engagement is on: the SRT calls the emergency contacts when a protected resource's \
                 Route 53 health check turns unhealthy during an event, so each protected resource needs a health \
                 check associated (AssociateHealthCheck) for it to be of use"
            );
        }
        Ok(Some(current))
    }

    /// Gives up the claim on proactive engagement; the last claimant turns it off when it was off (or
    /// never set up) before the first claimant and is still on. Like the SRT role's, the claim goes only
    /// once that is read back.
    async fn release_engagement(&self, inv: &Invocation, key: &str) -> Result<(), HandlerError> {
        let (_, engagement_setting) = engagement_settings();
        let release = self.ledger.pending_release(inv, key, &engagement_setting).await?;
        self.restore_engagement(inv, release).await?;
        self.ledger.drop_claim(inv, key, &engagement_setting).await
    }

    async fn restore_engagement(&self, inv: &Invocation, release: Release) -> Result<(), HandlerError> {
        let Release::Last { prior, .. } = release else {
            return Ok(());
        };
        let Some(prior) = prior else {
            warn!("whether proactive engagement was on before is unknown: left as it is");
            return Ok(());
        };
        if engagement::is_on(prior["status"].as_str()) {
            info!("proactive engagement was on before the first claimant: left on");
            return Ok(());
        }
        let now = subscription::read(&self.shield, inv).await?;
        if !now.exists || !engagement::is_on(now.proactive_engagement.as_deref()) {
            info!(status = ?now.proactive_engagement, "proactive engagement is off already: nothing to turn off");
            return Ok(());
        }
        engagement::disable(&self.shield, inv).await?;
        inv.step("verifying proactive engagement is off");
        let after = subscription::read(&self.shield, inv).await?;
        if engagement::is_on(after.proactive_engagement.as_deref()) {
            return Err(HandlerError::NotVerified(format!(
                "DescribeSubscription answers ProactiveEngagementStatus {:?} after DisableProactiveEngagement",
                after.proactive_engagement
            )));
        }
        Ok(())
    }

    /// Gives up the claim on the emergency contacts; the last claimant puts back the contacts found
    /// before (none: removes them) while they are still the ones the claimants set.
    async fn release_contacts(&self, inv: &Invocation, key: &str) -> Result<(), HandlerError> {
        let (contacts_setting, _) = engagement_settings();
        let release = self.ledger.pending_release(inv, key, &contacts_setting).await?;
        self.restore_contacts(inv, release).await?;
        self.ledger.drop_claim(inv, key, &contacts_setting).await
    }

    async fn restore_contacts(&self, inv: &Invocation, release: Release) -> Result<(), HandlerError> {
        let Release::Last { prior, wants } = release else {
            return Ok(());
        };
        let contacts_of = |v: &Value| serde_json::from_value::<Vec<Contact>>(v["contacts"].clone()).ok();
        let (Some(prior), Some(wanted)) = (prior.as_ref().and_then(contacts_of), contacts_of(&wants)) else {
            warn!("the emergency contacts found before are unknown: left as they are");
            return Ok(());
        };
        let now = match engagement::contacts(&self.shield, inv).await {
            Ok(now) => now,
            Err(err) if err.code() == Some("ResourceNotFoundException") => {
                info!("the subscription is gone, and its emergency contacts with it: nothing to put back");
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        if !engagement::same(&now, &wanted) {
            info!("the emergency contacts were changed by someone since: left as they are");
            return Ok(());
        }
        if engagement::same(&now, &prior) {
            return Ok(());
        }
        if !prior.iter().any(|c| c.phone_number.is_some()) {
            let status = subscription::read(&self.shield, inv).await?.proactive_engagement;
            if engagement::is_on(status.as_deref()) {
                warn!(
                    "proactive engagement stays on (it was on before this resource), and Shield needs a phone number \
                     in the contact list while it is: the contacts this resource set are left; turn proactive \
                     engagement off, then remove them"
                );
                return Ok(());
            }
        }
        engagement::set_contacts(&self.shield, inv, &prior).await?;
        inv.step("verifying the restored emergency contacts");
        let after = engagement::contacts(&self.shield, inv).await?;
        if !engagement::same(&after, &prior) {
            return Err(HandlerError::NotVerified(format!(
                "DescribeEmergencyContactSettings answers {} contacts, not the {} found before",
                after.len(),
                prior.len()
            )));
        }
        Ok(())
    }

    /// Gives up the claim on the SRT role; the last claimant puts back the role found before (or none),
    /// while the role is still the one the claimants set.
    /// The claim goes only after the role is put back and read back: a Delete that fails or is cut off
    /// on the way keeps it, so its retry still knows the prior role.
    async fn release_srt(&self, inv: &Invocation, key: &str) -> Result<(), HandlerError> {
        let (_, srt_setting) = settings();
        let release = self.ledger.pending_release(inv, key, &srt_setting).await?;
        self.restore_srt(inv, release).await?;
        self.ledger.drop_claim(inv, key, &srt_setting).await
    }

    async fn restore_srt(&self, inv: &Invocation, release: Release) -> Result<(), HandlerError> {
        let Release::Last { prior, wants } = release else {
            return Ok(());
        };
        let Some(prior) = prior else {
            warn!("the SRT role found before is unknown: left as it is");
            return Ok(());
        };
        let prior_role = prior["role_arn"].as_str().map(str::to_string);
        let current = srt::read(&self.shield, inv).await?;
        if current.as_deref() != wants["role_arn"].as_str() {
            info!(current_role = ?current, "the SRT role was changed by someone since: left as it is");
            return Ok(());
        }
        match &prior_role {
            Some(role) => srt::associate(&self.shield, inv, role).await?,
            None => srt::disassociate(&self.shield, inv).await?,
        }
        inv.step("verifying the restored SRT access");
        let after = srt::read(&self.shield, inv).await?;
        if after != prior_role {
            return Err(HandlerError::NotVerified(format!(
                "DescribeDRTAccess answers role {after:?}, not the role found before ({prior_role:?})"
            )));
        }
        Ok(())
    }

    /// Gives up the claim on the subscription. The last claimant of a subscription its claimants created
    /// turns auto-renew off: no API call ends a commitment.
    async fn release_subscription(
        &self,
        inv: &Invocation,
        key: &str,
        undoing_create: bool,
    ) -> Result<(), HandlerError> {
        let (subscription_setting, _) = settings();
        // As for the SRT role, the claim goes only once auto-renew is off and read back.
        let release = self.ledger.pending_release(inv, key, &subscription_setting).await?;
        self.lapse_subscription(inv, key, release, undoing_create).await?;
        self.ledger.drop_claim(inv, key, &subscription_setting).await
    }

    async fn lapse_subscription(
        &self,
        inv: &Invocation,
        key: &str,
        release: Release,
        undoing_create: bool,
    ) -> Result<(), HandlerError> {
        let prior = match release {
            Release::StillClaimed(_) => return Ok(()),
            Release::Unclaimed if undoing_create => {
                info!("the failed Create had claimed nothing: nothing to undo");
                return Ok(());
            }
            Release::Unclaimed => {
                warn!(
                    parameter = self.ledger.record_name(key),
                    "the ledger holds no claim of this resource (deleted by someone?): whether it created the \
                     subscription is unknown, so auto-renew is left as it is"
                );
                return Ok(());
            }
            Release::Last { prior, .. } => prior.and_then(|p| serde_json::from_value::<SubscriptionState>(p).ok()),
        };
        match prior {
            None => warn!("the subscription's prior state is unknown: auto-renew is left as it is"),
            Some(p) if p.exists => info!("the subscription was adopted: it is left as it is"),
            Some(_) => {
                let current = subscription::read(&self.shield, inv).await?;
                warn!(
                    commitment_end = current.end_time.as_deref().unwrap_or("unknown"),
                    "a Shield Advanced subscription cannot be cancelled by any API call: the one this resource \
                     created runs (and is billed) until the end of its commitment; turning auto-renew off so it \
                     ends then"
                );
                if current.exists && current.auto_renew.as_deref() != Some("DISABLED") {
                    subscription::set_auto_renew(&self.shield, inv, AutoRenew::Disabled).await?;
                    inv.step("verifying auto-renew is off");
                    let after = subscription::read(&self.shield, inv).await?;
                    if after.auto_renew.as_deref() != Some("DISABLED") {
                        return Err(HandlerError::NotVerified(format!(
                            "DescribeSubscription answers AutoRenew {:?} after UpdateSubscription AutoRenew=DISABLED",
                            after.auto_renew
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    async fn release(&self, inv: &Invocation, key: &str, undoing_create: bool) -> Result<(), HandlerError> {
        if endpoint::available(partition_for_region(&inv.region), &inv.region).is_err() {
            info!("Shield Advanced does not exist in this partition: nothing was done, nothing to undo");
            return Ok(());
        }
        self.release_srt(inv, key).await?;
        self.release_engagement(inv, key).await?;
        self.release_contacts(inv, key).await?;
        self.release_subscription(inv, key, undoing_create).await?;
        self.ledger.forget(inv, key).await
    }
}

fn to_value(state: &SubscriptionState) -> Value {
    serde_json::to_value(state).unwrap_or(Value::Null)
}

/// The verify pass: DescribeSubscription and DescribeDRTAccess, read-only, against the claims (the
/// comparison is `drift.rs`). The ledger is global: each resource is verified by its own stack's region.
impl Verifier for ShieldAdvanced {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, inv: &Invocation, setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let (subscription_setting, srt_setting) = settings();
        let (contacts_setting, engagement_setting) = engagement_settings();
        if setting == contacts_setting || setting == engagement_setting {
            return vec![self.check_engagement(inv, setting == engagement_setting, wants).await];
        }
        let (control, expected) = if setting == subscription_setting {
            (drift::SUBSCRIPTION_CONTROL, "an active subscription".to_string())
        } else if setting == srt_setting {
            let Some(role) = wants["role_arn"].as_str() else {
                return vec![ControlCheck::unknown(
                    drift::SRT_ROLE_CONTROL,
                    "the claimed role",
                    "the claim in the ledger is damaged",
                )];
            };
            (drift::SRT_ROLE_CONTROL, role.to_string())
        } else {
            return vec![ControlCheck::unknown(
                setting,
                "a setting this handler names",
                "the ledger names a setting this handler does not know",
            )];
        };
        if let Err(err) = endpoint::available(partition_for_region(&inv.region), &inv.region) {
            return vec![ControlCheck::unknown(control, expected, err)];
        }
        if control == drift::SUBSCRIPTION_CONTROL {
            match subscription::read(&self.shield, inv).await {
                Ok(observed) => vec![drift::subscription(&observed, now_secs())],
                Err(err) => vec![ControlCheck::unknown(control, expected, err)],
            }
        } else {
            match srt::read(&self.shield, inv).await {
                Ok(observed) => vec![drift::srt_role(&expected, observed.as_deref())],
                Err(err) => vec![ControlCheck::unknown(control, expected, err)],
            }
        }
    }
}

impl ShieldAdvanced {
    /// The verify pass's read of proactive engagement (`on`) or of the emergency contacts.
    async fn check_engagement(&self, inv: &Invocation, on: bool, wants: &Value) -> ControlCheck {
        let (control, expected) = if on {
            (drift::PROACTIVE_ENGAGEMENT_CONTROL, "ENABLED".to_string())
        } else {
            (drift::EMERGENCY_CONTACTS_CONTROL, "the claimed contacts".to_string())
        };
        if let Err(err) = endpoint::available(partition_for_region(&inv.region), &inv.region) {
            return ControlCheck::unknown(control, expected, err);
        }
        if on {
            return match subscription::read(&self.shield, inv).await {
                Ok(observed) => drift::proactive_engagement(observed.proactive_engagement.as_deref()),
                Err(err) => ControlCheck::unknown(control, expected, err),
            };
        }
        let Ok(wanted) = serde_json::from_value::<Vec<Contact>>(wants["contacts"].clone()) else {
            return ControlCheck::unknown(control, expected, "the claim in the ledger is damaged");
        };
        match engagement::contacts(&self.shield, inv).await {
            Ok(observed) => drift::emergency_contacts(&wanted, &observed),
            Err(err) => ControlCheck::unknown(control, expected, err),
        }
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

impl CustomResource for ShieldAdvanced {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::ShieldAdvanced";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call (the fault matrix in tests/fault_matrix.rs injects
    /// each fault into each one, and fails on any call not listed here).
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        ("shield", "DescribeSubscription"),
        ("shield", "CreateSubscription"),
        ("shield", "UpdateSubscription"),
        ("shield", "DescribeDRTAccess"),
        ("shield", "AssociateDRTRole"),
        ("shield", "DisassociateDRTRole"),
        ("shield", "DescribeEmergencyContactSettings"),
        ("shield", "UpdateEmergencyContactSettings"),
        ("shield", "AssociateProactiveEngagementDetails"),
        ("shield", "EnableProactiveEngagement"),
        ("shield", "DisableProactiveEngagement"),
        // The ownership ledger.
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let key = inv.request_id.clone();
        self.converge(inv, &key, &props).await
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        let key = Self::key(physical_id)?;
        let mut outcome = self.converge(inv, &key, &props).await?;
        outcome.physical_id = physical_id.to_string();
        Ok(outcome)
    }

    async fn delete(
        &self,
        inv: &Invocation,
        physical_id: &str,
        _props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        let key = Self::key(physical_id)?;
        self.release(inv, &key, false).await
    }

    async fn undo_create(
        &self,
        inv: &Invocation,
        request_id: &str,
        _props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        self.release(inv, request_id, true).await
    }

    /// Read-only: see `impl Verifier` above.
    async fn verify(&self, inv: &Invocation) -> Result<Vec<verify::ResourceReport>, HandlerError> {
        verify::pass(self, inv).await
    }
}
