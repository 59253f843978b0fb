//! Sends the one response of an event to its ResponseURL.
//!
//! The ResponseURL is a pre-signed S3 URL: a credential. It is never logged, and reqwest's errors are
//! stripped of it (`without_url`) before they go anywhere.
//!
//! Every attempt is bounded by the time left before the hard (Lambda) deadline, and the retry decision
//! counts the whole attempt (connect, send, wait for the status), not the connect timeout only. The
//! time the runtime keeps back from the handler for the answer is derived from the same [`RetryPolicy`]
//! ([`RetryPolicy::reserve`]), so the two cannot drift apart.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::{info, warn};

/// How the response PUT is retried. The defaults fit S3, which answers a PUT of 4 KB in well under a
/// second: an attempt that takes longer is a network problem, better met by a fresh connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub connect_timeout: Duration,
    /// The most one attempt may take, from connect to the response status.
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            connect_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(4),
            max_attempts: 4,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait before attempt `attempt + 1` (full jitter draws up to it).
    fn backoff_ceiling(&self, attempt: u32) -> Duration {
        self.base_backoff
            .saturating_mul(1 << attempt.min(10).saturating_sub(1))
            .min(self.max_backoff)
    }

    /// Exponential backoff with jitter: a random wait between half the ceiling and the ceiling.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let millis = self.backoff_ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// The time kept back from the handler so the answer can be delivered: two whole attempts and the
    /// wait between them. A slow ResponseURL then still gets one retry before the hard deadline; the
    /// further attempts of [`RetryPolicy::max_attempts`] are made only while time is left.
    pub fn reserve(&self) -> Duration {
        self.attempt_timeout * 2 + self.backoff_ceiling(1)
    }
}

/// The response PUT's HTTPS client is not made on the way to the first `GET /next`: building it loads
/// and parses the system's root certificates (reqwest's platform verifier), which lengthened every cold
/// start. [`Responder::with_policy`] starts building it on a thread of its own, so it is ready (or nearly)
/// when the first answer is sent, whose time is kept back from the handler and must not pay for it.
#[derive(Debug, Clone)]
pub struct Responder {
    http: Arc<OnceLock<reqwest::Client>>,
    policy: RetryPolicy,
}

impl Default for Responder {
    fn default() -> Self {
        Self::new()
    }
}

/// What became of the PUT of one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub attempts: u32,
    /// The HTTP status of the accepted attempt, or why none was accepted (never the URL).
    pub result: Result<u16, String>,
}

impl Responder {
    pub fn new() -> Self {
        Self::with_policy(RetryPolicy::default())
    }

    pub fn with_policy(policy: RetryPolicy) -> Self {
        let responder = Responder {
            http: Arc::default(),
            policy,
        };
        let early = responder.clone();
        // If the thread cannot start, the first PUT builds the client itself.
        let _ = std::thread::Builder::new().name("responder-tls".into()).spawn(move || {
            early.http();
        });
        responder
    }

    /// The client, built here by whichever comes first: the thread started at construction or a PUT.
    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            crate::tls::install_crypto_provider();
            reqwest::Client::builder()
                .connect_timeout(self.policy.connect_timeout)
                .timeout(self.policy.attempt_timeout)
                .build()
                .expect("the HTTP client for responses builds")
        })
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// PUTs `body` to `url`: success only on 2xx; network errors, timeouts, 429 and 5xx are retried
    /// with backoff and jitter, at most [`RetryPolicy::max_attempts`] times. No attempt starts unless it
    /// can run its whole `attempt_timeout` before `hard_deadline`, except the first, which gets whatever
    /// time is left.
    pub async fn put(&self, url: &str, body: Vec<u8>, hard_deadline: Instant) -> Delivery {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let left = hard_deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Delivery {
                    attempts: attempt - 1,
                    result: Err("no time was left before the Lambda deadline to send the response".into()),
                };
            }
            // S3 pre-signed URLs are signed without a content type: send none.
            let request = self
                .http()
                .put(url)
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(body.clone())
                .timeout(left.min(self.policy.attempt_timeout))
                .send();
            let (retryable, problem) = match request.await {
                Ok(resp) if resp.status().is_success() => {
                    info!(attempt, status = resp.status().as_u16(), "response delivered");
                    return Delivery {
                        attempts: attempt,
                        result: Ok(resp.status().as_u16()),
                    };
                }
                Ok(resp) => {
                    let status = resp.status();
                    (
                        status.is_server_error() || status.as_u16() == 429,
                        format!("HTTP {status}"),
                    )
                }
                Err(err) => (true, describe(&err.without_url())),
            };
            if !retryable {
                return Delivery {
                    attempts: attempt,
                    result: Err(format!("the ResponseURL refused the response: {problem}")),
                };
            }
            let backoff = self.policy.backoff(attempt);
            let next_attempt_ends = Instant::now() + backoff + self.policy.attempt_timeout;
            if attempt >= self.policy.max_attempts || next_attempt_ends > hard_deadline {
                return Delivery {
                    attempts: attempt,
                    result: Err(format!(
                        "gave up after {attempt} attempt{} (no time for another before the Lambda deadline \
                         or no attempts left): {problem}",
                        if attempt == 1 { "" } else { "s" }
                    )),
                };
            }
            warn!(attempt, problem = %problem, backoff_ms = backoff.as_millis() as u64, "response PUT failed, retrying");
            tokio::time::sleep(backoff).await;
        }
    }
}

/// reqwest's error with its causes (connection refused, timed out), which its Display leaves out.
fn describe(err: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = if err.is_timeout() {
        "timed out".to_string()
    } else {
        err.to_string()
    };
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        for attempt in 1..20 {
            let b = policy.backoff(attempt);
            assert!(b <= policy.max_backoff, "attempt {attempt}: {b:?}");
        }
        assert!(policy.backoff(1) <= policy.base_backoff);
        assert!(policy.backoff(4) >= policy.base_backoff * 4, "{:?}", policy.backoff(4));
    }

    #[test]
    fn the_reserve_follows_the_policy() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.reserve(), Duration::from_millis(8200));
        let slow = RetryPolicy {
            attempt_timeout: Duration::from_secs(10),
            ..policy
        };
        assert_eq!(slow.reserve(), Duration::from_millis(20200));
    }

    #[tokio::test]
    async fn no_attempt_past_the_deadline_and_no_url_in_the_error() {
        // A port nothing listens on: every attempt is refused at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/responses/x?X-Amz-Signature=secret",
            listener.local_addr().unwrap()
        );
        drop(listener);
        let policy = RetryPolicy {
            attempt_timeout: Duration::from_millis(300),
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            max_attempts: 50,
            ..RetryPolicy::default()
        };
        let responder = Responder::with_policy(policy);
        // Room for the first attempt and a few more, never for fifty.
        let delivery = responder
            .put(&url, b"{}".to_vec(), Instant::now() + Duration::from_millis(700))
            .await;
        let problem = delivery.result.clone().unwrap_err();
        assert!(delivery.attempts >= 1 && delivery.attempts < 50, "{delivery:?}");
        assert!(problem.starts_with("gave up after"), "{problem}");
        assert!(
            !problem.contains("secret") && !problem.contains("/responses/"),
            "{problem}"
        );
        // With no time at all, nothing is sent.
        let none = responder.put(&url, b"{}".to_vec(), Instant::now()).await;
        assert_eq!(none.attempts, 0, "{none:?}");
    }
}
