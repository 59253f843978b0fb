//! Optional repair: a resource created with `RepairDrift: true` lets its scheduled verify pass put a
//! drifted setting back as its Update would, and say what it changed (the pass's log line and summary,
//! and its `ControlsRepaired` metric; the drift itself stays in that pass's `ControlDrifted` metric and
//! finding, so the alarm still notifies that it happened).
//!
//! A repair is made only when all of these hold:
//! - the pass is a scheduled one ([`repairing_pass`]); `tapguard verify` and [`super::pass`] never repair;
//! - the resource's ledger record says it asked for it ([`remember_repair`] at Create and Update);
//! - a check of the setting is `drifted` (an `unknown` one is never acted on);
//! - the resource is the setting's **only** claimant: with another claim on it, the drift cannot be
//!   attributed to this resource (the other one may be changing it), so it is reported, not repaired.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{run, ControlCheck, ResourceReport, Verdict, Verifier};
use crate::ledger::{Claim, Record};
use crate::{HandlerError, Invocation, Ledger};

/// What a repairing pass did about one drifted setting of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairNote {
    pub setting: String,
    /// Whether something was changed (and read back).
    pub repaired: bool,
    /// What was changed, or why nothing was.
    pub detail: String,
}

/// The scheduled pass: [`super::pass`], then, for each resource whose record asks for it, its drifted
/// settings put back where the drift can be attributed (see the module's rules).
pub async fn repairing_pass<V: Verifier>(verifier: &V, inv: &Invocation) -> Result<Vec<ResourceReport>, HandlerError> {
    run(verifier, inv, true, true).await
}

/// Makes the resource's record say whether it asked for repair (its `RepairDrift` property): called
/// by Create and Update after [`Ledger::begin`], it writes the record only when that changes.
pub async fn remember_repair<T: Serialize + DeserializeOwned>(
    ledger: &Ledger,
    inv: &Invocation,
    key: &str,
    record: &mut Record<T>,
    repair_drift: bool,
) -> Result<(), HandlerError> {
    if record.repair_drift == repair_drift {
        return Ok(());
    }
    record.repair_drift = repair_drift;
    ledger.save(inv, key, record).await
}

/// Repairs one setting when the rules allow; `None` when nothing drifted.
pub(super) async fn attempt<V: Verifier>(
    verifier: &V,
    inv: &Invocation,
    setting: &str,
    own: &Claim,
    claims: &[Claim],
    found: &[ControlCheck],
) -> Option<RepairNote> {
    let drifted: Vec<ControlCheck> = found
        .iter()
        .filter(|c| c.verdict == Verdict::Drifted)
        .cloned()
        .collect();
    if drifted.is_empty() {
        return None;
    }
    let others: Vec<String> = claims
        .iter()
        .filter(|c| c.claimant.key != own.claimant.key)
        .map(|c| c.claimant.to_string())
        .collect();
    let note = |repaired: bool, detail: String| RepairNote {
        setting: setting.to_string(),
        repaired,
        detail,
    };
    if !others.is_empty() {
        let detail = format!(
            "not repaired: also claimed by {}, so the drift cannot be attributed to this resource",
            others.join("; ")
        );
        info!(setting, claimant = %own.claimant, detail, "drift left as it is");
        return Some(note(false, detail));
    }
    match verifier.repair(inv, setting, &own.wants, &drifted).await {
        Ok(changes) if changes.is_empty() => Some(note(
            false,
            "the repair changed nothing (this handler may not repair)".into(),
        )),
        Ok(changes) => {
            let detail = changes.join("; ");
            warn!(setting, claimant = %own.claimant, changed = detail, "drift repaired (RepairDrift)");
            Some(note(true, detail))
        }
        Err(err) => {
            let detail = format!("repair failed: {err}");
            warn!(setting, claimant = %own.claimant, detail, "drift not repaired");
            Some(note(false, detail))
        }
    }
}
