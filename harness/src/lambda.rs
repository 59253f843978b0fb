//! Runs a handler binary as Lambda does: a Lambda Runtime API on loopback hands it events, and its
//! answers and logs are collected.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tiny_http::{Header, Method, Response, Server};

/// What the function answered to one invocation through the Runtime API.
#[derive(Debug, Clone)]
pub enum InvokeResult {
    Response(Value),
    Error(Value),
    /// No answer: the wait ran out, or the process exited first (see [`LambdaHost::exit_code`] and `logs`).
    NoAnswer,
}

struct Pending {
    request_id: String,
    deadline_ms: u64,
    body: Vec<u8>,
}

#[derive(Default)]
struct Queue {
    events: Mutex<Vec<Pending>>,
    ready: Condvar,
}

/// One warm Lambda execution environment: the handler process and the Runtime API it polls.
pub struct LambdaHost {
    queue: Arc<Queue>,
    answers: Mutex<Receiver<(String, InvokeResult)>>,
    logs: Arc<Mutex<String>>,
    child: Mutex<Child>,
    server: Arc<Server>,
    pub function_name: String,
    pub function_arn: String,
    pub log_stream: String,
    /// Values that must never reach the logs (the secret access key it was given).
    secrets: Vec<String>,
}

impl LambdaHost {
    /// Starts `binary` with the Lambda environment variables plus `env` (the AWS endpoint and credentials).
    pub fn start(binary: &Path, env: &[(String, String)]) -> LambdaHost {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the Runtime API"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let queue = Arc::new(Queue::default());
        let (tx, rx) = mpsc::channel();
        let function_name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("function")
            .to_string();
        let region = env
            .iter()
            .find(|(k, _)| k == "AWS_REGION")
            .map_or("us-east-1", |(_, v)| v.as_str());
        let function_arn = format!(
            "arn:{}:lambda:{region}:123456789012:function:{function_name}",
            partition_of(region)
        );
        {
            let (server, queue, arn) = (Arc::clone(&server), Arc::clone(&queue), function_arn.clone());
            thread::spawn(move || serve_runtime_api(server, queue, tx, arn));
        }
        let log_stream = format!("2026/11/23/[$LATEST]{:032x}", rand::random::<u128>());
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function_name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", &log_stream)
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = Arc::clone(&logs);
            thread::spawn(move || collect(stream, logs));
        }
        LambdaHost {
            queue,
            answers: Mutex::new(rx),
            logs,
            child: Mutex::new(child),
            server,
            function_name,
            function_arn,
            log_stream,
            secrets: env
                .iter()
                .filter(|(k, v)| k == "AWS_SECRET_ACCESS_KEY" && v.len() >= 8)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    /// What in the logs must not be there: a ResponseURL's signature or path (the ResponseServer's
    /// URLs carry `tapguardsecret` in theirs), or the secret access key the function was given.
    pub fn leaks(&self) -> Vec<String> {
        let logs = self.logs();
        let mut found = Vec::new();
        for marker in ["X-Amz-Signature", "tapguardsecret", "/responses/"] {
            if logs.contains(marker) {
                found.push(format!("a ResponseURL ({marker})"));
            }
        }
        if self.secrets.iter().any(|s| logs.contains(s.as_str())) {
            found.push("the secret access key".to_string());
        }
        found
    }

    /// Hands `event` to the function with `timeout` as its Lambda deadline and waits for its answer.
    pub fn invoke(&self, event: &Value, timeout: Duration) -> InvokeResult {
        let request_id = self.submit(event, timeout);
        self.wait(&request_id, timeout + Duration::from_secs(5))
    }

    /// Hands `event` to the function without waiting; returns the Lambda request id of the invocation.
    pub fn submit(&self, event: &Value, timeout: Duration) -> String {
        let request_id = format!("{:032x}", rand::random::<u128>());
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        {
            let mut events = self.queue.events.lock().expect("queue");
            events.push(Pending {
                request_id: request_id.clone(),
                deadline_ms,
                body: serde_json::to_vec(event).expect("event"),
            });
            self.queue.ready.notify_all();
        }
        request_id
    }

    /// Waits up to `wait` for the answer to the invocation `request_id`; returns at once when the process
    /// has exited (Lambda would then report `Runtime.ExitError`).
    pub fn wait(&self, request_id: &str, wait: Duration) -> InvokeResult {
        let until = Instant::now() + wait;
        let answers = self.answers.lock().expect("answers");
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return InvokeResult::NoAnswer;
            }
            match answers.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok((id, result)) if id == request_id => return result,
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) if self.exit_code().is_some() => {
                    // An answer posted just before the exit may still be in the channel.
                    return match answers.recv_timeout(Duration::from_millis(200)) {
                        Ok((id, result)) if id == request_id => result,
                        _ => InvokeResult::NoAnswer,
                    };
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(_) => return InvokeResult::NoAnswer,
            }
        }
    }

    /// Kills the function's process (SIGKILL), as an out-of-memory kill or Lambda's own timeout does.
    pub fn kill(&self) {
        let mut child = self.child.lock().expect("child");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The process's exit status once it has exited: its code, or -1 for a signal.
    pub fn exit_code(&self) -> Option<i32> {
        let mut child = self.child.lock().expect("child");
        match child.try_wait() {
            Ok(Some(status)) => Some(status.code().unwrap_or(-1)),
            _ => None,
        }
    }

    /// Everything the function printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    /// The structured log lines (JSON objects) the function printed so far.
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.exit_code().is_none()
    }
}

impl Drop for LambdaHost {
    /// Every integration test's captured logs are scanned when its function goes away: a leak fails
    /// the test that caused it.
    fn drop(&mut self) {
        self.kill();
        self.server.unblock();
        let leaks = self.leaks();
        if !leaks.is_empty() && !thread::panicking() {
            panic!("{} logged {}", self.function_name, leaks.join(" and "));
        }
    }
}

/// The record Lambda hands an asynchronous invocation's `OnFailure` destination when a function ends
/// with an error (its shape as the Lambda developer guide documents it: "Capturing records of Lambda
/// asynchronous invocations"). `error_type` is `None` for the records of a process that died, which
/// carry only an `errorMessage`.
pub fn failure_record(
    function_arn: &str,
    lambda_request_id: &str,
    request_payload: &Value,
    error_type: Option<&str>,
    error_message: &str,
) -> Value {
    let mut response_payload = serde_json::json!({ "errorMessage": error_message });
    if let Some(error_type) = error_type {
        response_payload["errorType"] = Value::String(error_type.to_string());
    }
    serde_json::json!({
        "version": "1.0",
        "timestamp": "2026-11-23T10:00:00.000Z",
        "requestContext": {
            "requestId": lambda_request_id,
            "functionArn": format!("{function_arn}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1
        },
        "requestPayload": request_payload,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled"
        },
        "responsePayload": response_payload
    })
}

fn partition_of(region: &str) -> &'static str {
    [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("eusc-", "aws-eusc"),
    ]
    .iter()
    .find(|(prefix, _)| region.starts_with(prefix))
    .map_or("aws", |(_, p)| p)
}

fn collect(mut stream: Box<dyn Read + Send>, logs: Arc<Mutex<String>>) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        if std::env::var_os("TAPGUARD_ECHO_LOGS").is_some() {
            eprint!("{text}");
        }
        logs.lock().expect("logs").push_str(&text);
    }
}

fn serve_runtime_api(
    server: Arc<Server>,
    queue: Arc<Queue>,
    answers: Sender<(String, InvokeResult)>,
    function_arn: String,
) {
    for mut request in server.incoming_requests() {
        let url = request.url().to_string();
        let method = request.method().clone();
        if method == Method::Get && url.ends_with("/runtime/invocation/next") {
            // Long poll, as Lambda's: answer when an event arrives. Each poll waits on its own thread.
            let (queue, function_arn) = (Arc::clone(&queue), function_arn.clone());
            thread::spawn(move || {
                let pending = {
                    let mut events = queue.events.lock().expect("queue");
                    loop {
                        if !events.is_empty() {
                            break events.remove(0);
                        }
                        events = queue.ready.wait(events).expect("queue");
                    }
                };
                let headers = [
                    ("Lambda-Runtime-Aws-Request-Id", pending.request_id.clone()),
                    ("Lambda-Runtime-Deadline-Ms", pending.deadline_ms.to_string()),
                    ("Lambda-Runtime-Invoked-Function-Arn", function_arn.clone()),
                    (
                        "Lambda-Runtime-Trace-Id",
                        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into(),
                    ),
                    ("Content-Type", "application/json".into()),
                ];
                let mut response = Response::from_data(pending.body);
                for (k, v) in headers {
                    response.add_header(Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("header"));
                }
                let _ = request.respond(response);
            });
            continue;
        }
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        let parts: Vec<&str> = url.trim_start_matches('/').split('/').collect();
        // /2018-06-01/runtime/invocation/{id}/response | /error, /2018-06-01/runtime/init/error
        match parts.as_slice() {
            [_, "runtime", "invocation", id, "response"] => {
                let _ = answers.send((id.to_string(), InvokeResult::Response(value)));
            }
            [_, "runtime", "invocation", id, "error"] => {
                let _ = answers.send((id.to_string(), InvokeResult::Error(value)));
            }
            _ => {
                let _ = answers.send(("init".into(), InvokeResult::Error(value)));
            }
        }
        let _ = request.respond(Response::from_string("{\"status\":\"OK\"}").with_status_code(202));
    }
}

/// The path of a built handler binary: `TAPGUARD_BIN_DIR`, or the cargo target folder this test runs from.
pub fn binary_path(name: &str) -> PathBuf {
    let dir = match std::env::var("TAPGUARD_BIN_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            // target/debug/deps/<test> -> target/debug
            let exe = std::env::current_exe().expect("current exe");
            let mut dir = exe.parent().expect("exe dir").to_path_buf();
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (make test does)",
        path.display()
    );
    path
}
