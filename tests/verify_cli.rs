//! `tapguard verify` (the deployer binary, run as a user runs it) for every handler but EBS, whose rows
//! tests/deployer.rs checks: a resource created by its real handler binary in an account of its own,
//! each of its controls drifted in turn behind its back (a direct emulator call), found by
//! `tapguard verify` with its row (exit 1), then put back; held again at the end (exit 0), having only
//! read. Each handler is its own test, so they run side by side.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};
use tapguard_tests::*;

const REGION: &str = "eu-west-1";
/// The stack name of `World::stack_id`.
const STACK: &str = "tap-test";

/// What one `tapguard verify --output json` run found.
struct Run {
    code: i32,
    doc: Value,
    /// The run's stdout, for messages.
    text: String,
}

impl Run {
    /// control -> (verdict, observed) of the rows of `logical_id`.
    fn rows(&self, logical_id: &str) -> BTreeMap<String, (String, String)> {
        self.doc["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["stack"] == STACK && r["logical_id"] == logical_id)
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (text("control"), (text("verdict"), text("observed")))
            })
            .collect()
    }

    /// The controls of drifted rows, whoever's.
    fn drifted(&self) -> Vec<String> {
        let mut out: Vec<String> = self.doc["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["verdict"] == "drifted")
            .filter_map(|r| r["control"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// The target of the row of `control`.
    fn target_of(&self, control: &str) -> String {
        self.doc["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["control"] == control)
            .and_then(|r| r["target"].as_str())
            .unwrap_or_else(|| panic!("no row of {control}: {}", self.text))
            .to_string()
    }
}

/// Runs `tapguard verify` in REGION with the credentials of `account`, as JSON.
fn verify(account: &Account) -> Run {
    let audit = std::env::temp_dir().join(format!(
        "tapguard-test-verify-cli-{}-{}.jsonl",
        account.account_id,
        std::process::id()
    ));
    let output = Command::new(binary_path("tapguard"))
        .args(["verify", "--regions", REGION, "--output", "json", "--audit-log"])
        .arg(&audit)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(emulator().sdk_env(account, REGION))
        .current_dir(root())
        .output()
        .expect("run tapguard");
    let _ = std::fs::remove_file(&audit);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let doc = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\nstderr:\n{}", String::from_utf8_lossy(&output.stderr)));
    Run {
        code: output.status.code().unwrap_or(-1),
        doc,
        text,
    }
}

/// One drift: its control, what the row observes (a prefix), how to make it and how to put it back.
struct Drift<'a> {
    control: String,
    observed: &'a str,
    drift: Box<dyn Fn() + 'a>,
    put_back: Box<dyn Fn() + 'a>,
}

fn drift<'a>(control: &str, observed: &'a str, drift: impl Fn() + 'a, put_back: impl Fn() + 'a) -> Drift<'a> {
    Drift {
        control: control.to_string(),
        observed,
        drift: Box::new(drift),
        put_back: Box::new(put_back),
    }
}

/// Held first (only reads), then each drift in turn found alone with its row in `target`, then held.
fn drift_each_in_turn(w: &World, logical_id: &str, target: &str, drifts: &[Drift]) {
    let held = verify(&w.account);
    assert_eq!(held.code, 0, "{}", held.text);
    let rows = held.rows(logical_id);
    assert!(!rows.is_empty(), "no rows of {logical_id}: {}", held.text);
    assert!(rows.values().all(|(v, _)| v == "held"), "{}", held.text);
    for d in drifts {
        assert!(
            rows.contains_key(&d.control),
            "{} is not verified: {}",
            d.control,
            held.text
        );
    }
    for d in drifts {
        (d.drift)();
        let before = emulator().calls(&w.account.account_id, None).len();
        let found = verify(&w.account);
        let during: Vec<String> = emulator().calls(&w.account.account_id, None)[before..]
            .iter()
            .filter_map(|c| c["operation"].as_str().map(str::to_string))
            .collect();
        assert!(
            mutating(&during).is_empty(),
            "{}: verify only reads: {during:?}",
            d.control
        );
        assert_eq!(found.code, 1, "{}: {}", d.control, found.text);
        assert!(found.drifted().contains(&d.control), "{}: {}", d.control, found.text);
        let (verdict, observed) = found.rows(logical_id)[&d.control].clone();
        assert_eq!(verdict, "drifted", "{}", d.control);
        assert!(
            observed.starts_with(d.observed),
            "{}: observed {observed:?}, not {:?}",
            d.control,
            d.observed
        );
        assert_eq!(found.target_of(&d.control), target, "{}", d.control);
        (d.put_back)();
    }
    let again = verify(&w.account);
    assert_eq!(again.code, 0, "everything put back: {}", again.text);
}

fn regional(w: &World) -> String {
    format!("{}/{REGION}", w.account.account_id)
}

fn global(w: &World) -> String {
    format!("{}/global", w.account.account_id)
}

fn config(w: &World, operation: &str, body: Value) -> Value {
    w.json_call("config", &format!("StarlingDoveService.{operation}"), body)
}

#[test]
fn config_setup_each_control_drifted_is_a_drifted_row() {
    let w = World::new("config-setup", REGION);
    let role = |name: &str| format!("arn:aws:iam::{}:role/{name}", w.account.account_id);
    let bucket = format!("tap-config-{}", w.account.account_id);
    let rule = json!({"ConfigRuleName": "tap-access-keys-rotated",
        "Source": {"Owner": "AWS", "SourceIdentifier": "ACCESS_KEYS_ROTATED"},
        "InputParameters": "{\"maxAccessKeyAge\":\"90\"}"});
    let created = w.resource("Custom::ConfigSetup", "Config").create(json!({
        "RoleArn": role("tap-config-recorder"), "DeliveryBucketName": bucket,
        "Rules": [{"Name": "tap-access-keys-rotated", "SourceIdentifier": "ACCESS_KEYS_ROTATED",
            "InputParameters": {"maxAccessKeyAge": "90"}}]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let recorder = |action: &str| {
        config(&w, action, json!({"ConfigurationRecorderName": "default"}));
    };
    let recorder_role = |name: &str| {
        config(
            &w,
            "PutConfigurationRecorder",
            json!({"ConfigurationRecorder": {"name": "default", "roleARN": role(name),
                "recordingGroup": {"allSupported": true, "includeGlobalResourceTypes": true}}}),
        );
    };
    let channel = |bucket: &str| {
        config(
            &w,
            "PutDeliveryChannel",
            json!({"DeliveryChannel": {"name": "default", "s3BucketName": bucket}}),
        );
    };
    let status = |path: &str, body: Value| {
        let mut body = body;
        body["account"] = json!(w.account.account_id);
        body["region"] = json!(REGION);
        emulator().control(path, body);
    };
    let other_bucket = format!("someone-elses-{}", w.account.account_id);
    let drifts = [
        drift(
            "Config.RecorderRecording",
            "false",
            || recorder("StopConfigurationRecorder"),
            || recorder("StartConfigurationRecorder"),
        ),
        drift(
            "Config.Recorder",
            "recorder default: role arn:aws:iam::",
            || recorder_role("someone-elses"),
            || recorder_role("tap-config-recorder"),
        ),
        drift(
            "Config.RecorderLastStatus",
            "Failure: AccessDenied",
            || {
                status(
                    "/tapguard/config/recorder-status",
                    json!({"last_status": "Failure", "code": "AccessDenied", "message": "the role cannot read"}),
                )
            },
            || status("/tapguard/config/recorder-status", json!({"last_status": "Success"})),
        ),
        drift(
            "Config.DeliveryChannel",
            "channel default: bucket someone-elses-",
            || channel(&other_bucket),
            || channel(&bucket),
        ),
        drift(
            "Config.DeliveryChannelDelivering",
            "configuration history delivery Failure: NoSuchBucket",
            || {
                status(
                    "/tapguard/config/delivery-status",
                    json!({"status": "Failure", "code": "NoSuchBucket", "message": "The bucket does not exist"}),
                )
            },
            || status("/tapguard/config/delivery-status", json!({"status": "Success"})),
        ),
        drift(
            "Config.Rule/tap-access-keys-rotated",
            "no such rule",
            || {
                config(
                    &w,
                    "DeleteConfigRule",
                    json!({"ConfigRuleName": "tap-access-keys-rotated"}),
                );
            },
            || {
                config(&w, "PutConfigRule", json!({ "ConfigRule": rule }));
            },
        ),
    ];
    drift_each_in_turn(&w, "Config", &regional(&w), &drifts);
}

fn enable_hub(w: &World) {
    let answer = w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false, "ControlFindingGenerator": "SECURITY_CONTROL"})),
    );
    assert!(answer.get("__type").is_none(), "{answer}");
}

#[test]
fn securityhub_enable_each_control_drifted_is_a_drifted_row() {
    let w = World::new("securityhub-enable", REGION);
    let created = w
        .resource("Custom::SecurityHubEnable", "SecurityHub")
        .create(json!({"ControlFindingGenerator": "SECURITY_CONTROL", "AutoEnableControls": true}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let configure = |body: Value| {
        let answer = w.rest_call("securityhub", "PATCH", "/accounts", Some(body));
        assert!(answer.get("__type").is_none(), "{answer}");
    };
    let drifts = [
        drift(
            "SecurityHub.ControlFindingGenerator",
            "STANDARD_CONTROL",
            || configure(json!({"ControlFindingGenerator": "STANDARD_CONTROL"})),
            || configure(json!({"ControlFindingGenerator": "SECURITY_CONTROL"})),
        ),
        drift(
            "SecurityHub.AutoEnableControls",
            "false",
            || configure(json!({"AutoEnableControls": false})),
            || configure(json!({"AutoEnableControls": true})),
        ),
        drift(
            "SecurityHub.HubEnabled",
            "false",
            || {
                w.rest_call("securityhub", "DELETE", "/accounts", None);
            },
            || {
                enable_hub(&w);
                configure(json!({"AutoEnableControls": true}));
            },
        ),
    ];
    drift_each_in_turn(&w, "SecurityHub", &regional(&w), &drifts);
}

#[test]
fn securityhub_standards_each_control_drifted_is_a_drifted_row() {
    const FSBP: &str = "aws-foundational-security-best-practices/v/1.0.0";
    let w = World::new("securityhub-standards", REGION);
    enable_hub(&w);
    let account = w.account.account_id.clone();
    let control = |id: &str| format!("arn:aws:securityhub:{REGION}:{account}:control/{FSBP}/{id}");
    let entry = |id: &str| json!({"StandardsControlArn": control(id), "Reason": "not used here"});
    let mut r = w.resource("Custom::SecurityHubStandards", "Standards");
    let created = r.create(json!({"Standards": [FSBP], "DisabledControls": [entry("IAM.1"), entry("IAM.2")]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    // IAM.2 leaves DisabledControls: the Update turns it back on, and it is to stay on.
    let updated = r.update(json!({"Standards": [FSBP], "DisabledControls": [entry("IAM.1")]}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    let set_control = |id: &str, status: &str| {
        let body = if status == "DISABLED" {
            json!({"ControlStatus": status, "DisabledReason": "by hand"})
        } else {
            json!({"ControlStatus": status})
        };
        let path = format!("/standards/control/{}", control(id));
        let answer = w.rest_call("securityhub", "PATCH", &path, Some(body));
        assert!(answer.get("__type").is_none(), "{answer}");
    };
    let subscription = format!("arn:aws:securityhub:{REGION}:{account}:subscription/{FSBP}");
    let standards = |path: &str, body: Value| {
        let answer = w.rest_call("securityhub", "POST", path, Some(body));
        assert!(answer.get("__type").is_none(), "{answer}");
    };
    let settle = || {
        // Each GetEnabledStandards moves a subscription along (PENDING to READY), as in AWS.
        for _ in 0..5 {
            let answer = w.rest_call("securityhub", "POST", "/standards/get", Some(json!({})));
            if answer["StandardsSubscriptions"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|s| s["StandardsStatus"] == "READY")
            {
                return;
            }
        }
    };
    let drifts = [
        drift(
            &format!("SecurityHub.ControlDisabled:{FSBP}#IAM.1"),
            "ENABLED",
            || set_control("IAM.1", "ENABLED"),
            || set_control("IAM.1", "DISABLED"),
        ),
        drift(
            &format!("SecurityHub.ControlReenabled:{FSBP}#IAM.2"),
            "DISABLED (by hand)",
            || set_control("IAM.2", "DISABLED"),
            || set_control("IAM.2", "ENABLED"),
        ),
        drift(
            &format!("SecurityHub.StandardReady:{FSBP}"),
            "not subscribed",
            || {
                standards(
                    "/standards/deregister",
                    json!({"StandardsSubscriptionArns": [subscription]}),
                );
                settle();
            },
            || {
                standards(
                    "/standards/register",
                    json!({"StandardsSubscriptionRequests": [
                        {"StandardsArn": format!("arn:aws:securityhub:{REGION}::standards/{FSBP}")}]}),
                );
                settle();
                set_control("IAM.1", "DISABLED");
            },
        ),
    ];
    drift_each_in_turn(&w, "Standards", &regional(&w), &drifts);
}

#[test]
fn iam_password_policy_each_control_drifted_is_a_drifted_row() {
    let w = World::new("iam-password-policy", REGION);
    let strict: BTreeMap<&str, &str> = [
        ("MinimumPasswordLength", "14"),
        ("RequireSymbols", "true"),
        ("RequireNumbers", "true"),
        ("RequireUppercaseCharacters", "true"),
        ("RequireLowercaseCharacters", "true"),
        ("AllowUsersToChangePassword", "true"),
        ("MaxPasswordAge", "90"),
        ("PasswordReusePrevention", "24"),
    ]
    .into();
    let created = w
        .resource("Custom::IamPasswordPolicy", "PasswordPolicy")
        .create(json!(strict));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    // Sets the account's policy by hand: strict with one field changed ("" leaves it out).
    let set = |field: &str, value: &str| {
        let mut params = strict.clone();
        params.remove(field);
        if !value.is_empty() {
            params.insert(field, value);
        }
        let mut query: Vec<(&str, &str)> = vec![("Action", "UpdateAccountPasswordPolicy")];
        query.extend(params.iter().map(|(k, v)| (*k, *v)));
        let answer = w.query("iam", &query);
        assert!(!answer.contains("<Error>"), "{answer}");
    };
    let weaker = [
        ("MinimumPasswordLength", "10", "10"),
        ("RequireSymbols", "false", "false"),
        ("RequireNumbers", "false", "false"),
        ("RequireUppercaseCharacters", "false", "false"),
        ("RequireLowercaseCharacters", "false", "false"),
        ("AllowUsersToChangePassword", "false", "false"),
        ("MaxPasswordAge", "", "never expires"),
        ("PasswordReusePrevention", "5", "5"),
    ];
    let strict = &strict;
    let set = &set;
    let mut drifts: Vec<Drift> = weaker
        .iter()
        .map(|&(field, value, observed)| {
            drift(
                &format!("IAM.PasswordPolicy.{field}"),
                observed,
                move || set(field, value),
                move || set(field, strict[field]),
            )
        })
        .collect();
    drifts.push(drift(
        "IAM.PasswordPolicy",
        "no password policy",
        || {
            w.query("iam", &[("Action", "DeleteAccountPasswordPolicy")]);
        },
        || set("MinimumPasswordLength", "14"),
    ));
    // IAM is global: its rows are the account's, whatever the run's regions.
    drift_each_in_turn(&w, "PasswordPolicy", &global(&w), &drifts);
}

#[test]
fn shield_advanced_each_control_drifted_is_a_drifted_row() {
    let w = World::new("shield-advanced", REGION);
    let srt = format!("arn:aws:iam::{}:role/tap-shield-srt", w.account.account_id);
    let created = w
        .resource("Custom::ShieldAdvanced", "ShieldAdvanced")
        .create(json!({"CreateSubscription": "true", "SrtRoleArn": srt}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let shield = |operation: &str, body: Value| {
        w.json_call("shield", &format!("AWSShield_20160616.{operation}"), body);
    };
    let commitment = |in_seconds: i64, auto_renew: &str| {
        emulator().control(
            "/tapguard/shield/commitment-end",
            json!({"account": w.account.account_id, "in_seconds": in_seconds, "auto_renew": auto_renew}),
        );
    };
    let drifts = [
        drift(
            "Shield.SrtRole",
            "no role",
            || shield("DisassociateDRTRole", json!({})),
            || shield("AssociateDRTRole", json!({"RoleArn": srt})),
        ),
        drift(
            "Shield.Subscription",
            "ended ",
            || commitment(-60, "DISABLED"),
            || commitment(365 * 86_400, "ENABLED"),
        ),
    ];
    drift_each_in_turn(&w, "ShieldAdvanced", &global(&w), &drifts);
}

#[test]
fn access_key_rotation_an_over_age_key_is_a_drifted_row() {
    // Audit resources claim nothing (nothing to verify): a Disable one claims the age rule.
    let w = World::with_env("access-key-rotation", REGION, &[("Mode", "Disable")]);
    let answer = emulator().control(
        "/tapguard/iam/bulk-users",
        json!({"account": w.account.account_id, "prefix": "fresh-", "count": 1,
            "keys": [{"age_days": 3}], "tags": {}}),
    );
    let keys: BTreeMap<String, Vec<String>> =
        serde_json::from_value(answer["access_key_ids"].clone()).expect("access key ids");
    let (user, ids) = keys.into_iter().next().expect("a user");
    let mut r = w.resource("Custom::AccessKeyRotation", "AccessKeyRotation");
    r.timeout = std::time::Duration::from_secs(120);
    let created = r.create(json!({"Mode": "Disable", "MaxKeyAgeDays": "90"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let age = |days: u32| {
        emulator().control(
            "/tapguard/iam/age-key",
            json!({"account": w.account.account_id, "user": user, "access_key_id": ids[0], "days": days}),
        );
    };
    let drifts = [drift(
        "IAM.AccessKeysWithinAge",
        "1 user with an older active key",
        || age(120),
        || age(3),
    )];
    drift_each_in_turn(&w, "AccessKeyRotation", &regional(&w), &drifts);
}
