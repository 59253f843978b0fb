//! The local AWS emulator (moto's server with the project's extension), started as a child process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A running emulator. Dropping it stops the process (it also exits when this process dies).
pub struct Emulator {
    pub url: String,
    child: Option<Child>,
    _stdin: Option<ChildStdin>,
    http: reqwest::blocking::Client,
}

/// Credentials that act inside one emulated account.
#[derive(Debug, Clone)]
pub struct Account {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl Emulator {
    /// Uses `TAPGUARD_EMULATOR_URL` when set, otherwise starts the emulator of the project at `root`.
    pub fn from_env_or_start(root: &Path) -> Result<Emulator, String> {
        match std::env::var("TAPGUARD_EMULATOR_URL") {
            Ok(url) if !url.is_empty() => Ok(Emulator {
                url,
                child: None,
                _stdin: None,
                http: client(),
            }),
            _ => Self::start(root),
        }
    }

    /// Starts `emulator/server.py` with the project's venv Python on a free port and waits until it answers.
    pub fn start(root: &Path) -> Result<Emulator, String> {
        let python = python(root);
        let mut child = Command::new(&python)
            .arg(root.join("emulator/server.py"))
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the emulator with {}: {e} (run `make venv` first)",
                    python.display()
                )
            })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("emulator did not start: {e}"))?;
        let url = line
            .trim()
            .strip_prefix("tapguard-emulator listening on ")
            .ok_or_else(|| format!("emulator did not start: it printed {line:?}"))?
            .to_string();
        let stdin = child.stdin.take();
        let emulator = Emulator {
            url,
            child: Some(child),
            _stdin: stdin,
            http: client(),
        };
        emulator.wait_ready()?;
        Ok(emulator)
    }

    fn wait_ready(&self) -> Result<(), String> {
        for _ in 0..100 {
            if self
                .http
                .get(format!("{}/moto-api/", self.url))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("emulator at {} did not answer within 10 s", self.url))
    }

    /// Credentials inside `account_id`, from STS AssumeRole (the emulator keeps accounts apart).
    pub fn account(&self, account_id: &str) -> Account {
        let body = format!(
            "Action=AssumeRole&Version=2011-06-15&RoleSessionName=tapguard-test&RoleArn=arn%3Aaws%3Aiam%3A%3A{account_id}%3Arole%2Ftapguard-test"
        );
        let text = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body)
            .send()
            .and_then(|r| r.text())
            .expect("AssumeRole on the emulator");
        let tag = |name: &str| {
            xml_value(&text, name)
                .unwrap_or_else(|| panic!("AssumeRole answered without {name}: {text}"))
                .to_string()
        };
        Account {
            account_id: account_id.to_string(),
            access_key_id: tag("AccessKeyId"),
            secret_access_key: tag("SecretAccessKey"),
            session_token: tag("SessionToken"),
        }
    }

    /// Credentials in a fresh account no other caller uses: how parallel tests stay apart.
    pub fn fresh_account(&self) -> Account {
        self.account(&unique_account_id())
    }

    /// Adds a fault rule (see emulator/faults.py for its fields).
    pub fn add_fault(&self, rule: Value) {
        let resp = self
            .http
            .post(format!("{}/tapguard/faults", self.url))
            .json(&rule)
            .send()
            .expect("add fault");
        assert!(resp.status().is_success(), "fault rule refused: {:?}", resp.text());
    }

    /// The fault rules with how often each fired.
    pub fn faults(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/tapguard/faults", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("read the fault rules")
    }

    /// Removes the fault rules of `account` only (other tests' accounts keep theirs).
    pub fn clear_faults(&self, account: &str) {
        let resp = self
            .http
            .delete(format!("{}/tapguard/faults?account={account}", self.url))
            .send()
            .expect("clear faults");
        assert!(resp.status().is_success(), "clearing faults failed: {:?}", resp.text());
    }

    /// The calls the emulator saw from `account` (optionally one service), in order.
    pub fn calls(&self, account: &str, service: Option<&str>) -> Vec<Value> {
        let mut url = format!("{}/tapguard/calls?account={account}", self.url);
        if let Some(service) = service {
            url.push_str(&format!("&service={service}"));
        }
        self.http
            .get(url)
            .send()
            .and_then(|r| r.json())
            .expect("read the call log")
    }

    /// The operations `account` called on `service`, in order.
    pub fn operations(&self, account: &str, service: &str) -> Vec<String> {
        self.calls(account, Some(service))
            .iter()
            .filter_map(|c| c["operation"].as_str().map(str::to_string))
            .collect()
    }

    /// POSTs a JSON body to one of the extension's test controls and returns its answer.
    pub fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .expect("control call");
        let status = resp.status();
        let value: Value = resp.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "control {path} failed: {status} {value}");
        value
    }

    /// A query-protocol call (EC2, IAM, STS, SNS, CloudFormation) as `account`; returns the XML answer.
    /// Harness calls are marked so the emulator leaves them out of the call log.
    pub fn query(&self, account: &Account, region: &str, service: &str, params: &[(&str, &str)]) -> String {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        if !form.iter().any(|(k, _)| *k == "Version") {
            form.push(("Version", query_version(service)));
        }
        let resp = self
            .signed(reqwest::Method::POST, &self.url, account, region, service)
            .form(&form)
            .send()
            .expect("query call to the emulator");
        resp.text().expect("query answer")
    }

    /// A JSON-protocol call (Config, KMS, Secrets Manager, ...) as `account`: `target` is the
    /// `X-Amz-Target` header, e.g. `StarlingDoveService.DescribeConfigurationRecorders`.
    pub fn json_call(&self, account: &Account, region: &str, service: &str, target: &str, body: Value) -> Value {
        let resp = self
            .signed(reqwest::Method::POST, &self.url, account, region, service)
            .header("X-Amz-Target", target)
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .expect("JSON call to the emulator");
        let text = resp.text().expect("JSON answer");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    /// A REST-JSON call (Security Hub) as `account`.
    pub fn rest_call(
        &self,
        account: &Account,
        region: &str,
        service: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut request = self.signed(method, &format!("{}{path}", self.url), account, region, service);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let text = request
            .send()
            .and_then(|r| r.text())
            .expect("REST call to the emulator");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    fn signed(
        &self,
        method: reqwest::Method,
        url: &str,
        account: &Account,
        region: &str,
        service: &str,
    ) -> reqwest::blocking::RequestBuilder {
        self.http
            .request(method, url)
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0",
                    account.access_key_id
                ),
            )
            .header("X-Amz-Security-Token", &account.session_token)
            .header("x-tapguard-harness", "1")
    }

    /// Environment that points an AWS SDK at the emulator as `account` in `region`.
    pub fn sdk_env(&self, account: &Account, region: &str) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_REGION", region),
            ("AWS_DEFAULT_REGION", region),
            ("AWS_ACCESS_KEY_ID", account.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", account.secret_access_key.as_str()),
            ("AWS_SESSION_TOKEN", account.session_token.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            // Keep the SDK from reading a developer's own ~/.aws files.
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client() -> reqwest::blocking::Client {
    // reqwest builds on the process's rustls provider (ring, as the handlers' own: shared/src/tls.rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

fn query_version(service: &str) -> &'static str {
    match service {
        "ec2" => "2016-11-15",
        "iam" => "2010-05-08",
        "sts" => "2011-06-15",
        "sns" => "2010-03-31",
        "cloudformation" => "2010-05-15",
        _ => "2010-05-08",
    }
}

/// The text of the first `<name>…</name>` element in an XML answer.
pub fn xml_value<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(&xml[start..end])
}

/// The project's venv Python, or `TAPGUARD_PYTHON`, or `python3`.
pub fn python(root: &Path) -> PathBuf {
    if let Ok(p) = std::env::var("TAPGUARD_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root.join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// A random 12-digit account id: tests running at once each get their own account.
pub fn unique_account_id() -> String {
    rand::random_range(200_000_000_000u64..1_000_000_000_000).to_string()
}
