//! The resource's properties, as TapStack.yml gives them.

use serde::Deserialize;
use tapguard_shared::props::flex;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Key id, key ARN, alias name or alias ARN; absent or empty means the AWS managed `aws/ebs` key.
    #[serde(default)]
    pub kms_key_id: Option<String>,
    /// Whether the scheduled verify pass puts a drifted default back as an Update would (default no).
    #[serde(default, deserialize_with = "flex::bool")]
    pub repair_drift: bool,
}

impl Properties {
    pub(crate) fn requested_key(&self) -> Option<&str> {
        self.kms_key_id.as_deref().map(str::trim).filter(|k| !k.is_empty())
    }
}
