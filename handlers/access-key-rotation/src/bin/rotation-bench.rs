//! `make bench`: an Audit pass over 5,000 users and 10,000 keys in the local emulator, the credential
//! report scan next to a straightforward per-user scan (ListUsers, then ListAccessKeys for every user),
//! in the same process and emulator. Prints wall time, peak memory and IAM calls of each, and fails
//! unless the report scan finds the same keys with at least 10 times fewer IAM calls.
//!
//! Then a Rotate pass over `--rotate N` users (default 5,000) whose key is over age, as scheduled runs
//! each limited to `--budget-secs` (default 60, the stand-in for the Lambda timeout), resuming where the
//! last stopped, until a run reaches the last user (the pass is complete); fails when a run makes no
//! progress, or unless every user was handed over exactly once and a sample of them holds two active keys
//! with the new one in its secret. Prints each run, the total wall time, peak memory and IAM calls.
//!
//! `rotation-bench [--users 5000] [--stale-percent 2] [--rotate 5000] [--budget-secs 60] [--throttle N]
//! [--out FILE]` (`--throttle N`: the first N CreateAccessKey and ListAccessKeys calls of each run are
//! answered Throttling; `--out`: the tables as Markdown); `TAPGUARD_EMULATOR_URL` uses a running emulator.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use access_key_rotation::{AccessKeyRotation, Mode, Properties};
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use tapguard_harness::{Account, Emulator};
use tapguard_shared::Invocation;

const REGION: &str = "us-east-1";
const MIN_RATIO: f64 = 10.0;

struct Measured {
    name: &'static str,
    wall_secs: f64,
    peak_rss_mib: Option<f64>,
    iam_calls: usize,
    keys_over_age: usize,
}

fn main() {
    let (users, stale_percent, rotate_users, budget_secs, out) = arguments();
    let throttle = arguments_throttle();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let emulator = Emulator::from_env_or_start(&root).unwrap_or_else(|e| panic!("{e}"));
    let account = emulator.fresh_account();
    let stale = users * stale_percent / 100;
    let fresh = users - stale;

    let started = Instant::now();
    // Every user holds 2 keys; the stale ones have one key past 90 days.
    for (prefix, count, keys) in [
        ("fresh-", fresh, json!([{"age_days": 10}, {"age_days": 40}])),
        ("stale-", stale, json!([{"age_days": 120}, {"age_days": 20}])),
    ] {
        emulator.control(
            "/tapguard/iam/bulk-users",
            json!({"account": account.account_id, "prefix": prefix, "count": count, "keys": keys}),
        );
    }
    println!(
        "set up {users} users, {} keys ({stale} users with a key over 90 days) in {:.1} s",
        users * 2,
        started.elapsed().as_secs_f64()
    );
    // Endpoint and credentials reach the SDK through the environment, before any thread starts.
    for (k, v) in emulator.sdk_env(&account, REGION) {
        std::env::set_var(k, v);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = runtime.block_on(tapguard_shared::aws_config());

    let report_scan = measure(&emulator, &account, "credential report", || {
        runtime.block_on(async {
            let handler = AccessKeyRotation::new(&config);
            let props = Properties {
                mode: Mode::Audit,
                ..Default::default()
            };
            let summary = handler
                .run_pass(&Invocation::detached(REGION, &account.account_id), &props, None)
                .await
                .unwrap_or_else(|e| panic!("the Audit pass failed: {e}"));
            assert_eq!(summary.users_scanned, users, "the report covers every user");
            summary.keys_over_age
        })
    });
    let per_user_scan = measure(&emulator, &account, "per-user ListAccessKeys", || {
        runtime.block_on(per_user_scan(&config))
    });

    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let mut report = format!(
        "# rotation-bench\n\n{} build, {} (load average {} at the start)\n\n## Audit: {users} users, {} keys, \
         {stale} users with a key over 90 days\n\n| scan | wall (s) | peak RSS (MiB) | IAM calls | keys over age |\n\
         | --- | --- | --- | --- | --- |\n",
        profile,
        utc_now(),
        load_average(),
        users * 2
    );
    println!();
    println!(
        "{:<26} {:>10} {:>16} {:>10} {:>14}",
        "scan", "wall (s)", "peak RSS (MiB)", "IAM calls", "keys over age"
    );
    for m in [&report_scan, &per_user_scan] {
        let rss = m.peak_rss_mib.map_or("n/a".into(), |v| format!("{v:.1}"));
        println!(
            "{:<26} {:>10.2} {:>16} {:>10} {:>14}",
            m.name, m.wall_secs, rss, m.iam_calls, m.keys_over_age
        );
        report += &format!(
            "| {} | {:.2} | {rss} | {} | {} |\n",
            m.name, m.wall_secs, m.iam_calls, m.keys_over_age
        );
    }
    let ratio = per_user_scan.iam_calls as f64 / report_scan.iam_calls.max(1) as f64;
    println!();
    let comparison = format!(
        "the credential report scan made {ratio:.1}x fewer IAM calls (required: >= {MIN_RATIO}x); \
         wall time {:.1}x; build profile: {profile}",
        per_user_scan.wall_secs / report_scan.wall_secs.max(f64::EPSILON),
    );
    println!("{comparison}");
    report += &format!("\n{comparison}\n");
    let mut failed = false;
    if report_scan.keys_over_age != per_user_scan.keys_over_age {
        eprintln!(
            "FAILED: the scans disagree: {} vs {} keys over age",
            report_scan.keys_over_age, per_user_scan.keys_over_age
        );
        failed = true;
    }
    if ratio < MIN_RATIO {
        eprintln!("FAILED: the call ratio {ratio:.1} is below {MIN_RATIO}");
        failed = true;
    }
    if rotate_users > 0 && !rotate_across_runs(&emulator, rotate_users, budget_secs, throttle, &mut report) {
        failed = true;
    }
    if let Some(out) = out {
        if let Some(dir) = Path::new(&out).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(&out, &report) {
            Ok(()) => println!("\nwritten to {out}"),
            Err(e) => {
                eprintln!("FAILED: writing {out}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// A Rotate pass over `count` users with a key over age, as runs of at most `budget_secs` each.
/// With `throttle` > 0, the first `throttle` CreateAccessKey and ListAccessKeys calls of every run are
/// answered `Throttling` ("Rate exceeded"), as IAM answers a caller over its rate.
fn rotate_across_runs(
    emulator: &Emulator,
    count: usize,
    budget_secs: u64,
    throttle: usize,
    report: &mut String,
) -> bool {
    let account = emulator.fresh_account();
    emulator.control(
        "/tapguard/iam/bulk-users",
        json!({"account": account.account_id, "prefix": "rot-", "count": count, "keys": [{"age_days": 120}]}),
    );
    for (k, v) in emulator.sdk_env(&account, REGION) {
        std::env::set_var(k, v);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let config = runtime.block_on(tapguard_shared::aws_config());
    let topic = emulator.query(
        &account,
        REGION,
        "sns",
        &[("Action", "CreateTopic"), ("Name", "key-rotation")],
    );
    let topic = tapguard_harness::xml_value(&topic, "TopicArn")
        .expect("a topic")
        .to_string();
    let tuning = access_key_rotation::Tuning {
        run_budget: Some(std::time::Duration::from_secs(budget_secs)),
        ..Default::default()
    };
    let handler = AccessKeyRotation::from_clients(
        aws_sdk_iam::Client::new(&config),
        aws_sdk_secretsmanager::Client::new(&config),
        aws_sdk_sns::Client::new(&config),
        aws_sdk_sts::Client::new(&config),
        tapguard_shared::Ledger::new(&config, access_key_rotation::HANDLER),
        tuning,
    )
    .with_role_arn(format!("arn:aws:iam::{}:role/rotation", account.account_id));
    let props = Properties {
        mode: Mode::Rotate,
        notify_topic_arn: Some(topic),
        ..Default::default()
    };
    println!();
    println!("Rotate: {count} users with a key over age, runs of at most {budget_secs} s (new users started)");
    println!(
        "{:>4} {:>10} {:>12} {:>10} {:>10}",
        "run", "wall (s)", "handed over", "deferred", "IAM calls"
    );
    let inv = Invocation::detached(REGION, &account.account_id);
    let (mut resume, mut handed_over, mut runs) = (None::<String>, 0, 0);
    let (mut longest_run, mut throttled) = (0f64, 0u64);
    let mut ok = true;
    *report += &format!(
        "\n## Rotate: {count} users with a key over age, scheduled runs of at most {budget_secs} s\n\n\
         | run | wall (s) | handed over | deferred | IAM calls |\n| --- | --- | --- | --- | --- |\n"
    );
    let iam_before = emulator.calls(&account.account_id, Some("iam")).len();
    // VmHWM reset: the peak below is the Rotate runs' own.
    let rss_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    loop {
        runs += 1;
        let calls_before = emulator.calls(&account.account_id, Some("iam")).len();
        for operation in ["CreateAccessKey", "ListAccessKeys"] {
            if throttle > 0 {
                emulator.add_fault(json!({
                    "account": account.account_id, "service": "iam", "operation": operation,
                    "code": "Throttling", "message": "Rate exceeded", "status": 400, "count": throttle,
                }));
            }
        }
        let run_started = Instant::now();
        let summary = runtime
            .block_on(handler.run_pass(&inv, &props, resume.as_deref()))
            .unwrap_or_else(|e| panic!("run {runs} failed: {e}"));
        let wall = run_started.elapsed().as_secs_f64();
        longest_run = longest_run.max(wall);
        throttled += summary.throttled_retries;
        handed_over += summary.keys_rotated;
        let calls = emulator.calls(&account.account_id, Some("iam")).len() - calls_before;
        println!(
            "{runs:>4} {wall:>10.1} {:>12} {:>10} {calls:>10}",
            summary.keys_rotated, summary.users_deferred,
        );
        *report += &format!(
            "| {runs} | {wall:.1} | {} | {} | {calls} |\n",
            summary.keys_rotated, summary.users_deferred
        );
        if summary.users_failed() > 0 {
            eprintln!("FAILED: run {runs}: {:?}", summary.failures.first());
            return false;
        }
        // Nothing deferred: the run reached the last user, the pass is complete.
        if summary.users_deferred == 0 {
            break;
        }
        if summary.resume_after == resume || runs >= 1000 {
            eprintln!(
                "FAILED: run {runs} made no progress (resume point {:?}, {} users deferred)",
                summary.resume_after, summary.users_deferred
            );
            ok = false;
            break;
        }
        resume = summary.resume_after.clone();
        println!("     resuming after {}", resume.as_deref().unwrap_or("-"));
    }
    let total = started.elapsed().as_secs_f64();
    let peak = peak_rss_kib()
        .filter(|_| rss_reset)
        .map_or("n/a".into(), |kib| format!("{:.1}", kib as f64 / 1024.0));
    let iam_log = emulator.calls(&account.account_id, Some("iam"));
    let iam_calls = iam_log.len() - iam_before;
    let throttled_answers = iam_log[iam_before..]
        .iter()
        .filter(|c| c["injected"] == "Throttling")
        .count();
    let line = format!(
        "{handed_over} of {count} users handed over in {runs} runs (the longest {longest_run:.1} s), {total:.1} s in \
         all; peak RSS {peak} MiB; {iam_calls} IAM calls, {throttled_answers} of them answered Throttling; \
         {throttled} retries by the handler on top of the SDK's"
    );
    println!("{line}");
    *report += &format!(
        "\n| Rotate | wall (s) | runs | longest run (s) | peak RSS (MiB) | IAM calls | throttled retries |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n| {count} users | {total:.1} | {runs} | {longest_run:.1} | {peak} | \
         {iam_calls} | {throttled} |\n\n{line}\n"
    );
    ok &= handed_over == count;
    for n in (0..count).step_by((count / 20).max(1)) {
        let user = format!("rot-{n}");
        let keys = emulator.query(
            &account,
            REGION,
            "iam",
            &[("Action", "ListAccessKeys"), ("UserName", &user)],
        );
        let active = keys.matches("<Status>Active</Status>").count();
        let stored = emulator.json_call(
            &account,
            REGION,
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            json!({"SecretId": format!("tap/access-keys/{user}")}),
        );
        let new_id = stored["SecretString"]
            .as_str()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v["AccessKeyId"].as_str().map(str::to_string));
        if active != 2 || !new_id.is_some_and(|id| keys.contains(&id)) {
            eprintln!("FAILED: {user}: {active} active keys, secret {stored}");
            ok = false;
        }
    }
    if !ok {
        eprintln!("FAILED: not every user was handed over exactly once");
    }
    ok
}

/// Runs `scan`, with the process's peak memory reset before, and counts the IAM calls it caused.
fn measure(emulator: &Emulator, account: &Account, name: &'static str, scan: impl FnOnce() -> usize) -> Measured {
    let calls_before = emulator.calls(&account.account_id, Some("iam")).len();
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS, so each scan's peak is its own.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    let keys_over_age = scan();
    let wall_secs = started.elapsed().as_secs_f64();
    let peak_rss_mib = peak_rss_kib().filter(|_| reset).map(|kib| kib as f64 / 1024.0);
    let iam_calls = emulator.calls(&account.account_id, Some("iam")).len() - calls_before;
    Measured {
        name,
        wall_secs,
        peak_rss_mib,
        iam_calls,
        keys_over_age,
    }
}

/// ListUsers pages, ListAccessKeys for every user, and ListUserTags for users with a key over age
/// (the exemption check the pass makes too), with the same concurrency as the pass.
async fn per_user_scan(config: &aws_config::SdkConfig) -> usize {
    let iam = aws_sdk_iam::Client::new(config);
    let mut users = Vec::new();
    let mut pages = iam.list_users().max_items(1000).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("ListUsers: {e:?}"));
        users.extend(page.users().iter().map(|u| u.user_name().to_string()));
    }
    let cutoff = now() - 90 * 86_400;
    let over_age: Vec<usize> = stream::iter(users)
        .map(|user| {
            let iam = iam.clone();
            async move {
                let keys = iam
                    .list_access_keys()
                    .user_name(&user)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("ListAccessKeys {user}: {e:?}"));
                let old = keys
                    .access_key_metadata()
                    .iter()
                    .filter(|k| k.create_date().is_some_and(|d| d.secs() < cutoff))
                    .count();
                if old > 0 {
                    iam.list_user_tags()
                        .user_name(&user)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("ListUserTags {user}: {e:?}"));
                }
                old
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    over_age.into_iter().sum()
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "n/a".into())
}

fn utc_now() -> String {
    aws_smithy_types::DateTime::from_secs(now())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default()
}

fn arguments_throttle() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--throttle")
        .and_then(|i| args.get(i + 1))
        .map_or(0, |v| v.parse().unwrap_or_else(|_| panic!("--throttle takes a number")))
}

fn arguments() -> (usize, usize, usize, u64, Option<String>) {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
            .unwrap_or(default)
    };
    let known = BTreeSet::from([
        "--users",
        "--stale-percent",
        "--rotate",
        "--budget-secs",
        "--out",
        "--throttle",
    ]);
    if let Some(unknown) = args.iter().skip(1).step_by(2).find(|a| !known.contains(a.as_str())) {
        eprintln!(
            "unknown argument {unknown}: rotation-bench [--users 5000] [--stale-percent 2] [--rotate 5000] \
             [--budget-secs 60] [--throttle N] [--out FILE]"
        );
        std::process::exit(2);
    }
    (
        value("--users", 5000),
        value("--stale-percent", 2),
        value("--rotate", 5000),
        value("--budget-secs", 60) as u64,
        args.iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .cloned(),
    )
}
