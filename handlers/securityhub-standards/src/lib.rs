//! Custom::SecurityHubStandards. The binary is `main.rs`; the resource and its properties are here so
//! tests can check TapStack.yml against the property schema.

mod controls;
mod resource;

pub use controls::DisabledControl;
pub use resource::{standard_id, standards_arn, Ownership, Properties, SecurityHubStandards, Standard, Subscription};
