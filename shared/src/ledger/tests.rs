//! The ledger's own logic and error paths, with SSM mocked (aws-smithy-mocks).

use super::*;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::json;

const SETTING: &str = "ebs/default-encryption";

fn inv(logical_id: &str) -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", "111122223333");
    inv.stack_id = "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/0b4b8f70".into();
    inv.logical_resource_id = logical_id.into();
    inv
}

fn ledger(rules: &[&Rule]) -> Ledger {
    Ledger::from_client(mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules), "test-handler")
}

fn claim_of(key: &str, logical_id: &str, wants: Value, prior: Option<Value>, since: u64) -> Claim {
    Claim {
        v: 1,
        claimant: Claimant {
            key: key.into(),
            handler: "test-handler".into(),
            stack_id: "arn:aws:cloudformation:eu-west-1:111122223333:stack/Other/1".into(),
            logical_id: logical_id.into(),
        },
        wants,
        prior,
        since,
    }
}

fn claims_listed(claims: Vec<Claim>) -> Rule {
    mock!(Ssm::get_parameters_by_path).then_output(move || {
        let parameters = claims
            .iter()
            .map(|c| {
                Parameter::builder()
                    .name(format!("{}/{}", Ledger::claims_path(SETTING), c.claimant.key))
                    .value(serde_json::to_string(c).unwrap())
                    .build()
            })
            .collect();
        GetParametersByPathOutput::builder()
            .set_parameters(Some(parameters))
            .build()
    })
}

fn put_ok() -> Rule {
    mock!(Ssm::put_parameter).then_output(|| PutParameterOutput::builder().version(1).build())
}

fn delete_ok() -> Rule {
    mock!(Ssm::delete_parameter).then_output(|| DeleteParameterOutput::builder().build())
}

fn put_error(code: &'static str, message: &'static str) -> Rule {
    mock!(Ssm::put_parameter)
        .then_error(move || PutParameterError::generic(ErrorMetadata::builder().code(code).message(message).build()))
}

#[tokio::test]
async fn the_first_claimant_records_what_it_observed_as_the_prior_state() {
    let (list, put) = (claims_listed(vec![]), put_ok());
    let l = ledger(&[&list, &put]);
    let claim = l
        .claim(
            &inv("Ebs"),
            "k1",
            SETTING,
            json!({"key": "a"}),
            Some(json!({"enabled": false})),
        )
        .await
        .unwrap();
    assert_eq!(claim.prior, Some(json!({"enabled": false})));
    assert_eq!(claim.claimant.logical_id, "Ebs");
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn a_second_claimant_inherits_the_prior_state_of_the_first() {
    let first = claim_of("k1", "Old", json!({"key": "a"}), Some(json!({"enabled": false})), 100);
    let (list, put) = (claims_listed(vec![first]), put_ok());
    let l = ledger(&[&list, &put]);
    // It observes the setting as the first claimant left it (on): that is not the state to restore.
    let claim = l
        .claim(
            &inv("New"),
            "k2",
            SETTING,
            json!({"key": "a"}),
            Some(json!({"enabled": true})),
        )
        .await
        .unwrap();
    assert_eq!(claim.prior, Some(json!({"enabled": false})));
    assert_eq!(claim.since, 100);
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn a_conflicting_claimant_is_refused_with_the_other_named_and_nothing_written() {
    let first = claim_of(
        "k1",
        "EbsDefault",
        json!({"key": "a"}),
        Some(json!({"enabled": false})),
        100,
    );
    let (list, put) = (claims_listed(vec![first]), put_ok());
    let l = ledger(&[&list, &put]);
    let err = l
        .claim(&inv("New"), "k2", SETTING, json!({"key": "b"}), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already claimed by EbsDefault in stack Other"), "{err}");
    assert!(err.contains("/tapguard/claims/ebs/default-encryption/k1"), "{err}");
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn an_unchanged_claim_is_not_rewritten() {
    let mine = claim_of("k1", "Ebs", json!({"key": "a"}), Some(json!({"enabled": false})), 100);
    let (list, put) = (claims_listed(vec![mine]), put_ok());
    let l = ledger(&[&list, &put]);
    let claim = l
        .claim(&inv("Ebs"), "k1", SETTING, json!({"key": "a"}), None)
        .await
        .unwrap();
    assert_eq!(claim.prior, Some(json!({"enabled": false})), "the prior state is kept");
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn release_by_one_of_two_claimants_leaves_the_setting_claimed() {
    let a = claim_of("k1", "Old", json!(1), Some(json!(0)), 100);
    let b = claim_of("k2", "New", json!(1), Some(json!(0)), 100);
    let (list, delete) = (claims_listed(vec![a, b]), delete_ok());
    let l = ledger(&[&list, &delete]);
    match l.release(&inv("Old"), "k1", SETTING).await.unwrap() {
        Release::StillClaimed(others) => assert_eq!(others[0].logical_id, "New"),
        other => panic!("expected StillClaimed, got {other:?}"),
    }
    assert_eq!(delete.num_calls(), 1, "its own claim is removed");
}

#[tokio::test]
async fn release_by_the_last_claimant_returns_the_prior_state() {
    let a = claim_of("k1", "Old", json!(1), Some(json!(0)), 100);
    let (list, delete) = (claims_listed(vec![a]), delete_ok());
    let l = ledger(&[&list, &delete]);
    let release = l.release(&inv("Old"), "k1", SETTING).await.unwrap();
    assert_eq!(
        release,
        Release::Last {
            prior: Some(json!(0)),
            wants: json!(1)
        }
    );
}

#[tokio::test]
async fn release_without_any_claim_is_unclaimed_and_deletes_nothing() {
    let (list, delete) = (claims_listed(vec![]), delete_ok());
    let l = ledger(&[&list, &delete]);
    assert_eq!(l.release(&inv("X"), "k9", SETTING).await.unwrap(), Release::Unclaimed);
    assert_eq!(delete.num_calls(), 0);
}

#[tokio::test]
async fn a_missing_record_is_none_and_a_damaged_one_is_treated_as_missing() {
    let missing = mock!(Ssm::get_parameter)
        .then_error(|| GetParameterError::generic(ErrorMetadata::builder().code("ParameterNotFound").build()));
    let l = ledger(&[&missing]);
    assert_eq!(l.load::<Value>(&inv("X"), "k").await.unwrap(), None);

    let damaged = mock!(Ssm::get_parameter).then_output(|| {
        GetParameterOutput::builder()
            .parameter(Parameter::builder().name("n").value("{not json").build())
            .build()
    });
    let l = ledger(&[&damaged]);
    assert_eq!(l.load::<Value>(&inv("X"), "k").await.unwrap(), None);
}

#[tokio::test]
async fn a_record_round_trips_through_save_and_load() {
    let record = ledger(&[]).record(&inv("Ebs"), json!({"created": true}));
    let text = serde_json::to_string(&record).unwrap();
    let get = mock!(Ssm::get_parameter).then_output(move || {
        GetParameterOutput::builder()
            .parameter(Parameter::builder().name("n").value(text.clone()).build())
            .build()
    });
    let l = ledger(&[&get]);
    assert_eq!(l.load::<Value>(&inv("Ebs"), "k").await.unwrap(), Some(record));
}

#[tokio::test]
async fn denied_ssm_names_the_operation_the_code_and_the_ledger_path() {
    let put = put_error("AccessDeniedException", "not authorized to perform ssm:PutParameter");
    let l = ledger(&[&put]);
    let record = l.record(&inv("Ebs"), json!({}));
    let err = l.save(&inv("Ebs"), "k1", &record).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let text = err.to_string();
    assert!(text.starts_with("PutParameter failed: AccessDeniedException"), "{text}");
    assert!(text.contains("/tapguard/ledger/test-handler/k1"), "{text}");
    assert!(text.contains("allowed ssm:PutParameter"), "{text}");
}

#[tokio::test]
async fn throttling_past_the_sdk_retries_is_an_error_that_says_so() {
    let put = put_error("ThrottlingException", "Rate exceeded");
    let l = ledger(&[&put]);
    let record = l.record(&inv("Ebs"), json!({}));
    let err = l.save(&inv("Ebs"), "k1", &record).await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert!(err.to_string().contains("kept throttling"), "{err}");
}

#[tokio::test]
async fn an_entry_over_the_standard_tier_limit_is_refused_before_any_call() {
    let put = put_ok();
    let l = ledger(&[&put]);
    let record = l.record(&inv("Big"), json!({"blob": "x".repeat(MAX_VALUE_BYTES)}));
    let err = l.save(&inv("Big"), "k1", &record).await.unwrap_err().to_string();
    assert!(
        err.contains("more than the 4096 an SSM standard parameter holds"),
        "{err}"
    );
    assert_eq!(put.num_calls(), 0);
}

#[test]
fn physical_ids_carry_the_key_and_failed_creates_give_their_request_id() {
    let id = physical_id("ebs-default-encryption:", "eu-west-1", "5d478078-1a1a");
    assert_eq!(id, "ebs-default-encryption:eu-west-1:ledger-5d478078-1a1a");
    assert_eq!(key_of("ebs-default-encryption:", &id).as_deref(), Some("5d478078-1a1a"));
    assert_eq!(
        key_of("ebs-default-encryption:", "tapguard-failed-create:abc").as_deref(),
        Some("abc")
    );
    assert_eq!(
        key_of(
            "ebs-default-encryption:",
            "ebs-default-encryption:eu-west-1:was-enabled=false:was-key=alias/aws/ebs"
        ),
        None,
        "the old format has no ledger key"
    );
    assert_eq!(key_of("ebs-default-encryption:", "other:eu-west-1:ledger-x"), None);
}

#[test]
fn segments_are_encoded_injectively_into_ssm_names() {
    assert_eq!(encode_segment("abc-1.2"), "abc-1.2");
    assert_eq!(encode_segment("ops,bob"), "ops_2Cbob");
    assert_ne!(encode_segment("ops_bob"), encode_segment("ops,bob"));
    for text in [
        "ops,bob",
        "ops_bob",
        "arn:aws:securityhub:::ruleset/cis",
        "ünïcode",
        "plain-1.2",
    ] {
        assert_eq!(decode_segment(&encode_segment(text)).as_deref(), Some(text));
    }
    assert_eq!(decode_segment("bad_Z1"), None);
    assert_eq!(
        Ledger::claims_path(&setting(&[
            "securityhub",
            "standard",
            "arn:aws:securityhub:::ruleset/cis"
        ])),
        "/tapguard/claims/securityhub/standard/arn_3Aaws_3Asecurityhub_3A_3A_3Aruleset_2Fcis"
    );
}

#[test]
fn claimants_are_named_by_logical_id_and_stack_name() {
    let claimant = claim_of("k", "EbsDefault", json!(1), None, 0).claimant;
    assert_eq!(claimant.to_string(), "EbsDefault in stack Other (test-handler)");
}
