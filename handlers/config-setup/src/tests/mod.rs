//! Unit tests of the resource's error paths, with Config mocked (aws-smithy-mocks) and the ledger kept in
//! the in-memory Parameter Store (`tapguard_shared::ssm::memory`).

use aws_sdk_config::operation::delete_config_rule::DeleteConfigRuleOutput;
use aws_sdk_config::operation::delete_configuration_recorder::DeleteConfigurationRecorderOutput;
use aws_sdk_config::operation::delete_delivery_channel::DeleteDeliveryChannelOutput;
use aws_sdk_config::operation::describe_config_rules::DescribeConfigRulesOutput;
use aws_sdk_config::operation::describe_configuration_recorder_status::DescribeConfigurationRecorderStatusOutput;
use aws_sdk_config::operation::describe_configuration_recorders::DescribeConfigurationRecordersOutput;
use aws_sdk_config::operation::describe_delivery_channel_status::DescribeDeliveryChannelStatusOutput;
use aws_sdk_config::operation::describe_delivery_channels::DescribeDeliveryChannelsOutput;
use aws_sdk_config::operation::list_configuration_recorders::ListConfigurationRecordersOutput;
use aws_sdk_config::operation::put_config_rule::PutConfigRuleOutput;
use aws_sdk_config::operation::put_configuration_recorder::PutConfigurationRecorderOutput;
use aws_sdk_config::operation::put_delivery_channel::PutDeliveryChannelOutput;
use aws_sdk_config::operation::start_configuration_recorder::StartConfigurationRecorderOutput;
use aws_sdk_config::operation::stop_configuration_recorder::StopConfigurationRecorderOutput;
use aws_sdk_config::types::{
    ConfigSnapshotDeliveryProperties, ConfigurationRecorder, ConfigurationRecorderStatus, DeliveryChannel,
    DeliveryChannelStatus, MaximumExecutionFrequency, RecorderStatus, RecordingGroup,
};
use aws_sdk_config::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{Invocation, Ledger};

use crate::{ConfigSetup, Properties};

mod create;
mod delete;

const ROLE: &str = "arn:aws:iam::111122223333:role/tap-config";
const ORG_ROLE: &str = "arn:aws:iam::111122223333:role/org-config";
const BUCKET: &str = "tap-config-111122223333";
const STACK: &str = "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f";

fn inv() -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", "111122223333");
    inv.request_id = "req-1".into();
    inv.stack_id = STACK.into();
    inv.logical_resource_id = "ConfigSetup".into();
    inv
}

fn props(rules: Value) -> Properties {
    tapguard_shared::props::parse(&json!({"RoleArn": ROLE, "DeliveryBucketName": BUCKET, "Rules": rules})).unwrap()
}

fn error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn recorder(name: &str, role: &str) -> ConfigurationRecorder {
    ConfigurationRecorder::builder()
        .name(name)
        .role_arn(role)
        .recording_group(
            RecordingGroup::builder()
                .all_supported(true)
                .include_global_resource_types(true)
                .build(),
        )
        .build()
}

fn status(name: &str, recording: bool, last: &str) -> ConfigurationRecorderStatus {
    ConfigurationRecorderStatus::builder()
        .name(name)
        .recording(recording)
        .last_status(RecorderStatus::from(last))
        .last_error_code("InsufficientDeliveryPolicyException")
        .last_error_message("Insufficient delivery policy to s3 bucket")
        .build()
}

fn channel(name: &str) -> DeliveryChannel {
    DeliveryChannel::builder()
        .name(name)
        .s3_bucket_name(BUCKET)
        .config_snapshot_delivery_properties(
            ConfigSnapshotDeliveryProperties::builder()
                .delivery_frequency(MaximumExecutionFrequency::TwentyFourHours)
                .build(),
        )
        .build()
}

/// Config as every Describe call shows it (the same answer each time).
#[derive(Clone, Default)]
struct Snapshot {
    recorder: Option<ConfigurationRecorder>,
    status: Option<ConfigurationRecorderStatus>,
    channel: Option<DeliveryChannel>,
    /// DescribeDeliveryChannelStatus's answer.
    delivery: Option<DeliveryChannelStatus>,
}

fn reads(s: Snapshot) -> Vec<Rule> {
    let (r, st, c, d) = (s.recorder, s.status, s.channel, s.delivery);
    vec![
        mock!(Client::describe_configuration_recorders).then_output(move || {
            DescribeConfigurationRecordersOutput::builder()
                .set_configuration_recorders(Some(r.clone().into_iter().collect()))
                .build()
        }),
        mock!(Client::describe_configuration_recorder_status).then_output(move || {
            DescribeConfigurationRecorderStatusOutput::builder()
                .set_configuration_recorders_status(Some(st.clone().into_iter().collect()))
                .build()
        }),
        mock!(Client::describe_delivery_channels).then_output(move || {
            DescribeDeliveryChannelsOutput::builder()
                .set_delivery_channels(Some(c.clone().into_iter().collect()))
                .build()
        }),
        mock!(Client::describe_config_rules).then_output(|| DescribeConfigRulesOutput::builder().build()),
        mock!(Client::describe_delivery_channel_status).then_output(move || {
            DescribeDeliveryChannelStatusOutput::builder()
                .set_delivery_channels_status(Some(d.clone().into_iter().collect()))
                .build()
        }),
        mock!(Client::list_configuration_recorders).then_output(|| {
            ListConfigurationRecordersOutput::builder()
                .set_configuration_recorder_summaries(Some(vec![]))
                .build()
                .expect("summaries are set")
        }),
    ]
}

/// Every mutating Config operation, answering success; `num_calls` says what was called.
struct Writes(Vec<Rule>);

impl Writes {
    fn ok() -> Writes {
        Writes(vec![
            mock!(Client::put_configuration_recorder).then_output(|| PutConfigurationRecorderOutput::builder().build()),
            mock!(Client::put_delivery_channel).then_output(|| PutDeliveryChannelOutput::builder().build()),
            mock!(Client::start_configuration_recorder)
                .then_output(|| StartConfigurationRecorderOutput::builder().build()),
            mock!(Client::stop_configuration_recorder)
                .then_output(|| StopConfigurationRecorderOutput::builder().build()),
            mock!(Client::put_config_rule).then_output(|| PutConfigRuleOutput::builder().build()),
            mock!(Client::delete_config_rule).then_output(|| DeleteConfigRuleOutput::builder().build()),
            mock!(Client::delete_delivery_channel).then_output(|| DeleteDeliveryChannelOutput::builder().build()),
            mock!(Client::delete_configuration_recorder)
                .then_output(|| DeleteConfigurationRecorderOutput::builder().build()),
        ])
    }

    fn total(&self) -> usize {
        self.0.iter().map(Rule::num_calls).sum()
    }
}

/// The ledger's Parameter Store, holding this resource's record (`req-1`) if given and each claim
/// (setting, claim) at its real name: the claim's own key under the setting's claims.
fn ledger_store(record: Option<Value>, claims: Vec<(String, Value)>) -> MemoryStore {
    let store = MemoryStore::new();
    if let Some(record) = record {
        store.insert(&ledger(&store).record_name("req-1"), record.to_string());
    }
    for (setting, claim) in claims {
        let key = claim["claimant"]["key"]
            .as_str()
            .expect("a claim names its claimant's key");
        store.insert(&Ledger::claim_name(&setting, key), claim.to_string());
    }
    store
}

fn ledger(store: &MemoryStore) -> Ledger {
    Ledger::from_client(store.client(), "config-setup")
}

/// Calls of every ledger operation.
fn ledger_calls(store: &MemoryStore) -> usize {
    ["GetParameter", "GetParametersByPath", "PutParameter", "DeleteParameter"]
        .iter()
        .map(|op| store.calls(op))
        .sum()
}

/// A claim of another resource (or of this one, with key `req-1`) on a setting.
fn claim(key: &str, logical_id: &str, wants: Value, prior: Value) -> Value {
    json!({"v": 1, "claimant": {"key": key, "handler": "config-setup", "stack_id": STACK, "logical_id": logical_id},
        "wants": wants, "prior": prior, "since": 100})
}

fn our_recorder_wants() -> Value {
    json!({"role_arn": ROLE, "all_supported": true, "include_global_resource_types": true, "resource_types": []})
}

fn our_channel_wants() -> Value {
    json!({"bucket": BUCKET, "key_prefix": null, "sns_topic_arn": null, "frequency": "TwentyFour_Hours"})
}

/// This resource's record (`req-1`) as the store holds it.
fn stored_record(store: &MemoryStore) -> Option<Value> {
    store.json(&ledger(store).record_name("req-1"))
}

/// The claim of `key` on `setting` as the store holds it.
fn stored_claim(store: &MemoryStore, setting: &str, key: &str) -> Option<Value> {
    store.json(&Ledger::claim_name(setting, key))
}

fn handler(first: &[&Rule], snapshot: Snapshot, writes: &Writes, store: &MemoryStore) -> ConfigSetup {
    let reads = reads(snapshot);
    let mut rules: Vec<&Rule> = first.to_vec();
    rules.extend(reads.iter());
    rules.extend(writes.0.iter());
    let client = mock_client!(aws_sdk_config, RuleMode::MatchAny, &rules, |c| c.retry_config(
        aws_sdk_config::config::retry::RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(std::time::Duration::from_millis(1))
            .with_max_backoff(std::time::Duration::from_millis(5))
    ));
    ConfigSetup::from_clients(client, ledger(store))
}
