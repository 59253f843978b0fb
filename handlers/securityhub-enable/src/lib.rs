//! Custom::SecurityHubEnable. The binary is `main.rs`; the resource and its properties are here so
//! tests can check TapStack.yml against the property schema.

mod resource;

pub use resource::{ManagedBy, Ownership, Properties, SecurityHubEnable};
