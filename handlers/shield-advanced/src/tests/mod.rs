//! Unit tests of the resource's paths, with Shield mocked (aws-smithy-mocks) and the ledger in the
//! in-memory Parameter Store (`MemoryStore`).

use aws_sdk_shield::operation::create_subscription::CreateSubscriptionOutput;
use aws_sdk_shield::operation::describe_drt_access::DescribeDrtAccessOutput;
use aws_sdk_shield::operation::describe_subscription::{DescribeSubscriptionError, DescribeSubscriptionOutput};
use aws_sdk_shield::operation::update_subscription::UpdateSubscriptionOutput;
use aws_sdk_shield::types::{AutoRenew, Subscription, SubscriptionLimits};
use aws_sdk_shield::Client as Shield;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{CustomResource, Invocation, Ledger};

use crate::{settings, Properties, ShieldAdvanced};

mod engagement;

/// The ledger key of the resource: the RequestId of its Create.
const KEY: &str = "req-1";

pub(super) fn inv(region: &str) -> Invocation {
    let mut inv = Invocation::detached(region, "111122223333");
    inv.request_id = KEY.into();
    inv.logical_resource_id = "ShieldAdvanced".into();
    inv
}

pub(super) fn subscribed(auto_renew: AutoRenew) -> DescribeSubscriptionOutput {
    DescribeSubscriptionOutput::builder()
        .subscription(
            Subscription::builder()
                .auto_renew(auto_renew)
                .subscription_arn("arn:aws:shield::111122223333:subscription/abcd")
                .subscription_limits(SubscriptionLimits::builder().build())
                .build(),
        )
        .build()
}

/// DescribeSubscription answering in turn: `None` is ResourceNotFoundException (no subscription).
fn describes(states: &[Option<AutoRenew>]) -> Rule {
    let mut seq = mock!(Shield::describe_subscription).sequence();
    for state in states.iter().cloned() {
        seq = match state {
            Some(a) => seq.output(move || subscribed(a.clone())),
            None => seq.error(|| {
                DescribeSubscriptionError::generic(
                    ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .message("The subscription does not exist.")
                        .build(),
                )
            }),
        };
    }
    seq.build()
}

pub(super) fn no_srt_role() -> Rule {
    mock!(Shield::describe_drt_access).then_output(|| DescribeDrtAccessOutput::builder().build())
}

/// The ledger over `store`.
pub(super) fn ledger(store: &MemoryStore) -> Ledger {
    Ledger::from_client(store.client(), "shield-advanced")
}

/// The parameter name of this resource's claim on `setting`.
pub(super) fn claim_name(setting: &str) -> String {
    Ledger::claim_name(setting, KEY)
}

/// A store holding this resource's claim on each of these settings; no one claims the others.
pub(super) fn with_claims(claims: &[(&str, Value)]) -> MemoryStore {
    let store = MemoryStore::new();
    for (setting, claim) in claims {
        store.insert(&claim_name(setting), claim.to_string());
    }
    store
}

/// Every call made to Parameter Store, failed ones included.
pub(super) fn ssm_calls(store: &MemoryStore) -> usize {
    ["GetParameter", "PutParameter", "GetParametersByPath", "DeleteParameter"]
        .iter()
        .map(|op| store.calls(op))
        .sum()
}

/// The settings this resource's record lists, as the store holds it.
pub(super) fn recorded_settings(store: &MemoryStore) -> Value {
    let record = store
        .json(&ledger(store).record_name(KEY))
        .expect("the record is written");
    assert_eq!(record["logical_id"], "ShieldAdvanced", "{record}");
    record["settings"].clone()
}

/// This resource's claim on `setting` as the store holds it: (wants, prior).
pub(super) fn stored_claim(store: &MemoryStore, setting: &str) -> Option<(Value, Value)> {
    let claim = store.json(&claim_name(setting))?;
    assert_eq!(claim["claimant"]["key"], KEY, "{claim}");
    Some((claim["wants"].clone(), claim["prior"].clone()))
}

/// A claim of this resource (`req-1`) as the ledger stores it.
pub(super) fn claim(wants: Value, prior: Value) -> Value {
    json!({"v": 1, "claimant": {"key": KEY, "handler": "shield-advanced",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1", "logical_id": "ShieldAdvanced"},
        "wants": wants, "prior": prior, "since": 1})
}

pub(super) fn handler(rules: &[&Rule], store: &MemoryStore) -> ShieldAdvanced {
    let shield = mock_client!(aws_sdk_shield, RuleMode::MatchAny, rules);
    ShieldAdvanced::from_clients(shield, ledger(store))
}

fn create_ok() -> Rule {
    mock!(Shield::create_subscription).then_output(|| CreateSubscriptionOutput::builder().build())
}

#[tokio::test]
async fn without_create_subscription_nothing_is_bought() {
    let (describe, create, store) = (describes(&[None]), create_ok(), MemoryStore::new());
    let h = handler(&[&describe, &create], &store);
    let err = h
        .create(&inv("eu-west-1"), Properties::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("set CreateSubscription to true"), "{err}");
    assert_eq!(create.num_calls() + store.calls("PutParameter"), 0);
    assert_eq!(store.names_under("/tapguard/"), Vec::<String>::new());
}

#[tokio::test]
async fn create_subscribes_after_claiming_and_reads_it_back() {
    let (describe, drt, store) = (
        describes(&[None, Some(AutoRenew::Enabled)]),
        no_srt_role(),
        MemoryStore::new(),
    );
    let (subscription, _) = settings();
    // CreateSubscription is answered only once the record and the claim are in the ledger.
    let (written, record, claimed) = (
        store.clone(),
        ledger(&store).record_name(KEY),
        claim_name(&subscription),
    );
    let create = mock!(Shield::create_subscription)
        .match_requests(move |_| written.value(&record).is_some() && written.value(&claimed).is_some())
        .then_output(|| CreateSubscriptionOutput::builder().build());
    let h = handler(&[&describe, &create, &drt], &store);
    let props = Properties {
        create_subscription: Some(true),
        ..Default::default()
    };
    let out = h.create(&inv("eu-west-1"), props).await.unwrap();
    assert_eq!(out.physical_id, "shield-advanced:eu-west-1:ledger-req-1");
    assert_eq!(out.data["Adopted"], "false");
    assert_eq!(out.data["AutoRenew"], "ENABLED");
    assert_eq!(create.num_calls(), 1);
    assert_eq!(recorded_settings(&store), json!([subscription]));
    assert_eq!(
        stored_claim(&store, &subscription),
        Some((json!({"subscribed": true}), json!({"exists": false})))
    );
    assert_eq!(store.calls("PutParameter"), 2, "the record and the claim, once each");
}

#[tokio::test]
async fn the_last_claimant_of_a_created_subscription_turns_auto_renew_off() {
    let store = with_claims(&[(
        &settings().0,
        claim(json!({"subscribed": true}), json!({"exists": false})),
    )]);
    let describe = describes(&[Some(AutoRenew::Enabled), Some(AutoRenew::Disabled)]);
    let update = mock!(Shield::update_subscription)
        .match_requests(|input| input.auto_renew() == Some(&AutoRenew::Disabled))
        .then_output(|| UpdateSubscriptionOutput::builder().build());
    let h = handler(&[&describe, &update], &store);
    h.delete(&inv("eu-west-1"), "shield-advanced:eu-west-1:ledger-req-1", None)
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(describe.num_calls(), 2, "read before, read back after");
    assert_eq!(store.names_under("/tapguard/"), Vec::<String>::new());
}

#[tokio::test]
async fn china_and_govcloud_fail_before_any_call() {
    for region in ["cn-northwest-1", "us-gov-east-1"] {
        let (describe, store) = (describes(&[]), MemoryStore::new());
        let h = handler(&[&describe], &store);
        let props = Properties {
            create_subscription: Some(true),
            ..Default::default()
        };
        let err = h.create(&inv(region), props).await.unwrap_err().to_string();
        assert!(err.starts_with("Shield Advanced is not offered in the aws-"), "{err}");
        assert_eq!(describe.num_calls() + ssm_calls(&store), 0);
    }
}
