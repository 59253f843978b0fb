//! What every integration test shares: one emulator per test process, an account per test, and the
//! real handler binaries under a Lambda Runtime API.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
pub use tapguard_harness::*;

pub mod hostile;

/// The project root (the workspace folder).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The emulator of this test process: `TAPGUARD_EMULATOR_URL` if set, else one started on first use.
pub fn emulator() -> &'static Emulator {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    EMULATOR.get_or_init(|| Emulator::from_env_or_start(&root()).unwrap_or_else(|e| panic!("{e}")))
}

/// `count` emulators for a test that spreads its cases over several processes (the emulator serves
/// one request at a time per Python interpreter): the first is [`emulator()`], the others are started
/// on first use, each with its own state, and live as long as the test process.
pub fn emulators(count: usize) -> Vec<&'static Emulator> {
    static MORE: OnceLock<std::sync::Mutex<Vec<&'static Emulator>>> = OnceLock::new();
    let mut more = MORE.get_or_init(Default::default).lock().unwrap();
    while more.len() + 1 < count {
        let started = Emulator::start(&root()).unwrap_or_else(|e| panic!("{e}"));
        more.push(Box::leak(Box::new(started)));
    }
    std::iter::once(emulator())
        .chain(more.iter().copied())
        .take(count.max(1))
        .collect()
}

/// A test's own world: a fresh account in the emulator, a ResponseURL server, and the handler running.
pub struct World {
    /// The emulator this world's account lives in ([`emulator()`] unless made with [`World::on`]).
    pub emulator: &'static Emulator,
    pub account: Account,
    pub region: String,
    pub responses: ResponseServer,
    pub host: LambdaHost,
}

impl World {
    /// Starts `binary` (a handler binary name) in a fresh account in `region`.
    pub fn new(binary: &str, region: &str) -> World {
        Self::with_env(binary, region, &[])
    }

    pub fn with_env(binary: &str, region: &str, extra_env: &[(&str, &str)]) -> World {
        Self::on(emulator(), binary, region, extra_env)
    }

    /// Like [`World::with_env`], in an account of `emulator`.
    pub fn on(emulator: &'static Emulator, binary: &str, region: &str, extra_env: &[(&str, &str)]) -> World {
        let account = emulator.fresh_account();
        let mut env = emulator.sdk_env(&account, region);
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let host = LambdaHost::start(&binary_path(binary), &env);
        World {
            emulator,
            account,
            region: region.to_string(),
            responses: ResponseServer::start(),
            host,
        }
    }

    /// A StackId in this world's account and region.
    pub fn stack_id(&self) -> String {
        format!(
            "arn:aws:cloudformation:{}:{}:stack/tap-test/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f",
            self.region, self.account.account_id
        )
    }

    pub fn resource(&self, resource_type: &str, logical_id: &str) -> CustomResourceDriver<'_> {
        CustomResourceDriver::new(&self.host, &self.responses, resource_type, logical_id, &self.stack_id())
    }

    /// Operations this world's account called on `service`, in order.
    pub fn operations(&self, service: &str) -> Vec<String> {
        self.emulator.operations(&self.account.account_id, service)
    }

    pub fn query(&self, service: &str, params: &[(&str, &str)]) -> String {
        self.emulator.query(&self.account, &self.region, service, params)
    }

    pub fn json_call(&self, service: &str, target: &str, body: Value) -> Value {
        self.emulator
            .json_call(&self.account, &self.region, service, target, body)
    }

    pub fn rest_call(&self, service: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        self.emulator
            .rest_call(&self.account, &self.region, service, method, path, body)
    }

    /// Injects a fault for this world's account only. A fault on SSM is meant for the ownership ledger:
    /// it skips the runtime's answer book (`.../answers/<RequestId>`, whose writes never fail an event)
    /// unless the rule says otherwise with its own `body_excludes`.
    pub fn fault(&self, mut rule: Value) {
        rule["account"] = Value::String(self.account.account_id.clone());
        if rule["service"] == "ssm" && rule.get("body_excludes").is_none() {
            rule["body_excludes"] = Value::String("/answers/".into());
        }
        self.emulator.add_fault(rule);
    }
}

/// Loads `tests/fixtures/<name>` as JSON.
pub fn fixture(name: &str) -> Value {
    let path = root().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Operations that change state: names that do not start with a read verb.
pub fn mutating(operations: &[String]) -> Vec<String> {
    operations
        .iter()
        .filter(|op| {
            !["Get", "Describe", "List", "Head"]
                .iter()
                .any(|read| op.starts_with(read))
        })
        .cloned()
        .collect()
}

/// The names of the ownership ledger's parameters (records and claims) in `region` of `account`, sorted,
/// every page of them. The runtime's own answer book (`.../answers/<RequestId>`, what makes a second
/// delivery of an event idempotent) is bookkeeping of the protocol, not a claim: it is left out.
pub fn ledger_parameters_of(account: &Account, region: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = serde_json::json!({"Path": "/tapguard", "Recursive": true, "MaxResults": 10});
        if let Some(t) = &token {
            request["NextToken"] = Value::String(t.clone());
        }
        let page = emulator().json_call(account, region, "ssm", "AmazonSSM.GetParametersByPath", request);
        names.extend(
            page["Parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["Name"].as_str())
                .filter(|name| !name.contains("/answers/"))
                .map(str::to_string),
        );
        match page["NextToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    names.sort();
    names
}

/// Asks a function for a verify pass, as its EventBridge schedule does; returns the pass's summary.
pub fn verify_pass(host: &LambdaHost) -> Value {
    match host.invoke(
        &serde_json::json!({"tapguard": "verify"}),
        std::time::Duration::from_secs(60),
    ) {
        InvokeResult::Response(summary) => summary,
        other => panic!("the verify pass did not answer: {other:?}\n{}", host.logs()),
    }
}

/// (repaired, detail) of each repair note of `logical_id` in a pass's summary.
pub fn repair_notes(summary: &Value, logical_id: &str) -> Vec<(bool, String)> {
    summary["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["logical_id"] == logical_id)
        .flat_map(|r| r["repairs"].as_array().cloned().unwrap_or_default())
        .map(|n| {
            (
                n["repaired"].as_bool().unwrap_or_default(),
                n["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Values of `tapguard`'s ControlDrifted for one control, from the embedded-metric-format lines the
/// function wrote to its log (what CloudWatch turns into metrics on Lambda); with `resource`, only the
/// lines of that resource of the test stack `tap-test`.
pub fn drift_metric(host: &LambdaHost, resource: Option<&str>, control: &str) -> Vec<f64> {
    host.logs()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "tapguard"
                && line["Control"] == control
                && resource.is_none_or(|r| line["Stack"] == "tap-test" && line["Resource"] == r)
        })
        .filter_map(|line| line["ControlDrifted"].as_f64())
        .collect()
}

/// Polls `done` every 20 ms until it holds or `bound` has passed; returns whether it held. For state
/// that follows an event by a moment (a log line, a held call), not a timed assertion: callers assert
/// the outcome, with a bound generous enough for a loaded machine.
pub fn wait_until(bound: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() >= bound {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
