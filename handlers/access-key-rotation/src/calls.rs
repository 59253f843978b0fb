//! The AWS clients of one pass and the one way every call goes out: through the invocation (so a
//! FAILED reason names the operation and the AWS error code), retried with backoff while AWS throttles.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::Client as Iam;
use aws_sdk_secretsmanager::Client as SecretsManager;
use aws_sdk_sns::Client as Sns;
use aws_sdk_sts::Client as Sts;
use tapguard_shared::{is_throttling, HandlerError, Invocation};

use crate::properties::Tuning;

/// The clients a pass uses, and the invocation it serves.
pub struct Aws<'a> {
    pub iam: &'a Iam,
    pub secrets: &'a SecretsManager,
    pub sns: &'a Sns,
    pub sts: &'a Sts,
    pub inv: &'a Invocation,
    pub tuning: &'a Tuning,
    pub throttled: AtomicU64,
}

impl Aws<'_> {
    /// One AWS call, retried with backoff while AWS throttles: a rate limit slows the pass, never ends it.
    pub async fn call<T, E, F, Fut>(&self, service: &str, operation: &str, mut request: F) -> Result<T, HandlerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut attempt = 1;
        loop {
            match self.inv.aws(service, operation, request()).await {
                Err(err) if rate_limited(&err) && attempt < self.tuning.throttle_attempts => {
                    self.throttled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff(self.tuning, attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    pub fn throttled_retries(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

fn rate_limited(err: &HandlerError) -> bool {
    match err {
        HandlerError::Aws { code, message, .. } => is_throttling(code) || message.contains("Rate exceeded"),
        _ => false,
    }
}

/// Exponential backoff with jitter, so throttled workers do not retry in step.
pub fn backoff(tuning: &Tuning, attempt: u32) -> Duration {
    let ceiling = tuning
        .backoff_base
        .saturating_mul(1u32 << attempt.min(16))
        .min(tuning.backoff_cap);
    ceiling.mul_f64(rand::random_range(0.5..=1.0))
}
