//! The physical id of resources made before the ownership ledger, which carried the prior state:
//! `securityhub-enable:<region>:<enabled|adopted>:default-standards=<bool>`. An Update or Delete of such
//! an id still does the right thing, and moves its state into the ledger.

use crate::hub::HubState;
use crate::ID_PREFIX;

/// What an old-format id says: the hub's prior state (off when this resource enabled it; on with
/// unknown settings when it was adopted) and the EnableDefaultStandards value it enabled the hub with.
pub(crate) fn prior_state(physical_id: &str) -> Option<(HubState, bool)> {
    let rest = physical_id.strip_prefix(ID_PREFIX)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let [_region, how, defaults] = parts[..] else {
        return None;
    };
    let default_standards = defaults.strip_prefix("default-standards=")?.parse().ok()?;
    let prior = match how {
        "enabled" => HubState::off(),
        "adopted" => HubState {
            enabled: true,
            ..HubState::off()
        },
        _ => return None,
    };
    Some((prior, default_standards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_ids_give_their_prior_state_and_others_none() {
        let (prior, defaults) = prior_state("securityhub-enable:cn-north-1:enabled:default-standards=true").unwrap();
        assert!(!prior.enabled && defaults);
        let (prior, defaults) = prior_state("securityhub-enable:eu-west-1:adopted:default-standards=false").unwrap();
        assert!(prior.enabled && prior.control_finding_generator.is_none() && !defaults);
        assert!(prior_state("securityhub-enable:eu-west-1:enabled").is_none());
        assert!(prior_state("securityhub-enable:eu-west-1:mine:default-standards=true").is_none());
        assert!(prior_state("securityhub-enable:eu-west-1:ledger-abc").is_none());
    }
}
