//! What a verify pass concludes from the account's password policy now, against what the resource
//! claims: a policy at least as strong as asked, field by field by strength (a longer minimum length,
//! a requirement not asked for, a shorter maximum age all hold). No policy at all is drifted. Pure
//! comparisons; the read is in `resource.rs` (`impl Verifier`).

use tapguard_shared::verify::ControlCheck;

use crate::policy::PasswordPolicy;

/// The account has a password policy.
pub const POLICY_CONTROL: &str = "IAM.PasswordPolicy";

/// The control of one field the claim asks for: `IAM.PasswordPolicy.<field as IAM spells it>`.
pub fn field_control(field: &str) -> String {
    format!("{POLICY_CONTROL}.{field}")
}

/// How strong a field must be, and how strong it is, in words.
enum Floor {
    /// At least this many (minimum length, reuse memory); 0 asks nothing.
    AtLeast(u32),
    /// Required (asked `true`).
    Required,
    /// Passwords expire after at most this many days (0 asks nothing; 0 observed never expires).
    ExpiresWithin(u32),
}

impl Floor {
    fn asks(&self) -> bool {
        match self {
            Floor::AtLeast(n) | Floor::ExpiresWithin(n) => *n > 0,
            Floor::Required => true,
        }
    }
}

/// How a field is read from a policy, as a number or a flag (1: true).
type Read = fn(&PasswordPolicy) -> u32;

/// The fields the claim asks for, each as (name, floor, how its observed value is read).
fn fields(wants: &PasswordPolicy) -> Vec<(&'static str, Floor, Read)> {
    let flag = |on: bool| if on { Some(Floor::Required) } else { None };
    let table: [(&'static str, Option<Floor>, Read); 9] = [
        (
            "MinimumPasswordLength",
            Some(Floor::AtLeast(wants.minimum_password_length)),
            |p| p.minimum_password_length,
        ),
        ("RequireSymbols", flag(wants.require_symbols), |p| {
            u32::from(p.require_symbols)
        }),
        ("RequireNumbers", flag(wants.require_numbers), |p| {
            u32::from(p.require_numbers)
        }),
        (
            "RequireUppercaseCharacters",
            flag(wants.require_uppercase_characters),
            |p| u32::from(p.require_uppercase_characters),
        ),
        (
            "RequireLowercaseCharacters",
            flag(wants.require_lowercase_characters),
            |p| u32::from(p.require_lowercase_characters),
        ),
        (
            "AllowUsersToChangePassword",
            flag(wants.allow_users_to_change_password),
            |p| u32::from(p.allow_users_to_change_password),
        ),
        (
            "MaxPasswordAge",
            Some(Floor::ExpiresWithin(wants.max_password_age)),
            |p| p.max_password_age,
        ),
        (
            "PasswordReusePrevention",
            Some(Floor::AtLeast(wants.password_reuse_prevention)),
            |p| p.password_reuse_prevention,
        ),
        ("HardExpiry", flag(wants.hard_expiry), |p| u32::from(p.hard_expiry)),
    ];
    table
        .into_iter()
        .filter_map(|(name, floor, read)| floor.filter(Floor::asks).map(|f| (name, f, read)))
        .collect()
}

fn expected(floor: &Floor) -> String {
    match floor {
        Floor::AtLeast(n) => format!("at least {n}"),
        Floor::Required => "true".into(),
        Floor::ExpiresWithin(days) => format!("at most {days} days"),
    }
}

fn observed(floor: &Floor, value: u32) -> String {
    match floor {
        Floor::Required => (value == 1).to_string(),
        Floor::ExpiresWithin(_) if value == 0 => "never expires".into(),
        Floor::ExpiresWithin(_) => format!("{value} days"),
        Floor::AtLeast(_) => value.to_string(),
    }
}

fn holds(floor: &Floor, value: u32) -> bool {
    match floor {
        Floor::AtLeast(n) => value >= *n,
        Floor::Required => value == 1,
        Floor::ExpiresWithin(days) => value != 0 && value <= *days,
    }
}

/// The policy's presence and each field the claim asks for, against the policy as read (`None`: the
/// account has none).
pub(crate) fn policy(wants: &PasswordPolicy, current: Option<&PasswordPolicy>) -> Vec<ControlCheck> {
    let mut checks = vec![ControlCheck::compare(
        POLICY_CONTROL,
        current.is_some(),
        "a password policy",
        if current.is_some() {
            "a password policy"
        } else {
            "no password policy"
        },
    )];
    for (name, floor, read) in fields(wants) {
        let control = field_control(name);
        checks.push(match current {
            Some(p) => ControlCheck::compare(
                &control,
                holds(&floor, read(p)),
                expected(&floor),
                observed(&floor, read(p)),
            ),
            None => ControlCheck::compare(&control, false, expected(&floor), "no password policy"),
        });
    }
    checks
}

/// Every control a claim asks for, unknown for `why`.
pub(crate) fn unknown(wants: Option<&PasswordPolicy>, why: &str) -> Vec<ControlCheck> {
    let mut checks = vec![ControlCheck::unknown(POLICY_CONTROL, "a password policy", why)];
    if let Some(wants) = wants {
        for (name, floor, _) in fields(wants) {
            checks.push(ControlCheck::unknown(&field_control(name), expected(&floor), why));
        }
    }
    checks
}

#[cfg(test)]
mod tests {
    use tapguard_shared::verify::Verdict;

    use super::*;

    fn asked() -> PasswordPolicy {
        PasswordPolicy {
            minimum_password_length: 14,
            require_symbols: true,
            require_numbers: false,
            require_uppercase_characters: false,
            require_lowercase_characters: false,
            allow_users_to_change_password: false,
            max_password_age: 90,
            password_reuse_prevention: 0,
            hard_expiry: false,
        }
    }

    fn verdict_of<'a>(checks: &'a [ControlCheck], field: &str) -> &'a ControlCheck {
        let name = field_control(field);
        checks
            .iter()
            .find(|c| c.control == name)
            .unwrap_or_else(|| panic!("{name} in {checks:?}"))
    }

    #[test]
    fn only_the_fields_the_claim_asks_for_are_checked() {
        let names: Vec<String> = policy(&asked(), Some(&asked()))
            .into_iter()
            .map(|c| c.control)
            .collect();
        assert_eq!(
            names,
            vec![
                "IAM.PasswordPolicy",
                "IAM.PasswordPolicy.MinimumPasswordLength",
                "IAM.PasswordPolicy.RequireSymbols",
                "IAM.PasswordPolicy.MaxPasswordAge"
            ]
        );
        assert!(policy(&asked(), Some(&asked()))
            .iter()
            .all(|c| c.verdict == Verdict::Held));
    }

    #[test]
    fn a_stronger_field_holds_and_a_weaker_one_drifts() {
        let stronger = PasswordPolicy {
            minimum_password_length: 20,
            require_numbers: true,
            max_password_age: 30,
            ..asked()
        };
        assert!(policy(&asked(), Some(&stronger))
            .iter()
            .all(|c| c.verdict == Verdict::Held));
        let shorter = PasswordPolicy {
            minimum_password_length: 8,
            ..asked()
        };
        let length = verdict_of(&policy(&asked(), Some(&shorter)), "MinimumPasswordLength").clone();
        assert_eq!(
            (length.verdict, length.expected.as_str(), length.observed.as_str()),
            (Verdict::Drifted, "at least 14", "8")
        );
        let no_symbols = PasswordPolicy {
            require_symbols: false,
            ..asked()
        };
        let symbols = verdict_of(&policy(&asked(), Some(&no_symbols)), "RequireSymbols").clone();
        assert_eq!(
            (symbols.verdict, symbols.observed.as_str()),
            (Verdict::Drifted, "false")
        );
        for (age, verdict, text) in [
            (0, Verdict::Drifted, "never expires"),
            (180, Verdict::Drifted, "180 days"),
            (90, Verdict::Held, "90 days"),
        ] {
            let p = PasswordPolicy {
                max_password_age: age,
                ..asked()
            };
            let check = verdict_of(&policy(&asked(), Some(&p)), "MaxPasswordAge").clone();
            assert_eq!((check.verdict, check.observed.as_str()), (verdict, text), "{age}");
        }
    }

    #[test]
    fn no_policy_drifts_every_control_and_an_unreadable_one_is_unknown() {
        let none = policy(&asked(), None);
        assert!(none.iter().all(|c| c.verdict == Verdict::Drifted), "{none:?}");
        assert_eq!(none[0].observed, "no password policy");
        let unread = unknown(Some(&asked()), "AccessDenied: no");
        assert_eq!(unread.len(), 4);
        assert!(unread.iter().all(|c| c.verdict == Verdict::Unknown));
    }
}
