//! Custom::ConfigSetup. The binary is `main.rs`; the resource and its properties are here so tests can
//! check TapStack.yml against the property schema.

mod advice;
mod channel;
mod controls;
mod legacy;
mod properties;
mod recorder;
mod repair;
mod resource;
mod retry;
mod rules;
#[cfg(test)]
mod tests;

pub use controls::{
    rule_control, CHANNEL_CONTROL, DELIVERING_CONTROL, LAST_STATUS_CONTROL, RECORDER_CONTROL, RECORDING_CONTROL,
    RULE_CONTROL_PREFIX,
};
pub use legacy::Ownership;
pub use properties::{Properties, RuleProperties};
pub use resource::{channel_setting, recorder_setting, rule_setting, ConfigSetup, RecordState};
pub use rules::OWNER_TAG;

const ID_PREFIX: &str = "config-setup:";
const SERVICE: &str = "config";
