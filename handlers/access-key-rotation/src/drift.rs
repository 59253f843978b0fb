//! What a verify pass concludes from the credential report, against the rotation policy a resource
//! claims: no user in scope has an active access key older than the policy lets one live. Pure
//! comparisons; the reads are in `verify.rs`.

use serde::Deserialize;
use tapguard_shared::verify::ControlCheck;

use crate::pass::DAY;
use crate::report::ReportUser;

/// No user in scope (not exempt) has an active access key past the policy's age.
pub const KEY_AGE_CONTROL: &str = "IAM.AccessKeysWithinAge";
/// At most this many users are named in a drifted check's observed value (the log has them all).
const NAMED: usize = 5;

/// The claim's rules, as `resource.rs` writes them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Rules {
    pub mode: String,
    pub max_key_age_days: u32,
    pub overlap_days: u32,
    pub exempt_tag_key: String,
}

impl Rules {
    /// The oldest an active key may be, in days: past MaxKeyAgeDays the next daily pass acts on it (one
    /// day), and in Rotate mode the old key stays active for OverlapDays after its successor is handed
    /// over.
    pub(crate) fn limit_days(&self) -> u32 {
        let overlap = if self.mode == "Rotate" { self.overlap_days } else { 0 };
        self.max_key_age_days.saturating_add(overlap).saturating_add(1)
    }
}

/// The users of the report with an active key older than the limit, with that key's age in days,
/// oldest first. `now`: seconds since the Unix epoch.
pub(crate) fn over_limit(users: &[ReportUser], limit_days: u32, now: i64) -> Vec<(String, i64)> {
    let cutoff = now - i64::from(limit_days) * DAY;
    let mut out: Vec<(String, i64)> = users
        .iter()
        .filter_map(|u| {
            let oldest = u
                .keys
                .iter()
                .filter(|k| k.active && k.last_rotated < cutoff)
                .map(|k| k.last_rotated)
                .min()?;
            Some((u.user.clone(), (now - oldest) / DAY))
        })
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

/// The control: held when no user in scope is `over` the limit.
pub(crate) fn key_age(limit_days: u32, users_in_report: usize, over: &[(String, i64)]) -> ControlCheck {
    let expected = format!("no active access key older than {limit_days} days");
    if over.is_empty() {
        return ControlCheck::compare(
            KEY_AGE_CONTROL,
            true,
            expected,
            format!("none among {users_in_report} users"),
        );
    }
    let mut named: Vec<String> = over
        .iter()
        .take(NAMED)
        .map(|(user, days)| format!("{user} ({days} days)"))
        .collect();
    if over.len() > NAMED {
        named.push(format!("and {} more", over.len() - NAMED));
    }
    ControlCheck::compare(
        KEY_AGE_CONTROL,
        false,
        expected,
        format!(
            "{} user{} with an older active key: {}",
            over.len(),
            if over.len() == 1 { "" } else { "s" },
            named.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use tapguard_shared::verify::Verdict;

    use super::*;
    use crate::report::ReportKey;

    const NOW: i64 = 1_800_000_000;

    fn user(name: &str, keys: &[(bool, i64)]) -> ReportUser {
        ReportUser {
            user: name.into(),
            arn: format!("arn:aws:iam::1:user/{name}"),
            keys: keys
                .iter()
                .map(|(active, days)| ReportKey {
                    active: *active,
                    last_rotated: NOW - days * DAY,
                })
                .collect(),
        }
    }

    fn rules(mode: &str) -> Rules {
        Rules {
            mode: mode.into(),
            max_key_age_days: 90,
            overlap_days: 7,
            exempt_tag_key: "tap:rotation-exempt".into(),
        }
    }

    #[test]
    fn the_limit_allows_the_overlap_only_when_rotating_and_a_day_for_the_schedule() {
        assert_eq!(rules("Rotate").limit_days(), 98);
        assert_eq!(rules("Disable").limit_days(), 91);
    }

    #[test]
    fn only_active_keys_past_the_limit_count_oldest_first() {
        let users = [
            user("young", &[(true, 10)]),
            user("inactive-old", &[(false, 300)]),
            user("old", &[(true, 120), (true, 5)]),
            user("older", &[(true, 200)]),
            user("at-the-limit", &[(true, 97)]),
        ];
        assert_eq!(
            over_limit(&users, 98, NOW),
            vec![("older".to_string(), 200), ("old".to_string(), 120)]
        );
    }

    #[test]
    fn the_control_names_the_users_over_the_limit_and_holds_without_them() {
        let held = key_age(98, 3, &[]);
        assert_eq!(
            (held.control.as_str(), held.verdict, held.observed.as_str()),
            ("IAM.AccessKeysWithinAge", Verdict::Held, "none among 3 users")
        );
        let over: Vec<(String, i64)> = (0..7).map(|i| (format!("u{i}"), 200 - i)).collect();
        let drifted = key_age(98, 9, &over);
        assert_eq!(drifted.verdict, Verdict::Drifted);
        assert_eq!(drifted.expected, "no active access key older than 98 days");
        assert_eq!(
            drifted.observed,
            "7 users with an older active key: u0 (200 days), u1 (199 days), u2 (198 days), u3 (197 days), \
             u4 (196 days), and 2 more"
        );
    }
}
