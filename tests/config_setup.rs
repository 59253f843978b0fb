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

/// The names of every parameter the ownership ledger holds in this world's account and region.
fn ledger_parameters(w: &World) -> Vec<String> {
    ledger_parameters_of(&w.account, &w.region)
}

/// Config in the region, reduced to what a stack operation may change: compared before and after.
fn snapshot(w: &World) -> Value {
    let state = ConfigState::read(w);
    let rules: Vec<Value> = state
        .rules
        .iter()
        .map(|r| {
            json!({"name": r["ConfigRuleName"], "source": r["Source"], "params": r["InputParameters"],
                   "frequency": r["MaximumExecutionFrequency"], "scope": r["Scope"]})
        })
        .collect();
    let statuses: Vec<Value> = state
        .statuses
        .iter()
        .map(|s| json!({"name": s["name"], "recording": s["recording"]}))
        .collect();
    json!({"recorders": state.recorders, "statuses": statuses, "channels": state.channels, "rules": rules})
}

fn org_role(w: &World) -> String {
    format!("arn:aws:iam::{}:role/org-config", w.account.account_id)
}

/// An organization's Config, set up before any stack: a recorder with another role that records only
/// EC2 instances, a channel with another bucket, prefix and frequency, recording, and a rule of the same
/// name as one the stack asks for, with other parameters.
fn seed_org_config(w: &World) {
    config(
        w,
        "PutConfigurationRecorder",
        json!({"ConfigurationRecorder": {"name": "org-recorder", "roleARN": org_role(w),
            "recordingGroup": {"allSupported": false, "includeGlobalResourceTypes": false,
                               "resourceTypes": ["AWS::EC2::Instance"]}}}),
    );
    config(
        w,
        "PutDeliveryChannel",
        json!({"DeliveryChannel": {"name": "org-channel", "s3BucketName": "org-config-bucket",
            "s3KeyPrefix": "org", "configSnapshotDeliveryProperties": {"deliveryFrequency": "One_Hour"}}}),
    );
    config(
        w,
        "StartConfigurationRecorder",
        json!({"ConfigurationRecorderName": "org-recorder"}),
    );
    config(
        w,
        "PutConfigRule",
        json!({"ConfigRule": {"ConfigRuleName": "tap-access-keys-rotated",
            "Source": {"Owner": "AWS", "SourceIdentifier": "ACCESS_KEYS_ROTATED"},
            "InputParameters": "{\"maxAccessKeyAge\":\"30\"}"}}),
    );
}

fn params_of(rule: &Value) -> Value {
    serde_json::from_str(rule["InputParameters"].as_str().unwrap_or("{}")).unwrap()
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
    assert!(
        created.physical_id().starts_with("config-setup:eu-west-1:ledger-"),
        "{}",
        created.physical_id()
    );
    let held = ledger_parameters(&w);
    assert!(
        held.iter().any(|p| p.starts_with("/tapguard/ledger/config-setup/")),
        "the record: {held:?}"
    );
    for setting in ["recorder", "channel", "rule/tap-encrypted-volumes"] {
        assert_eq!(
            held.iter()
                .filter(|p| p.starts_with(&format!("/tapguard/claims/config/{setting}/")))
                .count(),
            1,
            "one claim on {setting}: {held:?}"
        );
    }
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
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
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
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["org-recorder"], "never a second recorder");
    assert_eq!(
        state.recorders[0]["roleARN"],
        role(&w),
        "the requested settings are applied"
    );
    assert_eq!(created.data("RecorderAdopted"), Some("true"));
    assert!(state.recording("org-recorder"));
    assert_eq!(state.channel_names(), ["default"]);

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["org-recorder"], "the adopted recorder stays");
    assert_eq!(
        state.recorders[0]["roleARN"],
        format!("arn:aws:iam::{}:role/org-config", w.account.account_id),
        "with its own role again"
    );
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
#[test]
fn a_replacement_shares_the_adopted_setup_and_the_last_claimant_puts_every_setting_back() {
    let w = world();
    seed_org_config(&w);
    let before = snapshot(&w);
    let wanted = props(&w, vec![keys_rule(), volumes_rule()]);

    let mut first = w.resource(TYPE, "ConfigSetup");
    let created = first.create(wanted.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("RecorderName"), Some("org-recorder"));
    assert_eq!(created.data("DeliveryChannelName"), Some("org-channel"));
    assert_eq!(created.data("RecorderAdopted"), Some("true"));
    assert_eq!(created.data("ChannelAdopted"), Some("true"));
    assert_eq!(created.data("RulesCreated"), Some("tap-encrypted-volumes"));
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["org-recorder"], "never a second recorder");
    assert_eq!(state.recorders[0]["roleARN"], role(&w));
    assert_eq!(state.recorders[0]["recordingGroup"]["allSupported"], true);
    assert_eq!(state.channel_names(), ["org-channel"], "never a second channel");
    assert_eq!(state.channels[0]["s3BucketName"], bucket(&w));
    assert_eq!(
        state.channels[0]["configSnapshotDeliveryProperties"]["deliveryFrequency"],
        "TwentyFour_Hours"
    );
    assert_eq!(
        params_of(state.rule("tap-access-keys-rotated")),
        json!({"maxAccessKeyAge": "90"})
    );
    assert!(state.recording("org-recorder"));
    let set_up = snapshot(&w);

    // The replacement (a renamed logical id, a moved resource): created before the old one is deleted.
    let ops = w.operations("config").len();
    let mut second = w.resource(TYPE, "Renamed");
    let again = second.create(wanted.clone());
    assert_eq!(again.status(), "SUCCESS", "{}", again.reason());
    let during = w.operations("config")[ops..].to_vec();
    assert!(mutating(&during).is_empty(), "{during:?}");
    assert_eq!(
        again.data("RecorderAdopted"),
        Some("true"),
        "the state before the first claimant"
    );
    assert_eq!(again.data("RulesCreated"), Some("tap-encrypted-volumes"));
    let held = ledger_parameters(&w);
    for setting in [
        "recorder",
        "channel",
        "rule/tap-access-keys-rotated",
        "rule/tap-encrypted-volumes",
    ] {
        let claims = held
            .iter()
            .filter(|p| p.starts_with(&format!("/tapguard/claims/config/{setting}/")))
            .count();
        assert_eq!(claims, 2, "two claims on {setting}: {held:?}");
    }

    // The old resource's Delete gives up its claims: the setup stays for the new one.
    let ops = w.operations("config").len();
    let deleted = first.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let during = w.operations("config")[ops..].to_vec();
    assert!(mutating(&during).is_empty(), "{during:?}");
    assert_eq!(snapshot(&w), set_up);

    // The last claimant's Delete puts back every adopted setting and removes the rule it created.
    let deleted = second.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let state = ConfigState::read(&w);
    assert_eq!(state.recorders[0]["roleARN"], org_role(&w));
    assert_eq!(
        state.recorders[0]["recordingGroup"]["resourceTypes"],
        json!(["AWS::EC2::Instance"])
    );
    assert_eq!(state.channels[0]["s3BucketName"], "org-config-bucket");
    assert_eq!(state.channels[0]["s3KeyPrefix"], "org");
    assert_eq!(
        params_of(state.rule("tap-access-keys-rotated")),
        json!({"maxAccessKeyAge": "30"})
    );
    assert!(state.recording("org-recorder"), "it was recording before: it still is");
    assert_eq!(snapshot(&w), before, "the account is as it was before either resource");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
    let calls = w.operations("config");
    for op in [
        "DeleteConfigurationRecorder",
        "DeleteDeliveryChannel",
        "StopConfigurationRecorder",
    ] {
        assert!(!calls.contains(&op.to_string()), "{op} on an adopted setup: {calls:?}");
    }
}

#[test]
fn claimants_asking_for_another_role_bucket_or_rule_are_refused_naming_the_first() {
    let w = world();
    let mut first = w.resource(TYPE, "ConfigSetup");
    let created = first.create(props(&w, vec![keys_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let (set_up, claims) = (snapshot(&w), ledger_parameters(&w));

    let mut other_role = props(&w, vec![keys_rule()]);
    other_role["RoleArn"] = json!(org_role(&w));
    let mut other_bucket = props(&w, vec![keys_rule()]);
    other_bucket["DeliveryBucketName"] = json!("another-config-bucket");
    let mut other_rule = keys_rule();
    other_rule["InputParameters"]["maxAccessKeyAge"] = json!("30");
    let cases = [
        ("OtherRole", other_role, "config/recorder"),
        ("OtherBucket", other_bucket, "config/channel"),
        (
            "OtherRule",
            props(&w, vec![other_rule]),
            "config/rule/tap-access-keys-rotated",
        ),
    ];
    for (logical_id, asked, setting) in cases {
        let ops = w.operations("config").len();
        let mut other = w.resource(TYPE, logical_id);
        let failed = other.create(asked);
        assert_eq!(failed.status(), "FAILED", "{logical_id}");
        assert!(
            failed.reason().starts_with(&format!(
                "{setting} is already claimed by ConfigSetup in stack tap-test (config-setup) with"
            )),
            "{}",
            failed.reason()
        );
        let during = w.operations("config")[ops..].to_vec();
        assert!(mutating(&during).is_empty(), "{logical_id}: {during:?}");
        assert_eq!(snapshot(&w), set_up, "{logical_id}");
        assert_eq!(ledger_parameters(&w), claims, "{logical_id}: its own record is undone");
        // Its rollback Delete changes nothing either.
        let deleted = other.delete();
        assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
        assert_eq!(snapshot(&w), set_up, "{logical_id}");
    }

    assert_eq!(first.delete().status(), "SUCCESS");
    assert!(ConfigState::read(&w).is_empty());
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn a_create_failing_at_each_mutating_step_puts_the_adopted_setup_back() {
    let w = world();
    seed_org_config(&w);
    let before = snapshot(&w);
    let bad = json!({"Name": "tap-not-a-rule", "SourceIdentifier": "NOT_A_MANAGED_RULE"});
    let cases = [
        (Some("ssm"), "PutParameter"),
        (Some("config"), "PutConfigurationRecorder"),
        (Some("config"), "PutDeliveryChannel"),
        (Some("config"), "PutConfigRule"),
        // Config itself refuses the last rule, after the first was created and the second changed.
        (None, "PutConfigRule"),
    ];
    for (service, operation) in cases {
        let rules = match service {
            Some(service) => {
                w.fault(
                    json!({"service": service, "operation": operation, "code": "AccessDeniedException",
                    "message": format!("User is not authorized to perform: {service}:{operation}"), "count": 1}),
                );
                vec![volumes_rule(), keys_rule()]
            }
            None => vec![volumes_rule(), keys_rule(), bad.clone()],
        };
        let mut r = w.resource(TYPE, "ConfigSetup");
        let failed = r.create(props(&w, rules));
        assert_eq!(failed.status(), "FAILED", "{operation}");
        assert!(
            failed.reason().starts_with(&format!("{operation} failed: ")),
            "{operation}: {}",
            failed.reason()
        );
        assert_eq!(
            snapshot(&w),
            before,
            "after a Create that failed at {operation} ({service:?})"
        );
        assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));

        let ops = w.operations("config").len();
        let deleted = r.delete();
        assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
        let during = w.operations("config")[ops..].to_vec();
        assert!(mutating(&during).is_empty(), "{operation}: {during:?}");
        assert_eq!(snapshot(&w), before);
    }
}

#[test]
fn a_create_denied_recording_or_cut_by_the_deadline_is_undone_and_leaves_the_account_empty() {
    let w = world();
    w.fault(
        json!({"service": "config", "operation": "StartConfigurationRecorder", "code": "AccessDeniedException",
        "message": "User is not authorized to perform: config:StartConfigurationRecorder", "status": 400, "count": 1}),
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
    assert!(ConfigState::read(&w).is_empty(), "nothing is left behind");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
    assert!(
        !w.operations("config").contains(&"PutConfigRule".to_string()),
        "rules come after recording starts"
    );
    assert_eq!(r.delete().status(), "SUCCESS");

    // A Create cut off by the deadline answers in time, with nothing undone yet...
    w.fault(
        json!({"service": "config", "operation": "PutConfigRule", "delay_ms": 20000,
        "code": "InternalFailure", "count": 1}),
    );
    r.timeout = std::time::Duration::from_secs(8);
    let cut = r.create(props(&w, vec![keys_rule()]));
    assert_eq!(cut.status(), "FAILED");
    assert!(cut.reason().starts_with("timed out after"), "{}", cut.reason());
    assert!(cut.reason().contains("config:PutConfigRule"), "{}", cut.reason());
    assert!(
        cut.physical_id().starts_with("tapguard-failed-create:"),
        "{}",
        cut.physical_id()
    );
    let state = ConfigState::read(&w);
    assert!(state.recording("default"), "the Create got as far as recording");
    assert!(!ledger_parameters(&w).is_empty());

    // ...and the rollback Delete CloudFormation sends for it undoes it from the ledger.
    r.timeout = std::time::Duration::from_secs(60);
    let rolled_back = r.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    assert!(ConfigState::read(&w).is_empty(), "the account is as it was");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn an_update_failing_part_way_is_put_back_by_the_rollback_update() {
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let old_props = props(&w, vec![keys_rule()]);
    let created = r.create(old_props.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let (set_up, claims) = (snapshot(&w), ledger_parameters(&w));

    let mut keys = keys_rule();
    keys["InputParameters"]["maxAccessKeyAge"] = json!("45");
    let bad = json!({"Name": "tap-not-a-rule", "SourceIdentifier": "NOT_A_MANAGED_RULE"});
    let mut failing = props(&w, vec![keys, volumes_rule(), bad]);
    failing["DeliveryBucketName"] = json!("tap-config-new-bucket");
    let failed = r.update(failing.clone());
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("PutConfigRule failed: InvalidParameterValueException"),
        "{}",
        failed.reason()
    );
    let state = ConfigState::read(&w);
    assert_eq!(state.channels[0]["s3BucketName"], "tap-config-new-bucket", "part-way");
    assert_eq!(state.rule_names(), ["tap-access-keys-rotated", "tap-encrypted-volumes"]);

    // CloudFormation's rollback: an Update back to the old properties, the failed ones as old.
    let rollback = r.send(event(
        "Update",
        TYPE,
        "ConfigSetup",
        &w.stack_id(),
        "",
        &old_props,
        Some(created.physical_id()),
        Some(&failing),
    ));
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    assert_eq!(rollback.physical_id(), created.physical_id());
    assert_eq!(
        snapshot(&w),
        set_up,
        "the account is back to the state before the Update"
    );
    assert_eq!(
        ledger_parameters(&w),
        claims,
        "the claims of the failed Update are released"
    );

    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(ConfigState::read(&w).is_empty());
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn after_the_ledger_is_deleted_update_and_delete_turn_nothing_of_unknown_prior_off() {
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![keys_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let names = ledger_parameters(&w);
    assert_eq!(names.len(), 4, "the record and three claims: {names:?}");
    w.json_call("ssm", "AmazonSSM.DeleteParameters", json!({ "Names": names }));

    // The Update still applies what is asked; what was claimed before is of unknown prior state now.
    let updated = r.update(props(&w, vec![keys_rule(), volumes_rule()]));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.data("RecorderAdopted"), Some("unknown"));
    assert_eq!(updated.data("RulesCreated"), Some("tap-encrypted-volumes"));
    assert!(r.host.logs().contains("the ledger holds no record of this resource"));

    let ops = w.operations("config").len();
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let state = ConfigState::read(&w);
    assert!(
        state.recording("default"),
        "never turned off: its prior state is unknown"
    );
    assert_eq!(state.channel_names(), ["default"]);
    assert_eq!(
        state.rule_names(),
        ["tap-access-keys-rotated"],
        "only the rule whose prior is known (created by the Update) is gone"
    );
    let during = w.operations("config")[ops..].to_vec();
    assert_eq!(mutating(&during), ["DeleteConfigRule"], "{during:?}");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn an_old_format_id_keeps_working_on_update_and_delete_and_moves_to_the_ledger() {
    let w = world();
    // What the version before the ledger made: a recorder, channel and tagged rule it created.
    config(
        &w,
        "PutConfigurationRecorder",
        json!({"ConfigurationRecorder": {"name": "default", "roleARN": role(&w),
            "recordingGroup": {"allSupported": true, "includeGlobalResourceTypes": true}}}),
    );
    config(
        &w,
        "PutDeliveryChannel",
        json!({"DeliveryChannel": {"name": "default", "s3BucketName": bucket(&w)}}),
    );
    config(
        &w,
        "StartConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );
    config(
        &w,
        "PutConfigRule",
        json!({"ConfigRule": {"ConfigRuleName": "tap-access-keys-rotated",
            "Source": {"Owner": "AWS", "SourceIdentifier": "ACCESS_KEYS_ROTATED"},
            "InputParameters": "{\"maxAccessKeyAge\":\"90\"}"},
            "Tags": [{"Key": OWNER_TAG, "Value": "stack/tap-test/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f/ConfigSetup"}]}),
    );
    let old_id = "config-setup:eu-west-1:created=recorder,channel:started-recording=true:default";
    let mut r = w.resource(TYPE, "ConfigSetup");
    r.physical_id = Some(old_id.to_string());
    r.properties = props(&w, vec![keys_rule()]);

    let updated = r.update(props(&w, vec![keys_rule(), volumes_rule()]));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(
        updated.physical_id(),
        old_id,
        "an old id is kept: a new one would be a replacement"
    );
    assert_eq!(updated.data("RecorderAdopted"), Some("false"));
    assert_eq!(
        updated.data("RulesCreated"),
        Some("tap-access-keys-rotated,tap-encrypted-volumes")
    );
    let held = ledger_parameters(&w);
    assert!(
        held.iter()
            .any(|p| p.starts_with("/tapguard/ledger/config-setup/legacy-")),
        "{held:?}"
    );

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(
        ConfigState::read(&w).is_empty(),
        "everything the old resource created is gone"
    );
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn renaming_a_created_recorder_replaces_it_under_the_same_id() {
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![keys_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    let mut renamed = props(&w, vec![keys_rule()]);
    renamed["RecorderName"] = json!("tap-recorder");
    let updated = r.update(renamed);
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.physical_id(), created.physical_id(), "no replacement");
    assert_eq!(updated.data("RecorderName"), Some("tap-recorder"));
    let state = ConfigState::read(&w);
    assert_eq!(state.recorder_names(), ["tap-recorder"]);
    assert!(state.recording("tap-recorder"));
    assert_eq!(state.channel_names(), ["default"]);
    assert_eq!(state.rule_names(), ["tap-access-keys-rotated"]);

    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(ConfigState::read(&w).is_empty());
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

/// (control, compliance status, record state) of the drift findings tapguard imported, by control.
fn drift_findings(w: &World) -> Vec<(String, String, String)> {
    let answer = w.rest_call(
        "securityhub",
        "POST",
        "/findings",
        Some(json!({"Filters": {"GeneratorId": [{"Value": "tapguard/config-setup", "Comparison": "EQUALS"}]}})),
    );
    let mut found: Vec<(String, String, String)> = answer["Findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            let id = f["Id"].as_str().unwrap_or_default();
            (
                id.rsplit_once("/Config.")
                    .map(|(_, c)| format!("Config.{c}"))
                    .unwrap_or_default(),
                f["Compliance"]["Status"].as_str().unwrap_or_default().to_string(),
                f["RecordState"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    found.sort();
    found
}

/// The verdict and observed value of one control in a pass's summary.
fn control_of(summary: &Value, control: &str) -> (String, String) {
    let check = summary["reports"][0]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["control"] == control)
        .unwrap_or_else(|| panic!("no control {control} in {summary}"));
    (
        check["verdict"].as_str().unwrap_or_default().to_string(),
        check["observed"].as_str().unwrap_or_default().to_string(),
    )
}

fn drifted_controls(summary: &Value) -> Vec<String> {
    let mut out: Vec<String> = summary["reports"][0]["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["verdict"] == "drifted")
        .filter_map(|c| c["control"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

fn finding(control: &str, status: &str, state: &str) -> (String, String, String) {
    (control.to_string(), status.to_string(), state.to_string())
}

#[test]
fn the_verify_pass_finds_each_drifted_control_publishes_it_and_reads_only() {
    let w = world();
    w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false})),
    );
    let mut r = w.resource(TYPE, "Config");
    let created = r.create(props(&w, vec![keys_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let rule_control = "Config.Rule/tap-access-keys-rotated";

    // A held baseline: every control held, and the pass only reads the account's Config.
    let before = w.operations("config").len();
    let held = verify_pass(&w.host);
    assert_eq!(
        (
            held["resources"].as_u64(),
            held["controls"].as_u64(),
            held["drifted"].as_u64()
        ),
        (Some(1), Some(6), Some(0)),
        "{held}"
    );
    assert_eq!(held["unknown"].as_u64(), Some(0), "{held}");
    let during = w.operations("config")[before..].to_vec();
    assert!(mutating(&during).is_empty() && !during.is_empty(), "{during:?}");
    assert!(
        during.contains(&"DescribeDeliveryChannelStatus".to_string()),
        "{during:?}"
    );
    assert_eq!(
        control_of(&held, "Config.RecorderRecording"),
        ("held".into(), "true".into())
    );
    for control in [
        "Config.Recorder",
        "Config.RecorderLastStatus",
        "Config.DeliveryChannel",
        "Config.DeliveryChannelDelivering",
        rule_control,
    ] {
        assert_eq!(drift_metric(&w.host, Some("Config"), control), vec![0.0], "{control}");
    }
    assert!(drift_findings(&w).is_empty(), "{:?}", drift_findings(&w));

    // Someone stops the recorder: found, published, and not repaired.
    config(
        &w,
        "StopConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );
    let stopped = verify_pass(&w.host);
    assert_eq!(drifted_controls(&stopped), ["Config.RecorderRecording"], "{stopped}");
    assert_eq!(control_of(&stopped, "Config.RecorderRecording").1, "false");
    assert_eq!(
        drift_metric(&w.host, Some("Config"), "Config.RecorderRecording"),
        vec![0.0, 1.0]
    );
    assert_eq!(
        drift_findings(&w),
        vec![finding("Config.RecorderRecording", "FAILED", "ACTIVE")]
    );
    assert!(!ConfigState::read(&w).recording("default"), "verify does not repair");

    // Started again by hand: the finding is resolved.
    config(
        &w,
        "StartConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );
    let again = verify_pass(&w.host);
    assert_eq!(
        (again["drifted"].as_u64(), again["findings_archived"].as_u64()),
        (Some(0), Some(1)),
        "{again}"
    );
    assert_eq!(
        drift_findings(&w),
        vec![finding("Config.RecorderRecording", "PASSED", "ARCHIVED")]
    );

    // The channel deleted (Config needs the recorder stopped first).
    config(
        &w,
        "StopConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );
    config(&w, "DeleteDeliveryChannel", json!({"DeliveryChannelName": "default"}));
    let no_channel = verify_pass(&w.host);
    assert_eq!(
        drifted_controls(&no_channel),
        [
            "Config.DeliveryChannel",
            "Config.DeliveryChannelDelivering",
            "Config.RecorderRecording"
        ],
        "{no_channel}"
    );
    assert_eq!(
        control_of(&no_channel, "Config.DeliveryChannel").1,
        "no delivery channel"
    );
    assert_eq!(
        drift_metric(&w.host, Some("Config"), "Config.DeliveryChannel"),
        vec![0.0, 0.0, 0.0, 1.0]
    );
    config(
        &w,
        "PutDeliveryChannel",
        json!({"DeliveryChannel": {"name": "default", "s3BucketName": bucket(&w)}}),
    );
    config(
        &w,
        "StartConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );

    // Config's deliveries to the bucket fail (DescribeDeliveryChannelStatus).
    emulator().control(
        "/tapguard/config/delivery-status",
        json!({"account": w.account.account_id, "region": REGION, "status": "Failure",
               "code": "NoSuchBucket", "message": "The specified bucket does not exist"}),
    );
    let failing = verify_pass(&w.host);
    assert_eq!(
        drifted_controls(&failing),
        ["Config.DeliveryChannelDelivering"],
        "{failing}"
    );
    assert!(
        control_of(&failing, "Config.DeliveryChannelDelivering")
            .1
            .contains("Failure: NoSuchBucket"),
        "{failing}"
    );
    emulator().control(
        "/tapguard/config/delivery-status",
        json!({"account": w.account.account_id, "region": REGION, "status": "Success"}),
    );

    // The recorder's last recording event failed.
    emulator().control(
        "/tapguard/config/recorder-status",
        json!({"account": w.account.account_id, "region": REGION, "last_status": "Failure",
               "code": "AccessDenied", "message": "the role cannot describe resources"}),
    );
    let failed = verify_pass(&w.host);
    assert_eq!(drifted_controls(&failed), ["Config.RecorderLastStatus"], "{failed}");
    emulator().control(
        "/tapguard/config/recorder-status",
        json!({"account": w.account.account_id, "region": REGION, "last_status": "Success"}),
    );

    // A rule deleted.
    config(
        &w,
        "DeleteConfigRule",
        json!({"ConfigRuleName": "tap-access-keys-rotated"}),
    );
    let no_rule = verify_pass(&w.host);
    assert_eq!(drifted_controls(&no_rule), [rule_control], "{no_rule}");
    assert_eq!(control_of(&no_rule, rule_control).1, "no such rule");
    assert_eq!(
        *drift_metric(&w.host, Some("Config"), rule_control).last().unwrap(),
        1.0
    );
    config(
        &w,
        "PutConfigRule",
        json!({"ConfigRule": {"ConfigRuleName": "tap-access-keys-rotated",
            "Source": {"Owner": "AWS", "SourceIdentifier": "ACCESS_KEYS_ROTATED"},
            "InputParameters": "{\"maxAccessKeyAge\":\"90\"}"}}),
    );

    // The recorder given another role.
    let recorder = |role: String| {
        config(
            &w,
            "PutConfigurationRecorder",
            json!({"ConfigurationRecorder": {"name": "default", "roleARN": role,
                "recordingGroup": {"allSupported": true, "includeGlobalResourceTypes": true}}}),
        )
    };
    recorder(org_role(&w));
    let other_role = verify_pass(&w.host);
    assert_eq!(drifted_controls(&other_role), ["Config.Recorder"], "{other_role}");
    assert!(
        control_of(&other_role, "Config.Recorder").1.contains(&org_role(&w)),
        "{other_role}"
    );
    recorder(role(&w));

    // Everything put back: no drift, and every finding ever opened is resolved.
    let healed = verify_pass(&w.host);
    assert_eq!(healed["drifted"].as_u64(), Some(0), "{healed}");
    let findings = drift_findings(&w);
    assert_eq!(findings.len(), 6, "{findings:?}");
    assert!(
        findings.iter().all(|(_, s, st)| s == "PASSED" && st == "ARCHIVED"),
        "{findings:?}"
    );
}

/// Switches on, for this world's account and region, emulator behaviours that follow AWS more strictly
/// than moto (emulator/README.md says which documentation each follows).
fn behave(w: &World, switches: Value) {
    let mut body = switches;
    body["account"] = json!(w.account.account_id);
    body["region"] = json!(REGION);
    emulator().control("/tapguard/config/behave", body);
}

#[test]
fn a_periodic_rule_with_a_scope_is_refused_at_parsing_and_configs_refusal_is_explained() {
    let w = world();
    behave(&w, json!({"periodic_scope": true}));
    let mut r = w.resource(TYPE, "ConfigSetup");

    // A frequency makes the rule periodic: refused before any call.
    let failed = r.create(props(
        &w,
        vec![json!({"Name": "tap-keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED",
            "MaximumExecutionFrequency": "One_Hour", "ResourceTypesScope": ["AWS::IAM::User"]})],
    ));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("invalid property Rules[0].ResourceTypesScope: given with MaximumExecutionFrequency"),
        "{}",
        failed.reason()
    );
    assert!(w.operations("config").is_empty(), "{:?}", w.operations("config"));

    // A periodic managed rule named without a frequency: Config refuses the scope, the reason says why
    // and what to do, and the failed Create is undone.
    let failed = r.create(props(
        &w,
        vec![json!({"Name": "tap-keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED",
            "ResourceTypesScope": ["AWS::IAM::User"]})],
    ));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("PutConfigRule failed: InvalidParameterValueException"),
        "{reason}"
    );
    assert!(
        reason.contains("Rules[0] (tap-keys): if ACCESS_KEYS_ROTATED is a periodic rule, Config refuses a scope"),
        "{reason}"
    );
    assert!(reason.contains("remove ResourceTypesScope"), "{reason}");
    assert!(ConfigState::read(&w).is_empty(), "nothing is left behind");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));

    // A change-triggered (or hybrid) rule keeps its scope.
    let created = r.create(props(&w, vec![public_read_rule()]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
}

#[test]
fn service_linked_recorders_are_found_with_list_configuration_recorders_and_left_alone() {
    let w = world();
    let linked = config(
        &w,
        "PutServiceLinkedConfigurationRecorder",
        json!({"ServicePrincipal": "securityhub.amazonaws.com"}),
    );
    let name = linked["Name"].as_str().expect("a name").to_string();
    assert!(name.starts_with("AWSConfigurationRecorderFor"), "{linked}");
    // As on AWS, DescribeConfigurationRecorders without names does not show it.
    assert!(ConfigState::read(&w).recorders.is_empty());

    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("ServiceLinkedRecorders"), Some(name.as_str()));
    assert_eq!(
        created.data("RecorderName"),
        Some("default"),
        "its own recorder, not the service's"
    );
    assert_eq!(created.data("RecorderAdopted"), Some("false"));
    assert!(w
        .operations("config")
        .contains(&"ListConfigurationRecorders".to_string()));

    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(ConfigState::read(&w).is_empty());
    let listed = config(&w, "ListConfigurationRecorders", json!({}));
    let names: Vec<&str> = listed["ConfigurationRecorderSummaries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, [name.as_str()], "the service's recorder stays");
}

/// (operation, HTTP status) of this world's Config calls, in order.
fn config_calls(w: &World) -> Vec<(String, u64)> {
    emulator()
        .calls(&w.account.account_id, Some("config"))
        .iter()
        .map(|c| {
            (
                c["operation"].as_str().unwrap_or_default().to_string(),
                c["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_rollback_re_adding_a_rule_config_is_still_deleting_waits_for_the_deletion() {
    let w = world();
    behave(&w, json!({"deleting_reads": 6}));
    let mut r = w.resource(TYPE, "ConfigSetup");
    let both = props(&w, vec![keys_rule(), volumes_rule()]);
    assert_eq!(r.create(both.clone()).status(), "SUCCESS");

    // The Update removes a rule: Config keeps it DELETING for a while.
    let updated = r.update(props(&w, vec![keys_rule()]));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    let state = ConfigState::read(&w);
    assert_eq!(state.rule("tap-encrypted-volumes")["ConfigRuleState"], "DELETING");

    // The rollback puts it back: Config answers ResourceInUseException until the deletion is done.
    let before = config_calls(&w).len();
    let rolled_back = r.update(both);
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    let during = config_calls(&w)[before..].to_vec();
    let puts: Vec<u64> = during
        .iter()
        .filter(|(op, _)| op == "PutConfigRule")
        .map(|(_, status)| *status)
        .collect();
    let (last, refused) = puts.split_last().expect("PutConfigRule was called");
    assert!(
        *last == 200 && !refused.is_empty() && refused.iter().all(|s| *s == 400),
        "refused while DELETING, then put: {during:?}"
    );
    let state = ConfigState::read(&w);
    assert_eq!(state.rule("tap-encrypted-volumes")["ConfigRuleState"], "ACTIVE");
    assert_eq!(
        rolled_back.data("RuleNames"),
        Some("tap-access-keys-rotated,tap-encrypted-volumes")
    );

    // Delete while a rule is still DELETING from before is fine too.
    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn a_brand_new_role_config_cannot_use_yet_is_waited_out() {
    let w = world();
    behave(&w, json!({"new_role_uses": 2}));
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let puts: Vec<u64> = config_calls(&w)
        .iter()
        .filter(|(op, _)| op == "PutConfigurationRecorder")
        .map(|(_, status)| *status)
        .collect();
    assert_eq!(
        puts,
        [400, 400, 200],
        "InsufficientPermissionsException twice, then the recorder"
    );
    assert_eq!(ConfigState::read(&w).recorders[0]["roleARN"], json!(role(&w)));
}

fn delivery_fails(w: &World) {
    emulator().control(
        "/tapguard/config/delivery-status",
        json!({"account": w.account.account_id, "region": REGION, "status": "Failure",
               "code": "NoSuchBucket", "message": "The specified bucket does not exist"}),
    );
}

#[test]
fn delivery_health_comes_from_the_channel_status_and_a_failure_before_the_fix_is_stale() {
    // An adopted setup whose deliveries failed (a bucket that is gone) and whose recorder last failed:
    // the Create points the channel at the stack's bucket, so both failures are from before its fix.
    let w = world();
    seed_org_config(&w);
    delivery_fails(&w);
    emulator().control(
        "/tapguard/config/recorder-status",
        json!({"account": w.account.account_id, "region": REGION, "last_status": "Failure",
               "code": "AccessDenied", "message": "the old role cannot describe resources"}),
    );
    let mut r = w.resource(TYPE, "ConfigSetup");
    let created = r.create(props(&w, vec![]));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let delivery = created.data("DeliveryStatus").unwrap_or_default().to_string();
    assert!(
        delivery.starts_with(
            "pending: the last attempt, before this change, was a configuration history delivery Failure: NoSuchBucket"
        ),
        "{delivery}"
    );
    assert!(w
        .operations("config")
        .contains(&"DescribeDeliveryChannelStatus".to_string()));

    // Nothing to change, and the deliveries fail now: not verified, with what to do about the bucket.
    let w = world();
    let mut r = w.resource(TYPE, "ConfigSetup");
    let first = r.create(props(&w, vec![]));
    assert_eq!(first.status(), "SUCCESS", "{}", first.reason());
    assert_eq!(
        first.data("DeliveryStatus"),
        Some("history Success, snapshot Success, stream Not_Applicable")
    );
    delivery_fails(&w);
    let mut second = w.resource(TYPE, "ConfigSetupToo");
    let failed = second.create(props(&w, vec![]));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(
            "not verified: DescribeDeliveryChannelStatus shows the configuration history delivery Failure: NoSuchBucket"
        ),
        "{}",
        failed.reason()
    );
    assert!(
        failed
            .reason()
            .contains(&format!("the bucket {} does not exist", bucket(&w))),
        "{}",
        failed.reason()
    );
    assert!(
        ConfigState::read(&w).recording("default"),
        "the first resource's setup stays"
    );
}

#[test]
fn undoing_a_create_whose_adopted_recorder_role_may_not_be_passed_changes_nothing_back_and_says_why() {
    let w = world();
    seed_org_config(&w);
    let before = snapshot(&w);
    // The function may pass only the stack's role (template.yml: iam:PassRole under ConfigRolePath).
    let allowed = format!("arn:aws:iam::{}:role/tap-config", w.account.account_id);
    behave(&w, json!({"pass_role_prefix": allowed}));
    w.fault(
        json!({"service": "config", "operation": "PutConfigRule", "code": "AccessDeniedException",
        "message": "User is not authorized to perform: config:PutConfigRule", "count": 1}),
    );
    let mut r = w.resource(TYPE, "ConfigSetup");
    let failed = r.create(props(&w, vec![volumes_rule()]));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("PutConfigRule failed: AccessDeniedException"),
        "{reason}"
    );
    assert!(reason.contains("undoing it failed too"), "{reason}");
    assert!(
        reason.contains(&format!(
            "this function may not pass the role {} to AWS Config",
            org_role(&w)
        )),
        "{reason}"
    );
    assert!(
        reason.contains("Nothing else of the recorder, recording or the delivery channel"),
        "{reason}"
    );
    // Not half-done: recorder and channel both still as the Create left them, and the claims kept.
    let state = ConfigState::read(&w);
    assert_eq!(state.recorders[0]["roleARN"], json!(role(&w)));
    assert_eq!(state.channels[0]["s3BucketName"], json!(bucket(&w)));
    assert!(state.recording("org-recorder"));
    assert!(
        ledger_parameters(&w)
            .iter()
            .any(|p| p.starts_with("/tapguard/claims/config/recorder/")),
        "{:?}",
        ledger_parameters(&w)
    );

    // The rollback Delete meets the same refusal and says so; once the role may be passed, it restores all.
    let refused = r.delete();
    assert_eq!(refused.status(), "FAILED");
    assert!(refused.reason().contains("iam:PassRole"), "{}", refused.reason());
    behave(&w, json!({"pass_role_prefix": ""}));
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(snapshot(&w), before, "the organization's setup is back");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

/// The report of `logical_id` in a verify pass's summary.
fn report_of<'a>(pass: &'a Value, logical_id: &str) -> &'a Value {
    pass["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["logical_id"] == logical_id)
        .unwrap_or_else(|| panic!("no report of {logical_id}: {pass}"))
}

fn repair_details(pass: &Value, logical_id: &str) -> Vec<(bool, String)> {
    report_of(pass, logical_id)["repairs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            (
                n["repaired"].as_bool().unwrap_or_default(),
                n["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn repair_drift_restarts_the_recorder_and_puts_rules_back_on_the_scheduled_pass_only_for_its_sole_claimant() {
    let w = world();
    let mut r = w.resource(TYPE, "Config");
    let mut asked = props(&w, vec![keys_rule()]);
    asked["RepairDrift"] = json!("true");
    let created = r.create(asked.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let rule = "tap-access-keys-rotated";
    let tag = rule_owner_tag(&w, &ConfigState::read(&w), rule);
    assert!(tag.is_some());

    // The recorder stopped and the rule deleted behind the stack's back: both reported, both put back.
    config(
        &w,
        "StopConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );
    config(&w, "DeleteConfigRule", json!({"ConfigRuleName": rule}));
    let before = w.operations("config").len();
    let repaired = verify_pass(&w.host);
    assert_eq!(
        (repaired["drifted"].as_u64(), repaired["repaired"].as_u64()),
        (Some(2), Some(2)),
        "{repaired}"
    );
    assert_eq!(
        drifted_controls(&repaired),
        ["Config.RecorderRecording", "Config.Rule/tap-access-keys-rotated"],
        "the pass still reports the drift it repaired"
    );
    let notes = repair_details(&repaired, "Config");
    assert!(notes.iter().all(|(done, _)| *done), "{notes:?}");
    assert!(notes[0].1.contains("recording again"), "{notes:?}");
    assert!(notes[1].1.contains("created again as claimed"), "{notes:?}");
    assert_eq!(
        mutating(&w.operations("config")[before..]),
        ["StartConfigurationRecorder", "PutConfigRule"],
        "only what drifted is changed"
    );
    let state = ConfigState::read(&w);
    assert!(state.recording("default"));
    assert_eq!(params_of(state.rule(rule)), json!({"maxAccessKeyAge": "90"}));
    assert_eq!(
        rule_owner_tag(&w, &state, rule),
        tag,
        "created again with its owner tag"
    );
    assert!(
        w.host.logs().contains("drift repaired (RepairDrift)"),
        "the change is logged"
    );
    let held = verify_pass(&w.host);
    assert_eq!(
        (held["drifted"].as_u64(), held["repaired"].as_u64()),
        (Some(0), Some(0)),
        "{held}"
    );

    // The rule changed rather than deleted: put back as claimed.
    config(
        &w,
        "PutConfigRule",
        json!({"ConfigRule": {"ConfigRuleName": rule,
            "Source": {"Owner": "AWS", "SourceIdentifier": "ACCESS_KEYS_ROTATED"},
            "InputParameters": "{\"maxAccessKeyAge\":\"365\"}"}}),
    );
    let changed = verify_pass(&w.host);
    assert_eq!(changed["repaired"].as_u64(), Some(1), "{changed}");
    assert!(repair_details(&changed, "Config")[0].1.contains("365"), "{changed}");
    assert_eq!(
        params_of(ConfigState::read(&w).rule(rule)),
        json!({"maxAccessKeyAge": "90"})
    );

    // An Update without RepairDrift takes it back: drift is then only reported.
    assert_eq!(r.update(props(&w, vec![keys_rule()])).status(), "SUCCESS");
    config(
        &w,
        "StopConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );
    let reported = verify_pass(&w.host);
    assert_eq!(
        (reported["drifted"].as_u64(), reported["repaired"].as_u64()),
        (Some(1), Some(0)),
        "{reported}"
    );
    assert!(report_of(&reported, "Config").get("repairs").is_none(), "{reported}");
    assert!(!ConfigState::read(&w).recording("default"));

    // Asked again, but another resource now claims the recorder too: the drift cannot be attributed.
    let updated = r.update(asked.clone());
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    let mut other = w.resource(TYPE, "ConfigRenamed");
    assert_eq!(other.create(props(&w, vec![])).status(), "SUCCESS");
    config(
        &w,
        "StopConfigurationRecorder",
        json!({"ConfigurationRecorderName": "default"}),
    );
    let before = w.operations("config").len();
    let shared = verify_pass(&w.host);
    assert_eq!(shared["repaired"].as_u64(), Some(0), "{shared}");
    let notes = repair_details(&shared, "Config");
    assert_eq!(notes.len(), 1, "{shared}");
    assert!(
        notes[0]
            .1
            .starts_with("not repaired: also claimed by ConfigRenamed in stack tap-test"),
        "{notes:?}"
    );
    assert!(mutating(&w.operations("config")[before..]).is_empty());
    assert!(!ConfigState::read(&w).recording("default"), "left as it is");
}
