//! The custom-resource runtime: one CloudFormation event in, exactly one response out.
//!
//! A handler implements [`CustomResource`] (create, update, delete over typed properties); this module
//! parses the event, guards the deadline, turns errors and panics into FAILED, keeps the response inside
//! CloudFormation's limits, PUTs it to the ResponseURL and logs one line per event.
//!
//! The deadline guard does not need the handler's cooperation: the handler runs on a runtime of its own
//! (its own threads), the guard on Lambda's. A handler that blocks its thread (a blocking call, a busy
//! loop) still gets FAILED answered before the deadline; the process then exits once the answer is
//! delivered and recorded, so the next event gets a fresh process instead of a stuck thread (Lambda
//! resets an environment after a timeout the same way). The time kept back for the answer comes from the
//! responder's retry policy ([`RetryPolicy::reserve`](crate::responder::RetryPolicy::reserve)).
//!
//! Each event's answer is recorded by RequestId ([`AnswerBook`]): a second delivery is answered the same
//! again without the work, and the failure answerer can tell a function that died before answering from
//! one that answered and died after.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest as Request;
use lambda_runtime::{service_fn, LambdaEvent};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tracing::{error, info, warn};

use crate::answers::{AnswerBook, Seen};
use crate::arn;
use crate::deferred::Deferred;
use crate::responder::Responder;
use crate::response::{check_physical_id, ResponseBody, Status};
use crate::{props, AwsCallError, HandlerError};

/// Physical ids given to a Create that failed start with this; a Delete carrying one does nothing.
pub const FAILED_CREATE_PREFIX: &str = "tapguard-failed-create:";

/// How long the guard waits, after answering for a handler cut off by the deadline, for its task to
/// end; a task still running then is blocking its thread.
const STUCK_GRACE: Duration = Duration::from_millis(500);

/// How the answer of a handler cut off by the deadline begins (see [`timed_out`]): the rollback
/// Delete of such a Create knows from it that calls of the Create may still have been in flight.
pub const CUT_OFF_REASON: &str = "timed out after ";

/// How long, beyond the Create's own deadline, a call the Create had in flight may still take to land
/// in AWS before its rollback Delete reads the state it undoes.
const IN_FLIGHT_SETTLE: Duration = Duration::from_secs(2);

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
    /// Properties this resource no longer uses: accepted and ignored with a warning, never refused, so the
    /// rollback of a stack to an older template still parses (see `shared/PROPERTIES.md`). Each entry is
    /// `(name, what to do instead)`.
    const RETIRED_PROPERTIES: &'static [(&'static str, &'static str)] = &[];
    /// Every AWS operation the resource may call, as `(service, Operation)` with the emulator's service
    /// names (`ec2`, `ssm`, …): the fault matrix injects each fault into each of them, and a test fails
    /// when the resource calls one it did not declare. The runtime's own ([`crate::answers::OPERATIONS`])
    /// come on top.
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[];

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
    /// Why the Create failed, while its undo runs: a deadline that cuts the undo off still names it.
    undoing: Mutex<Option<String>>,
    /// The last AWS error of this event (`service:Operation Code`), even one the handler tolerated or
    /// retried past: a deadline that cuts the event off names it, since it is often why time ran out.
    last_error: Mutex<Option<String>>,
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
            undoing: Mutex::new(None),
            last_error: Mutex::new(None),
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

    /// The error of the failed Create being undone now, if any.
    fn undoing(&self) -> Option<String> {
        self.undoing.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_undoing(&self, failure: Option<String>) {
        *self.undoing.lock().unwrap_or_else(|p| p.into_inner()) = failure;
    }

    /// Time left before the response must be sent, when there is a deadline.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Runs one AWS call: records it as the current step and keeps the operation and error code on failure.
    pub async fn aws<T, E: AwsCallError>(
        &self,
        service: &str,
        operation: &str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, HandlerError> {
        self.step(format!("calling {service}:{operation}"));
        call.await.map_err(|err| self.aws_failed(service, operation, &err))
    }

    /// The error of a failed AWS call made without [`Invocation::aws`] (a paginator's page, say): logged
    /// and remembered as the event's last AWS error, as `aws` does.
    pub fn aws_failed<E: AwsCallError>(&self, service: &str, operation: &str, err: &E) -> HandlerError {
        let err = err.to_handler_error(service, operation);
        let code = err.code().unwrap_or("");
        warn!(service, operation, code, "AWS call failed");
        let seen = if code.is_empty() {
            format!("{service}:{operation} (no error code)")
        } else {
            format!("{service}:{operation} {code}")
        };
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        err
    }

    fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Runs the resource that `make` builds from the AWS configuration as a Lambda function until the runtime
/// stops. Answers are recorded in the process and in Parameter Store under the handler's ledger folder
/// ([`handler_name`]).
///
/// The configuration is loaded and the resource built on a task of their own ([`Deferred`]), while the
/// runtime makes its first `GET /next`. The first event waits until they are ready; its deadline is the
/// event's own, so that wait counts against it.
pub async fn run<R, F>(make: F) -> Result<(), lambda_runtime::Error>
where
    R: CustomResource,
    F: FnOnce(&aws_config::SdkConfig) -> R + Send + 'static,
{
    let runtime = Deferred::start(|config| {
        let answers = AnswerBook::with_ssm(crate::ssm::ParameterStore::new(config), &handler_name::<R>());
        Arc::new(Runtime::new(make(config), answers))
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let runtime = runtime.clone();
        async move { runtime.get().await.handle(event).await }
    }))
    .await
}

/// The handler's name, the folder of its ledger records: its crate's name with dashes
/// (`ebs_default_encryption::EbsDefaultEncryption` → `ebs-default-encryption`), as the roles grant it.
pub fn handler_name<R>() -> String {
    std::any::type_name::<R>()
        .split("::")
        .next()
        .unwrap_or_default()
        .replace('_', "-")
}

/// The runtime around one resource; `handle` serves one Lambda invocation.
pub struct Runtime<R> {
    pub resource: R,
    pub responder: Responder,
    pub answers: AnswerBook,
    /// Where the handler's work runs: threads of its own, never the guard's. It lives as long as the
    /// process; held by reference (not by a cloned handle) so that it stays reachable from the runtime
    /// and a leak checker (LeakSanitizer under `make fuzz`) does not report it as lost.
    worker: &'static tokio::runtime::Runtime,
}

/// What the guard saw of the handler's task.
enum Guarded<T> {
    Finished(Result<T, HandlerError>),
    /// Cut off by the deadline: the task was asked to stop (it may still be running, blocking its thread).
    CutOff(HandlerError, tokio::task::JoinHandle<Result<T, HandlerError>>),
}

impl<R: CustomResource> Runtime<R> {
    pub fn new(resource: R, answers: AnswerBook) -> Self {
        Self::with_responder(resource, answers, Responder::new())
    }

    pub fn with_responder(resource: R, answers: AnswerBook, responder: Responder) -> Self {
        // Leaked on purpose: it lives as long as the process, and a runtime may not be dropped from
        // inside another one (nor can it be while a handler blocks one of its threads).
        let worker: &'static tokio::runtime::Runtime = Box::leak(Box::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tapguard-handler")
                .enable_all()
                .build()
                .expect("the handler's runtime starts"),
        ));
        Runtime {
            resource,
            responder,
            answers,
            worker,
        }
    }

    pub async fn handle(self: &Arc<Self>, event: LambdaEvent<Value>) -> Result<Value, lambda_runtime::Error> {
        let LambdaEvent { payload, context } = event;
        let hard_deadline = instant_of(context.deadline());
        if payload.get("ResponseURL").and_then(Value::as_str).is_some() {
            return Ok(self
                .custom_resource_event(
                    payload,
                    &context.env_config.log_stream,
                    &context.invoked_function_arn,
                    hard_deadline,
                )
                .await);
        }
        if crate::verify::is_verify_event(&payload) {
            // Boxed, as the handler's own future below: inline it overflows rustc's layout depth in `main`.
            return Box::pin(crate::verify::serve(&self.resource, &context, hard_deadline)).await;
        }
        if payload.get("detail-type").is_some() || payload.get("source").is_some() {
            return self
                .scheduled_event(payload, &context.invoked_function_arn, hard_deadline)
                .await;
        }
        error!("event is neither a CloudFormation custom-resource event nor a scheduled event");
        Err(
            "unsupported event: expected a CloudFormation custom-resource event or an EventBridge scheduled event"
                .into(),
        )
    }

    /// The time kept back from the Lambda deadline for the answer: what the retry policy needs for two
    /// attempts, but never more than half the invocation's time.
    fn reserve(&self, hard_deadline: Instant) -> Duration {
        let total = hard_deadline.saturating_duration_since(Instant::now());
        self.responder.policy().reserve().min(total / 2)
    }

    /// Runs `work` on the handler's runtime and waits for it until `deadline`, on this one.
    async fn guard<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, HandlerError>> + Send + 'static,
        deadline: Instant,
        started: Instant,
        inv: &Invocation,
    ) -> Guarded<T> {
        let mut task = self.worker.spawn(work);
        tokio::select! {
            joined = &mut task => Guarded::Finished(match joined {
                Ok(result) => result,
                Err(err) if err.is_panic() => Err(HandlerError::Failed(format!(
                    "the handler panicked: {}",
                    panic_message(&err.into_panic())
                ))),
                Err(err) => Err(HandlerError::Failed(format!("the handler's task ended without an answer: {err}"))),
            }),
            _ = tokio::time::sleep_until(deadline.into()) => {
                task.abort();
                Guarded::CutOff(timed_out(started, inv), task)
            }
        }
    }

    /// After the answer of a cut-off handler went out: a task that has not stopped is blocking a thread
    /// of the handler's runtime. The process exits, so the next event gets a fresh one (the answer is
    /// recorded, so the failure answerer adds nothing).
    async fn exit_if_stuck<T>(&self, task: Option<tokio::task::JoinHandle<T>>, request_id: &str) {
        let Some(task) = task else { return };
        if tokio::time::timeout(STUCK_GRACE, task).await.is_err() {
            error!(
                request_id,
                resource_type = R::RESOURCE_TYPE,
                "the handler is still running after the deadline and does not yield (it blocks its thread): \
                 the answer was sent; exiting so the next event starts in a fresh process"
            );
            std::process::exit(70);
        }
    }

    async fn scheduled_event(
        self: &Arc<Self>,
        payload: Value,
        function_arn: &str,
        hard_deadline: Instant,
    ) -> Result<Value, lambda_runtime::Error> {
        let region = std::env::var("AWS_REGION").unwrap_or_default();
        let account = payload
            .get("account")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut inv = Invocation::detached(&region, &account);
        inv.deadline = Some(hard_deadline);
        if let Some(partition) = arn::partition_of_arn(function_arn) {
            // The function's own ARN knows its partition better than a region table.
            inv.partition = partition.to_string();
        }
        let inv = Arc::new(inv);
        let started = Instant::now();
        let work = {
            let (this, inv) = (Arc::clone(self), Arc::clone(&inv));
            async move { this.resource.scheduled(&inv, payload).await }
        };
        let deadline = hard_deadline.checked_sub(STUCK_GRACE).unwrap_or(hard_deadline);
        let (result, stuck) = match self.guard(work, deadline, started, &inv).await {
            Guarded::Finished(result) => (result, None),
            Guarded::CutOff(err, task) => (Err(err), Some(task)),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let answer = match result {
            Ok(summary) => {
                info!(event_kind = "scheduled", resource_type = R::RESOURCE_TYPE, outcome = "SUCCESS", duration_ms, summary = %summary, "scheduled event handled");
                Ok(summary)
            }
            Err(err) => {
                error!(event_kind = "scheduled", resource_type = R::RESOURCE_TYPE, outcome = "FAILED", duration_ms, reason = %err, "scheduled event handled");
                Err(err.to_string().into())
            }
        };
        self.exit_if_stuck(stuck, "").await;
        answer
    }

    async fn custom_resource_event(
        self: &Arc<Self>,
        payload: Value,
        log_stream: &str,
        function_arn: &str,
        hard_deadline: Instant,
    ) -> Value {
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
        let region = std::env::var("AWS_REGION")
            .ok()
            .filter(|r| !r.is_empty())
            .unwrap_or(region);
        // The StackId's partition, else the function's own ARN's, else the region's.
        let partition = if partition.is_empty() {
            arn::partition_of_arn(function_arn)
                .unwrap_or_else(|| arn::partition_for_region(&region))
                .to_string()
        } else {
            partition
        };

        // A second delivery of an event already answered: the same answer again, without the work.
        if !request_id.is_empty() {
            if let Seen::Answered { body, no_echo: false } = self.answers.seen(&request_id).await {
                let delivery = self.responder.put(&response_url, body.clone(), hard_deadline).await;
                let delivered = delivery.result.is_ok();
                let status = serde_json::from_slice::<Value>(&body).unwrap_or_default();
                let line = |delivered: bool| {
                    format!(
                        "duplicate delivery of an event already answered: the recorded answer was sent again{}",
                        if delivered { "" } else { ", but its delivery failed" }
                    )
                };
                if delivered {
                    info!(
                        request_type,
                        request_id,
                        logical_resource_id = logical_id,
                        stack_id,
                        outcome = status["Status"].as_str().unwrap_or(""),
                        duplicate = true,
                        "{}",
                        line(true)
                    );
                } else {
                    error!(
                        request_type,
                        request_id,
                        logical_resource_id = logical_id,
                        stack_id,
                        outcome = status["Status"].as_str().unwrap_or(""),
                        duplicate = true,
                        delivery_error = delivery.result.clone().err().unwrap_or_default(),
                        "{}",
                        line(false)
                    );
                }
                return json!({ "Status": status["Status"], "PhysicalResourceId": status["PhysicalResourceId"], "Delivered": delivered, "Duplicate": true });
            }
            self.answers.started(&request_id, log_stream).await;
        }

        let handler_deadline = hard_deadline
            .checked_sub(self.reserve(hard_deadline))
            .unwrap_or(hard_deadline);
        let inv = Arc::new(Invocation {
            request_id: request_id.clone(),
            stack_id: stack_id.clone(),
            logical_resource_id: logical_id.clone(),
            log_stream: log_stream.to_string(),
            partition,
            account_id,
            region,
            step: Mutex::new("starting".into()),
            undoing: Mutex::new(None),
            last_error: Mutex::new(None),
            deadline: Some(handler_deadline),
        });

        let failed_id = if incoming_physical_id.is_empty() {
            format!("{FAILED_CREATE_PREFIX}{request_id}")
        } else {
            incoming_physical_id.clone()
        };

        let work = {
            let (this, inv) = (Arc::clone(self), Arc::clone(&inv));
            // Boxed: the handler's future nests deeply, and inline it overflows rustc's layout depth in `main`.
            async move { Box::pin(this.dispatch(&inv, payload)).await }
        };
        let (result, stuck) = match self.guard(work, handler_deadline, started, &inv).await {
            Guarded::Finished(result) => (result, None),
            Guarded::CutOff(err, task) => (Err(err), Some(task)),
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
        let delivery = self.responder.put(&response_url, bytes.clone(), hard_deadline).await;
        if !request_id.is_empty() {
            self.answers.answered(&request_id, &bytes).await;
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let data_keys = sent.data.keys().cloned().collect::<Vec<_>>().join(",");
        let reason = sent.reason.clone().unwrap_or_default();
        let delivered = delivery.result.is_ok();
        let delivery_attempts = delivery.attempts;
        let delivery_error = delivery.result.err().unwrap_or_default();
        // tracing fixes a line's level where it is written, so the one line is written once per level.
        macro_rules! event_line {
            ($level:ident, $message:literal) => {
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
                    delivery_attempts,
                    delivery_error,
                    duration_ms,
                    $message
                )
            };
        }
        if !delivered {
            // Loud: the stack waits for this resource until its ServiceTimeout. Never the URL itself.
            event_line!(
                error,
                "custom resource event handled, but THE ANSWER COULD NOT BE DELIVERED to CloudFormation"
            );
        } else if sent.status == Status::Failed {
            event_line!(error, "custom resource event handled");
        } else {
            event_line!(info, "custom resource event handled");
        }
        self.exit_if_stuck(stuck, &request_id).await;
        // The invocation itself always succeeds: a Lambda retry would only send a duplicate response.
        json!({ "Status": sent.status.as_str(), "PhysicalResourceId": sent.physical_resource_id, "Delivered": delivered })
    }

    async fn dispatch(&self, inv: &Invocation, payload: Value) -> Result<Outcome, HandlerError> {
        let request: Request<Value, Value> = serde_json::from_value(payload)
            .map_err(|err| HandlerError::Failed(format!("malformed CloudFormation event: {err}")))?;
        match request {
            Request::Create(create) => {
                let props = props::parse_retiring(&create.resource_properties, R::RETIRED_PROPERTIES)?;
                let created = self.resource.create(inv, props).await;
                self.undo_if_failed(inv, &create.request_id, &create.resource_properties, created)
                    .await
            }
            Request::Update(update) => {
                let props = props::parse_retiring(&update.resource_properties, R::RETIRED_PROPERTIES)?;
                let old = props::parse_retiring(&update.old_resource_properties, R::RETIRED_PROPERTIES).ok();
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
                    self.settle_cut_off_create(inv, request_id).await;
                    let props = props::parse_retiring(&delete.resource_properties, R::RETIRED_PROPERTIES).ok();
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
                let props = props::parse_retiring(&delete.resource_properties, R::RETIRED_PROPERTIES).ok();
                self.resource.delete(inv, &id, props).await?;
                Ok(Outcome::new(id))
            }
            _ => Err(HandlerError::Failed("unsupported RequestType".into())),
        }
    }

    /// Before the rollback Delete of a Create that was cut off (or whose process died, or is unknown)
    /// reads what it undoes: a call that Create had in flight when it was cut off reaches AWS anyway,
    /// and landing after the undo it would be left behind. CloudFormation sends this Delete right after
    /// the Create's FAILED, which the Create sent `reserve` before its own deadline; after that deadline
    /// Lambda has stopped its process. So wait that long and a little more (within half the time left).
    /// A Create that failed by itself (its record says so) is undone at once.
    async fn settle_cut_off_create(&self, inv: &Invocation, request_id: &str) {
        let why = match self.answers.seen(request_id).await {
            Seen::Answered { body, .. } => {
                let answer = serde_json::from_slice::<Value>(&body).unwrap_or_default();
                if !answer["Reason"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(CUT_OFF_REASON)
                {
                    return;
                }
                "the Create was cut off by its deadline"
            }
            Seen::Started { .. } => "the Create started but its answer is not recorded (it died, or still runs)",
            Seen::Unknown => "the Create's answer record cannot be read",
        };
        let wait = (self.responder.policy().reserve() + IN_FLIGHT_SETTLE).min(inv.time_left().unwrap_or_default() / 2);
        inv.step("waiting for the calls the failed Create may have had in flight to land");
        info!(
            request_id,
            why,
            wait_ms = wait.as_millis() as u64,
            "waiting before undoing a failed Create, so a call it had in flight cannot land after the undo"
        );
        tokio::time::sleep(wait).await;
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
        inv.set_undoing(Some(err.to_string()));
        let props = props::parse_retiring(properties, R::RETIRED_PROPERTIES).ok();
        let result = match self.resource.undo_create(inv, request_id, props).await {
            Ok(()) => Err(err),
            Err(undo) => {
                error!(error = %undo, "undoing the failed Create failed: the rollback Delete will try again");
                Err(err.with_note(&format!(
                    "undoing it failed too ({undo}): the rollback Delete will try again"
                )))
            }
        };
        inv.set_undoing(None);
        inv.step(failed_step);
        result
    }

    fn owns(&self, physical_id: &str) -> bool {
        physical_id.starts_with(R::ID_PREFIX) && !physical_id.starts_with(FAILED_CREATE_PREFIX)
    }
}

fn timed_out(started: Instant, inv: &Invocation) -> HandlerError {
    // Cut off while undoing a failed Create: the failure comes first in what a person must know.
    let undoing = inv
        .undoing()
        .map(|failure| {
            format!(", undoing the Create that had failed ({failure}; the rollback Delete finishes the undo)")
        })
        .unwrap_or_default();
    let last_error = inv
        .last_error()
        .map(|seen| format!(" (the last AWS error of this event: {seen})"))
        .unwrap_or_default();
    HandlerError::Failed(format!(
        "{CUT_OFF_REASON}{} s while {}{last_error}{undoing}: answering now so the stack does not wait; raise the function's \
         timeout (and the resource's ServiceTimeout) or find out why that step is slow",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_that_cuts_off_the_undo_of_a_failed_create_still_names_why_the_create_failed() {
        let inv = Invocation::detached("eu-west-1", "123456789012");
        inv.step("calling config:PutConfigRule");
        let plain = timed_out(Instant::now(), &inv).to_string();
        assert!(plain.starts_with(CUT_OFF_REASON), "{plain}");
        assert!(
            plain.contains("while calling config:PutConfigRule: answering now"),
            "{plain}"
        );
        assert!(!plain.contains("undoing"), "{plain}");

        inv.set_undoing(Some("PutConfigRule failed: InternalFailure (injected)".into()));
        inv.step("calling ssm:DeleteParameter (the ledger)");
        let undoing = timed_out(Instant::now(), &inv).to_string();
        assert!(
            undoing.starts_with(CUT_OFF_REASON),
            "the rollback Delete still sees a cut-off: {undoing}"
        );
        assert!(
            undoing.contains(
                "while calling ssm:DeleteParameter (the ledger), undoing the Create that had failed \
                 (PutConfigRule failed: InternalFailure (injected); the rollback Delete finishes the undo)"
            ),
            "{undoing}"
        );
    }
    #[tokio::test]
    async fn a_deadline_after_a_tolerated_aws_error_names_that_error_too() {
        let store = crate::ssm::memory::MemoryStore::new();
        store.fail("GetParameter", "InternalFailure");
        let inv = Invocation::detached("eu-west-1", "123456789012");
        let err = inv
            .aws("ssm", "GetParameter", store.client().get("x"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InternalFailure"));
        // The handler carries on past that error; the deadline then cuts it off elsewhere.
        inv.step("calling config:DescribeDeliveryChannels");
        let plain = timed_out(Instant::now(), &inv).to_string();
        assert!(
            plain.contains(
                "while calling config:DescribeDeliveryChannels (the last AWS error of this event: \
                 ssm:GetParameter InternalFailure): answering now"
            ),
            "{plain}"
        );
    }
}
