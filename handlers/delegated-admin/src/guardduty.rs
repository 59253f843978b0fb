//! GuardDuty's delegated administrator in the client's region: `ListOrganizationAdminAccounts`,
//! `EnableOrganizationAdminAccount`, `DisableOrganizationAdminAccount` (GuardDuty API Reference). Only
//! the organization's management account may call them; each organization has at most one delegated
//! GuardDuty administrator per region.

use aws_sdk_guardduty::Client as GuardDuty;
use tapguard_shared::{HandlerError, Invocation};

/// One account GuardDuty lists as an administrator, with its status (`ENABLED`, `DISABLE_IN_PROGRESS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub account: String,
    pub status: String,
}

impl Admin {
    pub fn enabled(&self) -> bool {
        self.status == "ENABLED"
    }
}

pub(crate) async fn read(gd: &GuardDuty, inv: &Invocation) -> Result<Vec<Admin>, HandlerError> {
    let mut admins = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = inv
            .aws(
                "guardduty",
                "ListOrganizationAdminAccounts",
                gd.list_organization_admin_accounts()
                    .set_next_token(token.clone())
                    .send(),
            )
            .await
            .map_err(advise)?;
        admins.extend(out.admin_accounts().iter().map(|a| Admin {
            account: a.admin_account_id().unwrap_or_default().to_string(),
            status: a.admin_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        }));
        token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        if token.is_none() {
            return Ok(admins);
        }
    }
}

pub(crate) async fn enable(gd: &GuardDuty, inv: &Invocation, account: &str) -> Result<(), HandlerError> {
    let call = gd.enable_organization_admin_account().admin_account_id(account).send();
    inv.aws("guardduty", "EnableOrganizationAdminAccount", call)
        .await
        .map_err(advise)?;
    Ok(())
}

pub(crate) async fn disable(gd: &GuardDuty, inv: &Invocation, account: &str) -> Result<(), HandlerError> {
    let call = gd.disable_organization_admin_account().admin_account_id(account).send();
    inv.aws("guardduty", "DisableOrganizationAdminAccount", call)
        .await
        .map_err(|err| {
            if err.code() == Some("BadRequestException") {
                err.with_advice(format!(
                    "GuardDuty removes a delegated administrator only once its member accounts are disassociated and \
                     deleted: in account {account}, set the organization's auto-enable to NEW or NONE, \
                     DisassociateMembers and DeleteMembers (GuardDuty User Guide, 'Changing the delegated GuardDuty \
                     administrator account'), then retry the stack deletion"
                ))
            } else {
                advise(err)
            }
        })?;
    Ok(())
}

/// BadRequestException is GuardDuty's answer to a caller that is not the organization's management
/// account, and to an account outside the organization.
fn advise(err: HandlerError) -> HandlerError {
    if err.code() == Some("BadRequestException") {
        err.with_advice(
            "only the organization's management account can designate GuardDuty's delegated administrator, and only \
             an account of its organization: deploy OrgStack.yml with StackRole=Management in the management \
             account, with AccountId a member account",
        )
    } else {
        err
    }
}
