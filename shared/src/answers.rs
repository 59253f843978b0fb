//! What each event was answered, by RequestId: so a second delivery of the same event gets the same
//! answer without the work being done again, and the answerer (`handlers/failure-answerer`) can tell
//! whether a function that died had already answered.
//!
//! Where it is kept, and why: in the process (a warm container that gets the same event twice answers
//! from memory, with no call at all) **and** in SSM Parameter Store, at
//! `/tapguard/ledger/<handler>/answers/<RequestId>` (a duplicate delivered to a cold container, and the
//! answerer, which runs as another function, can only see what is durable). That path is inside the
//! ledger folder the handler's role already may read and write, so no new permission is needed.
//!
//! Two writes per event: `started` (with the log stream, before the work) and `answered` (the exact
//! response body, after the PUT). A body that carries NoEcho Data is stored without its Data (Parameter
//! Store's standard tier is not encrypted): a duplicate of such an event is worked again instead.
//! Every call is bounded in time and best-effort: the record helps, it never fails an event.
//! Records older than [`KEEP`] (Lambda retries an asynchronous event for up to 6 hours) are pruned,
//! a few at each write, so the folder stays far below Parameter Store's 10,000-parameter quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tracing::warn;

use crate::ledger::{encode_segment, ROOT};
use crate::ssm::ParameterStore;

/// The longest any one call to Parameter Store may take here: a slow SSM must not eat the deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an answer is kept: beyond Lambda's longest event age (6 hours) for asynchronous retries.
pub const KEEP: Duration = Duration::from_secs(7 * 3600);
/// At most this many old records are deleted per event.
const PRUNE_PER_EVENT: usize = 5;

/// The SSM operations the runtime itself calls (every handler's fault matrix includes them).
pub const OPERATIONS: &[(&str, &str)] = &[
    ("ssm", "GetParameter"),
    ("ssm", "PutParameter"),
    ("ssm", "GetParametersByPath"),
    ("ssm", "DeleteParameter"),
];

/// What is known of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Answered: the body that was sent (`no_echo` when its Data was left out of the record).
    Answered { body: Vec<u8>, no_echo: bool },
    /// Started in this log stream but never answered (the process died, or is still at it).
    Started { log_stream: String },
    /// Nothing recorded (never seen, or the record could not be read).
    Unknown,
}

/// The answers of one handler.
#[derive(Debug)]
pub struct AnswerBook {
    ssm: Option<ParameterStore>,
    handler: String,
    warm: Mutex<HashMap<String, Seen>>,
}

impl AnswerBook {
    /// Answers kept in this process only (unit tests, or when no SSM client can be had).
    pub fn in_process(handler: &str) -> Self {
        AnswerBook {
            ssm: None,
            handler: handler.to_string(),
            warm: Mutex::default(),
        }
    }

    pub fn with_ssm(ssm: ParameterStore, handler: &str) -> Self {
        AnswerBook {
            ssm: Some(ssm),
            ..Self::in_process(handler)
        }
    }

    pub fn handler(&self) -> &str {
        &self.handler
    }

    pub fn folder(&self) -> String {
        format!("{ROOT}/ledger/{}/answers", self.handler)
    }

    pub fn parameter(&self, request_id: &str) -> String {
        format!("{}/{}", self.folder(), encode_segment(request_id))
    }

    /// What is known of `request_id`: this process's memory first, then Parameter Store.
    pub async fn seen(&self, request_id: &str) -> Seen {
        if let Some(seen) = self.warm.lock().unwrap_or_else(|p| p.into_inner()).get(request_id) {
            return seen.clone();
        }
        let Some(ssm) = &self.ssm else {
            return Seen::Unknown;
        };
        let parameter = self.parameter(request_id);
        match tokio::time::timeout(CALL_TIMEOUT, ssm.get(&parameter)).await {
            Ok(Ok(Some(value))) => parse(&value),
            Ok(Ok(None)) => Seen::Unknown,
            Ok(Err(err)) => {
                warn!(code = err.code, "could not read the answer record");
                Seen::Unknown
            }
            Err(_) => {
                warn!("reading the answer record timed out");
                Seen::Unknown
            }
        }
    }

    /// Records that the work of `request_id` started, in `log_stream`.
    pub async fn started(&self, request_id: &str, log_stream: &str) {
        let record = serde_json::json!({"v": 1, "started": true, "log_stream": log_stream}).to_string();
        self.warm.lock().unwrap_or_else(|p| p.into_inner()).insert(
            request_id.to_string(),
            Seen::Started {
                log_stream: log_stream.to_string(),
            },
        );
        self.put(request_id, record).await;
    }

    /// Records the body sent for `request_id` (without Data when it is NoEcho), then prunes old records.
    pub async fn answered(&self, request_id: &str, body: &[u8]) {
        let (stored, no_echo) = storable(body);
        self.warm.lock().unwrap_or_else(|p| p.into_inner()).insert(
            request_id.to_string(),
            Seen::Answered {
                body: if no_echo { stored.clone() } else { body.to_vec() },
                no_echo,
            },
        );
        self.put(request_id, String::from_utf8_lossy(&stored).into_owned())
            .await;
        self.prune().await;
    }

    async fn put(&self, request_id: &str, value: String) {
        let Some(ssm) = &self.ssm else { return };
        let parameter = self.parameter(request_id);
        match tokio::time::timeout(CALL_TIMEOUT, ssm.put(&parameter, &value, None)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(
                code = err.code,
                "could not record the answer: a duplicate delivery would be worked again"
            ),
            Err(_) => warn!("recording the answer timed out: a duplicate delivery would be worked again"),
        }
    }

    /// Deletes a few records older than [`KEEP`].
    async fn prune(&self) {
        let Some(ssm) = &self.ssm else { return };
        let folder = self.folder();
        let Ok(Ok(page)) = tokio::time::timeout(CALL_TIMEOUT, ssm.list_page(&folder, Some(10), None)).await else {
            return;
        };
        let now = SystemTime::now();
        let old = page
            .parameters
            .into_iter()
            .filter(|p| {
                p.last_modified
                    .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                    .and_then(|since_epoch| SystemTime::UNIX_EPOCH.checked_add(since_epoch))
                    .is_some_and(|modified| now.duration_since(modified).is_ok_and(|age| age > KEEP))
            })
            .map(|p| p.name)
            .take(PRUNE_PER_EVENT);
        for name in old {
            let _ = tokio::time::timeout(CALL_TIMEOUT, ssm.delete(&name)).await;
        }
    }
}

/// The body as it may be stored: NoEcho bodies lose their Data.
fn storable(body: &[u8]) -> (Vec<u8>, bool) {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) if value["NoEcho"] == true => {
            if let Some(map) = value.as_object_mut() {
                map.remove("Data");
            }
            (serde_json::to_vec(&value).unwrap_or_default(), true)
        }
        _ => (body.to_vec(), false),
    }
}

fn parse(value: &str) -> Seen {
    match serde_json::from_str::<Value>(value) {
        Ok(v) if v.get("Status").is_some() => Seen::Answered {
            body: value.as_bytes().to_vec(),
            no_echo: v["NoEcho"] == true,
        },
        Ok(v) if v["started"] == true => Seen::Started {
            log_stream: v["log_stream"].as_str().unwrap_or_default().to_string(),
        },
        _ => Seen::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_warm_process_remembers_what_it_answered_and_keeps_no_echo_data_out() {
        let book = AnswerBook::in_process("probe");
        assert_eq!(book.seen("r1").await, Seen::Unknown);
        book.started("r1", "stream-1").await;
        assert_eq!(
            book.seen("r1").await,
            Seen::Started {
                log_stream: "stream-1".into()
            }
        );
        let body = br#"{"Status":"SUCCESS","PhysicalResourceId":"p","NoEcho":false,"Data":{"A":"1"}}"#;
        book.answered("r1", body).await;
        assert_eq!(
            book.seen("r1").await,
            Seen::Answered {
                body: body.to_vec(),
                no_echo: false
            }
        );
        let secret = br#"{"Status":"SUCCESS","PhysicalResourceId":"p","NoEcho":true,"Data":{"Password":"x"}}"#;
        book.answered("r2", secret).await;
        match book.seen("r2").await {
            Seen::Answered { body, no_echo: true } => {
                assert!(!String::from_utf8_lossy(&body).contains("Password"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(book.parameter("r/1"), "/tapguard/ledger/probe/answers/r_2F1");
    }

    #[tokio::test]
    async fn a_cold_process_finds_the_answer_in_parameter_store_and_old_records_are_pruned() {
        use crate::ssm::memory::MemoryStore;

        let store = MemoryStore::new();
        let aged = (SystemTime::now() - KEEP - Duration::from_secs(60))
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        store.insert_modified("/tapguard/ledger/probe/answers/old-1", "{}", aged);
        store.insert("/tapguard/ledger/probe/answers/recent", "{}");
        let warm = AnswerBook::with_ssm(store.client(), "probe");
        warm.started("r1", "stream-1").await;
        let secret = br#"{"Status":"SUCCESS","PhysicalResourceId":"p","NoEcho":true,"Data":{"Password":"x"}}"#;
        warm.answered("r1", secret).await;

        let stored = store.value("/tapguard/ledger/probe/answers/r1").expect("recorded");
        assert!(!stored.contains("Password"), "{stored}");
        let cold = AnswerBook::with_ssm(store.client(), "probe");
        match cold.seen("r1").await {
            Seen::Answered { body, no_echo: true } => assert_eq!(body, stored.as_bytes()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            store.names_under("/tapguard/ledger/probe/answers/"),
            [
                "/tapguard/ledger/probe/answers/r1",
                "/tapguard/ledger/probe/answers/recent"
            ],
            "the record older than KEEP is pruned, the others stay"
        );

        store.fail("GetParameter", "ThrottlingException");
        assert_eq!(
            AnswerBook::with_ssm(store.client(), "probe").seen("r1").await,
            Seen::Unknown
        );
    }

    #[test]
    fn records_parse_back() {
        assert_eq!(
            parse(r#"{"v":1,"started":true,"log_stream":"s"}"#),
            Seen::Started { log_stream: "s".into() }
        );
        assert_eq!(parse("not json"), Seen::Unknown);
    }
}
