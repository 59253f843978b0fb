//! Delete's error paths: a restore that is impossible, a channel Config will not delete.

use aws_sdk_config::operation::delete_delivery_channel::DeleteDeliveryChannelError;
use aws_sdk_config::operation::put_configuration_recorder::PutConfigurationRecorderError;
use tapguard_shared::CustomResource;

use super::*;
use crate::{channel_setting, recorder_setting};

const ID: &str = "config-setup:eu-west-1:ledger-req-1";

fn record(settings: &[String]) -> Value {
    json!({"v": 1, "handler": "config-setup", "stack_id": STACK, "logical_id": "ConfigSetup", "region": "eu-west-1",
        "settings": settings, "state": {"recorder_name": "org", "rules": []}})
}

#[tokio::test]
async fn a_prior_role_that_cannot_be_put_back_fails_with_advice_and_keeps_the_claim() {
    let prior = json!({"exists": true, "name": "org", "recording": true, "settings": {"role_arn": ORG_ROLE,
        "all_supported": true, "include_global_resource_types": true}});
    let record = record(&[recorder_setting(), channel_setting()]);
    let ours = claim("req-1", "ConfigSetup", our_recorder_wants(), prior);
    let store = ledger_store(Some(record.clone()), vec![(recorder_setting(), ours.clone())]);
    let put = mock!(Client::put_configuration_recorder).then_error(|| {
        PutConfigurationRecorderError::generic(error(
            "InsufficientPermissionsException",
            "The role is not assumable by config.amazonaws.com",
        ))
    });
    let writes = Writes::ok();
    let snapshot = Snapshot {
        recorder: Some(recorder("org", ROLE)),
        status: Some(status("org", true, "SUCCESS")),
        channel: Some(channel("default")),
        delivery: None,
    };
    let h = handler(&[&put], snapshot, &writes, &store);
    let err = h.delete(&inv(), ID, None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("PutConfigurationRecorder failed: InsufficientPermissionsException"),
        "{text}"
    );
    assert!(
        text.contains(&format!("cannot be put back: the role {ORG_ROLE} may no longer exist")),
        "{text}"
    );
    assert!(text.contains(&format!("keeps the role {ROLE}")), "{text}");
    assert!(text.contains("DeletionPolicy: Retain"), "{text}");
    assert_eq!(put.num_calls(), 1);
    assert_eq!(
        writes.total(),
        0,
        "recording was on before: not stopped; nothing deleted"
    );
    assert_eq!(
        store.calls("DeleteParameter"),
        0,
        "the claim and the record are kept for the retried Delete"
    );
    assert_eq!(stored_claim(&store, &recorder_setting(), "req-1"), Some(ours));
    assert_eq!(stored_record(&store), Some(record));
    assert_eq!(store.calls("PutParameter"), 0, "nothing had to be put back");
}

#[tokio::test]
async fn a_channel_config_will_not_delete_says_what_to_do_and_keeps_the_claims() {
    let absent = json!({"exists": false});
    let record = record(&[recorder_setting(), channel_setting()]);
    let recorder_claim = claim("req-1", "ConfigSetup", our_recorder_wants(), absent.clone());
    let channel_claim = claim("req-1", "ConfigSetup", our_channel_wants(), absent);
    let store = ledger_store(
        Some(record.clone()),
        vec![
            (recorder_setting(), recorder_claim.clone()),
            (channel_setting(), channel_claim.clone()),
        ],
    );
    let delete_channel = mock!(Client::delete_delivery_channel).then_error(|| {
        DeleteDeliveryChannelError::generic(error(
            "LastDeliveryChannelDeleteFailedException",
            "Failed to delete last specified delivery channel with name 'default', because there, because there is \
             a running configuration recorder.",
        ))
    });
    let writes = Writes::ok();
    let snapshot = Snapshot {
        recorder: Some(recorder("org", ROLE)),
        status: Some(status("org", true, "SUCCESS")),
        channel: Some(channel("default")),
        delivery: None,
    };
    let h = handler(&[&delete_channel], snapshot, &writes, &store);
    let err = h.delete(&inv(), ID, None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("DeleteDeliveryChannel failed: LastDeliveryChannelDeleteFailedException"),
        "{text}"
    );
    assert!(text.contains("stop the recorder, then retry the delete"), "{text}");
    assert_eq!(writes.0[3].num_calls(), 1, "recording was stopped first");
    assert_eq!(
        writes.0[7].num_calls(),
        0,
        "the recorder is not deleted before its channel"
    );
    assert_eq!(
        store.calls("PutParameter") + store.calls("DeleteParameter"),
        0,
        "both claims are kept for the retried Delete"
    );
    assert_eq!(stored_claim(&store, &recorder_setting(), "req-1"), Some(recorder_claim));
    assert_eq!(stored_claim(&store, &channel_setting(), "req-1"), Some(channel_claim));
    assert_eq!(stored_record(&store), Some(record));
}

#[tokio::test]
async fn an_id_this_handler_never_issued_is_refused() {
    let store = ledger_store(None, vec![]);
    let writes = Writes::ok();
    let h = handler(&[], Snapshot::default(), &writes, &store);
    let err = h
        .delete(&inv(), "config-setup:eu-west-1:something", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not one this handler issues"), "{err}");
    let err = h
        .delete(&inv(), "config-setup:us-east-1:ledger-req-1", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("set up AWS Config in us-east-1"), "{err}");
    assert_eq!(writes.total(), 0);
    assert_eq!(ledger_calls(&store), 0, "the ledger is not even read");
    assert!(store.names_under("/tapguard/").is_empty());
}
