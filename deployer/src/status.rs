//! `tapguard status`: the stack's status, what it means, its outputs and (with --drift) its drift.

use std::process::ExitCode;
use std::sync::Arc;

use aws_sdk_cloudformation::Client as CloudFormation;
use serde_json::json;

use crate::api::{explain_entry_error, ApiError};
use crate::stack_watch::{describe_stack, explain_status, fail, is_good_status, stack_status};
use crate::targets::{run_id, run_on_targets, Ctx, Outcome, TargetArgs};

#[derive(Debug, clap::Args, Clone)]
pub struct StatusArgs {
    #[arg(long, default_value = "TapStack")]
    pub stack_name: String,
    /// Also detect drift (DetectStackDrift) and report it.
    #[arg(long, conflicts_with = "stack_set")]
    pub drift: bool,
    /// The StackSet named --stack-name instead (from its administrator account): its status and
    /// every instance's (in --regions, if given).
    #[arg(long)]
    pub stack_set: bool,
    /// StackSet mode: SELF or DELEGATED_ADMIN (default: detected, as for deploy).
    #[arg(long, value_parser = ["SELF", "DELEGATED_ADMIN"])]
    pub call_as: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
}

pub fn status(args: StatusArgs) -> ExitCode {
    let args = Arc::new(args);
    let targets = args.targets.clone();
    run_on_targets("status", run_id(), &targets, move |ctx| {
        let args = args.clone();
        async move {
            let cfn = CloudFormation::new(&ctx.config);
            let stack = match describe_stack(&ctx, &cfn, &args.stack_name).await {
                Ok(Some(s)) => s,
                Ok(None) => return fail(&ctx, format!("stack {} does not exist", args.stack_name)),
                Err(e) => return fail(&ctx, explain_entry_error(&e, None)),
            };
            let status = stack_status(&stack);
            ctx.say(format!(
                "stack {}: {status}{}",
                args.stack_name,
                stack
                    .stack_status_reason()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
            if let Some(why) = explain_status(&status) {
                ctx.say(format!("  {why}"));
            }
            for output in stack.outputs() {
                ctx.say(format!(
                    "  output {} = {}",
                    output.output_key().unwrap_or(""),
                    output.output_value().unwrap_or("")
                ));
            }
            let mut text = status.clone();
            if args.drift {
                match drift(&ctx, &cfn, &args.stack_name).await {
                    Ok(d) => {
                        ctx.say(format!("  drift: {d}"));
                        text.push_str(&format!(", drift {d}"));
                    }
                    Err(e) => {
                        ctx.say(format!("  drift: not known: {e}"));
                        text.push_str(", drift unknown");
                    }
                }
            }
            ctx.record("stack_status", json!({"status": status, "outputs": stack.outputs().iter().map(|o| json!({"key": o.output_key(), "value": o.output_value()})).collect::<Vec<_>>()}));
            // A rolled-back update leaves a working stack on its previous template.
            if is_good_status(&status) || status == "UPDATE_ROLLBACK_COMPLETE" {
                Outcome::good(text)
            } else {
                Outcome::bad(text)
            }
        }
    })
}

async fn drift(ctx: &Ctx, cfn: &CloudFormation, name: &str) -> Result<String, ApiError> {
    let started = ctx
        .call("DetectStackDrift", cfn.detect_stack_drift().stack_name(name).send())
        .await?;
    let id = started.stack_drift_detection_id().unwrap_or_default().to_string();
    loop {
        let out = ctx
            .call_retrying("DescribeStackDriftDetectionStatus", || {
                cfn.describe_stack_drift_detection_status()
                    .stack_drift_detection_id(&id)
                    .send()
            })
            .await?;
        let detection = out
            .detection_status()
            .map(|s| s.as_str())
            .unwrap_or("DETECTION_IN_PROGRESS");
        if detection != "DETECTION_IN_PROGRESS" {
            return Ok(out
                .stack_drift_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|| detection.to_string()));
        }
        tokio::time::sleep(ctx.poll).await;
    }
}
