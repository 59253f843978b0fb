//! Waiting out what AWS documents as passing: a brand-new IAM role that Config cannot use yet, a rule
//! that Config is still deleting or evaluating. The call is retried with bounded, jittered exponential
//! backoff (the shared [`RetryPolicy`]) while time is left before the deadline; what it still answers
//! then is the error, with its advice.

use std::future::Future;
use std::time::Duration;

use tapguard_shared::responder::RetryPolicy;
use tapguard_shared::{HandlerError, Invocation};
use tracing::info;

/// How long the handler waits out one passing condition at most, deadline permitting. IAM documents
/// that changes take some seconds to be seen everywhere; Config's rule deletion is of the same order.
const PATIENCE: Duration = Duration::from_secs(60);
/// Kept back from the deadline for what comes after the call (the read-back, the undo of a failure).
const MARGIN: Duration = Duration::from_secs(20);

fn policy() -> RetryPolicy {
    RetryPolicy {
        base_backoff: Duration::from_millis(1000),
        max_backoff: Duration::from_secs(8),
        ..RetryPolicy::default()
    }
}

/// Runs `call` until it succeeds, or answers an error that `passing` does not accept, or the patience
/// (or the time before the deadline, less a margin) runs out; `what` says what is waited for, in logs.
pub async fn until_settled<T, F, Fut>(
    inv: &Invocation,
    what: &str,
    passing: impl Fn(&HandlerError) -> bool,
    mut call: F,
) -> Result<T, HandlerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    let policy = policy();
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        match call().await {
            Err(err) if passing(&err) => {
                let wait = policy.backoff(attempt);
                let left = inv.time_left().map_or(PATIENCE, |t| t.saturating_sub(MARGIN));
                if started.elapsed() + wait > PATIENCE.min(left) {
                    return Err(err);
                }
                info!(
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    code = err.code().unwrap_or(""),
                    what,
                    "waiting, then retrying"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A role Config cannot use yet: IAM is eventually consistent, and a role created a moment ago (as
/// TapStack's ConfigRole is, right before this resource) is often not yet usable.
pub fn role_not_yet_usable(err: &HandlerError) -> bool {
    matches!(
        err.code(),
        Some("InsufficientPermissionsException" | "InvalidRoleException")
    )
}

/// A rule Config is still deleting (or evaluating): it answers `ResourceInUseException` meanwhile.
pub fn rule_in_use(err: &HandlerError) -> bool {
    err.code() == Some("ResourceInUseException")
}
