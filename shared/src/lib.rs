//! The CloudFormation custom-resource protocol, shared by every tapguard handler.
//!
//! A handler crate implements [`CustomResource`] and its `main` is two statements (the resource is built
//! from the AWS configuration while the runtime asks for the first event: [`run`], [`deferred`]):
//!
//! ```text
//! tapguard_shared::init_logging();
//! tapguard_shared::run(|config| MyResource::new(config)).await
//! ```

pub mod answers;
pub mod api;
pub mod arn;
pub mod config;
pub mod deferred;
mod error;
pub mod ledger;
pub mod props;
pub mod readback;
pub mod responder;
pub mod response;
mod runtime;
pub mod ssm;
pub mod tls;
pub mod verify;

pub use error::{is_access_denied, is_throttling, AwsCallError, AwsResultExt, HandlerError};
pub use ledger::{Claim, Claimant, Ledger, Record, Release};
pub use runtime::{
    handler_name, run, CustomResource, Invocation, Outcome, Runtime, CUT_OFF_REASON, FAILED_CREATE_PREFIX,
};

/// AWS configuration from the environment only ([`config`]: the variables Lambda sets and the SDKs
/// define). `AWS_ENDPOINT_URL` points every client at another endpoint (the local emulator in tests).
///
/// Loaded once per process and environment: `main` and the runtime both ask for it before the first
/// event, and a later call with the same `AWS_*` environment gets the same configuration (a program that
/// changes the environment in between, as the rotation bench does, gets a fresh one).
pub async fn aws_config() -> aws_config::SdkConfig {
    /// The `AWS_*` environment a configuration was loaded with, and the configuration.
    type Loaded = (Vec<(String, String)>, aws_config::SdkConfig);
    static LOADED: std::sync::Mutex<Option<Loaded>> = std::sync::Mutex::new(None);
    let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("AWS_")).collect();
    if let Some((seen, config)) = LOADED.lock().expect("config cache").as_ref() {
        if *seen == env {
            return config.clone();
        }
    }
    let config = config::from_environment();
    *LOADED.lock().expect("config cache") = Some((env, config.clone()));
    config
}

/// Structured logs on stdout, JSON unless `AWS_LAMBDA_LOG_FORMAT=Text`, at `AWS_LAMBDA_LOG_LEVEL`
/// (or `RUST_LOG`, default INFO).
///
/// `lambda_runtime` logs the raw event at TRACE, and the raw event holds the ResponseURL, a pre-signed
/// credential: its logs are capped at INFO whatever level is asked for.
pub fn init_logging() {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};

    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("")
        .add_directive("lambda_runtime=info".parse().expect("valid directive"))
        .add_directive("lambda_runtime_api_client=info".parse().expect("valid directive"))
        .add_directive("hyper=info".parse().expect("valid directive"))
        .add_directive("reqwest=info".parse().expect("valid directive"))
        .add_directive("aws_smithy_runtime=info".parse().expect("valid directive"))
        .add_directive("aws_sigv4=info".parse().expect("valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::io::stdout);
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let _ = if text {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    };
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "handler panicked");
    }));
}
