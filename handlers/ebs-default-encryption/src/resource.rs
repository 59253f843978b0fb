//! Custom::EbsDefaultEncryption: turns on EBS encryption by default in the region with the requested
//! KMS key, and answers SUCCESS only after reading both back.
//!
//! The region's default is one account setting that several resources may claim (a replacement, a
//! rename, two stacks): each claims it in the ownership ledger before changing it, and only the last
//! claimant to go puts back the state found before the first one changed it.

use aws_sdk_kms::Client as Kms;
use serde_json::Value;
use tapguard_shared::ledger::{self, Release};
use tapguard_shared::readback::{ReadBack, ReadBackPolicy};
use tapguard_shared::verify::{self, ControlCheck, ResourceReport, Verifier};
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::ec2::Ec2;
use crate::encryption::{self, DefaultEncryption, DesiredKey};
use crate::properties::Properties;
use crate::{key, legacy, ID_PREFIX};

const HANDLER: &str = "ebs-default-encryption";

/// The one setting this resource claims: the region's EBS default (the ledger is per region).
pub fn setting() -> String {
    ledger::setting(&["ebs", "default-encryption"])
}

pub struct EbsDefaultEncryption {
    ec2: Ec2,
    kms: Kms,
    ledger: Ledger,
    /// How a change is read back (the EC2 API is eventually consistent).
    read_back: ReadBackPolicy,
}

/// Where a resource's ledger entry is, and the prior state an old-format id carries.
struct Entry {
    key: String,
    legacy_prior: Option<DefaultEncryption>,
}

impl EbsDefaultEncryption {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(Ec2::new(config), Kms::new(config), Ledger::new(config, HANDLER))
    }

    pub fn from_clients(ec2: Ec2, kms: Kms, ledger: Ledger) -> Self {
        EbsDefaultEncryption {
            ec2,
            kms,
            ledger,
            read_back: ReadBackPolicy::default(),
        }
    }

    /// How changes are read back (unit tests read without waiting).
    pub fn with_read_back(mut self, policy: ReadBackPolicy) -> Self {
        self.read_back = policy;
        self
    }

    fn entry(physical_id: &str) -> Result<Entry, HandlerError> {
        if let Some(key) = ledger::key_of(ID_PREFIX, physical_id) {
            return Ok(Entry {
                key,
                legacy_prior: None,
            });
        }
        match legacy::prior_state(physical_id) {
            Some(prior) => Ok(Entry {
                key: ledger::legacy_key(physical_id),
                legacy_prior: Some(prior),
            }),
            None => Err(HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues: its prior state cannot be found"
            ))),
        }
    }

    /// Claims the region's default for `key`, brings it to what `props` ask, and reads it back.
    /// `observed` is the state before this resource's first change (Create, or an old-format id);
    /// `None` on an Update, whose prior state is already in the ledger.
    async fn converge(
        &self,
        inv: &Invocation,
        key: &str,
        props: &Properties,
        observed: Option<DefaultEncryption>,
    ) -> Result<(DefaultEncryption, Option<DefaultEncryption>), HandlerError> {
        let desired = key::resolve(&self.kms, inv, props).await?;
        let current = encryption::read(&self.ec2, inv).await?;
        let wants = DefaultEncryption {
            enabled: true,
            kms_key_id: desired.recorded().to_string(),
        };
        let mut record = self.ledger.begin(inv, key, &[setting()], ()).await?;
        verify::remember_repair(&self.ledger, inv, key, &mut record, props.repair_drift).await?;
        let claim = self
            .ledger
            .claim(inv, key, &setting(), to_value(&wants), observed.as_ref().map(to_value))
            .await?;
        // The key first: volumes created the moment encryption turns on already use the right key.
        if !desired.is_met_by(&current.kms_key_id) {
            encryption::set_key(&self.ec2, inv, &desired).await?;
        }
        if !current.enabled {
            encryption::enable(&self.ec2, inv).await?;
        }
        inv.step("verifying the EBS default encryption settings");
        let seen = encryption::read_back(&self.ec2, inv, &self.read_back, |after| {
            after.enabled && desired.is_met_by(&after.kms_key_id)
        })
        .await?;
        let after = match seen {
            ReadBack::Settled { value, .. } => value,
            ReadBack::Stale { value, reads } => return Err(unverified(inv, &desired, &value, reads)),
        };
        let prior = claim.prior.and_then(|p| serde_json::from_value(p).ok());
        Ok((after, prior))
    }

    fn outcome(physical_id: String, verified: &DefaultEncryption, prior: Option<&DefaultEncryption>) -> Outcome {
        Outcome::new(physical_id)
            .with("Enabled", verified.enabled)
            .with("KmsKeyId", &verified.kms_key_id)
            .with(
                "PreviouslyEnabled",
                prior.map_or("unknown".to_string(), |p| p.enabled.to_string()),
            )
    }

    /// Gives up this resource's claim; the last claimant puts back the prior state.
    async fn release(
        &self,
        inv: &Invocation,
        entry: &Entry,
        props: Option<&Properties>,
        undoing_create: bool,
    ) -> Result<(), HandlerError> {
        // The claim goes only after the restore is done and read back: a Delete that fails or is cut
        // off on the way keeps it, so its retry still knows the prior state.
        let release = self.ledger.pending_release(inv, &entry.key, &setting()).await?;
        let restore = match release {
            Release::StillClaimed(_) => None,
            // A claim whose `wants` cannot be read (someone edited the parameter) says nothing of what
            // the claimants set: the current key could be anyone's, so nothing is put back.
            Release::Last { prior, wants } => match serde_json::from_value::<DefaultEncryption>(wants) {
                Ok(wants) => Some((
                    prior.and_then(|p| serde_json::from_value::<DefaultEncryption>(p).ok()),
                    Some(wants),
                )),
                Err(err) => {
                    warn!(
                        parameter = Ledger::claim_name(&setting(), &entry.key),
                        error = %err,
                        "the claim's wanted state cannot be read: EBS default encryption is left as it is"
                    );
                    None
                }
            },
            Release::Unclaimed => match &entry.legacy_prior {
                Some(prior) => Some((Some(prior.clone()), self.legacy_wants(inv, props).await?)),
                None if undoing_create => {
                    info!("the failed Create had claimed nothing: nothing to undo");
                    None
                }
                None => {
                    warn!(
                        parameter = self.ledger.record_name(&entry.key),
                        "the ledger holds no claim of this resource (deleted by someone?): its prior state is \
                         unknown, so EBS default encryption is left as it is"
                    );
                    None
                }
            },
        };
        if let Some((prior, wants)) = restore {
            self.restore(inv, prior, wants).await?;
        }
        self.ledger.drop_claim(inv, &entry.key, &setting()).await?;
        self.ledger.forget(inv, &entry.key).await
    }

    /// What an old-format resource asked for, from its properties; `None` (treat the current key as
    /// its own) when it named no key that exists any more. A DescribeKey that is denied or keeps failing
    /// fails the Delete: guessing would restore over someone else's key.
    async fn legacy_wants(
        &self,
        inv: &Invocation,
        props: Option<&Properties>,
    ) -> Result<Option<DefaultEncryption>, HandlerError> {
        let Some(props) = props else {
            return Ok(None);
        };
        let recorded = match props.requested_key() {
            None => Some(encryption::AWS_MANAGED_ALIAS.to_string()),
            Some(key) => key::arn_of(&self.kms, inv, key).await?,
        };
        Ok(recorded.map(|kms_key_id| DefaultEncryption {
            enabled: true,
            kms_key_id: DesiredKey::from_recorded(&kms_key_id).recorded().to_string(),
        }))
    }

    /// Puts back `prior` where the region still holds what the claimants set (`wants`, or anything when
    /// unknown), then reads it back.
    async fn restore(
        &self,
        inv: &Invocation,
        prior: Option<DefaultEncryption>,
        wants: Option<DefaultEncryption>,
    ) -> Result<(), HandlerError> {
        let Some(prior) = prior else {
            warn!("the prior state of EBS default encryption is unknown: left as it is");
            return Ok(());
        };
        let current = encryption::read(&self.ec2, inv).await?;
        let prior_key = DesiredKey::from_recorded(&prior.kms_key_id);
        let ours = wants
            .as_ref()
            .is_none_or(|w| DesiredKey::from_recorded(&w.kms_key_id).is_met_by(&current.kms_key_id));
        // What the key is to be once this resource is gone: the prior key, or, when that one can no longer
        // be used (deleted, disabled, pending deletion), the AWS managed key: leaving the claimants' key in
        // place would keep a setting no resource owns, and a broken prior key breaks every encrypted launch.
        let mut restore_key = None;
        if !prior_key.is_met_by(&current.kms_key_id) {
            if !ours {
                info!(
                    current_key = current.kms_key_id,
                    "default EBS key was changed by someone else since: left as it is"
                );
            } else {
                match key::restorable(&self.kms, inv, &prior_key).await? {
                    None => restore_key = Some(prior_key.clone()),
                    Some(problem) => {
                        warn!(
                            prior_key = prior.kms_key_id,
                            problem,
                            "the prior default EBS key cannot be put back (it would break every encrypted launch): \
                             the AWS managed key alias/aws/ebs is set instead (ResetEbsDefaultKmsKeyId)"
                        );
                        if !DesiredKey::AwsManaged.is_met_by(&current.kms_key_id) {
                            restore_key = Some(DesiredKey::AwsManaged);
                        }
                    }
                }
            }
        }
        if let Some(key) = &restore_key {
            encryption::set_key(&self.ec2, inv, key).await?;
        }
        // Turn encryption off only when it was off before the first claimant turned it on.
        let disabled = !prior.enabled && current.enabled;
        if disabled {
            encryption::disable(&self.ec2, inv).await?;
        }
        if disabled || restore_key.is_some() {
            inv.step("verifying the restored EBS default encryption settings");
            let seen = encryption::read_back(&self.ec2, inv, &self.read_back, |after| {
                !(disabled && after.enabled) && restore_key.as_ref().is_none_or(|k| k.is_met_by(&after.kms_key_id))
            })
            .await?;
            let ReadBack::Stale { value: after, reads } = seen else {
                return Ok(());
            };
            if disabled && after.enabled {
                return Err(HandlerError::NotVerified(format!(
                    "GetEbsEncryptionByDefault still answers true in {} after DisableEbsEncryptionByDefault ({reads} \
                     reads with backoff): check for another automation that turns it on, then retry the Delete",
                    inv.region
                )));
            }
            if let Some(key) = &restore_key {
                return Err(HandlerError::NotVerified(format!(
                    "GetEbsDefaultKmsKeyId answers {} in {}, not {} ({reads} reads with backoff): check for another \
                     automation that sets the key, then retry the Delete",
                    after.kms_key_id,
                    inv.region,
                    key.describe()
                )));
            }
        }
        Ok(())
    }
}

impl Verifier for EbsDefaultEncryption {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, inv: &Invocation, _setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let Ok(wants) = serde_json::from_value::<DefaultEncryption>(wants.clone()) else {
            return vec![ControlCheck::unknown(
                ENCRYPTION_CONTROL,
                "true",
                "the claim in the ledger is damaged",
            )];
        };
        let wanted_key = DesiredKey::from_recorded(&wants.kms_key_id);
        match encryption::read(&self.ec2, inv).await {
            Ok(current) => vec![
                ControlCheck::compare(ENCRYPTION_CONTROL, current.enabled, true, current.enabled),
                ControlCheck::compare(
                    KEY_CONTROL,
                    wanted_key.is_met_by(&current.kms_key_id),
                    wanted_key.describe(),
                    &current.kms_key_id,
                ),
            ],
            Err(err) => vec![
                ControlCheck::unknown(ENCRYPTION_CONTROL, true, &err),
                ControlCheck::unknown(KEY_CONTROL, wanted_key.describe(), &err),
            ],
        }
    }

    /// Puts the region's default back to the claim as an Update would: the key first, then encryption
    /// on, then both read back. A claimed key that is no longer usable is not set (it would break every
    /// encrypted launch): that is a failed repair, and nothing is changed.
    async fn repair(
        &self,
        inv: &Invocation,
        _setting: &str,
        wants: &Value,
        _drifted: &[ControlCheck],
    ) -> Result<Vec<String>, HandlerError> {
        let wants = serde_json::from_value::<DefaultEncryption>(wants.clone())
            .map_err(|_| HandlerError::Failed("the claim in the ledger is damaged: nothing was changed".into()))?;
        let desired = DesiredKey::from_recorded(&wants.kms_key_id);
        let current = encryption::read(&self.ec2, inv).await?;
        let mut changes = Vec::new();
        if !desired.is_met_by(&current.kms_key_id) {
            if let Some(problem) = key::restorable(&self.kms, inv, &desired).await? {
                return Err(HandlerError::Failed(format!(
                    "the claimed default EBS key {} cannot be put back ({problem}): nothing was changed",
                    desired.describe()
                )));
            }
            encryption::set_key(&self.ec2, inv, &desired).await?;
            changes.push(format!(
                "default EBS key set back to {} (was {})",
                desired.describe(),
                current.kms_key_id
            ));
        }
        if !current.enabled {
            encryption::enable(&self.ec2, inv).await?;
            changes.push("EBS encryption by default turned back on (EnableEbsEncryptionByDefault)".to_string());
        }
        if !changes.is_empty() {
            inv.step("verifying the repaired EBS default encryption settings");
            let seen = encryption::read_back(&self.ec2, inv, &self.read_back, |after| {
                after.enabled && desired.is_met_by(&after.kms_key_id)
            })
            .await?;
            if let ReadBack::Stale { value: after, reads } = seen {
                return Err(HandlerError::NotVerified(format!(
                    "after the repair, EBS encryption by default reads {} with key {} in {} ({reads} reads of \
                     GetEbsEncryptionByDefault and GetEbsDefaultKmsKeyId with backoff): check for an SCP or another \
                     automation that changes it",
                    after.enabled, after.kms_key_id, inv.region
                )));
            }
        }
        Ok(changes)
    }
}

/// The controls a verify pass reports for this resource.
pub const ENCRYPTION_CONTROL: &str = "EBS.EncryptionByDefault";
pub const KEY_CONTROL: &str = "EBS.DefaultKmsKey";

/// Why a read-back that still disagrees after its last read is not a SUCCESS, naming the read.
fn unverified(inv: &Invocation, desired: &DesiredKey, after: &DefaultEncryption, reads: u32) -> HandlerError {
    if !after.enabled {
        HandlerError::NotVerified(format!(
            "GetEbsEncryptionByDefault still answers false in {} after EnableEbsEncryptionByDefault ({reads} reads \
             with backoff: the EC2 API is eventually consistent): check for an SCP or another automation that \
             turns it off, then retry the stack operation",
            inv.region
        ))
    } else {
        HandlerError::NotVerified(format!(
            "GetEbsDefaultKmsKeyId answers {} in {}, not {} ({reads} reads with backoff: the EC2 API is eventually \
             consistent): check for another automation that sets the key, then retry the stack operation",
            after.kms_key_id,
            inv.region,
            desired.describe()
        ))
    }
}

fn to_value(state: &DefaultEncryption) -> Value {
    serde_json::to_value(state).unwrap_or(Value::Null)
}

impl CustomResource for EbsDefaultEncryption {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::EbsDefaultEncryption";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call (the fault matrix in tests/fault_matrix.rs injects
    /// each fault into each one, and fails on any call not listed here).
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        ("ec2", "GetEbsEncryptionByDefault"),
        ("ec2", "EnableEbsEncryptionByDefault"),
        ("ec2", "DisableEbsEncryptionByDefault"),
        ("ec2", "GetEbsDefaultKmsKeyId"),
        ("ec2", "ModifyEbsDefaultKmsKeyId"),
        ("ec2", "ResetEbsDefaultKmsKeyId"),
        ("kms", "DescribeKey"),
        ("kms", "GetKeyPolicy"),
        // The ownership ledger.
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let key = inv.request_id.clone();
        let before = encryption::read(&self.ec2, inv).await?;
        let (verified, prior) = self.converge(inv, &key, &props, Some(before)).await?;
        let physical_id = ledger::physical_id(ID_PREFIX, &inv.region, &key);
        Ok(Self::outcome(physical_id, &verified, prior.as_ref()))
    }

    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        _old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        let entry = Self::entry(physical_id)?;
        let (verified, prior) = self.converge(inv, &entry.key, &props, entry.legacy_prior).await?;
        Ok(Self::outcome(physical_id.to_string(), &verified, prior.as_ref()))
    }

    async fn delete(&self, inv: &Invocation, physical_id: &str, props: Option<Properties>) -> Result<(), HandlerError> {
        let entry = Self::entry(physical_id)?;
        self.release(inv, &entry, props.as_ref(), false).await
    }

    async fn verify(&self, inv: &Invocation) -> Result<Vec<ResourceReport>, HandlerError> {
        // Repairs only what resources with RepairDrift ask for; read-only otherwise.
        verify::repairing_pass(self, inv).await
    }

    async fn undo_create(
        &self,
        inv: &Invocation,
        request_id: &str,
        props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        let entry = Entry {
            key: request_id.to_string(),
            legacy_prior: None,
        };
        self.release(inv, &entry, props.as_ref(), true).await
    }
}
