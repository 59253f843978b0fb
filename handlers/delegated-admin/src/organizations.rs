//! AWS Config's delegated administrator, through Organizations: `ListDelegatedAdministrators`,
//! `RegisterDelegatedAdministrator`, `DeregisterDelegatedAdministrator`, and
//! `ListAWSServiceAccessForOrganization` for the trusted access they need. Organizations is global: one
//! registration per service principal for the whole organization.

use aws_sdk_organizations::Client as Organizations;
use tapguard_shared::{HandlerError, Invocation};

/// The two service principals of AWS Config's delegated administrator (AWS Config Developer Guide,
/// "Registering a Delegated Administrator"): organization rules and conformance packs, and aggregation.
pub const CONFIG_PRINCIPALS: [&str; 2] = ["config-multiaccountsetup.amazonaws.com", "config.amazonaws.com"];

/// The accounts registered as delegated administrators of `principal`.
pub(crate) async fn admins(
    org: &Organizations,
    inv: &Invocation,
    principal: &str,
) -> Result<Vec<String>, HandlerError> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let call = org
            .list_delegated_administrators()
            .service_principal(principal)
            .set_next_token(token.clone())
            .send();
        let out = inv
            .aws("organizations", "ListDelegatedAdministrators", call)
            .await
            .map_err(advise)?;
        ids.extend(
            out.delegated_administrators()
                .iter()
                .filter_map(|a| a.id())
                .map(str::to_string),
        );
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(ids);
        }
    }
}

/// The service principals with trusted access to the organization.
pub(crate) async fn trusted(org: &Organizations, inv: &Invocation) -> Result<Vec<String>, HandlerError> {
    let mut principals = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let call = org
            .list_aws_service_access_for_organization()
            .set_next_token(token.clone())
            .send();
        let out = inv
            .aws("organizations", "ListAWSServiceAccessForOrganization", call)
            .await
            .map_err(advise)?;
        principals.extend(
            out.enabled_service_principals()
                .iter()
                .filter_map(|p| p.service_principal())
                .map(str::to_string),
        );
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(principals);
        }
    }
}

pub(crate) async fn register(
    org: &Organizations,
    inv: &Invocation,
    account: &str,
    principal: &str,
) -> Result<(), HandlerError> {
    let call = org
        .register_delegated_administrator()
        .account_id(account)
        .service_principal(principal)
        .send();
    inv.aws("organizations", "RegisterDelegatedAdministrator", call)
        .await
        .map_err(|e| advise(e).with_context(principal))?;
    Ok(())
}

pub(crate) async fn deregister(
    org: &Organizations,
    inv: &Invocation,
    account: &str,
    principal: &str,
) -> Result<(), HandlerError> {
    let call = org
        .deregister_delegated_administrator()
        .account_id(account)
        .service_principal(principal)
        .send();
    match inv.aws("organizations", "DeregisterDelegatedAdministrator", call).await {
        Ok(_) => Ok(()),
        // Already not registered: what the Delete wanted.
        Err(err) if err.code() == Some("AccountNotRegisteredException") => Ok(()),
        Err(err) => Err(advise(err).with_context(principal)),
    }
}

fn advise(err: HandlerError) -> HandlerError {
    match err.code() {
        Some("AWSOrganizationsNotInUseException") => err.with_advice(
            "this account is not in an organization: deploy OrgStack.yml with StackRole=Management in the \
             organization's management account",
        ),
        Some("AccountNotFoundException") => err.with_advice(
            "AccountId is not an account of this organization: give a member account's id (aws organizations \
             list-accounts)",
        ),
        Some("ConstraintViolationException") => err.with_advice(
            "Organizations refused the registration (the management account itself cannot be a delegated \
             administrator, and a service allows only so many): give a member account, or see the message",
        ),
        _ => err,
    }
}
