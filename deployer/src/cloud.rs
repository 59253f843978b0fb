//! `deploy`, `status` and `delete` against CloudFormation, for every account x region target, in
//! parallel with a bound. Every target's lines carry its name; every failed call, every stack event
//! and every final status goes to the audit log.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Stack, StackEvent, Tag};
use aws_sdk_cloudformation::Client as CloudFormation;
use aws_smithy_types::date_time::Format;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::audit::Audit;
use crate::local::partition_for_region;

/// Options every CloudFormation command shares: where (targets), how many at once, and the audit log.
#[derive(Debug, clap::Args, Clone)]
pub struct TargetArgs {
    /// Regions to act in, comma-separated (default: the configured region).
    #[arg(long, value_delimiter = ',')]
    pub regions: Vec<String>,
    /// Accounts to act in, comma-separated: each is entered by assuming --role-name with STS.
    /// Without it, the current credentials' account.
    #[arg(long, value_delimiter = ',', requires = "role_name")]
    pub accounts: Vec<String>,
    /// The role to assume in each account.
    #[arg(long)]
    pub role_name: Option<String>,
    /// The external id the role's trust policy requires.
    #[arg(long)]
    pub external_id: Option<String>,
    /// How many targets at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The JSON Lines audit log (default: logs/tapguard-<run id>.jsonl).
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// How often to poll CloudFormation while waiting, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// The named profile of the AWS config files to start from (SSO and credential_process
    /// profiles included), as the AWS CLI's --profile.
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// `text` for people; `json` prints one JSON document of the outcomes on standard output (every
    /// other line goes to standard error), for pipelines.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args, Clone)]
pub struct DeployArgs {
    #[arg(long, default_value = "TapStack")]
    pub stack_name: String,
    #[arg(long, default_value = "TapStack.yml")]
    pub template: PathBuf,
    /// A stack parameter, `Key=Value` (repeatable).
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// A JSON file of parameters: `{"Key": "Value"}` or `[{"ParameterKey": ..., "ParameterValue": ...}]`.
    #[arg(long)]
    pub parameters_file: Option<PathBuf>,
    /// A stack tag, `Key=Value` (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Capabilities acknowledged for the change set (default: what the template needs:
    /// CAPABILITY_IAM for IAM resources, CAPABILITY_NAMED_IAM for named ones, CAPABILITY_AUTO_EXPAND
    /// for a transform such as SAM's).
    #[arg(long, value_delimiter = ',')]
    pub capabilities: Vec<String>,
    /// Execute the change set without asking.
    #[arg(long)]
    pub yes: bool,
    /// Create and show the change set only; do not execute it.
    #[arg(long, conflicts_with = "yes")]
    pub no_execute: bool,
    /// Keep what was created or changed when the operation fails, instead of rolling back.
    #[arg(long)]
    pub disable_rollback: bool,
    /// A CloudFormation service role for the stack operation (its ARN), instead of the caller's permissions.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// SNS topics that receive the stack's events, comma-separated ARNs.
    #[arg(long, value_delimiter = ',')]
    pub notification_arns: Vec<String>,
    /// Templates over 51,200 bytes go through S3: the bucket `<prefix>-<account>-<region>`, created
    /// (private, encrypted) where it does not exist yet.
    #[arg(long)]
    pub artifact_bucket_prefix: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Deploy as a service-managed StackSet to organizational units instead of one stack per target.
    #[arg(long, requires = "ous")]
    pub stack_set: bool,
    /// Organizational units (StackSet mode), comma-separated.
    #[arg(long = "ou", value_delimiter = ',')]
    pub ous: Vec<String>,
    /// StackSet mode: how many accounts per region may fail before the operation stops.
    #[arg(long, default_value_t = 0)]
    pub failure_tolerance: i32,
    /// StackSet mode: how many accounts at once per region.
    #[arg(long, default_value_t = 1)]
    pub max_concurrent: i32,
}

#[derive(Debug, clap::Args, Clone)]
pub struct StatusArgs {
    #[arg(long, default_value = "TapStack")]
    pub stack_name: String,
    /// Also detect drift (DetectStackDrift) and report it.
    #[arg(long)]
    pub drift: bool,
    #[command(flatten)]
    pub targets: TargetArgs,
}

#[derive(Debug, clap::Args, Clone)]
pub struct DeleteArgs {
    #[arg(long, default_value = "TapStack")]
    pub stack_name: String,
    /// Delete without asking.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub targets: TargetArgs,
}

/// One account x region to act in.
#[derive(Debug, Clone)]
pub struct Target {
    pub account: Option<String>,
    pub region: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.account {
            Some(a) => write!(f, "{a}/{}", self.region),
            None => write!(f, "{}", self.region),
        }
    }
}

/// How one target ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub good: bool,
    pub text: String,
    /// What `--output json` adds for the target (the change set, the stack status...).
    pub detail: Value,
}

impl Outcome {
    pub fn good(text: impl Into<String>) -> Outcome {
        Outcome {
            good: true,
            text: text.into(),
            detail: Value::Null,
        }
    }
    pub fn bad(text: impl Into<String>) -> Outcome {
        Outcome {
            good: false,
            text: text.into(),
            detail: Value::Null,
        }
    }
    pub fn with(mut self, detail: Value) -> Outcome {
        self.detail = detail;
        self
    }
}

/// A failed AWS call, with its code kept.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub operation: String,
    pub code: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}: {}", self.operation, self.code, self.message)
    }
}

/// Everything a target's work needs.
pub struct Ctx {
    pub target: Target,
    pub label: String,
    pub config: SdkConfig,
    pub audit: Audit,
    pub poll: Duration,
    /// Serialises confirmation prompts between targets running at once.
    pub prompt: Arc<tokio::sync::Mutex<()>>,
    /// The last stack status seen, for the interrupted summary.
    pub last_status: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Ctx {
    pub fn say(&self, line: impl AsRef<str>) {
        crate::progress::line(&format!("[{}] {}", self.label, line.as_ref()));
    }

    pub fn record(&self, kind: &str, detail: Value) {
        self.audit.record(&self.label, kind, detail);
    }

    /// Awaits an SDK call; a failure is recorded in the audit log with its operation and code.
    pub async fn call<T, E>(
        &self,
        operation: &str,
        request: impl std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> Result<T, ApiError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        request.await.map_err(|err| {
            let error = api_error(operation, &err);
            self.record(
                "api_error",
                json!({"operation": error.operation, "code": error.code, "message": error.message}),
            );
            error
        })
    }

    /// Like `call`, for the calls made while waiting: throttling and transient errors (5xx, no
    /// answer) are retried with exponential backoff on top of the SDK's own retries, so a busy API
    /// does not fail a target whose stack is doing well.
    pub async fn call_retrying<T, E, F, Fut>(&self, operation: &str, make: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut delay = self.poll.clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut attempt = 1;
        loop {
            match self.call(operation, make()).await {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && attempt < RETRY_ATTEMPTS => {
                    self.say(format!(
                        "{operation}: {} (transient), retrying in {} ms",
                        e.code,
                        delay.as_millis()
                    ));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn set_status(&self, status: &str) {
        crate::progress::status(&self.label, status);
        self.last_status
            .lock()
            .expect("status map")
            .insert(self.label.clone(), status.to_string());
    }
}

/// Keeps the code and message of an SDK error; one without a code (a bare HTTP 500, a network
/// failure) is named by its HTTP status or its first words rather than the SDK's whole debug dump.
pub fn api_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = match (err.code(), status) {
        (Some(code), _) => code.to_string(),
        (None, Some(status)) => format!("HTTP{status}"),
        (None, None) => "NoResponse".to_string(),
    };
    let message = match err.message() {
        Some(m) => m.to_string(),
        None => {
            let full = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
            full.chars().take(160).collect()
        }
    };
    ApiError {
        operation: operation.to_string(),
        code,
        message,
    }
}

/// How many times a call made while waiting is tried before the target fails.
const RETRY_ATTEMPTS: u32 = 6;

/// Throttling and server-side errors, worth another try later.
pub fn is_transient(e: &ApiError) -> bool {
    matches!(
        e.code.as_str(),
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "InternalFailure"
            | "InternalError"
            | "InternalServiceError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "NoResponse"
    ) || e.code.starts_with("HTTP5")
}

/// What a person should do about an error code met while entering a target.
fn explain_entry_error(error: &ApiError, role_arn: Option<&str>) -> String {
    let advice = match error.code.as_str() {
        "AccessDenied" | "AccessDeniedException" => match role_arn {
            Some(role) => format!(
                "these credentials cannot assume {role}: the role's trust policy must allow this principal (and the external id, if one is set), and the caller needs sts:AssumeRole on it"
            ),
            None => "the credentials lack permission for this call".to_string(),
        },
        "InvalidClientTokenId" | "UnrecognizedClientException" | "RegionDisabledException" => {
            "the region may not be enabled in this account (opt-in regions are enabled under Account settings), or the credentials are not valid".to_string()
        }
        "ExpiredToken" | "ExpiredTokenException" => "the credentials have expired: refresh them".to_string(),
        _ => return error.to_string(),
    };
    format!("{error} ({advice})")
}

/// A run id that names this run in the STS session name, the change set names and the audit log.
pub fn run_id() -> String {
    let now = SystemTime::now();
    let stamp: String = crate::audit::now()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    let nanos = now.duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("{stamp}Z-{:04x}", (nanos ^ std::process::id()) & 0xffff)
}

/// Builds the SDK configuration for a target: the ambient credentials, or a role assumed with STS.
async fn enter(
    base: &SdkConfig,
    target: &Target,
    args: &TargetArgs,
    run: &str,
    audit: &Audit,
) -> Result<SdkConfig, String> {
    let regional = base.to_builder().region(Region::new(target.region.clone())).build();
    let Some(account) = &target.account else {
        return Ok(regional);
    };
    let role_name = args.role_name.as_deref().ok_or("--accounts needs --role-name")?;
    let role_arn = format!(
        "arn:{}:iam::{account}:role/{role_name}",
        partition_for_region(&target.region)
    );
    let session_name = format!("tapguard-{run}");
    let sts = aws_sdk_sts::Client::new(&regional);
    let mut request = sts.assume_role().role_arn(&role_arn).role_session_name(&session_name);
    if let Some(external_id) = &args.external_id {
        request = request.external_id(external_id);
    }
    let label = target.to_string();
    let assumed = match request.send().await {
        Ok(out) => out,
        Err(err) => {
            let error = api_error("AssumeRole", &err);
            audit.record(
                &label,
                "api_error",
                json!({"operation": "AssumeRole", "code": error.code, "message": error.message, "role_arn": role_arn}),
            );
            return Err(explain_entry_error(&error, Some(&role_arn)));
        }
    };
    let credentials = assumed.credentials().ok_or("AssumeRole answered without credentials")?;
    audit.record(
        &label,
        "assumed_role",
        json!({"role_arn": role_arn, "session_name": session_name, "external_id_given": args.external_id.is_some()}),
    );
    let provider = aws_sdk_sts::config::Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        None,
        "tapguard-assumed-role",
    );
    Ok(regional
        .to_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(provider))
        .build())
}

fn targets(args: &TargetArgs, base: &SdkConfig) -> Vec<Target> {
    let regions: Vec<String> = if args.regions.is_empty() {
        vec![base
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into())]
    } else {
        args.regions.clone()
    };
    let accounts: Vec<Option<String>> = if args.accounts.is_empty() {
        vec![None]
    } else {
        args.accounts.iter().cloned().map(Some).collect()
    };
    accounts
        .iter()
        .flat_map(|a| {
            regions.iter().map(move |r| Target {
                account: a.clone(),
                region: r.clone(),
            })
        })
        .collect()
}

/// The SDK configuration the run starts from: the environment, or `--profile` (SSO and
/// credential_process profiles included), as the AWS CLI reads them.
pub async fn base_config(args: &TargetArgs) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    loader.load().await
}

/// The shared frame of every command: targets in parallel, Ctrl-C, the outcome table and exit status.
pub fn run_on_targets<F, Fut>(command: &str, run: String, args: &TargetArgs, work: F) -> ExitCode
where
    F: Fn(Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    crate::progress::init(args.output == OutputFormat::Json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tapguard: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(run_targets(command, run, args, work));
    // A question still waiting for an answer on the terminal (Ctrl-C at the prompt) holds a
    // blocking thread: do not wait for it.
    runtime.shutdown_background();
    if std::io::stderr().is_terminal() {
        let _ = console::Term::stderr().show_cursor();
    }
    code
}

async fn run_targets<F, Fut>(command: &str, run: String, args: &TargetArgs, work: F) -> ExitCode
where
    F: Fn(Arc<Ctx>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let audit_path = args
        .audit_log
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("logs/tapguard-{run}.jsonl")));
    let audit = match Audit::open(&audit_path) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tapguard: {e}");
            return ExitCode::from(2);
        }
    };
    let base = base_config(args).await;
    let targets = targets(args, &base);
    audit.record(
        "-",
        "run_started",
        json!({"command": command, "run_id": run, "targets": targets.iter().map(Target::to_string).collect::<Vec<_>>()}),
    );
    crate::progress::line(&format!(
        "tapguard {command}: run {run}, {} target(s), audit log {}",
        targets.len(),
        audit_path.display()
    ));
    let prompt = Arc::new(tokio::sync::Mutex::new(()));
    let last_status: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let outcomes: Arc<Mutex<BTreeMap<String, Outcome>>> = Arc::default();
    let work = Arc::new(work);
    let jobs = futures_util::stream::iter(targets.clone())
        .map(|target| {
            let (base, audit, prompt, last_status, outcomes, work, run) = (
                base.clone(),
                audit.clone(),
                prompt.clone(),
                last_status.clone(),
                outcomes.clone(),
                work.clone(),
                run.clone(),
            );
            let args = args.clone();
            // Each target runs as its own task so they really overlap on the runtime's threads.
            tokio::spawn(async move {
                let label = target.to_string();
                crate::progress::status(&label, "starting");
                let outcome = match enter(&base, &target, &args, &run, &audit).await {
                    Err(reason) => {
                        crate::progress::line(&format!("[{label}] {reason}"));
                        Outcome::bad(reason)
                    }
                    Ok(config) => {
                        let ctx = Arc::new(Ctx {
                            target: target.clone(),
                            label: label.clone(),
                            config,
                            audit: audit.clone(),
                            poll: Duration::from_millis(args.poll_interval_ms.max(50)),
                            prompt,
                            last_status,
                        });
                        work(ctx).await
                    }
                };
                crate::progress::done(&label);
                audit.record(
                    &label,
                    "final_status",
                    json!({"good": outcome.good, "outcome": outcome.text}),
                );
                outcomes.lock().expect("outcomes").insert(label, outcome);
            })
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect::<Vec<_>>();
    let interrupted = tokio::select! {
        _ = jobs => false,
        _ = tokio::signal::ctrl_c() => true,
        _ = interruption().notified() => true,
    };
    crate::progress::clear();
    let outcomes = outcomes.lock().expect("outcomes").clone();
    let mut all_good = !interrupted;
    if interrupted {
        crate::progress::line(
            "\ninterrupted: stopped waiting. The stacks are left as they are: operations CloudFormation already started go on without us (see `tapguard status`).",
        );
        audit.record("-", "interrupted", json!({"finished_targets": outcomes.len()}));
    }
    let mut rows = Vec::new();
    for target in &targets {
        let label = target.to_string();
        let (good, text, detail) = match outcomes.get(&label) {
            Some(o) => (o.good, o.text.clone(), o.detail.clone()),
            None => {
                let last = last_status.lock().expect("status").get(&label).cloned();
                (
                    false,
                    format!(
                        "interrupted (last seen: {})",
                        last.unwrap_or_else(|| "nothing yet".into())
                    ),
                    Value::Null,
                )
            }
        };
        all_good &= good;
        rows.push((target.clone(), good, text, detail));
    }
    audit.record(
        "-",
        "run_finished",
        json!({"all_good": all_good, "interrupted": interrupted}),
    );
    if args.output == OutputFormat::Json {
        let doc = json!({
            "command": command,
            "run_id": run,
            "audit_log": audit_path.display().to_string(),
            "all_good": all_good,
            "interrupted": interrupted,
            "targets": rows.iter().map(|(t, good, text, detail)| json!({
                "target": t.to_string(),
                "account": t.account,
                "region": t.region,
                "good": good,
                "outcome": text,
                "detail": detail,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!();
        println!("{}", summary_table(&rows));
    }
    if interrupted {
        ExitCode::from(130)
    } else if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The outcome of every target: borders on a terminal, plain aligned columns otherwise.
fn summary_table(rows: &[(Target, bool, String, Value)]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    if crate::progress::stdout_is_terminal() {
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    } else {
        table.load_preset(comfy_table::presets::NOTHING);
    }
    table.set_header(["target", "", "outcome"]);
    for (target, good, text, _) in rows {
        table.add_row([
            target.to_string(),
            if *good { "ok" } else { "FAILED" }.to_string(),
            text.clone(),
        ]);
    }
    table
}

fn stack_status(stack: &Stack) -> String {
    stack.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default()
}

fn is_terminal_status(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS") && !status.is_empty()
}

fn is_good_status(status: &str) -> bool {
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

async fn describe_stack(ctx: &Ctx, cfn: &CloudFormation, name: &str) -> Result<Option<Stack>, ApiError> {
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
async fn stack_events(
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
async fn watch(
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

/// Asks on the terminal (dialoguer); without a terminal the answer is no. Ctrl-C at the question
/// interrupts the run like Ctrl-C anywhere else: the answer is no, and the run stops waiting.
async fn confirm(ctx: &Ctx, question: &str) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        ctx.say("not confirmed: standard input is not a terminal (use --yes)");
        return false;
    }
    let _turn = ctx.prompt.lock().await;
    let question = format!("[{}] {question}", ctx.label);
    let answer = tokio::task::spawn_blocking(move || {
        crate::progress::suspend(|| {
            dialoguer::Confirm::new()
                .with_prompt(question)
                .default(false)
                .interact_opt()
        })
    })
    .await;
    match answer {
        Ok(Ok(Some(yes))) => yes,
        Ok(Ok(None)) => false,
        // console reads the key in raw mode, where Ctrl-C is a key: make it the signal it meant.
        Ok(Err(dialoguer::Error::IO(e))) if e.kind() == std::io::ErrorKind::Interrupted => {
            interrupt();
            false
        }
        _ => false,
    }
}

/// Ctrl-C met where the terminal is read in raw mode (a question): stops the run as SIGINT does.
fn interrupt() {
    interruption().notify_one();
}

fn interruption() -> &'static tokio::sync::Notify {
    static INTERRUPTION: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    INTERRUPTION.get_or_init(tokio::sync::Notify::new)
}

/// Parameters from the file (if any), then the command line (which wins).
pub fn parameters(args: &DeployArgs) -> Result<Vec<(String, String)>, String> {
    crate::parameters::given(args.parameters_file.as_deref(), &args.parameters)
}

pub struct DeployPlan {
    pub args: DeployArgs,
    pub template_body: String,
    pub parameters: Vec<(String, String)>,
    /// The parameters the template declares.
    pub declared: Vec<crate::parameters::Declared>,
    /// Given with --capabilities, or what the template needs.
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub run: String,
}

/// CloudFormation takes at most this many bytes of template inline; larger ones must come from S3.
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;

pub fn prepare(args: &DeployArgs) -> Result<DeployPlan, String> {
    let template_body = std::fs::read_to_string(&args.template)
        .map_err(|e| format!("cannot read the template {}: {e}", args.template.display()))?;
    if template_body.len() > INLINE_TEMPLATE_LIMIT && args.artifact_bucket_prefix.is_none() {
        return Err(format!(
            "{} is {} bytes: CloudFormation accepts at most 51,200 bytes inline; give --artifact-bucket-prefix to upload it to S3",
            args.template.display(),
            template_body.len()
        ));
    }
    let template =
        crate::template::Template::parse(&template_body).map_err(|e| format!("{}: {e}", args.template.display()))?;
    let declared = crate::parameters::declared(&template);
    let parameters = parameters(args)?;
    crate::parameters::check_known(&declared, &parameters)?;
    let capabilities = if args.capabilities.is_empty() {
        template
            .required_capabilities()
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        args.capabilities.clone()
    };
    Ok(DeployPlan {
        parameters,
        declared,
        capabilities,
        tags: crate::parameters::key_values(&args.tags, "--tag")?,
        template_body,
        run: run_id(),
        args: args.clone(),
    })
}

pub fn deploy(args: DeployArgs) -> ExitCode {
    let plan = match prepare(&args) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("tapguard deploy: {e}");
            return ExitCode::from(2);
        }
    };
    if args.stack_set {
        return crate::stackset::deploy(plan);
    }
    run_on_targets("deploy", plan.run.clone(), &args.targets, move |ctx| {
        let plan = plan.clone();
        async move { deploy_target(&ctx, &plan).await }
    })
}

/// The bucket for a target's artifacts: `<prefix>-<account>-<region>`, created private and
/// encrypted where it does not exist yet. Returns its name.
async fn artifact_bucket(ctx: &Ctx, prefix: &str) -> Result<String, String> {
    let sts = aws_sdk_sts::Client::new(&ctx.config);
    let account = match &ctx.target.account {
        Some(a) => a.clone(),
        None => ctx
            .call("GetCallerIdentity", sts.get_caller_identity().send())
            .await
            .map_err(|e| e.to_string())?
            .account()
            .unwrap_or_default()
            .to_string(),
    };
    let region = ctx.target.region.clone();
    let bucket = format!("{prefix}-{account}-{region}");
    let s3 = s3_client(&ctx.config);
    match s3
        .head_bucket()
        .bucket(&bucket)
        .expected_bucket_owner(&account)
        .send()
        .await
    {
        Ok(_) => return Ok(bucket),
        Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
        Err(err) => {
            let e = api_error("HeadBucket", &err);
            ctx.record(
                "api_error",
                json!({"operation": e.operation, "code": e.code, "message": e.message}),
            );
            return Err(format!("{e} (the bucket {bucket} must be this account's)"));
        }
    }
    let mut create = s3.create_bucket().bucket(&bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    ctx.call("CreateBucket", create.send())
        .await
        .map_err(|e| e.to_string())?;
    ctx.call(
        "PutPublicAccessBlock",
        s3.put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ctx.call(
        "PutBucketEncryption",
        s3.put_bucket_encryption()
            .bucket(&bucket)
            .server_side_encryption_configuration(
                aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                    .rules(
                        aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                                    .build()
                                    .map_err(|e| e.to_string())?,
                            )
                            .build(),
                    )
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ctx.say(format!(
        "created the artifact bucket {bucket} (public access blocked, encrypted)"
    ));
    ctx.record("artifact_bucket_created", json!({"bucket": bucket}));
    Ok(bucket)
}

/// S3 with path-style addressing when an endpoint is configured (an emulator), virtual-hosted otherwise.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Uploads a template too large to send inline; returns its URL for TemplateURL.
async fn upload_template(ctx: &Ctx, plan: &DeployPlan, prefix: &str) -> Result<String, String> {
    let bucket = artifact_bucket(ctx, prefix).await?;
    let key = format!("tapguard/{}/{}.template", plan.args.stack_name, plan.run);
    let s3 = s3_client(&ctx.config);
    ctx.call(
        "PutObject",
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(aws_sdk_s3::primitives::ByteStream::from(
                plan.template_body.clone().into_bytes(),
            ))
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let suffix = if ctx.target.region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let url = format!("https://{bucket}.s3.{}.{suffix}/{key}", ctx.target.region);
    ctx.say(format!(
        "template is {} bytes (over 51,200): uploaded to s3://{bucket}/{key}",
        plan.template_body.len()
    ));
    ctx.record(
        "template_uploaded",
        json!({"bucket": bucket, "key": key, "bytes": plan.template_body.len()}),
    );
    Ok(url)
}

async fn deploy_target(ctx: &Ctx, plan: &DeployPlan) -> Outcome {
    let cfn = CloudFormation::new(&ctx.config);
    let name = &plan.args.stack_name;
    let existing = match describe_stack(ctx, &cfn, name).await {
        Ok(s) => s,
        Err(e) => return fail(ctx, explain_entry_error(&e, None)),
    };
    let change_set_type = match &existing {
        None => ChangeSetType::Create,
        Some(stack) => {
            let status = stack_status(stack);
            ctx.set_status(&status);
            if status == "REVIEW_IN_PROGRESS" {
                ChangeSetType::Create
            } else if let Some(why) = explain_status(&status).filter(|_| status != "UPDATE_ROLLBACK_COMPLETE") {
                return fail(ctx, format!("stack {name} is in {status}: {why}"));
            } else {
                ChangeSetType::Update
            }
        }
    };
    let change_set_name = format!("tapguard-{}", plan.run);
    // On an update, every parameter not given keeps its value (UsePreviousValue).
    let previous: Option<Vec<(String, String)>> = existing
        .as_ref()
        .filter(|_| change_set_type == ChangeSetType::Update)
        .map(|stack| {
            stack
                .parameters()
                .iter()
                .map(|p| {
                    (
                        p.parameter_key().unwrap_or_default().to_string(),
                        p.parameter_value().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        });
    let (sent, resolved) = crate::parameters::resolve(&plan.declared, &plan.parameters, previous.as_deref());
    let mut request = cfn
        .create_change_set()
        .stack_name(name)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .set_parameters(Some(sent))
        .set_role_arn(plan.args.role_arn.clone())
        .set_notification_arns(Some(plan.args.notification_arns.clone()).filter(|n| !n.is_empty()))
        .description(format!("tapguard deploy, run {}", plan.run));
    request = match (
        &plan.args.artifact_bucket_prefix,
        plan.template_body.len() > INLINE_TEMPLATE_LIMIT,
    ) {
        (Some(prefix), true) => match upload_template(ctx, plan, prefix).await {
            Ok(url) => request.template_url(url),
            Err(e) => return fail(ctx, format!("cannot upload the template: {e}")),
        },
        _ => request.template_body(&plan.template_body),
    };
    for (k, v) in &plan.tags {
        request = request.tags(Tag::builder().key(k).value(v).build());
    }
    for c in &plan.capabilities {
        request = request.capabilities(Capability::from(c.as_str()));
    }
    let created = match ctx.call("CreateChangeSet", request.send()).await {
        Ok(c) => c,
        // CloudFormation answers an update that changes nothing either way: this refusal here, or a
        // change set that ends FAILED with "didn't contain changes" (below).
        Err(e) if is_no_changes(&e.message) => {
            ctx.say(format!("no changes: stack {name} is already up to date"));
            ctx.record(
                "change_set_empty",
                json!({"name": change_set_name, "reason": e.message}),
            );
            let status = existing.as_ref().map(stack_status).unwrap_or_default();
            return Outcome::good(format!("no changes ({status})"))
                .with(json!({"stack_status": status, "changes": [], "executed": false}));
        }
        Err(e) => return fail(ctx, explain_change_set_error(&e)),
    };
    let change_set_id = created.id().unwrap_or(&change_set_name).to_string();
    let stack_id = created.stack_id().unwrap_or(name).to_string();
    ctx.record(
        "change_set",
        json!({
            "name": change_set_name,
            "type": change_set_type.as_str(),
            "stack_id": stack_id,
            "capabilities": plan.capabilities,
            "parameters_given": resolved.iter().filter(|r| r.source == crate::parameters::Source::Given).map(|r| &r.key).collect::<Vec<_>>(),
            "parameters_kept": resolved.iter().filter(|r| r.source == crate::parameters::Source::Previous).map(|r| &r.key).collect::<Vec<_>>(),
            "parameters_changed": resolved.iter().filter(|r| r.changed == Some(true) && r.source == crate::parameters::Source::Given).map(|r| &r.key).collect::<Vec<_>>(),
        }),
    );

    // Wait for the change set to be computed.
    let described = loop {
        let out = match ctx
            .call_retrying("DescribeChangeSet", || {
                cfn.describe_change_set()
                    .change_set_name(&change_set_id)
                    .stack_name(&stack_id)
                    .send()
            })
            .await
        {
            Ok(o) => o,
            Err(e) => return fail(ctx, e.to_string()),
        };
        match out.status() {
            Some(ChangeSetStatus::CreateComplete) | Some(ChangeSetStatus::Failed) => break out,
            _ => tokio::time::sleep(ctx.poll).await,
        }
    };
    if described.status() == Some(&ChangeSetStatus::Failed) {
        let reason = described.status_reason().unwrap_or("no reason given").to_string();
        let no_changes = is_no_changes(&reason);
        // A change set that cannot be executed is only clutter in the console.
        let _ = ctx
            .call(
                "DeleteChangeSet",
                cfn.delete_change_set()
                    .change_set_name(&change_set_id)
                    .stack_name(&stack_id)
                    .send(),
            )
            .await;
        if no_changes {
            ctx.say(format!("no changes: stack {name} is already up to date"));
            ctx.record("change_set_empty", json!({"name": change_set_name, "reason": reason}));
            let status = existing.as_ref().map(stack_status).unwrap_or_default();
            return Outcome::good(format!("no changes ({status})"))
                .with(json!({"stack_status": status, "changes": [], "executed": false}));
        }
        return fail(ctx, format!("the change set failed: {reason}"));
    }

    ctx.say(format!(
        "change set {change_set_name} ({}) for stack {name}:",
        change_set_type.as_str()
    ));
    if !resolved.is_empty() {
        ctx.say("parameters:");
        for r in &resolved {
            ctx.say(r.line());
        }
    }
    let mut changes = Vec::new();
    for change in described.changes() {
        if let Some(rc) = change.resource_change() {
            let line = format!(
                "  {:<8} {:<28} {:<36}{}",
                rc.action().map(|a| a.as_str()).unwrap_or(""),
                rc.logical_resource_id().unwrap_or(""),
                rc.resource_type().unwrap_or(""),
                match rc.replacement().map(|r| r.as_str()) {
                    Some("True") => "  REPLACEMENT".to_string(),
                    Some("Conditional") => "  replacement: conditional".to_string(),
                    _ => String::new(),
                }
            );
            ctx.say(line.trim_end());
            changes.push(json!({"action": rc.action().map(|a| a.as_str()), "logical_id": rc.logical_resource_id(), "type": rc.resource_type(), "replacement": rc.replacement().map(|r| r.as_str())}));
        }
    }
    ctx.record("change_set_ready", json!({"name": change_set_name, "changes": changes}));
    let detail = |executed: bool, status: &str| {
        json!({
            "stack_id": stack_id,
            "stack_status": status,
            "change_set": {"name": change_set_name, "id": change_set_id, "type": change_set_type.as_str()},
            "changes": changes,
            "parameters": resolved.iter().map(crate::parameters::Resolved::json).collect::<Vec<_>>(),
            "capabilities": plan.capabilities,
            "executed": executed,
        })
    };

    if plan.args.no_execute {
        ctx.say(format!(
            "change set {change_set_name} is ready; not executed (--no-execute)"
        ));
        let status = existing
            .as_ref()
            .map(stack_status)
            .unwrap_or_else(|| "REVIEW_IN_PROGRESS".into());
        return Outcome::good(format!("change set {change_set_name} ready, not executed")).with(detail(false, &status));
    }
    if !plan.args.yes && !confirm(ctx, &format!("execute change set {change_set_name}?")).await {
        let status = existing
            .as_ref()
            .map(stack_status)
            .unwrap_or_else(|| "REVIEW_IN_PROGRESS".into());
        return Outcome::bad(format!("change set {change_set_name} created, not executed"))
            .with(detail(false, &status));
    }

    // Events from before this run are history: only what this execution causes is shown.
    let mut seen: HashSet<String> = match stack_events(ctx, &cfn, &stack_id, &HashSet::new()).await {
        Ok(events) => events.iter().filter_map(|e| e.event_id().map(str::to_string)).collect(),
        Err(e) => return fail(ctx, e.to_string()),
    };
    let mut execute = cfn
        .execute_change_set()
        .change_set_name(&change_set_id)
        .stack_name(&stack_id);
    if plan.args.disable_rollback {
        execute = execute.disable_rollback(true);
    }
    if let Err(e) = ctx.call("ExecuteChangeSet", execute.send()).await {
        return fail(ctx, explain_change_set_error(&e));
    }
    ctx.say(format!("executing {change_set_name}"));
    let outcome = settle(ctx, &cfn, &stack_id, &mut seen, name).await;
    let status = ctx
        .last_status
        .lock()
        .expect("status")
        .get(&ctx.label)
        .cloned()
        .unwrap_or_default();
    let detail = detail(true, &status);
    outcome.with(detail)
}

/// Waits for the stack, then reports its end: outputs on success, the root cause on failure.
async fn settle(ctx: &Ctx, cfn: &CloudFormation, stack_id: &str, seen: &mut HashSet<String>, name: &str) -> Outcome {
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
fn is_no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

fn explain_change_set_error(e: &ApiError) -> String {
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

fn fail(ctx: &Ctx, text: String) -> Outcome {
    ctx.say(format!("FAILED: {text}"));
    Outcome::bad(text)
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

    #[test]
    fn parameters_come_from_the_file_in_either_form_and_the_command_line_wins() {
        let dir = std::env::temp_dir().join(format!("tapguard-params-{}", run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let object = dir.join("object.json");
        std::fs::write(&object, r#"{"EnvironmentSuffix": "prod", "MaxAccessKeyAgeDays": 90}"#).unwrap();
        let list = dir.join("list.json");
        std::fs::write(
            &list,
            r#"[{"ParameterKey": "EnvironmentSuffix", "ParameterValue": "stage"}]"#,
        )
        .unwrap();
        let args = |file: &PathBuf, cli: &[&str]| DeployArgs {
            stack_name: "TapStack".into(),
            template: "TapStack.yml".into(),
            parameters: cli.iter().map(|s| s.to_string()).collect(),
            parameters_file: Some(file.clone()),
            tags: vec![],
            capabilities: vec![],
            yes: true,
            no_execute: false,
            disable_rollback: false,
            role_arn: None,
            notification_arns: vec![],
            artifact_bucket_prefix: None,
            targets: TargetArgs {
                regions: vec![],
                accounts: vec![],
                role_name: None,
                external_id: None,
                concurrency: 1,
                audit_log: None,
                poll_interval_ms: 100,
                profile: None,
                output: OutputFormat::Text,
            },
            stack_set: false,
            ous: vec![],
            failure_tolerance: 0,
            max_concurrent: 1,
        };
        assert_eq!(
            parameters(&args(&object, &["EnvironmentSuffix=dev"])).unwrap(),
            vec![
                ("EnvironmentSuffix".into(), "dev".into()),
                ("MaxAccessKeyAgeDays".into(), "90".into())
            ]
        );
        assert_eq!(
            parameters(&args(&list, &[])).unwrap(),
            vec![("EnvironmentSuffix".to_string(), "stage".to_string())]
        );
        let err = parameters(&args(&list, &["NoEquals"])).unwrap_err();
        assert!(err.contains("expected KEY=VALUE"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn targets_are_accounts_times_regions() {
        let base = SdkConfig::builder().region(Region::new("eu-west-1")).build();
        let args = TargetArgs {
            regions: vec!["us-east-1".into(), "us-west-2".into()],
            accounts: vec!["111111111111".into(), "222222222222".into()],
            role_name: Some("r".into()),
            external_id: None,
            concurrency: 4,
            audit_log: None,
            poll_interval_ms: 100,
            profile: None,
            output: OutputFormat::Text,
        };
        let labels: Vec<String> = targets(&args, &base).iter().map(Target::to_string).collect();
        assert_eq!(
            labels,
            [
                "111111111111/us-east-1",
                "111111111111/us-west-2",
                "222222222222/us-east-1",
                "222222222222/us-west-2"
            ]
        );
        let none = TargetArgs {
            regions: vec![],
            accounts: vec![],
            ..args
        };
        assert_eq!(targets(&none, &base)[0].to_string(), "eu-west-1");
    }
}
