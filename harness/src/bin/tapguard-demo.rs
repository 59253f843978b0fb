//! `make demo`: starts the local AWS emulator and plays CloudFormation for each scenario in `demo/`:
//! the real handler binaries under a Lambda Runtime API, printing status, reason and Data of each answer.
//!
//! Scenarios run in file-name order (so a hub comes before its standards); their Deletes run at the
//! end in reverse order, as CloudFormation deletes dependants first. Then `tapguard verify` and the
//! repair of drift are shown on TapStack.yml, played with `tapguard local` (see [`drift_demo`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use serde_json::{json, Value};
use tapguard_harness::{
    binary_path, Account, CustomResourceDriver, Emulator, Exchange, InvokeResult, LambdaHost, ResponseServer,
};

fn main() -> ExitCode {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    let region = std::env::var("TAPGUARD_DEMO_REGION").unwrap_or_else(|_| "us-east-1".into());
    let emulator = match Emulator::from_env_or_start(&root) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let account = emulator.account("111111111111");
    println!(
        "local AWS emulator at {} (account {}, region {region})\n",
        emulator.url, account.account_id
    );

    let scenarios = match load_scenarios(&root.join("demo")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let responses = ResponseServer::start();
    let env = emulator.sdk_env(&account, &region);
    let stack_id = format!(
        "arn:aws:cloudformation:{region}:{}:stack/TapStack-demo/00000000-0000-4000-8000-000000000001",
        account.account_id
    );
    let hosts: Vec<LambdaHost> = scenarios
        .iter()
        .map(|s| {
            LambdaHost::start(
                &binary_path(str_of(s, "binary")),
                &scenario_env(&env, s, &account, &region),
            )
        })
        .collect();
    // One driver per logical id of a scenario: a step may name another resource of the same type
    // (`"resource": "NewName"`), as a rename or a replacement does.
    let mut drivers: Vec<BTreeMap<String, CustomResourceDriver>> = scenarios.iter().map(|_| BTreeMap::new()).collect();

    let mut unexpected = 0;
    for ((scenario, host), resources) in scenarios.iter().zip(&hosts).zip(drivers.iter_mut()) {
        println!("== {}", str_of(scenario, "title"));
        for step in scenario["setup"].as_array().into_iter().flatten() {
            setup(
                &emulator,
                &account,
                &region,
                &placeholders(step, &account, &region),
                "setup",
            );
        }
        // Deletes run at teardown, unless a step asks for one `now` (the old name of a rename).
        for step in steps(scenario).filter(|s| str_of(s, "request") != "Delete" || s["now"] == true) {
            let step = &placeholders(step, &account, &region);
            if let Some(show) = step.get("show") {
                unexpected += print_state(&emulator, &account, &region, show, step);
                continue;
            }
            if step.get("request").is_none() && step.get("scheduled").is_none() {
                // A change between two passes (time passing, a workload using a key): the setup kinds.
                setup(&emulator, &account, &region, step, "then");
                continue;
            }
            if let Some(scheduled) = step.get("scheduled") {
                let env = scenario_env(&env, scenario, &account, &region);
                unexpected += scheduled_run(&account, &region, scenario, scheduled, step, env);
                continue;
            }
            let driver = driver_for(resources, scenario, step, host, &responses, &stack_id);
            unexpected += run_step(driver, step);
        }
        println!();
    }
    for ((scenario, host), resources) in scenarios.iter().zip(&hosts).zip(drivers.iter_mut()).rev() {
        for step in steps(scenario).filter(|s| str_of(s, "request") == "Delete" && s["now"] != true) {
            println!("== {} (teardown)", str_of(scenario, "title"));
            let driver = driver_for(resources, scenario, step, host, &responses, &stack_id);
            unexpected += run_step(driver, step);
        }
    }
    println!();
    unexpected += drift_demo(&root, &emulator, &region);
    if unexpected > 0 {
        println!("\n{unexpected} step(s) did not end as the scenario expects");
        ExitCode::FAILURE
    } else {
        println!("\nevery step ended as expected");
        ExitCode::SUCCESS
    }
}

/// Puts the account in the state a scenario starts from, with the emulator's own API:
/// `{"query": {"service", "params"}}`, `{"json": {"service", "target", "body"}}`,
/// `{"rest": {"service", "method", "path", "body"}}` or `{"control": {"path", "body"}}`.
fn setup(emulator: &Emulator, account: &tapguard_harness::Account, region: &str, step: &Value, label: &str) {
    if let Some(q) = step.get("query") {
        let params: Vec<(String, String)> = q["params"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        emulator.query(account, region, str_of(q, "service"), &params);
    } else if let Some(j) = step.get("json") {
        emulator.json_call(
            account,
            region,
            str_of(j, "service"),
            str_of(j, "target"),
            j["body"].clone(),
        );
    } else if let Some(r) = step.get("rest") {
        let body = r.get("body").cloned();
        emulator.rest_call(
            account,
            region,
            str_of(r, "service"),
            str_of(r, "method"),
            str_of(r, "path"),
            body,
        );
    } else if let Some(c) = step.get("control") {
        let mut body = c["body"].clone();
        if body.is_object() && body.get("account").is_none() {
            body["account"] = Value::String(account.account_id.clone());
        }
        if body.is_object() && body.get("region").is_none() {
            body["region"] = Value::String(region.to_string());
        }
        emulator.control(str_of(c, "path"), body);
    }
    if let Some(note) = step.get("note").and_then(Value::as_str) {
        println!("  {label}: {note}");
    }
}

/// `{account}` and `{region}` in any string of a step (an ARN in a property) become the demo's.
fn placeholders(value: &Value, account: &Account, region: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace("{account}", &account.account_id).replace("{region}", region)),
        Value::Array(items) => Value::Array(items.iter().map(|v| placeholders(v, account, region)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), placeholders(v, account, region)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The function's environment: the emulator's, plus the scenario's `"env"` (settings a template gives it).
fn scenario_env(base: &[(String, String)], scenario: &Value, account: &Account, region: &str) -> Vec<(String, String)> {
    let mut env = base.to_vec();
    if let Value::Object(extra) = placeholders(&scenario["env"], account, region) {
        env.extend(
            extra
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string))),
        );
    }
    env
}

/// `{"scheduled": {"env": {...}}, "check": {"KeysDeactivated": 1}}`: the function started with the
/// scenario's environment and `env` (a scheduled run's settings), given the EventBridge scheduled event
/// its daily rule sends. Prints the summary; returns 1 when it failed or a checked field differs.
fn scheduled_run(
    account: &Account,
    region: &str,
    scenario: &Value,
    scheduled: &Value,
    step: &Value,
    mut env: Vec<(String, String)>,
) -> usize {
    if let Some(Value::Object(extra)) = scheduled.get("env") {
        env.extend(
            extra
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))),
        );
    }
    let host = LambdaHost::start(&binary_path(str_of(scenario, "binary")), &env);
    let event = json!({
        "version": "0",
        "id": "00000000-0000-4000-8000-00000000d3e0",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account.account_id,
        "time": "2026-01-01T03:00:00Z",
        "region": region,
        "resources": [format!("arn:aws:events:{region}:{}:rule/tapguard-demo-daily", account.account_id)],
        "detail": {}
    });
    let note = step
        .get("note")
        .and_then(Value::as_str)
        .map(|n| format!("  ({n})"))
        .unwrap_or_default();
    let summary = match host.invoke(&event, Duration::from_secs(120)) {
        InvokeResult::Response(summary) => summary,
        other => {
            println!("  Scheduled FAILED{note}: {other:?}");
            return 1;
        }
    };
    println!("  Scheduled run{note}");
    for (k, v) in summary.as_object().into_iter().flatten() {
        println!("    {k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_string));
    }
    check_fields("summary", &summary, step)
}

/// Compares the fields a step's `"check"` object names with `answer` (numbers and their strings are
/// equal); prints each difference; 1 when there is one.
fn check_fields(what: &str, answer: &Value, step: &Value) -> usize {
    let mut wrong = 0;
    for (k, want) in step.get("check").and_then(Value::as_object).into_iter().flatten() {
        let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        let got = answer.get(k).map(text);
        if got.as_deref() != Some(text(want).as_str()) {
            println!(
                "    UNEXPECTED: {what} {k} is {}, the scenario expects {}",
                got.unwrap_or_else(|| "(absent)".into()),
                text(want)
            );
            wrong = 1;
        }
    }
    wrong
}

fn driver_for<'a, 'h>(
    resources: &'a mut BTreeMap<String, CustomResourceDriver<'h>>,
    scenario: &Value,
    step: &Value,
    host: &'h LambdaHost,
    responses: &'h ResponseServer,
    stack_id: &str,
) -> &'a mut CustomResourceDriver<'h> {
    let logical_id = step
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or_else(|| str_of(scenario, "logical_id"))
        .to_string();
    resources.entry(logical_id.clone()).or_insert_with(|| {
        CustomResourceDriver::new(
            host,
            responses,
            str_of(scenario, "resource_type"),
            &logical_id,
            stack_id,
        )
    })
}

/// Prints a piece of the account's state, read with the emulator's own API:
/// `{"show": {"query": {"service", "params"}, "pick": "<xml element>"}, "note": "..."}` or
/// `{"show": {"json": {"service", "target", "body"}, "pick": "/json/pointer", "count": true}, "note": "..."}`.
fn print_state(
    emulator: &Emulator,
    account: &tapguard_harness::Account,
    region: &str,
    show: &Value,
    step: &Value,
) -> usize {
    if let Some(keys) = show.get("access_keys") {
        return print_access_keys(emulator, account, region, keys, step);
    }
    let pick = str_of(show, "pick");
    let value = if let Some(q) = show.get("query") {
        let params: Vec<(String, String)> = q["params"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let xml = emulator.query(account, region, str_of(q, "service"), &params);
        tapguard_harness::xml_value(&xml, pick)
            .unwrap_or("(absent)")
            .to_string()
    } else if let Some(j) = show.get("json") {
        let answer = emulator.json_call(
            account,
            region,
            str_of(j, "service"),
            str_of(j, "target"),
            j["body"].clone(),
        );
        match answer.pointer(pick) {
            // `"count": true` shows how many items an array holds instead of the items.
            Some(Value::Array(items)) if show["count"] == true => items.len().to_string(),
            Some(value) => value.to_string(),
            None => "(absent)".to_string(),
        }
    } else {
        "(nothing to show)".to_string()
    };
    println!(
        "  state: {}: {value}",
        step.get("note").and_then(Value::as_str).unwrap_or(pick)
    );
    0
}

/// `{"show": {"access_keys": {"user": "alice", "secret": "tap/access-keys/alice"}}, "check": ["Active", "Active"]}`:
/// the user's access keys, oldest first, with their age, status and whether the secret holds the key;
/// 1 when the statuses are not the checked ones, or the secret does not hold the newest key.
fn print_access_keys(emulator: &Emulator, account: &Account, region: &str, show: &Value, step: &Value) -> usize {
    let user = str_of(show, "user");
    let xml = emulator.query(
        account,
        region,
        "iam",
        &[("Action", "ListAccessKeys"), ("UserName", user)],
    );
    let mut keys: Vec<(String, String, String)> = xml
        .split("<member>")
        .skip(1)
        .map(|m| {
            let field = |name| tapguard_harness::xml_value(m, name).unwrap_or_default().to_string();
            (field("CreateDate"), field("AccessKeyId"), field("Status"))
        })
        .collect();
    keys.sort();
    let secret = show.get("secret").and_then(Value::as_str);
    let stored = secret.and_then(|name| {
        let answer = emulator.json_call(
            account,
            region,
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            json!({"SecretId": name}),
        );
        let value: Value = serde_json::from_str(answer["SecretString"].as_str()?).ok()?;
        value["AccessKeyId"].as_str().map(str::to_string)
    });
    let note = step.get("note").and_then(Value::as_str).unwrap_or(user);
    println!("  state: {note}");
    for (created, id, status) in &keys {
        let held = match (secret, &stored) {
            (Some(name), Some(current)) if current == id => format!("  <- the value of secret {name}"),
            _ => String::new(),
        };
        let used = emulator.query(
            account,
            region,
            "iam",
            &[("Action", "GetAccessKeyLastUsed"), ("AccessKeyId", id)],
        );
        let used = tapguard_harness::xml_value(&used, "LastUsedDate").unwrap_or("never");
        println!(
            "    {id}  created {}  last used {}  {status}{held}",
            day(created),
            day(used)
        );
    }
    let statuses: Vec<&str> = keys.iter().map(|(_, _, status)| status.as_str()).collect();
    let mut wrong = 0;
    if let Some(want) = step.get("check").and_then(Value::as_array) {
        let want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
        if statuses != want {
            println!("    UNEXPECTED: the keys are {statuses:?} (oldest first), the scenario expects {want:?}");
            wrong = 1;
        }
    }
    if let Some(name) = secret {
        let newest = keys.last().map(|(_, id, _)| id.as_str());
        if stored.is_none() || stored.as_deref() != newest {
            println!(
                "    UNEXPECTED: secret {name} holds {}, not the newest key {}",
                stored.as_deref().unwrap_or("nothing"),
                newest.unwrap_or("-")
            );
            wrong = 1;
        }
    }
    wrong
}

/// Runs one step and prints it; returns 1 when its status is not the expected one (SUCCESS by default).
fn run_step(driver: &mut CustomResourceDriver, step: &Value) -> usize {
    let request = str_of(step, "request");
    let properties = step
        .get("properties")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let exchange: Exchange = match request {
        "Create" => driver.create(properties),
        "Update" => driver.update(properties),
        _ => driver.delete(),
    };
    let expected = step.get("expect").and_then(Value::as_str).unwrap_or("SUCCESS");
    let Some(response) = &exchange.response else {
        println!(
            "  {request:<7} NO RESPONSE (the function answered {:?})",
            exchange.invoke
        );
        return 1;
    };
    let status = response["Status"].as_str().unwrap_or("?");
    let note = step
        .get("note")
        .and_then(Value::as_str)
        .map(|n| format!("  ({n})"))
        .unwrap_or_default();
    println!("  {request:<7} {status}{note}");
    println!(
        "    PhysicalResourceId: {}",
        response["PhysicalResourceId"].as_str().unwrap_or("")
    );
    if let Some(reason) = response["Reason"].as_str() {
        println!("    Reason: {reason}");
    }
    if let Some(Value::Object(data)) = response.get("Data") {
        for (k, v) in data {
            println!("    Data.{k}: {}", v.as_str().unwrap_or(""));
        }
    }
    usize::from(status != expected).max(check_fields("Data", &response["Data"], step))
}

/// The date and minute of an ISO-8601 time (`2026-12-01T20:31`), or the text as it is.
fn day(time: &str) -> &str {
    time.get(..16)
        .filter(|_| time.as_bytes().get(10) == Some(&b'T'))
        .unwrap_or(time)
}

fn load_scenarios(dir: &Path) -> Result<Vec<Value>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))
        })
        .collect()
}

fn steps(scenario: &Value) -> impl Iterator<Item = &Value> {
    scenario["steps"].as_array().into_iter().flatten()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// Continuous verification: TapStack.yml played with `tapguard local` (RepairDrift=true) in an account
/// of its own; behind the stack's back the Config recorder is stopped, a Security Hub standard disabled
/// and EBS encryption by default turned off; `tapguard verify` shows the drifted rows (exit 1); each
/// function's scheduled verify pass puts its drift back (RepairDrift); `tapguard verify` again (exit 0).
/// Returns how many of these steps did not end as expected.
fn drift_demo(root: &Path, emulator: &Emulator, region: &str) -> usize {
    println!("== tapguard verify: TapStack.yml with RepairDrift=true, then drift behind its back");
    let account = emulator.account("222222222222");
    let tapguard = binary_path("tapguard");
    let template = root.join("TapStack.yml");
    let local = Command::new(&tapguard)
        .args([
            "local",
            "--stand-ins",
            "--parameter",
            "RepairDrift=true",
            "--region",
            region,
        ])
        .arg("--template")
        .arg(&template)
        .args(["--account", &account.account_id])
        .arg("--project-root")
        .arg(root)
        .env("TAPGUARD_EMULATOR_URL", &emulator.url)
        .output();
    let Ok(local) = local else {
        println!("  tapguard local could not run: {local:?}");
        return 1;
    };
    let text = String::from_utf8_lossy(&local.stdout);
    println!(
        "  tapguard local --template TapStack.yml --parameter RepairDrift=true: {}",
        text.lines().last().unwrap_or_default()
    );
    if !local.status.success() {
        println!("{text}");
        return 1;
    }
    let mut unexpected = 0;
    let recorder = config_recorder_name(emulator, &account, region);
    config_recorder(emulator, &account, region, &recorder, "StopConfigurationRecorder");
    println!("  behind the stack's back: StopConfigurationRecorder {recorder}");
    let standard = DRIFT_STANDARD;
    let subscription = format!(
        "arn:aws:securityhub:{region}:{}:subscription/{standard}",
        account.account_id
    );
    emulator.rest_call(
        &account,
        region,
        "securityhub",
        "POST",
        "/standards/deregister",
        Some(json!({"StandardsSubscriptionArns": [subscription]})),
    );
    println!("  behind the stack's back: BatchDisableStandards {standard}");
    emulator.query(&account, region, "ec2", &[("Action", "DisableEbsEncryptionByDefault")]);
    println!("  behind the stack's back: DisableEbsEncryptionByDefault");

    let audit = std::env::temp_dir().join(format!("tapguard-demo-verify-{}.jsonl", std::process::id()));
    let verify = |expected: i32| {
        let out = Command::new(&tapguard)
            .args(["verify", "--regions", region])
            .arg("--audit-log")
            .arg(&audit)
            .envs(emulator.sdk_env(&account, region))
            .env_remove("AWS_PROFILE")
            .output();
        match out {
            Ok(out) => {
                let code = out.status.code().unwrap_or(-1);
                println!("  tapguard verify: exit {code}");
                for line in String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                {
                    println!("    {line}");
                }
                usize::from(code != expected)
            }
            Err(e) => {
                println!("  tapguard verify could not run: {e}");
                1
            }
        }
    };
    unexpected += verify(1);

    // What the daily EventBridge rule does: the verify event to each function, which repairs. The
    // recorder first: a standard's controls are evaluated from what Config records.
    for function in ["config-setup", "securityhub-standards", "ebs-default-encryption"] {
        unexpected += scheduled_pass(emulator, &account, region, function);
    }
    unexpected += verify(0);
    let _ = std::fs::remove_file(&audit);
    unexpected
}

/// The standard the demo disables behind the stack's back (one of TapStack.yml's StandardIds).
const DRIFT_STANDARD: &str = "aws-foundational-security-best-practices/v/1.0.0";

/// One scheduled verify pass of `function`, as its EventBridge rule starts it; 1 when it repaired nothing.
fn scheduled_pass(emulator: &Emulator, account: &Account, region: &str, function: &str) -> usize {
    let host = LambdaHost::start(&binary_path(function), &emulator.sdk_env(account, region));
    match host.invoke(&json!({"tapguard": "verify"}), Duration::from_secs(120)) {
        InvokeResult::Response(summary) => {
            println!(
                "  scheduled verify pass of {function}: {} drifted, {} repaired",
                summary["drifted"], summary["repaired"]
            );
            for report in summary["reports"].as_array().into_iter().flatten() {
                for note in report["repairs"].as_array().into_iter().flatten() {
                    println!(
                        "    {}: {}",
                        report["logical_id"].as_str().unwrap_or_default(),
                        note["detail"].as_str().unwrap_or_default()
                    );
                }
            }
            usize::from(summary["repaired"].as_u64().unwrap_or_default() == 0)
        }
        other => {
            println!("  the scheduled verify pass of {function} did not answer: {other:?}");
            1
        }
    }
}

/// The name of the region's customer managed Config recorder (the one TapStack's ConfigSetup claims).
fn config_recorder_name(emulator: &Emulator, account: &Account, region: &str) -> String {
    let described = emulator.json_call(
        account,
        region,
        "config",
        "StarlingDoveService.DescribeConfigurationRecorders",
        json!({}),
    );
    described["ConfigurationRecorders"][0]["name"]
        .as_str()
        .unwrap_or("default")
        .to_string()
}

fn config_recorder(emulator: &Emulator, account: &Account, region: &str, name: &str, action: &str) {
    emulator.json_call(
        account,
        region,
        "config",
        &format!("StarlingDoveService.{action}"),
        json!({"ConfigurationRecorderName": name}),
    );
}
