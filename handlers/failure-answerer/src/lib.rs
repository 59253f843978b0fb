//! The failure answerer: Lambda's asynchronous-invocation `OnFailure` destination of every handler
//! function. When a handler's process dies before it answers (out of memory, an abort, a stack overflow,
//! a failed start-up, Lambda's own timeout), Lambda hands this function an invocation record:
//!
//! ```text
//! { "requestContext": { "requestId", "functionArn", "condition", "approximateInvokeCount" },
//!   "requestPayload": <the CloudFormation event>,
//!   "responseContext": { "statusCode", "executedVersion", "functionError" },
//!   "responsePayload": { "errorType"?, "errorMessage" } }
//! ```
//!
//! It PUTs FAILED to the event's ResponseURL naming the function, the cause and the log stream, unless
//! the handler's own answer was recorded (the runtime records every answer by RequestId, see
//! `shared/src/answers.rs`): never a second answer. It is built on the shared responder and response
//! body, so the answer keeps CloudFormation's limits and the ResponseURL is never logged.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::{json, Value};
use tapguard_shared::answers::{AnswerBook, Seen};
use tapguard_shared::deferred::Deferred;
use tapguard_shared::responder::Responder;
use tapguard_shared::response::{ResponseBody, Status};
use tapguard_shared::ssm::ParameterStore;
use tapguard_shared::FAILED_CREATE_PREFIX;
use tracing::{error, info, warn};

/// `handler,handler,...`: the ledger folders to look for an event's answer record in. RequestIds are
/// unique, so the folder that holds the event's `started` record is the failed function's. (Not a map
/// from function names: those are known only once the functions exist, and the functions' failure
/// destination is this function, so the template would go round in a circle.)
pub const HANDLERS_ENV: &str = "TAPGUARD_HANDLERS";

#[cfg(test)]
mod tests;

/// Serves the failure events until the runtime stops. The AWS configuration and the SSM client are made
/// on a task of their own while the runtime asks for the first event ([`Deferred`], as
/// [`tapguard_shared::run`] does); the first event waits until they are ready.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let handlers = handlers_from(&std::env::var(HANDLERS_ENV).unwrap_or_default());
    let responder = Responder::new();
    let ssm = Deferred::start(ParameterStore::new);
    let (ssm, handlers, responder) = (&ssm, &handlers, &responder);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = instant_of(event.context.deadline());
        let answerer = Answerer {
            ssm: Some(ssm.get().await.clone()),
            handlers: handlers.clone(),
            responder: responder.clone(),
        };
        Ok::<Value, lambda_runtime::Error>(answerer.handle(&event.payload, deadline).await)
    }))
    .await
}

/// Parses `handler,handler,...`.
pub fn handlers_from(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

pub struct Answerer {
    pub ssm: Option<ParameterStore>,
    pub handlers: Vec<String>,
    pub responder: Responder,
}

/// The function name in a function ARN, with or without a qualifier.
pub fn function_name(arn: &str) -> &str {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.iter().position(|p| *p == "function") {
        Some(i) if i + 1 < parts.len() => parts[i + 1],
        _ => arn,
    }
}

impl Answerer {
    /// Answers one invocation record; returns what it did (also its one log line).
    pub async fn handle(&self, record: &Value, deadline: Instant) -> Value {
        let event = &record["requestPayload"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let url = text(&event["ResponseURL"]);
        let request_id = text(&event["RequestId"]);
        let function_arn = text(&record["requestContext"]["functionArn"]);
        let function = function_name(&function_arn).to_string();
        let lambda_request_id = text(&record["requestContext"]["requestId"]);
        if url.is_empty() || request_id.is_empty() {
            // A scheduled pass (or anything else) that failed: nothing waits for an answer.
            warn!(
                function,
                lambda_request_id, "failed invocation that is not a CloudFormation event: nothing to answer"
            );
            return json!({"Answered": false, "Why": "not a CloudFormation custom-resource event"});
        }
        let mut book = None;
        let mut seen = Seen::Unknown;
        for handler in &self.handlers {
            let candidate = match &self.ssm {
                Some(ssm) => AnswerBook::with_ssm(ssm.clone(), handler),
                None => AnswerBook::in_process(handler),
            };
            match candidate.seen(&request_id).await {
                Seen::Unknown => continue,
                found => {
                    seen = found;
                    book = Some(candidate);
                    break;
                }
            }
        }
        if book.is_none() {
            warn!(
                function,
                request_id, "no answer record of this event in any handler's folder: answering FAILED"
            );
        }
        let log_stream = match seen {
            Seen::Answered { .. } => {
                info!(
                    function,
                    request_id, lambda_request_id, "the handler's own answer was delivered: nothing to add"
                );
                return json!({"Answered": false, "Why": "the handler had answered"});
            }
            Seen::Started { log_stream } => log_stream,
            Seen::Unknown => String::new(),
        };
        let payload = &record["responsePayload"];
        let mut cause = match (payload["errorType"].as_str(), payload["errorMessage"].as_str()) {
            (Some(t), Some(m)) => format!("{t}: {m}"),
            (None, Some(m)) => m.to_string(),
            (Some(t), None) => t.to_string(),
            (None, None) => format!(
                "{} error",
                record["responseContext"]["functionError"]
                    .as_str()
                    .unwrap_or("function")
            ),
        };
        // Nothing of the ResponseURL, a credential, goes into the reason or the logs.
        cause = cause.replace(&url, "<ResponseURL>");
        let where_ = if log_stream.is_empty() {
            format!("log stream unknown: search the function's log group for Lambda request {lambda_request_id}")
        } else {
            format!("log stream {log_stream}")
        };
        let reason = format!(
            "the function {function} ended before it answered ({cause}); {where_}. Nothing it did is known \
             to be complete: a Delete of this resource undoes what it recorded in the ownership ledger"
        );
        let physical_id = match text(&event["PhysicalResourceId"]) {
            id if id.is_empty() => format!("{FAILED_CREATE_PREFIX}{request_id}"),
            id => id,
        };
        let body = ResponseBody {
            status: Status::Failed,
            reason: Some(reason.clone()),
            physical_resource_id: physical_id.clone(),
            stack_id: text(&event["StackId"]),
            request_id: request_id.clone(),
            logical_resource_id: text(&event["LogicalResourceId"]),
            no_echo: false,
            data: BTreeMap::new(),
        };
        let (bytes, _) = body.to_bytes();
        let delivery = self.responder.put(&url, bytes.clone(), deadline).await;
        if let Some(book) = &book {
            // A later duplicate delivery of the event then gets this same answer.
            book.answered(&request_id, &bytes).await;
        }
        let delivered = delivery.result.is_ok();
        error!(
            function,
            request_id,
            lambda_request_id,
            request_type = text(&event["RequestType"]),
            logical_resource_id = text(&event["LogicalResourceId"]),
            stack_id = text(&event["StackId"]),
            physical_resource_id = physical_id,
            outcome = "FAILED",
            reason,
            delivered,
            delivery_error = delivery.result.err().unwrap_or_default(),
            "answered FAILED for a handler that died before answering"
        );
        json!({"Answered": true, "Delivered": delivered})
    }
}

fn instant_of(deadline: SystemTime) -> Instant {
    Instant::now() + deadline.duration_since(SystemTime::now()).unwrap_or_default()
}
