//! Custom::AccessKeyRotation: the real binary under the Lambda Runtime API, against the emulator, with
//! thousands of users whose key ages are set through the emulator's IAM controls (see
//! handlers/access-key-rotation/README.md), as a custom resource and as an EventBridge scheduled event.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use tapguard_tests::*;

const BINARY: &str = "access-key-rotation";
const TYPE: &str = "Custom::AccessKeyRotation";
const REGION: &str = "eu-west-1";
const EXEMPT_TAG: &str = "tap:rotation-exempt";

/// A world whose handler gets `env` (a scheduled run's settings); `{account}` in a value is replaced by
/// the world's account id, which is only known once the account exists.
fn world_with(env: &[(&str, &str)]) -> World {
    world_and_env(env).0
}

/// The world and the handler's full environment (to start the handler again after killing it).
fn world_and_env(env: &[(&str, &str)]) -> (World, Vec<(String, String)>) {
    let emulator = emulator();
    let account = emulator.fresh_account();
    let mut full_env = emulator.sdk_env(&account, REGION);
    full_env.extend(
        env.iter()
            .map(|(k, v)| (k.to_string(), v.replace("{account}", &account.account_id))),
    );
    let world = World {
        emulator,
        host: LambdaHost::start(&binary_path(BINARY), &full_env),
        account,
        region: REGION.to_string(),
        responses: ResponseServer::start(),
    };
    (world, full_env)
}

fn topic_arn(w: &World) -> String {
    format!("arn:aws:sns:{REGION}:{}:key-rotation", w.account.account_id)
}

fn create_topic(w: &World) {
    let answer = w.query("sns", &[("Action", "CreateTopic"), ("Name", "key-rotation")]);
    assert_eq!(xml_value(&answer, "TopicArn"), Some(topic_arn(w).as_str()), "{answer}");
}

/// Creates `count` users `<prefix>0..` with the given keys (`[{"age_days", "status", "last_used_days"}]`).
fn users(w: &World, prefix: &str, count: usize, keys: Value, tags: Value) -> BTreeMap<String, Vec<String>> {
    let answer = emulator().control(
        "/tapguard/iam/bulk-users",
        json!({"account": w.account.account_id, "prefix": prefix, "count": count, "keys": keys, "tags": tags}),
    );
    serde_json::from_value(answer["access_key_ids"].clone()).expect("access key ids")
}

fn age_key(w: &World, user: &str, key: &str, days: u32) {
    emulator().control(
        "/tapguard/iam/age-key",
        json!({"account": w.account.account_id, "user": user, "access_key_id": key, "days": days}),
    );
}

/// Moves the date the handler recorded for deactivating `key` (its user tag) `days` into the past.
fn backdate_deactivation(w: &World, user: &str, key: &str, days: u64) {
    let tag = format!("tap:rotation-deactivated:{key}");
    let tags = w.query("iam", &[("Action", "ListUserTags"), ("UserName", user)]);
    assert!(
        tags.contains(&tag),
        "{user}: the handler recorded no deactivation date for {key}: {tags}"
    );
    let when = iso_days_ago(days);
    let answer = w.query(
        "iam",
        &[
            ("Action", "TagUser"),
            ("UserName", user),
            ("Tags.member.1.Key", tag.as_str()),
            ("Tags.member.1.Value", when.as_str()),
        ],
    );
    assert!(answer.contains("TagUserResponse"), "{answer}");
}

/// `YYYY-MM-DDTHH:MM:SSZ`, `days` days ago.
fn iso_days_ago(days: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        - days * 86_400;
    let (day_number, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = day_number + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[derive(Debug, Clone, PartialEq)]
struct KeyState {
    id: String,
    status: String,
}

/// The user's keys as ListAccessKeys shows them now.
fn keys_of(w: &World, user: &str) -> Vec<KeyState> {
    let xml = w.query("iam", &[("Action", "ListAccessKeys"), ("UserName", user)]);
    assert!(xml.contains("ListAccessKeysResult"), "ListAccessKeys {user}: {xml}");
    xml.split("<member>")
        .skip(1)
        .map(|m| KeyState {
            id: xml_value(m, "AccessKeyId").expect("AccessKeyId").to_string(),
            status: xml_value(m, "Status").expect("Status").to_string(),
        })
        .collect()
}

fn status_of(w: &World, user: &str, key: &str) -> Option<String> {
    keys_of(w, user).into_iter().find(|k| k.id == key).map(|k| k.status)
}

/// The stored secret of `name`, parsed, if it exists.
fn secret(w: &World, name: &str) -> Option<Value> {
    let answer = w.json_call(
        "secretsmanager",
        "secretsmanager.GetSecretValue",
        json!({"SecretId": name}),
    );
    let text = answer["SecretString"].as_str()?;
    Some(serde_json::from_str(text).expect("the secret is JSON"))
}

/// The user's tags, as ListUserTags answers them (XML).
fn user_tags(w: &World, user: &str) -> String {
    let xml = w.query("iam", &[("Action", "ListUserTags"), ("UserName", user)]);
    assert!(xml.contains("ListUserTagsResult"), "ListUserTags {user}: {xml}");
    xml
}

/// The value of the user's tag `key`, if it carries it.
fn tag_value(w: &World, user: &str, key: &str) -> Option<String> {
    let xml = user_tags(w, user);
    xml.split("<member>")
        .skip(1)
        .find(|m| xml_value(m, "Key") == Some(key))
        .and_then(|m| xml_value(m, "Value").map(str::to_string))
}

/// As if `days` days had passed for `user` (the emulator's control): its keys' dates and last uses, and
/// the times the handler recorded in its tags (the hand-over: the overlap's clock), move into the past.
fn days_pass(w: &World, user: &str, days: u32) {
    let tags_before = user_tags(w, user);
    let answer = emulator().control(
        "/tapguard/iam/days-pass",
        json!({"account": w.account.account_id, "user": user, "days": days}),
    );
    assert_eq!(answer["users"], 1, "{answer}");
    assert!(
        answer["tag_times"].as_u64() >= Some(1),
        "{user}: no recorded time was moved: {answer} {tags_before}"
    );
}

/// Records a use of `key` now, as GetAccessKeyLastUsed will show it.
fn use_key(w: &World, key: &str) {
    emulator().control(
        "/tapguard/iam/key-used",
        json!({"account": w.account.account_id, "access_key_id": key, "days_ago": 0}),
    );
}

fn set_status(w: &World, user: &str, key: &str, status: &str) {
    let answer = w.query(
        "iam",
        &[
            ("Action", "UpdateAccessKey"),
            ("UserName", user),
            ("AccessKeyId", key),
            ("Status", status),
        ],
    );
    assert!(answer.contains("UpdateAccessKeyResponse"), "{answer}");
}

/// The secret's stored resource policy, parsed.
fn resource_policy(w: &World, name: &str) -> Value {
    let answer = w.json_call(
        "secretsmanager",
        "secretsmanager.GetResourcePolicy",
        json!({"SecretId": name}),
    );
    let text = answer["ResourcePolicy"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no resource policy: {answer}"));
    serde_json::from_str(text).expect("the policy is JSON")
}

fn described(w: &World, name: &str) -> Value {
    w.json_call(
        "secretsmanager",
        "secretsmanager.DescribeSecret",
        json!({"SecretId": name}),
    )
}

fn scheduled(w: &World) -> Result<Value, Value> {
    let mut event = fixture("access-key-rotation-scheduled.json");
    event["account"] = json!(w.account.account_id);
    match w.host.invoke(&event, Duration::from_secs(120)) {
        InvokeResult::Response(summary) => Ok(summary),
        InvokeResult::Error(err) => Err(err),
        InvokeResult::NoAnswer => panic!("no answer to the scheduled event; logs:\n{}", w.host.logs()),
    }
}

fn create_event(w: &World, props: Value) -> Value {
    let mut event = fixture("access-key-rotation-create.json");
    event["StackId"] = json!(w.stack_id());
    if let (Value::Object(given), Some(Value::Object(map))) = (props, event.get_mut("ResourceProperties")) {
        map.extend(given);
    }
    event
}

fn driver(w: &World) -> CustomResourceDriver<'_> {
    let mut r = w.resource(TYPE, "AccessKeyRotation");
    r.timeout = Duration::from_secs(120);
    r
}

/// Data as numbers where they are numbers.
fn data_of(exchange: &Exchange) -> Value {
    let data = exchange.response()["Data"].as_object().cloned().unwrap_or_default();
    Value::Object(
        data.into_iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(Value::from)
                    .unwrap_or(v);
                (k, v)
            })
            .collect(),
    )
}

fn counts(summary: &Value) -> Value {
    let keys = [
        "UsersScanned",
        "KeysOverAge",
        "KeysRotated",
        "KeysDeactivated",
        "KeysDeleted",
        "UsersExempt",
        "UsersSkipped",
        "UsersFailed",
    ];
    Value::Object(keys.iter().map(|k| (k.to_string(), summary[*k].clone())).collect())
}

/// [UsersScanned, KeysOverAge, KeysRotated, KeysDeactivated, KeysDeleted, UsersExempt, UsersSkipped, UsersFailed]
fn expect_counts(counts: [u64; 8]) -> Value {
    let [scanned, over_age, rotated, deactivated, deleted, exempt, skipped, failed] = counts;
    json!({"UsersScanned": scanned, "KeysOverAge": over_age, "KeysRotated": rotated, "KeysDeactivated": deactivated,
        "KeysDeleted": deleted, "UsersExempt": exempt, "UsersSkipped": skipped, "UsersFailed": failed})
}

/// IAM operations that change something; GenerateCredentialReport changes no user or key.
fn iam_changes(w: &World) -> Vec<String> {
    mutating(&w.operations("iam"))
        .into_iter()
        .filter(|op| op != "GenerateCredentialReport")
        .collect()
}

#[test]
fn audit_of_2000_users_as_custom_resource_and_as_schedule_reports_and_changes_nothing() {
    let w = world_with(&[("Mode", "Audit")]);
    let fresh = users(&w, "fresh-", 1880, json!([{"age_days": 10}]), json!({}));
    let stale = users(
        &w,
        "stale-",
        80,
        json!([{"age_days": 120}, {"age_days": 95, "status": "Inactive"}]),
        json!({}),
    );
    users(
        &w,
        "breakglass-",
        20,
        json!([{"age_days": 150}]),
        json!({EXEMPT_TAG: "on-call"}),
    );
    users(&w, "nokeys-", 20, json!([]), json!({}));

    let r = driver(&w);
    let created = r.send(create_event(&w, json!({})));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert!(
        created
            .physical_id()
            .starts_with(&format!("access-key-rotation:{REGION}:ledger-")),
        "{}",
        created.physical_id()
    );
    let data = data_of(&created);
    assert_eq!(counts(&data), expect_counts([2000, 180, 0, 0, 0, 20, 0, 0]));
    assert_eq!(
        (data["Mode"].as_str(), data["DryRun"].as_str()),
        (Some("Audit"), Some("false"))
    );

    // The report picked 100 candidates out of 2000 users: a few hundred calls, not one per user.
    let operations = w.operations("iam");
    let listed = operations.iter().filter(|op| *op == "ListAccessKeys").count();
    assert_eq!(listed, 100, "exactly the candidates are confirmed");
    assert!(operations.len() < 250, "{} IAM calls for 2000 users", operations.len());
    assert!(!operations.iter().any(|op| op == "ListUsers"));
    assert_eq!(iam_changes(&w), Vec::<String>::new());
    assert!(w.operations("secretsmanager").is_empty() && w.operations("sns").is_empty());
    assert_eq!(
        ledger_parameters_of(&w.account, &w.region),
        Vec::<String>::new(),
        "Audit changes nothing, so it claims nothing in the ledger"
    );

    // The same pass as the daily schedule, configured from the environment.
    let summary = scheduled(&w).expect("the scheduled pass succeeds");
    assert_eq!(counts(&summary), expect_counts([2000, 180, 0, 0, 0, 20, 0, 0]));
    assert_eq!(summary["Mode"], "Audit");

    // An Update (MaxKeyAgeDays 90 -> 100) runs a new pass; the 95-day inactive keys are no longer over age.
    let updated = r.send({
        let mut e = fixture("access-key-rotation-update.json");
        e["StackId"] = json!(w.stack_id());
        e["PhysicalResourceId"] = json!(created.physical_id());
        e
    });
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(
        updated.physical_id(),
        created.physical_id(),
        "an Update is not a replacement"
    );
    assert_eq!(
        counts(&data_of(&updated)),
        expect_counts([2000, 100, 0, 0, 0, 20, 0, 0])
    );

    let deleted = r.send({
        let mut e = fixture("access-key-rotation-delete.json");
        e["StackId"] = json!(w.stack_id());
        e["PhysicalResourceId"] = json!(created.physical_id());
        e
    });
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(iam_changes(&w), Vec::<String>::new(), "Delete touches no key");
    for (user, ids) in stale.iter().take(5).chain(fresh.iter().take(2)) {
        assert_eq!(status_of(&w, user, &ids[0]).as_deref(), Some("Active"), "{user}");
    }
    let logs = w.host.logs();
    assert!(
        logs.contains("access key over age") && logs.contains(&stale["stale-0"][0]),
        "findings are logged with the key id"
    );
}

#[test]
fn disable_2000_users_as_custom_resource_then_delete_after_grace_on_schedule() {
    let w = world_with(&[("Mode", "Disable"), ("GraceDays", "14")]);
    let fresh = users(&w, "fresh-", 1910, json!([{"age_days": 3}]), json!({}));
    let old = users(&w, "old-", 60, json!([{"age_days": 120}, {"age_days": 10}]), json!({}));
    let expired = users(
        &w,
        "expired-",
        10,
        json!([{"age_days": 200, "status": "Inactive", "last_used_days": 150}]),
        json!({}),
    );
    let exempt = users(
        &w,
        "exempt-",
        10,
        json!([{"age_days": 300}]),
        json!({EXEMPT_TAG: "yes"}),
    );
    let manual = users(
        &w,
        "manual-",
        10,
        json!([{"age_days": 200, "status": "Inactive", "last_used_days": 3}]),
        json!({}),
    );

    let r = driver(&w);
    let created = r.send(create_event(&w, json!({"Mode": "Disable"})));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(
        counts(&data_of(&created)),
        expect_counts([2000, 90, 0, 60, 10, 10, 0, 0])
    );
    for (user, ids) in &old {
        assert_eq!(
            status_of(&w, user, &ids[0]).as_deref(),
            Some("Inactive"),
            "{user}: old key"
        );
        assert_eq!(
            status_of(&w, user, &ids[1]).as_deref(),
            Some("Active"),
            "{user}: young key"
        );
    }
    for user in expired.keys() {
        assert!(
            keys_of(&w, user).is_empty(),
            "{user}: an expired inactive key is deleted"
        );
    }
    for (user, ids) in &manual {
        assert_eq!(
            status_of(&w, user, &ids[0]).as_deref(),
            Some("Inactive"),
            "{user}: used 3 days ago, so deactivated within the grace period: kept"
        );
    }
    for (user, ids) in exempt.iter().chain(fresh.iter().take(3)) {
        assert_eq!(status_of(&w, user, &ids[0]).as_deref(), Some("Active"), "{user}");
    }
    assert_eq!(
        mutating(&w.operations("secretsmanager")),
        Vec::<String>::new(),
        "Disable stores nothing"
    );

    // A second pass the same day deletes nothing it deactivated: the grace period counts from today.
    let same_day = scheduled(&w).unwrap_or_else(|e| panic!("scheduled pass failed: {e}"));
    assert_eq!(counts(&same_day), expect_counts([2000, 80, 0, 0, 0, 10, 0, 0]));

    // Twenty days later the deactivated keys are past the grace period: the schedule deletes them.
    for (user, ids) in &old {
        age_key(&w, user, &ids[0], 140);
        backdate_deactivation(&w, user, &ids[0], 20);
    }
    let summary = scheduled(&w).unwrap_or_else(|e| panic!("scheduled pass failed: {e}"));
    assert_eq!(counts(&summary), expect_counts([2000, 80, 0, 0, 60, 10, 0, 0]));
    for (user, ids) in &old {
        let keys = keys_of(&w, user);
        assert_eq!(
            keys,
            vec![KeyState {
                id: ids[1].clone(),
                status: "Active".into()
            }],
            "{user}"
        );
    }
}

#[test]
fn dry_run_rotate_reports_what_it_would_do_and_makes_no_mutating_call() {
    let w = world_with(&[]);
    create_topic(&w);
    let old = users(&w, "old-", 4, json!([{"age_days": 100}]), json!({}));
    users(
        &w,
        "graced-",
        2,
        json!([{"age_days": 120}, {"age_days": 300, "status": "Inactive"}]),
        json!({}),
    );
    users(&w, "fresh-", 10, json!([{"age_days": 1}]), json!({}));

    let mut r = driver(&w);
    let created = r.create(json!({"Mode": "Rotate", "DryRun": "true", "NotifyTopicArn": topic_arn(&w)}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let data = data_of(&created);
    // Rotated 6 (the old keys stay active through the overlap: nothing deactivated), 2 expired keys deleted.
    assert_eq!(counts(&data), expect_counts([16, 8, 6, 0, 2, 0, 0, 0]));
    assert_eq!(data["DryRun"], "true");
    assert_eq!(iam_changes(&w), Vec::<String>::new());
    assert_eq!(
        ledger_parameters_of(&w.account, &w.region),
        Vec::<String>::new(),
        "a dry run claims nothing"
    );
    assert_eq!(mutating(&w.operations("secretsmanager")), Vec::<String>::new());
    assert!(w.operations("sns").is_empty());
    for (user, ids) in &old {
        assert_eq!(keys_of(&w, user).len(), 1, "{user}");
        assert_eq!(status_of(&w, user, &ids[0]).as_deref(), Some("Active"));
    }
    assert!(w.host.logs().contains("dry run: would create a new key"));
}

#[test]
fn a_user_whose_secret_cannot_be_stored_keeps_the_old_key_and_a_second_policy_is_refused() {
    let w = world_with(&[]);
    create_topic(&w);
    let old = users(&w, "old-", 3, json!([{"age_days": 100}]), json!({}));
    w.fault(json!({"service": "secretsmanager", "operation": "CreateSecret",
        "code": "AccessDeniedException", "message": "not allowed to create secrets", "count": 1}));

    let mut r = driver(&w);
    let failed = r.create(json!({"Mode": "Rotate", "NotifyTopicArn": topic_arn(&w)}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(reason.starts_with("1 of 3 candidate users failed"), "{reason}");
    assert!(
        reason.contains("CreateSecret failed: AccessDeniedException: not allowed to create secrets"),
        "{reason}"
    );
    assert!(
        reason.contains("was never handed over and was deleted again") && reason.contains("FailOnUserErrors"),
        "{reason}"
    );

    // The failed user holds exactly the old key, still active; the other two got a new key and kept the
    // old one active (the overlap).
    let mut rotated = 0;
    for (user, ids) in &old {
        let keys = keys_of(&w, user);
        if keys.len() == 1 {
            assert_eq!(
                keys[0],
                KeyState {
                    id: ids[0].clone(),
                    status: "Active".into()
                },
                "{user}"
            );
            assert!(secret(&w, &format!("tap/access-keys/{user}")).is_none());
            assert!(
                !user_tags(&w, user).contains("tap:rotation-intent"),
                "{user}: intent cleared"
            );
        } else {
            assert!(keys.iter().all(|k| k.status == "Active"), "{user}: {keys:?}");
            let stored = secret(&w, &format!("tap/access-keys/{user}")).expect("secret");
            assert!(keys.iter().any(|k| k.id == stored["AccessKeyId"]), "{user}");
            rotated += 1;
        }
    }
    assert_eq!(rotated, 2);
    let ops = w.operations("iam");
    assert_eq!(ops.iter().filter(|op| *op == "CreateAccessKey").count(), 3);
    assert_eq!(ops.iter().filter(|op| *op == "DeleteAccessKey").count(), 1);
    assert_eq!(
        ops.iter().filter(|op| *op == "UpdateAccessKey").count(),
        0,
        "no old key is deactivated in the pass that hands the new one over"
    );

    // With FailOnUserErrors false a user failure is reported in Data, not as FAILED.
    users(&w, "later-", 1, json!([{"age_days": 100}]), json!({}));
    w.fault(
        json!({"service": "iam", "operation": "CreateAccessKey", "code": "LimitExceeded",
        "message": "Cannot exceed quota for AccessKeysPerUser: 2", "count": 2}),
    );
    let lenient = r.create(json!({"Mode": "Rotate", "NotifyTopicArn": topic_arn(&w), "FailOnUserErrors": "false"}));
    assert_eq!(lenient.status(), "SUCCESS", "{}", lenient.reason());
    let data = data_of(&lenient);
    assert_eq!(
        (data["UsersFailed"].clone(), data["KeysRotated"].clone()),
        (json!(2), json!(0))
    );

    // That resource claims the account's rotation policy: another resource asking for a different one
    // is refused before it changes anything, naming the claimant.
    let changes_before = iam_changes(&w).len();
    let other = r.create(json!({"Mode": "Disable"}));
    assert_eq!(other.status(), "FAILED");
    assert!(
        other.reason().contains("already claimed by AccessKeyRotation"),
        "{}",
        other.reason()
    );
    assert_eq!(
        iam_changes(&w).len(),
        changes_before,
        "the refused resource changed nothing"
    );
}

#[test]
fn throttling_is_retried_and_the_pass_completes() {
    let w = world_with(&[]);
    let old = users(&w, "old-", 5, json!([{"age_days": 100}]), json!({}));
    for operation in ["GetCredentialReport", "ListAccessKeys", "UpdateAccessKey"] {
        w.fault(json!({"service": "iam", "operation": operation, "code": "Throttling",
            "message": "Rate exceeded", "count": 4}));
    }
    let mut r = driver(&w);
    let created = r.create(json!({"Mode": "Disable"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(data_of(&created)["KeysDeactivated"], 5);
    for (user, ids) in &old {
        assert_eq!(status_of(&w, user, &ids[0]).as_deref(), Some("Inactive"), "{user}");
    }
    let throttled = emulator()
        .calls(&w.account.account_id, Some("iam"))
        .iter()
        .filter(|c| c["injected"] == "Throttling")
        .count();
    assert_eq!(throttled, 12, "every injected throttle was met and retried");
}

#[test]
fn an_unreadable_credential_report_fails_the_pass_naming_the_permission() {
    let w = world_with(&[]);
    users(&w, "old-", 2, json!([{"age_days": 100}]), json!({}));
    w.fault(
        json!({"service": "iam", "operation": "GetCredentialReport", "code": "AccessDenied",
        "message": "User is not authorized to perform: iam:GetCredentialReport"}),
    );
    let mut r = driver(&w);
    let failed = r.create(json!({"Mode": "Rotate", "NotifyTopicArn": topic_arn(&w)}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with("GetCredentialReport failed: AccessDenied"),
        "{}",
        failed.reason()
    );
    assert!(failed.reason().contains("iam:GetCredentialReport was denied"));
    assert_eq!(iam_changes(&w), Vec::<String>::new());
    let schedule = scheduled(&w).expect_err("the scheduled pass fails too");
    assert!(
        schedule
            .to_string()
            .contains("GetCredentialReport failed: AccessDenied"),
        "{schedule}"
    );

    // A Delete still answers SUCCESS without touching anything.
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
}

#[test]
fn invalid_settings_fail_naming_the_property_or_the_environment_variable() {
    let w = world_with(&[("Mode", "Sometimes")]);
    let mut r = driver(&w);
    let failed = r.create(json!({"Mode": "Rotate", "MaxKeyAgeDays": "0"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with("invalid property MaxKeyAgeDays"),
        "{}",
        failed.reason()
    );
    let unknown = r.create(json!({"MaxAge": "30"}));
    assert!(
        unknown
            .reason()
            .starts_with("invalid property MaxAge: unknown property"),
        "{}",
        unknown.reason()
    );
    let silent = r.create(json!({"Mode": "Rotate"}));
    assert_eq!(silent.status(), "FAILED");
    assert!(
        silent
            .reason()
            .starts_with("invalid property NotifyTopicArn: is required with Mode Rotate"),
        "{}",
        silent.reason()
    );
    let stalled = r.create(json!({"Mode": "Rotate", "GraceDays": "0",
        "NotifyTopicArn": format!("arn:aws:sns:{REGION}:{}:key-rotation", w.account.account_id)}));
    assert!(
        stalled.reason().starts_with("invalid property GraceDays")
            && stalled.reason().contains("rotation stops after one cycle"),
        "{}",
        stalled.reason()
    );
    // GraceDays 0 stays valid where it stalls nothing.
    let audit = r.create(json!({"Mode": "Audit", "GraceDays": "0"}));
    assert_eq!(audit.status(), "SUCCESS", "{}", audit.reason());
    let schedule = scheduled(&w).expect_err("a bad Mode variable fails the scheduled run");
    assert!(
        schedule.to_string().contains("invalid environment variable Mode"),
        "{schedule}"
    );
    assert_eq!(
        iam_changes(&w),
        Vec::<String>::new(),
        "nothing is changed with invalid settings"
    );
}

#[test]
fn secret_access_keys_never_reach_the_logs_even_at_trace_level() {
    let w = world_with(&[
        ("AWS_LAMBDA_LOG_LEVEL", "trace"),
        ("Mode", "Rotate"),
        ("NotifyTopicArn", "arn:aws:sns:eu-west-1:{account}:key-rotation"),
    ]);
    create_topic(&w);
    let old = users(&w, "old-", 3, json!([{"age_days": 100}]), json!({}));
    let summary = scheduled(&w).unwrap_or_else(|e| panic!("scheduled pass failed: {e}"));
    assert_eq!(summary["KeysRotated"], 3);
    let logs = w.host.logs();
    assert!(
        logs.contains("TRACE") || logs.contains("\"level\":\"TRACE\""),
        "trace logging is on"
    );
    for user in old.keys() {
        let stored = secret(&w, &format!("tap/access-keys/{user}")).expect("secret");
        let secret_key = stored["SecretAccessKey"].as_str().expect("SecretAccessKey");
        assert!(
            !logs.contains(secret_key),
            "{user}'s secret access key reached the logs"
        );
        assert!(!summary.to_string().contains(secret_key));
    }
}

/// The principal the secrets' policy lets read besides the user and the readers (the emulator's
/// credentials are not a role, so the handler is told).
const ROTATION_PRINCIPAL: &str = "arn:aws:iam::{account}:role/tapguard-access-key-rotation";
const READER: &str = "arn:aws:iam::{account}:role/deployer";

fn rotate_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Mode", "Rotate"),
        ("NotifyTopicArn", "arn:aws:sns:eu-west-1:{account}:key-rotation"),
        ("SecretReaderArns", READER),
        ("FailOnUserErrors", "false"),
        ("TAPGUARD_ROTATION_PRINCIPAL_ARN", ROTATION_PRINCIPAL),
    ]
}

fn only_key(ids: &BTreeMap<String, Vec<String>>) -> (String, String) {
    let (user, keys) = ids.iter().next().expect("one user");
    (user.clone(), keys[0].clone())
}

/// The new key of a rotated user: both keys active, the other one the secret's current value.
fn assert_handed_over(w: &World, user: &str, old: &str, secret_name: &str) -> String {
    let keys = keys_of(w, user);
    assert_eq!(keys.len(), 2, "{user}: {keys:?}");
    assert!(
        keys.iter().all(|k| k.status == "Active"),
        "{user}: both keys active: {keys:?}"
    );
    let new = keys.iter().find(|k| k.id != old).expect("a new key").id.clone();
    let stored = secret(w, secret_name).unwrap_or_else(|| panic!("{user}: no secret {secret_name}"));
    assert_eq!(stored["AccessKeyId"], new, "{user}: the secret holds the new key");
    assert_eq!(stored["UserName"], user);
    assert!(stored["SecretAccessKey"].as_str().is_some_and(|s| s.len() >= 20));
    let handed = tag_value(w, user, "tap:rotation-handed-over").unwrap_or_default();
    assert!(
        handed.starts_with(&format!("{new} ")),
        "{user}: hand-over recorded: {handed}"
    );
    assert_eq!(
        tag_value(w, user, "tap:rotation-intent"),
        None,
        "{user}: no intent left"
    );
    new
}

#[test]
fn rotate_hands_over_keeps_the_old_key_through_the_overlap_and_retires_it_only_once_unused() {
    let (w, _) = world_and_env(&rotate_env());
    let account = w.account.account_id.clone();
    create_topic(&w);
    let old_key = json!([{"age_days": 120}]);
    let (alice, alice_old) = only_key(&users(&w, "alice-", 1, old_key.clone(), json!({})));
    let (bob, bob_old) = only_key(&users(&w, "bob-", 1, old_key.clone(), json!({})));
    let (carol, carol_old) = only_key(&users(&w, "carol-", 1, old_key.clone(), json!({})));
    let (comma, comma_old) = only_key(&users(&w, "ops,bob", 1, old_key.clone(), json!({})));
    let (underscore, underscore_old) = only_key(&users(&w, "ops_bob", 1, old_key.clone(), json!({})));
    // The exempt tag in another case: IAM compares tag keys without regard to case.
    let (vip, vip_key) = only_key(&users(
        &w,
        "vip-",
        1,
        old_key.clone(),
        json!({"TAP:Rotation-Exempt": "yes"}),
    ));
    let (mallory, mallory_old) = only_key(&users(&w, "mallory-", 1, old_key, json!({})));
    // Someone who may create secrets under the prefix pre-creates mallory's, hoping to receive her key.
    let trap = format!("tap/access-keys/{mallory}");
    let created = w.json_call(
        "secretsmanager",
        "secretsmanager.CreateSecret",
        json!({"Name": trap, "SecretString": "{\"planted\": true}"}),
    );
    assert!(created["ARN"].is_string(), "{created}");

    // Pass 1: five users get a new key in their own secret; every old key stays active.
    let first = scheduled(&w).unwrap_or_else(|e| panic!("pass 1 failed: {e}\n{}", w.host.logs()));
    assert_eq!(
        (
            first["KeysRotated"].clone(),
            first["KeysDeactivated"].clone(),
            first["UsersExempt"].clone(),
            first["UsersFailed"].clone()
        ),
        (json!(5), json!(0), json!(1), json!(1)),
        "{first}"
    );
    let secret_of = |user: &str| format!("tap/access-keys/{user}");
    let alice_new = assert_handed_over(&w, &alice, &alice_old, &secret_of(&alice));
    let bob_new = assert_handed_over(&w, &bob, &bob_old, &secret_of(&bob));
    assert_handed_over(&w, &carol, &carol_old, &secret_of(&carol));
    // ops,bob0 and ops_bob0 never share a secret: the comma is escaped (`=2C`), the underscore is not.
    assert_handed_over(&w, &comma, &comma_old, "tap/access-keys/ops=2Cbob0");
    assert_handed_over(&w, &underscore, &underscore_old, "tap/access-keys/ops_bob0");

    // Alice's secret: tagged as this rotation's, readable only by alice and the listed reader; every
    // other principal but the rotation's is denied (checked on the stored policy).
    let name = secret_of(&alice);
    let description = described(&w, &name);
    assert!(
        description["Tags"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t["Key"] == "tapguard:access-key-rotation:user" && t["Value"] == alice)),
        "{description}"
    );
    let policy = resource_policy(&w, &name);
    let statements = policy["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), 2, "{policy}");
    let alice_arn = format!("arn:aws:iam::{account}:user/{alice}");
    let reader = READER.replace("{account}", &account);
    let principal = ROTATION_PRINCIPAL.replace("{account}", &account);
    let allow = statements.iter().find(|s| s["Effect"] == "Allow").expect("an Allow");
    assert_eq!(allow["Principal"]["AWS"], json!([alice_arn, reader]), "{policy}");
    assert_eq!(
        allow["Action"],
        json!(["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"])
    );
    let deny = statements.iter().find(|s| s["Effect"] == "Deny").expect("a Deny");
    assert_eq!(deny["Principal"], "*");
    assert_eq!(deny["Action"], "secretsmanager:GetSecretValue");
    assert_eq!(
        deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
        json!([alice_arn, reader, principal]),
        "{policy}"
    );

    // The foreign secret was refused: mallory keeps her one key, the planted value is untouched.
    assert_eq!(
        keys_of(&w, &mallory),
        vec![KeyState {
            id: mallory_old.clone(),
            status: "Active".into()
        }]
    );
    assert_eq!(secret(&w, &trap), Some(json!({"planted": true})));
    assert_eq!(tag_value(&w, &mallory, "tap:rotation-intent"), None);
    let logs = w.host.logs();
    assert!(
        logs.contains(&format!("secret {trap} exists but was not created by this rotation")),
        "{logs}"
    );
    // The exempt user is untouched.
    assert_eq!(
        keys_of(&w, &vip),
        vec![KeyState {
            id: vip_key.clone(),
            status: "Active".into()
        }]
    );
    // Every rotated user and the failed one were told (six notices), and no notice carries a secret.
    let publishes = w.operations("sns").iter().filter(|op| *op == "Publish").count();
    assert_eq!(publishes, 6, "{:?}", w.operations("sns"));

    // Pass 2, the same day: inside the overlap nothing changes.
    let second = scheduled(&w).unwrap_or_else(|e| panic!("pass 2 failed: {e}"));
    assert_eq!(
        (second["KeysRotated"].clone(), second["KeysDeactivated"].clone()),
        (json!(0), json!(0)),
        "{second}"
    );
    assert_eq!(status_of(&w, &alice, &alice_old).as_deref(), Some("Active"));

    // Eight days later: the overlap is over. Bob's old key was used after his new one was created.
    for user in [&alice, &bob, &carol] {
        days_pass(&w, user, 8);
    }
    use_key(&w, &bob_old);
    let third = scheduled(&w).unwrap_or_else(|e| panic!("pass 3 failed: {e}"));
    assert_eq!(
        (
            third["KeysDeactivated"].clone(),
            third["UsersWaiting"].clone(),
            third["KeysRotated"].clone()
        ),
        (json!(2), json!(1), json!(0)),
        "{third}"
    );
    assert_eq!(
        status_of(&w, &alice, &alice_old).as_deref(),
        Some("Inactive"),
        "unused: retired"
    );
    assert_eq!(status_of(&w, &alice, &alice_new).as_deref(), Some("Active"));
    assert_eq!(status_of(&w, &carol, &carol_old).as_deref(), Some("Inactive"));
    assert_eq!(
        status_of(&w, &bob, &bob_old).as_deref(),
        Some("Active"),
        "still in use: kept"
    );
    assert_eq!(status_of(&w, &bob, &bob_new).as_deref(), Some("Active"));
    assert!(tag_value(&w, &alice, &format!("tap:rotation-deactivated:{alice_old}")).is_some());
    let line = w
        .host
        .log_lines()
        .into_iter()
        .rev()
        .find(|l| l["message"] == "access key rotation pass finished")
        .expect("the summary line");
    assert_eq!(
        line["users_waiting"], 1,
        "the UsersWaiting metric filter reads this field: {line}"
    );

    // Someone reactivates carol's old key to get a workload back: the rotation leaves it alone.
    set_status(&w, &carol, &carol_old, "Active");
    let fourth = scheduled(&w).unwrap_or_else(|e| panic!("pass 4 failed: {e}"));
    assert_eq!(
        (
            fourth["UsersOverridden"].clone(),
            fourth["KeysDeactivated"].clone(),
            fourth["UsersWaiting"].clone()
        ),
        (json!(1), json!(0), json!(1)),
        "{fourth}"
    );
    assert_eq!(
        status_of(&w, &carol, &carol_old).as_deref(),
        Some("Active"),
        "the human override wins"
    );
    let changed: Vec<String> = emulator()
        .calls(&account, Some("iam"))
        .iter()
        .rev()
        .take_while(|c| c["operation"] != "GetCredentialReport")
        .filter(|c| c["operation"] == "UpdateAccessKey")
        .map(|c| c.to_string())
        .collect();
    assert!(changed.is_empty(), "no key was deactivated again: {changed:?}");
}

/// The resume point the scheduled runs keep in the ledger (its JSON record), if any.
fn resume_point(w: &World) -> String {
    let answer = w.json_call(
        "ssm",
        "AmazonSSM.GetParameter",
        json!({"Name": "/tapguard/ledger/access-key-rotation/schedule-cursor"}),
    );
    answer["Parameter"]["Value"].as_str().unwrap_or_default().to_string()
}

/// A scheduled run of a second copy of the function, with `extra` settings on top of `env`.
fn scheduled_with(w: &World, env: &[(String, String)], extra: (&str, &str)) -> Value {
    let mut env = env.to_vec();
    env.push((extra.0.to_string(), extra.1.to_string()));
    let host = LambdaHost::start(&binary_path(BINARY), &env);
    let mut event = fixture("access-key-rotation-scheduled.json");
    event["account"] = json!(w.account.account_id);
    match host.invoke(&event, Duration::from_secs(120)) {
        InvokeResult::Response(summary) => summary,
        other => panic!("the scheduled run failed: {other:?}\n{}", host.logs()),
    }
}

#[test]
fn a_rotate_pass_longer_than_one_run_resumes_where_the_last_run_stopped_and_completes() {
    // Each run starts at most 2 users: the stand-in for a Lambda deadline over 5,000 users (rotation-bench
    // runs that against time budgets).
    let mut env = rotate_env();
    env.push(("TAPGUARD_MAX_USERS_PER_RUN", "2"));
    let (w, full_env) = world_and_env(&env);
    create_topic(&w);
    let ids = users(&w, "many-", 5, json!([{"age_days": 120}]), json!({}));
    let key_count = |user: &str| keys_of(&w, user).len();

    // Run 1: many-0 and many-1 (name order); the other three wait for the next run.
    let first = scheduled(&w).unwrap_or_else(|e| panic!("run 1 failed: {e}\n{}", w.host.logs()));
    assert_eq!(
        (
            first["KeysRotated"].clone(),
            first["UsersDeferred"].clone(),
            first["UsersFailed"].clone()
        ),
        (json!(2), json!(3), json!(0)),
        "{first}"
    );
    assert_eq!(
        ["many-0", "many-1", "many-2"].map(key_count),
        [2, 2, 1],
        "the first two were handed over"
    );
    assert!(resume_point(&w).contains("\"many-1\""), "{}", resume_point(&w));

    // A run cut before it starts any user (here: allowed none) keeps the resume point.
    let cut = scheduled_with(&w, &full_env, ("TAPGUARD_MAX_USERS_PER_RUN", "0"));
    assert_eq!(
        (cut["KeysRotated"].clone(), cut["UsersDeferred"].clone()),
        (json!(0), json!(3)),
        "{cut}"
    );
    assert!(resume_point(&w).contains("\"many-1\""), "{}", resume_point(&w));

    // Runs 2 and 3 go on after many-1; run 3 reaches the last user: the pass is complete.
    let second = scheduled(&w).unwrap_or_else(|e| panic!("run 2 failed: {e}"));
    assert_eq!(
        (second["KeysRotated"].clone(), second["UsersDeferred"].clone()),
        (json!(2), json!(1)),
        "{second}"
    );
    let third = scheduled(&w).unwrap_or_else(|e| panic!("run 3 failed: {e}"));
    assert_eq!(
        (third["KeysRotated"].clone(), third["UsersDeferred"].clone()),
        (json!(1), json!(0)),
        "{third}"
    );
    assert!(!resume_point(&w).contains("many-"), "cleared: {}", resume_point(&w));
    // Every user was handed over exactly once, with the old key still active.
    for (user, keys) in &ids {
        assert_handed_over(&w, user, &keys[0], &format!("tap/access-keys/{user}"));
    }
    let creates = w.operations("iam").iter().filter(|op| *op == "CreateAccessKey").count();
    assert_eq!(creates, 5, "one new key per user");

    // The next run starts a new pass from the first user: inside the overlap there is nothing to do.
    let fourth = scheduled(&w).unwrap_or_else(|e| panic!("run 4 failed: {e}"));
    assert_eq!(
        (
            fourth["KeysRotated"].clone(),
            fourth["KeysDeactivated"].clone(),
            fourth["UsersDeferred"].clone()
        ),
        (json!(0), json!(0), json!(3)),
        "{fourth}"
    );
    assert!(resume_point(&w).contains("\"many-1\""), "{}", resume_point(&w));
}

/// Steps of a hand-over, each cut in turn: the call goes out (delayed, so it is in flight), the process is
/// killed while it waits for the answer, and the call lands afterwards; nothing after it happens.
const STEPS: [(&str, &str); 8] = [
    ("iam", "TagUser"),
    ("iam", "CreateAccessKey"),
    ("secretsmanager", "CreateSecret"),
    ("secretsmanager", "PutResourcePolicy"),
    ("secretsmanager", "PutSecretValue"),
    ("secretsmanager", "GetSecretValue"),
    ("sns", "Publish"),
    ("iam", "UntagUser"),
];

/// Whether the emulator has taken the fault rule of `operation` for the world's account: the call
/// reached it and is held there for the rule's delay.
fn in_flight(w: &World, service: &str, operation: &str) -> bool {
    w.emulator.faults().iter().any(|rule| {
        rule["account"] == w.account.account_id.as_str()
            && rule["service"] == service
            && rule["operation"] == operation
            && rule["fired"].as_u64().unwrap_or_default() > 0
    })
}

#[test]
fn a_rotation_killed_at_any_step_is_finished_or_undone_by_the_next_pass() {
    let (mut w, env) = world_and_env(&rotate_env());
    create_topic(&w);
    let mut undone = 0;
    for (n, (service, operation)) in STEPS.iter().enumerate() {
        let (user, old) = only_key(&users(
            &w,
            &format!("cut{n}-"),
            1,
            json!([{"age_days": 120}]),
            json!({}),
        ));
        // The call is held for 3 s once it reaches the emulator; the process is killed as soon as it is
        // held (the kill does not wait on time, so a loaded machine cannot move the cut), and the call
        // lands afterwards.
        w.fault(json!({"service": service, "operation": operation, "delay_ms": 3000, "count": 1}));
        let mut event = fixture("access-key-rotation-scheduled.json");
        event["account"] = json!(w.account.account_id);
        let request_id = w.host.submit(&event, Duration::from_secs(120));
        assert!(
            wait_until(Duration::from_secs(60), || in_flight(&w, service, operation)),
            "step {operation} was not reached: {:?}\n{}",
            w.host.wait(&request_id, Duration::from_millis(1)),
            w.host.logs()
        );
        w.host.kill();
        w.host = LambdaHost::start(&binary_path(BINARY), &env);
        // Not a timed assertion: wait (up to a generous bound) for the delayed call to land in the
        // emulator's call log before the next pass looks.
        let landed = |w: &World| {
            emulator()
                .operations(&w.account.account_id, service)
                .iter()
                .any(|op| op == operation)
        };
        assert!(
            wait_until(Duration::from_secs(30), || landed(&w)),
            "the held {operation} landed after the kill"
        );

        let next = scheduled(&w).unwrap_or_else(|e| panic!("after a cut at {operation}: {e}\n{}", w.host.logs()));
        assert_eq!(next["UsersFailed"], 0, "after a cut at {operation}: {next}");
        undone += next["KeysUndone"].as_u64().unwrap_or_default();
        // Converged: the old key still active, exactly one new key, which is the secret's value.
        let new = assert_handed_over(&w, &user, &old, &format!("tap/access-keys/{user}"));
        assert_ne!(new, old, "after a cut at {operation}");
    }
    // Cut after CreateAccessKey, CreateSecret or PutResourcePolicy landed: the key was never handed over
    // and was deleted (then a fresh hand-over ran); after PutSecretValue it was the secret's value: kept.
    assert_eq!(undone, 3, "keys created and never handed over were deleted");
}

/// (verdict, observed) of the key-age control in a pass.
fn key_age_check(summary: &Value) -> (String, String) {
    let check = summary["reports"][0]["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["control"] == "IAM.AccessKeysWithinAge"))
        .unwrap_or_else(|| panic!("no key-age control: {summary}"));
    (
        check["verdict"].as_str().unwrap_or_default().to_string(),
        check["observed"].as_str().unwrap_or_default().to_string(),
    )
}

/// Values of `tapguard`'s ControlDrifted for the key-age control, from the EMF lines in the log.
fn key_age_metric(w: &World) -> Vec<f64> {
    w.host
        .logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "tapguard"
                && line["Control"] == "IAM.AccessKeysWithinAge"
                && line["Resource"] == "AccessKeyRotation"
        })
        .filter_map(|line| line["ControlDrifted"].as_f64())
        .collect()
}

/// (compliance, record state) of the key-age drift findings.
fn key_age_findings(w: &World) -> Vec<(String, String)> {
    let filters =
        json!({"Filters": {"GeneratorId": [{"Value": "tapguard/access-key-rotation", "Comparison": "EQUALS"}]}});
    let answer = w.rest_call("securityhub", "POST", "/findings", Some(filters));
    answer["Findings"]
        .as_array()
        .unwrap_or_else(|| panic!("GetFindings: {answer}"))
        .iter()
        .map(|f| {
            (
                f["Compliance"]["Status"].as_str().unwrap_or_default().to_string(),
                f["RecordState"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_verify_pass_finds_an_over_age_key_never_touches_it_and_a_denied_report_is_unknown() {
    let w = world_with(&[("Mode", "Disable")]);
    w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false})),
    );
    let fresh = users(&w, "fresh-", 2, json!([{"age_days": 3}]), json!({}));
    users(&w, "exempt-", 1, json!([{"age_days": 300}]), json!({EXEMPT_TAG: "yes"}));
    let created = driver(&w).send(create_event(&w, json!({"Mode": "Disable"})));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    // Held (the exempt user's old key is out of scope), and the pass only reads.
    let before = w.operations("iam").len();
    let held = verify_pass(&w.host);
    assert_eq!(
        (held["resources"].as_u64(), held["drifted"].as_u64()),
        (Some(1), Some(0)),
        "{held}"
    );
    assert_eq!(
        key_age_check(&held),
        ("held".to_string(), "none among 3 users".to_string())
    );
    let during = w.operations("iam")[before..].to_vec();
    assert!(mutating(&during).is_empty() && !during.is_empty(), "{during:?}");
    assert_eq!(key_age_metric(&w), vec![0.0]);

    // A key past MaxKeyAgeDays (90) and the day the schedule takes: drifted, and left as it is.
    let (user, ids) = fresh.iter().next().expect("a fresh user");
    age_key(&w, user, &ids[0], 120);
    let before = w.operations("iam").len();
    let drifted = verify_pass(&w.host);
    assert_eq!(drifted["drifted"].as_u64(), Some(1), "{drifted}");
    assert_eq!(
        key_age_check(&drifted),
        (
            "drifted".to_string(),
            format!("1 user with an older active key: {user} (120 days)")
        )
    );
    assert_eq!(
        drifted["reports"][0]["checks"][0]["expected"],
        "no active access key older than 91 days"
    );
    assert_eq!(
        status_of(&w, user, &ids[0]).as_deref(),
        Some("Active"),
        "verify never rotates"
    );
    let during = w.operations("iam")[before..].to_vec();
    assert!(mutating(&during).is_empty(), "{during:?}");
    assert_eq!(key_age_metric(&w), vec![0.0, 1.0]);
    assert_eq!(key_age_findings(&w), vec![("FAILED".to_string(), "ACTIVE".to_string())]);

    // Deactivated by hand: held again, the finding archived.
    set_status(&w, user, &ids[0], "Inactive");
    let again = verify_pass(&w.host);
    assert_eq!(
        (again["drifted"].as_u64(), again["findings_archived"].as_u64()),
        (Some(0), Some(1)),
        "{again}"
    );
    assert_eq!(
        key_age_findings(&w),
        vec![("PASSED".to_string(), "ARCHIVED".to_string())]
    );

    // A denied credential report is unknown with its reason, never held.
    w.fault(
        json!({"service": "iam", "operation": "GetCredentialReport", "code": "AccessDenied",
        "message": "not authorized to perform iam:GetCredentialReport"}),
    );
    let denied = verify_pass(&w.host);
    let (verdict, why) = key_age_check(&denied);
    assert_eq!(
        (verdict.as_str(), denied["unknown"].as_u64()),
        ("unknown", Some(1)),
        "{denied}"
    );
    assert!(why.contains("AccessDenied"), "{why}");
}
