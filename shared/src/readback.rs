//! Reading back a change that AWS shows only eventually.
//!
//! Several AWS reads are eventually consistent: IAM says a change "may not be immediately visible"
//! (IAM User Guide, *Troubleshooting IAM*, changes that I make are not always immediately visible), and
//! the EC2 API "follows an eventual consistency model" whose documented remedy is to read again with
//! exponential backoff (*Eventual consistency in the Amazon EC2 API*). A handler that reads back what it
//! just wrote therefore reads a few times, with bounded, jittered exponential backoff (the shared
//! [`RetryPolicy`]), while time is left before the deadline, before it calls the state unverified.
//!
//! Errors of the read are not retried here: the SDK has already retried what is transient, and a
//! denied read is the caller's answer.

use std::future::Future;
use std::time::Duration;

use tracing::info;

use crate::responder::RetryPolicy;
use crate::{HandlerError, Invocation};

/// How often and how patiently a read-back is repeated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadBackPolicy {
    /// Reads at most, the first included.
    pub max_reads: u32,
    /// The ceiling of the first wait; each further wait doubles it, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Kept back from the deadline for what follows a failed read-back (the undo of the change).
    pub margin: Duration,
}

impl Default for ReadBackPolicy {
    /// Five reads over about two to four seconds: what the documented propagation of these account
    /// settings takes in practice, and short enough for a custom resource.
    fn default() -> Self {
        ReadBackPolicy {
            max_reads: 5,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            margin: Duration::from_secs(5),
        }
    }
}

impl ReadBackPolicy {
    /// The same number of reads without waiting between them (unit tests).
    pub fn without_waiting(self) -> Self {
        ReadBackPolicy {
            base_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            ..self
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        RetryPolicy {
            base_backoff: self.base_backoff,
            max_backoff: self.max_backoff,
            ..RetryPolicy::default()
        }
        .backoff(attempt)
    }
}

/// What a read-back saw last, and after how many reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadBack<T> {
    /// The read showed the change.
    Settled { value: T, reads: u32 },
    /// It still did not after the last read the policy (or the deadline) allowed.
    Stale { value: T, reads: u32 },
}

impl<T> ReadBack<T> {
    pub fn reads(&self) -> u32 {
        match self {
            ReadBack::Settled { reads, .. } | ReadBack::Stale { reads, .. } => *reads,
        }
    }
}

/// Calls `read` until `settled` accepts what it answers, or the policy's reads (or the time before the
/// deadline, less the margin) run out. `what` names the read in logs.
pub async fn read_back<T, F, Fut>(
    inv: &Invocation,
    policy: &ReadBackPolicy,
    what: &str,
    mut read: F,
    settled: impl Fn(&T) -> bool,
) -> Result<ReadBack<T>, HandlerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, HandlerError>>,
{
    let mut reads = 1;
    loop {
        let value = read().await?;
        if settled(&value) {
            if reads > 1 {
                info!(reads, what, "the read-back shows the change now");
            }
            return Ok(ReadBack::Settled { value, reads });
        }
        let wait = policy.backoff(reads);
        let time_left = inv.time_left().map(|t| t.saturating_sub(policy.margin));
        if reads >= policy.max_reads || time_left.is_some_and(|left| wait > left) {
            return Ok(ReadBack::Stale { value, reads });
        }
        info!(
            reads,
            wait_ms = wait.as_millis() as u64,
            what,
            "the read-back does not show the change yet (eventually consistent): reading again"
        );
        tokio::time::sleep(wait).await;
        reads += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test]
    async fn reads_until_the_change_shows_and_counts_the_reads() {
        let inv = Invocation::detached("eu-west-1", "123456789012");
        let answers = Cell::new(0);
        let policy = ReadBackPolicy::default().without_waiting();
        let seen = read_back(
            &inv,
            &policy,
            "test",
            || {
                answers.set(answers.get() + 1);
                let n = answers.get();
                async move { Ok::<_, HandlerError>(n) }
            },
            |n| *n >= 3,
        )
        .await
        .unwrap();
        assert_eq!(seen, ReadBack::Settled { value: 3, reads: 3 });
    }

    #[tokio::test]
    async fn stops_at_the_bound_with_what_it_saw_last() {
        let inv = Invocation::detached("eu-west-1", "123456789012");
        let policy = ReadBackPolicy {
            max_reads: 4,
            ..ReadBackPolicy::default().without_waiting()
        };
        let calls = Cell::new(0);
        let seen = read_back(
            &inv,
            &policy,
            "test",
            || {
                calls.set(calls.get() + 1);
                async { Ok::<_, HandlerError>("old") }
            },
            |v| *v == "new",
        )
        .await
        .unwrap();
        assert_eq!(seen, ReadBack::Stale { value: "old", reads: 4 });
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test]
    async fn an_error_of_the_read_is_answered_at_once() {
        let inv = Invocation::detached("eu-west-1", "123456789012");
        let calls = Cell::new(0);
        let err = read_back(
            &inv,
            &ReadBackPolicy::default().without_waiting(),
            "test",
            || {
                calls.set(calls.get() + 1);
                async { Err::<u32, _>(HandlerError::Failed("denied".into())) }
            },
            |_| true,
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "denied");
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn the_waits_grow_and_stay_bounded() {
        let policy = ReadBackPolicy::default();
        let total: Duration = (1..policy.max_reads).map(|n| policy.backoff(n)).sum();
        assert!(total <= Duration::from_millis(250 + 500 + 1000 + 2000), "{total:?}");
        assert!(policy.backoff(4) >= Duration::from_secs(1), "{:?}", policy.backoff(4));
    }
}
