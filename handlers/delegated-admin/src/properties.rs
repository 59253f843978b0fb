//! The resource's properties, as OrgStack.yml gives them: which service, and which account.

use serde::Deserialize;
use tapguard_shared::HandlerError;

/// The service whose delegated administrator this resource designates.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum Service {
    /// GuardDuty's own API (`EnableOrganizationAdminAccount`): one administrator per organization and
    /// region, so a resource per region.
    GuardDuty,
    /// AWS Config, through Organizations (`RegisterDelegatedAdministrator`) for both of its service
    /// principals: organization-wide, whichever region the stack is in.
    Config,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::GuardDuty => "GuardDuty",
            Service::Config => "Config",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    pub service: Service,
    /// The member account to make the delegated administrator (12 digits).
    pub account_id: String,
}

impl Properties {
    /// The account asked for, checked before any call.
    pub(crate) fn account(&self) -> Result<&str, HandlerError> {
        let id = self.account_id.trim();
        if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
            Ok(id)
        } else {
            Err(HandlerError::InvalidProperty {
                property: "AccountId".into(),
                problem: format!("{:?} is not a 12-digit AWS account id", self.account_id),
            })
        }
    }
}
