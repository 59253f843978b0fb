//! Unit tests of the resource's paths, with GuardDuty, Organizations and the ledger's SSM mocked
//! (aws-smithy-mocks).

use aws_sdk_guardduty::operation::disable_organization_admin_account::{
    DisableOrganizationAdminAccountError, DisableOrganizationAdminAccountOutput,
};
use aws_sdk_guardduty::operation::enable_organization_admin_account::{
    EnableOrganizationAdminAccountError, EnableOrganizationAdminAccountOutput,
};
use aws_sdk_guardduty::operation::list_organization_admin_accounts::ListOrganizationAdminAccountsOutput;
use aws_sdk_guardduty::types::{AdminAccount, AdminStatus};
use aws_sdk_guardduty::Client as GuardDuty;
use aws_sdk_organizations::operation::list_aws_service_access_for_organization::ListAwsServiceAccessForOrganizationOutput;
use aws_sdk_organizations::operation::list_delegated_administrators::ListDelegatedAdministratorsOutput;
use aws_sdk_organizations::operation::register_delegated_administrator::RegisterDelegatedAdministratorOutput;
use aws_sdk_organizations::types::{DelegatedAdministrator as OrgAdmin, EnabledServicePrincipal};
use aws_sdk_organizations::Client as Organizations;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::Parameter;
use aws_sdk_ssm::Client as Ssm;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::json;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger};

use crate::{DelegatedAdministrator, Properties, Service};

const ADMIN: &str = "222222222222";
const OTHER: &str = "333333333333";

/// A mock client of a service whose crate is built without `test-util` (as the deployer builds
/// aws-sdk-guardduty and aws-sdk-organizations): `mock_client!` needs `with_test_defaults`, so the
/// configuration it sets is written out here.
macro_rules! plain_mock_client {
    ($krate:ident, $rules:expr) => {{
        let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = $krate::config::Config::builder()
            .behavior_version($krate::config::BehaviorVersion::latest())
            .region($krate::config::Region::new("eu-west-1"))
            .credentials_provider($krate::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .retry_config($krate::config::retry::RetryConfig::disabled())
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build();
        $krate::Client::from_conf(config)
    }};
}

fn inv() -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", "111122223333");
    inv.request_id = "req-1".into();
    inv.logical_resource_id = "GuardDutyDelegatedAdmin".into();
    inv
}

fn props(service: Service, account: &str) -> Properties {
    Properties {
        service,
        account_id: account.into(),
    }
}

fn admins(list: &[(&str, AdminStatus)]) -> ListOrganizationAdminAccountsOutput {
    ListOrganizationAdminAccountsOutput::builder()
        .set_admin_accounts(Some(
            list.iter()
                .map(|(a, s)| {
                    AdminAccount::builder()
                        .admin_account_id(*a)
                        .admin_status(s.clone())
                        .build()
                })
                .collect(),
        ))
        .build()
}

/// ListOrganizationAdminAccounts answering in turn.
fn lists(answers: Vec<Vec<(&'static str, AdminStatus)>>) -> Rule {
    let mut seq = mock!(GuardDuty::list_organization_admin_accounts).sequence();
    for answer in answers {
        seq = seq.output(move || admins(&answer));
    }
    seq.build()
}

fn enable_ok() -> Rule {
    mock!(GuardDuty::enable_organization_admin_account)
        .match_requests(|input| input.admin_account_id() == Some(ADMIN))
        .then_output(|| EnableOrganizationAdminAccountOutput::builder().build())
}

fn disable_ok() -> Rule {
    mock!(GuardDuty::disable_organization_admin_account)
        .match_requests(|input| input.admin_account_id() == Some(ADMIN))
        .then_output(|| DisableOrganizationAdminAccountOutput::builder().build())
}

struct LedgerMocks {
    get: Rule,
    list: Rule,
    put: Rule,
    delete: Rule,
}

impl LedgerMocks {
    /// The ledger holding `claims` on the resource's setting (no record: the Delete names it by its
    /// properties).
    fn with_claims(claims: Vec<serde_json::Value>) -> Self {
        LedgerMocks {
            get: mock!(Ssm::get_parameter)
                .then_error(|| GetParameterError::generic(ErrorMetadata::builder().code("ParameterNotFound").build())),
            list: mock!(Ssm::get_parameters_by_path).then_output(move || {
                let parameters = claims
                    .iter()
                    .map(|c| Parameter::builder().name("claim").value(c.to_string()).build())
                    .collect();
                GetParametersByPathOutput::builder()
                    .set_parameters(Some(parameters))
                    .build()
            }),
            put: mock!(Ssm::put_parameter).then_output(|| PutParameterOutput::builder().version(1).build()),
            delete: mock!(Ssm::delete_parameter).then_output(|| DeleteParameterOutput::builder().build()),
        }
    }

    fn ledger(&self) -> Ledger {
        let ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::MatchAny,
            [&self.get, &self.list, &self.put, &self.delete]
        );
        Ledger::from_client(ssm, "delegated-admin")
    }
}

fn claim(service: &str, prior: serde_json::Value) -> serde_json::Value {
    json!({"v": 1, "claimant": {"key": "req-1", "handler": "delegated-admin",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/OrgStack/1", "logical_id": service},
        "wants": {"account": ADMIN}, "prior": prior, "since": 1})
}

fn handler(gd: &[&Rule], org: &[&Rule], ledger: &LedgerMocks) -> DelegatedAdministrator {
    let guardduty: GuardDuty = plain_mock_client!(aws_sdk_guardduty, gd);
    let organizations: Organizations = plain_mock_client!(aws_sdk_organizations, org);
    DelegatedAdministrator::from_clients(guardduty, organizations, ledger.ledger()).without_waiting()
}

const PHYSICAL_ID: &str = "delegated-admin:eu-west-1:ledger-req-1";

#[tokio::test]
async fn guardduty_fresh_organization_enables_after_claiming_and_reads_it_back() {
    let list = lists(vec![vec![], vec![(ADMIN, AdminStatus::Enabled)]]);
    let enable = enable_ok();
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&list, &enable], &[], &ledger);
    let out = h.create(&inv(), props(Service::GuardDuty, ADMIN)).await.unwrap();
    assert_eq!(out.physical_id, PHYSICAL_ID);
    assert_eq!(out.data["Service"], "GuardDuty");
    assert_eq!(out.data["AdministratorAccountId"], ADMIN);
    assert_eq!(out.data["Scope"], "eu-west-1");
    assert_eq!(out.data["Adopted"], "false");
    assert_eq!(enable.num_calls(), 1);
    assert_eq!(list.num_calls(), 2, "read before, read back after");
    assert_eq!(
        ledger.put.num_calls(),
        2,
        "record and claim before EnableOrganizationAdminAccount"
    );
}

#[tokio::test]
async fn guardduty_the_same_account_already_designated_is_adopted_without_a_call() {
    let list = lists(vec![
        vec![(ADMIN, AdminStatus::Enabled)],
        vec![(ADMIN, AdminStatus::Enabled)],
    ]);
    let enable = enable_ok();
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&list, &enable], &[], &ledger);
    let out = h.create(&inv(), props(Service::GuardDuty, ADMIN)).await.unwrap();
    assert_eq!(out.data["Adopted"], "true");
    assert_eq!(enable.num_calls(), 0);
}

#[tokio::test]
async fn guardduty_another_account_designated_is_refused_naming_it_and_nothing_changes() {
    let list = lists(vec![vec![(OTHER, AdminStatus::Enabled)]]);
    let enable = enable_ok();
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&list, &enable], &[], &ledger);
    let err = h
        .create(&inv(), props(Service::GuardDuty, ADMIN))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already account 333333333333 (ENABLED, ListOrganizationAdminAccounts)")
            && err.contains("set AccountId to 333333333333")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(enable.num_calls() + ledger.put.num_calls(), 0);
}

#[tokio::test]
async fn guardduty_a_refused_enable_names_the_operation_code_and_what_to_do() {
    let list = lists(vec![vec![]]);
    let enable = mock!(GuardDuty::enable_organization_admin_account).then_error(|| {
        EnableOrganizationAdminAccountError::generic(
            ErrorMetadata::builder()
                .code("BadRequestException")
                .message(
                    "The request is rejected because the current account is not the organization's management account.",
                )
                .build(),
        )
    });
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&list, &enable], &[], &ledger);
    let err = h
        .create(&inv(), props(Service::GuardDuty, ADMIN))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("EnableOrganizationAdminAccount failed: BadRequestException")
            && err.contains("StackRole=Management in the management account"),
        "{err}"
    );
}

#[tokio::test]
async fn guardduty_a_registration_that_never_reads_back_is_not_verified() {
    let list = lists(vec![vec![]; 6]);
    let enable = enable_ok();
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&list, &enable], &[], &ledger);
    let err = h.create(&inv(), props(Service::GuardDuty, ADMIN)).await.unwrap_err();
    assert!(matches!(err, HandlerError::NotVerified(_)), "{err}");
    assert!(
        err.to_string()
            .contains("ListOrganizationAdminAccounts answers no administrator after 5 reads"),
        "{err}"
    );
}

#[tokio::test]
async fn guardduty_delete_of_a_designation_it_made_disables_it_and_reads_it_back() {
    let list = lists(vec![vec![(ADMIN, AdminStatus::Enabled)], vec![]]);
    let disable = disable_ok();
    let ledger = LedgerMocks::with_claims(vec![claim("GuardDutyDelegatedAdmin", json!({"registered": false}))]);
    let h = handler(&[&list, &disable], &[], &ledger);
    h.delete(&inv(), PHYSICAL_ID, Some(props(Service::GuardDuty, ADMIN)))
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 1);
    assert_eq!(ledger.delete.num_calls(), 2, "the claim, then the record");
}

#[tokio::test]
async fn guardduty_delete_of_an_adopted_designation_leaves_it() {
    let list = lists(vec![vec![(ADMIN, AdminStatus::Enabled)]]);
    let disable = disable_ok();
    let ledger = LedgerMocks::with_claims(vec![claim("GuardDutyDelegatedAdmin", json!({"registered": true}))]);
    let h = handler(&[&list, &disable], &[], &ledger);
    h.delete(&inv(), PHYSICAL_ID, Some(props(Service::GuardDuty, ADMIN)))
        .await
        .unwrap();
    assert_eq!(disable.num_calls() + list.num_calls(), 0);
}

#[tokio::test]
async fn guardduty_a_refused_disable_keeps_the_claim_and_says_to_remove_the_members_first() {
    let list = lists(vec![vec![(ADMIN, AdminStatus::Enabled)]]);
    let disable = mock!(GuardDuty::disable_organization_admin_account).then_error(|| {
        DisableOrganizationAdminAccountError::generic(
            ErrorMetadata::builder()
                .code("BadRequestException")
                .message("The request is rejected because the administrator account still has members.")
                .build(),
        )
    });
    let ledger = LedgerMocks::with_claims(vec![claim("GuardDutyDelegatedAdmin", json!({"registered": false}))]);
    let h = handler(&[&list, &disable], &[], &ledger);
    let err = h
        .delete(&inv(), PHYSICAL_ID, Some(props(Service::GuardDuty, ADMIN)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("DisableOrganizationAdminAccount failed: BadRequestException")
            && err.contains("DisassociateMembers"),
        "{err}"
    );
    assert_eq!(ledger.delete.num_calls(), 0, "the claim stays for the retried Delete");
}

#[tokio::test]
async fn an_account_id_that_is_not_twelve_digits_is_refused_before_any_call() {
    let list = lists(vec![]);
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&list], &[], &ledger);
    let err = h
        .create(&inv(), props(Service::GuardDuty, "12345"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid property AccountId"), "{err}");
    assert_eq!(list.num_calls() + ledger.list.num_calls(), 0);
}

#[tokio::test]
async fn an_update_to_another_account_is_refused_without_a_call() {
    let list = lists(vec![]);
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&list], &[], &ledger);
    let err = h
        .update(
            &inv(),
            PHYSICAL_ID,
            props(Service::GuardDuty, OTHER),
            Some(props(Service::GuardDuty, ADMIN)),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("an Update cannot make it GuardDuty's 333333333333"),
        "{err}"
    );
    assert_eq!(list.num_calls() + ledger.list.num_calls(), 0);
}

fn trusted(principals: &'static [&'static str]) -> Rule {
    mock!(Organizations::list_aws_service_access_for_organization).then_output(move || {
        ListAwsServiceAccessForOrganizationOutput::builder()
            .set_enabled_service_principals(Some(
                principals
                    .iter()
                    .map(|p| EnabledServicePrincipal::builder().service_principal(*p).build())
                    .collect(),
            ))
            .build()
    })
}

/// ListDelegatedAdministrators answering in turn, whatever the principal.
fn delegated(answers: Vec<Vec<&'static str>>) -> Rule {
    let mut seq = mock!(Organizations::list_delegated_administrators).sequence();
    for answer in answers {
        seq = seq.output(move || {
            ListDelegatedAdministratorsOutput::builder()
                .set_delegated_administrators(Some(
                    answer.iter().map(|a| OrgAdmin::builder().id(*a).build()).collect(),
                ))
                .build()
        });
    }
    seq.build()
}

const BOTH: &[&str] = &["config.amazonaws.com", "config-multiaccountsetup.amazonaws.com"];

#[tokio::test]
async fn config_without_trusted_access_is_refused_naming_the_principal_and_the_command() {
    let access = trusted(&["config-multiaccountsetup.amazonaws.com"]);
    let register = mock!(Organizations::register_delegated_administrator)
        .then_output(|| RegisterDelegatedAdministratorOutput::builder().build());
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[], &[&access, &register], &ledger);
    let err = h
        .create(&inv(), props(Service::Config, ADMIN))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not enabled in the organization for config.amazonaws.com")
            && err.contains("enable-aws-service-access"),
        "{err}"
    );
    assert_eq!(register.num_calls() + ledger.put.num_calls(), 0);
}

#[tokio::test]
async fn config_registers_both_principals_and_reads_them_back() {
    let access = trusted(BOTH);
    // Before: none for either principal; after: the account for each.
    let list = delegated(vec![vec![], vec![], vec![ADMIN], vec![ADMIN]]);
    let register = mock!(Organizations::register_delegated_administrator)
        .match_requests(|input| input.account_id() == Some(ADMIN))
        .then_output(|| RegisterDelegatedAdministratorOutput::builder().build());
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[], &[&access, &list, &register], &ledger);
    let out = h.create(&inv(), props(Service::Config, ADMIN)).await.unwrap();
    assert_eq!(out.data["Scope"], "organization");
    assert_eq!(out.data["Adopted"], "false");
    assert_eq!(register.num_calls(), 2);
}

#[tokio::test]
async fn config_another_registered_account_is_refused_naming_it() {
    let access = trusted(BOTH);
    let list = delegated(vec![vec![OTHER]]);
    let register = mock!(Organizations::register_delegated_administrator)
        .then_output(|| RegisterDelegatedAdministratorOutput::builder().build());
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[], &[&access, &list, &register], &ledger);
    let err = h
        .create(&inv(), props(Service::Config, ADMIN))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("for config-multiaccountsetup.amazonaws.com is already account 333333333333")
            && err.contains("deregister-delegated-administrator --account-id 333333333333"),
        "{err}"
    );
    assert_eq!(register.num_calls() + ledger.put.num_calls(), 0);
}
