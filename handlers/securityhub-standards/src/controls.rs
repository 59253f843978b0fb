//! `DisabledControls`: controls of the requested standards turned off with a reason, and read back.
//!
//! A control is named either by its standards control ARN (one control of one standard, changed with
//! UpdateStandardsControl) or by its security control id (`IAM.1`: that control in every requested standard
//! that has it, changed with BatchUpdateStandardsControlAssociations, as consolidated controls are).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_securityhub::types::{
    AssociationStatus, ControlStatus, StandardsControlAssociationId, StandardsControlAssociationUpdate,
};
use aws_sdk_securityhub::Client as SecurityHub;
use serde::Deserialize;
use tapguard_shared::{HandlerError, Invocation};

use crate::properties::Standard;
use crate::standards::Subscription;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DisabledControl {
    #[serde(default)]
    pub standards_control_arn: Option<String>,
    #[serde(default)]
    pub control_id: Option<String>,
    pub reason: String,
}

/// One control of one standard that the properties ask to be off.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// By standards control ARN.
    Arn {
        standard_id: String,
        arn: String,
        control: String,
    },
    /// By security control id, in one standard.
    Association {
        standard_id: String,
        standards_arn: String,
        security_control_id: String,
    },
}

impl Target {
    pub fn standard_id(&self) -> &str {
        match self {
            Target::Arn { standard_id, .. } | Target::Association { standard_id, .. } => standard_id,
        }
    }

    /// The entry of DisabledControls that names this target alone (for reading it back).
    pub fn entry(&self) -> DisabledControl {
        match self {
            Target::Arn { arn, .. } => DisabledControl {
                standards_control_arn: Some(arn.clone()),
                control_id: None,
                reason: String::new(),
            },
            Target::Association {
                security_control_id, ..
            } => DisabledControl {
                standards_control_arn: None,
                control_id: Some(security_control_id.clone()),
                reason: String::new(),
            },
        }
    }

    /// `<standard id>#<control>`: how ownership and Data name it.
    pub fn key(&self) -> String {
        match self {
            Target::Arn {
                standard_id, control, ..
            } => format!("{standard_id}#{control}"),
            Target::Association {
                standard_id,
                security_control_id,
                ..
            } => format!("{standard_id}#{security_control_id}"),
        }
    }
}

/// `(standard id, control id)` of `arn:<p>:securityhub:<region>:<account>:control/<name>/v/<version>/<control>`.
pub fn parse_control_arn(arn: &str) -> Option<(String, String)> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let rest = resource.strip_prefix("control/")?;
    let parts: Vec<&str> = rest.splitn(4, '/').collect();
    match parts[..] {
        [name, "v", version, control] if !control.is_empty() => {
            Some((format!("{name}/v/{version}"), control.to_string()))
        }
        _ => None,
    }
}

fn invalid(index: usize, problem: String) -> HandlerError {
    HandlerError::InvalidProperty {
        property: format!("DisabledControls[{index}]"),
        problem,
    }
}

/// Checks the shape of each entry before anything changes.
pub fn check(controls: &[DisabledControl], standards: &[Standard]) -> Result<(), HandlerError> {
    for (index, control) in controls.iter().enumerate() {
        if control.reason.trim().is_empty() {
            return Err(invalid(
                index,
                "Reason is required: Security Hub keeps it with the disabled control".into(),
            ));
        }
        match (&control.standards_control_arn, &control.control_id) {
            (Some(arn), None) => {
                let (standard_id, _) = parse_control_arn(arn)
                    .ok_or_else(|| invalid(index, format!("{arn:?} is not a standards control ARN")))?;
                if !standards.iter().any(|s| s.id == standard_id) {
                    return Err(invalid(
                        index,
                        format!("{arn} is a control of {standard_id}, which is not in Standards"),
                    ));
                }
            }
            (None, Some(id)) if !id.trim().is_empty() => {}
            _ => {
                return Err(invalid(
                    index,
                    "give exactly one of StandardsControlArn and ControlId".into(),
                ))
            }
        }
    }
    Ok(())
}

/// A target's state as read now: off or not, and the reason Security Hub keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlState {
    pub disabled: bool,
    pub reason: Option<String>,
}

pub struct Controls<'a> {
    pub securityhub: &'a SecurityHub,
}

impl Controls<'_> {
    /// Resolves the entries against the subscribed standards and reads each target's state.
    /// `subscriptions` are by standard id. Entries are returned with their reason.
    pub async fn read(
        &self,
        inv: &Invocation,
        controls: &[DisabledControl],
        standards: &[Standard],
        subscriptions: &BTreeMap<String, Subscription>,
        strict: bool,
    ) -> Result<Vec<(Target, String, ControlState)>, HandlerError> {
        let mut out = Vec::new();
        // By ARN: DescribeStandardsControls of each standard concerned.
        let mut described: BTreeMap<String, BTreeMap<String, ControlState>> = BTreeMap::new();
        for (index, control) in controls.iter().enumerate() {
            let Some(arn) = &control.standards_control_arn else {
                continue;
            };
            let (standard_id, control_id) = parse_control_arn(arn)
                .ok_or_else(|| invalid(index, format!("{arn:?} is not a standards control ARN")))?;
            if !described.contains_key(&standard_id) {
                let subscription = subscriptions.get(&standard_id).ok_or_else(|| {
                    HandlerError::NotVerified(format!("{standard_id} is not subscribed: its controls cannot be read"))
                })?;
                described.insert(standard_id.clone(), self.describe(inv, &subscription.arn).await?);
            }
            let state = described[&standard_id].get(arn.as_str()).cloned().ok_or_else(|| {
                invalid(
                    index,
                    format!("{arn}: DescribeStandardsControls does not list it for {standard_id}"),
                )
            })?;
            out.push((
                Target::Arn {
                    standard_id,
                    arn: arn.clone(),
                    control: control_id,
                },
                control.reason.clone(),
                state,
            ));
        }
        // By security control id: one BatchGetStandardsControlAssociations for every (standard, control).
        let mut wanted = Vec::new();
        for control in controls {
            if let Some(id) = &control.control_id {
                for standard in standards {
                    wanted.push((standard, id.trim().to_string(), control.reason.clone()));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(out);
        }
        let mut found: BTreeMap<(String, String), ControlState> = BTreeMap::new();
        // (standards ARN, control id) -> "ERROR_CODE: reason", as UnprocessedAssociations answers them.
        let mut unprocessed: BTreeMap<(String, String), String> = BTreeMap::new();
        for chunk in wanted.chunks(50) {
            let ids = chunk
                .iter()
                .map(|(standard, id, _)| {
                    StandardsControlAssociationId::builder()
                        .standards_arn(&standard.arn)
                        .security_control_id(id)
                        .build()
                })
                .collect::<Vec<_>>();
            let answer = inv
                .aws(
                    "securityhub",
                    "BatchGetStandardsControlAssociations",
                    self.securityhub
                        .batch_get_standards_control_associations()
                        .set_standards_control_association_ids(Some(ids))
                        .send(),
                )
                .await?;
            for refused in answer.unprocessed_associations() {
                let id = refused.standards_control_association_id();
                unprocessed.insert(
                    (
                        id.and_then(|i| i.standards_arn()).unwrap_or_default().to_string(),
                        id.and_then(|i| i.security_control_id()).unwrap_or_default().to_string(),
                    ),
                    format!(
                        "{}: {}",
                        refused.error_code().map(|c| c.as_str()).unwrap_or("unknown"),
                        refused.error_reason().unwrap_or_default()
                    ),
                );
            }
            for detail in answer.standards_control_association_details() {
                let (Some(standards_arn), Some(id)) = (detail.standards_arn(), detail.security_control_id()) else {
                    continue;
                };
                found.insert(
                    (standards_arn.to_string(), id.to_string()),
                    ControlState {
                        disabled: detail.association_status() == Some(&AssociationStatus::Disabled),
                        reason: detail.updated_reason().map(str::to_string),
                    },
                );
            }
        }
        for (index, control) in controls.iter().enumerate() {
            let Some(id) = &control.control_id else { continue };
            let id = id.trim();
            let mut any = false;
            for standard in standards {
                if let Some(state) = found.get(&(standard.arn.clone(), id.to_string())) {
                    any = true;
                    out.push((
                        Target::Association {
                            standard_id: standard.id.clone(),
                            standards_arn: standard.arn.clone(),
                            security_control_id: id.to_string(),
                        },
                        control.reason.clone(),
                        state.clone(),
                    ));
                }
            }
            if !any && strict {
                let answers: Vec<String> = standards
                    .iter()
                    .filter_map(|s| {
                        unprocessed
                            .get(&(s.arn.clone(), id.to_string()))
                            .map(|u| format!("{}: {u}", s.id))
                    })
                    .collect();
                // Not found while a standard's controls are not updatable yet is not the property's fault.
                let not_ready: Vec<&str> = standards
                    .iter()
                    .filter(|s| subscriptions.get(&s.id).is_some_and(|sub| !sub.controls_ready()))
                    .map(|s| s.id.as_str())
                    .collect();
                if !not_ready.is_empty() {
                    return Err(HandlerError::Failed(format!(
                        "BatchGetStandardsControlAssociations does not find {id} while the controls of {} are \
                         NOT_READY_FOR_UPDATES ({}): retry the stack operation later",
                        not_ready.join(", "),
                        answers.join("; ")
                    )));
                }
                return Err(invalid(
                    index,
                    format!(
                        "ControlId {id} is a control of none of the Standards{}",
                        if answers.is_empty() {
                            String::new()
                        } else {
                            format!(" (UnprocessedAssociations: {})", answers.join("; "))
                        }
                    ),
                ));
            }
        }
        Ok(out)
    }

    async fn describe(
        &self,
        inv: &Invocation,
        subscription_arn: &str,
    ) -> Result<BTreeMap<String, ControlState>, HandlerError> {
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = inv
                .aws(
                    "securityhub",
                    "DescribeStandardsControls",
                    self.securityhub
                        .describe_standards_controls()
                        .standards_subscription_arn(subscription_arn)
                        .set_next_token(token.clone())
                        .send(),
                )
                .await?;
            for control in page.controls() {
                if let Some(arn) = control.standards_control_arn() {
                    out.insert(
                        arn.to_string(),
                        ControlState {
                            disabled: control.control_status() == Some(&ControlStatus::Disabled),
                            reason: control.disabled_reason().map(str::to_string),
                        },
                    );
                }
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Turns the targets off (`disable`) or back on, each with its reason.
    pub async fn set(&self, inv: &Invocation, targets: &[(&Target, &str)], disable: bool) -> Result<(), HandlerError> {
        let mut updates = Vec::new();
        for (target, reason) in targets {
            match target {
                Target::Arn { arn, .. } => {
                    let request = self
                        .securityhub
                        .update_standards_control()
                        .standards_control_arn(arn)
                        .control_status(if disable {
                            ControlStatus::Disabled
                        } else {
                            ControlStatus::Enabled
                        });
                    let request = if disable {
                        request.disabled_reason(*reason)
                    } else {
                        request
                    };
                    inv.aws("securityhub", "UpdateStandardsControl", request.send()).await?;
                }
                Target::Association {
                    standards_arn,
                    security_control_id,
                    ..
                } => {
                    let update = StandardsControlAssociationUpdate::builder()
                        .standards_arn(standards_arn)
                        .security_control_id(security_control_id)
                        .association_status(if disable {
                            AssociationStatus::Disabled
                        } else {
                            AssociationStatus::Enabled
                        });
                    let update = if disable {
                        update.updated_reason(*reason)
                    } else {
                        update
                    };
                    updates.push(update.build());
                }
            }
        }
        for chunk in updates.chunks(50) {
            let answer = inv
                .aws(
                    "securityhub",
                    "BatchUpdateStandardsControlAssociations",
                    self.securityhub
                        .batch_update_standards_control_associations()
                        .set_standards_control_association_updates(Some(chunk.to_vec()))
                        .send(),
                )
                .await?;
            if let Some(refused) = answer.unprocessed_association_updates().first() {
                let update = refused.standards_control_association_update();
                return Err(HandlerError::Failed(format!(
                    "BatchUpdateStandardsControlAssociations did not update {} in {}: {}: {} (correct DisabledControls, \
                     or look at the control in the Security Hub console)",
                    update.and_then(|u| u.security_control_id()).unwrap_or_default(),
                    update.and_then(|u| u.standards_arn()).unwrap_or_default(),
                    refused.error_code().map(|c| c.as_str()).unwrap_or("unknown"),
                    refused.error_reason().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

/// The keys of targets, for the physical id and Data.
pub fn keys<'a>(targets: impl Iterator<Item = &'a Target>) -> BTreeSet<String> {
    targets.map(Target::key).collect()
}
