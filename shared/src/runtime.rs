//! The custom-resource runtime: one CloudFormation event in, exactly one response out.
//!
//! A handler implements [`CustomResource`] (create, update, delete over typed properties); this module
//! parses the event, guards the deadline, turns errors and panics into FAILED, keeps the response inside
//! CloudFormation's limits, PUTs it to the ResponseURL and logs one line per event.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest as Request;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures_util::FutureExt;
use lambda_runtime::{service_fn, LambdaEvent};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::arn;
use crate::responder::Responder;
use crate::response::{check_physical_id, ResponseBody, Status};
use crate::{props, HandlerError};

/// Physical ids given to a Create that failed start with this; a Delete carrying one does nothing.
pub const FAILED_CREATE_PREFIX: &str = "tapguard-failed-create:";

/// Time kept back from the Lambda deadline to deliver the response.
const RESPONSE_RESERVE: Duration = Duration::from_secs(5);

/// What a successful create or update produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub physical_id: String,
    pub data: BTreeMap<String, String>,
    /// Masks Data in the console and API (CloudFormation's NoEcho); such Data is never logged.
    pub no_echo: bool,
}

impl Outcome {
    pub fn new(physical_id: impl Into<String>) -> Self {
        Outcome {
            physical_id: physical_id.into(),
            ..Default::default()
        }
    }

    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.data.insert(key.to_string(), value.to_string());
        self
    }
}

/// One kind of custom resource. Only the resource's own logic lives here; the protocol is the runtime's.
pub trait CustomResource: Send + Sync + 'static {
    /// The typed `ResourceProperties` (use `#[serde(deny_unknown_fields)]` and the `props::flex` helpers).
    type Properties: DeserializeOwned + Send + Sync;
    /// For logs, e.g. `Custom::EbsDefaultEncryption`.
    const RESOURCE_TYPE: &'static str;
    /// Every physical id this resource issues starts with it: a Delete for any other id is not ours.
    const ID_PREFIX: &'static str;

    fn create(
        &self,
        inv: &Invocation,
        props: Self::Properties,
    ) -> impl Future<Output = Result<Outcome, HandlerError>> + Send;

    /// Returning a different physical id means replacement: CloudFormation then deletes the old one.
    /// `old` is `None` when the old properties no longer parse (e.g. written for an older version).
    fn update(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Self::Properties,
        old: Option<Self::Properties>,
    ) -> impl Future<Output = Result<Outcome, HandlerError>> + Send;

    /// Undoes what this resource did. `props` is `None` when they no longer parse.
    fn delete(
        &self,
        inv: &Invocation,
        physical_id: &str,
        props: Option<Self::Properties>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Undoes, from the ownership ledger, what the Create with this RequestId did. The runtime calls it
    /// when a Create answers an error while time is left, and for the Delete CloudFormation sends for a
    /// failed Create (physical id `tapguard-failed-create:<RequestId>`), which covers a Create cut off by
    /// the deadline or a panic. The default, for a resource that changes nothing before it can fail,
    /// does nothing.
    fn undo_create(
        &self,
        _inv: &Invocation,
        _request_id: &str,
        _props: Option<Self::Properties>,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async { Ok(()) }
    }

    /// The verify pass (`{"tapguard": "verify"}` on a schedule): re-reads, read-only, what each of this
    /// handler's resources claims in the ledger. Handlers on the ledger implement it with
    /// [`crate::verify::pass`].
    fn verify(
        &self,
        _inv: &Invocation,
    ) -> impl Future<Output = Result<Vec<crate::verify::ResourceReport>, HandlerError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// A scheduled (EventBridge) event, for resources that also run on a schedule.
    fn scheduled(&self, _inv: &Invocation, _event: Value) -> impl Future<Output = Result<Value, HandlerError>> + Send {
        async {
            Err(HandlerError::Failed(format!(
                "{} handles only CloudFormation custom-resource events",
                Self::RESOURCE_TYPE
            )))
        }
    }
}

/// What a handler knows about the event it is serving, and where it is in its work.
#[derive(Debug)]
pub struct Invocation {
    pub request_id: String,
    pub stack_id: String,
    pub logical_resource_id: String,
    pub log_stream: String,
    pub partition: String,
    pub account_id: String,
    pub region: String,
    step: Mutex<String>,
    pub(crate) deadline: Option<Instant>,
}

impl Invocation {
    /// An invocation outside any CloudFormation event: for unit tests and scheduled runs.
    pub fn detached(region: &str, account_id: &str) -> Self {
        Invocation {
            request_id: String::new(),
            stack_id: String::new(),
            logical_resource_id: String::new(),
            log_stream: std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default(),
            partition: arn::partition_for_region(region).to_string(),
            account_id: account_id.to_string(),
            region: region.to_string(),
            step: Mutex::new("starting".into()),
            deadline: None,
        }
    }

    /// Records what the handler is doing now, for the reason given if the deadline runs out.
    pub fn step(&self, step: impl Into<String>) {
        *self.step.lock().unwrap_or_else(|p| p.into_inner()) = step.into();
    }

    pub fn current_step(&self) -> String {
        self.step.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Time left before the response must be sent, when there is a deadline.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Runs one AWS call: records it as the current step and keeps the operation and error code on failure.
    pub async fn aws<T, E>(
        &self,
        service: &str,
        operation: &str,
        call: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, HandlerError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        self.step(format!("calling {service}:{operation}"));
        call.await.map_err(|err| {
            let err = HandlerError::from_sdk(service, operation, &err);
            warn!(service, operation, code = err.code().unwrap_or(""), "AWS call failed");
            err
        })
    }
}

/// Runs `resource` as a Lambda function until the runtime stops.
pub async fn run<R: CustomResource>(resource: R) -> Result<(), lambda_runtime::Error> {
    let runtime = Arc::new(Runtime {
        resource,
        responder: Responder::new(),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let runtime = Arc::clone(&runtime);
        async move { runtime.handle(event).await }
    }))
    .await
}

/// The runtime around one resource; `handle` serves one Lambda invocation.
pub struct Runtime<R> {
    pub resource: R,
    pub responder: Responder,
}

impl<R: CustomResource> Runtime<R> {
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
        let LambdaEvent { payload, context } = event;
        let hard_deadline = instant_of(context.deadline());
        if payload.get("ResponseURL").and_then(Value::as_str).is_some() {
            return Ok(self
                .custom_resource_event(payload, &context.env_config.log_stream, hard_deadline)
                .await);
        }
        if crate::verify::is_verify_event(&payload) {
            // Boxed, as the handler's own future below: inline it overflows rustc's layout depth in `main`.
            return Box::pin(crate::verify::serve(&self.resource, &context, hard_deadline)).await;
        }
        if payload.get("detail-type").is_some() || payload.get("source").is_some() {
            return self.scheduled_event(payload, hard_deadline).await;
        }
        error!("event is neither a CloudFormation custom-resource event nor a scheduled event");
        Err(
            "unsupported event: expected a CloudFormation custom-resource event or an EventBridge scheduled event"
                .into(),
        )
    }

    async fn scheduled_event(&self, payload: Value, hard_deadline: Instant) -> Result<Value, lambda_runtime::Error> {
        let region = std::env::var("AWS_REGION").unwrap_or_default();
        let account = payload
            .get("account")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut inv = Invocation::detached(&region, &account);
        inv.deadline = Some(hard_deadline);
        let started = Instant::now();
        let work = AssertUnwindSafe(Box::pin(self.resource.scheduled(&inv, payload))).catch_unwind();
        let result = match tokio::time::timeout(hard_deadline.saturating_duration_since(Instant::now()), work).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(HandlerError::Failed(format!(
                "the handler panicked: {}",
                panic_message(&panic)
            ))),
            Err(_) => Err(timed_out(started, &inv)),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(summary) => {
                info!(event_kind = "scheduled", resource_type = R::RESOURCE_TYPE, outcome = "SUCCESS", duration_ms, summary = %summary, "scheduled event handled");
                Ok(summary)
            }
            Err(err) => {
                error!(event_kind = "scheduled", resource_type = R::RESOURCE_TYPE, outcome = "FAILED", duration_ms, reason = %err, "scheduled event handled");
                Err(err.to_string().into())
            }
        }
    }

    async fn custom_resource_event(&self, payload: Value, log_stream: &str, hard_deadline: Instant) -> Value {
        let started = Instant::now();
        let response_url = payload["ResponseURL"].as_str().unwrap_or_default().to_string();
        let field = |name: &str| {
            payload
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let request_type = field("RequestType");
        let (stack_id, request_id, logical_id) = (field("StackId"), field("RequestId"), field("LogicalResourceId"));
        let incoming_physical_id = field("PhysicalResourceId");
        let (partition, region, account_id) = arn::stack_location(&stack_id);

        let inv = Invocation {
            request_id: request_id.clone(),
            stack_id: stack_id.clone(),
            logical_resource_id: logical_id.clone(),
            log_stream: log_stream.to_string(),
            partition,
            account_id,
            region: std::env::var("AWS_REGION")
                .ok()
                .filter(|r| !r.is_empty())
                .unwrap_or(region),
            step: Mutex::new("starting".into()),
            deadline: Some(hard_deadline.checked_sub(RESPONSE_RESERVE).unwrap_or(hard_deadline)),
        };

        let failed_id = if incoming_physical_id.is_empty() {
            format!("{FAILED_CREATE_PREFIX}{request_id}")
        } else {
            incoming_physical_id.clone()
        };

        let budget = inv.time_left().unwrap_or_default();
        // Boxed: the handler's future nests deeply, and inline it overflows rustc's layout depth in `main`.
        let work = AssertUnwindSafe(Box::pin(self.dispatch(&inv, payload))).catch_unwind();
        let result = match tokio::time::timeout(budget, work).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(HandlerError::Failed(format!(
                "the handler panicked: {}",
                panic_message(&panic)
            ))),
            Err(_) => Err(timed_out(started, &inv)),
        };

        let (status, reason, physical_id, data, no_echo) = match result {
            Ok(outcome) => match check_physical_id(&outcome.physical_id) {
                Ok(()) => (
                    Status::Success,
                    None,
                    outcome.physical_id,
                    outcome.data,
                    outcome.no_echo,
                ),
                Err(problem) => (Status::Failed, Some(problem), failed_id, BTreeMap::new(), false),
            },
            Err(err) => (Status::Failed, Some(err.to_string()), failed_id, BTreeMap::new(), false),
        };
        let reason = reason.map(|r| {
            format!(
                "{r} (log stream {})",
                if log_stream.is_empty() { "unknown" } else { log_stream }
            )
        });
        let replaced = request_type == "Update" && status == Status::Success && physical_id != incoming_physical_id;

        let body = ResponseBody {
            status,
            reason,
            physical_resource_id: physical_id,
            stack_id: stack_id.clone(),
            request_id: request_id.clone(),
            logical_resource_id: logical_id.clone(),
            no_echo,
            data,
        };
        let (bytes, sent) = body.to_bytes();
        let delivery = self.responder.put(&response_url, bytes, hard_deadline).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let data_keys = sent.data.keys().cloned().collect::<Vec<_>>().join(",");
        let reason = sent.reason.clone().unwrap_or_default();
        let delivered = delivery.is_ok();
        let delivery_error = delivery.err().unwrap_or_default();
        // tracing fixes a line's level where it is written, so the one line is written once per level.
        macro_rules! event_line {
            ($level:ident) => {
                $level!(
                    request_type,
                    resource_type = R::RESOURCE_TYPE,
                    logical_resource_id = logical_id,
                    request_id,
                    stack_id,
                    physical_resource_id = sent.physical_resource_id,
                    outcome = sent.status.as_str(),
                    reason,
                    data_keys,
                    replaced,
                    delivered,
                    delivery_error,
                    duration_ms,
                    "custom resource event handled"
                )
            };
        }
        if sent.status == Status::Failed || !delivered {
            event_line!(error);
        } else {
            event_line!(info);
        }
        // The invocation itself always succeeds: a Lambda retry would only send a duplicate response.
        json!({ "Status": sent.status.as_str(), "PhysicalResourceId": sent.physical_resource_id, "Delivered": delivered })
    }

    async fn dispatch(&self, inv: &Invocation, payload: Value) -> Result<Outcome, HandlerError> {
        let request: Request<Value, Value> = serde_json::from_value(payload)
            .map_err(|err| HandlerError::Failed(format!("malformed CloudFormation event: {err}")))?;
        match request {
            Request::Create(create) => {
                let props = props::parse(&create.resource_properties)?;
                let created = self.resource.create(inv, props).await;
                self.undo_if_failed(inv, &create.request_id, &create.resource_properties, created)
                    .await
            }
            Request::Update(update) => {
                let props = props::parse(&update.resource_properties)?;
                let old = props::parse(&update.old_resource_properties).ok();
                if self.owns(&update.physical_resource_id) {
                    self.resource
                        .update(inv, &update.physical_resource_id, props, old)
                        .await
                } else {
                    // Not an id we issued (e.g. the resource was made by an earlier implementation):
                    // create ours; CloudFormation then deletes the old one, which we leave alone.
                    info!(
                        physical_resource_id = update.physical_resource_id,
                        "update of a foreign physical id: creating a replacement"
                    );
                    let created = self.resource.create(inv, props).await;
                    self.undo_if_failed(inv, &update.request_id, &update.resource_properties, created)
                        .await
                }
            }
            Request::Delete(delete) => {
                let id = delete.physical_resource_id;
                if let Some(request_id) = id.strip_prefix(FAILED_CREATE_PREFIX) {
                    // The rollback of a Create that failed: undo whatever it had done before it failed
                    // (it may have been cut off by the deadline or a panic with nothing undone).
                    let props = props::parse(&delete.resource_properties).ok();
                    self.resource.undo_create(inv, request_id, props).await.map_err(|err| {
                        err.with_note(
                            "this Delete undoes a Create that failed; retry it, or retain the resource \
                             (DeletionPolicy: Retain) and undo its changes by hand",
                        )
                    })?;
                    return Ok(Outcome::new(id));
                }
                if !self.owns(&id) {
                    info!(
                        physical_resource_id = id,
                        "delete of an id this handler did not issue (or of a failed create): nothing to undo"
                    );
                    return Ok(Outcome::new(id));
                }
                let props = props::parse(&delete.resource_properties).ok();
                self.resource.delete(inv, &id, props).await?;
                Ok(Outcome::new(id))
            }
            _ => Err(HandlerError::Failed("unsupported RequestType".into())),
        }
    }

    /// A Create that failed is undone at once, while there is time, so it leaves nothing behind.
    async fn undo_if_failed(
        &self,
        inv: &Invocation,
        request_id: &str,
        properties: &Value,
        created: Result<Outcome, HandlerError>,
    ) -> Result<Outcome, HandlerError> {
        let err = match created {
            Ok(outcome) => return Ok(outcome),
            Err(err) => err,
        };
        let failed_step = inv.current_step();
        inv.step("undoing the failed Create");
        let props = props::parse(properties).ok();
        let result = match self.resource.undo_create(inv, request_id, props).await {
            Ok(()) => Err(err),
            Err(undo) => {
                error!(error = %undo, "undoing the failed Create failed: the rollback Delete will try again");
                Err(err.with_note(&format!(
                    "undoing it failed too ({undo}): the rollback Delete will try again"
                )))
            }
        };
        inv.step(failed_step);
        result
    }

    fn owns(&self, physical_id: &str) -> bool {
        physical_id.starts_with(R::ID_PREFIX) && !physical_id.starts_with(FAILED_CREATE_PREFIX)
    }
}

fn timed_out(started: Instant, inv: &Invocation) -> HandlerError {
    HandlerError::Failed(format!(
        "timed out after {} s while {}: answering now so the stack does not wait; raise the function's timeout \
         (and the resource's ServiceTimeout) or find out why that step is slow",
        started.elapsed().as_secs(),
        inv.current_step()
    ))
}

fn instant_of(deadline: SystemTime) -> Instant {
    let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
    Instant::now() + left
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
