//! The shared runtime's protocol, through a real binary under the Lambda Runtime API: exactly one
//! response per event, panics and deadlines turned into FAILED, the 4096-byte limit, ResponseURL retries,
//! and logs that never carry the ResponseURL or NoEcho data.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tapguard_tests::*;

const TYPE: &str = "Custom::ProtocolProbe";

fn probe(extra_env: &[(&str, &str)]) -> (LambdaHost, ResponseServer) {
    let env: Vec<(String, String)> = [("AWS_REGION", "us-east-1")]
        .iter()
        .chain(extra_env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (
        LambdaHost::start(&binary_path("protocol-probe"), &env),
        ResponseServer::start(),
    )
}

const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/probe/1";

#[test]
fn a_panic_becomes_failed_and_the_function_keeps_serving() {
    let (host, responses) = probe(&[]);
    let mut r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    let failed = r.create(json!({"Behaviour": "panic"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("the handler panicked: probe panicked on purpose"),
        "{}",
        failed.reason()
    );
    assert!(
        matches!(failed.invoke, InvokeResult::Response(_)),
        "the invocation must end normally: {:?}",
        failed.invoke
    );
    // The same warm process answers the next event.
    let ok = r.create(json!({"Behaviour": "ok"}));
    assert_eq!(ok.status(), "SUCCESS");
    assert_eq!(ok.data("Answer"), Some("42"));
}

#[test]
fn a_deadline_that_runs_out_answers_failed_before_lambda_stops() {
    let (host, responses) = probe(&[]);
    let mut r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    r.timeout = Duration::from_secs(7);
    let started = Instant::now();
    let failed = r.create(json!({"Behaviour": "sleep"}));
    assert!(started.elapsed() < Duration::from_secs(7));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().contains(" s while sleeping on purpose"),
        "{}",
        failed.reason()
    );
    assert!(failed.physical_id().starts_with("tapguard-failed-create:"));
}

#[test]
fn the_response_url_failing_twice_is_retried_until_it_succeeds() {
    let (host, responses) = probe(&[]);
    responses.fail_next(&[500, 503]);
    let mut r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    let ok = r.create(json!({"Behaviour": "ok"}));
    assert_eq!(ok.status(), "SUCCESS");
    let attempts = responses.attempts(ok.response_url());
    assert_eq!(
        attempts.iter().map(|a| a.status_answered).collect::<Vec<_>>(),
        vec![500, 503, 200]
    );
    assert!(
        attempts.iter().all(|a| a.body == attempts[2].body),
        "every attempt carries the same body"
    );
    // Pre-signed S3 URLs are signed without a content type: none may be sent.
    assert!(
        attempts.iter().all(|a| a.content_type.is_none()),
        "{:?}",
        attempts[0].content_type
    );
}

#[test]
fn a_4xx_from_the_response_url_is_not_retried() {
    let (host, responses) = probe(&[]);
    responses.fail_next(&[403]);
    let r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    let event = event(
        "Create",
        TYPE,
        "Probe",
        STACK,
        "",
        &json!({"Behaviour": "ok"}),
        None,
        None,
    );
    let exchange = r.send(event);
    assert!(exchange.response.is_none());
    assert_eq!(responses.attempts(exchange.response_url()).len(), 1);
    assert!(
        matches!(exchange.invoke, InvokeResult::Response(ref v) if v["Delivered"] == false),
        "{:?}",
        exchange.invoke
    );
}

#[test]
fn data_that_cannot_fit_is_reported_and_the_body_stays_inside_the_limit() {
    let (host, responses) = probe(&[]);
    let mut r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    let failed = r.create(json!({"Behaviour": "huge-data"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .contains("does not fit CloudFormation's 4096-byte response limit"),
        "{}",
        failed.reason()
    );
    assert!(failed.reason().contains("Key0, Key1"), "{}", failed.reason());
    assert!(responses.attempts(failed.response_url())[0].body.len() <= 4096);
}

#[test]
fn an_empty_physical_id_is_never_sent() {
    let (host, responses) = probe(&[]);
    let mut r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    let failed = r.create(json!({"Behaviour": "empty-id"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(!failed.physical_id().is_empty());
    assert!(
        failed.reason().contains("empty PhysicalResourceId"),
        "{}",
        failed.reason()
    );
}

#[test]
fn delete_of_a_failed_create_or_foreign_id_succeeds_without_calling_the_resource() {
    let (host, responses) = probe(&[]);
    let mut r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    let failed = r.create(json!({"Behaviour": "ok", "Typo": "x"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("invalid property Typo: unknown property (supported: Behaviour, Secret)"),
        "{}",
        failed.reason()
    );
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS");
    assert_eq!(deleted.physical_id(), failed.physical_id());

    r.physical_id = Some("made-by-the-old-python-handler".into());
    let foreign = r.delete();
    assert_eq!(foreign.status(), "SUCCESS");
    assert_eq!(foreign.physical_id(), "made-by-the-old-python-handler");
}

#[test]
fn one_searchable_log_line_per_event_and_no_response_url_or_no_echo_data_in_logs() {
    // Even at TRACE, where lambda_runtime would print the raw event.
    let (host, responses) = probe(&[("AWS_LAMBDA_LOG_LEVEL", "trace")]);
    let mut r = CustomResourceDriver::new(&host, &responses, TYPE, "Probe", STACK);
    let secret = "hunter2-no-echo-value";
    let created = r.create(json!({"Behaviour": "no-echo", "Secret": secret}));
    assert_eq!(created.status(), "SUCCESS");
    assert_eq!(created.response()["NoEcho"], true);
    let failed = r.update(json!({"Behaviour": "panic"}));
    assert_eq!(failed.status(), "FAILED");
    std::thread::sleep(Duration::from_millis(200));

    let logs = host.logs();
    for url in [created.response_url(), failed.response_url()] {
        let signature = url.split("X-Amz-Signature=").nth(1).expect("a signature");
        assert!(!logs.contains(signature), "a ResponseURL signature reached the logs");
        assert!(
            !logs.contains(url.split('?').next().unwrap()),
            "a ResponseURL reached the logs"
        );
    }
    assert!(!logs.contains(secret), "NoEcho data reached the logs");

    let events: Vec<Value> = host
        .log_lines()
        .into_iter()
        .filter(|l| l["message"] == "custom resource event handled")
        .collect();
    assert_eq!(events.len(), 2, "one line per event: {events:?}");
    let (first, second) = (&events[0], &events[1]);
    assert_eq!(first["request_type"], "Create");
    assert_eq!(first["outcome"], "SUCCESS");
    assert_eq!(first["logical_resource_id"], "Probe");
    assert_eq!(first["stack_id"], STACK);
    assert_eq!(first["physical_resource_id"], "probe:secret");
    assert_eq!(first["request_id"], created.event["RequestId"]);
    assert!(first["duration_ms"].is_u64());
    assert_eq!(second["outcome"], "FAILED");
    assert_eq!(second["level"], "ERROR");
    assert!(second["reason"].as_str().unwrap().contains("probe panicked on purpose"));
}

#[test]
fn a_scheduled_event_to_a_custom_resource_only_function_is_an_invocation_error() {
    let (host, _responses) = probe(&[]);
    let result = host.invoke(
        &json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
        Duration::from_secs(10),
    );
    match result {
        InvokeResult::Error(body) => assert!(body.to_string().contains("handles only CloudFormation"), "{body}"),
        other => panic!("expected an invocation error, got {other:?}"),
    }
}
