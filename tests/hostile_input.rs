//! Hostile input: property-based tests over event and property parsing (issue 12, "Hostile input").
//!
//! Two levels, no emulator:
//! - every handler's `Properties` parses any JSON value (random values, wrong types, huge strings, deep
//!   nesting, the handler's own fixture with one property replaced or one unknown property added)
//!   without a panic, and an error always names a property;
//! - the real runtime (`Runtime::handle`, in process, with a small resource) given any event that carries
//!   a ResponseURL answers exactly once, with a JSON body CloudFormation accepts (SUCCESS or FAILED, at
//!   most 4096 bytes, its RequestId echoed), and answers SUCCESS only for a well-formed request.
//!
//! Found cases become the regression tests at the bottom. `make fuzz` (fuzz/) runs the same targets
//! under libFuzzer for a bounded time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tapguard_shared::answers::AnswerBook;
use tapguard_shared::props;
use tapguard_shared::responder::{Responder, RetryPolicy};
use tapguard_shared::{CustomResource, HandlerError, Invocation, Outcome, Runtime};

// ---------------------------------------------------------------------------------------------------
// Generators

/// Strings as CloudFormation and a hostile template may send them: ordinary, unicode, control
/// characters, very long.
fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9:/_.-]{0,24}",
        2 => any::<String>(),
        1 => Just(String::new()),
        1 => (1usize..70_000).prop_map(|n| "x".repeat(n)),
        1 => Just("true".to_string()),
        1 => Just("-1".to_string()),
        1 => Just("99999999999999999999".to_string()),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        any_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(("[A-Za-z]{1,12}", inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value nested `depth` levels deep in arrays or objects.
fn nested(depth: usize, in_objects: bool) -> Value {
    (0..depth).fold(json!("bottom"), |inner, _| {
        if in_objects {
            json!({ "Nested": inner })
        } else {
            json!([inner])
        }
    })
}

fn fixture_properties(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}-create.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    let event: Value = serde_json::from_str(&text).expect("fixture is JSON");
    event["ResourceProperties"].clone()
}

/// The handler's own fixture with one property replaced by `value` (or an unknown one added, also when
/// the fixture has none of its own); returns the name changed.
fn mutated(base: &Value, pick: usize, value: Value, add_unknown: bool) -> (Value, String) {
    let mut props = base.clone();
    let map = props.as_object_mut().expect("fixture properties are an object");
    let names: Vec<String> = map
        .keys()
        .filter(|k| !matches!(k.as_str(), "ServiceToken" | "ServiceTimeout"))
        .cloned()
        .collect();
    if add_unknown || names.is_empty() {
        map.insert("NoSuchPropertyEver".into(), value);
        return (props, "NoSuchPropertyEver".into());
    }
    let name = names[pick % names.len()].clone();
    map.insert(name.clone(), value);
    (props, name)
}

// ---------------------------------------------------------------------------------------------------
// Parsing: every handler's Properties

/// Parses `properties` as `P` on a thread with a small stack, the way a Lambda handler's thread would
/// see it, and returns the error text (or None when it parsed). A panic or a stack overflow fails.
fn parse_as<P: serde::de::DeserializeOwned + 'static>(properties: Value) -> Option<String> {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || props::parse::<P>(&properties).err().map(|err| err.to_string()))
        .expect("thread starts")
        .join()
        .expect("parsing panicked")
}

/// Each handler: (name, its fixture, its parser).
type Parser = fn(Value) -> Option<String>;
fn handlers() -> Vec<(&'static str, Value, Parser)> {
    vec![
        (
            "ebs-default-encryption",
            fixture_properties("ebs-default-encryption"),
            parse_as::<ebs_default_encryption::Properties>,
        ),
        (
            "config-setup",
            fixture_properties("config-setup"),
            parse_as::<config_setup::Properties>,
        ),
        (
            "securityhub-enable",
            fixture_properties("securityhub-enable"),
            parse_as::<securityhub_enable::Properties>,
        ),
        (
            "securityhub-standards",
            fixture_properties("securityhub-standards"),
            parse_as::<securityhub_standards::Properties>,
        ),
        (
            "access-key-rotation",
            fixture_properties("access-key-rotation"),
            parse_as::<access_key_rotation::Properties>,
        ),
        (
            "iam-password-policy",
            json!({"MinimumPasswordLength": "14", "RequireSymbols": "true"}),
            parse_as::<iam_password_policy::Properties>,
        ),
        (
            "shield-advanced",
            json!({"CreateSubscription": "false"}),
            parse_as::<shield_advanced::Properties>,
        ),
    ]
}

#[test]
fn every_fixture_parses_so_the_mutations_below_start_from_valid_properties() {
    for (name, fixture, parse) in handlers() {
        assert_eq!(parse(fixture.clone()), None, "{name}: {fixture}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_json_as_properties_parses_or_names_what_is_wrong(value in any_json()) {
        for (name, _, parse) in handlers() {
            if let Some(error) = parse(value.clone()) {
                prop_assert!(
                    error.contains("property") || error.contains("Property"),
                    "{name}: an error that names no property: {error}"
                );
            }
        }
    }

    #[test]
    fn one_property_replaced_by_anything_is_accepted_or_refused_by_its_name(
        pick in any::<usize>(),
        value in any_json(),
        add_unknown in prop::bool::weighted(0.2),
    ) {
        for (name, fixture, parse) in handlers() {
            let (props, changed) = mutated(&fixture, pick, value.clone(), add_unknown);
            if let Some(error) = parse(props) {
                prop_assert!(
                    error.contains(&changed),
                    "{name}: {changed} replaced by {value}: the error does not name it: {error}"
                );
            } else {
                prop_assert!(changed != "NoSuchPropertyEver", "{name}: an unknown property was accepted silently");
            }
        }
    }
}

#[test]
fn deep_nesting_in_a_property_is_refused_without_overflowing_the_stack() {
    // Lambda parses the event with serde_json, which refuses nesting deeper than 128: that is the most a
    // handler can be given. Check the limit holds where events are parsed, and that the deepest value
    // serde_json accepts is refused by name.
    let too_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    assert!(serde_json::from_str::<Value>(&too_deep).is_err(), "serde_json's recursion limit");
    for (name, fixture, parse) in handlers() {
        for in_objects in [false, true] {
            let (props, changed) = mutated(&fixture, 0, nested(120, in_objects), false);
            if let Some(error) = parse(props) {
                assert!(error.contains(&changed), "{name}: {error}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The runtime: any event with a ResponseURL gets exactly one true answer

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ProbeProperties {
    #[serde(default)]
    answer: Option<String>,
}

struct Probe;

impl CustomResource for Probe {
    type Properties = ProbeProperties;
    const RESOURCE_TYPE: &'static str = "Custom::HostileProbe";
    const ID_PREFIX: &'static str = "hostile:";
    const OPERATIONS: &'static [(&'static str, &'static str)] = &[];

    async fn create(&self, _inv: &Invocation, props: ProbeProperties) -> Result<Outcome, HandlerError> {
        Ok(Outcome::new("hostile:1").with("Answer", props.answer.unwrap_or_default()))
    }

    async fn update(
        &self,
        _inv: &Invocation,
        physical_id: &str,
        props: ProbeProperties,
        _old: Option<ProbeProperties>,
    ) -> Result<Outcome, HandlerError> {
        Ok(Outcome::new(physical_id).with("Answer", props.answer.unwrap_or_default()))
    }

    async fn delete(&self, _inv: &Invocation, _id: &str, _props: Option<ProbeProperties>) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// A ResponseURL that records every PUT it receives.
struct AnswerSink {
    url: String,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl AnswerSink {
    fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("listener");
        let url = format!("http://{}/answer?X-Amz-Signature=not-a-real-one", server.server_addr());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                sink.lock().unwrap().push(body);
                let _ = request.respond(tiny_http::Response::empty(200));
            }
        });
        AnswerSink { url, received }
    }

    fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

struct World {
    runtime: Arc<Runtime<Probe>>,
    sink: AnswerSink,
    tokio: tokio::runtime::Runtime,
}

fn world() -> &'static World {
    static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    WORLD.get_or_init(|| {
        let policy = RetryPolicy {
            connect_timeout: Duration::from_millis(500),
            attempt_timeout: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        World {
            runtime: Arc::new(Runtime::with_responder(
                Probe,
                AnswerBook::in_process("hostile-probe"),
                Responder::with_policy(policy),
            )),
            sink: AnswerSink::start(),
            tokio: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        }
    })
}

fn context(seconds: u64) -> Context {
    let deadline = SystemTime::now() + Duration::from_secs(seconds);
    let mut context = Context::default();
    context.deadline = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    context.request_id = "lambda-request".into();
    context
}

/// Runs one event through the runtime; returns the invocation's result and the answers PUT.
fn handle(event: Value) -> (Result<Value, String>, Vec<Value>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let w = world();
    w.sink.take();
    let result = w
        .tokio
        .block_on(w.runtime.handle(LambdaEvent::new(event, context(30))))
        .map_err(|err| err.to_string());
    let answers = w
        .sink
        .take()
        .into_iter()
        .map(|body| {
            assert!(body.len() <= 4096, "an answer over CloudFormation's 4096-byte limit: {} bytes", body.len());
            serde_json::from_slice(&body).expect("every answer is JSON")
        })
        .collect();
    (result, answers)
}

fn unique_request_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    format!("hostile-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn request_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop_oneof![Just("Create"), Just("Update"), Just("Delete")].prop_map(|t| json!(t)),
        1 => any_json(),
    ]
}

/// A field that is usually what CloudFormation sends, sometimes anything at all, sometimes absent.
fn field(usual: Value) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        6 => Just(Some(usual)),
        1 => any_json().prop_map(Some),
        1 => Just(None),
    ]
}

prop_compose! {
    fn hostile_event()(
        request_type in request_type(),
        stack_id in field(json!("arn:aws:cloudformation:eu-west-1:123456789012:stack/S/1")),
        logical_id in field(json!("Probe")),
        physical_id in field(json!("hostile:1")),
        properties in prop_oneof![
            3 => Just(json!({"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:f", "Answer": "42"})),
            1 => Just(json!({"Answer": "x".repeat(5000)})),
            2 => any_json(),
        ],
        old_properties in field(json!({})),
        extra in prop::collection::vec(("[A-Za-z]{1,10}", any_json()), 0..3),
    ) -> Value {
        let mut event = Map::new();
        event.insert("RequestType".into(), request_type);
        event.insert("ResponseURL".into(), json!(world().sink.url));
        event.insert("RequestId".into(), json!(unique_request_id()));
        event.insert("ResourceType".into(), json!("Custom::HostileProbe"));
        for (name, value) in [("StackId", stack_id), ("LogicalResourceId", logical_id), ("PhysicalResourceId", physical_id), ("OldResourceProperties", old_properties)] {
            if let Some(value) = value {
                event.insert(name.into(), value);
            }
        }
        event.insert("ResourceProperties".into(), properties);
        for (name, value) in extra {
            event.entry(name).or_insert(value);
        }
        Value::Object(event)
    }
}

/// Whether CloudFormation could have sent this event as it is (so SUCCESS is a possible true answer).
fn well_formed(event: &Value) -> bool {
    let str_field = |name: &str| event.get(name).and_then(Value::as_str).is_some();
    let kind = event["RequestType"].as_str().unwrap_or_default();
    let needs_physical = matches!(kind, "Update" | "Delete");
    matches!(kind, "Create" | "Update" | "Delete")
        && str_field("StackId")
        && str_field("LogicalResourceId")
        && (!needs_physical || str_field("PhysicalResourceId"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_event_with_a_response_url_gets_exactly_one_answer_and_success_only_when_well_formed(event in hostile_event()) {
        let (result, answers) = handle(event.clone());
        prop_assert!(result.is_ok(), "the invocation itself failed: {result:?}");
        prop_assert_eq!(answers.len(), 1, "answers for {}", event);
        let answer = &answers[0];
        prop_assert_eq!(&answer["RequestId"], &event["RequestId"]);
        let status = answer["Status"].as_str().unwrap_or_default();
        prop_assert!(status == "SUCCESS" || status == "FAILED", "status {status}");
        prop_assert!(answer["PhysicalResourceId"].as_str().is_some_and(|id| !id.is_empty()), "no physical id: {answer}");
        if status == "SUCCESS" {
            prop_assert!(well_formed(&event), "SUCCESS for an event CloudFormation never sends: {event}");
        } else {
            let reason = answer["Reason"].as_str().unwrap_or_default();
            prop_assert!(!reason.is_empty(), "FAILED without a reason: {answer}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// ResponseURLs that are not what CloudFormation sends

#[test]
fn a_response_url_that_is_not_a_url_or_not_http_ends_the_invocation_without_a_panic() {
    for url in ["not a url", "ftp://example.invalid/x", "", "http://", "https://[::1", "http://127.0.0.1:1/refused"] {
        let event = json!({
            "RequestType": "Create",
            "ResponseURL": url,
            "RequestId": unique_request_id(),
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/S/1",
            "LogicalResourceId": "Probe",
            "ResourceType": "Custom::HostileProbe",
            "ResourceProperties": {},
        });
        let (result, answers) = handle(event);
        let result = result.unwrap_or_else(|err| panic!("{url:?}: the invocation failed: {err}"));
        assert_eq!(result["Delivered"], json!(false), "{url:?}: {result}");
        assert!(answers.is_empty(), "{url:?}: nothing reaches the sink");
    }
}
