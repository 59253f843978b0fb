//! The resource's properties, as TapStack.yml gives them.

use serde::Deserialize;
use tapguard_shared::props::flex;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Subscribe when the account has no subscription (a monthly fee and a one-year commitment). Absent or
    /// false: only an existing subscription is adopted, and its absence is a FAILED.
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub create_subscription: Option<bool>,
    /// The role the Shield Response Team uses in the account (AssociateDRTRole); absent or empty: none.
    #[serde(default)]
    pub srt_role_arn: Option<String>,
}

impl Properties {
    pub(crate) fn creates(&self) -> bool {
        self.create_subscription.unwrap_or(false)
    }

    pub(crate) fn srt_role(&self) -> Option<&str> {
        self.srt_role_arn.as_deref().map(str::trim).filter(|r| !r.is_empty())
    }
}
