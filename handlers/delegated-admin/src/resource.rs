//! Custom::DelegatedAdministrator: makes a member account the organization's delegated administrator of
//! GuardDuty (in the stack's region) or of AWS Config (organization-wide), adopting a registration that
//! is already there, refusing to replace another account's, and answering SUCCESS only after reading the
//! registration back.
//!
//! Claims are kept in the ledger of the partition's global region (`Ledger::global`): Config's
//! registration is organization-wide, so stacks of every region must see each other's claims; GuardDuty's
//! is per region, so its setting names the region.

use aws_sdk_guardduty::Client as GuardDuty;
use aws_sdk_organizations::Client as Organizations;
use serde_json::{json, Value};
use tapguard_shared::ledger::{self, Release};
use tapguard_shared::readback::{self, ReadBack, ReadBackPolicy};
use tapguard_shared::verify::{self, ControlCheck, Verifier};
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger, Outcome};
use tracing::{info, warn};

use crate::drift;
use crate::guardduty;
use crate::organizations::{self, CONFIG_PRINCIPALS};
use crate::properties::{Properties, Service};
use crate::ID_PREFIX;

const HANDLER: &str = "delegated-admin";
const GUARDDUTY_SETTING: &str = "guardduty";
const CONFIG_SETTING: &str = "config";

/// The setting a resource claims: GuardDuty's administrator in `region`, or Config's (organization-wide).
pub fn setting(service: Service, region: &str) -> String {
    match service {
        Service::GuardDuty => ledger::setting(&[HANDLER, GUARDDUTY_SETTING, region]),
        Service::Config => ledger::setting(&[HANDLER, CONFIG_SETTING]),
    }
}

fn service_of(setting: &str) -> Option<Service> {
    let mut parts = setting.split('/');
    match (parts.next(), parts.next()) {
        (Some(HANDLER), Some(GUARDDUTY_SETTING)) => Some(Service::GuardDuty),
        (Some(HANDLER), Some(CONFIG_SETTING)) => Some(Service::Config),
        _ => None,
    }
}

pub struct DelegatedAdministrator {
    guardduty: GuardDuty,
    organizations: Organizations,
    ledger: Ledger,
    read_back: ReadBackPolicy,
}

impl DelegatedAdministrator {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_clients(
            GuardDuty::new(config),
            Organizations::new(config),
            Ledger::global(config, HANDLER),
        )
    }

    pub fn from_clients(guardduty: GuardDuty, organizations: Organizations, ledger: Ledger) -> Self {
        DelegatedAdministrator {
            guardduty,
            organizations,
            ledger,
            read_back: ReadBackPolicy::default(),
        }
    }

    /// The same number of read-backs without waiting between them (tests).
    pub fn without_waiting(mut self) -> Self {
        self.read_back = self.read_back.without_waiting();
        self
    }

    fn key(physical_id: &str) -> Result<String, HandlerError> {
        ledger::key_of(ID_PREFIX, physical_id).ok_or_else(|| {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues: what it registered cannot be found"
            ))
        })
    }

    async fn converge(
        &self,
        inv: &Invocation,
        key: &str,
        props: &Properties,
        adopt: bool,
    ) -> Result<Outcome, HandlerError> {
        let account = props.account()?;
        let adopted = match props.service {
            Service::GuardDuty => self.converge_guardduty(inv, key, account, adopt).await?,
            Service::Config => self.converge_config(inv, key, account, adopt).await?,
        };
        let scope = match props.service {
            Service::GuardDuty => inv.region.clone(),
            Service::Config => "organization".to_string(),
        };
        Ok(Outcome::new(ledger::physical_id(ID_PREFIX, &inv.region, key))
            .with("Service", props.service.as_str())
            .with("AdministratorAccountId", account)
            .with("Scope", scope)
            .with("Adopted", adopted.map_or("unknown".to_string(), |a| a.to_string())))
    }

    /// Returns whether the registration was there before the first claimant (`None`: unknown).
    async fn converge_guardduty(
        &self,
        inv: &Invocation,
        key: &str,
        account: &str,
        adopt: bool,
    ) -> Result<Option<bool>, HandlerError> {
        let admins = guardduty::read(&self.guardduty, inv).await?;
        if let Some(other) = admins.iter().find(|a| a.account != account) {
            return Err(HandlerError::Failed(format!(
                "GuardDuty's delegated administrator in {} is already account {} ({}, ListOrganizationAdminAccounts), \
                 and an organization has one per region: nothing was changed. To keep it, set AccountId to {}; to \
                 replace it, remove it first (GuardDuty User Guide, 'Changing the delegated GuardDuty administrator \
                 account') and retry",
                inv.region, other.account, other.status, other.account
            )));
        }
        let already = admins.iter().any(|a| a.account == account && a.enabled());
        let setting = setting(Service::GuardDuty, &inv.region);
        self.ledger.begin(inv, key, std::slice::from_ref(&setting), ()).await?;
        let claim = self
            .ledger
            .claim(
                inv,
                key,
                &setting,
                json!({ "account": account }),
                adopt.then(|| json!({ "registered": already })),
            )
            .await?;
        if already {
            info!(
                account,
                region = inv.region,
                "GuardDuty's delegated administrator is already this account: adopted"
            );
        } else {
            guardduty::enable(&self.guardduty, inv, account).await?;
        }
        inv.step("verifying GuardDuty's delegated administrator");
        let seen = readback::read_back(
            inv,
            &self.read_back,
            "ListOrganizationAdminAccounts",
            || guardduty::read(&self.guardduty, inv),
            |admins| admins.iter().any(|a| a.account == account && a.enabled()),
        )
        .await?;
        if let ReadBack::Stale { value, reads } = seen {
            return Err(HandlerError::NotVerified(format!(
                "ListOrganizationAdminAccounts answers {} after {reads} reads, not account {account} ENABLED: check \
                 that this is the organization's management account and that no other automation manages GuardDuty's \
                 delegated administrator, then retry",
                describe_admins(&value)
            )));
        }
        Ok(prior_registered(&claim.prior))
    }

    async fn converge_config(
        &self,
        inv: &Invocation,
        key: &str,
        account: &str,
        adopt: bool,
    ) -> Result<Option<bool>, HandlerError> {
        let trusted = organizations::trusted(&self.organizations, inv).await?;
        let untrusted: Vec<&str> = CONFIG_PRINCIPALS
            .iter()
            .copied()
            .filter(|p| !trusted.iter().any(|t| t == p))
            .collect();
        if !untrusted.is_empty() {
            return Err(HandlerError::Failed(format!(
                "trusted access for AWS Config is not enabled in the organization for {} \
                 (ListAWSServiceAccessForOrganization), and registering Config's delegated administrator needs it: \
                 nothing was changed. From the management account run `aws organizations enable-aws-service-access \
                 --service-principal=<principal>` for each (AWS Config Developer Guide, 'Registering a Delegated \
                 Administrator'), then retry",
                untrusted.join(" and ")
            )));
        }
        let mut registered = Vec::new();
        for principal in CONFIG_PRINCIPALS {
            let admins = organizations::admins(&self.organizations, inv, principal).await?;
            if let Some(other) = admins.iter().find(|a| *a != account) {
                return Err(HandlerError::Failed(format!(
                    "AWS Config's delegated administrator for {principal} is already account {other} \
                     (ListDelegatedAdministrators): this resource does not add a second one next to it, and nothing \
                     was changed. To keep it, set AccountId to {other}; to replace it, deregister it first (`aws \
                     organizations deregister-delegated-administrator --account-id {other} --service-principal \
                     {principal}`) and retry"
                )));
            }
            if admins.iter().any(|a| a == account) {
                registered.push(principal.to_string());
            }
        }
        let setting = setting(Service::Config, &inv.region);
        self.ledger.begin(inv, key, std::slice::from_ref(&setting), ()).await?;
        let claim = self
            .ledger
            .claim(
                inv,
                key,
                &setting,
                json!({ "account": account }),
                adopt.then(|| json!({ "registered": registered })),
            )
            .await?;
        for principal in CONFIG_PRINCIPALS {
            if registered.iter().any(|r| r == principal) {
                info!(
                    account,
                    principal, "already AWS Config's delegated administrator: adopted"
                );
            } else {
                organizations::register(&self.organizations, inv, account, principal).await?;
            }
        }
        inv.step("verifying AWS Config's delegated administrator");
        for principal in CONFIG_PRINCIPALS {
            let seen = readback::read_back(
                inv,
                &self.read_back,
                "ListDelegatedAdministrators",
                || organizations::admins(&self.organizations, inv, principal),
                |admins| admins.iter().any(|a| a == account),
            )
            .await?;
            if let ReadBack::Stale { value, reads } = seen {
                return Err(HandlerError::NotVerified(format!(
                    "ListDelegatedAdministrators for {principal} answers [{}] after {reads} reads, without account \
                     {account}: check for an SCP or another automation that manages delegated administrators, then retry",
                    value.join(", ")
                )));
            }
        }
        let prior = claim.prior.as_ref().map(|p| {
            let before = p["registered"].as_array().map_or(0, Vec::len);
            before == CONFIG_PRINCIPALS.len()
        });
        Ok(prior)
    }

    /// Gives up the claims of `key`; the last claimant removes what the claimants registered (never an
    /// adopted registration). Each claim goes only after its removal is read back, so a Delete that fails
    /// half-way and is retried still knows what was found before.
    async fn release(
        &self,
        inv: &Invocation,
        key: &str,
        props: Option<&Properties>,
        undoing_create: bool,
    ) -> Result<(), HandlerError> {
        let record = self.ledger.load::<Value>(inv, key).await?;
        let settings = match (&record, props) {
            (Some(record), _) => record.settings.clone(),
            (None, Some(props)) => vec![setting(props.service, &inv.region)],
            (None, None) => Vec::new(),
        };
        for setting in &settings {
            let release = self.ledger.pending_release(inv, key, setting).await?;
            match release {
                Release::StillClaimed(others) => info!(
                    setting,
                    claimants = others.len(),
                    "other resources still claim this delegated administrator: left registered"
                ),
                Release::Unclaimed if undoing_create => info!("the failed Create had claimed nothing: nothing to undo"),
                Release::Unclaimed => warn!(
                    parameter = self.ledger.record_name(key),
                    "the ledger holds no claim of this resource (deleted by someone?): whether it registered the \
                     delegated administrator is unknown, so it is left registered"
                ),
                Release::Last { prior, wants } => self.remove(inv, setting, prior, &wants).await?,
            }
            self.ledger.drop_claim(inv, key, setting).await?;
        }
        self.ledger.forget(inv, key).await
    }

    async fn remove(
        &self,
        inv: &Invocation,
        setting: &str,
        prior: Option<Value>,
        wants: &Value,
    ) -> Result<(), HandlerError> {
        let Some(account) = wants["account"].as_str() else {
            warn!(
                setting,
                "the ledger's claim is damaged: the delegated administrator is left as it is"
            );
            return Ok(());
        };
        let Some(prior) = prior else {
            warn!(
                setting,
                "whether the registration was there before is unknown: it is left registered"
            );
            return Ok(());
        };
        match service_of(setting) {
            Some(Service::GuardDuty) => {
                if prior["registered"].as_bool() != Some(false) {
                    info!(
                        account,
                        "GuardDuty's delegated administrator was adopted: it is left registered"
                    );
                    return Ok(());
                }
                let admins = guardduty::read(&self.guardduty, inv).await?;
                if !admins.iter().any(|a| a.account == account && a.enabled()) {
                    info!(
                        account,
                        "GuardDuty's delegated administrator is no longer this account: nothing to remove"
                    );
                    return Ok(());
                }
                info!(
                    account,
                    region = inv.region,
                    "removing the GuardDuty delegated administrator this resource designated"
                );
                guardduty::disable(&self.guardduty, inv, account).await?;
                inv.step("verifying GuardDuty's delegated administrator is removed");
                let seen = readback::read_back(
                    inv,
                    &self.read_back,
                    "ListOrganizationAdminAccounts",
                    || guardduty::read(&self.guardduty, inv),
                    |admins| !admins.iter().any(|a| a.account == account && a.enabled()),
                )
                .await?;
                if let ReadBack::Stale { value, reads } = seen {
                    return Err(HandlerError::NotVerified(format!(
                        "ListOrganizationAdminAccounts still answers {} after DisableOrganizationAdminAccount ({reads} \
                         reads): retry the stack deletion",
                        describe_admins(&value)
                    )));
                }
                Ok(())
            }
            Some(Service::Config) => {
                let before: Vec<&str> = prior["registered"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for principal in CONFIG_PRINCIPALS {
                    if before.contains(&principal) {
                        info!(
                            account,
                            principal, "AWS Config's delegated administrator was adopted: left registered"
                        );
                        continue;
                    }
                    let admins = organizations::admins(&self.organizations, inv, principal).await?;
                    if !admins.iter().any(|a| a == account) {
                        continue;
                    }
                    info!(
                        account,
                        principal, "deregistering the AWS Config delegated administrator this resource registered"
                    );
                    organizations::deregister(&self.organizations, inv, account, principal).await?;
                    let seen = readback::read_back(
                        inv,
                        &self.read_back,
                        "ListDelegatedAdministrators",
                        || organizations::admins(&self.organizations, inv, principal),
                        |admins| !admins.iter().any(|a| a == account),
                    )
                    .await?;
                    if let ReadBack::Stale { reads, .. } = seen {
                        return Err(HandlerError::NotVerified(format!(
                            "ListDelegatedAdministrators for {principal} still lists account {account} after \
                             DeregisterDelegatedAdministrator ({reads} reads): retry the stack deletion"
                        )));
                    }
                }
                Ok(())
            }
            None => {
                warn!(
                    setting,
                    "the ledger names a setting this handler does not know: left as it is"
                );
                Ok(())
            }
        }
    }
}

fn prior_registered(prior: &Option<Value>) -> Option<bool> {
    prior.as_ref().and_then(|p| p["registered"].as_bool())
}

pub(crate) fn describe_admins(admins: &[guardduty::Admin]) -> String {
    if admins.is_empty() {
        return "no administrator".into();
    }
    admins
        .iter()
        .map(|a| format!("{} {}", a.account, a.status))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verify pass: ListOrganizationAdminAccounts or ListDelegatedAdministrators, read-only, against the
/// claim (the comparison is `drift.rs`). The ledger is global: each resource is verified by its own stack's
/// region, whose GuardDuty is the one its claim names.
impl Verifier for DelegatedAdministrator {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, inv: &Invocation, setting: &str, wants: &Value) -> Vec<ControlCheck> {
        let Some(service) = service_of(setting) else {
            return vec![ControlCheck::unknown(
                setting,
                "a setting this handler names",
                "the ledger names a setting this handler does not know",
            )];
        };
        let control = match service {
            Service::GuardDuty => drift::GUARDDUTY_CONTROL,
            Service::Config => drift::CONFIG_CONTROL,
        };
        let Some(account) = wants["account"].as_str() else {
            return vec![ControlCheck::unknown(
                control,
                "the claimed account",
                "the claim in the ledger is damaged",
            )];
        };
        match service {
            Service::GuardDuty => match guardduty::read(&self.guardduty, inv).await {
                Ok(admins) => vec![drift::guardduty(account, &admins)],
                Err(err) => vec![ControlCheck::unknown(control, account, err)],
            },
            Service::Config => {
                let mut seen = Vec::new();
                for principal in CONFIG_PRINCIPALS {
                    match organizations::admins(&self.organizations, inv, principal).await {
                        Ok(admins) => seen.push((principal, admins)),
                        Err(err) => return vec![ControlCheck::unknown(control, account, err)],
                    }
                }
                vec![drift::config(account, &seen)]
            }
        }
    }
}

impl CustomResource for DelegatedAdministrator {
    type Properties = Properties;
    const RESOURCE_TYPE: &'static str = "Custom::DelegatedAdministrator";
    const ID_PREFIX: &'static str = ID_PREFIX;
    /// Every AWS operation this resource may call.
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[
        ("guardduty", "ListOrganizationAdminAccounts"),
        ("guardduty", "EnableOrganizationAdminAccount"),
        ("guardduty", "DisableOrganizationAdminAccount"),
        ("organizations", "ListAWSServiceAccessForOrganization"),
        ("organizations", "ListDelegatedAdministrators"),
        ("organizations", "RegisterDelegatedAdministrator"),
        ("organizations", "DeregisterDelegatedAdministrator"),
        // The ownership ledger (in the partition's global region).
        ("ssm", "GetParameter"),
        ("ssm", "PutParameter"),
        ("ssm", "DeleteParameter"),
        ("ssm", "GetParametersByPath"),
    ];

    async fn create(&self, inv: &Invocation, props: Properties) -> Result<Outcome, HandlerError> {
        let key = inv.request_id.clone();
        self.converge(inv, &key, &props, true).await
    }

    /// The same service and account: read again and verified. Another service or account is refused:
    /// GuardDuty allows one administrator per region, so the new one cannot be designated before the
    /// old one is removed, which a replacement (create first, then delete) cannot do.
    async fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Properties,
        old: Option<Properties>,
    ) -> Result<Outcome, HandlerError> {
        let key = Self::key(physical_id)?;
        if let Some(old) =
            old.filter(|old| old.service != props.service || old.account_id.trim() != props.account_id.trim())
        {
            return Err(HandlerError::Failed(format!(
                "this resource is {}'s delegated administrator {}; an Update cannot make it {}'s {} (the old one must \
                 be removed before another is designated): nothing was changed. Remove the resource (or set the \
                 parameter back), deploy, then add it with the new account",
                old.service.as_str(),
                old.account_id.trim(),
                props.service.as_str(),
                props.account_id.trim()
            )));
        }
        let mut outcome = self.converge(inv, &key, &props, false).await?;
        outcome.physical_id = physical_id.to_string();
        Ok(outcome)
    }

    async fn delete(&self, inv: &Invocation, physical_id: &str, props: Option<Properties>) -> Result<(), HandlerError> {
        let key = Self::key(physical_id)?;
        self.release(inv, &key, props.as_ref(), false).await
    }

    async fn undo_create(
        &self,
        inv: &Invocation,
        request_id: &str,
        props: Option<Properties>,
    ) -> Result<(), HandlerError> {
        self.release(inv, request_id, props.as_ref(), true).await
    }

    /// Read-only: see `impl Verifier` above.
    async fn verify(&self, inv: &Invocation) -> Result<Vec<verify::ResourceReport>, HandlerError> {
        verify::pass(self, inv).await
    }
}
