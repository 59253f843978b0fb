//! Create, Update, Delete and undo against mocked Security Hub and the in-memory ledger.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_securityhub::types::{StandardsStatus, StandardsSubscription};
use aws_sdk_securityhub::Client as SecurityHub;
use serde_json::json;
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{CustomResource, Invocation, Ledger};

use super::ledger;
use crate::claims;
use crate::controls::{DisabledControl, Target};
use crate::properties::{expand, expand_all, standards_arn, Properties, Standard};
use crate::{Ownership, SecurityHubStandards};
use aws_sdk_securityhub::operation::batch_disable_standards::BatchDisableStandardsOutput;
use aws_sdk_securityhub::operation::batch_enable_standards::{BatchEnableStandardsError, BatchEnableStandardsOutput};
use aws_sdk_securityhub::operation::batch_get_standards_control_associations::BatchGetStandardsControlAssociationsOutput;
use aws_sdk_securityhub::operation::batch_update_standards_control_associations::BatchUpdateStandardsControlAssociationsOutput;
use aws_sdk_securityhub::operation::describe_hub::{DescribeHubError, DescribeHubOutput};
use aws_sdk_securityhub::operation::describe_standards::DescribeStandardsOutput;
use aws_sdk_securityhub::operation::get_enabled_standards::{GetEnabledStandardsError, GetEnabledStandardsOutput};
use aws_sdk_securityhub::types::{
    AssociationStatus, StandardsControlAssociationDetail, StandardsControlAssociationUpdate, UnprocessedErrorCode,
    UnprocessedStandardsControlAssociationUpdate,
};
use aws_sdk_securityhub::types::{Standard as SdkStandard, StandardsStatusReason, StatusReasonCode};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;

const ACCOUNT: &str = "111122223333";
const FSBP: &str = "aws-foundational-security-best-practices/v/1.0.0";
const CIS_1_2_0: &str = "cis-aws-foundations-benchmark/v/1.2.0";
const CIS_14: &str = "cis-aws-foundations-benchmark/v/1.4.0";

fn inv() -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", ACCOUNT);
    inv.request_id = "req-1".into();
    inv.logical_resource_id = "SecurityHubStandards".into();
    inv
}

fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn arn(id: &str) -> String {
    standards_arn("aws", "eu-west-1", id)
}

fn subscription_arn(id: &str) -> String {
    format!("arn:aws:securityhub:eu-west-1:{ACCOUNT}:subscription/{id}")
}

fn sub(id: &str, status: StandardsStatus, reason: Option<StatusReasonCode>) -> StandardsSubscription {
    let mut b = StandardsSubscription::builder()
        .standards_subscription_arn(subscription_arn(id))
        .standards_arn(arn(id))
        .standards_status(status);
    if let Some(reason) = reason {
        b = b.standards_status_reason(StandardsStatusReason::builder().status_reason_code(reason).build());
    }
    b.build()
}

fn hub_on() -> Rule {
    mock!(SecurityHub::describe_hub).then_output(|| {
        DescribeHubOutput::builder()
            .hub_arn(format!("arn:aws:securityhub:eu-west-1:{ACCOUNT}:hub/default"))
            .build()
    })
}

fn catalog() -> Rule {
    mock!(SecurityHub::describe_standards).then_output(|| {
        DescribeStandardsOutput::builder()
            .set_standards(Some(
                [FSBP, CIS_1_2_0, CIS_14, "pci-dss/v/3.2.1"]
                    .iter()
                    .map(|id| SdkStandard::builder().standards_arn(arn(id)).build())
                    .collect(),
            ))
            .build()
    })
}

type Read = Vec<(&'static str, StandardsStatus, Option<StatusReasonCode>)>;

/// GetEnabledStandards answers, in order; the last one repeats.
fn reads(answers: Vec<Read>) -> Rule {
    let mut seq = mock!(SecurityHub::get_enabled_standards).sequence();
    let count = answers.len();
    for (i, answer) in answers.into_iter().enumerate() {
        let make = move || {
            GetEnabledStandardsOutput::builder()
                .set_standards_subscriptions(Some(
                    answer
                        .iter()
                        .map(|(id, st, r)| sub(id, st.clone(), r.clone()))
                        .collect(),
                ))
                .build()
        };
        if i + 1 == count {
            return seq.output(make).repeatedly().build();
        }
        seq = seq.output(make);
    }
    panic!("give at least one answer")
}

fn enable_ok() -> Rule {
    mock!(SecurityHub::batch_enable_standards).then_output(|| {
        // The mock cannot see the request, so it answers for every standard the tests enable.
        BatchEnableStandardsOutput::builder()
            .set_standards_subscriptions(Some(
                [FSBP, CIS_1_2_0, CIS_14, "pci-dss/v/3.2.1"]
                    .iter()
                    .map(|id| sub(id, StandardsStatus::Pending, None))
                    .collect(),
            ))
            .build()
    })
}

fn disable_ok() -> Rule {
    mock!(SecurityHub::batch_disable_standards).then_output(|| BatchDisableStandardsOutput::builder().build())
}

fn handler(rules: &[&Rule]) -> SecurityHubStandards {
    handler_with(rules, &MemoryStore::new())
}

fn handler_with(rules: &[&Rule], store: &MemoryStore) -> SecurityHubStandards {
    SecurityHubStandards::from_clients(
        mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules),
        ledger(store),
    )
    .with_first_poll(Duration::from_millis(1))
}

/// The parameter of the claim of resource `key` on the standard `id`.
fn standard_claim(id: &str, key: &str) -> String {
    let standard = Standard {
        id: id.into(),
        arn: arn(id),
    };
    Ledger::claim_name(&claims::standard(&standard), key)
}

/// Every parameter the ledger holds.
fn held(store: &MemoryStore) -> Vec<String> {
    store.names_under("/tapguard/")
}

/// The physical id an earlier version issued: the adopted standards and controls in the id.
fn legacy_id(ownership: &Ownership) -> String {
    let join = |set: &BTreeSet<String>| set.iter().map(String::as_str).collect::<Vec<_>>().join(",");
    let mut id = format!(
        "securityhub-standards:{}:adopted={}",
        ownership.region,
        join(&ownership.adopted)
    );
    if !ownership.controls_adopted.is_empty() {
        id.push_str(&format!(":controls-adopted={}", join(&ownership.controls_adopted)));
    }
    id
}

fn props(standards: &[&str]) -> Properties {
    Properties {
        standards: standards.iter().map(|s| s.to_string()).collect(),
        disabled_controls: Vec::new(),
        wait_seconds: Some(5),
        repair_drift: false,
        centrally_managed: false,
    }
}

use StandardsStatus::{Failed, Incomplete, Pending, Ready};

#[tokio::test]
async fn create_enables_the_missing_waits_for_ready_and_reports_adopted() {
    let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
    let enabled = reads(vec![
        vec![(FSBP, Ready, None)],
        vec![(FSBP, Ready, None), (CIS_1_2_0, Pending, None)],
        vec![(FSBP, Ready, None), (CIS_1_2_0, Ready, None)],
    ]);
    let store = MemoryStore::new();
    let h = handler_with(&[&hub, &cat, &enabled, &enable, &disable], &store);
    let out = h.create(&inv(), props(&[FSBP, CIS_1_2_0])).await.unwrap();
    let record = "/tapguard/ledger/securityhub-standards/req-1".to_string();
    let mut expected = vec![
        record.clone(),
        standard_claim(FSBP, "req-1"),
        standard_claim(CIS_1_2_0, "req-1"),
    ];
    expected.sort();
    assert_eq!(held(&store), expected, "the record and a claim per standard");
    let record = store.json(&record).unwrap();
    assert_eq!(
        record["settings"],
        json!([
            claims::standard(&Standard {
                id: FSBP.into(),
                arn: arn(FSBP)
            }),
            claims::standard(&Standard {
                id: CIS_1_2_0.into(),
                arn: arn(CIS_1_2_0)
            })
        ])
    );
    assert_eq!(record["state"]["on_at_create"], json!([FSBP]));
    let fsbp = store.json(&standard_claim(FSBP, "req-1")).unwrap();
    assert_eq!(
        (&fsbp["wants"], &fsbp["prior"]),
        (&json!({"enabled": true}), &json!({"enabled": true}))
    );
    let cis = store.json(&standard_claim(CIS_1_2_0, "req-1")).unwrap();
    assert_eq!(
        (&cis["wants"], &cis["prior"]),
        (&json!({"enabled": true}), &json!({"enabled": false})),
        "this resource turned it on"
    );
    assert_eq!(enable.num_calls(), 1, "only the missing standard is enabled");
    assert_eq!(disable.num_calls(), 0);
    assert_eq!(enabled.num_calls(), 3, "read, PENDING, READY");
    assert_eq!(out.physical_id, "securityhub-standards:eu-west-1:ledger-req-1");
    assert_eq!(
        out.data["EnabledStandards"],
        format!("{},arn:aws:securityhub:::ruleset/{CIS_1_2_0}", arn(FSBP))
    );
    assert_eq!(out.data["Adopted"], arn(FSBP));
    assert_eq!(
        out.data["SubscriptionArns"],
        format!("{},{}", subscription_arn(FSBP), subscription_arn(CIS_1_2_0))
    );
    assert_eq!(out.data["Statuses"], format!("{FSBP}=READY,{CIS_1_2_0}=READY"));
}

#[tokio::test]
async fn incomplete_and_failed_give_the_reason_and_disable_what_this_create_enabled() {
    for (status, reason, advice) in [
        (
            Incomplete,
            StatusReasonCode::NoAvailableConfigurationRecorder,
            "turn on AWS Config first",
        ),
        (
            Failed,
            StatusReasonCode::MaximumNumberOfConfigRulesExceeded,
            "AWS Config rules quota",
        ),
        (
            Incomplete,
            StatusReasonCode::InternalError,
            "Security Hub failed on its side",
        ),
        (
            Failed,
            StatusReasonCode::NoAvailableMulticloudConnector,
            "multicloud connector",
        ),
    ] {
        let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
        let enabled = reads(vec![
            vec![],
            vec![(CIS_14, status.clone(), Some(reason.clone()))],
            vec![(CIS_14, status.clone(), Some(reason.clone()))],
            vec![],
        ]);
        let store = MemoryStore::new();
        let h = handler_with(&[&hub, &cat, &enabled, &enable, &disable], &store);
        let err = h.create(&inv(), props(&[CIS_14])).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "standard {CIS_14} is {} in {ACCOUNT}/eu-west-1 (StandardsStatusReason {})",
                status.as_str(),
                reason.as_str()
            )),
            "{err}"
        );
        assert!(err.contains(advice), "{err}");
        assert!(
            err.ends_with(&format!("disabled again what this request had enabled: {CIS_14}")),
            "{err}"
        );
        assert_eq!(disable.num_calls(), 1);
        assert!(
            held(&store).is_empty(),
            "a rolled-back Create leaves nothing: {:?}",
            held(&store)
        );
    }
}

#[tokio::test]
async fn an_adopted_standard_being_disabled_meanwhile_is_failed_and_not_touched() {
    let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
    let enabled = reads(vec![
        vec![(FSBP, Ready, None)],
        vec![(FSBP, StandardsStatus::Deleting, None)],
    ]);
    let err = handler(&[&hub, &cat, &enabled, &enable, &disable])
        .create(&inv(), props(&[FSBP]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("standard {FSBP} is DELETING in {ACCOUNT}/eu-west-1")),
        "{err}"
    );
    assert!(err.contains("being disabled by someone else"), "{err}");
    assert_eq!(
        enable.num_calls() + disable.num_calls(),
        0,
        "adopted: neither enabled nor disabled"
    );
}

#[tokio::test]
async fn still_pending_when_the_wait_is_over_is_failed_naming_the_standard() {
    let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
    let enabled = reads(vec![
        vec![],
        vec![(CIS_14, Pending, None)],
        vec![(CIS_14, Pending, None)],
        vec![],
    ]);
    let store = MemoryStore::new();
    let h = handler_with(&[&hub, &cat, &enabled, &enable, &disable], &store);
    let mut p = props(&[CIS_14]);
    p.wait_seconds = Some(0);
    let err = h.create(&inv(), p).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{CIS_14} still PENDING after waiting 0 s for READY")),
        "{err}"
    );
    assert_eq!(
        disable.num_calls(),
        1,
        "the PENDING standard this create enabled is disabled again"
    );
    assert!(held(&store).is_empty(), "{:?}", held(&store));
}

#[tokio::test]
async fn a_rejected_second_standard_disables_the_first() {
    let (hub, cat, disable) = (hub_on(), catalog(), disable_ok());
    let enabled = reads(vec![vec![], vec![(FSBP, Pending, None)], vec![]]);
    let enable = mock!(SecurityHub::batch_enable_standards)
        .sequence()
        .output(|| {
            BatchEnableStandardsOutput::builder()
                .standards_subscriptions(sub(FSBP, Pending, None))
                .build()
        })
        .error(|| BatchEnableStandardsError::generic(meta("InvalidInputException", "not available")))
        .build();
    let store = MemoryStore::new();
    let h = handler_with(&[&hub, &cat, &enabled, &enable, &disable], &store);
    let err = h.create(&inv(), props(&[FSBP, CIS_14])).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "BatchEnableStandards failed: InvalidInputException: not available (enabling {CIS_14})"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("disabled again what this request had enabled: {FSBP}")),
        "{err}"
    );
    assert_eq!(disable.num_calls(), 1);
    assert!(held(&store).is_empty(), "{:?}", held(&store));
}

#[tokio::test]
async fn a_configuration_policy_denial_says_where_the_standards_are_decided() {
    let (hub, cat) = (hub_on(), catalog());
    let enabled = reads(vec![vec![]]);
    let enable = mock!(SecurityHub::batch_enable_standards).then_error(|| {
        BatchEnableStandardsError::generic(meta(
            "AccessDeniedException",
            "Account 111122223333 is managed by a configuration policy",
        ))
    });
    let store = MemoryStore::new();
    let err = handler_with(&[&hub, &cat, &enabled, &enable], &store)
        .create(&inv(), props(&[FSBP]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("BatchEnableStandards failed: AccessDeniedException: Account 111122223333 is managed"),
        "{err}"
    );
    assert!(err.contains("delegated administrator's configuration policy"), "{err}");
    assert!(!err.contains("grant it"), "{err}");
    // Taken as central management: verified, and the reason names what the policy does not give.
    assert!(
        err.contains(&format!(
            "the central configuration policy does not give the requested standard {} (not enabled)",
            arn(FSBP)
        )),
        "{err}"
    );
    assert_eq!(enable.num_calls(), 1, "the refused call, and no other change");
    assert!(
        held(&store).is_empty(),
        "a failed Create leaves nothing: {:?}",
        held(&store)
    );
}

#[tokio::test]
async fn no_hub_is_failed_with_the_remedy() {
    let hub = mock!(SecurityHub::describe_hub).then_error(|| {
        DescribeHubError::generic(meta(
            "InvalidAccessException",
            "Account is not subscribed to AWS Security Hub",
        ))
    });
    let enable = enable_ok();
    let err = handler(&[&hub, &enable])
        .create(&inv(), props(&[FSBP]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Security Hub is not enabled in {ACCOUNT}/eu-west-1: add a Custom::SecurityHubEnable and DependsOn it")
    );
    assert_eq!(enable.num_calls(), 0);
}

#[tokio::test]
async fn throttled_polls_are_retried_until_ready() {
    let (hub, cat, enable) = (hub_on(), catalog(), enable_ok());
    let enabled = mock!(SecurityHub::get_enabled_standards)
        .sequence()
        .output(|| GetEnabledStandardsOutput::builder().build())
        .error(|| GetEnabledStandardsError::generic(meta("ThrottlingException", "Rate exceeded")))
        .times(2)
        .output(|| {
            GetEnabledStandardsOutput::builder()
                .standards_subscriptions(sub(FSBP, Ready, None))
                .build()
        })
        .repeatedly()
        .build();
    let out = handler(&[&hub, &cat, &enabled, &enable])
        .create(&inv(), props(&[FSBP]))
        .await
        .unwrap();
    assert_eq!(out.data["Statuses"], format!("{FSBP}=READY"));
    assert_eq!(enabled.num_calls(), 4);
}

#[tokio::test]
async fn an_unknown_standard_is_refused_before_any_change() {
    let (hub, cat, enable) = (hub_on(), catalog(), enable_ok());
    let err = handler(&[&hub, &cat, &enable])
        .create(&inv(), props(&[FSBP, "nist-800-53/v/5.0.0"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid property Standards[1]: nist-800-53/v/5.0.0"),
        "{err}"
    );
    assert!(err.contains("DescribeStandards lists"), "{err}");
    assert_eq!(enable.num_calls(), 0);

    let err = expand(&inv(), 0, "pci").unwrap_err().to_string();
    assert!(
        err.starts_with("invalid property Standards[0]: \"pci\" is neither"),
        "{err}"
    );
}

#[tokio::test]
async fn update_enables_added_and_disables_removed_ones_it_owns_only() {
    let ownership = Ownership {
        region: "eu-west-1".into(),
        adopted: [FSBP.to_string()].into(),
        controls_adopted: Default::default(),
    };
    let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
    let enabled = reads(vec![
        vec![(FSBP, Ready, None), (CIS_1_2_0, Ready, None)],
        vec![(CIS_14, Ready, None)],
        vec![(FSBP, Ready, None), (CIS_1_2_0, Ready, None), (CIS_14, Ready, None)],
        vec![],
    ]);
    let store = MemoryStore::new();
    let h = handler_with(&[&hub, &cat, &enabled, &enable, &disable], &store);
    let out = h
        .update(
            &inv(),
            &legacy_id(&ownership),
            props(&[CIS_14]),
            Some(props(&[FSBP, CIS_1_2_0])),
        )
        .await
        .unwrap();
    assert_eq!(out.physical_id, legacy_id(&ownership), "never a replacement");
    assert_eq!((enable.num_calls(), disable.num_calls()), (1, 1));
    assert_eq!(out.data["Adopted"], "");
    // The old id's state moved into the ledger, under the key derived from the id: only what is still
    // asked for stays claimed.
    let key = tapguard_shared::ledger::legacy_key(&legacy_id(&ownership));
    let record = ledger(&store).record_name(&key);
    let mut expected = vec![record.clone(), standard_claim(CIS_14, &key)];
    expected.sort();
    assert_eq!(held(&store), expected);
    assert_eq!(
        store.json(&record).unwrap()["settings"],
        json!([claims::standard(&Standard {
            id: CIS_14.into(),
            arn: arn(CIS_14)
        })])
    );
    assert_eq!(
        store.json(&standard_claim(CIS_14, &key)).unwrap()["prior"],
        json!({"enabled": false})
    );
}

#[tokio::test]
async fn a_noop_update_makes_no_mutating_call() {
    let ownership = Ownership {
        region: "eu-west-1".into(),
        adopted: Default::default(),
        controls_adopted: Default::default(),
    };
    let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
    let enabled = reads(vec![vec![(FSBP, Ready, None)]]);
    let h = handler(&[&hub, &cat, &enabled, &enable, &disable]);
    h.update(&inv(), &legacy_id(&ownership), props(&[FSBP]), Some(props(&[FSBP])))
        .await
        .unwrap();
    assert_eq!(enable.num_calls() + disable.num_calls(), 0);
}

#[tokio::test]
async fn delete_disables_only_what_this_resource_enabled() {
    let ownership = Ownership {
        region: "eu-west-1".into(),
        adopted: [FSBP.to_string()].into(),
        controls_adopted: Default::default(),
    };
    let (hub, disable) = (hub_on(), disable_ok());
    let enabled = reads(vec![
        vec![(FSBP, Ready, None), (CIS_14, Ready, None)],
        vec![(FSBP, Ready, None), (CIS_14, Ready, None)],
        vec![(CIS_14, StandardsStatus::Deleting, None)],
        vec![],
    ]);
    handler(&[&hub, &enabled, &disable])
        .delete(&inv(), &legacy_id(&ownership), Some(props(&[FSBP, CIS_14])))
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 1);

    let (hub, enabled, disable) = (hub_on(), reads(vec![vec![(FSBP, Ready, None)]]), disable_ok());
    handler(&[&hub, &enabled, &disable])
        .delete(&inv(), &legacy_id(&ownership), Some(props(&[FSBP])))
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 0, "adopted only: nothing to disable");
}

fn association_reads(statuses: Vec<AssociationStatus>) -> Rule {
    let mut seq = mock!(SecurityHub::batch_get_standards_control_associations).sequence();
    for status in statuses {
        seq = seq.output(move || {
            BatchGetStandardsControlAssociationsOutput::builder()
                .standards_control_association_details(
                    StandardsControlAssociationDetail::builder()
                        .standards_arn(arn(FSBP))
                        .security_control_id("IAM.1")
                        .security_control_arn("arn:aws:securityhub:eu-west-1:111122223333:security-control/IAM.1")
                        .association_status(status.clone())
                        .build(),
                )
                .build()
        });
    }
    seq.build()
}

fn with_control(standards: &[&str]) -> Properties {
    let mut p = props(standards);
    p.disabled_controls = vec![DisabledControl {
        standards_control_arn: None,
        control_id: Some("IAM.1".into()),
        reason: "break-glass user".into(),
    }];
    p
}

#[tokio::test]
async fn a_disabled_control_is_set_and_read_back() {
    let (hub, cat, enable) = (hub_on(), catalog(), enable_ok());
    let enabled = reads(vec![vec![], vec![(FSBP, Ready, None)]]);
    let associations = association_reads(vec![AssociationStatus::Enabled, AssociationStatus::Disabled]);
    let update = mock!(SecurityHub::batch_update_standards_control_associations)
        .then_output(|| BatchUpdateStandardsControlAssociationsOutput::builder().build());
    let store = MemoryStore::new();
    let out = handler_with(&[&hub, &cat, &enabled, &enable, &associations, &update], &store)
        .create(&inv(), with_control(&[FSBP]))
        .await
        .unwrap();
    assert_eq!(out.data["DisabledControls"], format!("{FSBP}#IAM.1"));
    assert_eq!(update.num_calls(), 1);
    assert!(!out.physical_id.contains("controls-adopted"), "{}", out.physical_id);
    let control = claims::control(&Target::Association {
        standard_id: FSBP.into(),
        standards_arn: arn(FSBP),
        security_control_id: "IAM.1".into(),
    });
    let claim = store
        .json(&Ledger::claim_name(&control, "req-1"))
        .expect("the control is claimed");
    assert_eq!(
        (&claim["wants"], &claim["prior"]),
        (&json!({"disabled": true}), &json!({"disabled": false})),
        "this resource turned it off"
    );
    let record = store.json(&ledger(&store).record_name("req-1")).unwrap();
    assert!(
        record["settings"].as_array().unwrap().contains(&json!(control)),
        "{record}"
    );
}

#[tokio::test]
async fn a_control_that_reads_enabled_after_disabling_is_failed_and_the_create_rolled_back() {
    let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
    let enabled = reads(vec![
        vec![],
        vec![(FSBP, Ready, None)],
        vec![(FSBP, Ready, None)],
        vec![],
    ]);
    let associations = association_reads(vec![
        AssociationStatus::Enabled,
        AssociationStatus::Enabled,
        AssociationStatus::Enabled,
    ]);
    let update = mock!(SecurityHub::batch_update_standards_control_associations)
        .then_output(|| BatchUpdateStandardsControlAssociationsOutput::builder().build());
    let store = MemoryStore::new();
    let err = handler_with(
        &[&hub, &cat, &enabled, &enable, &disable, &associations, &update],
        &store,
    )
    .create(&inv(), with_control(&[FSBP]))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("not verified: control {FSBP}#IAM.1 still reads enabled")),
        "{err}"
    );
    assert!(
        err.ends_with(&format!("disabled again what this request had enabled: {FSBP}")),
        "{err}"
    );
    assert_eq!(disable.num_calls(), 1);
    assert!(held(&store).is_empty(), "{:?}", held(&store));
}

#[tokio::test]
async fn a_refused_control_update_names_the_control_and_the_error() {
    let (hub, cat, enabled) = (hub_on(), catalog(), reads(vec![vec![(FSBP, Ready, None)]]));
    let associations = association_reads(vec![AssociationStatus::Enabled, AssociationStatus::Enabled]);
    let update = mock!(SecurityHub::batch_update_standards_control_associations).then_output(|| {
        BatchUpdateStandardsControlAssociationsOutput::builder()
            .unprocessed_association_updates(
                UnprocessedStandardsControlAssociationUpdate::builder()
                    .standards_control_association_update(
                        StandardsControlAssociationUpdate::builder()
                            .standards_arn(arn(FSBP))
                            .security_control_id("IAM.1")
                            .association_status(AssociationStatus::Disabled)
                            .build(),
                    )
                    .error_code(UnprocessedErrorCode::AccessDenied)
                    .error_reason("managed by a configuration policy")
                    .build(),
            )
            .build()
    });
    let err = handler(&[&hub, &cat, &enabled, &associations, &update])
        .create(&inv(), with_control(&[FSBP]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "BatchUpdateStandardsControlAssociations did not update IAM.1 in {}: ACCESS_DENIED: managed by",
            arn(FSBP)
        )),
        "{err}"
    );
    assert_eq!(
        update.num_calls(),
        1,
        "the refused change left the control enabled: nothing to turn back on"
    );
}

#[test]
fn short_ids_and_arns_expand_with_partition_and_region() {
    let cn = Invocation::detached("cn-north-1", ACCOUNT);
    assert_eq!(
        expand(&cn, 0, CIS_1_2_0).unwrap().arn,
        "arn:aws-cn:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0"
    );
    assert_eq!(
        expand(&cn, 0, "pci-dss/v/4.0.1").unwrap().arn,
        "arn:aws-cn:securityhub:cn-north-1::standards/pci-dss/v/4.0.1"
    );
    let given = "arn:aws:securityhub:eu-west-1::standards/nist-800-53/v/5.0.0";
    assert_eq!(
        expand(&inv(), 0, given).unwrap(),
        Standard {
            id: "nist-800-53/v/5.0.0".into(),
            arn: given.into()
        }
    );
    assert!(expand(&inv(), 2, "arn:aws:s3:::bucket")
        .unwrap_err()
        .to_string()
        .contains("Standards[2]"));
    assert_eq!(expand_all(&inv(), &[FSBP.into(), FSBP.into()]).unwrap().len(), 1);
}

#[test]
fn physical_id_round_trips() {
    let ownership = Ownership {
        region: "eu-west-1".into(),
        adopted: [FSBP.to_string(), CIS_1_2_0.to_string()].into(),
        controls_adopted: ["aws-foundational-security-best-practices/v/1.0.0#IAM.1".to_string()].into(),
    };
    assert_eq!(Ownership::parse(&legacy_id(&ownership)).unwrap(), ownership);
    let none = Ownership {
        region: "eu-west-1".into(),
        adopted: Default::default(),
        controls_adopted: Default::default(),
    };
    assert_eq!(Ownership::parse(&legacy_id(&none)).unwrap(), none);
    assert!(Ownership::parse("securityhub-standards:eu-west-1").is_err());
}

fn centrally_managed(mut p: Properties) -> Properties {
    p.centrally_managed = true;
    p
}

#[tokio::test]
async fn declared_centrally_managed_create_only_reads_and_its_delete_changes_nothing() {
    let (hub, cat, enable, disable) = (hub_on(), catalog(), enable_ok(), disable_ok());
    let enabled = reads(vec![vec![(FSBP, Ready, None), (CIS_14, Ready, None)]]);
    let associations = association_reads(vec![AssociationStatus::Disabled]);
    let update = mock!(SecurityHub::batch_update_standards_control_associations)
        .then_output(|| BatchUpdateStandardsControlAssociationsOutput::builder().build());
    let store = MemoryStore::new();
    let h = handler_with(
        &[&hub, &cat, &enabled, &enable, &disable, &associations, &update],
        &store,
    );
    let out = h
        .create(&inv(), centrally_managed(with_control(&[FSBP])))
        .await
        .unwrap();
    assert_eq!(out.data["CentrallyManaged"], "true");
    assert_eq!(out.data["Adopted"], arn(FSBP));
    assert_eq!(out.data["Statuses"], format!("{FSBP}=READY"));
    assert_eq!(out.data["DisabledControls"], format!("{FSBP}#IAM.1"));
    assert_eq!(
        held(&store),
        vec!["/tapguard/ledger/securityhub-standards/req-1".to_string()],
        "a record and no claim"
    );
    h.delete(&inv(), &out.physical_id, None).await.unwrap();
    assert_eq!(enable.num_calls() + disable.num_calls() + update.num_calls(), 0);
    assert!(held(&store).is_empty(), "{:?}", held(&store));
}

#[tokio::test]
async fn declared_centrally_managed_names_the_standards_and_controls_the_policy_does_not_give() {
    let (hub, cat, enable) = (hub_on(), catalog(), enable_ok());
    let enabled = reads(vec![vec![(FSBP, Ready, None)]]);
    let store = MemoryStore::new();
    let err = handler_with(&[&hub, &cat, &enabled, &enable], &store)
        .create(&inv(), centrally_managed(props(&[FSBP, CIS_14])))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{ACCOUNT}/eu-west-1 is declared centrally managed (CentrallyManaged); the central configuration policy \
             does not give the requested standard {} (not enabled)",
            arn(CIS_14)
        )),
        "{err}"
    );
    assert!(err.contains("in the delegated administrator account"), "{err}");

    let associations = association_reads(vec![AssociationStatus::Enabled]);
    let update = mock!(SecurityHub::batch_update_standards_control_associations)
        .then_output(|| BatchUpdateStandardsControlAssociationsOutput::builder().build());
    let err = handler_with(&[&hub, &cat, &enabled, &enable, &associations, &update], &store)
        .create(&inv(), centrally_managed(with_control(&[FSBP])))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "the central configuration policy keeps the control {FSBP}#IAM.1 enabled"
        )),
        "{err}"
    );
    assert_eq!(enable.num_calls() + update.num_calls(), 0, "nothing changed");
    assert!(held(&store).is_empty(), "{:?}", held(&store));
    assert_eq!(store.calls("PutParameter"), 0);
}
