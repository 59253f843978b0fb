//! The verify pass: read-only, it re-reads every setting a resource claims in the ownership ledger and
//! reports each control as held, drifted or unknown (with the reason), so that a baseline proves every
//! day that it still holds — what CloudFormation's drift detection cannot see for account settings.
//!
//! A handler implements [`Verifier`] (its ledger, and how to observe one claimed setting); the runtime
//! runs [`pass`] for a `{"tapguard": "verify"}` event and [`publish`] sends the outcome to CloudWatch and
//! Security Hub; `tapguard verify` runs the same [`pass`] with the deployer's credentials.
//!
//! A handler that can put a drifted setting back also implements [`Verifier::repair`] and serves its
//! scheduled pass with [`repairing_pass`]: see [`repair`] for when a repair is made.

mod event;
mod publish;
pub mod repair;

use std::future::Future;

use serde::Serialize;
use serde_json::Value;

pub use event::is_verify_event;
pub(crate) use event::serve;
pub use publish::{Published, Publisher};
pub use repair::{remember_repair, repairing_pass, RepairNote};

use crate::{HandlerError, Invocation, Ledger, Record};

/// The event that asks a function for a verify pass (an EventBridge rule's `Input`).
pub const VERIFY_EVENT_KEY: &str = "tapguard";
pub const VERIFY_EVENT_VALUE: &str = "verify";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Held,
    Drifted,
    /// The state could not be read (denied, unreachable, claim missing): never reported as held.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Drifted => "drifted",
            Verdict::Unknown => "unknown",
        }
    }
}

/// One control of one resource, as observed now against what the resource claims.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlCheck {
    /// A stable name, e.g. `EBS.EncryptionByDefault`.
    pub control: String,
    pub verdict: Verdict,
    pub expected: String,
    pub observed: String,
}

impl ControlCheck {
    /// `held` when `observed` satisfies the claim, else `drifted`.
    pub fn compare(control: &str, held: bool, expected: impl ToString, observed: impl ToString) -> Self {
        ControlCheck {
            control: control.to_string(),
            verdict: if held { Verdict::Held } else { Verdict::Drifted },
            expected: expected.to_string(),
            observed: observed.to_string(),
        }
    }

    /// A control whose state could not be read; `why` says what stopped it.
    pub fn unknown(control: &str, expected: impl ToString, why: impl ToString) -> Self {
        ControlCheck {
            control: control.to_string(),
            verdict: Verdict::Unknown,
            expected: expected.to_string(),
            observed: why.to_string(),
        }
    }
}

/// Every control of one resource instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceReport {
    pub handler: String,
    pub stack_id: String,
    pub logical_id: String,
    pub key: String,
    pub region: String,
    pub checks: Vec<ControlCheck>,
    /// What a [`repairing_pass`] did about this resource's drift (empty for a read-only [`pass`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<RepairNote>,
}

impl ResourceReport {
    pub fn drifted(&self) -> usize {
        self.checks.iter().filter(|c| c.verdict == Verdict::Drifted).count()
    }
}

/// What a handler provides to be verified.
pub trait Verifier: Send + Sync {
    fn ledger(&self) -> &Ledger;

    /// Observes one setting this resource claims, asking for `wants` (the claim's value), read-only.
    /// A read that fails is a [`Verdict::Unknown`] check, not an error.
    fn check(&self, inv: &Invocation, setting: &str, wants: &Value) -> impl Future<Output = Vec<ControlCheck>> + Send;

    /// Puts one claimed setting back to `wants` (the claim's value) as the resource's Update would,
    /// reads it back, and returns what it changed, one line per change (an empty list: nothing to do).
    /// `drifted` are the checks of this setting that [`Verifier::check`] found drifted. Called only by
    /// a [`repairing_pass`], only when the resource asked for it and is the setting's only claimant.
    /// The default repairs nothing, for handlers that do not (yet) repair.
    fn repair(
        &self,
        _inv: &Invocation,
        _setting: &str,
        _wants: &Value,
        _drifted: &[ControlCheck],
    ) -> impl Future<Output = Result<Vec<String>, HandlerError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Checks of what the resource's own record keeps besides its claims (for instance a setting it put
    /// back that must stay put back), after its claimed settings; none by default. Read-only too.
    fn check_record(
        &self,
        _inv: &Invocation,
        _key: &str,
        _record: &Record<Value>,
    ) -> impl Future<Output = Vec<ControlCheck>> + Send {
        async { Vec::new() }
    }
}

/// Verifies every resource this handler has in the ledger of `inv`'s account and region, read-only.
/// A global ledger ([`Ledger::global`]) holds the records of stacks in every region: each is verified
/// in its own stack's region (`record.region`), so by its own function, once. (`tapguard verify`,
/// which verifies an account's global ledger once for all its regions, uses [`pass_every_region`].)
pub async fn pass<V: Verifier>(verifier: &V, inv: &Invocation) -> Result<Vec<ResourceReport>, HandlerError> {
    run(verifier, inv, false, true).await
}

/// [`pass`] over every record of the ledger, whichever region its stack is in, read-only.
pub async fn pass_every_region<V: Verifier>(
    verifier: &V,
    inv: &Invocation,
) -> Result<Vec<ResourceReport>, HandlerError> {
    run(verifier, inv, false, false).await
}

/// The pass; with `repairing`, drifted settings of resources that asked for it are put back.
async fn run<V: Verifier>(
    verifier: &V,
    inv: &Invocation,
    repairing: bool,
    own_region_only: bool,
) -> Result<Vec<ResourceReport>, HandlerError> {
    let ledger = verifier.ledger();
    let mut reports = Vec::new();
    for (key, record) in ledger.records(inv).await? {
        if own_region_only && !record.region.is_empty() && record.region != inv.region {
            continue;
        }
        let mut checks = Vec::new();
        let mut repairs = Vec::new();
        for setting in &record.settings {
            let claims = ledger.claims(inv, setting).await?;
            match claims.iter().find(|c| c.claimant.key == key) {
                Some(claim) => {
                    let found = verifier.check(inv, setting, &claim.wants).await;
                    if repairing && record.repair_drift {
                        if let Some(note) = repair::attempt(verifier, inv, setting, claim, &claims, &found).await {
                            repairs.push(note);
                        }
                    }
                    checks.extend(found);
                }
                None => checks.push(ControlCheck::unknown(
                    setting,
                    "a claim in the ownership ledger",
                    "the claim is missing from the ledger (deleted by someone?)",
                )),
            }
        }
        checks.extend(verifier.check_record(inv, &key, &record).await);
        if checks.is_empty() {
            // A record that claims nothing (bookkeeping, such as a resume point): nothing to verify.
            continue;
        }
        reports.push(ResourceReport {
            handler: record.handler,
            stack_id: record.stack_id,
            logical_id: record.logical_id,
            key,
            region: record.region,
            checks,
            repairs,
        });
    }
    Ok(reports)
}

/// The pass's outcome as the function returns it and logs it.
pub fn summary(reports: &[ResourceReport]) -> Value {
    let drifted: usize = reports.iter().map(ResourceReport::drifted).sum();
    let unknown: usize = reports
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| c.verdict == Verdict::Unknown)
        .count();
    let repaired = reports.iter().flat_map(|r| &r.repairs).filter(|n| n.repaired).count();
    serde_json::json!({
        "resources": reports.len(),
        "controls": reports.iter().map(|r| r.checks.len()).sum::<usize>(),
        "drifted": drifted,
        "unknown": unknown,
        "repaired": repaired,
        "reports": reports,
    })
}

#[cfg(test)]
mod tests;
