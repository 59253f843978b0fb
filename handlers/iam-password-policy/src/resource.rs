//! Custom::IamPasswordPolicy: sets the account's IAM password policy, never weaker than the properties
//! ask nor than the policy found before, and answers SUCCESS only after reading it back.
//!
//! IAM is global: one policy per account, whatever region a stack is in. Every claimant keeps its claim
//! in the ledger of the partition's global region (`Ledger::global`), so resources in stacks of any
//! region see each other, and only the last one to go puts back the policy found before the first.

use std::time::Duration;

use aws_sdk_iam::Client as Iam;
use serde_json::Value;
use tapguard_shared::ledger::{self, Release};
use tapguard_shared::readback::{self, ReadBack, ReadBackPolicy};
use tapguard_shared::verify::{self, ControlCheck, Verifier};
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::drift;
use crate::policy::{self, AccountPolicy, PasswordPolicy};
use crate::properties::Properties;
use crate::ID_PREFIX;

const HANDLER: &str = "iam-password-policy";

/// The one setting this resource claims: the account's password policy.
pub fn setting() -> String {
    ledger::setting(&["iam-password-policy", "account"])
}

pub struct IamPasswordPolicy {
    iam: Iam,
    ledger: Ledger,
    /// How the policy is read back after a change (IAM is eventually consistent).
    read_back: ReadBackPolicy,
}

/// What a converge produced: the policy read back, what was found before the first claimant, and
/// which fields the prior policy kept stronger than asked.
struct Converged {
    verified: PasswordPolicy,
    prior: Option<AccountPolicy>,
    kept: Vec<&'static str>,
}

impl IamPasswordPolicy {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(Iam::new(config), Ledger::global(config, HANDLER))
    }

    pub fn from_clients(iam: Iam, ledger: Ledger) -> Self {
        IamPasswordPolicy {
            iam,
            ledger,
            read_back: ReadBackPolicy::default(),
        }
    }

    /// The longest wait between read-backs that still disagree (tests use zero).
    pub fn with_verify_pause(mut self, pause: Duration) -> Self {
        self.read_back.base_backoff = pause.min(self.read_back.base_backoff);
        self.read_back.max_backoff = pause;
        self
    }

    fn key(physical_id: &str) -> Result<String, HandlerError> {
        ledger::key_of(ID_PREFIX, physical_id).ok_or_else(|| {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues: its prior policy cannot be found"
            ))
        })
    }

    /// The policy the claimants set: what they ask, raised wherever the prior policy was stronger. With
    /// the prior unknown (the ledger was lost), the policy in place now stands in for it, so nothing
    /// is ever weakened on a guess.
    fn effective(
        wants: &PasswordPolicy,
        prior: Option<&AccountPolicy>,
        current: Option<&PasswordPolicy>,
    ) -> PasswordPolicy {
        let floor = match prior {
            Some(found) => found.policy.as_ref(),
            None => current,
        };
        floor.map_or_else(|| wants.clone(), |p| wants.stronger(p))
    }

    /// Claims the account's policy for `key`, sets what the claimants ask (merged with the prior
    /// policy) and reads it back. `adopt` is true on Create: the policy found now is the prior state
    /// unless an earlier claimant already recorded one.
    async fn converge(
        &self,
        inv: &Invocation,
        key: &str,
        props: &Properties,
        adopt: bool,
    ) -> Result<Converged, HandlerError> {
        let wants = props.requested()?;
        let current = policy::read(&self.iam, inv).await?;
        let observed = adopt.then(|| to_value(&AccountPolicy::of(current.clone())));
        let mut record = self.ledger.begin(inv, key, &[setting()], ()).await?;
        verify::remember_repair(&self.ledger, inv, key, &mut record, props.repair_drift).await?;
        let claim = self
            .ledger
            .claim(inv, key, &setting(), to_value(&wants), observed)
            .await?;
        let prior: Option<AccountPolicy> = claim.prior.and_then(|p| serde_json::from_value(p).ok());
        let target = Self::effective(&wants, prior.as_ref(), current.as_ref());
        let kept = target.stronger_fields(&wants);
        if !kept.is_empty() {
            info!(
                fields = kept.join(","),
                "the policy found before was stronger than asked in these fields: kept"
            );
        }
        if current.as_ref() != Some(&target) {
            policy::set(&self.iam, inv, &target).await?;
        }
        inv.step("verifying the account password policy");
        let verified = self.read_back(inv, Some(&target)).await?.unwrap_or(target);
        Ok(Converged { verified, prior, kept })
    }

    /// Reads the policy until it is `expected`: IAM is eventually consistent, so a read right after
    /// a change may still show the policy before it. The reads are bounded, with backoff, within the
    /// deadline (`tapguard_shared::readback`); then NotVerified naming each field that still differs.
    async fn read_back(
        &self,
        inv: &Invocation,
        expected: Option<&PasswordPolicy>,
    ) -> Result<Option<PasswordPolicy>, HandlerError> {
        let seen = readback::read_back(
            inv,
            &self.read_back,
            "GetAccountPasswordPolicy",
            || policy::read(&self.iam, inv),
            |after| after.as_ref() == expected,
        )
        .await?;
        let (after, reads) = match seen {
            ReadBack::Settled { value, .. } => return Ok(value),
            ReadBack::Stale { value, reads } => (value, reads),
        };
        let problem = match (&after, expected) {
            (None, Some(_)) => "GetAccountPasswordPolicy answers NoSuchEntity: the account has no policy".into(),
            (Some(_), None) => {
                "GetAccountPasswordPolicy still answers a policy after DeleteAccountPasswordPolicy".into()
            }
            (Some(a), Some(e)) => format!("GetAccountPasswordPolicy answers {}", a.differences(e).join(", ")),
            (None, None) => unreachable!("equal"),
        };
        Err(HandlerError::NotVerified(format!(
            "{problem} after {reads} reads (IAM is eventually consistent, and the reads were repeated with \
             backoff): check for an SCP or another automation that manages the account's password policy, \
             then retry the stack operation"
        )))
    }

    fn outcome(physical_id: String, converged: &Converged) -> Outcome {
        let p = &converged.verified;
        Outcome::new(physical_id)
            .with("MinimumPasswordLength", p.minimum_password_length)
            .with("RequireSymbols", p.require_symbols)
            .with("RequireNumbers", p.require_numbers)
            .with("RequireUppercaseCharacters", p.require_uppercase_characters)
            .with("RequireLowercaseCharacters", p.require_lowercase_characters)
            .with("AllowUsersToChangePassword", p.allow_users_to_change_password)
            .with("MaxPasswordAge", p.max_password_age)
            .with("PasswordReusePrevention", p.password_reuse_prevention)
            .with("HardExpiry", p.hard_expiry)
            .with(
                "PreviousPolicy",
                match &converged.prior {
                    None => "unknown",
                    Some(found) if found.exists => "adopted",
                    Some(_) => "none",
                },
            )
            .with("KeptFromPreviousPolicy", converged.kept.join(","))
    }

    /// Gives up this resource's claim; the last claimant puts back the policy found before the first.
    /// The claim is dropped only after the restore is read back, so a Delete that fails half-way (and is
    /// retried) still finds the prior policy in the ledger.
    async fn release(&self, inv: &Invocation, key: &str, undoing_create: bool) -> Result<(), HandlerError> {
        let claimed = match self.ledger.pending_release(inv, key, &setting()).await? {
            Release::StillClaimed(_) => true,
            Release::Last { prior, wants } => {
                let prior = prior.and_then(|p| serde_json::from_value::<AccountPolicy>(p).ok());
                match serde_json::from_value::<PasswordPolicy>(wants) {
                    Ok(wants) => self.restore(inv, prior, &wants).await?,
                    Err(err) => {
                        warn!(error = %err, "the ledger's claim is damaged: the password policy is left as it is")
                    }
                }
                true
            }
            Release::Unclaimed if undoing_create => {
                info!("the failed Create had claimed nothing: nothing to undo");
                false
            }
            Release::Unclaimed => {
                warn!(
                    parameter = self.ledger.record_name(key),
                    "the ledger holds no claim of this resource (deleted by someone?): the policy found before is \
                     unknown, so the account's password policy is left as it is"
                );
                false
            }
        };
        if claimed {
            self.ledger.drop_claim(inv, key, &setting()).await?;
        }
        self.ledger.forget(inv, key).await
    }

    /// Puts back `prior` where the account still holds what the claimants set; a policy someone changed
    /// since is theirs and stays. What is restored is read back.
    async fn restore(
        &self,
        inv: &Invocation,
        prior: Option<AccountPolicy>,
        wants: &PasswordPolicy,
    ) -> Result<(), HandlerError> {
        let Some(prior) = prior else {
            warn!("the password policy found before the first claimant is unknown: left as it is");
            return Ok(());
        };
        let current = policy::read(&self.iam, inv).await?;
        if current == prior.policy {
            info!("the password policy is already the one found before the first claimant: nothing to restore");
            return Ok(());
        }
        let ours = Self::effective(wants, Some(&prior), None);
        match &current {
            None => {
                info!("the account has no password policy any more (removed by someone since): nothing to restore");
                return Ok(());
            }
            Some(current) if *current != ours => {
                info!(
                    changed = current.differences(&ours).join(", "),
                    "the password policy was changed by someone since this resource set it: left as it is"
                );
                return Ok(());
            }
            Some(_) => {}
        }
        match &prior.policy {
            None => {
                info!("no password policy existed before: deleting the one the claimants set");
                policy::delete(&self.iam, inv).await?;
            }
            Some(previous) => {
                info!(
                    restoring = previous.differences(&ours).join(", "),
                    "putting back the password policy found before"
                );
                policy::set(&self.iam, inv, previous).await?;
            }
        }
        inv.step("verifying the restored account password policy");
        self.read_back(inv, prior.policy.as_ref()).await?;
        Ok(())
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The verify pass: GetAccountPasswordPolicy, read-only, against the claim's `wants` by strength (the
/// comparison is `drift.rs`), and the repair of a resource with RepairDrift. The ledger is global: each resource is verified by its own stack's region.
impl Verifier for IamPasswordPolicy {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, inv: &Invocation, _setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let Ok(wants) = serde_json::from_value::<PasswordPolicy>(wants.clone()) else {
            return drift::unknown(None, "the claim in the ledger is damaged");
        };
        match policy::read(&self.iam, inv).await {
            Ok(current) => drift::policy(&wants, current.as_ref()),
            Err(err) => drift::unknown(Some(&wants), &err.to_string()),
        }
    }

    /// Raises the account's policy back to what the claim asks, field by field the stronger of the two
    /// (a field someone made stronger since stays so), then reads it back. The claim's `wants` is what
    /// the verify pass compares with, so a repaired policy holds on the next pass.
    async fn repair(
        &self,
        inv: &Invocation,
        _setting: &str,
        wants: &Value,
        _drifted: &[ControlCheck],
    ) -> Result<Vec<String>, HandlerError> {
        let wants = serde_json::from_value::<PasswordPolicy>(wants.clone())
            .map_err(|_| HandlerError::Failed("the claim in the ledger is damaged: nothing was changed".into()))?;
        let current = policy::read(&self.iam, inv).await?;
        let target = current.as_ref().map_or_else(|| wants.clone(), |c| wants.stronger(c));
        if current.as_ref() == Some(&target) {
            return Ok(Vec::new());
        }
        policy::set(&self.iam, inv, &target).await?;
        inv.step("verifying the repaired account password policy");
        self.read_back(inv, Some(&target)).await?;
        Ok(vec![match &current {
            None => {
                "password policy set again as requested (UpdateAccountPasswordPolicy; the account had none)".to_string()
            }
            Some(current) => format!(
                "password policy raised back to what was requested (UpdateAccountPasswordPolicy): {}",
                target.differences(current).join(", ")
            ),
        }])
    }
}

impl CustomResource for IamPasswordPolicy {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::IamPasswordPolicy";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call (the fault matrix in tests/fault_matrix.rs injects
    /// each fault into each one, and fails on any call not listed here).
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        ("iam", "GetAccountPasswordPolicy"),
        ("iam", "UpdateAccountPasswordPolicy"),
        ("iam", "DeleteAccountPasswordPolicy"),
        // The ownership ledger (in the partition's IAM region).
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let key = inv.request_id.clone();
        let converged = self.converge(inv, &key, &props, true).await?;
        Ok(Self::outcome(
            ledger::physical_id(ID_PREFIX, &inv.region, &key),
            &converged,
        ))
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        let key = Self::key(physical_id)?;
        let converged = self.converge(inv, &key, &props, false).await?;
        Ok(Self::outcome(physical_id.to_string(), &converged))
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

    /// See `impl Verifier` above: repairs only what resources with RepairDrift ask for.
    async fn verify(&self, inv: &Invocation) -> Result<Vec<verify::ResourceReport>, HandlerError> {
        verify::repairing_pass(self, inv).await
    }
}
