//! Custom::IamPasswordPolicy. The binary is `main.rs`; the resource and its properties are here so
//! tests can check TapStack.yml against the property schema.

mod drift;
mod policy;
mod properties;
mod resource;
#[cfg(test)]
mod tests;

pub use drift::{field_control, POLICY_CONTROL};
pub use policy::{AccountPolicy, PasswordPolicy};
pub use properties::Properties;
pub use resource::{setting, IamPasswordPolicy};

const ID_PREFIX: &str = "iam-password-policy:";
