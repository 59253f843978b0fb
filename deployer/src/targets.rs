//! Where a command acts and how: the account x region targets (entered with STS), the run frame
//! every command shares (targets in parallel with a bound, Ctrl-C, the outcome table or JSON, the
//! exit status), and `Ctx`, what a target's work gets: its SDK configuration, its lines, its audit
//! records and its calls (retried while waiting).

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::api::{api_error, explain_entry_error, is_transient, ApiError, RETRY_ATTEMPTS};
use crate::audit::Audit;

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
    /// A file listing the targets instead. YAML (`*.yml`, `*.yaml`): groups of `accounts` or `ous`
    /// (every ACTIVE account under them) × `regions`, each with its own `parameters` and `role`, and
    /// `defaults` (README: "A fleet"). Any other name: one target per line, `ACCOUNT/REGION` or `REGION`
    /// (the current credentials' account), then optionally `KEY=VALUE` stack parameters; `#` comments.
    /// Accounts are entered with the group's role, else --role-name.
    #[arg(long = "targets", value_name = "FILE", conflicts_with_all = ["regions", "accounts"])]
    pub targets_file: Option<PathBuf>,
    /// The role to assume in each account.
    #[arg(long)]
    pub role_name: Option<String>,
    /// The external id the role's trust policy requires.
    #[arg(long)]
    pub external_id: Option<String>,
    /// How long each assumed-role session lasts, in seconds (900 to 43,200; the role's maximum
    /// session duration must allow it). Sessions are renewed before they expire, so a run may last
    /// longer than this.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(900..=43200))]
    pub role_duration: u64,
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

/// One account x region to act in.
#[derive(Debug, Clone)]
pub struct Target {
    pub account: Option<String>,
    pub region: String,
    /// Stack parameters for this target only (a targets file's `KEY=VALUE` after the target); they
    /// win over `--parameter` and over what the plan reads.
    pub parameters: Vec<(String, String)>,
    /// The role to assume in its account, when its group in a YAML targets file names one (else
    /// --role-name).
    pub role_name: Option<String>,
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
    /// Every target of the run, in order (for work done once per account).
    pub all_targets: Arc<Vec<Target>>,
}

impl Ctx {
    pub fn say(&self, line: impl AsRef<str>) {
        crate::progress::line(&format!("[{}] {}", self.label, line.as_ref()));
    }

    pub fn record(&self, kind: &str, detail: Value) {
        self.audit.record(&self.label, kind, detail);
    }

    /// Awaits an SDK call; a failure is recorded in the audit log with its operation and code.
    /// [`Ctx::call`] for a call made without an SDK crate (`tapguard_shared::api`).
    pub async fn call_direct<T>(
        &self,
        operation: &str,
        request: impl std::future::Future<Output = Result<T, tapguard_shared::api::ApiError>>,
    ) -> Result<T, ApiError> {
        request.await.map_err(|err| {
            let error = ApiError {
                operation: operation.to_string(),
                code: err.code,
                message: err.message,
            };
            self.record(
                "api_error",
                json!({"operation": error.operation, "code": error.code, "message": error.message}),
            );
            error
        })
    }

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

    pub fn set_status(&self, status: &str) {
        crate::progress::status(&self.label, status);
        self.last_status
            .lock()
            .expect("status map")
            .insert(self.label.clone(), status.to_string());
    }
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

pub fn partition_for_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Builds the SDK configuration for a target: the ambient credentials, or a role assumed with STS.
pub async fn enter(
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
    let role_name = target
        .role_name
        .as_deref()
        .or(args.role_name.as_deref())
        .ok_or("--accounts needs --role-name")?;
    let role_arn = format!(
        "arn:{}:iam::{account}:role/{role_name}",
        partition_for_region(&target.region)
    );
    let session_name = format!("tapguard-{run}");
    let sts = aws_sdk_sts::Client::new(&regional);
    // One AssumeRole first, to fail the target with the code and the advice if it is refused; the
    // target then works with a provider that assumes the role again before each session expires.
    let mut request = sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name(&session_name)
        .duration_seconds(args.role_duration as i32);
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
    assumed.credentials().ok_or("AssumeRole answered without credentials")?;
    audit.record(
        &label,
        "assumed_role",
        json!({"role_arn": role_arn, "session_name": session_name, "external_id_given": args.external_id.is_some(), "duration_seconds": args.role_duration}),
    );
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role_arn)
        .session_name(&session_name)
        .session_length(Duration::from_secs(args.role_duration));
    if let Some(external_id) = &args.external_id {
        provider = provider.external_id(external_id);
    }
    let provider = provider.configure(&regional).build().await;
    Ok(regional
        .to_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(provider))
        .build())
}

pub async fn targets(args: &TargetArgs, base: &SdkConfig) -> Result<Vec<Target>, String> {
    if let Some(path) = &args.targets_file {
        let targets = crate::targets_file::read(path, base).await?;
        if let Some(target) = targets
            .iter()
            .find(|t| t.account.is_some() && t.role_name.is_none() && args.role_name.is_none())
        {
            return Err(format!(
                "{} names accounts ({target} first) with no role: give --role-name, the role to assume in \
                 each, or a `role` in the file",
                path.display()
            ));
        }
        return Ok(targets);
    }
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
    Ok(accounts
        .iter()
        .flat_map(|a| {
            regions.iter().map(move |r| Target {
                account: a.clone(),
                region: r.clone(),
                parameters: Vec::new(),
                role_name: None,
            })
        })
        .collect())
}

/// The SDK configuration the run starts from: the environment, or `--profile` (SSO and
/// credential_process profiles included), as the AWS CLI reads them.
pub async fn base_config(args: &TargetArgs) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(tapguard_shared::tls::https_client());
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
    run_with_finish(command, run, args, work, finish_outcomes)
}

/// A run that has ended (or was interrupted): every target in order with how it ended.
pub struct Finished {
    pub command: String,
    pub run: String,
    pub audit: Audit,
    pub audit_path: PathBuf,
    pub interrupted: bool,
    pub output: OutputFormat,
    /// (target, whether it ended, its outcome); a target that did not end (interrupted) has a bad
    /// outcome naming its last status.
    pub rows: Vec<(Target, bool, Outcome)>,
}

/// The frame of [`run_on_targets`] with another ending: `finish` reports the outcomes and says the
/// exit status (`tapguard verify` prints its matrix instead of the outcome table).
pub fn run_with_finish<F, Fut>(
    command: &str,
    run: String,
    args: &TargetArgs,
    work: F,
    finish: fn(Finished) -> ExitCode,
) -> ExitCode
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
    let code = runtime.block_on(run_targets(command, run, args, work, finish));
    // A question still waiting for an answer on the terminal (Ctrl-C at the prompt) holds a
    // blocking thread: do not wait for it.
    runtime.shutdown_background();
    if std::io::stderr().is_terminal() {
        let _ = console::Term::stderr().show_cursor();
    }
    code
}

async fn run_targets<F, Fut>(
    command: &str,
    run: String,
    args: &TargetArgs,
    work: F,
    finish: fn(Finished) -> ExitCode,
) -> ExitCode
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
    let targets = match targets(args, &base).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tapguard: {e}");
            return ExitCode::from(2);
        }
    };
    let all_targets = Arc::new(targets.clone());
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
            let all_targets = all_targets.clone();
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
                            all_targets,
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
    if interrupted {
        crate::progress::line(
            "\ninterrupted: stopped waiting. The stacks are left as they are: operations CloudFormation already started go on without us (see `tapguard status`).",
        );
        audit.record("-", "interrupted", json!({"finished_targets": outcomes.len()}));
    }
    let mut rows = Vec::new();
    for target in &targets {
        let label = target.to_string();
        let row = match outcomes.get(&label) {
            Some(o) => (target.clone(), true, o.clone()),
            None => {
                let last = last_status.lock().expect("status").get(&label).cloned();
                let text = format!(
                    "interrupted (last seen: {})",
                    last.unwrap_or_else(|| "nothing yet".into())
                );
                (target.clone(), false, Outcome::bad(text))
            }
        };
        rows.push(row);
    }
    finish(Finished {
        command: command.to_string(),
        run,
        audit,
        audit_path,
        interrupted,
        output: args.output,
        rows,
    })
}

/// How deploy, status and delete end: the outcome table (or JSON) and 0 only if every target is good.
pub fn finish_outcomes(done: Finished) -> ExitCode {
    let Finished {
        command,
        run,
        audit,
        audit_path,
        interrupted,
        output,
        rows,
    } = done;
    let rows: Vec<(Target, bool, String, Value)> = rows
        .into_iter()
        .map(|(t, _, o)| (t, o.good, o.text, o.detail))
        .collect();
    let all_good = !interrupted && rows.iter().all(|(_, good, _, _)| *good);
    audit.record(
        "-",
        "run_finished",
        json!({"all_good": all_good, "interrupted": interrupted}),
    );
    if output == OutputFormat::Json {
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

/// Ctrl-C met where the terminal is read in raw mode (a question): stops the run as SIGINT does.
pub fn interrupt() {
    interruption().notify_one();
}

fn interruption() -> &'static tokio::sync::Notify {
    static INTERRUPTION: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    INTERRUPTION.get_or_init(tokio::sync::Notify::new)
}

/// The outcome of every target: borders on a terminal, plain aligned columns otherwise.
fn summary_table(rows: &[(Target, bool, String, Value)]) -> comfy_table::Table {
    let mut table = crate::progress::table();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn targets_are_accounts_times_regions() {
        let base = SdkConfig::builder().region(Region::new("eu-west-1")).build();
        let args = TargetArgs {
            regions: vec!["us-east-1".into(), "us-west-2".into()],
            accounts: vec!["111111111111".into(), "222222222222".into()],
            role_name: Some("r".into()),
            targets_file: None,
            external_id: None,
            role_duration: 3600,
            concurrency: 4,
            audit_log: None,
            poll_interval_ms: 100,
            profile: None,
            output: OutputFormat::Text,
        };
        let labels: Vec<String> = targets(&args, &base)
            .await
            .unwrap()
            .iter()
            .map(Target::to_string)
            .collect();
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
        assert_eq!(targets(&none, &base).await.unwrap()[0].to_string(), "eu-west-1");
    }
}
