//! Custom::ShieldAdvanced. The binary is `main.rs`; the resource and its properties are here so tests
//! can check TapStack.yml against the property schema.

mod drift;
mod endpoint;
mod engagement;
mod properties;
mod resource;
mod srt;
mod subscription;
#[cfg(test)]
mod tests;

pub use drift::{EMERGENCY_CONTACTS_CONTROL, PROACTIVE_ENGAGEMENT_CONTROL, SRT_ROLE_CONTROL, SUBSCRIPTION_CONTROL};
pub use engagement::Contact;
pub use properties::Properties;
pub use resource::{engagement_settings, settings, ShieldAdvanced};

const ID_PREFIX: &str = "shield-advanced:";
