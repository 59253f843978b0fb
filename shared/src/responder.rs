//! Sends the one response of an event to its ResponseURL.
//!
//! The ResponseURL is a pre-signed S3 URL: a credential. It is never logged, and reqwest's errors are
//! stripped of it (`without_url`) before they go anywhere.

use std::time::{Duration, Instant};

use rand::Rng;
use tracing::{info, warn};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
const MAX_ATTEMPTS: u32 = 5;
const BASE_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Responder {
    http: reqwest::Client,
}

impl Default for Responder {
    fn default() -> Self {
        Self::new()
    }
}

impl Responder {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("the HTTP client for responses builds");
        Responder { http }
    }

    /// PUTs `body` to `url`: success only on 2xx; network errors and 5xx are retried with backoff and
    /// jitter, at most [`MAX_ATTEMPTS`] times and never past `hard_deadline`.
    pub async fn put(&self, url: &str, body: Vec<u8>, hard_deadline: Instant) -> Result<u16, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // S3 pre-signed URLs are signed without a content type: send none.
            let result = self
                .http
                .put(url)
                .header(reqwest::header::CONTENT_LENGTH, body.len())
                .body(body.clone())
                .send()
                .await;
            let (retryable, problem) = match result {
                Ok(resp) if resp.status().is_success() => {
                    info!(attempt, status = resp.status().as_u16(), "response delivered");
                    return Ok(resp.status().as_u16());
                }
                Ok(resp) => {
                    let status = resp.status();
                    (
                        status.is_server_error() || status.as_u16() == 429,
                        format!("HTTP {status}"),
                    )
                }
                Err(err) => (true, err.without_url().to_string()),
            };
            if !retryable {
                return Err(format!("the ResponseURL refused the response: {problem}"));
            }
            let backoff = backoff(attempt);
            if attempt >= MAX_ATTEMPTS || Instant::now() + backoff + CONNECT_TIMEOUT >= hard_deadline {
                return Err(format!("gave up after {attempt} attempts: {problem}"));
            }
            warn!(attempt, problem = %problem, backoff_ms = backoff.as_millis() as u64, "response PUT failed, retrying");
            tokio::time::sleep(backoff).await;
        }
    }
}

/// Exponential backoff with full jitter: a random wait up to base * 2^(attempt-1), capped.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE_BACKOFF
        .saturating_mul(1 << attempt.min(10).saturating_sub(1))
        .min(MAX_BACKOFF);
    let millis = ceiling.as_millis() as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let b = backoff(attempt);
            assert!(b <= MAX_BACKOFF, "attempt {attempt}: {b:?}");
        }
        assert!(backoff(1) <= BASE_BACKOFF);
        assert!(backoff(4) >= BASE_BACKOFF * 4, "{:?}", backoff(4));
    }
}
