//! Custom::ConfigSetup. The binary is `main.rs`; the resource and its properties are here so tests can
//! check TapStack.yml against the property schema.

mod properties;
mod resource;

pub use properties::{Properties, RuleProperties};
pub use resource::{ConfigSetup, Ownership, OWNER_TAG};
