//! Unit tests of the resource's paths, with IAM and the ledger's SSM mocked (aws-smithy-mocks).

use std::time::Duration;

use aws_sdk_iam::operation::delete_account_password_policy::DeleteAccountPasswordPolicyOutput;
use aws_sdk_iam::operation::get_account_password_policy::{
    GetAccountPasswordPolicyError, GetAccountPasswordPolicyOutput,
};
use aws_sdk_iam::operation::update_account_password_policy::{
    UpdateAccountPasswordPolicyError, UpdateAccountPasswordPolicyInput, UpdateAccountPasswordPolicyOutput,
};
use aws_sdk_iam::Client as Iam;
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

use crate::{IamPasswordPolicy, PasswordPolicy, Properties};

const ID: &str = "iam-password-policy:eu-west-1:ledger-req-1";

fn inv() -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", "111122223333");
    inv.request_id = "req-1".into();
    inv.logical_resource_id = "PasswordPolicy".into();
    inv.stack_id = "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1".into();
    inv
}

/// The CIS-style policy the tests ask for.
fn strict_props() -> Properties {
    Properties {
        minimum_password_length: Some(14),
        require_symbols: Some(true),
        require_numbers: Some(true),
        require_uppercase_characters: Some(true),
        require_lowercase_characters: Some(true),
        allow_users_to_change_password: Some(true),
        max_password_age: Some(90),
        password_reuse_prevention: Some(24),
        hard_expiry: None,
        repair_drift: false,
    }
}

fn strict() -> PasswordPolicy {
    strict_props().requested().unwrap()
}

/// A weak policy someone set before: length 8, no character classes, but hard expiry after 30 days.
fn weak_with_hard_expiry() -> PasswordPolicy {
    PasswordPolicy {
        minimum_password_length: 8,
        require_symbols: false,
        require_numbers: false,
        require_uppercase_characters: false,
        require_lowercase_characters: false,
        allow_users_to_change_password: false,
        max_password_age: 30,
        password_reuse_prevention: 0,
        hard_expiry: true,
    }
}

fn sdk(p: &PasswordPolicy) -> aws_sdk_iam::types::PasswordPolicy {
    let positive = |n: u32| (n > 0).then_some(n as i32);
    aws_sdk_iam::types::PasswordPolicy::builder()
        .minimum_password_length(p.minimum_password_length as i32)
        .require_symbols(p.require_symbols)
        .require_numbers(p.require_numbers)
        .require_uppercase_characters(p.require_uppercase_characters)
        .require_lowercase_characters(p.require_lowercase_characters)
        .allow_users_to_change_password(p.allow_users_to_change_password)
        .expire_passwords(p.max_password_age > 0)
        .set_max_password_age(positive(p.max_password_age))
        .set_password_reuse_prevention(positive(p.password_reuse_prevention))
        .set_hard_expiry(p.hard_expiry.then_some(true))
        .build()
}

/// GetAccountPasswordPolicy answering each of `reads` in turn (`None`: NoSuchEntity, as IAM answers
/// an account without a policy).
fn reads(reads: &[Option<PasswordPolicy>]) -> Rule {
    let mut seq = mock!(Iam::get_account_password_policy).sequence();
    for read in reads.iter().cloned() {
        seq = match read {
            Some(p) => seq.output(move || {
                GetAccountPasswordPolicyOutput::builder()
                    .password_policy(sdk(&p))
                    .build()
            }),
            None => seq.error(|| {
                GetAccountPasswordPolicyError::generic(
                    ErrorMetadata::builder()
                        .code("NoSuchEntity")
                        .message("The Password Policy with domain name 111122223333 cannot be found.")
                        .build(),
                )
            }),
        };
    }
    seq.build()
}

fn sends(input: &UpdateAccountPasswordPolicyInput, p: &PasswordPolicy) -> bool {
    let positive = |n: u32| (n > 0).then_some(n as i32);
    input.minimum_password_length == Some(p.minimum_password_length as i32)
        && input.require_symbols == Some(p.require_symbols)
        && input.require_numbers == Some(p.require_numbers)
        && input.require_uppercase_characters == Some(p.require_uppercase_characters)
        && input.require_lowercase_characters == Some(p.require_lowercase_characters)
        && input.allow_users_to_change_password == Some(p.allow_users_to_change_password)
        && input.max_password_age == positive(p.max_password_age)
        && input.password_reuse_prevention == positive(p.password_reuse_prevention)
        && input.hard_expiry == Some(p.hard_expiry)
}

/// UpdateAccountPasswordPolicy accepted only when it sends exactly `p`, every field.
fn update_to(p: PasswordPolicy) -> Rule {
    mock!(Iam::update_account_password_policy)
        .match_requests(move |input| sends(input, &p))
        .then_output(|| UpdateAccountPasswordPolicyOutput::builder().build())
}

fn delete_ok() -> Rule {
    mock!(Iam::delete_account_password_policy).then_output(|| DeleteAccountPasswordPolicyOutput::builder().build())
}

struct LedgerMocks {
    get: Rule,
    list: Rule,
    put: Rule,
    delete: Rule,
}

impl LedgerMocks {
    fn with_claims(claims: Vec<serde_json::Value>) -> Self {
        LedgerMocks {
            get: mock!(Ssm::get_parameter)
                .then_error(|| GetParameterError::generic(ErrorMetadata::builder().code("ParameterNotFound").build())),
            list: mock!(Ssm::get_parameters_by_path).then_output(move || {
                let parameters = claims
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        Parameter::builder()
                            .name(format!("claim-{i}"))
                            .value(c.to_string())
                            .build()
                    })
                    .collect();
                GetParametersByPathOutput::builder()
                    .set_parameters(Some(parameters))
                    .build()
            }),
            put: mock!(Ssm::put_parameter).then_output(|| PutParameterOutput::builder().version(1).build()),
            delete: mock!(Ssm::delete_parameter).then_output(|| DeleteParameterOutput::builder().build()),
        }
    }

    fn empty() -> Self {
        Self::with_claims(vec![])
    }

    fn ledger(&self) -> Ledger {
        let ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::MatchAny,
            [&self.get, &self.list, &self.put, &self.delete]
        );
        Ledger::from_client(ssm, "iam-password-policy")
    }
}

/// A claim on the account's policy, as the ledger stores it.
fn claim(key: &str, logical_id: &str, wants: &PasswordPolicy, prior: serde_json::Value) -> serde_json::Value {
    json!({"v": 1, "claimant": {"key": key, "handler": "iam-password-policy",
        "stack_id": "arn:aws:cloudformation:ap-southeast-2:111122223333:stack/TapStack/2", "logical_id": logical_id},
        "wants": wants, "prior": prior, "since": 100})
}

fn handler(iam_rules: &[&Rule], ledger: &LedgerMocks) -> IamPasswordPolicy {
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, iam_rules);
    IamPasswordPolicy::from_clients(iam, ledger.ledger()).with_verify_pause(Duration::ZERO)
}

#[tokio::test]
async fn create_on_an_account_without_a_policy_claims_sets_and_verifies() {
    let (get, update, ledger) = (
        reads(&[None, Some(strict())]),
        update_to(strict()),
        LedgerMocks::empty(),
    );
    let h = handler(&[&get, &update], &ledger);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(out.physical_id, ID);
    assert_eq!(out.data["MinimumPasswordLength"], "14");
    assert_eq!(out.data["PasswordReusePrevention"], "24");
    assert_eq!(out.data["MaxPasswordAge"], "90");
    assert_eq!(out.data["PreviousPolicy"], "none");
    assert_eq!(out.data["KeptFromPreviousPolicy"], "");
    assert_eq!(update.num_calls(), 1);
    assert_eq!(ledger.put.num_calls(), 2, "the record and the claim, before the change");
}

#[tokio::test]
async fn a_weaker_prior_policy_is_raised_but_its_stronger_fields_are_kept() {
    // The prior policy expires passwords after 30 days, hard: shorter than the 90 asked, so it stays.
    let merged = PasswordPolicy {
        max_password_age: 30,
        hard_expiry: true,
        ..strict()
    };
    let (get, update, ledger) = (
        reads(&[Some(weak_with_hard_expiry()), Some(merged.clone())]),
        update_to(merged),
        LedgerMocks::empty(),
    );
    let h = handler(&[&get, &update], &ledger);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(out.data["PreviousPolicy"], "adopted");
    assert_eq!(out.data["MaxPasswordAge"], "30");
    assert_eq!(out.data["HardExpiry"], "true");
    assert_eq!(out.data["KeptFromPreviousPolicy"], "MaxPasswordAge,HardExpiry");
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn a_policy_already_as_asked_is_only_read() {
    let (get, update, ledger) = (
        reads(&[Some(strict()), Some(strict())]),
        update_to(strict()),
        LedgerMocks::empty(),
    );
    let h = handler(&[&get, &update], &ledger);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(out.data["PreviousPolicy"], "adopted");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn an_out_of_range_property_is_refused_before_any_call() {
    let (get, update, ledger) = (reads(&[None]), update_to(strict()), LedgerMocks::empty());
    let h = handler(&[&get, &update], &ledger);
    let props = Properties {
        password_reuse_prevention: Some(25),
        ..strict_props()
    };
    let err = h.create(&inv(), props).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid property PasswordReusePrevention: 25 is outside what IAM accepts (1 to 24)"
    );
    assert_eq!(get.num_calls() + update.num_calls() + ledger.put.num_calls(), 0);
}

#[tokio::test]
async fn a_claimant_from_another_region_asking_for_another_policy_is_refused_before_any_change() {
    let other = PasswordPolicy {
        minimum_password_length: 16,
        ..strict()
    };
    let ledger = LedgerMocks::with_claims(vec![claim("req-0", "PasswordPolicy", &other, json!({"exists": false}))]);
    let (get, update) = (reads(&[Some(other.clone())]), update_to(strict()));
    let h = handler(&[&get, &update], &ledger);
    let err = h.create(&inv(), strict_props()).await.unwrap_err().to_string();
    assert!(
        err.contains("already claimed by PasswordPolicy in stack TapStack"),
        "{err}"
    );
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_second_claimant_with_the_same_policy_inherits_the_prior_and_changes_nothing() {
    let ledger = LedgerMocks::with_claims(vec![claim(
        "req-0",
        "PasswordPolicy",
        &strict(),
        json!({"exists": true, "policy": weak_with_hard_expiry()}),
    )]);
    let merged = strict().stronger(&weak_with_hard_expiry());
    let (get, update) = (reads(&[Some(merged.clone()), Some(merged.clone())]), update_to(merged));
    let h = handler(&[&get, &update], &ledger);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(
        out.data["PreviousPolicy"], "adopted",
        "the first claimant's prior, not what it left"
    );
    assert_eq!(out.data["KeptFromPreviousPolicy"], "MaxPasswordAge,HardExpiry");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_read_back_that_keeps_disagreeing_is_not_verified_and_names_the_field() {
    let weaker = PasswordPolicy {
        minimum_password_length: 8,
        ..strict()
    };
    let (get, update, ledger) = (
        reads(&[
            None,
            Some(weaker.clone()),
            Some(weaker.clone()),
            Some(weaker.clone()),
            Some(weaker.clone()),
            Some(weaker),
        ]),
        update_to(strict()),
        LedgerMocks::empty(),
    );
    let h = handler(&[&get, &update], &ledger);
    let err = h.create(&inv(), strict_props()).await.unwrap_err();
    assert!(matches!(err, HandlerError::NotVerified(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("GetAccountPasswordPolicy answers MinimumPasswordLength 8 (not 14) after 5 reads"),
        "{text}"
    );
}

#[tokio::test]
async fn a_read_back_that_catches_up_is_success() {
    let (get, update, ledger) = (
        reads(&[None, None, Some(strict())]),
        update_to(strict()),
        LedgerMocks::empty(),
    );
    let h = handler(&[&get, &update], &ledger);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(out.data["MinimumPasswordLength"], "14");
    assert_eq!(get.num_calls(), 3);
}

#[tokio::test]
async fn access_denied_names_the_operation_the_code_and_the_action() {
    let get = reads(&[None]);
    let update = mock!(Iam::update_account_password_policy).then_error(|| {
        UpdateAccountPasswordPolicyError::generic(
            ErrorMetadata::builder()
                .code("AccessDenied")
                .message("User is not authorized to perform: iam:UpdateAccountPasswordPolicy")
                .build(),
        )
    });
    let ledger = LedgerMocks::empty();
    let h = handler(&[&get, &update], &ledger);
    let err = h.create(&inv(), strict_props()).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    let text = err.to_string();
    assert!(
        text.starts_with("UpdateAccountPasswordPolicy failed: AccessDenied: User is not authorized"),
        "{text}"
    );
    assert!(text.contains("iam:UpdateAccountPasswordPolicy was denied"), "{text}");
}

#[tokio::test]
async fn the_last_claimant_puts_back_the_weaker_policy_found_before() {
    let merged = strict().stronger(&weak_with_hard_expiry());
    let ledger = LedgerMocks::with_claims(vec![claim(
        "req-1",
        "PasswordPolicy",
        &strict(),
        json!({"exists": true, "policy": weak_with_hard_expiry()}),
    )]);
    let (get, restore) = (
        reads(&[Some(merged), Some(weak_with_hard_expiry())]),
        update_to(weak_with_hard_expiry()),
    );
    let h = handler(&[&get, &restore], &ledger);
    h.delete(&inv(), ID, Some(strict_props())).await.unwrap();
    assert_eq!(restore.num_calls(), 1);
    assert_eq!(ledger.delete.num_calls(), 2, "the claim and the record are removed");
}

#[tokio::test]
async fn the_last_claimant_deletes_a_policy_its_claimants_created() {
    let ledger = LedgerMocks::with_claims(vec![claim(
        "req-1",
        "PasswordPolicy",
        &strict(),
        json!({"exists": false}),
    )]);
    let (get, delete) = (reads(&[Some(strict()), None]), delete_ok());
    let h = handler(&[&get, &delete], &ledger);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(delete.num_calls(), 1);
}

#[tokio::test]
async fn delete_while_another_region_still_claims_the_policy_changes_nothing() {
    let ledger = LedgerMocks::with_claims(vec![
        claim("req-0", "PasswordPolicy", &strict(), json!({"exists": false})),
        claim("req-1", "PasswordPolicy", &strict(), json!({"exists": false})),
    ]);
    let (get, delete, update) = (reads(&[]), delete_ok(), update_to(strict()));
    let h = handler(&[&get, &delete, &update], &ledger);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(get.num_calls() + delete.num_calls() + update.num_calls(), 0);
}

#[tokio::test]
async fn a_policy_someone_changed_since_is_left_alone() {
    let theirs = PasswordPolicy {
        minimum_password_length: 20,
        ..strict()
    };
    let ledger = LedgerMocks::with_claims(vec![claim(
        "req-1",
        "PasswordPolicy",
        &strict(),
        json!({"exists": false}),
    )]);
    let (get, delete, update) = (reads(&[Some(theirs)]), delete_ok(), update_to(strict()));
    let h = handler(&[&get, &delete, &update], &ledger);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(delete.num_calls() + update.num_calls(), 0);
}

#[tokio::test]
async fn a_lost_ledger_changes_nothing_on_delete() {
    let ledger = LedgerMocks::empty();
    let (get, delete, update) = (reads(&[Some(strict())]), delete_ok(), update_to(strict()));
    let h = handler(&[&get, &delete, &update], &ledger);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(get.num_calls() + delete.num_calls() + update.num_calls(), 0);
}

#[tokio::test]
async fn an_update_after_a_lost_ledger_never_weakens_the_policy_in_place() {
    // Without the ledger the prior is unknown: the policy in place stands in for it.
    let ledger = LedgerMocks::empty();
    let in_place = PasswordPolicy {
        minimum_password_length: 20,
        ..strict()
    };
    let (get, update) = (reads(&[Some(in_place.clone()), Some(in_place)]), update_to(strict()));
    let h = handler(&[&get, &update], &ledger);
    let out = h.update(&inv(), ID, strict_props(), None).await.unwrap();
    assert_eq!(out.data["MinimumPasswordLength"], "20");
    assert_eq!(out.data["PreviousPolicy"], "unknown");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn a_physical_id_of_another_handler_is_refused() {
    let ledger = LedgerMocks::empty();
    let h = handler(&[], &ledger);
    let err = h
        .delete(&inv(), "ebs-default-encryption:eu-west-1:ledger-x", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not one this handler issues"), "{err}");
}

#[test]
fn the_stronger_of_two_policies_is_taken_field_by_field() {
    let a = PasswordPolicy {
        minimum_password_length: 12,
        require_symbols: true,
        require_numbers: false,
        require_uppercase_characters: false,
        require_lowercase_characters: true,
        allow_users_to_change_password: false,
        max_password_age: 0,
        password_reuse_prevention: 5,
        hard_expiry: false,
    };
    let b = PasswordPolicy {
        minimum_password_length: 10,
        require_symbols: false,
        require_numbers: true,
        require_uppercase_characters: false,
        require_lowercase_characters: false,
        allow_users_to_change_password: true,
        max_password_age: 60,
        password_reuse_prevention: 3,
        hard_expiry: false,
    };
    let merged = a.stronger(&b);
    assert_eq!(merged, b.stronger(&a), "the merge does not depend on the order");
    assert_eq!(
        merged,
        PasswordPolicy {
            minimum_password_length: 12,
            require_symbols: true,
            require_numbers: true,
            require_uppercase_characters: false,
            require_lowercase_characters: true,
            allow_users_to_change_password: true,
            max_password_age: 60,
            password_reuse_prevention: 5,
            hard_expiry: false,
        }
    );
    let shorter = PasswordPolicy {
        max_password_age: 30,
        ..b.clone()
    };
    assert_eq!(b.stronger(&shorter).max_password_age, 30, "the shorter age is stronger");
    assert_eq!(
        merged.stronger_fields(&a),
        vec!["RequireNumbers", "AllowUsersToChangePassword", "MaxPasswordAge"]
    );
}

#[test]
fn absent_properties_take_iams_defaults() {
    let p = Properties::default().requested().unwrap();
    assert_eq!(p.minimum_password_length, 8);
    assert_eq!((p.max_password_age, p.password_reuse_prevention), (0, 0));
    assert!(!p.require_symbols && !p.hard_expiry && !p.allow_users_to_change_password);
    let err = Properties {
        minimum_password_length: Some(5),
        ..Default::default()
    }
    .requested()
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid property MinimumPasswordLength: 5 is outside what IAM accepts (6 to 128)"
    );
}
