//! `tapguard verify`: in every target, what the tapguard resources claim in their ownership ledgers is
//! re-read with the handlers' own verify pass (no template, no stack name, no Lambda), with the
//! deployer's credentials; the outcome is a matrix of target x control -> held / drifted / unknown.
//!
//! Exit status: 0 every control held; 1 at least one drifted; 3 nothing drifted but something could
//! not be read (a target denied or unreachable, a ledger or setting that cannot be read); 2 the run
//! could not start; 130 interrupted.

use std::process::ExitCode;

use serde_json::{json, Value};
use tapguard_shared::ledger::stack_name;
use tapguard_shared::verify::{ResourceReport, Verdict};
use tapguard_shared::Invocation;

use crate::targets::{run_id, run_with_finish, Ctx, Finished, Outcome, OutputFormat, TargetArgs};
use crate::verifiers::{handlers, Scope};

pub const EXIT_DRIFTED: u8 = 1;
pub const EXIT_UNKNOWN: u8 = 3;

#[derive(Debug, clap::Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
}

pub fn verify(args: VerifyArgs) -> ExitCode {
    run_with_finish(
        "verify",
        run_id(),
        &args.targets,
        |ctx| async move { verify_target(&ctx).await },
        finish,
    )
}

/// One row of the matrix.
fn row(ctx: &Ctx, account: &str, scope: Scope, handler: &str, report: Option<&ResourceReport>) -> Value {
    let target = match scope {
        Scope::Regional => format!("{account}/{}", ctx.target.region),
        Scope::Global => format!("{account}/global"),
    };
    json!({
        "target": target,
        "account": account,
        "region": report.map_or(ctx.target.region.as_str(), |r| r.region.as_str()),
        "scope": if scope == Scope::Global { "global" } else { "regional" },
        "handler": handler,
        "stack": report.map(|r| stack_name(&r.stack_id).to_string()),
        "stack_id": report.map(|r| r.stack_id.clone()),
        "logical_id": report.map(|r| r.logical_id.clone()),
    })
}

async fn verify_target(ctx: &Ctx) -> Outcome {
    let account = match &ctx.target.account {
        Some(a) => a.clone(),
        None => match caller_account(ctx).await {
            Ok(a) => a,
            Err(reason) => {
                ctx.say(format!("unknown: {reason}"));
                return Outcome::bad(reason);
            }
        },
    };
    // Account-wide settings are verified in the account's first target of the run only.
    let first_of_account = ctx
        .all_targets
        .iter()
        .find(|t| t.account == ctx.target.account)
        .is_none_or(|t| t.region == ctx.target.region);
    let inv = Invocation::detached(&ctx.target.region, &account);
    let mut rows = Vec::new();
    for handler in handlers() {
        if handler.scope == Scope::Global && !first_of_account {
            continue;
        }
        match (handler.pass)(&ctx.config, &inv).await {
            Ok(reports) => {
                for report in &reports {
                    for check in &report.checks {
                        let mut r = row(ctx, &account, handler.scope, handler.name, Some(report));
                        r["control"] = json!(check.control);
                        r["verdict"] = json!(check.verdict.as_str());
                        r["expected"] = json!(check.expected);
                        r["observed"] = json!(check.observed);
                        rows.push(r);
                    }
                }
            }
            Err(err) => {
                let mut r = row(ctx, &account, handler.scope, handler.name, None);
                r["control"] = json!(format!("{} (its ledger)", handler.name));
                r["verdict"] = json!(Verdict::Unknown.as_str());
                r["expected"] = json!("the ownership ledger readable");
                r["observed"] = json!(err.to_string());
                rows.push(r);
            }
        }
    }
    for r in &rows {
        ctx.say(format!(
            "{} {}: {} (expected {}, observed {})",
            r["logical_id"].as_str().unwrap_or("-"),
            r["control"].as_str().unwrap_or_default(),
            r["verdict"].as_str().unwrap_or_default(),
            r["expected"].as_str().unwrap_or_default(),
            r["observed"].as_str().unwrap_or_default()
        ));
        ctx.record("control_check", r.clone());
    }
    let count = |v: Verdict| rows.iter().filter(|r| r["verdict"] == v.as_str()).count();
    let (held, drifted, unknown) = (count(Verdict::Held), count(Verdict::Drifted), count(Verdict::Unknown));
    let text = if rows.is_empty() {
        "no tapguard resource claims anything here".to_string()
    } else {
        format!("{held} held, {drifted} drifted, {unknown} unknown")
    };
    let outcome = if drifted + unknown == 0 {
        Outcome::good(text)
    } else {
        Outcome::bad(text)
    };
    outcome.with(json!({ "account": account, "rows": rows }))
}

/// The account of the current credentials (a target given without one).
async fn caller_account(ctx: &Ctx) -> Result<String, String> {
    let sts = aws_sdk_sts::Client::new(&ctx.config);
    let out = ctx
        .call("GetCallerIdentity", sts.get_caller_identity().send())
        .await
        .map_err(|e| format!("the account cannot be known: {e}"))?;
    out.account()
        .map(str::to_string)
        .ok_or_else(|| "GetCallerIdentity answered no account".to_string())
}

/// The matrix (or JSON), the audit log's summary and the exit status.
fn finish(done: Finished) -> ExitCode {
    let mut rows: Vec<Value> = Vec::new();
    let mut targets = Vec::new();
    for (target, ended, outcome) in &done.rows {
        let checked = outcome.detail.get("rows").and_then(Value::as_array);
        match checked {
            Some(checked) if *ended => {
                rows.extend(checked.iter().cloned());
                targets.push(json!({
                    "target": target.to_string(), "account": outcome.detail["account"], "region": target.region,
                    "reachable": true, "outcome": outcome.text,
                }));
            }
            // Not entered (AssumeRole denied, the account unknown) or interrupted: every control of
            // the target is unknown, with the reason.
            _ => {
                rows.push(json!({
                    "target": target.to_string(), "account": target.account, "region": target.region,
                    "scope": "target", "handler": null, "stack": null, "stack_id": null, "logical_id": null,
                    "control": "(every control of the target)", "verdict": Verdict::Unknown.as_str(),
                    "expected": "the target reachable", "observed": outcome.text,
                }));
                targets.push(json!({
                    "target": target.to_string(), "account": target.account, "region": target.region,
                    "reachable": false, "outcome": outcome.text,
                }));
            }
        }
    }
    let count = |v: Verdict| rows.iter().filter(|r| r["verdict"] == v.as_str()).count();
    let (held, drifted, unknown) = (count(Verdict::Held), count(Verdict::Drifted), count(Verdict::Unknown));
    let code: u8 = if done.interrupted {
        130
    } else if drifted > 0 {
        EXIT_DRIFTED
    } else if unknown > 0 {
        EXIT_UNKNOWN
    } else {
        0
    };
    let totals = json!({"held": held, "drifted": drifted, "unknown": unknown, "exit_code": code});
    done.audit.record("-", "verify_matrix", totals.clone());
    done.audit.record(
        "-",
        "run_finished",
        json!({"all_good": code == 0, "interrupted": done.interrupted}),
    );
    if done.output == OutputFormat::Json {
        let doc = json!({
            "command": done.command,
            "run_id": done.run,
            "audit_log": done.audit_path.display().to_string(),
            "interrupted": done.interrupted,
            "held": held,
            "drifted": drifted,
            "unknown": unknown,
            "exit_code": code,
            "targets": targets,
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!();
        println!("{}", matrix(&rows));
        println!("{held} held, {drifted} drifted, {unknown} unknown");
    }
    ExitCode::from(code)
}

/// One line per target x control: borders on a terminal, plain aligned columns otherwise.
fn matrix(rows: &[Value]) -> comfy_table::Table {
    let mut table = crate::progress::table();
    table.set_header([
        "target",
        "resource",
        "control",
        "verdict",
        "expected",
        "observed / reason",
    ]);
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    for r in rows {
        let resource = match (r["stack"].as_str(), r["logical_id"].as_str()) {
            (Some(stack), Some(id)) => format!("{stack}/{id}"),
            _ => "-".to_string(),
        };
        table.add_row([
            text(&r["target"]),
            resource,
            text(&r["control"]),
            text(&r["verdict"]),
            text(&r["expected"]),
            text(&r["observed"]),
        ]);
    }
    table
}
