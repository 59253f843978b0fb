//! The physical id of resources made before the ownership ledger, which carried the prior state:
//! `securityhub-standards:<region>:adopted=<standard ids>[:controls-adopted=<controls>]`. An Update or
//! Delete of such an id still does the right thing, and moves its state into the ledger.

use std::collections::BTreeSet;

use tapguard_shared::HandlerError;

use crate::ID_PREFIX;

/// created; fixed for the resource's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Ownership {
    pub region: String,
    pub adopted: BTreeSet<String>,
    /// `<standard id>#<control>` of the controls that were already disabled.
    pub controls_adopted: BTreeSet<String>,
}

impl Ownership {
    pub fn parse(physical_id: &str) -> Result<Self, HandlerError> {
        let malformed = || {
            HandlerError::Failed(format!(
                "physical id {physical_id:?} is not one this handler issues (expected \
                 {ID_PREFIX}<region>:adopted=<standard ids, comma-separated>[:controls-adopted=<controls>])"
            ))
        };
        let rest = physical_id.strip_prefix(ID_PREFIX).ok_or_else(malformed)?;
        let (region, rest) = rest.split_once(":adopted=").ok_or_else(malformed)?;
        let (adopted, controls_adopted) = rest.split_once(":controls-adopted=").unwrap_or((rest, ""));
        let set = |list: &str| -> BTreeSet<String> {
            list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
        };
        Ok(Ownership {
            region: region.to_string(),
            adopted: set(adopted),
            controls_adopted: set(controls_adopted),
        })
    }
}
