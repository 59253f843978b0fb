//! What a verify pass concludes from the registrations read now, against the account the resource
//! claims. Pure comparisons; the reads are in `resource.rs` (`impl Verifier`).

use tapguard_shared::verify::ControlCheck;

use crate::guardduty::Admin;
use crate::resource::describe_admins;

/// GuardDuty's delegated administrator in the function's region is the claimed account, enabled.
pub const GUARDDUTY_CONTROL: &str = "GuardDuty.DelegatedAdministrator";
/// AWS Config's delegated administrator is the claimed account, for both of its service principals.
pub const CONFIG_CONTROL: &str = "Config.DelegatedAdministrator";

pub(crate) fn guardduty(account: &str, admins: &[Admin]) -> ControlCheck {
    let held = admins.iter().any(|a| a.account == account && a.enabled());
    ControlCheck::compare(
        GUARDDUTY_CONTROL,
        held,
        format!("{account} ENABLED"),
        describe_admins(admins),
    )
}

/// `seen`: each service principal with the accounts registered for it.
pub(crate) fn config(account: &str, seen: &[(&str, Vec<String>)]) -> ControlCheck {
    let held = seen.iter().all(|(_, admins)| admins.iter().any(|a| a == account));
    let observed = seen
        .iter()
        .map(|(principal, admins)| {
            let list = if admins.is_empty() {
                "none".to_string()
            } else {
                admins.join(" ")
            };
            format!("{principal}: {list}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    ControlCheck::compare(
        CONFIG_CONTROL,
        held,
        format!("{account} for {}", crate::CONFIG_PRINCIPALS.join(" and ")),
        observed,
    )
}

#[cfg(test)]
mod tests {
    use tapguard_shared::verify::Verdict;

    use super::*;

    fn admin(account: &str, status: &str) -> Admin {
        Admin {
            account: account.into(),
            status: status.into(),
        }
    }

    #[test]
    fn guardduty_holds_only_for_the_claimed_account_enabled() {
        let held = guardduty("222222222222", &[admin("222222222222", "ENABLED")]);
        assert_eq!(
            (held.verdict, held.observed.as_str()),
            (Verdict::Held, "222222222222 ENABLED")
        );
        let leaving = guardduty("222222222222", &[admin("222222222222", "DISABLE_IN_PROGRESS")]);
        assert_eq!(leaving.verdict, Verdict::Drifted);
        let other = guardduty("222222222222", &[admin("333333333333", "ENABLED")]);
        assert_eq!(
            (other.verdict, other.observed.as_str()),
            (Verdict::Drifted, "333333333333 ENABLED")
        );
        assert_eq!(guardduty("222222222222", &[]).observed, "no administrator");
    }

    #[test]
    fn config_holds_only_when_both_principals_name_the_account() {
        let a = "222222222222".to_string();
        let both = [
            ("config-multiaccountsetup.amazonaws.com", vec![a.clone()]),
            ("config.amazonaws.com", vec![a.clone()]),
        ];
        assert_eq!(config(&a, &both).verdict, Verdict::Held);
        let half = [
            ("config-multiaccountsetup.amazonaws.com", vec![a.clone()]),
            ("config.amazonaws.com", vec![]),
        ];
        let check = config(&a, &half);
        assert_eq!(
            (check.verdict, check.observed.as_str()),
            (
                Verdict::Drifted,
                "config-multiaccountsetup.amazonaws.com: 222222222222; config.amazonaws.com: none"
            )
        );
    }
}
