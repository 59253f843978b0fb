//! What a verify pass concludes from DescribeSubscription and DescribeDRTAccess now, against what the
//! resource claims: the subscription active, and the Shield Response Team's role the one it asked for.
//! Pure comparisons; the reads are in `resource.rs` (`impl Verifier`).

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use tapguard_shared::verify::ControlCheck;

use crate::engagement::{self, Contact};
use crate::subscription::SubscriptionState;

/// The account's Shield Advanced subscription is active.
pub const SUBSCRIPTION_CONTROL: &str = "Shield.Subscription";
/// The Shield Response Team's role is the one claimed.
pub const SRT_ROLE_CONTROL: &str = "Shield.SrtRole";

/// Proactive engagement is on (the SRT may call the emergency contacts on its own).
pub const PROACTIVE_ENGAGEMENT_CONTROL: &str = "Shield.ProactiveEngagement";
/// The emergency contacts are the ones claimed.
pub const EMERGENCY_CONTACTS_CONTROL: &str = "Shield.EmergencyContacts";

const ACTIVE: &str = "an active subscription";

/// Active: a subscription whose commitment has not ended, or ends and renews (AutoRenew ENABLED).
/// `now`: seconds since the Unix epoch.
pub(crate) fn subscription(observed: &SubscriptionState, now: i64) -> ControlCheck {
    if !observed.exists {
        return ControlCheck::compare(SUBSCRIPTION_CONTROL, false, ACTIVE, "no subscription");
    }
    let auto_renew = observed.auto_renew.as_deref().unwrap_or("unknown");
    let end = observed.end_time.as_deref();
    let ended = end
        .and_then(|e| DateTime::from_str(e, Format::DateTime).ok())
        .is_some_and(|e| e.secs() <= now);
    let text = |state: &str| format!("{state} {} (AutoRenew {auto_renew})", end.unwrap_or("(no end time)"));
    if ended && auto_renew != "ENABLED" {
        ControlCheck::compare(SUBSCRIPTION_CONTROL, false, ACTIVE, text("ended"))
    } else {
        ControlCheck::compare(SUBSCRIPTION_CONTROL, true, ACTIVE, text("commitment ends"))
    }
}

/// The SRT role associated now (`None`: none) against the one claimed.
pub(crate) fn srt_role(wanted: &str, observed: Option<&str>) -> ControlCheck {
    ControlCheck::compare(
        SRT_ROLE_CONTROL,
        observed == Some(wanted),
        wanted,
        observed.unwrap_or("no role"),
    )
}

/// `ProactiveEngagementStatus` now (`None`: never set up): on is ENABLED, or PENDING (asked for, being
/// processed by Shield).
pub(crate) fn proactive_engagement(observed: Option<&str>) -> ControlCheck {
    ControlCheck::compare(
        PROACTIVE_ENGAGEMENT_CONTROL,
        engagement::is_on(observed),
        "ENABLED",
        observed.unwrap_or("never set up"),
    )
}

/// The contacts now against the ones claimed, named by their email addresses (phone numbers and notes
/// are compared, not shown).
pub(crate) fn emergency_contacts(wanted: &[Contact], observed: &[Contact]) -> ControlCheck {
    let names = |contacts: &[Contact]| {
        if contacts.is_empty() {
            return "no contacts".to_string();
        }
        contacts
            .iter()
            .map(|c| c.email_address.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let held = engagement::same(wanted, observed);
    let observed_text = if !held && names(wanted) == names(observed) {
        format!("{} (other phone numbers or notes)", names(observed))
    } else {
        names(observed)
    };
    ControlCheck::compare(EMERGENCY_CONTACTS_CONTROL, held, names(wanted), observed_text)
}

#[cfg(test)]
mod tests {
    use tapguard_shared::verify::Verdict;

    use super::*;

    const NOW: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    fn state(end: &str, auto_renew: &str) -> SubscriptionState {
        SubscriptionState {
            exists: true,
            auto_renew: Some(auto_renew.into()),
            arn: Some("arn:aws:shield::1:subscription/x".into()),
            end_time: Some(end.into()),
            proactive_engagement: None,
        }
    }

    #[test]
    fn a_subscription_is_active_until_its_commitment_ends_without_renewal() {
        let running = subscription(&state("2027-06-01T00:00:00Z", "DISABLED"), NOW);
        assert_eq!(
            (running.control.as_str(), running.verdict, running.observed.as_str()),
            (
                "Shield.Subscription",
                Verdict::Held,
                "commitment ends 2027-06-01T00:00:00Z (AutoRenew DISABLED)"
            )
        );
        let ended = subscription(&state("2026-06-01T00:00:00Z", "DISABLED"), NOW);
        assert_eq!(
            (ended.verdict, ended.observed.as_str()),
            (Verdict::Drifted, "ended 2026-06-01T00:00:00Z (AutoRenew DISABLED)")
        );
        assert_eq!(
            subscription(&state("2026-06-01T00:00:00Z", "ENABLED"), NOW).verdict,
            Verdict::Held,
            "it renews"
        );
        let none = SubscriptionState {
            exists: false,
            auto_renew: None,
            arn: None,
            end_time: None,
            proactive_engagement: None,
        };
        assert_eq!(
            (subscription(&none, NOW).verdict, subscription(&none, NOW).observed),
            (Verdict::Drifted, "no subscription".to_string())
        );
    }

    #[test]
    fn the_srt_role_holds_only_when_it_is_the_claimed_one() {
        let role = "arn:aws:iam::1:role/srt";
        assert_eq!(srt_role(role, Some(role)).verdict, Verdict::Held);
        let other = srt_role(role, Some("arn:aws:iam::1:role/other"));
        assert_eq!((other.verdict, other.expected.as_str()), (Verdict::Drifted, role));
        assert_eq!(srt_role(role, None).observed, "no role");
    }

    #[test]
    fn proactive_engagement_holds_when_on_or_pending() {
        assert_eq!(proactive_engagement(Some("ENABLED")).verdict, Verdict::Held);
        assert_eq!(proactive_engagement(Some("PENDING")).verdict, Verdict::Held);
        let off = proactive_engagement(Some("DISABLED"));
        assert_eq!((off.verdict, off.observed.as_str()), (Verdict::Drifted, "DISABLED"));
        assert_eq!(proactive_engagement(None).observed, "never set up");
    }

    #[test]
    fn contacts_hold_in_any_order_and_a_changed_phone_number_is_drift() {
        let contact = |email: &str, phone: &str| Contact {
            email_address: email.into(),
            phone_number: Some(phone.into()),
            contact_notes: None,
        };
        let wanted = [
            contact("a@example.com", "+15555550100"),
            contact("b@example.com", "+15555550101"),
        ];
        let reversed = [wanted[1].clone(), wanted[0].clone()];
        assert_eq!(emergency_contacts(&wanted, &reversed).verdict, Verdict::Held);
        let phone = [contact("a@example.com", "+15555550199"), wanted[1].clone()];
        let changed = emergency_contacts(&wanted, &phone);
        assert_eq!(
            (changed.verdict, changed.observed.as_str(), changed.expected.as_str()),
            (
                Verdict::Drifted,
                "a@example.com, b@example.com (other phone numbers or notes)",
                "a@example.com, b@example.com"
            )
        );
        assert_eq!(emergency_contacts(&wanted, &[]).observed, "no contacts");
    }
}
