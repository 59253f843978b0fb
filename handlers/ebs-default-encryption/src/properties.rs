//! The resource's properties, as TapStack.yml gives them.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Key id, key ARN, alias name or alias ARN; absent or empty means the AWS managed `aws/ebs` key.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

impl Properties {
    pub(crate) fn requested_key(&self) -> Option<&str> {
        self.kms_key_id.as_deref().map(str::trim).filter(|k| !k.is_empty())
    }
}
