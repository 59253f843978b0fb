//! What the hostile-input tests (tests/hostile_input.rs) and the fuzz targets (fuzz/) share: every
//! handler's property parser, and the real runtime in process around a small resource, with a
//! ResponseURL that records every answer. The fuzz crate compiles this file as a module of its own
//! (`#[path]`), so it uses nothing of this crate but the handlers, `tapguard-shared` and their
//! dependencies: the fuzz build does not pull the harness.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use tapguard_shared::answers::AnswerBook;
use tapguard_shared::props;
use tapguard_shared::responder::{Responder, RetryPolicy};
use tapguard_shared::{CustomResource, HandlerError, Invocation, Outcome, Runtime};

pub fn fixture_properties(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}-create.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let event: Value = serde_json::from_str(&text).expect("fixture is JSON");
    event["ResourceProperties"].clone()
}

/// Parses `properties` as `P` on a thread with a small stack, the way a Lambda handler's thread would
/// see it, and returns the error text (or None when it parsed). A panic or a stack overflow fails.
pub fn parse_as<P: serde::de::DeserializeOwned + 'static>(properties: Value) -> Option<String> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || props::parse::<P>(&properties).err().map(|err| err.to_string()))
        .expect("thread starts")
        .join()
        .expect("parsing panicked")
}

/// Each handler: (name, its fixture, its parser).
pub type Parser = fn(Value) -> Option<String>;
pub fn handlers() -> Vec<(&'static str, Value, Parser)> {
    parsers()
        .into_iter()
        .map(|(name, parse)| {
            let fixture = match name {
                "iam-password-policy" => json!({"MinimumPasswordLength": "14", "RequireSymbols": "true"}),
                "shield-advanced" => json!({"CreateSubscription": "false"}),
                "delegated-admin" => json!({"Service": "GuardDuty", "AccountId": "111111111111"}),
                fixture => fixture_properties(fixture),
            };
            (name, fixture, parse)
        })
        .collect()
}

/// Each handler's parser, by the handler's name (the fuzz targets need no fixture files).
pub fn parsers() -> Vec<(&'static str, Parser)> {
    vec![
        ("ebs-default-encryption", parse_as::<ebs_default_encryption::Properties>),
        ("config-setup", parse_as::<config_setup::Properties>),
        ("securityhub-enable", parse_as::<securityhub_enable::Properties>),
        ("securityhub-standards", parse_as::<securityhub_standards::Properties>),
        ("access-key-rotation", parse_as::<access_key_rotation::Properties>),
        ("iam-password-policy", parse_as::<iam_password_policy::Properties>),
        ("shield-advanced", parse_as::<shield_advanced::Properties>),
        ("delegated-admin", parse_as::<delegated_admin::Properties>),
    ]
}

/// The small resource the runtime is driven with: Create and Update answer its `Answer` property.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ProbeProperties {
    #[serde(default)]
    answer: Option<String>,
}

pub struct Probe;

impl CustomResource for Probe {
    type Properties = ProbeProperties;
    const RESOURCE_TYPE: &'static str = "Custom::HostileProbe";
    const ID_PREFIX: &'static str = "hostile:";
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[];

    async fn create(&self, _inv: &Invocation, props: ProbeProperties) -> Result<Outcome, HandlerError> {
        Ok(Outcome::new("hostile:1").with("Answer", props.answer.unwrap_or_default()))
    }

    async fn update(
        &self,
        _inv: &Invocation,
        physical_id: &str,
        props: ProbeProperties,
        _old: Option<ProbeProperties>,
    ) -> Result<Outcome, HandlerError> {
        Ok(Outcome::new(physical_id).with("Answer", props.answer.unwrap_or_default()))
    }

    async fn delete(&self, _inv: &Invocation, _id: &str, _props: Option<ProbeProperties>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A ResponseURL that records every PUT it receives.
pub struct AnswerSink {
    pub url: String,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl AnswerSink {
    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("listener");
        let url = format!("http://{}/answer?X-Amz-Signature=not-a-real-one", server.server_addr());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                sink.lock().unwrap().push(body);
                let _ = request.respond(tiny_http::Response::empty(200));
            }
        });
        AnswerSink { url, received }
    }

    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

pub struct HostileRuntime {
    runtime: Arc<Runtime<Probe>>,
    pub sink: AnswerSink,
    tokio: tokio::runtime::Runtime,
}

pub fn world() -> &'static HostileRuntime {
    static WORLD: OnceLock<HostileRuntime> = OnceLock::new();
    WORLD.get_or_init(|| {
        let policy = RetryPolicy {
            connect_timeout: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        HostileRuntime {
            runtime: Arc::new(Runtime::with_responder(
                Probe,
                AnswerBook::in_process("hostile-probe"),
                Responder::with_policy(policy),
            )),
            sink: AnswerSink::start(),
            tokio: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    })
}

fn context(seconds: u64) -> Context {
    let deadline = SystemTime::now() + Duration::from_secs(seconds);
    let mut context = Context::default();
    context.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    context.request_id = "lambda-request".into();
    context
}

/// Runs one event through the runtime; returns the invocation's result and the answers PUT.
pub fn handle(event: Value) -> (Result<Value, String>, Vec<Value>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let w = world();
    w.sink.take();
    let result = w
        .tokio
        .block_on(w.runtime.handle(LambdaEvent::new(event, context(30))))
        .map_err(|err| err.to_string());
    let answers = w
        .sink
        .take()
        .into_iter()
        .map(|body| {
            assert!(
                body.len() <= 4096,
                "an answer over CloudFormation's 4096-byte limit: {} bytes",
                body.len()
            );
            serde_json::from_slice(&body).expect("every answer is JSON")
        })
        .collect();
    (result, answers)
}

pub fn unique_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!("hostile-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}
