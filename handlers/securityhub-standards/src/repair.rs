//! Optional repair (`RepairDrift: true`), for the scheduled verify pass only, as the resource's Update
//! would put things back, each change read back:
//! - a claimed standard that is no longer subscribed is enabled again (BatchEnableStandards) and waited
//!   for until READY (with its controls updatable); one INCOMPLETE or FAILED is not something enabling
//!   changes, so it is reported, not touched;
//! - a claimed control that reads enabled again is disabled again (with the reason [`REPAIR_REASON`]),
//!   once its standard is on.
//!
//! With Security Hub itself off, nothing is repaired here: the hub is Custom::SecurityHubEnable's.
//! Whether a repair is made at all (the resource asked for it, it is the setting's only claimant) is
//! decided by the shared pass (`tapguard_shared::verify::repair`).

use std::collections::BTreeMap;

use serde_json::Value;
use tapguard_shared::{HandlerError, Invocation};

use crate::claims::{self, Claimed};
use crate::controls::Target;
use crate::properties::Standard;
use crate::resource::SecurityHubStandards;
use crate::standards::Subscription;

/// The DisabledReason of a control a repair disables again. The reason the properties gave is not in
/// the ledger: a record holds 4 KB, and a resource may disable many controls with long reasons.
const REPAIR_REASON: &str = "disabled again by the tapguard verify pass (RepairDrift)";

impl SecurityHubStandards {
    /// Puts one claimed setting back; one line per change, or why it is not repaired.
    pub(crate) async fn repair_setting(&self, inv: &Invocation, setting: &str) -> Result<Vec<String>, HandlerError> {
        let Some(claimed) = claims::parse(inv, setting) else {
            return Err(HandlerError::Failed(format!(
                "{setting} is not a setting this handler names: nothing was changed"
            )));
        };
        let st = self.standards();
        if !st.hub_is_on(inv).await? {
            return Err(HandlerError::Failed(format!(
                "Security Hub is off in {}/{}: standards and controls are not repaired without it (the hub is \
                 Custom::SecurityHubEnable's to put back)",
                inv.account_id, inv.region
            )));
        }
        let subscriptions = st.subscriptions(inv, None).await?;
        match claimed {
            Claimed::Standard(standard) => self.repair_standard(inv, &standard, &subscriptions).await,
            Claimed::Control(target) => self.repair_control(inv, &target, &subscriptions).await,
        }
    }

    async fn repair_standard(
        &self,
        inv: &Invocation,
        standard: &Standard,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<Vec<String>, HandlerError> {
        let st = self.standards();
        if let Some(current) = subscriptions.get(&standard.id).filter(|s| s.is_on()) {
            return Err(HandlerError::Failed(format!(
                "standard {} is subscribed but {}: enabling it again changes nothing ({})",
                standard.id,
                current.status,
                crate::standards::advice_for_reason(current.reason.as_deref())
            )));
        }
        let enabled = st.enable(inv, standard).await?;
        let (wait, note) = st.wait_budget(inv, None);
        st.wait_ready(
            inv,
            std::slice::from_ref(standard),
            std::slice::from_ref(&enabled.arn),
            wait,
            note.as_deref(),
            true,
        )
        .await?;
        Ok(vec![format!(
            "standard {} enabled again and READY (BatchEnableStandards; it was {})",
            standard.id,
            subscriptions
                .get(&standard.id)
                .map_or("not subscribed", |s| s.status.as_str())
        )])
    }

    async fn repair_control(
        &self,
        inv: &Invocation,
        target: &Target,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<Vec<String>, HandlerError> {
        if !subscriptions.get(target.standard_id()).is_some_and(Subscription::is_on) {
            return Err(HandlerError::Failed(format!(
                "the standard {} of control {} is not subscribed: the control is disabled again once its standard \
                 is back (a repair of the standard, or a stack Update)",
                target.standard_id(),
                target.key()
            )));
        }
        if self.read_one(inv, target, subscriptions).await? {
            return Ok(Vec::new());
        }
        self.controls().set(inv, &[(target, REPAIR_REASON)], true).await?;
        inv.step("verifying the control is disabled again");
        if !self.read_one(inv, target, subscriptions).await? {
            return Err(HandlerError::NotVerified(format!(
                "control {} still reads enabled in {}/{} after it was disabled again: check for another automation \
                 or a configuration policy that enables it",
                target.key(),
                inv.account_id,
                inv.region
            )));
        }
        Ok(vec![format!(
            "control {} disabled again (reason: {REPAIR_REASON}; it read ENABLED)",
            target.key()
        )])
    }
}

/// The claim's value is what every claimant asks (a standard on, a control off): checked by the caller.
pub(crate) fn asks_what_it_should(inv: &Invocation, setting: &str, wants: &Value) -> bool {
    match claims::parse(inv, setting) {
        Some(Claimed::Standard(_)) => *wants == claims::standard_on(true),
        Some(Claimed::Control(_)) => *wants == claims::control_off(true),
        None => false,
    }
}
