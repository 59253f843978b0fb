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
    /// No answer before the wait ran out (the process may have died: see `logs`).
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
    child: Child,
    server: Arc<Server>,
    pub function_name: String,
    pub log_stream: String,
}

impl LambdaHost {
    /// Starts `binary` with the Lambda environment variables plus `env` (the AWS endpoint and credentials).
    pub fn start(binary: &Path, env: &[(String, String)]) -> LambdaHost {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the Runtime API"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let queue = Arc::new(Queue::default());
        let (tx, rx) = mpsc::channel();
        {
            let (server, queue) = (Arc::clone(&server), Arc::clone(&queue));
            thread::spawn(move || serve_runtime_api(server, queue, tx));
        }
        let function_name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("function")
            .to_string();
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
            child,
            server,
            function_name,
            log_stream,
        }
    }

    /// Hands `event` to the function with `timeout` as its Lambda deadline and waits for its answer.
    pub fn invoke(&self, event: &Value, timeout: Duration) -> InvokeResult {
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
        let until = Instant::now() + timeout + Duration::from_secs(5);
        let answers = self.answers.lock().expect("answers");
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match answers.recv_timeout(left) {
                Ok((id, result)) if id == request_id => return result,
                Ok(_) => continue,
                Err(_) => return InvokeResult::NoAnswer,
            }
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
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for LambdaHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.unblock();
    }
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

fn serve_runtime_api(server: Arc<Server>, queue: Arc<Queue>, answers: Sender<(String, InvokeResult)>) {
    for mut request in server.incoming_requests() {
        let url = request.url().to_string();
        let method = request.method().clone();
        if method == Method::Get && url.ends_with("/runtime/invocation/next") {
            // Long poll, as Lambda's: answer when an event arrives. Each poll waits on its own thread.
            let queue = Arc::clone(&queue);
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
                    (
                        "Lambda-Runtime-Invoked-Function-Arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:tapguard".into(),
                    ),
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
