//! The ownership ledger: what each resource found, what it set, and who else claims the same setting.
//!
//! Account-level settings (EBS default encryption in a region, the Config recorder, a Config rule, the
//! Security Hub hub, a standard, a disabled control) can be claimed by several resources at once:
//! CloudFormation creates a replacement before it deletes the old resource, a logical id is renamed, two
//! stacks ask for the same thing. The ledger lets each of them say so, durably, in the account and region
//! the handler acts on (SSM Parameter Store, standard tier, under `/tapguard/`):
//!
//! - `/tapguard/ledger/<handler>/<key>`: one [`Record`] per resource instance, written before its first
//!   change, listing the settings it claims. `<key>` is the RequestId of the resource's Create, so the
//!   rollback Delete of a failed Create (physical id `tapguard-failed-create:<RequestId>`) finds it too.
//! - `/tapguard/claims/<setting>/<key>`: one [`Claim`] per claimant of a setting, holding the value it
//!   asks for and the setting's state before the *first* claimant changed it (`prior`, inherited by every
//!   later claimant). Each claimant writes only its own parameter, so two claimants never overwrite each
//!   other's record and no compare-and-swap is needed.
//!
//! The rules every handler follows with it:
//! 1. record and claim before the first mutating call ([`Ledger::begin`], [`Ledger::claim`]);
//! 2. a second claimant that asks for another value is refused, naming the claimant it would fight;
//! 3. on Delete, give up the claim ([`Ledger::release`]); only the **last** claimant restores `prior`, and
//!    only if the setting still holds what the claimants asked for (anything else is someone's later
//!    change, left alone and logged);
//! 4. `prior` unknown (the ledger was deleted): never turn a setting off, log it and answer what is known.
//!
//! SSM was chosen over tags (not every setting has a taggable resource) and over the physical id (1 KB,
//! not shared between resources). A standard-tier parameter holds 4 KB: records stay small by keeping
//! one parameter per claimed setting.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use crate::api::ApiError;
use crate::ssm::ParameterStore;
use crate::{AwsCallError, HandlerError, Invocation, FAILED_CREATE_PREFIX};

/// Every parameter the ledger writes lives under this path (the functions' roles are allowed only it).
pub const ROOT: &str = "/tapguard";
/// The most a standard-tier SSM parameter value may hold.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Marks a physical id whose state lives in the ledger: `<prefix><region>:ledger-<key>`.
const KEY_MARK: &str = "ledger-";
const FORMAT_VERSION: u32 = 1;

/// A resource instance's own record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<T> {
    pub v: u32,
    pub handler: String,
    pub stack_id: String,
    pub logical_id: String,
    pub region: String,
    /// The settings this resource claims (their paths, as given to [`Ledger::claim`]).
    pub settings: Vec<String>,
    /// What the handler needs besides its claims (for instance, what it created).
    pub state: T,
    /// Whether a scheduled verify pass may put this resource's drifted settings back (its
    /// `RepairDrift` property as of its last Create or Update; see `verify::remember_repair`).
    /// Absent in records written before it existed, and when false: never repair.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repair_drift: bool,
}

/// Who claims a setting, as the refusal of a conflicting claimant names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claimant {
    pub key: String,
    pub handler: String,
    pub stack_id: String,
    pub logical_id: String,
}

impl std::fmt::Display for Claimant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stack = stack_name(&self.stack_id);
        write!(f, "{} in stack {} ({})", self.logical_id, stack, self.handler)
    }
}

/// One claimant's claim on one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub v: u32,
    pub claimant: Claimant,
    /// The value this claimant asks the setting to hold.
    pub wants: Value,
    /// The setting's state before the first claimant changed it; `None` when it is not known (a claim
    /// rebuilt after the ledger was lost): such a setting is never turned off.
    pub prior: Option<Value>,
    /// Seconds since the Unix epoch when the first claim of the chain was made: the oldest claim's
    /// `prior` is the one passed on.
    pub since: u64,
}

/// What giving up a claim leaves to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    /// Other resources still claim the setting: leave it as it is.
    StillClaimed(Vec<Claimant>),
    /// This was the last claim: restore `prior` if the setting still holds `wants`.
    Last { prior: Option<Value>, wants: Value },
    /// There was no claim of this resource on the setting (never made, or the ledger was lost) and no
    /// one else claims it: the prior state is unknown, so nothing may be turned off.
    Unclaimed,
}

/// The ledger of one handler in the account and region its client points at.
#[derive(Clone, Debug)]
pub struct Ledger {
    ssm: ParameterStore,
    handler: &'static str,
}

impl Ledger {
    pub fn new(config: &aws_config::SdkConfig, handler: &'static str) -> Self {
        Self::from_client(ParameterStore::new(config), handler)
    }

    /// The ledger of a global setting (IAM's password policy, a Shield subscription): kept in one region
    /// per partition ([`global_region`]), so that resources in stacks of every region of the account see
    /// each other's claims. The function's role must allow SSM in that region.
    pub fn global(config: &aws_config::SdkConfig, handler: &'static str) -> Self {
        let region = config.region().map(|r| r.as_ref().to_string()).unwrap_or_default();
        let home = global_region(crate::arn::partition_for_region(&region));
        let home_config = config.to_builder().region(aws_config::Region::new(home)).build();
        Self::from_client(ParameterStore::new(&home_config), handler)
    }

    /// The ledger kept in `ssm` (the tests' [`crate::ssm::memory::MemoryStore`]).
    pub fn from_client(ssm: ParameterStore, handler: &'static str) -> Self {
        Ledger { ssm, handler }
    }

    /// The handler this ledger belongs to (its records' folder).
    pub fn handler(&self) -> &'static str {
        self.handler
    }

    /// The parameter name of a resource's record.
    pub fn record_name(&self, key: &str) -> String {
        format!("{ROOT}/ledger/{}/{}", self.handler, encode_segment(key))
    }

    /// The path under which every claim of `setting` (made with [`setting`]) lives.
    pub fn claims_path(setting: &str) -> String {
        format!("{ROOT}/claims/{setting}")
    }

    /// The parameter name of the claim of resource `key` on `setting`.
    pub fn claim_name(setting: &str, key: &str) -> String {
        format!("{}/{}", Self::claims_path(setting), encode_segment(key))
    }

    /// Reads a resource's record; `None` when there is none (never written, or deleted by someone).
    pub async fn load<T: DeserializeOwned>(
        &self,
        inv: &Invocation,
        key: &str,
    ) -> Result<Option<Record<T>>, HandlerError> {
        let name = self.record_name(key);
        let Some(text) = self.get(inv, &name).await? else {
            return Ok(None);
        };
        match serde_json::from_str(&text) {
            Ok(record) => Ok(Some(record)),
            Err(err) => {
                warn!(parameter = name, error = %err, "ledger record is damaged: treated as missing");
                Ok(None)
            }
        }
    }

    /// Every record of this handler in the ledger, with its key: what a verify pass checks.
    pub async fn records(&self, inv: &Invocation) -> Result<Vec<(String, Record<Value>)>, HandlerError> {
        let path = format!("{ROOT}/ledger/{}", self.handler);
        inv.step(format!(
            "calling ssm:GetParametersByPath (the ledger's records, {path})"
        ));
        let mut records = Vec::new();
        for (name, value) in self.list(&path).await? {
            let key = name.rsplit('/').next().and_then(decode_segment);
            match (key, serde_json::from_str::<Record<Value>>(&value)) {
                (Some(key), Ok(record)) => records.push((key, record)),
                _ => warn!(parameter = name, "damaged record in the ledger: skipped"),
            }
        }
        Ok(records)
    }

    /// (name, value) of every parameter directly under `path`, every page of them.
    async fn list(&self, path: &str) -> Result<Vec<(String, String)>, HandlerError> {
        let parameters = self
            .ssm
            .list(path)
            .await
            .map_err(|err| ledger_error("GetParametersByPath", path, &err))?;
        Ok(parameters.into_iter().map(|p| (p.name, p.value)).collect())
    }

    /// Writes (or rewrites) a resource's record.
    pub async fn save<T: Serialize>(
        &self,
        inv: &Invocation,
        key: &str,
        record: &Record<T>,
    ) -> Result<(), HandlerError> {
        let name = self.record_name(key);
        self.put(inv, &name, &to_json(record)?).await
    }

    /// A new record for the resource of `inv`, claiming nothing yet.
    pub fn record<T>(&self, inv: &Invocation, state: T) -> Record<T> {
        Record {
            v: FORMAT_VERSION,
            handler: self.handler.to_string(),
            stack_id: inv.stack_id.clone(),
            logical_id: inv.logical_resource_id.clone(),
            region: inv.region.clone(),
            settings: Vec::new(),
            state,
            repair_drift: false,
        }
    }

    /// Loads the resource's record, or starts one with `state` when there is none, and makes sure it
    /// lists `settings`; saved before the caller's first change.
    pub async fn begin<T: Serialize + DeserializeOwned>(
        &self,
        inv: &Invocation,
        key: &str,
        settings: &[String],
        state: T,
    ) -> Result<Record<T>, HandlerError> {
        let (mut record, mut dirty) = match self.load(inv, key).await? {
            Some(record) => (record, false),
            None => (self.record(inv, state), true),
        };
        for setting in settings {
            if !record.settings.contains(setting) {
                record.settings.push(setting.clone());
                dirty = true;
            }
        }
        if dirty {
            self.save(inv, key, &record).await?;
        }
        Ok(record)
    }

    /// Removes a resource's record (after its last claim is released). Already gone is fine.
    pub async fn forget(&self, inv: &Invocation, key: &str) -> Result<(), HandlerError> {
        let name = self.record_name(key);
        self.delete(inv, &name).await
    }

    /// Every claim on `setting`, oldest first.
    pub async fn claims(&self, inv: &Invocation, setting: &str) -> Result<Vec<Claim>, HandlerError> {
        let path = Self::claims_path(setting);
        inv.step(format!(
            "calling ssm:GetParametersByPath (the ledger's claims on {setting})"
        ));
        let mut claims = Vec::new();
        for (name, value) in self.list(&path).await? {
            match serde_json::from_str::<Claim>(&value) {
                Ok(claim) => claims.push(claim),
                Err(err) => warn!(parameter = name, error = %err, "damaged claim in the ledger: ignored"),
            }
        }
        claims.sort_by_key(|c| c.since);
        Ok(claims)
    }

    /// Claims `setting` for the resource `key`, asking for `wants`; `observed` is the setting's state
    /// now, before this resource changes anything.
    ///
    /// The prior state recorded is the oldest existing claim's (it saw the setting before any claimant
    /// changed it), else `observed`. A claim already held by `key` keeps its prior and takes the new
    /// `wants` (an Update). Another claimant asking for a different value is a FAILED naming it.
    pub async fn claim(
        &self,
        inv: &Invocation,
        key: &str,
        setting: &str,
        wants: Value,
        observed: Option<Value>,
    ) -> Result<Claim, HandlerError> {
        let existing = self.claims(inv, setting).await?;
        let (mine, others): (Vec<&Claim>, Vec<&Claim>) = existing.iter().partition(|c| c.claimant.key == key);
        if let Some(other) = others.iter().find(|c| c.wants != wants) {
            return Err(HandlerError::Failed(format!(
                "{setting} is already claimed by {} with {}, and this resource asks for {}: two resources \
                 must not fight over one account setting. Ask for the same value, or remove the other \
                 resource first (if it no longer exists, delete the SSM parameter {} to drop its claim)",
                other.claimant,
                other.wants,
                wants,
                Self::claim_name(setting, &other.claimant.key)
            )));
        }
        let (prior, since) = match (mine.first(), existing.first()) {
            (Some(own), _) => (own.prior.clone(), own.since),
            (None, Some(oldest)) => (oldest.prior.clone(), oldest.since),
            (None, None) => (observed, now()),
        };
        let claim = Claim {
            v: FORMAT_VERSION,
            claimant: Claimant {
                key: key.to_string(),
                handler: self.handler.to_string(),
                stack_id: inv.stack_id.clone(),
                logical_id: inv.logical_resource_id.clone(),
            },
            wants,
            prior,
            since,
        };
        if mine.first().map(|own| (&own.wants, &own.prior)) != Some((&claim.wants, &claim.prior)) {
            let name = Self::claim_name(setting, key);
            self.put(inv, &name, &to_json(&claim)?).await?;
            if !others.is_empty() {
                info!(
                    setting,
                    claimants = others.len() + 1,
                    "setting claimed alongside other resources: it stays until the last of them is deleted"
                );
            }
        }
        Ok(claim)
    }

    /// Gives up the claim of `key` on `setting` and says what is left to do.
    ///
    /// A handler whose restore can fail should rather call [`Ledger::pending_release`], restore, and
    /// only then [`Ledger::drop_claim`]: a retried Delete then still finds the prior state.
    pub async fn release(&self, inv: &Invocation, key: &str, setting: &str) -> Result<Release, HandlerError> {
        let existing = self.claims(inv, setting).await?;
        if existing.iter().any(|c| c.claimant.key == key) {
            self.drop_claim(inv, key, setting).await?;
        }
        Ok(plan_release(existing, key, setting))
    }

    /// Removes the claim of `key` on `setting` (already gone is fine).
    pub async fn drop_claim(&self, inv: &Invocation, key: &str, setting: &str) -> Result<(), HandlerError> {
        self.delete(inv, &Self::claim_name(setting, key)).await
    }

    /// What giving up the claim of `key` on `setting` would leave to do, without giving it up yet.
    pub async fn pending_release(&self, inv: &Invocation, key: &str, setting: &str) -> Result<Release, HandlerError> {
        let existing = self.claims(inv, setting).await?;
        Ok(plan_release(existing, key, setting))
    }

    async fn get(&self, inv: &Invocation, name: &str) -> Result<Option<String>, HandlerError> {
        inv.step(format!("calling ssm:GetParameter (the ledger, {name})"));
        self.ssm
            .get(name)
            .await
            .map_err(|err| ledger_error("GetParameter", name, &err))
    }

    async fn put(&self, inv: &Invocation, name: &str, value: &str) -> Result<(), HandlerError> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(HandlerError::Failed(format!(
                "the ledger entry {name} would be {} bytes, more than the {MAX_VALUE_BYTES} an SSM standard \
                 parameter holds: nothing was changed; split the resource into smaller ones",
                value.len()
            )));
        }
        inv.step(format!("calling ssm:PutParameter (the ledger, {name})"));
        self.ssm
            .put(
                name,
                value,
                Some("tapguard ownership ledger: do not edit; see the handler's README"),
            )
            .await
            .map_err(|err| ledger_error("PutParameter", name, &err))
    }

    async fn delete(&self, inv: &Invocation, name: &str) -> Result<(), HandlerError> {
        inv.step(format!("calling ssm:DeleteParameter (the ledger, {name})"));
        self.ssm
            .delete(name)
            .await
            .map(drop)
            .map_err(|err| ledger_error("DeleteParameter", name, &err))
    }
}

/// What is left to do once `key` gives up its claim, given every claim on `setting`.
fn plan_release(existing: Vec<Claim>, key: &str, setting: &str) -> Release {
    let mine = existing.iter().find(|c| c.claimant.key == key).cloned();
    let others: Vec<Claimant> = existing
        .iter()
        .filter(|c| c.claimant.key != key)
        .map(|c| c.claimant.clone())
        .collect();
    match (mine, others.is_empty()) {
        (_, false) => {
            info!(setting, still_claimed_by = %others.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                    "other resources still claim the setting: left as it is");
            Release::StillClaimed(others)
        }
        (Some(claim), true) => Release::Last {
            prior: claim.prior,
            wants: claim.wants,
        },
        (None, true) => Release::Unclaimed,
    }
}

/// The ledger key of a physical id this handler issued with [`physical_id`], or of a failed Create
/// (`tapguard-failed-create:<RequestId>`); `None` for any other id (an older format, a stranger's).
pub fn key_of(id_prefix: &str, physical_id: &str) -> Option<String> {
    if let Some(request_id) = physical_id.strip_prefix(FAILED_CREATE_PREFIX) {
        return Some(request_id.to_string()).filter(|k| !k.is_empty());
    }
    let rest = physical_id.strip_prefix(id_prefix)?;
    let (_region, key) = rest.rsplit_once(':')?;
    key.strip_prefix(KEY_MARK).filter(|k| !k.is_empty()).map(str::to_string)
}

/// The region that holds the ledger of a partition's global settings: the region where the partition's
/// global services (IAM) keep their control plane.
pub fn global_region(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "cn-north-1",
        "aws-us-gov" => "us-gov-west-1",
        "aws-iso" => "us-iso-east-1",
        "aws-iso-b" => "us-isob-east-1",
        "aws-iso-e" => "eu-isoe-west-1",
        "aws-iso-f" => "us-isof-south-1",
        "aws-eusc" => "eusc-de-east-1",
        _ => "us-east-1",
    }
}

/// The ledger key of a resource made by an earlier version, which kept its state in the physical id:
/// derived from that id (FNV-1a), so its Update and its Delete find the same entry.
pub fn legacy_key(physical_id: &str) -> String {
    let hash = physical_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("legacy-{hash:016x}")
}

/// The physical id of a resource whose state lives in the ledger under `key`: short and stable.
pub fn physical_id(id_prefix: &str, region: &str, key: &str) -> String {
    format!("{id_prefix}{region}:{KEY_MARK}{key}")
}

/// The name of an account setting, from its parts: `setting(&["config", "rule", name])`. Each part is
/// encoded with [`encode_segment`], so an ARN or any name is one segment.
pub fn setting(parts: &[&str]) -> String {
    parts.iter().map(|p| encode_segment(p)).collect::<Vec<_>>().join("/")
}

/// Makes one path segment of an SSM parameter name out of any text, injectively: the characters SSM
/// allows (`a-zA-Z0-9.-`) stay, everything else (the escape `_` included) becomes `_XX` per UTF-8 byte.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

/// The text [`encode_segment`] made; `None` for text it cannot have made.
pub fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn to_json<T: Serialize>(value: &T) -> Result<String, HandlerError> {
    serde_json::to_string(value).map_err(|err| HandlerError::Failed(format!("ledger entry cannot be written: {err}")))
}

fn ledger_error(operation: &str, name: &str, err: &ApiError) -> HandlerError {
    let err = err
        .to_handler_error("ssm", operation)
        .with_context(&format!("ownership ledger {name}"));
    if err.code().is_some_and(crate::is_access_denied) {
        err.with_advice(format!(
            "the function's role must be allowed ssm:{operation} on the ledger's parameters under {ROOT}/ \
             (template.yml grants it): nothing was changed in the account"
        ))
    } else {
        err
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `TapStack` out of `arn:aws:cloudformation:region:account:stack/TapStack/guid`.
pub fn stack_name(stack_id: &str) -> &str {
    stack_id
        .split_once(":stack/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(stack_id)
}

#[cfg(test)]
mod tests;
