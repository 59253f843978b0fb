//! Unit tests of the resource's paths, with Shield and the ledger's SSM mocked (aws-smithy-mocks).

use aws_sdk_shield::operation::create_subscription::CreateSubscriptionOutput;
use aws_sdk_shield::operation::describe_drt_access::DescribeDrtAccessOutput;
use aws_sdk_shield::operation::describe_subscription::{DescribeSubscriptionError, DescribeSubscriptionOutput};
use aws_sdk_shield::operation::update_subscription::UpdateSubscriptionOutput;
use aws_sdk_shield::types::{AutoRenew, Subscription, SubscriptionLimits};
use aws_sdk_shield::Client as Shield;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::Parameter;
use aws_sdk_ssm::Client as Ssm;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::json;
use tapguard_shared::{CustomResource, Invocation, Ledger};

use crate::{Properties, ShieldAdvanced};

mod engagement;

pub(super) fn inv(region: &str) -> Invocation {
    let mut inv = Invocation::detached(region, "111122223333");
    inv.request_id = "req-1".into();
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

pub(super) struct LedgerMocks {
    get: Rule,
    lists: Vec<Rule>,
    others: Rule,
    pub(super) put: Rule,
    pub(super) delete: Rule,
}

impl LedgerMocks {
    fn with_claims(claims: Vec<serde_json::Value>) -> Self {
        Self::with_settings(vec![("subscription", claims)])
    }

    /// Claims on each setting named by its last segment (`subscription`, `emergency-contacts`, ...); no
    /// one claims the others.
    pub(super) fn with_settings(settings: Vec<(&'static str, Vec<serde_json::Value>)>) -> Self {
        let lists = settings
            .into_iter()
            .map(|(setting, claims)| {
                mock!(Ssm::get_parameters_by_path)
                    .match_requests(move |input| input.path().is_some_and(|p| p.ends_with(&format!("/{setting}"))))
                    .then_output(move || {
                        let parameters = claims
                            .iter()
                            .map(|c| Parameter::builder().name("claim").value(c.to_string()).build())
                            .collect();
                        GetParametersByPathOutput::builder()
                            .set_parameters(Some(parameters))
                            .build()
                    })
            })
            .collect();
        LedgerMocks {
            get: mock!(Ssm::get_parameter)
                .then_error(|| GetParameterError::generic(ErrorMetadata::builder().code("ParameterNotFound").build())),
            lists,
            others: mock!(Ssm::get_parameters_by_path).then_output(|| GetParametersByPathOutput::builder().build()),
            put: mock!(Ssm::put_parameter).then_output(|| PutParameterOutput::builder().version(1).build()),
            delete: mock!(Ssm::delete_parameter).then_output(|| DeleteParameterOutput::builder().build()),
        }
    }

    fn ledger(&self) -> Ledger {
        let mut rules: Vec<&Rule> = self.lists.iter().collect();
        rules.extend([&self.get, &self.others, &self.put, &self.delete]);
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules);
        Ledger::from_client(ssm, "shield-advanced")
    }
}

/// A claim of this resource (`req-1`) as the ledger stores it.
pub(super) fn claim(wants: serde_json::Value, prior: serde_json::Value) -> serde_json::Value {
    json!({"v": 1, "claimant": {"key": "req-1", "handler": "shield-advanced",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1", "logical_id": "ShieldAdvanced"},
        "wants": wants, "prior": prior, "since": 1})
}

pub(super) fn handler(rules: &[&Rule], ledger: &LedgerMocks) -> ShieldAdvanced {
    let shield = mock_client!(aws_sdk_shield, RuleMode::MatchAny, rules);
    ShieldAdvanced::from_clients(shield, ledger.ledger())
}

fn create_ok() -> Rule {
    mock!(Shield::create_subscription).then_output(|| CreateSubscriptionOutput::builder().build())
}

#[tokio::test]
async fn without_create_subscription_nothing_is_bought() {
    let (describe, create, ledger) = (describes(&[None]), create_ok(), LedgerMocks::with_claims(vec![]));
    let h = handler(&[&describe, &create], &ledger);
    let err = h
        .create(&inv("eu-west-1"), Properties::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("set CreateSubscription to true"), "{err}");
    assert_eq!(create.num_calls() + ledger.put.num_calls(), 0);
}

#[tokio::test]
async fn create_subscribes_after_claiming_and_reads_it_back() {
    let (describe, create, drt) = (describes(&[None, Some(AutoRenew::Enabled)]), create_ok(), no_srt_role());
    let ledger = LedgerMocks::with_claims(vec![]);
    let h = handler(&[&describe, &create, &drt], &ledger);
    let props = Properties {
        create_subscription: Some(true),
        ..Default::default()
    };
    let out = h.create(&inv("eu-west-1"), props).await.unwrap();
    assert_eq!(out.physical_id, "shield-advanced:eu-west-1:ledger-req-1");
    assert_eq!(out.data["Adopted"], "false");
    assert_eq!(out.data["AutoRenew"], "ENABLED");
    assert_eq!(create.num_calls(), 1);
    assert_eq!(ledger.put.num_calls(), 2, "record and claim before CreateSubscription");
}

#[tokio::test]
async fn the_last_claimant_of_a_created_subscription_turns_auto_renew_off() {
    let ledger = LedgerMocks::with_claims(vec![
        json!({"v": 1, "claimant": {"key": "req-1", "handler": "shield-advanced",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1", "logical_id": "ShieldAdvanced"},
        "wants": {"subscribed": true}, "prior": {"exists": false}, "since": 1}),
    ]);
    let describe = describes(&[Some(AutoRenew::Enabled), Some(AutoRenew::Disabled)]);
    let update = mock!(Shield::update_subscription)
        .match_requests(|input| input.auto_renew() == Some(&AutoRenew::Disabled))
        .then_output(|| UpdateSubscriptionOutput::builder().build());
    let h = handler(&[&describe, &update], &ledger);
    h.delete(&inv("eu-west-1"), "shield-advanced:eu-west-1:ledger-req-1", None)
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn china_and_govcloud_fail_before_any_call() {
    for region in ["cn-northwest-1", "us-gov-east-1"] {
        let (describe, ledger) = (describes(&[]), LedgerMocks::with_claims(vec![]));
        let h = handler(&[&describe], &ledger);
        let props = Properties {
            create_subscription: Some(true),
            ..Default::default()
        };
        let err = h.create(&inv(region), props).await.unwrap_err().to_string();
        assert!(err.starts_with("Shield Advanced is not offered in the aws-"), "{err}");
        assert_eq!(
            describe.num_calls() + ledger.others.num_calls() + ledger.lists[0].num_calls(),
            0
        );
    }
}
