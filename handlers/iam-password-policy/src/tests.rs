//! Unit tests of the resource's paths, with IAM mocked (aws-smithy-mocks) and the ledger kept in the
//! in-memory Parameter Store ([`MemoryStore`]).

use std::time::Duration;

use aws_sdk_iam::operation::delete_account_password_policy::DeleteAccountPasswordPolicyOutput;
use aws_sdk_iam::operation::get_account_password_policy::{
    GetAccountPasswordPolicyError, GetAccountPasswordPolicyOutput,
};
use aws_sdk_iam::operation::update_account_password_policy::{
    UpdateAccountPasswordPolicyError, UpdateAccountPasswordPolicyInput, UpdateAccountPasswordPolicyOutput,
};
use aws_sdk_iam::Client as Iam;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger};

use crate::{setting, IamPasswordPolicy, PasswordPolicy, Properties};

const HANDLER: &str = "iam-password-policy";
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

/// The ledger's Parameter Store holding `claims` on this handler's setting.
fn store_with_claims(claims: &[Value]) -> MemoryStore {
    MemoryStore::with_claims(&setting(), claims)
}

/// The same, with the record the resource under test (`req-1`) wrote on its Create.
fn store_after_create(claims: &[Value]) -> MemoryStore {
    let store = store_with_claims(claims);
    let ledger = ledger_of(&store);
    let mut record = ledger.record(&inv(), ());
    record.settings.push(setting());
    store.insert_record(&ledger, "req-1", &record);
    store
}

fn ledger_of(store: &MemoryStore) -> Ledger {
    Ledger::from_client(store.client(), HANDLER)
}

/// Where the ledger keeps the record of resource `key`.
fn record_name(key: &str) -> String {
    ledger_of(&MemoryStore::new()).record_name(key)
}

/// Where the ledger keeps the claim of resource `key` on the account's policy.
fn claim_name(key: &str) -> String {
    Ledger::claim_name(&setting(), key)
}

/// The record of `key` in the store: it lists the setting, and names the resource that wrote it.
fn assert_recorded(store: &MemoryStore, key: &str) {
    let record = store.json(&record_name(key)).expect("the record is written");
    assert_eq!(record["settings"], json!([setting()]), "{record}");
    assert_eq!(record["logical_id"], "PasswordPolicy", "{record}");
}

/// The claim of `key` in the store, with what it asks for and the prior policy it keeps.
fn assert_claimed(store: &MemoryStore, key: &str, wants: &PasswordPolicy, prior: Value) {
    let claim = store.json(&claim_name(key)).expect("the claim is written");
    assert_eq!(claim["claimant"]["key"], key, "{claim}");
    assert_eq!(claim["claimant"]["handler"], HANDLER, "{claim}");
    assert_eq!(claim["wants"], json!(wants), "{claim}");
    assert_eq!(claim["prior"], prior, "{claim}");
}

/// A claim on the account's policy, as the ledger stores it.
fn claim(key: &str, logical_id: &str, wants: &PasswordPolicy, prior: Value) -> Value {
    json!({"v": 1, "claimant": {"key": key, "handler": "iam-password-policy",
        "stack_id": "arn:aws:cloudformation:ap-southeast-2:111122223333:stack/TapStack/2", "logical_id": logical_id},
        "wants": wants, "prior": prior, "since": 100})
}

fn handler(iam_rules: &[&Rule], store: &MemoryStore) -> IamPasswordPolicy {
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, iam_rules);
    IamPasswordPolicy::from_clients(iam, ledger_of(store)).with_verify_pause(Duration::ZERO)
}

#[tokio::test]
async fn create_on_an_account_without_a_policy_claims_sets_and_verifies() {
    let (get, update, store) = (reads(&[None, Some(strict())]), update_to(strict()), MemoryStore::new());
    let h = handler(&[&get, &update], &store);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(out.physical_id, ID);
    assert_eq!(out.data["MinimumPasswordLength"], "14");
    assert_eq!(out.data["PasswordReusePrevention"], "24");
    assert_eq!(out.data["MaxPasswordAge"], "90");
    assert_eq!(out.data["PreviousPolicy"], "none");
    assert_eq!(out.data["KeptFromPreviousPolicy"], "");
    assert_eq!(update.num_calls(), 1);
    assert_recorded(&store, "req-1");
    assert_claimed(&store, "req-1", &strict(), json!({"exists": false}));
    assert_eq!(
        store.calls("PutParameter"),
        2,
        "the record and the claim, each written once"
    );
}

#[tokio::test]
async fn a_weaker_prior_policy_is_raised_but_its_stronger_fields_are_kept() {
    // The prior policy expires passwords after 30 days, hard: shorter than the 90 asked, so it stays.
    let merged = PasswordPolicy {
        max_password_age: 30,
        hard_expiry: true,
        ..strict()
    };
    let (get, update, store) = (
        reads(&[Some(weak_with_hard_expiry()), Some(merged.clone())]),
        update_to(merged),
        MemoryStore::new(),
    );
    let h = handler(&[&get, &update], &store);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(out.data["PreviousPolicy"], "adopted");
    assert_eq!(out.data["MaxPasswordAge"], "30");
    assert_eq!(out.data["HardExpiry"], "true");
    assert_eq!(out.data["KeptFromPreviousPolicy"], "MaxPasswordAge,HardExpiry");
    assert_eq!(update.num_calls(), 1);
    assert_claimed(
        &store,
        "req-1",
        &strict(),
        json!({"exists": true, "policy": weak_with_hard_expiry()}),
    );
}

#[tokio::test]
async fn a_policy_already_as_asked_is_only_read() {
    let (get, update, store) = (
        reads(&[Some(strict()), Some(strict())]),
        update_to(strict()),
        MemoryStore::new(),
    );
    let h = handler(&[&get, &update], &store);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(out.data["PreviousPolicy"], "adopted");
    assert_eq!(update.num_calls(), 0);
    assert_claimed(&store, "req-1", &strict(), json!({"exists": true, "policy": strict()}));
}

#[tokio::test]
async fn an_out_of_range_property_is_refused_before_any_call() {
    let (get, update, store) = (reads(&[None]), update_to(strict()), MemoryStore::new());
    let h = handler(&[&get, &update], &store);
    let props = Properties {
        password_reuse_prevention: Some(25),
        ..strict_props()
    };
    let err = h.create(&inv(), props).await.unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid property PasswordReusePrevention: 25 is outside what IAM accepts (1 to 24)"
    );
    assert_eq!(get.num_calls() + update.num_calls(), 0);
    store.assert_untouched();
}

#[tokio::test]
async fn a_claimant_from_another_region_asking_for_another_policy_is_refused_before_any_change() {
    let other = PasswordPolicy {
        minimum_password_length: 16,
        ..strict()
    };
    let first = claim("req-0", "PasswordPolicy", &other, json!({"exists": false}));
    let store = store_with_claims(std::slice::from_ref(&first));
    let (get, update) = (reads(&[Some(other.clone())]), update_to(strict()));
    let h = handler(&[&get, &update], &store);
    let err = h.create(&inv(), strict_props()).await.unwrap_err().to_string();
    assert!(
        err.contains("already claimed by PasswordPolicy in stack TapStack"),
        "{err}"
    );
    assert!(err.contains(&claim_name("req-0")), "names the claim to drop: {err}");
    assert_eq!(update.num_calls(), 0);
    assert_eq!(
        store.names_under(&Ledger::claims_path(&setting())),
        [claim_name("req-0")],
        "no claim of the refused resource"
    );
    assert_eq!(
        store.json(&claim_name("req-0")),
        Some(first),
        "the first claim is not touched"
    );
}

#[tokio::test]
async fn a_second_claimant_with_the_same_policy_inherits_the_prior_and_changes_nothing() {
    let first = claim(
        "req-0",
        "PasswordPolicy",
        &strict(),
        json!({"exists": true, "policy": weak_with_hard_expiry()}),
    );
    let store = store_with_claims(std::slice::from_ref(&first));
    let merged = strict().stronger(&weak_with_hard_expiry());
    let (get, update) = (reads(&[Some(merged.clone()), Some(merged.clone())]), update_to(merged));
    let h = handler(&[&get, &update], &store);
    let out = h.create(&inv(), strict_props()).await.unwrap();
    assert_eq!(
        out.data["PreviousPolicy"], "adopted",
        "the first claimant's prior, not what it left"
    );
    assert_eq!(out.data["KeptFromPreviousPolicy"], "MaxPasswordAge,HardExpiry");
    assert_eq!(update.num_calls(), 0);
    assert_claimed(
        &store,
        "req-1",
        &strict(),
        json!({"exists": true, "policy": weak_with_hard_expiry()}),
    );
    assert_eq!(
        store.json(&claim_name("req-1")).unwrap()["since"],
        100,
        "the chain's start is kept"
    );
    assert_eq!(
        store.json(&claim_name("req-0")),
        Some(first),
        "the first claim is not touched"
    );
}

#[tokio::test]
async fn a_read_back_that_keeps_disagreeing_is_not_verified_and_names_the_field() {
    let weaker = PasswordPolicy {
        minimum_password_length: 8,
        ..strict()
    };
    let (get, update, store) = (
        reads(&[
            None,
            Some(weaker.clone()),
            Some(weaker.clone()),
            Some(weaker.clone()),
            Some(weaker.clone()),
            Some(weaker),
        ]),
        update_to(strict()),
        MemoryStore::new(),
    );
    let h = handler(&[&get, &update], &store);
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
    let (get, update, store) = (
        reads(&[None, None, Some(strict())]),
        update_to(strict()),
        MemoryStore::new(),
    );
    let h = handler(&[&get, &update], &store);
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
    let store = MemoryStore::new();
    let h = handler(&[&get, &update], &store);
    let err = h.create(&inv(), strict_props()).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    let text = err.to_string();
    assert!(
        text.starts_with("UpdateAccountPasswordPolicy failed: AccessDenied: User is not authorized"),
        "{text}"
    );
    assert!(text.contains("iam:UpdateAccountPasswordPolicy was denied"), "{text}");
    // Recorded and claimed before the change was tried: the rollback Delete finds the prior policy.
    assert_recorded(&store, "req-1");
    assert_claimed(&store, "req-1", &strict(), json!({"exists": false}));
}

#[tokio::test]
async fn the_last_claimant_puts_back_the_weaker_policy_found_before() {
    let merged = strict().stronger(&weak_with_hard_expiry());
    let store = store_after_create(&[claim(
        "req-1",
        "PasswordPolicy",
        &strict(),
        json!({"exists": true, "policy": weak_with_hard_expiry()}),
    )]);
    let (get, restore) = (
        reads(&[Some(merged), Some(weak_with_hard_expiry())]),
        update_to(weak_with_hard_expiry()),
    );
    let h = handler(&[&get, &restore], &store);
    h.delete(&inv(), ID, Some(strict_props())).await.unwrap();
    assert_eq!(restore.num_calls(), 1);
    assert!(
        store.names_under("/tapguard/").is_empty(),
        "the claim and the record are removed: {:?}",
        store.names_under("/tapguard/")
    );
    assert_eq!(store.calls("DeleteParameter"), 2);
}

#[tokio::test]
async fn the_last_claimant_deletes_a_policy_its_claimants_created() {
    let store = store_after_create(&[claim("req-1", "PasswordPolicy", &strict(), json!({"exists": false}))]);
    let (get, delete) = (reads(&[Some(strict()), None]), delete_ok());
    let h = handler(&[&get, &delete], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(delete.num_calls(), 1);
    assert!(store.is_empty(), "the claim and the record are removed");
}

#[tokio::test]
async fn delete_while_another_region_still_claims_the_policy_changes_nothing() {
    let other = claim("req-0", "PasswordPolicy", &strict(), json!({"exists": false}));
    let store = store_after_create(&[
        other.clone(),
        claim("req-1", "PasswordPolicy", &strict(), json!({"exists": false})),
    ]);
    let (get, delete, update) = (reads(&[]), delete_ok(), update_to(strict()));
    let h = handler(&[&get, &delete, &update], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(get.num_calls() + delete.num_calls() + update.num_calls(), 0);
    assert_eq!(
        store.names_under("/tapguard/"),
        [claim_name("req-0")],
        "its own claim and record are removed, the other region's claim stays"
    );
    assert_eq!(store.json(&claim_name("req-0")), Some(other));
}

#[tokio::test]
async fn a_policy_someone_changed_since_is_left_alone() {
    let theirs = PasswordPolicy {
        minimum_password_length: 20,
        ..strict()
    };
    let store = store_after_create(&[claim("req-1", "PasswordPolicy", &strict(), json!({"exists": false}))]);
    let (get, delete, update) = (reads(&[Some(theirs)]), delete_ok(), update_to(strict()));
    let h = handler(&[&get, &delete, &update], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(delete.num_calls() + update.num_calls(), 0);
    assert!(store.is_empty(), "the claim and the record are removed");
}

#[tokio::test]
async fn a_lost_ledger_changes_nothing_on_delete() {
    let store = MemoryStore::new();
    let (get, delete, update) = (reads(&[Some(strict())]), delete_ok(), update_to(strict()));
    let h = handler(&[&get, &delete, &update], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(get.num_calls() + delete.num_calls() + update.num_calls(), 0);
    store.assert_nothing_written();
}

#[tokio::test]
async fn an_update_after_a_lost_ledger_never_weakens_the_policy_in_place() {
    // Without the ledger the prior is unknown: the policy in place stands in for it.
    let store = MemoryStore::new();
    let in_place = PasswordPolicy {
        minimum_password_length: 20,
        ..strict()
    };
    let (get, update) = (reads(&[Some(in_place.clone()), Some(in_place)]), update_to(strict()));
    let h = handler(&[&get, &update], &store);
    let out = h.update(&inv(), ID, strict_props(), None).await.unwrap();
    assert_eq!(out.data["MinimumPasswordLength"], "20");
    assert_eq!(out.data["PreviousPolicy"], "unknown");
    assert_eq!(update.num_calls(), 0);
    assert_recorded(&store, "req-1");
    assert_claimed(&store, "req-1", &strict(), Value::Null);
}

#[tokio::test]
async fn a_physical_id_of_another_handler_is_refused() {
    let store = MemoryStore::new();
    let h = handler(&[], &store);
    let err = h
        .delete(&inv(), "ebs-default-encryption:eu-west-1:ledger-x", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not one this handler issues"), "{err}");
    store.assert_untouched();
}

#[tokio::test]
async fn a_claim_that_cannot_be_dropped_fails_the_delete_and_the_retry_finishes_it() {
    let mine = claim("req-1", "PasswordPolicy", &strict(), json!({"exists": false}));
    let store = store_after_create(std::slice::from_ref(&mine));
    store.fail("DeleteParameter", "AccessDeniedException");
    // The policy the claimants created, deleted and read back as gone; the retry finds it gone.
    let (get, delete) = (reads(&[Some(strict()), None, None]), delete_ok());
    let h = handler(&[&get, &delete], &store);
    let err = h.delete(&inv(), ID, None).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let text = err.to_string();
    assert!(
        text.starts_with("DeleteParameter failed: AccessDeniedException"),
        "{text}"
    );
    assert!(text.contains(&claim_name("req-1")), "{text}");
    assert!(text.contains("allowed ssm:DeleteParameter"), "{text}");
    assert_eq!(
        store.json(&claim_name("req-1")),
        Some(mine),
        "the claim stays for the retry"
    );
    assert_recorded(&store, "req-1");

    store.heal("DeleteParameter");
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(
        delete.num_calls(),
        1,
        "the policy is deleted once, not again on the retry"
    );
    assert!(store.is_empty(), "the claim and the record are removed");
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
