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
}

#[derive(Default)]
struct State {
    attempts: HashMap<String, Vec<Attempt>>,
    /// Status codes to answer the next PUTs with, before answering 200 again.
    failures: Vec<u16>,
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
                    let status = {
                        let mut st = lock.lock().expect("state");
                        let status = if *request.method() != Method::Put {
                            405
                        } else if st.failures.is_empty() {
                            200
                        } else {
                            st.failures.remove(0)
                        };
                        st.attempts.entry(key).or_default().push(Attempt {
                            status_answered: status,
                            body,
                            content_type,
                        });
                        ready.notify_all();
                        status
                    };
                    let _ = request.respond(Response::empty(status));
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
        self.state.0.lock().expect("state").failures.extend_from_slice(statuses);
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
