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
    let emulator = emulator();
    let account = emulator.fresh_account();
    let mut full_env = emulator.sdk_env(&account, REGION);
    full_env.extend(
        env.iter()
            .map(|(k, v)| (k.to_string(), v.replace("{account}", &account.account_id))),
    );
    World {
        host: LambdaHost::start(&binary_path(BINARY), &full_env),
        account,
        region: REGION.to_string(),
        responses: ResponseServer::start(),
    }
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
    assert_eq!(
        created.physical_id(),
        format!("access-key-rotation:{}", w.account.account_id)
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
fn rotate_2000_users_on_schedule_then_as_custom_resource_never_locks_anyone_out() {
    let w = world_with(&[
        ("Mode", "Rotate"),
        ("NotifyTopicArn", "arn:aws:sns:eu-west-1:{account}:key-rotation"),
    ]);
    create_topic(&w);
    users(&w, "fresh-", 1900, json!([{"age_days": 5}]), json!({}));
    let old = users(&w, "old-", 60, json!([{"age_days": 120}]), json!({}));
    let both = users(&w, "both-", 10, json!([{"age_days": 120}, {"age_days": 30}]), json!({}));
    let graced = users(
        &w,
        "graced-",
        10,
        json!([{"age_days": 120}, {"age_days": 200, "status": "Inactive"}]),
        json!({}),
    );
    let exempt = users(
        &w,
        "exempt-",
        10,
        json!([{"age_days": 120}]),
        json!({EXEMPT_TAG: "yes"}),
    );
    let recent = users(
        &w,
        "recent-",
        10,
        json!([{"age_days": 120}, {"age_days": 95, "status": "Inactive", "last_used_days": 2}]),
        json!({}),
    );

    let summary = scheduled(&w).unwrap_or_else(|e| panic!("scheduled pass failed: {e}\n{}", w.host.logs()));
    // Over age: old 60, both 10, graced 20, exempt 10, recent 20.
    assert_eq!(counts(&summary), expect_counts([2000, 120, 70, 70, 10, 10, 20, 0]));

    let mut stored_secrets = Vec::new();
    for (user, ids) in old.iter().chain(graced.iter()) {
        let keys = keys_of(&w, user);
        assert_eq!(keys.len(), 2, "{user}: {keys:?}");
        let new_key = keys.iter().find(|k| k.id != ids[0]).expect("a new key");
        assert_eq!(
            status_of(&w, user, &ids[0]).as_deref(),
            Some("Inactive"),
            "{user}: old key"
        );
        assert_eq!(new_key.status, "Active", "{user}: new key");
        if ids.len() == 2 {
            assert!(
                keys.iter().all(|k| k.id != ids[1]),
                "{user}: the expired inactive key was deleted"
            );
        }
        let stored = secret(&w, &format!("tap/access-keys/{user}")).unwrap_or_else(|| panic!("{user}: no secret"));
        assert_eq!(stored["UserName"], json!(user));
        assert_eq!(stored["AccessKeyId"], json!(new_key.id));
        assert_eq!(stored["SecretAccessKey"].as_str().map(str::len), Some(40));
        assert!(stored["CreatedAt"].as_str().is_some());
        stored_secrets.push(stored["SecretAccessKey"].as_str().unwrap().to_string());
    }
    for (user, ids) in both.iter().chain(recent.iter()).chain(exempt.iter()) {
        let keys = keys_of(&w, user);
        assert_eq!(keys.len(), ids.len(), "{user}: skipped users keep their keys: {keys:?}");
        assert_eq!(status_of(&w, user, &ids[0]).as_deref(), Some("Active"), "{user}");
        assert!(secret(&w, &format!("tap/access-keys/{user}")).is_none(), "{user}");
    }
    assert_eq!(w.operations("sns").iter().filter(|op| *op == "Publish").count(), 70);
    assert!(!w.operations("iam").iter().any(|op| op == "ListUsers"));

    // The first keys were deactivated today: however old, they are kept for the grace period.
    for (user, ids) in old.iter().take(3) {
        let tags = w.query("iam", &[("Action", "ListUserTags"), ("UserName", user)]);
        assert!(
            tags.contains(&format!("tap:rotation-deactivated:{}", ids[0])),
            "{user}: {tags}"
        );
    }

    // As a custom resource, "20 days later" for five users: their new keys are over age too, and their
    // first keys have been inactive past the grace period: delete those first, then rotate again.
    let again: Vec<(&String, &Vec<String>)> = old.iter().take(5).collect();
    for (user, ids) in &again {
        for key in keys_of(&w, user) {
            age_key(&w, user, &key.id, if key.id == ids[0] { 140 } else { 100 });
        }
        backdate_deactivation(&w, user, &ids[0], 20);
    }
    let r = driver(&w);
    let created = r.send(create_event(
        &w,
        json!({"Mode": "Rotate", "NotifyTopicArn": topic_arn(&w)}),
    ));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let data = data_of(&created);
    assert_eq!(data["KeysRotated"], 5);
    assert_eq!(data["KeysDeleted"], 5, "only the five keys deactivated 20 days ago");
    assert_eq!(data["UsersSkipped"], 20);
    assert_eq!(data["UsersFailed"], 0);
    for (user, ids) in &again {
        let keys = keys_of(&w, user);
        assert_eq!(keys.len(), 2, "{user}: {keys:?}");
        assert!(keys.iter().all(|k| k.id != ids[0]), "{user}: the first key is gone");
        let active: Vec<&KeyState> = keys.iter().filter(|k| k.status == "Active").collect();
        assert_eq!(active.len(), 1, "{user}: {keys:?}");
        let stored = secret(&w, &format!("tap/access-keys/{user}")).expect("secret");
        assert_eq!(
            stored["AccessKeyId"],
            json!(active[0].id),
            "{user}: the secret holds the newest key"
        );
    }

    // The secret access keys are in Secrets Manager and nowhere else.
    let logs = w.host.logs();
    for secret_key in stored_secrets {
        assert!(!logs.contains(&secret_key), "a secret access key reached the logs");
        assert!(!created.response().to_string().contains(&secret_key));
    }
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
    assert!(w.operations("secretsmanager").is_empty(), "Disable stores nothing");

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
    assert_eq!(counts(&data), expect_counts([16, 8, 6, 6, 2, 0, 0, 0]));
    assert_eq!(data["DryRun"], "true");
    assert_eq!(iam_changes(&w), Vec::<String>::new());
    assert_eq!(mutating(&w.operations("secretsmanager")), Vec::<String>::new());
    assert!(w.operations("sns").is_empty());
    for (user, ids) in &old {
        assert_eq!(keys_of(&w, user).len(), 1, "{user}");
        assert_eq!(status_of(&w, user, &ids[0]).as_deref(), Some("Active"));
    }
    assert!(w.host.logs().contains("dry run: would create a new key"));
}

#[test]
fn a_user_whose_secret_cannot_be_stored_keeps_the_old_key_and_fails_the_pass_unless_told_otherwise() {
    let w = world_with(&[]);
    let old = users(&w, "old-", 3, json!([{"age_days": 100}]), json!({}));
    w.fault(json!({"service": "secretsmanager", "operation": "CreateSecret",
        "code": "AccessDeniedException", "message": "not allowed to create secrets", "count": 1}));

    let mut r = driver(&w);
    let failed = r.create(json!({"Mode": "Rotate"}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(reason.starts_with("1 of 3 candidate users failed"), "{reason}");
    assert!(
        reason.contains("CreateSecret failed: AccessDeniedException: not allowed to create secrets"),
        "{reason}"
    );
    assert!(
        reason.contains("was deleted again") && reason.contains("FailOnUserErrors"),
        "{reason}"
    );

    // The failed user holds exactly the old key, still active; the other two were rotated.
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
        } else {
            assert_eq!(status_of(&w, user, &ids[0]).as_deref(), Some("Inactive"), "{user}");
            rotated += 1;
        }
    }
    assert_eq!(rotated, 2);
    let ops = w.operations("iam");
    assert_eq!(ops.iter().filter(|op| *op == "CreateAccessKey").count(), 3);
    assert_eq!(ops.iter().filter(|op| *op == "DeleteAccessKey").count(), 1);

    // With FailOnUserErrors false a user failure is reported in Data, not as FAILED.
    users(&w, "later-", 1, json!([{"age_days": 100}]), json!({}));
    w.fault(
        json!({"service": "iam", "operation": "CreateAccessKey", "code": "LimitExceeded",
        "message": "Cannot exceed quota for AccessKeysPerUser: 2", "count": 2}),
    );
    let lenient = r.create(json!({"Mode": "Rotate", "FailOnUserErrors": "false"}));
    assert_eq!(lenient.status(), "SUCCESS", "{}", lenient.reason());
    let data = data_of(&lenient);
    assert_eq!(
        (data["UsersFailed"].clone(), data["KeysRotated"].clone()),
        (json!(2), json!(0))
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
    let failed = r.create(json!({"Mode": "Rotate"}));
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
    let schedule = scheduled(&w).expect_err("a bad Mode variable fails the scheduled run");
    assert!(
        schedule.to_string().contains("invalid environment variable Mode"),
        "{schedule}"
    );
    assert!(
        w.operations("iam").is_empty(),
        "nothing is called with invalid settings"
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
