//! `tapguard delete`: asks, deletes the stack in every target and streams the deletions.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;

use aws_sdk_cloudformation::Client as CloudFormation;

use crate::api::explain_entry_error;
use crate::prompt::confirm;
use crate::stack_watch::{describe_stack, explain_status, fail, root_cause, stack_events, stack_status, watch};
use crate::targets::{run_id, run_on_targets, Outcome, TargetArgs};

#[derive(Debug, clap::Args, Clone)]
pub struct DeleteArgs {
    #[arg(long, default_value = "TapStack")]
    pub stack_name: String,
    /// Delete without asking.
    #[arg(long)]
    pub yes: bool,
    /// The StackSet named --stack-name instead (from its administrator account): its instances
    /// (DeleteStackInstances, stacks not retained), then the StackSet.
    #[arg(long)]
    pub stack_set: bool,
    /// StackSet mode: SELF or DELEGATED_ADMIN (default: detected, as for deploy).
    #[arg(long, value_parser = ["SELF", "DELEGATED_ADMIN"])]
    pub call_as: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
}

pub fn delete(args: DeleteArgs) -> ExitCode {
    let args = Arc::new(args);
    let targets = args.targets.clone();
    run_on_targets("delete", run_id(), &targets, move |ctx| {
        let args = args.clone();
        async move {
            let cfn = CloudFormation::new(&ctx.config);
            let name = &args.stack_name;
            let stack = match describe_stack(&ctx, &cfn, name).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    ctx.say(format!("stack {name} does not exist: nothing to delete"));
                    return Outcome::good("absent");
                }
                Err(e) => return fail(&ctx, explain_entry_error(&e, None)),
            };
            let stack_id = stack.stack_id().unwrap_or(name).to_string();
            let status = stack_status(&stack);
            if status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS" {
                return fail(
                    &ctx,
                    format!("stack {name} is in {status}: wait for that operation to finish"),
                );
            }
            if !args.yes && !confirm(&ctx, &format!("delete stack {name} ({status})?")).await {
                return Outcome::bad("not deleted");
            }
            let mut seen: HashSet<String> = match stack_events(&ctx, &cfn, &stack_id, &HashSet::new()).await {
                Ok(events) => events.iter().filter_map(|e| e.event_id().map(str::to_string)).collect(),
                Err(e) => return fail(&ctx, e.to_string()),
            };
            if let Err(e) = ctx
                .call("DeleteStack", cfn.delete_stack().stack_name(&stack_id).send())
                .await
            {
                return fail(&ctx, e.to_string());
            }
            ctx.say(format!("deleting stack {name}"));
            match watch(&ctx, &cfn, &stack_id, &mut seen).await {
                Ok((status, _)) if status == "DELETE_COMPLETE" => {
                    ctx.say(format!("stack {name}: DELETE_COMPLETE"));
                    Outcome::good(status)
                }
                Ok((status, events)) => {
                    let mut text = format!("stack {name}: {status}");
                    if let Some(cause) = root_cause(&events) {
                        text.push_str(&format!("; root cause: {cause}"));
                    }
                    if let Some(why) = explain_status(&status) {
                        text.push_str(&format!(" ({why})"));
                    }
                    fail(&ctx, text)
                }
                Err(e) => fail(&ctx, e.to_string()),
            }
        }
    })
}
