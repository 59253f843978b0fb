//! The account settings this resource claims in the ownership ledger, and what it asks of them:
//! - each standard, `securityhub-standards/standard/<standards ARN>`: wants `{"enabled": true}`, prior
//!   `{"enabled": <was it on>}`;
//! - each disabled control, `securityhub-standards/control/<standards control ARN>` (named by ARN) or
//!   `securityhub-standards/control/<standard id>/<security control id>` (named by ControlId): wants
//!   `{"disabled": true}`, prior `{"disabled": <was it off>}`.
//!
//! Every claimant asks the same of a setting (a standard on, a control off), so claimants never conflict
//! here: the ledger would refuse one asking for another value (a control enabled, say).

use serde_json::{json, Value};
use tapguard_shared::ledger;
use tapguard_shared::Invocation;

use crate::controls::{parse_control_arn, Target};
use crate::properties::{standard_id, standards_arn, Standard};

const NAMESPACE: &str = "securityhub-standards";

pub(crate) fn standard(standard: &Standard) -> String {
    ledger::setting(&[NAMESPACE, "standard", &standard.arn])
}

pub(crate) fn control(target: &Target) -> String {
    match target {
        Target::Arn { arn, .. } => ledger::setting(&[NAMESPACE, "control", arn]),
        Target::Association {
            standard_id,
            security_control_id,
            ..
        } => ledger::setting(&[NAMESPACE, "control", standard_id, security_control_id]),
    }
}

pub(crate) fn standard_on(on: bool) -> Value {
    json!({ "enabled": on })
}

pub(crate) fn control_off(off: bool) -> Value {
    json!({ "disabled": off })
}

/// `Some(true)` when a prior state says the standard was on, `Some(false)` off, `None` unknown.
pub(crate) fn was_on(prior: Option<&Value>) -> Option<bool> {
    prior?.get("enabled")?.as_bool()
}

/// `Some(true)` when a prior state says the control was off, `Some(false)` on, `None` unknown.
pub(crate) fn was_off(prior: Option<&Value>) -> Option<bool> {
    prior?.get("disabled")?.as_bool()
}

/// A setting named by [`standard`] or [`control`], read back from its name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Claimed {
    Standard(Standard),
    Control(Target),
}

pub(crate) fn parse(inv: &Invocation, setting: &str) -> Option<Claimed> {
    let parts: Vec<String> = setting.split('/').map(ledger::decode_segment).collect::<Option<_>>()?;
    match parts.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [NAMESPACE, "standard", arn] => Some(Claimed::Standard(Standard {
            id: standard_id(arn)?.to_string(),
            arn: arn.to_string(),
        })),
        [NAMESPACE, "control", arn] => {
            let (standard_id, control) = parse_control_arn(arn)?;
            Some(Claimed::Control(Target::Arn {
                standard_id,
                arn: arn.to_string(),
                control,
            }))
        }
        [NAMESPACE, "control", standard_id, security_control_id] => Some(Claimed::Control(Target::Association {
            standard_id: standard_id.to_string(),
            standards_arn: standards_arn(&inv.partition, &inv.region, standard_id),
            security_control_id: security_control_id.to_string(),
        })),
        _ => None,
    }
}
