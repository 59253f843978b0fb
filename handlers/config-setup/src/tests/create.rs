//! Create's error paths: refused claims, a denied ledger, denied or failed Config calls.

use aws_sdk_config::operation::put_config_rule::PutConfigRuleError;
use aws_sdk_config::operation::start_configuration_recorder::StartConfigurationRecorderError;
use tapguard_shared::{CustomResource, HandlerError};

use super::*;
use crate::{channel_setting, recorder_setting};

#[tokio::test]
async fn a_claimant_asking_another_role_is_refused_by_name_before_any_change() {
    let other = claim(
        "other-key",
        "OrgConfig",
        json!({"role_arn": ORG_ROLE, "all_supported": true,
        "include_global_resource_types": true, "resource_types": []}),
        json!({"exists": false}),
    );
    let store = ledger_store(None, vec![(recorder_setting(), other.clone())]);
    let writes = Writes::ok();
    let snapshot = Snapshot {
        recorder: Some(recorder("default", ORG_ROLE)),
        status: Some(status("default", true, "SUCCESS")),
        channel: Some(channel("default")),
        delivery: None,
    };
    let h = handler(&[], snapshot, &writes, &store);
    let err = h.create(&inv(), props(json!([]))).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("config/recorder is already claimed by OrgConfig in stack TapStack (config-setup)"),
        "{text}"
    );
    assert!(text.contains(ROLE), "names what this resource asked for: {text}");
    assert_eq!(writes.total(), 0, "no Config change");
    assert_eq!(
        store.calls("PutParameter"),
        1,
        "only this resource's record, which undo_create drops"
    );
    let record = stored_record(&store).expect("the record is written before the claims");
    assert_eq!(record["settings"], json!([recorder_setting(), channel_setting()]));
    assert_eq!(
        store.names_under("/tapguard/claims/"),
        [Ledger::claim_name(&recorder_setting(), "other-key")],
        "no claim of this resource, the other's untouched"
    );
    assert_eq!(stored_claim(&store, &recorder_setting(), "other-key"), Some(other));
}

#[tokio::test]
async fn a_ledger_the_function_may_not_write_fails_before_any_change() {
    let store = ledger_store(None, vec![]);
    store.fail("PutParameter", "AccessDeniedException");
    let writes = Writes::ok();
    let h = handler(&[], Snapshot::default(), &writes, &store);
    let err = h.create(&inv(), props(json!([]))).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("PutParameter failed: AccessDeniedException"), "{text}");
    assert!(
        text.contains("ssm:PutParameter on the ledger's parameters under /tapguard/"),
        "{text}"
    );
    assert_eq!(writes.total(), 0);
    assert_eq!(
        store.calls("PutParameter"),
        1,
        "the record, refused, is the first write"
    );
    assert!(store.names_under("/tapguard/").is_empty());
}

#[tokio::test]
async fn denied_recording_names_the_action() {
    let start = mock!(Client::start_configuration_recorder).then_error(|| {
        StartConfigurationRecorderError::generic(error(
            "AccessDeniedException",
            "User is not authorized to perform: config:StartConfigurationRecorder",
        ))
    });
    let store = ledger_store(None, vec![]);
    let writes = Writes::ok();
    let h = handler(&[&start], Snapshot::default(), &writes, &store);
    let err = h.create(&inv(), props(json!([]))).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert!(
        err.to_string()
            .contains("the action config:StartConfigurationRecorder was denied"),
        "{err}"
    );
    assert_eq!(
        store.calls("PutParameter"),
        3,
        "the record and two claims, before the first change"
    );
    let record = stored_record(&store).expect("the record");
    assert_eq!(record["settings"], json!([recorder_setting(), channel_setting()]));
    assert_eq!(record["state"], json!({"recorder_name": "default", "rules": []}));
    let recorder = stored_claim(&store, &recorder_setting(), "req-1").expect("the recorder's claim");
    assert_eq!(recorder["wants"], our_recorder_wants());
    assert_eq!(
        recorder["prior"],
        json!({"exists": false, "recording": false}),
        "there was no recorder"
    );
    let channel = stored_claim(&store, &channel_setting(), "req-1").expect("the channel's claim");
    assert_eq!(channel["wants"], our_channel_wants());
    assert_eq!(channel["prior"], json!({"exists": false}), "there was no channel");
    assert_eq!(start.num_calls(), 1);
}

#[tokio::test]
async fn a_failing_delivery_of_an_unchanged_setup_is_not_verified_with_the_bucket_policy_advice() {
    let store = ledger_store(None, vec![]);
    let writes = Writes::ok();
    let failed = aws_sdk_config::types::ConfigExportDeliveryInfo::builder()
        .last_status(aws_sdk_config::types::DeliveryStatus::Failure)
        .last_error_code("InsufficientDeliveryPolicyException")
        .last_error_message("Insufficient delivery policy to s3 bucket")
        .build();
    let snapshot = Snapshot {
        recorder: Some(recorder("default", ROLE)),
        status: Some(status("default", true, "Success")),
        channel: Some(channel("default")),
        delivery: Some(
            DeliveryChannelStatus::builder()
                .name("default")
                .config_history_delivery_info(failed)
                .build(),
        ),
    };
    let h = handler(&[], snapshot, &writes, &store);
    let err = h.create(&inv(), props(json!([]))).await.unwrap_err();
    assert!(matches!(err, HandlerError::NotVerified(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("DescribeDeliveryChannelStatus shows the configuration history delivery Failure: InsufficientDeliveryPolicyException"),
        "{text}"
    );
    assert!(text.contains(&format!("the bucket policy of {BUCKET}")), "{text}");
    assert_eq!(writes.total(), 0, "everything already matched");
}

#[tokio::test]
async fn a_rule_still_being_deleted_is_waited_out_then_put() {
    let put_rule = mock!(Client::put_config_rule)
        .sequence()
        .error(|| {
            PutConfigRuleError::generic(error(
                "ResourceInUseException",
                "The rule keys is currently being deleted.  Please retry after some time",
            ))
        })
        .times(2)
        .output(|| PutConfigRuleOutput::builder().build())
        .build();
    let store = ledger_store(None, vec![]);
    let writes = Writes::ok();
    let snapshot = Snapshot {
        recorder: Some(recorder("default", ROLE)),
        status: Some(status("default", true, "SUCCESS")),
        channel: Some(channel("default")),
        delivery: None,
    };
    let h = handler(&[&put_rule], snapshot, &writes, &store);
    let rules = json!([{"Name": "keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED"}]);
    // The mocked reads never show the rule, so the read-back fails; the put itself got through.
    let err = h.create(&inv(), props(rules)).await.unwrap_err();
    assert_eq!(put_rule.num_calls(), 3, "two refusals waited out, then the put: {err}");
    assert!(err.to_string().contains("does not show the rule keys"), "{err}");
}

#[test]
fn the_advice_for_a_rule_in_use_says_to_wait_for_the_deletion_and_how_to_go_on() {
    let desired = crate::properties::validate(
        &props(json!([{"Name": "keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED"}])),
        "eu-west-1",
    )
    .unwrap();
    let err = HandlerError::Aws {
        service: "config".into(),
        operation: "PutConfigRule".into(),
        code: "ResourceInUseException".into(),
        message: "The rule keys is currently being deleted.  Please retry after some time".into(),
        advice: String::new(),
    };
    let text = crate::advice::advise(err, Some(&desired), Some(&desired.rules[0])).to_string();
    assert!(
        text.starts_with("PutConfigRule failed: ResourceInUseException"),
        "{text}"
    );
    assert!(text.contains("Rules[0] (keys): Config is still deleting"), "{text}");
    assert!(text.contains("ContinueUpdateRollback"), "{text}");
}
