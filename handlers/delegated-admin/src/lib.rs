//! Custom::DelegatedAdministrator. The binary is `main.rs`; the resource and its properties are here so
//! tests can check OrgStack.yml against the property schema.

mod drift;
mod guardduty;
mod organizations;
mod properties;
mod resource;
#[cfg(test)]
mod tests;

pub use drift::{CONFIG_CONTROL, GUARDDUTY_CONTROL};
pub use organizations::CONFIG_PRINCIPALS;
pub use properties::{Properties, Service};
pub use resource::{setting, DelegatedAdministrator};

const ID_PREFIX: &str = "delegated-admin:";
