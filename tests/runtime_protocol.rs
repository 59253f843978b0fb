//! The shared runtime's protocol, through a real binary under the Lambda Runtime API: exactly one
//! response per event, panics, deadlines and blocked threads turned into FAILED, the 4096-byte limit,
//! ResponseURL retries within the time left, duplicate deliveries, retired properties, partitions, and
//! logs that never carry the ResponseURL or NoEcho data.
//!
//! The probe runs against the emulator (in an account of its own) because the runtime records each
//! answer in Parameter Store.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tapguard_tests::*;

const TYPE: &str = "Custom::ProtocolProbe";

/// The probe in a fresh account; the world's host and response server stand for Lambda and S3.
fn probe(extra_env: &[(&str, &str)]) -> World {
    World::with_env("protocol-probe", "us-east-1", extra_env)
}

const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/probe/1";

/// How many pieces of work the probe started (one log line each).
fn work_done(host: &LambdaHost) -> usize {
    host.log_lines()
        .iter()
        .filter(|l| l["message"] == "probe work started")
        .count()
}

#[test]
fn a_panic_becomes_failed_and_the_function_keeps_serving() {
    let w = probe(&[]);
    let mut r = CustomResourceDriver::new(&w.host, &w.responses, TYPE, "Probe", STACK);
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
    let w = probe(&[]);
    let mut r = CustomResourceDriver::new(&w.host, &w.responses, TYPE, "Probe", STACK);
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
    let w = probe(&[]);
    let responses = &w.responses;
    responses.fail_next(&[500, 503]);
    let mut r = CustomResourceDriver::new(&w.host, responses, TYPE, "Probe", STACK);
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
    let w = probe(&[]);
    let responses = &w.responses;
    responses.fail_next(&[403]);
    let r = CustomResourceDriver::new(&w.host, responses, TYPE, "Probe", STACK);
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
    let w = probe(&[]);
    let mut r = CustomResourceDriver::new(&w.host, &w.responses, TYPE, "Probe", STACK);
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
    assert!(w.responses.attempts(failed.response_url())[0].body.len() <= 4096);
}

#[test]
fn an_empty_physical_id_is_never_sent() {
    let w = probe(&[]);
    let mut r = CustomResourceDriver::new(&w.host, &w.responses, TYPE, "Probe", STACK);
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
    let w = probe(&[]);
    let mut r = CustomResourceDriver::new(&w.host, &w.responses, TYPE, "Probe", STACK);
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
    let w = probe(&[("AWS_LAMBDA_LOG_LEVEL", "trace")]);
    let host = &w.host;
    let mut r = CustomResourceDriver::new(host, &w.responses, TYPE, "Probe", STACK);
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
    let w = probe(&[]);
    let result = w.host.invoke(
        &json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
        Duration::from_secs(10),
    );
    match result {
        InvokeResult::Error(body) => assert!(body.to_string().contains("handles only CloudFormation"), "{body}"),
        other => panic!("expected an invocation error, got {other:?}"),
    }
}

/// Sends `event` with a fresh ResponseURL and the Lambda deadline `timeout` from now; returns the URL,
/// the invocation's result and the deadline.
fn send_with_deadline(w: &World, mut event: Value, timeout: Duration) -> (String, InvokeResult, Instant) {
    let url = w.responses.url();
    event["ResponseURL"] = json!(url);
    let deadline = Instant::now() + timeout;
    let invoke = w.host.invoke(&event, timeout);
    (url, invoke, deadline)
}

fn create_event(properties: Value) -> Value {
    event("Create", TYPE, "Probe", STACK, "", &properties, None, None)
}

#[test]
fn a_handler_that_blocks_its_thread_still_gets_failed_before_the_deadline_then_the_process_is_replaced() {
    for (behaviour, step) in [
        ("block", "blocking its thread on purpose"),
        ("busy", "spinning on purpose"),
    ] {
        let w = probe(&[]);
        let (url, invoke, deadline) = send_with_deadline(
            &w,
            create_event(json!({"Behaviour": behaviour})),
            Duration::from_secs(6),
        );
        let accepted = w.responses.accepted(&url);
        assert_eq!(
            accepted.len(),
            1,
            "{behaviour}: exactly one answer: {accepted:?}\n{}",
            w.host.logs()
        );
        let answer = &accepted[0];
        assert_eq!(answer["Status"], "FAILED", "{behaviour}");
        let reason = answer["Reason"].as_str().unwrap();
        assert!(reason.contains(&format!(" s while {step}")), "{behaviour}: {reason}");
        assert!(answer["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .starts_with("tapguard-failed-create:"));
        let arrived = w.responses.attempts(&url)[0].received_at;
        assert!(
            arrived < deadline,
            "{behaviour}: the answer came after the Lambda deadline"
        );
        // The stuck process exits after answering, so no later event lands on a blocked thread; Lambda
        // reports that invocation as failed, and the answer record keeps the answerer quiet.
        assert!(matches!(invoke, InvokeResult::NoAnswer), "{behaviour}: {invoke:?}");
        assert_eq!(w.host.exit_code(), Some(70), "{behaviour}");
        assert!(
            w.host.logs().contains("does not yield (it blocks its thread)"),
            "{behaviour}"
        );
    }
}

#[test]
fn a_slow_refusing_or_failing_response_url_is_retried_within_the_time_left_then_logged_loudly() {
    let w = probe(&[]);
    // An S3 that takes longer than an attempt may: the attempt is abandoned and the next one lands.
    w.responses.answer_next(&[Answer::Slow(Duration::from_secs(30), 200)]);
    let (url, invoke, deadline) =
        send_with_deadline(&w, create_event(json!({"Behaviour": "ok"})), Duration::from_secs(14));
    let attempts = w.responses.attempts(&url);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts
        .iter()
        .all(|a| a.body == attempts[0].body && a.received_at < deadline));
    assert!(
        matches!(invoke, InvokeResult::Response(ref v) if v["Delivered"] == true),
        "{invoke:?}"
    );

    // A 5xx for every attempt: bounded by the policy and the time left, then one loud line.
    w.responses.fail_next(&[500; 20]);
    let (url, invoke, _) = send_with_deadline(&w, create_event(json!({"Behaviour": "ok"})), Duration::from_secs(8));
    let tried = w.responses.attempts(&url).len();
    assert!((2..=4).contains(&tried), "{tried} attempts");
    assert!(
        matches!(invoke, InvokeResult::Response(ref v) if v["Delivered"] == false),
        "{invoke:?}"
    );
    w.responses.fail_next(&[]);

    // A ResponseURL that refuses connections.
    let mut refused = create_event(json!({"Behaviour": "ok"}));
    let refusing = ResponseServer::refusing_url();
    refused["ResponseURL"] = json!(refusing);
    let invoke = w.host.invoke(&refused, Duration::from_secs(8));
    assert!(
        matches!(invoke, InvokeResult::Response(ref v) if v["Delivered"] == false),
        "{invoke:?}"
    );

    std::thread::sleep(Duration::from_millis(200));
    let undelivered: Vec<Value> = w
        .host
        .log_lines()
        .into_iter()
        .filter(|l| l["delivered"] == false && l["level"] == "ERROR")
        .collect();
    assert_eq!(undelivered.len(), 2, "{undelivered:?}");
    let loud = &undelivered[1];
    assert_eq!(loud["request_id"], refused["RequestId"]);
    assert!(
        loud["message"].as_str().unwrap().contains("COULD NOT BE DELIVERED"),
        "{loud}"
    );
    assert!(
        loud["delivery_error"].as_str().unwrap().contains("gave up after"),
        "{loud}"
    );
    assert!(loud["delivery_attempts"].as_u64().unwrap() <= 4, "{loud}");
    let logs = w.host.logs();
    let port = refusing.split("//").nth(1).unwrap().split('/').next().unwrap();
    assert!(
        !logs.contains(port) && !logs.contains("tapguardsecret"),
        "a ResponseURL reached the logs"
    );
}

#[test]
fn a_second_delivery_of_an_answered_event_gets_the_same_answer_without_the_work() {
    let w = probe(&[]);
    let mut first = create_event(json!({"Behaviour": "ok"}));
    let url = w.responses.url();
    first["ResponseURL"] = json!(url);
    // Lambda may deliver the same asynchronous event twice: same RequestId, same ResponseURL.
    w.host.invoke(&first, Duration::from_secs(20));
    let again = w.host.invoke(&first, Duration::from_secs(20));
    assert!(
        matches!(again, InvokeResult::Response(ref v) if v["Duplicate"] == true),
        "{again:?}"
    );
    let accepted = w.responses.attempts(&url);
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[0].body, accepted[1].body, "the same answer, byte for byte");
    assert_eq!(work_done(&w.host), 1, "the warm process did the work once");

    // A cold container (a new process) finds the answer in Parameter Store.
    let cold = LambdaHost::start(
        &binary_path("protocol-probe"),
        &emulator().sdk_env(&w.account, &w.region),
    );
    cold.invoke(&first, Duration::from_secs(20));
    let accepted = w.responses.attempts(&url);
    assert_eq!(accepted.len(), 3);
    assert_eq!(accepted[2].body, accepted[0].body);
    assert_eq!(work_done(&cold), 0, "the cold process did no work:\n{}", cold.logs());
    let record = w.json_call(
        "ssm",
        "AmazonSSM.GetParameter",
        json!({"Name": format!("/tapguard/ledger/protocol-probe/answers/{}", first["RequestId"].as_str().unwrap())}),
    );
    assert_eq!(
        record["Parameter"]["Value"].as_str().unwrap().as_bytes(),
        &accepted[0].body[..]
    );

    // NoEcho Data is never written to Parameter Store: such an event is worked again instead.
    let mut secret = create_event(json!({"Behaviour": "no-echo", "Secret": "s3cr3t-no-echo"}));
    secret["ResponseURL"] = json!(w.responses.url());
    cold.invoke(&secret, Duration::from_secs(20));
    let fresh = LambdaHost::start(
        &binary_path("protocol-probe"),
        &emulator().sdk_env(&w.account, &w.region),
    );
    fresh.invoke(&secret, Duration::from_secs(20));
    assert_eq!(work_done(&fresh), 1);
    let all = w.json_call(
        "ssm",
        "AmazonSSM.GetParametersByPath",
        json!({"Path": "/tapguard/ledger/protocol-probe/answers"}),
    );
    assert!(
        !all.to_string().contains("s3cr3t-no-echo"),
        "NoEcho data reached Parameter Store"
    );
}

#[test]
fn a_retired_property_is_accepted_with_a_warning_so_an_old_templates_rollback_parses() {
    let w = probe(&[]);
    let mut r = w.resource(TYPE, "Probe");
    let created = r.create(json!({"Behaviour": "ok"}));
    assert_eq!(created.status(), "SUCCESS");
    // The rollback Update sends the old template's properties, which still had the retired `Mode`.
    let rollback = r.update(json!({"Behaviour": "ok", "Mode": "legacy"}));
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    std::thread::sleep(Duration::from_millis(200));
    let warnings: Vec<Value> = w
        .host
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("retired property ignored"))
        })
        .collect();
    assert!(!warnings.is_empty(), "{}", w.host.logs());
    assert!(warnings.iter().all(|l| l["property"] == "Mode" && l["level"] == "WARN"));
    // Unknown (never declared) properties are still refused.
    let typo = r.update(json!({"Behaviour": "ok", "Mood": "x"}));
    assert_eq!(typo.status(), "FAILED");
    assert!(typo.reason().starts_with("invalid property Mood"), "{}", typo.reason());
}

#[test]
fn the_partition_comes_from_the_stack_id_in_every_partition() {
    let w = probe(&[]);
    for (partition, region) in [
        ("aws", "us-east-1"),
        ("aws-cn", "cn-north-1"),
        ("aws-us-gov", "us-gov-west-1"),
        ("aws-iso", "us-iso-east-1"),
        ("aws-iso-b", "us-isob-east-1"),
        ("aws-iso-e", "eu-isoe-west-1"),
        ("aws-iso-f", "us-isof-south-1"),
        ("aws-eusc", "eusc-de-east-1"),
    ] {
        let stack = format!("arn:{partition}:cloudformation:{region}:210987654321:stack/p/1");
        let mut r = CustomResourceDriver::new(&w.host, &w.responses, TYPE, "Probe", &stack);
        let who = r.create(json!({"Behaviour": "whoami"}));
        assert_eq!(who.data("Partition"), Some(partition), "{stack}");
        assert_eq!(who.data("Account"), Some("210987654321"));
    }
    // No usable StackId: the function's own ARN says the partition (here, the emulator's aws).
    let mut r = CustomResourceDriver::new(&w.host, &w.responses, TYPE, "Probe", "not-an-arn");
    let who = r.create(json!({"Behaviour": "whoami"}));
    assert_eq!(who.data("Partition"), Some("aws"));
}
