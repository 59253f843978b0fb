//! Parameter Store in memory, for unit tests: a [`Transport`] that answers the four operations as SSM
//! does (the SSM API reference: the request and answer shapes, `ParameterNotFound`,
//! `ParameterAlreadyExists` without `Overwrite`, `ValidationException` for `MaxResults` above 10, a
//! non-recursive path listing only the parameters directly under it, pages with a `NextToken`).
//!
//! Tests see what a handler left in the store afterwards ([`MemoryStore::value`],
//! [`MemoryStore::names_under`]), count its calls ([`MemoryStore::calls`]) and make an operation fail
//! with an AWS error code ([`MemoryStore::fail`]).
//!
//! Built for this crate's tests and, with the `test-support` feature, for the handlers' tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_types::region::Region;
use aws_types::SdkConfig;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use super::ParameterStore;
use crate::api::{ApiClient, Request, Response, Transport, TransportError};

/// The most GetParametersByPath returns per page (SSM's limit for `MaxResults`).
const PAGE_LIMIT: usize = 10;

#[derive(Debug, Clone)]
struct Stored {
    value: String,
    version: u64,
    modified: f64,
}

#[derive(Debug, Default)]
struct State {
    parameters: BTreeMap<String, Stored>,
    calls: HashMap<String, usize>,
    /// operation → (code, HTTP status, how many more calls fail; `None`: every call).
    faults: HashMap<String, (String, u16, Option<usize>)>,
}

/// An in-memory Parameter Store in account 111122223333, region us-east-1. Clones share the store.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A client whose requests this store answers (signed with test credentials, no retry waits).
    pub fn client(&self) -> ParameterStore {
        let config = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "memory-store-secret",
                None,
                None,
                "memory-store",
            )))
            .build();
        ParameterStore {
            client: ApiClient::with_transport(&config, super::SSM, Arc::new(self.clone())).without_backoff(),
        }
    }

    /// Puts `name` = `value`, as someone else (or an earlier invocation) wrote it.
    pub fn insert(&self, name: &str, value: impl Into<String>) -> &Self {
        self.insert_modified(name, value, now())
    }

    /// The same, last modified at `modified` (seconds since the Unix epoch).
    pub fn insert_modified(&self, name: &str, value: impl Into<String>, modified: f64) -> &Self {
        let mut state = self.lock();
        let version = state.parameters.get(name).map_or(1, |p| p.version + 1);
        state.parameters.insert(
            name.to_string(),
            Stored {
                value: value.into(),
                version,
                modified,
            },
        );
        self
    }

    /// A store holding `claims` (as the ledger writes them) on `setting`, each under its claimant's key.
    pub fn with_claims(setting: &str, claims: &[Value]) -> Self {
        let store = Self::new();
        for claim in claims {
            let key = claim["claimant"]["key"]
                .as_str()
                .expect("a claim names its claimant's key");
            store.insert(&crate::Ledger::claim_name(setting, key), claim.to_string());
        }
        store
    }

    /// Stores `record` as `ledger` keeps the record of resource `key`.
    pub fn insert_record<T: serde::Serialize>(&self, ledger: &crate::Ledger, key: &str, record: &crate::Record<T>) {
        let text = serde_json::to_string(record).expect("a record serializes");
        self.insert(&ledger.record_name(key), text);
    }

    /// Nothing is left under the ledger's root.
    pub fn is_empty(&self) -> bool {
        self.names_under(crate::ledger::ROOT).is_empty()
    }

    /// Nothing was ever written: no PutParameter call, nothing under the ledger's root.
    pub fn assert_nothing_written(&self) {
        let names = self.names_under(crate::ledger::ROOT);
        assert_eq!(self.calls("PutParameter"), 0, "PutParameter was called: {names:?}");
        assert!(names.is_empty(), "the ledger holds {names:?}");
    }

    /// The store was not called at all, and holds nothing.
    pub fn assert_untouched(&self) {
        for operation in ["GetParameter", "GetParametersByPath", "PutParameter", "DeleteParameter"] {
            assert_eq!(self.calls(operation), 0, "{operation} was called");
        }
        self.assert_nothing_written();
    }

    /// The value of `name` now.
    pub fn value(&self, name: &str) -> Option<String> {
        self.lock().parameters.get(name).map(|p| p.value.clone())
    }

    /// The value of `name` as JSON (what the ledger writes); `None` when absent or not JSON.
    pub fn json(&self, name: &str) -> Option<Value> {
        self.value(name).and_then(|v| serde_json::from_str(&v).ok())
    }

    /// The names of every parameter under `prefix` (at any depth), sorted.
    pub fn names_under(&self, prefix: &str) -> Vec<String> {
        self.lock()
            .parameters
            .keys()
            .filter(|name| name.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// How many times `operation` (`PutParameter`, …) was called, failed calls included.
    pub fn calls(&self, operation: &str) -> usize {
        self.lock().calls.get(operation).copied().unwrap_or(0)
    }

    /// Every call of `operation` from now on fails with `code` (HTTP 400; 500 for `InternalServerError`).
    pub fn fail(&self, operation: &str, code: &str) -> &Self {
        self.fault(operation, code, None)
    }

    /// The next `times` calls of `operation` fail with `code`, then it works again.
    pub fn fail_times(&self, operation: &str, code: &str, times: usize) -> &Self {
        self.fault(operation, code, Some(times))
    }

    /// `operation` works again.
    pub fn heal(&self, operation: &str) -> &Self {
        self.lock().faults.remove(operation);
        self
    }

    fn fault(&self, operation: &str, code: &str, times: Option<usize>) -> &Self {
        let status = if code == "InternalServerError" { 500 } else { 400 };
        self.lock()
            .faults
            .insert(operation.to_string(), (code.to_string(), status, times));
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(&self, request: &Request) -> Response {
        let Some(operation) = request
            .header("x-amz-target")
            .and_then(|t| t.strip_prefix("AmazonSSM."))
            .map(str::to_string)
        else {
            return error(
                400,
                "UnknownOperationException",
                "no X-Amz-Target AmazonSSM.<operation>",
            );
        };
        if request.header("content-type") != Some("application/x-amz-json-1.1") {
            return error(
                400,
                "SerializationException",
                "the body must be application/x-amz-json-1.1",
            );
        }
        if !request
            .header("authorization")
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=") && a.contains("/ssm/aws4_request"))
        {
            return error(
                400,
                "MissingAuthenticationTokenException",
                "the request is not signed for ssm",
            );
        }
        let mut state = self.lock();
        *state.calls.entry(operation.clone()).or_default() += 1;
        if let Some((code, status, times)) = state.faults.get_mut(&operation) {
            let (code, status) = (code.clone(), *status);
            match times {
                Some(0) => {
                    state.faults.remove(&operation);
                }
                Some(left) => {
                    *left -= 1;
                    return error(status, &code, "injected by the test");
                }
                None => return error(status, &code, "injected by the test"),
            }
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return error(400, "SerializationException", "the body is not JSON");
        };
        let name = body["Name"].as_str().unwrap_or_default().to_string();
        match operation.as_str() {
            "GetParameter" => match state.parameters.get(&name) {
                Some(p) => ok(json!({ "Parameter": described(&name, p) })),
                None => error(400, "ParameterNotFound", ""),
            },
            "PutParameter" => {
                let Some(value) = body["Value"].as_str() else {
                    return error(400, "ValidationException", "Value is required");
                };
                if value.len() > 4096 && body["Tier"] != "Advanced" {
                    return error(
                        400,
                        "ValidationException",
                        "Standard tier parameters support a maximum parameter value of 4096 characters.",
                    );
                }
                let existing = state.parameters.get(&name).map(|p| p.version);
                if existing.is_some() && body["Overwrite"] != true {
                    return error(
                        400,
                        "ParameterAlreadyExists",
                        "The parameter already exists. To overwrite this value, set the overwrite option in \
                         the request to true.",
                    );
                }
                let version = existing.map_or(1, |v| v + 1);
                state.parameters.insert(
                    name,
                    Stored {
                        value: value.to_string(),
                        version,
                        modified: now(),
                    },
                );
                ok(json!({ "Version": version, "Tier": "Standard" }))
            }
            "DeleteParameter" => match state.parameters.remove(&name) {
                Some(_) => ok(json!({})),
                None => error(400, "ParameterNotFound", ""),
            },
            "GetParametersByPath" => list(&state.parameters, &body),
            _ => error(400, "InvalidAction", &format!("{operation} is not answered here")),
        }
    }
}

impl Transport for MemoryStore {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        let answer = self.answer(&request);
        Box::pin(async move { Ok(answer) })
    }
}

/// One page of the parameters directly under `Path` (`Recursive` true: at any depth), by name.
fn list(parameters: &BTreeMap<String, Stored>, body: &Value) -> Response {
    let path = body["Path"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string();
    let max = body["MaxResults"].as_u64().map_or(PAGE_LIMIT, |m| m as usize);
    if !(1..=PAGE_LIMIT).contains(&max) {
        return error(
            400,
            "ValidationException",
            "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have \
             value less than or equal to 10",
        );
    }
    let recursive = body["Recursive"] == true;
    let start = body["NextToken"].as_str().unwrap_or_default();
    let prefix = format!("{path}/");
    let mut under = parameters
        .iter()
        .filter(|(name, _)| {
            name.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && (recursive || !rest.contains('/')))
        })
        .filter(|(name, _)| name.as_str() > start);
    let page: Vec<Value> = under.by_ref().take(max).map(|(name, p)| described(name, p)).collect();
    let more = under.next().is_some();
    let last = page.last().and_then(|p| p["Name"].as_str()).map(str::to_string);
    let mut answer = json!({ "Parameters": page });
    if more {
        answer["NextToken"] = json!(last);
    }
    ok(answer)
}

/// A parameter as GetParameter and GetParametersByPath describe it.
fn described(name: &str, p: &Stored) -> Value {
    json!({
        "Name": name,
        "Type": "String",
        "Value": p.value,
        "Version": p.version,
        "LastModifiedDate": p.modified,
        "ARN": format!("arn:aws:ssm:us-east-1:111122223333:parameter{name}"),
        "DataType": "text",
    })
}

fn ok(body: Value) -> Response {
    Response::new(200, body.to_string()).with_header("content-type", "application/x-amz-json-1.1")
}

fn error(status: u16, code: &str, message: &str) -> Response {
    Response::new(status, json!({ "__type": code, "message": message }).to_string())
        .with_header("content-type", "application/x-amz-json-1.1")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
