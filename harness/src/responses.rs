//! A local stand-in for CloudFormation's pre-signed ResponseURLs: it records every PUT, and can be
//! told to fail the next attempts to exercise the handler's retries.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tiny_http::{Method, Response, Server};

/// One PUT the server received.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status_answered: u16,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// When the PUT arrived (to check an answer came before the Lambda deadline).
    pub received_at: Instant,
}

/// How the server answers one PUT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Status(u16),
    /// Waits this long, then answers this status (a slow or hanging S3).
    Slow(Duration, u16),
}

#[derive(Default)]
struct State {
    attempts: HashMap<String, Vec<Attempt>>,
    /// How to answer the next PUTs, before answering 200 at once again.
    plan: Vec<Answer>,
}

pub struct ResponseServer {
    base: String,
    state: Arc<(Mutex<State>, Condvar)>,
    server: Arc<Server>,
}

impl Default for ResponseServer {
    fn default() -> Self {
        Self::start()
    }
}

impl ResponseServer {
    pub fn start() -> ResponseServer {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind the ResponseURL server"));
        let base = format!("http://{}", server.server_addr().to_ip().expect("IP address"));
        let state: Arc<(Mutex<State>, Condvar)> = Arc::default();
        {
            let (server, state) = (Arc::clone(&server), Arc::clone(&state));
            thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let key = request
                        .url()
                        .trim_start_matches('/')
                        .split('?')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let content_type = request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Content-Type"))
                        .map(|h| h.value.to_string());
                    let (lock, ready) = &*state;
                    let answer = {
                        let mut st = lock.lock().expect("state");
                        let answer = if *request.method() != Method::Put {
                            Answer::Status(405)
                        } else if st.plan.is_empty() {
                            Answer::Status(200)
                        } else {
                            st.plan.remove(0)
                        };
                        let status = match answer {
                            Answer::Status(s) | Answer::Slow(_, s) => s,
                        };
                        st.attempts.entry(key).or_default().push(Attempt {
                            status_answered: status,
                            body,
                            content_type,
                            received_at: Instant::now(),
                        });
                        ready.notify_all();
                        answer
                    };
                    match answer {
                        Answer::Status(status) => {
                            let _ = request.respond(Response::empty(status));
                        }
                        Answer::Slow(wait, status) => {
                            thread::spawn(move || {
                                thread::sleep(wait);
                                let _ = request.respond(Response::empty(status));
                            });
                        }
                    }
                }
            });
        }
        ResponseServer { base, state, server }
    }

    /// A fresh pre-signed-looking URL. The fake signature lets tests check it never reaches a log.
    pub fn url(&self) -> String {
        let key = format!("responses/{:016x}", rand::random::<u64>());
        format!(
            "{}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=tapguardsecret{:016x}",
            self.base,
            rand::random::<u64>()
        )
    }

    /// Answers the next PUTs with these status codes (e.g. `[500, 503]`), then 200 again.
    pub fn fail_next(&self, statuses: &[u16]) {
        let answers: Vec<Answer> = statuses.iter().map(|s| Answer::Status(*s)).collect();
        self.answer_next(&answers);
    }

    /// Answers the next PUTs so (statuses, slow answers), then 200 at once again.
    pub fn answer_next(&self, answers: &[Answer]) {
        self.state.0.lock().expect("state").plan.extend_from_slice(answers);
    }

    /// A URL of a port nothing listens on: every PUT to it is refused.
    pub fn refusing_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        drop(listener);
        format!(
            "http://{addr}/responses/refused?X-Amz-Signature=tapguardsecret{:016x}",
            rand::random::<u64>()
        )
    }

    /// Every PUT the server received, to any URL.
    pub fn all_attempts(&self) -> usize {
        self.state
            .0
            .lock()
            .expect("state")
            .attempts
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Every PUT to `url` so far.
    pub fn attempts(&self, url: &str) -> Vec<Attempt> {
        self.state
            .0
            .lock()
            .expect("state")
            .attempts
            .get(&key_of(url))
            .cloned()
            .unwrap_or_default()
    }

    /// Every body accepted (answered 200) at `url`, in order: CloudFormation must get exactly one answer.
    pub fn accepted(&self, url: &str) -> Vec<Value> {
        self.attempts(url)
            .iter()
            .filter(|a| a.status_answered == 200)
            .filter_map(|a| serde_json::from_slice(&a.body).ok())
            .collect()
    }

    /// Waits for a PUT to `url` answered with 200 and returns its body as JSON.
    pub fn wait_for(&self, url: &str, timeout: Duration) -> Option<Value> {
        let key = key_of(url);
        let until = Instant::now() + timeout;
        let (lock, ready) = &*self.state;
        let mut st = lock.lock().expect("state");
        loop {
            if let Some(ok) = st
                .attempts
                .get(&key)
                .and_then(|a| a.iter().find(|a| a.status_answered == 200))
            {
                return serde_json::from_slice(&ok.body).ok();
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            st = ready.wait_timeout(st, left).expect("state").0;
        }
    }
}

impl Drop for ResponseServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn key_of(url: &str) -> String {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = path.split_once('/').map_or("", |(_, p)| p);
    path.split('?').next().unwrap_or_default().to_string()
}
