//! Custom::SecurityHubStandards. The binary is `main.rs`; the resource and its properties are here so
//! tests can check TapStack.yml against the property schema.

mod claims;
mod controls;
mod drift;
mod legacy;
mod properties;
mod repair;
mod resource;
mod standards;
#[cfg(test)]
mod tests;
mod verify;

pub use controls::DisabledControl;
pub use drift::{
    disabled_control, reenabled_control, standard_control, DISABLED_CONTROL, REENABLED_CONTROL, STANDARD_CONTROL,
};
pub use legacy::Ownership;
pub use properties::{standard_id, standards_arn, Properties, Standard};
pub use resource::{SecurityHubStandards, State};
pub use standards::Subscription;

const ID_PREFIX: &str = "securityhub-standards:";
