//! Watching a stack: its status and what it means, its events streamed once each as they come,
//! the root cause of a failure, and the end of an operation reported with outputs or that cause.

use std::collections::HashSet;

use aws_sdk_cloudformation::types::{Stack, StackEvent};
use aws_sdk_cloudformation::Client as CloudFormation;
use aws_smithy_types::date_time::Format;
use serde_json::json;

use crate::api::ApiError;
use crate::targets::{Ctx, Outcome};

pub fn stack_status(stack: &Stack) -> String {
    stack.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default()
}

pub fn is_terminal_status(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS") && !status.is_empty()
}

pub fn is_good_status(status: &str) -> bool {
    matches!(status, "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE")
}

/// What a stack state means for the person deploying.
pub fn explain_status(status: &str) -> Option<&'static str> {
    Some(match status {
        "ROLLBACK_COMPLETE" => {
            "its creation failed and was rolled back: a stack in this state cannot be updated and must be deleted first (tapguard delete), then deployed again"
        }
        "ROLLBACK_FAILED" => {
            "its creation failed and the rollback failed too: delete it (resources that cannot be deleted may need --retain-resources with the AWS CLI)"
        }
        "UPDATE_ROLLBACK_FAILED" => {
            "an update failed and so did its rollback: fix what blocked it, then `aws cloudformation continue-update-rollback` (skipping resources that cannot roll back), or delete the stack"
        }
        "UPDATE_ROLLBACK_COMPLETE" => "the update failed and was rolled back: the stack runs the previous template",
        "DELETE_FAILED" => "some resources could not be deleted: fix the cause (see the events) and delete again",
        s if s.ends_with("_IN_PROGRESS") && s != "REVIEW_IN_PROGRESS" => {
            "another operation on this stack is in progress: wait for it to finish (tapguard status), then deploy again"
        }
        _ => return None,
    })
}

pub async fn describe_stack(ctx: &Ctx, cfn: &CloudFormation, name: &str) -> Result<Option<Stack>, ApiError> {
    match ctx
        .call("DescribeStacks", cfn.describe_stacks().stack_name(name).send())
        .await
    {
        Ok(out) => Ok(out.stacks().first().cloned()),
        Err(e) if e.code == "ValidationError" && e.message.contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The stack's recent events, oldest first. CloudFormation lists the newest first, so paging stops
/// at the first page holding an event already `seen` (a stack's history can run to thousands of
/// events, and this runs at every poll); with nothing seen yet, the first page is enough to know
/// where "new" starts.
pub async fn stack_events(
    ctx: &Ctx,
    cfn: &CloudFormation,
    stack_id: &str,
    seen: &HashSet<String>,
) -> Result<Vec<StackEvent>, ApiError> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ctx
            .call_retrying("DescribeStackEvents", || {
                cfn.describe_stack_events()
                    .stack_name(stack_id)
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
        events.extend(out.stack_events().iter().cloned());
        token = out.next_token().map(str::to_string);
        let reached_seen = seen.is_empty()
            || out
                .stack_events()
                .iter()
                .any(|e| e.event_id().is_some_and(|id| seen.contains(id)));
        if token.is_none() || reached_seen {
            break;
        }
    }
    events.reverse();
    Ok(events)
}

fn event_line(event: &StackEvent) -> String {
    let time = event
        .timestamp()
        .and_then(|t| {
            aws_smithy_types::DateTime::from_secs(t.secs())
                .fmt(Format::DateTime)
                .ok()
        })
        .unwrap_or_default();
    let status = event.resource_status().map(|s| s.as_str()).unwrap_or("");
    let reason = event.resource_status_reason().unwrap_or("");
    format!(
        "{time}  {:<28} {:<36} {:<28} {reason}",
        event.logical_resource_id().unwrap_or(""),
        event.resource_type().unwrap_or(""),
        status
    )
    .trim_end()
    .to_string()
}

fn record_event(ctx: &Ctx, event: &StackEvent) {
    ctx.record(
        "stack_event",
        json!({
            "event_id": event.event_id(),
            "timestamp": event.timestamp().and_then(|t| t.fmt(Format::DateTime).ok()),
            "logical_id": event.logical_resource_id(),
            "physical_id": event.physical_resource_id(),
            "type": event.resource_type(),
            "status": event.resource_status().map(|s| s.as_str()),
            "reason": event.resource_status_reason(),
        }),
    );
}

/// The first resource that failed among `events` (oldest first), skipping the resources CloudFormation
/// cancels because another one failed.
pub fn root_cause(events: &[StackEvent]) -> Option<String> {
    events
        .iter()
        .filter(|e| e.resource_type() != Some("AWS::CloudFormation::Stack"))
        .find(|e| {
            let status = e.resource_status().map(|s| s.as_str()).unwrap_or("");
            let reason = e.resource_status_reason().unwrap_or("");
            status.ends_with("_FAILED") && !reason.contains("cancelled")
        })
        .map(|e| {
            format!(
                "{} ({}) {}: {}",
                e.logical_resource_id().unwrap_or(""),
                e.resource_type().unwrap_or(""),
                e.resource_status().map(|s| s.as_str()).unwrap_or(""),
                e.resource_status_reason().unwrap_or("no reason given")
            )
        })
}

/// Streams new events until the stack settles; returns the final status and the new events.
pub async fn watch(
    ctx: &Ctx,
    cfn: &CloudFormation,
    stack_id: &str,
    seen: &mut HashSet<String>,
) -> Result<(String, Vec<StackEvent>), ApiError> {
    let mut fresh = Vec::new();
    loop {
        let status = match ctx
            .call_retrying("DescribeStacks", || cfn.describe_stacks().stack_name(stack_id).send())
            .await
        {
            Ok(out) => out.stacks().first().map(stack_status).unwrap_or_default(),
            // A deleted stack may vanish from DescribeStacks.
            Err(e) if e.code == "ValidationError" && e.message.contains("does not exist") => "DELETE_COMPLETE".into(),
            Err(e) => return Err(e),
        };
        ctx.set_status(&status);
        for event in stack_events(ctx, cfn, stack_id, seen).await? {
            let id = event.event_id().unwrap_or_default().to_string();
            if seen.insert(id) {
                ctx.say(event_line(&event));
                record_event(ctx, &event);
                fresh.push(event);
            }
        }
        if is_terminal_status(&status) {
            return Ok((status, fresh));
        }
        tokio::time::sleep(ctx.poll).await;
    }
}

/// Waits for the stack, then reports its end: outputs on success, the root cause on failure.
pub async fn settle(
    ctx: &Ctx,
    cfn: &CloudFormation,
    stack_id: &str,
    seen: &mut HashSet<String>,
    name: &str,
) -> Outcome {
    let (status, events) = match watch(ctx, cfn, stack_id, seen).await {
        Ok(r) => r,
        Err(e) => return fail(ctx, e.to_string()),
    };
    if is_good_status(&status) {
        if let Ok(Some(stack)) = describe_stack(ctx, cfn, stack_id).await {
            for output in stack.outputs() {
                ctx.say(format!(
                    "output {} = {}",
                    output.output_key().unwrap_or(""),
                    output.output_value().unwrap_or("")
                ));
            }
        }
        ctx.say(format!("stack {name}: {status}"));
        return Outcome::good(status);
    }
    let mut text = format!("stack {name}: {status}");
    if let Some(cause) = root_cause(&events) {
        text.push_str(&format!("; root cause: {cause}"));
    }
    if let Some(why) = explain_status(&status) {
        text.push_str(&format!(" ({why})"));
    }
    fail(ctx, text)
}

/// The two wordings CloudFormation uses for an update that changes nothing.
pub fn is_no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

pub fn explain_change_set_error(e: &ApiError) -> String {
    if let Some(state) = e.message.split(" is in ").nth(1).and_then(|s| s.split(' ').next()) {
        if let Some(why) = explain_status(state) {
            return format!("{e} ({why})");
        }
    }
    if e.code == "InsufficientCapabilitiesException" {
        return format!("{e} (acknowledge them with --capabilities)");
    }
    e.to_string()
}

pub fn fail(ctx: &Ctx, text: String) -> Outcome {
    ctx.say(format!("FAILED: {text}"));
    Outcome::bad(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::types::ResourceStatus;

    fn event(logical: &str, status: &str, reason: &str) -> StackEvent {
        StackEvent::builder()
            .stack_id("s")
            .event_id(format!("{logical}-{status}"))
            .stack_name("TapStack")
            .timestamp(aws_smithy_types::DateTime::from_secs(0))
            .logical_resource_id(logical)
            .resource_type(if logical == "TapStack" {
                "AWS::CloudFormation::Stack"
            } else {
                "Custom::ConfigSetup"
            })
            .resource_status(ResourceStatus::from(status))
            .resource_status_reason(reason)
            .build()
    }

    #[test]
    fn root_cause_is_the_first_failure_not_a_cancellation_nor_the_stack() {
        let events = vec![
            event("TapStack", "CREATE_IN_PROGRESS", "User Initiated"),
            event("Hub", "CREATE_FAILED", "Resource creation cancelled"),
            event("Config", "CREATE_FAILED", "Received response status [FAILED] from custom resource. Message returned: PutConfigurationRecorder failed: AccessDenied"),
            event("TapStack", "ROLLBACK_IN_PROGRESS", "The following resource(s) failed to create: [Config]."),
            event("Other", "DELETE_FAILED", "later"),
        ];
        let cause = root_cause(&events).unwrap();
        assert!(
            cause.starts_with("Config (Custom::ConfigSetup) CREATE_FAILED: Received response status [FAILED]"),
            "{cause}"
        );
        assert_eq!(root_cause(&events[..2]), None);
    }

    #[test]
    fn stack_states_are_explained() {
        assert!(explain_status("ROLLBACK_COMPLETE")
            .unwrap()
            .contains("must be deleted first"));
        assert!(explain_status("UPDATE_ROLLBACK_FAILED")
            .unwrap()
            .contains("continue-update-rollback"));
        assert!(explain_status("UPDATE_IN_PROGRESS").unwrap().contains("in progress"));
        assert_eq!(explain_status("CREATE_COMPLETE"), None);
        let e = ApiError {
            operation: "CreateChangeSet".into(),
            code: "ValidationError".into(),
            message: "Stack:arn:aws:cloudformation:us-east-1:1:stack/T/x is in UPDATE_ROLLBACK_FAILED state and can not be updated.".into(),
        };
        assert!(explain_change_set_error(&e).contains("continue-update-rollback"));
    }
}
