//! Custom::SecurityHubEnable. The binary is `main.rs`; the resource and its properties are here so
//! tests can check TapStack.yml against the property schema.

mod drift;
mod hub;
mod legacy;
mod properties;
mod resource;
mod tags;
#[cfg(test)]
mod tests;

pub use drift::{AUTO_ENABLE_CONTROL, GENERATOR_CONTROL, HUB_CONTROL};
pub use hub::{HubState, ManagedBy};
pub use properties::Properties;
pub use resource::{setting, SecurityHubEnable, State};

const ID_PREFIX: &str = "securityhub-enable:";
