//! One cold Lambda execution environment, measured: a one-shot Lambda Runtime API on loopback, the
//! function's process started under it, the time to its first `GET /next`, its peak RSS, and (when an
//! event is given) the time from handing it the event to its `POST /response`.
//!
//! The harness's `LambdaHost` runs functions for the tests; this is the same protocol, cut down to what a
//! measurement needs, so that nothing else (log collection threads, queues) runs in the measured window.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tiny_http::{Header, Method, Response, Server};

/// How to start one function: a handler binary, or the peer's Python under `awslambdaric`.
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
}

/// What one cold start measured.
#[derive(Debug, Clone)]
pub struct Sample {
    /// From just before the process was spawned to its first `GET /next`.
    pub cold_start: Duration,
    /// VmHWM at the first `GET /next`, KiB.
    pub rss_at_start_kib: u64,
    /// Of the resident set then: pages mapped from files (the binary, shared libraries: RssFile) and
    /// anonymous memory (heap, stacks, relocated data: RssAnon), KiB.
    pub rss_file_kib: u64,
    pub rss_anon_kib: u64,
    /// From the event handed over to the function's `POST /response`.
    pub event_time: Option<Duration>,
    /// VmHWM at the `POST /response` (or at the first `GET /next` without an event), KiB.
    pub peak_rss_kib: u64,
}

impl Launch {
    /// Starts the function, hands it `event` (if any) at its first `/next`, and kills it once it has
    /// answered. Its output goes to `log`.
    pub fn run(&self, event: Option<&Value>, log: &Path, timeout: Duration) -> Result<Sample, String> {
        let server = Server::http("127.0.0.1:0").map_err(|e| format!("bind the Runtime API: {e}"))?;
        let addr = server.server_addr().to_ip().expect("an IP address");
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/01/[$LATEST]bench")
            .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }

        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.program.display()))?;
        let pid = child.id();
        let outcome = serve(&server, pid, started, event, timeout);
        let _ = child.kill();
        let _ = child.wait();
        outcome.map_err(|e| format!("{}: {e} (its output: {})", self.name, log.display()))
    }
}

fn serve(
    server: &Server,
    pid: u32,
    started: Instant,
    event: Option<&Value>,
    timeout: Duration,
) -> Result<Sample, String> {
    let until = started + timeout;
    let mut sample: Option<Sample> = None;
    let mut handed: Option<Instant> = None;
    // A second `/next` is held open (as Lambda does between events) until the process is killed.
    let mut held = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer within {} s", timeout.as_secs()));
        }
        let Some(mut request) = server.recv_timeout(left).map_err(|e| e.to_string())? else {
            continue;
        };
        let url = request.url().to_string();
        if *request.method() == Method::Get && url.ends_with("/runtime/invocation/next") {
            if sample.is_some() {
                held.push(request);
                continue;
            }
            let cold_start = started.elapsed();
            let rss = peak_rss_kib(pid);
            sample = Some(Sample {
                cold_start,
                rss_at_start_kib: rss,
                rss_file_kib: status_kib(pid, "RssFile:"),
                rss_anon_kib: status_kib(pid, "RssAnon:"),
                event_time: None,
                peak_rss_kib: rss,
            });
            let Some(event) = event else {
                return Ok(sample.expect("just set"));
            };
            let deadline_ms = (SystemTime::now() + Duration::from_secs(300))
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_millis();
            let mut response = Response::from_data(serde_json::to_vec(event).expect("event"));
            for (k, v) in [
                (
                    "Lambda-Runtime-Aws-Request-Id",
                    "00000000-0000-4000-8000-000000000001".to_string(),
                ),
                ("Lambda-Runtime-Deadline-Ms", deadline_ms.to_string()),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:eu-west-1:123456789012:function:bench".to_string(),
                ),
                (
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into(),
                ),
                ("Content-Type", "application/json".into()),
            ] {
                response.add_header(Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("header"));
            }
            request.respond(response).map_err(|e| format!("hand the event: {e}"))?;
            handed = Some(Instant::now());
            continue;
        }
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let _ = request.respond(Response::from_string("{\"status\":\"OK\"}").with_status_code(202));
        if url.ends_with("/response") {
            if let (Some(mut s), Some(h)) = (sample.take(), handed) {
                s.event_time = Some(h.elapsed());
                s.peak_rss_kib = peak_rss_kib(pid);
                return Ok(s);
            }
        }
        return Err(format!("it posted {url}: {body}"));
    }
}

/// The process's peak resident set (VmHWM), KiB; 0 where /proc does not say.
fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// One `<field> <n> kB` line of /proc/<pid>/status, KiB; 0 where /proc does not say.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
