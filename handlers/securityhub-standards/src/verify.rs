//! The verify pass of Custom::SecurityHubStandards, read-only: each claimed standard READY, each claimed
//! control still disabled, and each control an Update turned back on not disabled again (from the
//! resource's record) unless someone claims it disabled now. The comparisons are in `drift.rs`; what a
//! scheduled pass of a resource with RepairDrift puts back is in `repair.rs`.

use std::collections::BTreeMap;

use serde_json::Value;
use tapguard_shared::verify::{ControlCheck, Verifier};
use tapguard_shared::{HandlerError, Invocation, Ledger, Record};

use crate::claims::{self, Claimed};
use crate::controls::{ControlState, Target};
use crate::drift::{self, ControlRead};
use crate::properties::{standards_arn, Standard};
use crate::resource::{SecurityHubStandards, State};
use crate::standards::Subscription;

/// The hub and its subscriptions as read now.
struct Observed {
    hub_on: bool,
    subscriptions: BTreeMap<String, Subscription>,
}

impl SecurityHubStandards {
    async fn observe(&self, inv: &Invocation) -> Result<Observed, HandlerError> {
        let st = self.standards();
        let hub_on = st.hub_is_on(inv).await?;
        let subscriptions = if hub_on {
            st.subscriptions(inv, None).await?
        } else {
            BTreeMap::new()
        };
        Ok(Observed { hub_on, subscriptions })
    }

    /// One control's state now; `Err` says why it could not be found (a read that failed, or a control
    /// its standard does not list).
    async fn control_state(
        &self,
        inv: &Invocation,
        target: &Target,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<ControlState, String> {
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
            .await
            .map_err(|err| err.to_string())?;
        found
            .into_iter()
            .next()
            .map(|(_, _, state)| state)
            .ok_or_else(|| format!("{} is not among the controls of its standard", target.key()))
    }

    /// Where one control stands now, given the hub and its subscriptions as read.
    async fn read_control(&self, inv: &Invocation, target: &Target, observed: &Observed) -> ControlRead {
        if !observed.hub_on {
            return ControlRead::HubOff;
        }
        if !observed
            .subscriptions
            .get(target.standard_id())
            .is_some_and(Subscription::is_on)
        {
            return ControlRead::NotSubscribed;
        }
        ControlRead::Read(self.control_state(inv, target, &observed.subscriptions).await)
    }
}

/// The control name and expected value of a claimed setting, for an unknown check.
fn named(claimed: &Claimed) -> (String, &'static str) {
    match claimed {
        Claimed::Standard(s) => (drift::standard_control(&s.id), "READY"),
        Claimed::Control(t) => (drift::disabled_control(&t.key()), "DISABLED"),
    }
}

impl Verifier for SecurityHubStandards {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, inv: &Invocation, setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let Some(claimed) = claims::parse(inv, setting) else {
            return vec![ControlCheck::unknown(
                setting,
                "a setting this handler names",
                "the ledger names a setting this handler does not know",
            )];
        };
        let (name, expected) = named(&claimed);
        let asked = match &claimed {
            Claimed::Standard(_) => claims::standard_on(true),
            Claimed::Control(_) => claims::control_off(true),
        };
        if *wants != asked {
            return vec![ControlCheck::unknown(
                &name,
                expected,
                format!("the claim in the ledger asks for {wants}, not {asked}: damaged?"),
            )];
        }
        let observed = match self.observe(inv).await {
            Ok(observed) => observed,
            Err(err) => return vec![ControlCheck::unknown(&name, expected, err)],
        };
        match claimed {
            Claimed::Standard(s) => vec![drift::standard(
                &s.id,
                observed.hub_on,
                observed.subscriptions.get(&s.id),
            )],
            Claimed::Control(target) => {
                let read = self.read_control(inv, &target, &observed).await;
                vec![drift::disabled(&target.key(), read)]
            }
        }
    }

    /// See `repair.rs`: a standard enabled again, a control disabled again.
    async fn repair(
        &self,
        inv: &Invocation,
        setting: &str,
        wants: &Value,
        _drifted: &[ControlCheck],
    ) -> Result<Vec<String>, HandlerError> {
        if !crate::repair::asks_what_it_should(inv, setting, wants) {
            return Err(HandlerError::Failed(
                "the claim in the ledger is damaged: nothing was changed".into(),
            ));
        }
        self.repair_setting(inv, setting).await
    }

    async fn check_record(&self, inv: &Invocation, _key: &str, record: &Record<Value>) -> Vec<ControlCheck> {
        let reenabled = serde_json::from_value::<State>(record.state.clone())
            .map(|s| s.reenabled)
            .unwrap_or_default();
        if reenabled.is_empty() {
            return Vec::new();
        }
        let mut checks = Vec::new();
        let mut observed: Option<Result<Observed, String>> = None;
        for setting in &reenabled {
            let Some(Claimed::Control(target)) = claims::parse(inv, setting) else {
                continue;
            };
            let name = drift::reenabled_control(&target.key());
            // Claimed disabled by someone now (another resource): theirs, not drift of this one.
            match self.ledger.claims(inv, setting).await {
                Ok(claims) if !claims.is_empty() => continue,
                Ok(_) => {}
                Err(err) => {
                    checks.push(ControlCheck::unknown(&name, "ENABLED", err));
                    continue;
                }
            }
            if observed.is_none() {
                observed = Some(self.observe(inv).await.map_err(|err| err.to_string()));
            }
            match observed.as_ref() {
                Some(Ok(observed)) => {
                    let read = self.read_control(inv, &target, observed).await;
                    checks.push(drift::reenabled(&target.key(), read));
                }
                Some(Err(why)) => checks.push(ControlCheck::unknown(&name, "ENABLED", why)),
                None => {}
            }
        }
        checks
    }
}
