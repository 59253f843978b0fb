//! Unit tests of the resource's paths, with GuardDuty and Organizations mocked (aws-smithy-mocks) and
//! the ledger in the in-memory Parameter Store (`MemoryStore`).

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
use aws_smithy_mocks::{mock, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger};

use crate::{setting, DelegatedAdministrator, Properties, Service};

const ADMIN: &str = "222222222222";
const OTHER: &str = "333333333333";
/// The ledger key of the resource: the RequestId of its Create.
const KEY: &str = "req-1";

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
    inv.request_id = KEY.into();
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

/// The ledger over `store`.
fn ledger(store: &MemoryStore) -> Ledger {
    Ledger::from_client(store.client(), "delegated-admin")
}

/// The parameter name of this resource's claim on `service`'s delegated administrator (in eu-west-1).
fn claim_name(service: Service) -> String {
    Ledger::claim_name(&setting(service, "eu-west-1"), KEY)
}

/// A store holding this resource's `claim` on `service`'s delegated administrator, and no record: the
/// Delete names the setting by its properties.
fn with_claim(service: Service, claim: &Value) -> MemoryStore {
    let store = MemoryStore::new();
    store.insert(&claim_name(service), claim.to_string());
    store
}

/// A claim of this resource on GuardDuty's delegated administrator as the ledger stores it.
fn claim(prior: Value) -> Value {
    json!({"v": 1, "claimant": {"key": KEY, "handler": "delegated-admin",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/OrgStack/1",
        "logical_id": "GuardDutyDelegatedAdmin"},
        "wants": {"account": ADMIN}, "prior": prior, "since": 1})
}

/// Every call made to Parameter Store, failed ones included.
fn ssm_calls(store: &MemoryStore) -> usize {
    ["GetParameter", "PutParameter", "GetParametersByPath", "DeleteParameter"]
        .iter()
        .map(|op| store.calls(op))
        .sum()
}

/// Checks that the store holds this resource's record claiming `service`'s setting, and its claim
/// asking for ADMIN with `prior` as the state found before.
fn assert_claimed(store: &MemoryStore, service: Service, prior: Value) {
    let record = store
        .json(&ledger(store).record_name(KEY))
        .expect("the record is written");
    assert_eq!(record["settings"], json!([setting(service, "eu-west-1")]), "{record}");
    assert_eq!(record["logical_id"], "GuardDutyDelegatedAdmin", "{record}");
    let claim = store.json(&claim_name(service)).expect("the claim is written");
    assert_eq!(claim["claimant"]["key"], KEY, "{claim}");
    assert_eq!(claim["wants"], json!({"account": ADMIN}), "{claim}");
    assert_eq!(claim["prior"], prior, "{claim}");
}

fn handler(gd: &[&Rule], org: &[&Rule], store: &MemoryStore) -> DelegatedAdministrator {
    let guardduty: GuardDuty = plain_mock_client!(aws_sdk_guardduty, gd);
    let organizations: Organizations = plain_mock_client!(aws_sdk_organizations, org);
    DelegatedAdministrator::from_clients(guardduty, organizations, ledger(store)).without_waiting()
}

const PHYSICAL_ID: &str = "delegated-admin:eu-west-1:ledger-req-1";

#[tokio::test]
async fn guardduty_fresh_organization_enables_after_claiming_and_reads_it_back() {
    let list = lists(vec![vec![], vec![(ADMIN, AdminStatus::Enabled)]]);
    let store = MemoryStore::new();
    // EnableOrganizationAdminAccount is answered only once the record and the claim are in the ledger.
    let (written, record) = (store.clone(), ledger(&store).record_name(KEY));
    let enable = mock!(GuardDuty::enable_organization_admin_account)
        .match_requests(move |input| {
            input.admin_account_id() == Some(ADMIN)
                && written.value(&record).is_some()
                && written.value(&claim_name(Service::GuardDuty)).is_some()
        })
        .then_output(|| EnableOrganizationAdminAccountOutput::builder().build());
    let h = handler(&[&list, &enable], &[], &store);
    let out = h.create(&inv(), props(Service::GuardDuty, ADMIN)).await.unwrap();
    assert_eq!(out.physical_id, PHYSICAL_ID);
    assert_eq!(out.data["Service"], "GuardDuty");
    assert_eq!(out.data["AdministratorAccountId"], ADMIN);
    assert_eq!(out.data["Scope"], "eu-west-1");
    assert_eq!(out.data["Adopted"], "false");
    assert_eq!(enable.num_calls(), 1);
    assert_eq!(list.num_calls(), 2, "read before, read back after");
    assert_claimed(&store, Service::GuardDuty, json!({"registered": false}));
    assert_eq!(store.calls("PutParameter"), 2, "the record and the claim, once each");
}

#[tokio::test]
async fn guardduty_the_same_account_already_designated_is_adopted_without_a_call() {
    let list = lists(vec![
        vec![(ADMIN, AdminStatus::Enabled)],
        vec![(ADMIN, AdminStatus::Enabled)],
    ]);
    let enable = enable_ok();
    let store = MemoryStore::new();
    let h = handler(&[&list, &enable], &[], &store);
    let out = h.create(&inv(), props(Service::GuardDuty, ADMIN)).await.unwrap();
    assert_eq!(out.data["Adopted"], "true");
    assert_eq!(enable.num_calls(), 0);
    assert_claimed(&store, Service::GuardDuty, json!({"registered": true}));
}

#[tokio::test]
async fn guardduty_another_account_designated_is_refused_naming_it_and_nothing_changes() {
    let list = lists(vec![vec![(OTHER, AdminStatus::Enabled)]]);
    let enable = enable_ok();
    let store = MemoryStore::new();
    let h = handler(&[&list, &enable], &[], &store);
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
    assert_eq!(enable.num_calls() + store.calls("PutParameter"), 0);
    assert_eq!(store.names_under("/tapguard/"), Vec::<String>::new());
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
    let store = MemoryStore::new();
    let h = handler(&[&list, &enable], &[], &store);
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
    // Claimed before the call: the rollback Delete of the failed Create finds what to give up.
    assert_claimed(&store, Service::GuardDuty, json!({"registered": false}));
}

#[tokio::test]
async fn guardduty_a_registration_that_never_reads_back_is_not_verified() {
    let list = lists(vec![vec![]; 6]);
    let enable = enable_ok();
    let store = MemoryStore::new();
    let h = handler(&[&list, &enable], &[], &store);
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
    let store = with_claim(Service::GuardDuty, &claim(json!({"registered": false})));
    let h = handler(&[&list, &disable], &[], &store);
    h.delete(&inv(), PHYSICAL_ID, Some(props(Service::GuardDuty, ADMIN)))
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 1);
    assert_eq!(list.num_calls(), 2, "read before, read back after");
    assert_eq!(store.calls("DeleteParameter"), 2, "the claim, then the record");
    assert_eq!(store.names_under("/tapguard/"), Vec::<String>::new());
}

#[tokio::test]
async fn guardduty_delete_of_an_adopted_designation_leaves_it() {
    let list = lists(vec![vec![(ADMIN, AdminStatus::Enabled)]]);
    let disable = disable_ok();
    let store = with_claim(Service::GuardDuty, &claim(json!({"registered": true})));
    let h = handler(&[&list, &disable], &[], &store);
    h.delete(&inv(), PHYSICAL_ID, Some(props(Service::GuardDuty, ADMIN)))
        .await
        .unwrap();
    assert_eq!(disable.num_calls() + list.num_calls(), 0);
    assert_eq!(
        store.names_under("/tapguard/"),
        Vec::<String>::new(),
        "the claim is given up all the same"
    );
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
    let held = claim(json!({"registered": false}));
    let store = with_claim(Service::GuardDuty, &held);
    let h = handler(&[&list, &disable], &[], &store);
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
    assert_eq!(store.calls("DeleteParameter"), 0);
    assert_eq!(
        store.json(&claim_name(Service::GuardDuty)),
        Some(held),
        "the claim stays for the retried Delete"
    );
}

#[tokio::test]
async fn an_account_id_that_is_not_twelve_digits_is_refused_before_any_call() {
    let list = lists(vec![]);
    let store = MemoryStore::new();
    let h = handler(&[&list], &[], &store);
    let err = h
        .create(&inv(), props(Service::GuardDuty, "12345"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid property AccountId"), "{err}");
    assert_eq!(list.num_calls() + ssm_calls(&store), 0);
}

#[tokio::test]
async fn an_update_to_another_account_is_refused_without_a_call() {
    let list = lists(vec![]);
    let store = MemoryStore::new();
    let h = handler(&[&list], &[], &store);
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
    assert_eq!(list.num_calls() + ssm_calls(&store), 0);
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
    let store = MemoryStore::new();
    let h = handler(&[], &[&access, &register], &store);
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
    assert_eq!(register.num_calls() + store.calls("PutParameter"), 0);
    assert_eq!(store.names_under("/tapguard/"), Vec::<String>::new());
}

#[tokio::test]
async fn config_registers_both_principals_and_reads_them_back() {
    let access = trusted(BOTH);
    // Before: none for either principal; after: the account for each.
    let list = delegated(vec![vec![], vec![], vec![ADMIN], vec![ADMIN]]);
    let register = mock!(Organizations::register_delegated_administrator)
        .match_requests(|input| input.account_id() == Some(ADMIN))
        .then_output(|| RegisterDelegatedAdministratorOutput::builder().build());
    let store = MemoryStore::new();
    let h = handler(&[], &[&access, &list, &register], &store);
    let out = h.create(&inv(), props(Service::Config, ADMIN)).await.unwrap();
    assert_eq!(out.data["Scope"], "organization");
    assert_eq!(out.data["Adopted"], "false");
    assert_eq!(register.num_calls(), 2);
    assert_claimed(&store, Service::Config, json!({"registered": []}));
}

#[tokio::test]
async fn config_another_registered_account_is_refused_naming_it() {
    let access = trusted(BOTH);
    let list = delegated(vec![vec![OTHER]]);
    let register = mock!(Organizations::register_delegated_administrator)
        .then_output(|| RegisterDelegatedAdministratorOutput::builder().build());
    let store = MemoryStore::new();
    let h = handler(&[], &[&access, &list, &register], &store);
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
    assert_eq!(register.num_calls() + store.calls("PutParameter"), 0);
    assert_eq!(store.names_under("/tapguard/"), Vec::<String>::new());
}
