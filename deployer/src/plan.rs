//! `tapguard plan`: the first steps of `deploy` in every target, and nothing else: what each target
//! already has, the `Existing...` parameters set from it, and the change set's summary. The change
//! set is deleted again, and for a stack that did not exist the stack CloudFormation made to hold
//! it (REVIEW_IN_PROGRESS) too: `plan` leaves every target as it found it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::deploy::{change_set, prepare, DeployArgs, DeployPlan};
use crate::stack_watch::{describe_stack, stack_status};
use crate::survey::Action;
use crate::targets::{run_with_finish, Ctx, Finished, Outcome, OutputFormat, TargetArgs};

#[derive(Debug, clap::Args, Clone)]
pub struct PlanArgs {
    #[arg(long, default_value = "TapStack")]
    pub stack_name: String,
    #[arg(long, default_value = "TapStack.yml")]
    pub template: PathBuf,
    /// A stack parameter, `Key=Value` (repeatable); it wins over what the plan reads.
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// A JSON file of parameters, as for deploy.
    #[arg(long)]
    pub parameters_file: Option<PathBuf>,
    /// Capabilities for the change set (default: what the template needs).
    #[arg(long, value_delimiter = ',')]
    pub capabilities: Vec<String>,
    /// As for deploy: a template over 51,200 bytes is uploaded to `<prefix>-<account>-<region>`.
    #[arg(long)]
    pub artifact_bucket_prefix: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
}

impl PlanArgs {
    fn deploy_args(&self) -> DeployArgs {
        DeployArgs {
            stack_name: self.stack_name.clone(),
            template: self.template.clone(),
            parameters: self.parameters.clone(),
            parameters_file: self.parameters_file.clone(),
            tags: Vec::new(),
            capabilities: self.capabilities.clone(),
            yes: false,
            no_execute: true,
            disable_rollback: false,
            role_arn: None,
            notification_arns: Vec::new(),
            artifact_bucket_prefix: self.artifact_bucket_prefix.clone(),
            functions: crate::deploy::FunctionsArgs::default(),
            targets: self.targets.clone(),
            stack_set: false,
            ous: Vec::new(),
            failure_tolerance: 0,
            call_as: None,
            max_concurrent: 1,
            failure_tolerance_percentage: None,
            max_concurrent_percentage: None,
            region_concurrency: None,
            concurrency_mode: None,
            remove_unlisted: false,
        }
    }
}

pub fn plan(args: PlanArgs) -> ExitCode {
    let deploy_args = args.deploy_args();
    let plan = match prepare(&deploy_args) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("tapguard plan: {e}");
            return ExitCode::from(2);
        }
    };
    run_with_finish(
        "plan",
        plan.run.clone(),
        &args.targets,
        move |ctx| {
            let plan = plan.clone();
            async move { plan_target(&ctx, &plan).await }
        },
        finish,
    )
}

async fn plan_target(ctx: &Ctx, plan: &DeployPlan) -> Outcome {
    let prepared = match change_set(ctx, plan).await {
        Ok(p) => p,
        // No changes, or a failure (then a change set that failed was already deleted; the stack
        // CloudFormation made for a new one is removed below).
        Err(outcome) => {
            cleanup_review_stack(ctx, plan).await;
            return outcome;
        }
    };
    let adds = count(&prepared.changes, "Add");
    let modifies = count(&prepared.changes, "Modify");
    let removes = count(&prepared.changes, "Remove");
    let summary = format!(
        "{} change set: {adds} to add, {modifies} to modify, {removes} to remove",
        prepared.change_set_type.as_str()
    );
    let detail = prepared.detail(plan, false, &prepared.status_before());
    let deleted = ctx
        .call(
            "DeleteChangeSet",
            prepared
                .cfn
                .delete_change_set()
                .change_set_name(&prepared.change_set_id)
                .stack_name(&prepared.stack_id)
                .send(),
        )
        .await;
    if let Err(e) = deleted {
        return Outcome::bad(format!(
            "{summary}; the change set {} could not be deleted: {e}",
            prepared.change_set_name
        ))
        .with(detail);
    }
    if prepared.existing.is_none() {
        cleanup_review_stack(ctx, plan).await;
    }
    ctx.say(format!("{summary} (change set deleted: plan changes nothing)"));
    Outcome::good(summary).with(detail)
}

/// Removes the REVIEW_IN_PROGRESS stack a creation change set made (it holds no resources).
async fn cleanup_review_stack(ctx: &Ctx, plan: &DeployPlan) {
    let cfn = aws_sdk_cloudformation::Client::new(&ctx.config);
    let name = &plan.stack_name;
    if let Ok(Some(stack)) = describe_stack(ctx, &cfn, name).await {
        if stack_status(&stack) == "REVIEW_IN_PROGRESS" {
            let id = stack.stack_id().unwrap_or(name).to_string();
            if ctx
                .call("DeleteStack", cfn.delete_stack().stack_name(&id).send())
                .await
                .is_ok()
            {
                ctx.record("review_stack_deleted", json!({"stack_id": id}));
            }
        }
    }
}

fn count(changes: &[Value], action: &str) -> usize {
    changes.iter().filter(|c| c["action"] == action).count()
}

/// The things of a target's plan with `action`, from its JSON detail.
fn things(detail: &Value, action: Action) -> String {
    detail["plan"]["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["action"] == action.as_str())
                .filter_map(|i| i["thing"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// One table: per target, what is created, adopted, changed, left alone, the parameters read from
/// it, and the change set's summary. `--output json` prints the usual document instead.
fn finish(done: Finished) -> ExitCode {
    if done.output == OutputFormat::Json {
        return crate::targets::finish_outcomes(done);
    }
    let all_good = !done.interrupted && done.rows.iter().all(|(_, _, o)| o.good);
    done.audit.record(
        "-",
        "run_finished",
        json!({"all_good": all_good, "interrupted": done.interrupted}),
    );
    let mut table = crate::progress::table();
    table.set_header([
        "target",
        "create",
        "adopt",
        "change",
        "leave alone",
        "unknown",
        "parameters read",
        "change set",
    ]);
    for (target, _, outcome) in &done.rows {
        let detail = &outcome.detail;
        let detected = detail["plan"]["detected"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter_map(|p| Some(format!("{}={}", p["key"].as_str()?, p["value"].as_str()?)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let summary = if outcome.good {
            outcome.text.clone()
        } else {
            format!("FAILED: {}", outcome.text)
        };
        let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
        table.add_row([
            target.to_string(),
            dash(things(detail, Action::Create)),
            dash(things(detail, Action::Adopt)),
            dash(things(detail, Action::Change)),
            dash(things(detail, Action::Leave)),
            dash(things(detail, Action::Unknown)),
            dash(detected),
            summary,
        ]);
    }
    println!();
    println!("{table}");
    if done.interrupted {
        ExitCode::from(130)
    } else if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
