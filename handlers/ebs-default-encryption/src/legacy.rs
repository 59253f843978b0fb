//! The physical id of resources made before the ownership ledger, which carried the prior state:
//! `ebs-default-encryption:<region>:was-enabled=<bool>:was-key=<arn>`. An Update or Delete of such an id
//! still restores that state, and moves it into the ledger.

use crate::encryption::DefaultEncryption;
use crate::ID_PREFIX;

/// The prior state an old-format physical id carries; `None` for any other id.
pub(crate) fn prior_state(physical_id: &str) -> Option<DefaultEncryption> {
    let rest = physical_id.strip_prefix(ID_PREFIX)?;
    let (_region, rest) = rest.split_once(":was-enabled=")?;
    let (enabled, key) = rest.split_once(":was-key=")?;
    Some(DefaultEncryption {
        enabled: enabled.parse().ok()?,
        kms_key_id: key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_ids_give_their_prior_state_and_others_none() {
        let prior = prior_state(
            "ebs-default-encryption:cn-north-1:was-enabled=true:was-key=arn:aws-cn:kms:cn-north-1:1:key/a:b",
        )
        .unwrap();
        assert_eq!(
            prior,
            DefaultEncryption {
                enabled: true,
                kms_key_id: "arn:aws-cn:kms:cn-north-1:1:key/a:b".into()
            }
        );
        assert_eq!(prior_state("ebs-default-encryption:eu-west-1:ledger-abc"), None);
        assert_eq!(
            prior_state("ebs-default-encryption:eu-west-1:was-enabled=maybe:was-key=k"),
            None
        );
        assert_eq!(prior_state("something-else"), None);
    }
}
