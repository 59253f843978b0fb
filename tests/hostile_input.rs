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

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tapguard_tests::hostile::{handle, handlers, unique_request_id, world};

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
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
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
    assert!(
        serde_json::from_str::<Value>(&too_deep).is_err(),
        "serde_json's recursion limit"
    );
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

/// Found by the property above in a CI run: a physical id longer than CloudFormation makes them (and no
/// StackId) made an answer of 4,097 bytes and more, because the identifiers an answer echoes were never
/// cut. Now the answer fits, is FAILED and says why.
#[test]
fn an_event_whose_identifiers_cannot_fit_an_answer_gets_a_failed_one_that_does() {
    let event = json!({
        "RequestType": "Create",
        "ResponseURL": world().sink.url,
        "RequestId": unique_request_id(),
        "ResourceType": "Custom::HostileProbe",
        "StackId": null,
        "LogicalResourceId": "Probe",
        "PhysicalResourceId": "x".repeat(4000),
        "OldResourceProperties": {},
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:f", "Answer": "42"},
    });
    let (result, answers) = handle(event.clone());
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(answers.len(), 1, "{answers:?}");
    let answer = &answers[0];
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert_eq!(answer["RequestId"], event["RequestId"]);
    assert!(serde_json::to_vec(answer).unwrap().len() <= 4096);
}

// ---------------------------------------------------------------------------------------------------
// ResponseURLs that are not what CloudFormation sends

#[test]
fn a_response_url_that_is_not_a_url_or_not_http_ends_the_invocation_without_a_panic() {
    for url in [
        "not a url",
        "ftp://example.invalid/x",
        "",
        "http://",
        "https://[::1",
        "http://127.0.0.1:1/refused",
    ] {
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
