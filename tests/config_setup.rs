//! Custom::ConfigSetup: the real binary under the Lambda Runtime API, against the emulator's AWS Config.

use serde_json::{json, Value};
use tapguard_tests::*;

const BINARY: &str = "config-setup";
const TYPE: &str = "Custom::ConfigSetup";
const REGION: &str = "eu-west-1";
const OWNER_TAG: &str = "tapguard:config-setup";

fn world() -> World {
    World::new(BINARY, REGION)
}

fn config(w: &World, operation: &str, body: Value) -> Value {
    w.json_call("config", &format!("StarlingDoveService.{operation}"), body)
}

/// AWS Config in the world's account and region, as the emulator holds it now.
struct ConfigState {
    recorders: Vec<Value>,
    statuses: Vec<Value>,
    channels: Vec<Value>,
    rules: Vec<Value>,
}

impl ConfigState {
    fn read(w: &World) -> ConfigState {
        let list = |v: Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
        ConfigState {
            recorders: list(
                config(w, "DescribeConfigurationRecorders", json!({})),
                "ConfigurationRecorders",
            ),
            statuses: list(
                config(w, "DescribeConfigurationRecorderStatus", json!({})),
                "ConfigurationRecordersStatus",
            ),
            channels: list(config(w, "DescribeDeliveryChannels", json!({})), "DeliveryChannels"),
            rules: list(config(w, "DescribeConfigRules", json!({})), "ConfigRules"),
        }
    }

    fn recorder_names(&self) -> Vec<&str> {
        self.recorders.iter().filter_map(|r| r["name"].as_str()).collect()
    }

    fn channel_names(&self) -> Vec<&str> {
        self.channels.iter().filter_map(|c| c["name"].as_str()).collect()
    }

    fn recording(&self, recorder: &str) -> bool {
        self.statuses
            .iter()
            .any(|s| s["name"] == recorder && s["recording"] == true)
    }

    fn rule_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.rules.iter().filter_map(|r| r["ConfigRuleName"].as_str()).collect();
        names.sort();
        names
    }

    fn rule(&self, name: &str) -> &Value {
        self.rules
            .iter()
            .find(|r| r["ConfigRuleName"] == name)
            .unwrap_or_else(|| panic!("no rule {name} in {:?}", self.rule_names()))
    }

    fn is_empty(&self) -> bool {
        self.recorders.is_empty() && self.channels.is_empty() && self.rules.is_empty()
    }
}

fn rule_owner_tag(w: &World, state: &ConfigState, rule: &str) -> Option<String> {
    let arn = state.rule(rule)["ConfigRuleArn"]
        .as_str()
        .expect("rule ARN")
        .to_string();
    let tags = config(w, "ListTagsForResource", json!({"ResourceArn": arn}));
    tags["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["Key"] == OWNER_TAG)
        .and_then(|t| t["Value"].as_str().map(str::to_string))
}

fn role(w: &World) -> String {
    format!("arn:aws:iam::{}:role/tap-config-recorder", w.account.account_id)
}

fn bucket(w: &World) -> String {
    format!("tap-config-{}", w.account.account_id)
}

fn keys_rule() -> Value {
    json!({"Name": "tap-access-keys-rotated", "SourceIdentifier": "ACCESS_KEYS_ROTATED",
           "InputParameters": {"maxAccessKeyAge": "90"}})
}

fn public_read_rule() -> Value {
    json!({"Name": "tap-s3-public-read", "SourceIdentifier": "S3_BUCKET_PUBLIC_READ_PROHIBITED",
           "ResourceTypesScope": ["AWS::S3::Bucket"]})
}

fn volumes_rule() -> Value {
    json!({"Name": "tap-encrypted-volumes", "SourceIdentifier": "ENCRYPTED_VOLUMES"})
}

fn props(w: &World, rules: Vec<Value>) -> Value {
    json!({"RoleArn": role(w), "DeliveryBucketName": bucket(w), "Rules": rules})
}

/// Positions of `ops` in the call log, each the first occurrence; panics if one is missing.
fn first_positions(calls: &[String], ops: &[&str]) -> Vec<usize> {
    ops.iter()
        .map(|op| {
            calls
                .iter()
                .position(|c| c == op)
                .unwrap_or_else(|| panic!("{op} was not called: {calls:?}"))
        })
        .collect()
}

fn assert_in_order(calls: &[String], ops: &[&str]) {
    let positions = first_positions(calls, ops);
    assert!(
        positions.windows(2).all(|p| p[0] < p[1]),
        "expected {ops:?} in this order: {calls:?}"
    );
}

/// Someone else's Config: a recorder of another name, optionally its channel, recording, and a rule.
fn seed_foreign_config(w: &World, with_channel: bool) {
    config(
        w,
        "PutConfigurationRecorder",
        json!({"ConfigurationRecorder": {"name": "org-recorder",
            "roleARN": format!("arn:aws:iam::{}:role/org-config", w.account.account_id),
            "recordingGroup": {"allSupported": true, "includeGlobalResourceTypes": true}}}),
    );
    if with_channel {
        config(
            w,
            "PutDeliveryChannel",
            json!({"DeliveryChannel": {"name": "org-channel", "s3BucketName": bucket(w)}}),
        );
        config(
            w,
            "StartConfigurationRecorder",
            json!({"ConfigurationRecorderName": "org-recorder"}),
        );
    }
}

#[test]
fn fresh_account_from_the_fixture_creates_in_order_verifies_and_delete_removes_it_all() {
    let w = world();
    assert!(ConfigState::read(&w).is_empty(), "a fresh account has no Config");
    let r = w.resource(TYPE, "ConfigSetup");

    let mut event = fixture("config-setup-create.json");
    event["StackId"] = json!(w.stack_id());
    let created = r.send(event.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(
        created.physical_id(),
        "config-setup:eu-west-1:created=recorder,channel:started-recording=true:default"
    );
    assert_eq!(created.data("RecorderName"), Some("default"));
    assert_eq!(created.data("DeliveryChannelName"), Some("default"));
    assert_eq!(created.data("Recording"), Some("true"));
    // The emulator reports PENDING until a delivery, as AWS does before the first one.
    assert_eq!(created.data("LastStatus"), Some("PENDING"));
    assert_eq!(created.data("RecorderAdopted"), Some("false"));
    assert_eq!(created.data("ChannelAdopted"), Some("false"));
    let names = "tap-access-keys-rotated,tap-s3-bucket-public-read-prohibited,tap-encrypted-volumes";
    assert_eq!(created.data("RuleNames"), Some(names));
    assert_eq!(created.data("RulesCreated"), Some(names));

    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["default"]);
    assert_eq!(
        state.recorders[0]["roleARN"],
        "arn:aws:iam::123456789012:role/tap-config-recorder"
    );
    assert_eq!(state.recorders[0]["recordingGroup"]["allSupported"], true);
    assert_eq!(state.recorders[0]["recordingGroup"]["includeGlobalResourceTypes"], true);
    assert!(state.recording("default"));
    assert_eq!(state.channel_names(), ["default"]);
    assert_eq!(state.channels[0]["s3BucketName"], "tap-config-123456789012-eu-west-1");
    assert_eq!(state.channels[0]["s3KeyPrefix"], "config");
    assert_eq!(
        state.channels[0]["configSnapshotDeliveryProperties"]["deliveryFrequency"],
        "Six_Hours"
    );
    assert_eq!(state.rule_names().len(), 3);
    let keys = state.rule("tap-access-keys-rotated");
    assert_eq!(keys["Source"]["SourceIdentifier"], "ACCESS_KEYS_ROTATED");
    assert_eq!(
        serde_json::from_str::<Value>(keys["InputParameters"].as_str().unwrap()).unwrap(),
        json!({"maxAccessKeyAge": "90"})
    );
    assert_eq!(
        rule_owner_tag(&w, &state, "tap-encrypted-volumes").as_deref(),
        Some("stack/tap-test/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f/ConfigSetup")
    );

    // Config's order: recorder, channel, start, then the rules.
    let calls = w.operations("config");
    assert_in_order(
        &calls,
        &[
            "PutConfigurationRecorder",
            "PutDeliveryChannel",
            "StartConfigurationRecorder",
            "PutConfigRule",
        ],
    );
    // The verification read comes after the last change.
    let last_put = calls.iter().rposition(|c| c == "PutConfigRule").unwrap();
    assert!(calls[last_put..].contains(&"DescribeConfigurationRecorderStatus".to_string()));

    let mut delete = fixture("config-setup-delete.json");
    delete["StackId"] = json!(w.stack_id());
    delete["PhysicalResourceId"] = json!(created.physical_id());
    let before = w.operations("config").len();
    let deleted = r.send(delete);
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(ConfigState::read(&w).is_empty(), "Delete removes all it created");
    let during = w.operations("config")[before..].to_vec();
    assert_in_order(
        &during,
        &[
            "DeleteConfigRule",
            "StopConfigurationRecorder",
            "DeleteDeliveryChannel",
            "DeleteConfigurationRecorder",
        ],
    );
}

#[test]
fn noop_update_makes_no_mutating_call_and_rules_are_added_and_removed() {
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![keys_rule(), public_read_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    // The same properties again: reads only.
    let before = w.operations("config").len();
    let noop = r.update(props(&w, vec![keys_rule(), public_read_rule()]));
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    assert_eq!(noop.physical_id(), created.physical_id(), "no replacement");
    let during = w.operations("config")[before..].to_vec();
    assert!(
        mutating(&during).is_empty(),
        "a no-op Update changed something: {during:?}"
    );
    assert!(during.contains(&"DescribeConfigurationRecorderStatus".to_string()));

    // One rule removed, one added, one parameter changed.
    let mut keys = keys_rule();
    keys["InputParameters"]["maxAccessKeyAge"] = json!("45");
    let changed = r.update(props(&w, vec![keys, volumes_rule()]));
    assert_eq!(changed.status(), "SUCCESS", "{}", changed.reason());
    assert_eq!(changed.physical_id(), created.physical_id());
    assert_eq!(
        changed.data("RuleNames"),
        Some("tap-access-keys-rotated,tap-encrypted-volumes")
    );
    assert_eq!(
        changed.data("RulesCreated"),
        Some("tap-access-keys-rotated,tap-encrypted-volumes")
    );
    let state = ConfigState::read(&w);
    assert_eq!(state.rule_names(), ["tap-access-keys-rotated", "tap-encrypted-volumes"]);
    assert_eq!(
        state.rule("tap-access-keys-rotated")["InputParameters"],
        r#"{"maxAccessKeyAge":"45"}"#
    );
    assert!(state.recording("default"));
    let calls = w.operations("config");
    assert_eq!(
        calls.iter().filter(|c| *c == "PutConfigurationRecorder").count(),
        1,
        "rule changes leave the recorder alone: {calls:?}"
    );

    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(ConfigState::read(&w).is_empty());
}

#[test]
fn an_existing_recorder_of_another_name_is_adopted_and_left_on_delete() {
    let w = world();
    seed_foreign_config(&w, false);
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![volumes_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("RecorderName"), Some("org-recorder"));
    assert_eq!(created.data("RecorderAdopted"), Some("true"));
    assert_eq!(created.data("ChannelAdopted"), Some("false"));
    assert_eq!(
        created.physical_id(),
        "config-setup:eu-west-1:created=channel:started-recording=true:org-recorder"
    );
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["org-recorder"], "never a second recorder");
    assert_eq!(
        state.recorders[0]["roleARN"],
        role(&w),
        "the requested settings are applied"
    );
    assert!(state.recording("org-recorder"));
    assert_eq!(state.channel_names(), ["default"]);

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["org-recorder"], "the adopted recorder stays");
    assert!(
        !state.recording("org-recorder"),
        "it was stopped before, as Delete leaves it"
    );
    assert!(state.channels.is_empty(), "the channel this resource created is gone");
    assert!(state.rules.is_empty());
    assert!(!w
        .operations("config")
        .contains(&"DeleteConfigurationRecorder".to_string()));
}

#[test]
fn an_existing_channel_and_rule_are_adopted_and_delete_leaves_them_intact() {
    let w = world();
    seed_foreign_config(&w, true);
    config(
        &w,
        "PutConfigRule",
        json!({"ConfigRule": {"ConfigRuleName": "tap-encrypted-volumes",
            "Source": {"Owner": "AWS", "SourceIdentifier": "ENCRYPTED_VOLUMES"}}}),
    );
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![volumes_rule(), keys_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("DeliveryChannelName"), Some("org-channel"));
    assert_eq!(created.data("ChannelAdopted"), Some("true"));
    assert_eq!(created.data("RecorderAdopted"), Some("true"));
    assert_eq!(created.data("RulesCreated"), Some("tap-access-keys-rotated"));
    assert_eq!(
        created.physical_id(),
        "config-setup:eu-west-1:created=none:started-recording=false:org-recorder"
    );
    let calls = w.operations("config");
    assert!(
        !calls.contains(&"StartConfigurationRecorder".to_string()),
        "already recording: {calls:?}"
    );
    let state = ConfigState::read(&w);
    assert_eq!(state.channel_names(), ["org-channel"], "never a second channel");
    assert_eq!(rule_owner_tag(&w, &state, "tap-encrypted-volumes"), None);
    assert!(rule_owner_tag(&w, &state, "tap-access-keys-rotated").is_some());

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["org-recorder"]);
    assert!(state.recording("org-recorder"), "it was recording before: it still is");
    assert_eq!(state.channel_names(), ["org-channel"]);
    assert_eq!(
        state.rule_names(),
        ["tap-encrypted-volumes"],
        "only the rule this resource created is gone"
    );
}

#[test]
fn repeat_create_adopts_everything_without_a_mutating_call() {
    let w = world();
    let mut first = w.resource(TYPE, "First");
    let created = first.create(props(&w, vec![keys_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    let before = w.operations("config").len();
    let mut second = w.resource(TYPE, "Second");
    let again = second.create(props(&w, vec![keys_rule()]));
    assert_eq!(again.status(), "SUCCESS", "{}", again.reason());
    let during = w.operations("config")[before..].to_vec();
    assert!(mutating(&during).is_empty(), "{during:?}");
    assert_eq!(again.data("RecorderAdopted"), Some("true"));
    assert_eq!(again.data("ChannelAdopted"), Some("true"));
    assert_eq!(again.data("RulesCreated"), Some(""));
    assert_eq!(again.data("RuleNames"), Some("tap-access-keys-rotated"));

    // Deleting the second leaves the first one's setup as it was.
    assert_eq!(second.delete().status(), "SUCCESS");
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["default"]);
    assert!(state.recording("default"));
    assert_eq!(state.channel_names(), ["default"]);
    assert_eq!(state.rule_names(), ["tap-access-keys-rotated"]);

    assert_eq!(first.delete().status(), "SUCCESS");
    assert!(ConfigState::read(&w).is_empty());
}

#[test]
fn renaming_an_adopted_recorder_is_refused_with_a_reason() {
    let w = world();
    seed_foreign_config(&w, true);
    let mut r = w.resource(TYPE, "ConfigSetup");
    assert_eq!(r.create(props(&w, vec![])).status(), "SUCCESS");
    let before = w.operations("config").len();
    let mut renamed = props(&w, vec![]);
    renamed["RecorderName"] = json!("tap-recorder");
    let failed = r.update(renamed);
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(
            "invalid property RecorderName: changed to \"tap-recorder\", but the recorder org-recorder was adopted"
        ),
        "{}",
        failed.reason()
    );
    let during = w.operations("config")[before..].to_vec();
    assert!(mutating(&during).is_empty(), "{during:?}");
    assert_eq!(ConfigState::read(&w).recorder_names(), ["org-recorder"]);
}

#[test]
fn access_denied_on_start_is_failed_naming_the_action_and_the_create_is_undone() {
    let w = world();
    w.fault(
        json!({"service": "config", "operation": "StartConfigurationRecorder", "code": "AccessDeniedException",
        "message": "User is not authorized to perform: config:StartConfigurationRecorder", "status": 400}),
    );
    let mut r = w.resource(TYPE, "ConfigSetup");
    let failed = r.create(props(&w, vec![keys_rule()]));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("StartConfigurationRecorder failed: AccessDeniedException: User is not authorized"),
        "{reason}"
    );
    assert!(
        reason.contains("the action config:StartConfigurationRecorder was denied"),
        "{reason}"
    );
    assert!(
        reason.contains("this Create undid its changes (deleted delivery channel default, deleted recorder default)"),
        "{reason}"
    );
    assert!(ConfigState::read(&w).is_empty(), "nothing is left behind");
    assert!(
        !w.operations("config").contains(&"PutConfigRule".to_string()),
        "rules come after recording starts"
    );

    // CloudFormation's Delete after the failed Create finds nothing to do and calls nothing.
    let before = w.operations("config").len();
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(deleted.physical_id(), failed.physical_id());
    assert_eq!(w.operations("config").len(), before);
}

#[test]
fn a_rule_config_rejects_fails_the_create_which_is_undone_and_the_delete_after_is_a_no_op() {
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let bad = json!({"Name": "tap-not-a-rule", "SourceIdentifier": "NOT_A_MANAGED_RULE"});
    let failed = r.create(props(&w, vec![keys_rule(), bad]));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("PutConfigRule failed: InvalidParameterValueException"),
        "{reason}"
    );
    assert!(reason.contains("Rules[1] (tap-not-a-rule)"), "{reason}");
    assert!(
        reason.contains("deleted rule tap-access-keys-rotated, stopped recorder default, deleted delivery channel default, deleted recorder default"),
        "{reason}"
    );
    assert!(ConfigState::read(&w).is_empty());

    let before = w.operations("config").len();
    assert_eq!(r.delete().status(), "SUCCESS");
    assert_eq!(
        w.operations("config").len(),
        before,
        "the Delete after a failed Create calls nothing"
    );
}

#[test]
fn throttling_on_put_config_rule_is_retried_by_the_sdk_and_recovers() {
    let w = world();
    w.fault(
        json!({"service": "config", "operation": "PutConfigRule", "code": "ThrottlingException",
        "message": "Rate exceeded", "count": 2}),
    );
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![keys_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let puts = w
        .operations("config")
        .iter()
        .filter(|op| *op == "PutConfigRule")
        .count();
    assert_eq!(puts, 3, "two throttled attempts, then success");
    assert_eq!(ConfigState::read(&w).rule_names(), ["tap-access-keys-rotated"]);
}

#[test]
fn invalid_properties_fail_by_name_before_any_call() {
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let mut bad_role = props(&w, vec![]);
    bad_role["RoleArn"] = json!("tap-config-recorder");
    let failed = r.create(bad_role);
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("invalid property RoleArn: \"tap-config-recorder\" is not an IAM role ARN"),
        "{}",
        failed.reason()
    );

    let mut bad_frequency = props(&w, vec![]);
    bad_frequency["DeliveryFrequency"] = json!("Daily");
    let failed = r.create(bad_frequency);
    assert!(
        failed
            .reason()
            .starts_with("invalid property DeliveryFrequency: \"Daily\" is not one of"),
        "{}",
        failed.reason()
    );

    let failed = r.create(props(
        &w,
        vec![json!({"Name": "x", "SourceIdentifier": "ACCESS_KEYS_ROTATED", "MaximumExecutionFrequency": "Hourly"})],
    ));
    assert!(
        failed
            .reason()
            .starts_with("invalid property Rules[0].MaximumExecutionFrequency"),
        "{}",
        failed.reason()
    );
    assert!(w.operations("config").is_empty(), "{:?}", w.operations("config"));
}

#[test]
fn renaming_a_created_recorder_replaces_it_and_the_delete_of_the_old_id_leaves_the_new_one() {
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let old_props = props(&w, vec![keys_rule()]);
    let created = r.create(old_props.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    let mut renamed = props(&w, vec![keys_rule()]);
    renamed["RecorderName"] = json!("tap-recorder");
    let updated = r.update(renamed);
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(
        updated.physical_id(),
        "config-setup:eu-west-1:created=recorder,channel:started-recording=true:tap-recorder",
        "a new recorder is a new identity"
    );
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["tap-recorder"]);
    assert!(state.recording("tap-recorder"));
    assert_eq!(state.channel_names(), ["default"]);
    assert_eq!(state.rule_names(), ["tap-access-keys-rotated"]);

    // CloudFormation then deletes the old physical id, with the old properties.
    let before = w.operations("config").len();
    let old_delete = r.send(event(
        "Delete",
        TYPE,
        "ConfigSetup",
        &w.stack_id(),
        "",
        &old_props,
        Some(created.physical_id()),
        None,
    ));
    assert_eq!(old_delete.status(), "SUCCESS", "{}", old_delete.reason());
    let during = w.operations("config")[before..].to_vec();
    assert!(
        mutating(&during).is_empty(),
        "the old id's Delete changed something: {during:?}"
    );
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["tap-recorder"]);
    assert!(state.recording("tap-recorder"));
    assert_eq!(state.rule_names(), ["tap-access-keys-rotated"]);

    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(ConfigState::read(&w).is_empty());
}

#[test]
fn the_update_fixture_adds_a_rule_to_the_stack_created_from_its_old_properties() {
    let w = world();
    let r = w.resource(TYPE, "ConfigSetup");
    let mut update = fixture("config-setup-update.json");
    update["StackId"] = json!(w.stack_id());

    let mut create = fixture("config-setup-create.json");
    create["StackId"] = json!(w.stack_id());
    create["ResourceProperties"] = update["OldResourceProperties"].clone();
    let created = r.send(create);
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(ConfigState::read(&w).rules.len(), 2);

    update["PhysicalResourceId"] = json!(created.physical_id());
    let before = w.operations("config").len();
    let updated = r.send(update);
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.physical_id(), created.physical_id());
    assert_eq!(
        updated.data("RulesCreated"),
        Some("tap-access-keys-rotated,tap-s3-bucket-public-read-prohibited,tap-encrypted-volumes")
    );
    let during = w.operations("config")[before..].to_vec();
    assert_eq!(mutating(&during), ["PutConfigRule"], "only the new rule is put");
    assert_eq!(
        ConfigState::read(&w).rule_names(),
        [
            "tap-access-keys-rotated",
            "tap-encrypted-volumes",
            "tap-s3-bucket-public-read-prohibited"
        ]
    );
}
