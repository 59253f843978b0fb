//! The ledger's own logic and error paths, over the in-memory Parameter Store (`ssm::memory`).

use super::*;
use crate::ssm::memory::MemoryStore;
use serde_json::json;

const SETTING: &str = "ebs/default-encryption";

fn inv(logical_id: &str) -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", "111122223333");
    inv.stack_id = "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/0b4b8f70".into();
    inv.logical_resource_id = logical_id.into();
    inv
}

/// A store that holds `claims` on [`SETTING`], and the ledger over it.
fn with_claims(claims: Vec<Claim>) -> (MemoryStore, Ledger) {
    let store = MemoryStore::new();
    for claim in claims {
        store.insert(
            &Ledger::claim_name(SETTING, &claim.claimant.key),
            serde_json::to_string(&claim).unwrap(),
        );
    }
    let ledger = Ledger::from_client(store.client(), "test-handler");
    (store, ledger)
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

fn stored_claim(store: &MemoryStore, key: &str) -> Option<Claim> {
    store
        .value(&Ledger::claim_name(SETTING, key))
        .map(|v| serde_json::from_str(&v).unwrap())
}

#[tokio::test]
async fn the_first_claimant_records_what_it_observed_as_the_prior_state() {
    let (store, l) = with_claims(vec![]);
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
    assert_eq!(stored_claim(&store, "k1"), Some(claim));
    assert_eq!(store.calls("PutParameter"), 1);
}

#[tokio::test]
async fn a_second_claimant_inherits_the_prior_state_of_the_first() {
    let first = claim_of("k1", "Old", json!({"key": "a"}), Some(json!({"enabled": false})), 100);
    let (store, l) = with_claims(vec![first.clone()]);
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
    assert_eq!(stored_claim(&store, "k2"), Some(claim));
    assert_eq!(
        stored_claim(&store, "k1"),
        Some(first),
        "the first claim is not touched"
    );
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
    let (store, l) = with_claims(vec![first]);
    let err = l
        .claim(&inv("New"), "k2", SETTING, json!({"key": "b"}), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already claimed by EbsDefault in stack Other"), "{err}");
    assert!(err.contains("/tapguard/claims/ebs/default-encryption/k1"), "{err}");
    assert_eq!(store.calls("PutParameter"), 0);
    assert_eq!(stored_claim(&store, "k2"), None);
}

#[tokio::test]
async fn an_unchanged_claim_is_not_rewritten() {
    let mine = claim_of("k1", "Ebs", json!({"key": "a"}), Some(json!({"enabled": false})), 100);
    let (store, l) = with_claims(vec![mine]);
    let claim = l
        .claim(&inv("Ebs"), "k1", SETTING, json!({"key": "a"}), None)
        .await
        .unwrap();
    assert_eq!(claim.prior, Some(json!({"enabled": false})), "the prior state is kept");
    assert_eq!(store.calls("PutParameter"), 0);
}

#[tokio::test]
async fn claims_beyond_the_first_page_are_seen() {
    // GetParametersByPath answers at most ten per page: the eleventh claimant's conflict must not hide.
    let mut claims: Vec<Claim> = (0..11)
        .map(|i| claim_of(&format!("k{i:02}"), "Same", json!(1), Some(json!(0)), 100 + i))
        .collect();
    claims[10].wants = json!(2);
    claims[10].claimant.logical_id = "Late".into();
    let (store, l) = with_claims(claims);
    let err = l
        .claim(&inv("New"), "k99", SETTING, json!(1), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already claimed by Late"), "{err}");
    assert_eq!(store.calls("GetParametersByPath"), 2);
}

#[tokio::test]
async fn release_by_one_of_two_claimants_leaves_the_setting_claimed() {
    let a = claim_of("k1", "Old", json!(1), Some(json!(0)), 100);
    let b = claim_of("k2", "New", json!(1), Some(json!(0)), 100);
    let (store, l) = with_claims(vec![a, b.clone()]);
    match l.release(&inv("Old"), "k1", SETTING).await.unwrap() {
        Release::StillClaimed(others) => assert_eq!(others[0].logical_id, "New"),
        other => panic!("expected StillClaimed, got {other:?}"),
    }
    assert_eq!(stored_claim(&store, "k1"), None, "its own claim is removed");
    assert_eq!(stored_claim(&store, "k2"), Some(b), "the other's stays");
}

#[tokio::test]
async fn release_by_the_last_claimant_returns_the_prior_state() {
    let a = claim_of("k1", "Old", json!(1), Some(json!(0)), 100);
    let (store, l) = with_claims(vec![a]);
    let release = l.release(&inv("Old"), "k1", SETTING).await.unwrap();
    assert_eq!(
        release,
        Release::Last {
            prior: Some(json!(0)),
            wants: json!(1)
        }
    );
    assert!(store.names_under("/tapguard/").is_empty());
}

#[tokio::test]
async fn a_pending_release_keeps_the_claim_until_it_is_dropped() {
    let a = claim_of("k1", "Old", json!(1), Some(json!(0)), 100);
    let (store, l) = with_claims(vec![a.clone()]);
    let pending = l.pending_release(&inv("Old"), "k1", SETTING).await.unwrap();
    assert!(matches!(pending, Release::Last { .. }), "{pending:?}");
    assert_eq!(stored_claim(&store, "k1"), Some(a), "kept for a retried Delete");
    l.drop_claim(&inv("Old"), "k1", SETTING).await.unwrap();
    l.drop_claim(&inv("Old"), "k1", SETTING).await.unwrap();
    assert_eq!(stored_claim(&store, "k1"), None, "dropped, and dropping again is fine");
}

#[tokio::test]
async fn release_without_any_claim_is_unclaimed_and_deletes_nothing() {
    let (store, l) = with_claims(vec![]);
    assert_eq!(l.release(&inv("X"), "k9", SETTING).await.unwrap(), Release::Unclaimed);
    assert_eq!(store.calls("DeleteParameter"), 0);
}

#[tokio::test]
async fn a_missing_record_is_none_and_a_damaged_one_is_treated_as_missing() {
    let (store, l) = with_claims(vec![]);
    assert_eq!(l.load::<Value>(&inv("X"), "k").await.unwrap(), None);
    store.insert(&l.record_name("k"), "{not json");
    assert_eq!(l.load::<Value>(&inv("X"), "k").await.unwrap(), None);
}

#[tokio::test]
async fn a_record_round_trips_through_save_and_load_and_is_listed() {
    let (store, l) = with_claims(vec![]);
    let record = l.record(&inv("Ebs"), json!({"created": true}));
    l.save(&inv("Ebs"), "k/1", &record).await.unwrap();
    assert_eq!(
        store.names_under("/tapguard/ledger/"),
        ["/tapguard/ledger/test-handler/k_2F1"]
    );
    assert_eq!(l.load::<Value>(&inv("Ebs"), "k/1").await.unwrap(), Some(record.clone()));
    let listed = l.records(&inv("Verify")).await.unwrap();
    assert_eq!(listed, [("k/1".to_string(), record)]);
    l.forget(&inv("Ebs"), "k/1").await.unwrap();
    l.forget(&inv("Ebs"), "k/1").await.unwrap();
    assert!(store.names_under("/tapguard/").is_empty());
}

#[tokio::test]
async fn begin_writes_a_record_listing_its_settings_once() {
    let (store, l) = with_claims(vec![]);
    let settings = [SETTING.to_string()];
    let record = l.begin(&inv("Ebs"), "k1", &settings, json!({})).await.unwrap();
    assert_eq!(record.settings, settings);
    l.begin(&inv("Ebs"), "k1", &settings, json!({})).await.unwrap();
    assert_eq!(
        store.calls("PutParameter"),
        1,
        "an unchanged record is not written again"
    );
}

#[tokio::test]
async fn denied_ssm_names_the_operation_the_code_and_the_ledger_path() {
    let (store, l) = with_claims(vec![]);
    store.fail("PutParameter", "AccessDeniedException");
    let record = l.record(&inv("Ebs"), json!({}));
    let err = l.save(&inv("Ebs"), "k1", &record).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let text = err.to_string();
    assert!(text.starts_with("PutParameter failed: AccessDeniedException"), "{text}");
    assert!(text.contains("/tapguard/ledger/test-handler/k1"), "{text}");
    assert!(text.contains("allowed ssm:PutParameter"), "{text}");
}

#[tokio::test]
async fn throttling_past_the_retries_is_an_error_that_says_so() {
    let (store, l) = with_claims(vec![]);
    store.fail("PutParameter", "ThrottlingException");
    let record = l.record(&inv("Ebs"), json!({}));
    let err = l.save(&inv("Ebs"), "k1", &record).await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert!(err.to_string().contains("kept throttling"), "{err}");
    assert_eq!(store.calls("PutParameter"), 3, "the standard strategy's three attempts");
}

#[tokio::test]
async fn an_entry_over_the_standard_tier_limit_is_refused_before_any_call() {
    let (store, l) = with_claims(vec![]);
    let record = l.record(&inv("Big"), json!({"blob": "x".repeat(MAX_VALUE_BYTES)}));
    let err = l.save(&inv("Big"), "k1", &record).await.unwrap_err().to_string();
    assert!(
        err.contains("more than the 4096 an SSM standard parameter holds"),
        "{err}"
    );
    assert_eq!(store.calls("PutParameter"), 0);
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
