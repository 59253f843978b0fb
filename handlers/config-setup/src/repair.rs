//! Optional repair (`RepairDrift: true`), for the scheduled verify pass only: what a resource's Update
//! would put back, limited to what a pass can do safely on its own, each change read back.
//!
//! - the recorder: a recorder that stopped recording is started again (StartConfigurationRecorder). A
//!   recorder that is gone, or whose role or recording group changed, is not: replacing it is a stack
//!   Update's work (it may need the delivery channel and Config's order of calls);
//! - each claimed rule: a rule missing, not ACTIVE or changed is put back as claimed (PutConfigRule,
//!   with this resource's owner tag when it is created again);
//! - the delivery channel is not repaired: its bucket and topic are the stack's, a person decides.
//!
//! Whether a repair is made at all (the resource asked for it, it is the setting's only claimant) is
//! decided by the shared pass (`tapguard_shared::verify::repair`).

use serde_json::Value;
use tapguard_shared::{HandlerError, Invocation};

use crate::controls;
use crate::properties::DesiredRule;
use crate::recorder::{self, RecorderWants};
use crate::resource::{channel_setting, recorder_setting, ConfigSetup};
use crate::rules::{self, RuleWants};

impl ConfigSetup {
    /// Puts one claimed setting back; one line per change, or why it is not repaired.
    pub(crate) async fn repair_setting(
        &self,
        inv: &Invocation,
        setting: &str,
        wants: &Value,
    ) -> Result<Vec<String>, HandlerError> {
        let damaged = || HandlerError::Failed("the claim in the ledger is damaged: nothing was changed".into());
        if setting == recorder_setting() {
            let wants: RecorderWants = serde_json::from_value(wants.clone()).map_err(|_| damaged())?;
            return self.repair_recorder(inv, &wants).await;
        }
        if setting == channel_setting() {
            return Err(HandlerError::Failed(
                "a delivery channel is not repaired by the verify pass: put it back with a stack Update".into(),
            ));
        }
        let Some(name) = controls::rule_name_of(setting) else {
            return Err(HandlerError::Failed(format!(
                "{setting} is not a setting this handler claims: nothing was changed"
            )));
        };
        let wants: RuleWants = serde_json::from_value(wants.clone()).map_err(|_| damaged())?;
        self.repair_rule(inv, setting, &name, &wants).await
    }

    /// Starts a stopped recorder again and reads it back recording.
    async fn repair_recorder(&self, inv: &Invocation, wants: &RecorderWants) -> Result<Vec<String>, HandlerError> {
        let Some(current) = recorder::read(&self.config, inv).await? else {
            return Err(HandlerError::Failed(format!(
                "DescribeConfigurationRecorders shows no recorder in {}: a recorder is not created again by the \
                 verify pass; put it back with a stack Update",
                inv.region
            )));
        };
        let name = current.name().unwrap_or_default().to_string();
        let status = recorder::read_status(&self.config, inv, &name).await?;
        let settings_kept = wants.is_met_by(&current);
        let mut changes = Vec::new();
        if !status.as_ref().is_some_and(|s| s.recording()) {
            recorder::start(&self.config, inv, &name).await?;
            inv.step("verifying the restarted recorder");
            let after = recorder::read_status(&self.config, inv, &name).await?;
            if !after.as_ref().is_some_and(|s| s.recording()) {
                return Err(HandlerError::NotVerified(format!(
                    "the recorder {name} is not recording after StartConfigurationRecorder: check for an SCP or \
                     another automation that stops it"
                )));
            }
            changes.push(format!(
                "recorder {name} recording again (StartConfigurationRecorder){}",
                if settings_kept {
                    ""
                } else {
                    "; its changed role or recording group is left as it is: a stack Update puts it back"
                }
            ));
        } else if !settings_kept {
            return Err(HandlerError::Failed(format!(
                "the role or recording group of the recorder {name} changed: not repaired by the verify pass \
                 (a stack Update puts it back)"
            )));
        } else {
            // Recording with the claimed settings: what drifted is its last status (a failed recording),
            // which only fixing its cause (the role's permissions, the bucket) changes.
            return Err(HandlerError::Failed(format!(
                "the recorder {name} records as claimed but its last recording failed: fix the cause (see \
                 Config.RecorderLastStatus); there is nothing to put back"
            )));
        }
        Ok(changes)
    }

    /// Puts a missing, inactive or changed rule back as claimed, then reads it back.
    async fn repair_rule(
        &self,
        inv: &Invocation,
        setting: &str,
        name: &str,
        wants: &RuleWants,
    ) -> Result<Vec<String>, HandlerError> {
        let current = rules::read_one(&self.config, inv, name).await?;
        let present = current.as_ref().filter(|r| !rules::is_deleting(r));
        if let Some(rule) = present.filter(|r| wants.is_met_by(r)) {
            // As claimed, only not ACTIVE (EVALUATING, say): putting it again would change nothing.
            return Err(HandlerError::Failed(format!(
                "the rule {name} is as claimed but reads {}: nothing to put back; the next pass sees where it settles",
                rule.config_rule_state().map_or("", |s| s.as_str())
            )));
        }
        let desired = DesiredRule {
            index: 0,
            name: name.to_string(),
            source_identifier: wants.source_identifier.clone(),
            input_parameters: wants.input_parameters.clone(),
            maximum_execution_frequency: wants.maximum_execution_frequency.clone(),
            scope: wants.scope.clone(),
        };
        // A rule created again carries the owner tag of the resource that claims it (the only claimant:
        // the shared pass repairs nothing else), as its Create would have tagged it.
        let tag = match present {
            Some(_) => None,
            None => self
                .ledger
                .claims(inv, setting)
                .await?
                .first()
                .map(|c| rules::owner_tag_of(rules::owner_token_of(&c.claimant.stack_id, &c.claimant.logical_id))),
        };
        rules::put(&self.config, inv, rules::wanted(&desired), tag, None).await?;
        inv.step("verifying the repaired Config rule");
        let after = rules::read_one(&self.config, inv, name).await?;
        match after {
            Some(rule) if !rules::is_deleting(&rule) && wants.is_met_by(&rule) => {}
            other => {
                return Err(HandlerError::NotVerified(format!(
                    "the rule {name} does not read back as claimed after PutConfigRule ({}): check for another \
                     automation that manages it",
                    controls::rule_check(name, wants, other.as_ref()).observed
                )))
            }
        }
        Ok(vec![match present {
            None => format!("rule {name} created again as claimed (PutConfigRule; it was missing)"),
            Some(_) => format!(
                "rule {name} put back as claimed (PutConfigRule; it read {})",
                controls::rule_check(name, wants, current.as_ref()).observed
            ),
        }])
    }
}
