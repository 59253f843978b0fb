//! Any bytes that are a JSON object, as an event with a ResponseURL, through the real runtime in
//! process: exactly one answer, JSON within 4096 bytes (checked by `handle`), its RequestId echoed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
#[allow(dead_code)]
#[path = "../../tests/support/hostile.rs"]
mod hostile;

use hostile::{handle, unique_request_id, world};

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    event.insert("ResponseURL".into(), json!(world().sink.url));
    let request_id = unique_request_id();
    event.insert("RequestId".into(), json!(request_id));
    let (result, answers) = handle(Value::Object(event));
    assert!(result.is_ok(), "the invocation failed: {result:?}");
    assert_eq!(answers.len(), 1, "exactly one answer");
    assert_eq!(answers[0]["RequestId"], json!(request_id));
});
