"""Delegated administrators as AWS has them, for Custom::DelegatedAdministrator (GuardDuty and AWS Config).

State stays on moto's own backends (GuardDuty's per account and region `admin_account_ids`, Organizations'
`admins` and `services`), so `POST /moto-api/reset` clears it with everything else.

GuardDuty (moto 5.2 has EnableOrganizationAdminAccount and ListOrganizationAdminAccounts, which accept any
caller and any account, append duplicates, and no DisableOrganizationAdminAccount):
- Only the organization's management account may call EnableOrganizationAdminAccount,
  ListOrganizationAdminAccounts and DisableOrganizationAdminAccount; any other caller gets
  `BadRequestException` (GuardDuty API Reference: "Only the organization's management account can run
  this API operation").
- The account designated must be an account of the caller's organization, else `BadRequestException`.
- One delegated administrator per organization and region (GuardDuty User Guide, "Each organization can
  have only one delegated GuardDuty administrator account per Region"): enabling another account where
  one is designated is a `BadRequestException`; enabling the same account again changes nothing.
- Designating a member makes GuardDuty a trusted service of the organization and registers the account
  as delegated administrator of `guardduty.amazonaws.com` in Organizations (GuardDuty User Guide,
  "Permissions required to designate a delegated GuardDuty administrator account": "This enables
  GuardDuty as a trusted service in AWS Organizations"). DisableOrganizationAdminAccount removes the
  region's designation only: the Organizations registration stays ("Changing the delegated GuardDuty
  administrator account": deregistering in Organizations is a separate, one-time global action).
  Disabling an account that is not the region's administrator is a `BadRequestException`.
- The call log names the REST operations `EnableOrganizationAdminAccount` (`POST /admin/enable`),
  `ListOrganizationAdminAccounts` (`GET /admin`) and `DisableOrganizationAdminAccount`
  (`POST /admin/disable`), so faults can target them.

Organizations (moto 5.2 does not know `config.amazonaws.com` as a delegated-administrator principal):
- `config.amazonaws.com` is accepted by RegisterDelegatedAdministrator, ListDelegatedAdministrators and
  DeregisterDelegatedAdministrator, as is `config-multiaccountsetup.amazonaws.com` (AWS Config Developer
  Guide, "Registering a Delegated Administrator", registers both).

Test control: `POST /tapguard/organizations/member` `{"account": M, "member": "222222222222"}` makes M the
management account of an organization (created with all features if M has none) and adds an ACTIVE member
account with that id, so tests and `tapguard local` can name the member in their properties (moto's
CreateAccount picks a random id). Answers `{"organization": id, "member": id}`.
"""

import json
import re

from moto.guardduty.exceptions import GuardDutyException
from moto.guardduty.models import GuardDutyBackend
from moto.guardduty.responses import GuardDutyResponse
from moto.guardduty import urls as guardduty_urls
from moto.organizations.models import FakeAccount, FakeDelegatedAdministrator, organizations_backends

import faults

CONFIG_PRINCIPAL = "config.amazonaws.com"
GUARDDUTY_PRINCIPAL = "guardduty.amazonaws.com"


class BadRequest(GuardDutyException):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("BadRequestException", message)


def _organization_of(account_id: str):
    """The Organizations backend whose management account is `account_id`, or None."""
    backend = organizations_backends[account_id]["aws"]
    if backend.org is None or backend.org.master_account_id != account_id:
        return None
    return backend


def _management_only(account_id: str):
    backend = _organization_of(account_id)
    if backend is None:
        raise BadRequest(
            "The request is rejected because the current account is not the management account of an organization."
        )
    return backend


def _enable_organization_admin_account(self: GuardDutyBackend, admin_account_id: str) -> None:
    org = _management_only(self.account_id)
    if not any(a.id == admin_account_id for a in org.accounts):
        raise BadRequest(
            f"The request is rejected because the account {admin_account_id} is not a member of the organization."
        )
    others = [a for a in self.admin_account_ids if a != admin_account_id]
    if others:
        raise BadRequest(
            "The request is rejected because the organization already has a delegated administrator account "
            f"({others[0]}) in this Region."
        )
    if admin_account_id not in self.admin_account_ids:
        self.admin_account_ids.append(admin_account_id)
    if admin_account_id != org.account_id:
        if not any(s["ServicePrincipal"] == GUARDDUTY_PRINCIPAL for s in org.services):
            org.enable_aws_service_access(ServicePrincipal=GUARDDUTY_PRINCIPAL)
        admin = next((a for a in org.admins if a.account.id == admin_account_id), None)
        if admin is None or GUARDDUTY_PRINCIPAL not in admin.services:
            org.register_delegated_administrator(AccountId=admin_account_id, ServicePrincipal=GUARDDUTY_PRINCIPAL)


def _list_organization_admin_accounts(self: GuardDutyBackend) -> list:
    _management_only(self.account_id)
    return self.admin_account_ids


def _disable_organization_admin_account(self: GuardDutyResponse) -> str:
    params = json.loads(self.body or "{}")
    account = params.get("adminAccountId") or ""
    backend = self.guardduty_backend
    _management_only(backend.account_id)
    if account not in backend.admin_account_ids:
        raise BadRequest(
            f"The request is rejected because the account {account} is not the delegated administrator in this Region."
        )
    backend.admin_account_ids.remove(account)
    return "{}"


def _control_member(body: dict) -> dict:
    account = body.get("account")
    member = body.get("member")
    if not account or not member:
        raise ValueError("'account' and 'member' are required")
    backend = organizations_backends[account]["aws"]
    if backend.org is None:
        backend.create_organization(region="us-east-1", FeatureSet="ALL")
    if not any(a.id == member for a in backend.accounts):
        new = FakeAccount(backend.org, AccountName=f"member-{member}", Email=f"member-{member}@example.com")
        new.id = member
        backend.accounts.append(new)
        organizations_backends.master_accounts[member] = (account, backend.partition)
    return {"organization": backend.org.id, "member": member}


def install() -> None:
    if CONFIG_PRINCIPAL not in FakeDelegatedAdministrator.SUPPORTED_SERVICES:
        FakeDelegatedAdministrator.SUPPORTED_SERVICES.append(CONFIG_PRINCIPAL)
    GuardDutyBackend.enable_organization_admin_account = _enable_organization_admin_account
    GuardDutyBackend.list_organization_admin_accounts = _list_organization_admin_accounts
    GuardDutyResponse.disable_organization_admin_account = _disable_organization_admin_account
    guardduty_urls.url_paths["{0}/admin/disable$"] = GuardDutyResponse.dispatch
    faults.REST_OPERATIONS.extend(
        [
            ("POST", re.compile(r"^/admin/enable$"), "EnableOrganizationAdminAccount"),
            ("GET", re.compile(r"^/admin$"), "ListOrganizationAdminAccounts"),
            ("POST", re.compile(r"^/admin/disable$"), "DisableOrganizationAdminAccount"),
        ]
    )
    faults.CONTROLS[("POST", "/tapguard/organizations/member")] = _control_member
