//! The resource's properties: the parameters of IAM's UpdateAccountPasswordPolicy, by their own names.

use serde::Deserialize;
use tapguard_shared::props::flex;
use tapguard_shared::HandlerError;

use crate::policy::{PasswordPolicy, DEFAULT_MINIMUM_LENGTH};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// 6 to 128; absent: 8, IAM's default.
    #[serde(default, deserialize_with = "flex::option_u32")]
    pub minimum_password_length: Option<u32>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub require_symbols: Option<bool>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub require_numbers: Option<bool>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub require_uppercase_characters: Option<bool>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub require_lowercase_characters: Option<bool>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub allow_users_to_change_password: Option<bool>,
    /// Days, 1 to 1095; absent: passwords never expire.
    #[serde(default, deserialize_with = "flex::option_u32")]
    pub max_password_age: Option<u32>,
    /// 1 to 24 earlier passwords that cannot be reused; absent: no such rule.
    #[serde(default, deserialize_with = "flex::option_u32")]
    pub password_reuse_prevention: Option<u32>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub hard_expiry: Option<bool>,
    /// Whether the scheduled verify pass raises a policy found weaker than asked back to what was asked
    /// (never weakening a field someone made stronger); default no.
    #[serde(default, deserialize_with = "flex::bool")]
    pub repair_drift: bool,
}

impl Properties {
    /// The policy asked for, with IAM's defaults where a property is absent (as UpdateAccountPasswordPolicy
    /// itself does), checked against IAM's ranges before any call.
    pub(crate) fn requested(&self) -> Result<PasswordPolicy, HandlerError> {
        let minimum_password_length =
            in_range("MinimumPasswordLength", self.minimum_password_length, 6, 128)?.unwrap_or(DEFAULT_MINIMUM_LENGTH);
        let max_password_age = in_range("MaxPasswordAge", self.max_password_age, 1, 1095)?.unwrap_or(0);
        let password_reuse_prevention =
            in_range("PasswordReusePrevention", self.password_reuse_prevention, 1, 24)?.unwrap_or(0);
        let hard_expiry = self.hard_expiry.unwrap_or(false);
        Ok(PasswordPolicy {
            minimum_password_length,
            require_symbols: self.require_symbols.unwrap_or(false),
            require_numbers: self.require_numbers.unwrap_or(false),
            require_uppercase_characters: self.require_uppercase_characters.unwrap_or(false),
            require_lowercase_characters: self.require_lowercase_characters.unwrap_or(false),
            allow_users_to_change_password: self.allow_users_to_change_password.unwrap_or(false),
            max_password_age,
            password_reuse_prevention,
            hard_expiry,
        })
    }
}

fn in_range(property: &str, value: Option<u32>, min: u32, max: u32) -> Result<Option<u32>, HandlerError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(HandlerError::InvalidProperty {
            property: property.into(),
            problem: format!("{v} is outside what IAM accepts ({min} to {max})"),
        }),
        other => Ok(other),
    }
}
