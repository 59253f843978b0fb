//! Any bytes that are JSON, as any handler's ResourceProperties: parsed or refused naming a property,
//! never a panic or a stack overflow (the parse runs on a 2 MiB stack).
#![no_main]

use libfuzzer_sys::fuzz_target;
#[allow(dead_code)]
#[path = "../../tests/support/hostile.rs"]
mod hostile;

use hostile::parsers;

fuzz_target!(|data: &[u8]| {
    // Lambda hands the handler what serde_json parsed (nesting limit 128); anything else never reaches it.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for (name, parse) in parsers() {
        if let Some(error) = parse(value.clone()) {
            assert!(
                error.contains("property"),
                "{name}: an error that names no property: {error}"
            );
        }
    }
});
