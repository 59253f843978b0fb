//! An answer when the process dies: the handler's process is killed or aborts mid-event, Lambda hands
//! the OnFailure destination (the failure answerer) the invocation record, and CloudFormation gets exactly
//! one FAILED naming the function, the cause and the log stream; a handler that had answered before it
//! died gets no second answer.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tapguard_tests::*;

const TYPE: &str = "Custom::ProtocolProbe";

fn create(w: &World, behaviour: &str) -> (Value, String) {
    let url = w.responses.url();
    let mut e = event(
        "Create",
        TYPE,
        "Probe",
        &w.stack_id(),
        "",
        &json!({"Behaviour": behaviour}),
        None,
        None,
    );
    e["ResponseURL"] = json!(url);
    (e, url)
}

fn wait_for_log(host: &LambdaHost, text: &str) {
    let until = Instant::now() + Duration::from_secs(20);
    while !host.logs().contains(text) {
        assert!(Instant::now() < until, "never logged {text:?}:\n{}", host.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_process_that_dies_mid_event_gets_failed_from_the_answerer_and_an_answered_one_gets_nothing_more() {
    let w = World::with_env("protocol-probe", "us-east-1", &[]);
    let mut env = emulator().sdk_env(&w.account, &w.region);
    env.push((
        "TAPGUARD_HANDLERS".into(),
        "ebs-default-encryption,protocol-probe".into(),
    ));
    let answerer = LambdaHost::start(&binary_path("failure-answerer"), &env);

    // 1. Killed mid-event (an out-of-memory kill, Lambda's own timeout).
    let (lingering, url) = create(&w, "linger");
    let lambda_request = w.host.submit(&lingering, Duration::from_secs(60));
    wait_for_log(&w.host, "probe work started");
    w.host.kill();
    assert!(
        w.responses.accepted(&url).is_empty(),
        "the killed process answered nothing"
    );
    let message = format!("RequestId: {lambda_request} Error: Runtime exited with error: signal: killed");
    let record = failure_record(
        &w.host.function_arn,
        &lambda_request,
        &lingering,
        Some("Runtime.ExitError"),
        &message,
    );
    let done = answerer.invoke(&record, Duration::from_secs(20));
    assert!(
        matches!(done, InvokeResult::Response(ref v) if v["Answered"] == true && v["Delivered"] == true),
        "{done:?}\n{}",
        answerer.logs()
    );
    let answers = w.responses.accepted(&url);
    assert_eq!(answers.len(), 1, "{answers:?}");
    let reason = answers[0]["Reason"].as_str().unwrap();
    assert_eq!(answers[0]["Status"], "FAILED");
    assert!(
        reason.contains(&format!("the function {}", w.host.function_name)),
        "{reason}"
    );
    assert!(
        reason.contains("Runtime.ExitError: RequestId:") && reason.contains("signal: killed"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("log stream {}", w.host.log_stream)),
        "{reason}"
    );
    assert_eq!(
        answers[0]["PhysicalResourceId"],
        format!("tapguard-failed-create:{}", lingering["RequestId"].as_str().unwrap())
    );
    assert_eq!(answers[0]["RequestId"], lingering["RequestId"]);
    assert_eq!(answers[0]["LogicalResourceId"], "Probe");

    // The same record twice (Lambda may deliver to the destination twice): the second finds the
    // answerer's own record and adds nothing.
    answerer.invoke(&record, Duration::from_secs(20));
    assert_eq!(w.responses.accepted(&url).len(), 1);

    // 2. An abort (a stack overflow, a failed allocation): the record carries only a message.
    let w2 = World::with_env("protocol-probe", "us-east-1", &[]);
    let mut env2 = emulator().sdk_env(&w2.account, &w2.region);
    env2.push(("TAPGUARD_HANDLERS".into(), "protocol-probe".into()));
    let answerer2 = LambdaHost::start(&binary_path("failure-answerer"), &env2);
    let (aborting, url) = create(&w2, "abort");
    let id = w2.host.submit(&aborting, Duration::from_secs(20));
    assert!(matches!(
        w2.host.wait(&id, Duration::from_secs(20)),
        InvokeResult::NoAnswer
    ));
    assert!(w2.host.exit_code().is_some(), "the probe aborted");
    let record = failure_record(
        &w2.host.function_arn,
        &id,
        &aborting,
        None,
        &format!("RequestId: {id} Process exited before completing request"),
    );
    answerer2.invoke(&record, Duration::from_secs(20));
    let answers = w2.responses.accepted(&url);
    assert_eq!(answers.len(), 1);
    assert!(answers[0]["Reason"]
        .as_str()
        .unwrap()
        .contains("Process exited before completing request"));

    // 3. A handler that blocked its thread: the runtime answered FAILED, then exited. Lambda reports
    //    the exit, and the answerer must not answer a second time.
    let w3 = World::with_env("protocol-probe", "us-east-1", &[]);
    let mut env3 = emulator().sdk_env(&w3.account, &w3.region);
    env3.push(("TAPGUARD_HANDLERS".into(), "protocol-probe".into()));
    let answerer3 = LambdaHost::start(&binary_path("failure-answerer"), &env3);
    let (blocking, url) = create(&w3, "block");
    let id = w3.host.submit(&blocking, Duration::from_secs(6));
    w3.host.wait(&id, Duration::from_secs(15));
    assert_eq!(w3.host.exit_code(), Some(70));
    assert_eq!(w3.responses.accepted(&url).len(), 1, "the runtime's own answer");
    let record = failure_record(
        &w3.host.function_arn,
        &id,
        &blocking,
        Some("Runtime.ExitError"),
        "Runtime exited with error: exit status 70",
    );
    let done = answerer3.invoke(&record, Duration::from_secs(20));
    assert!(
        matches!(done, InvokeResult::Response(ref v) if v["Answered"] == false),
        "{done:?}"
    );
    assert_eq!(w3.responses.accepted(&url).len(), 1, "never a second answer");

    // The answerer never logs a ResponseURL.
    for logs in [answerer.logs(), answerer2.logs(), answerer3.logs()] {
        assert!(
            !logs.contains("tapguardsecret") && !logs.contains("/responses/"),
            "{logs}"
        );
    }
}
