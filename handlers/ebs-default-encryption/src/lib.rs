//! Custom::EbsDefaultEncryption. The binary is `main.rs`; the resource and its properties are here so
//! tests can check TapStack.yml against the property schema.

mod ec2;
mod encryption;
mod key;
mod key_policy;
mod legacy;
mod properties;
mod resource;
#[cfg(test)]
mod tests;

pub use ec2::Ec2;
pub use encryption::DefaultEncryption;
pub use properties::Properties;
pub use resource::{setting, EbsDefaultEncryption, ENCRYPTION_CONTROL, KEY_CONTROL};

const ID_PREFIX: &str = "ebs-default-encryption:";
