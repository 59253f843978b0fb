//! What a verify pass concludes from what Security Hub shows now, against what the resource claims:
//! each claimed standard `READY`, each claimed control still disabled, and each control this resource
//! turned back on not disabled again. Pure comparisons; the reads are in `verify.rs`.

use tapguard_shared::verify::ControlCheck;

use crate::controls::ControlState;
use crate::standards::Subscription;

/// A claimed standard is subscribed and READY: `SecurityHub.StandardReady:<standard id>`.
pub const STANDARD_CONTROL: &str = "SecurityHub.StandardReady";
/// A claimed control is still disabled: `SecurityHub.ControlDisabled:<standard id>#<control id>`.
pub const DISABLED_CONTROL: &str = "SecurityHub.ControlDisabled";
/// A control this resource turned back on is not disabled again:
/// `SecurityHub.ControlReenabled:<standard id>#<control id>`.
pub const REENABLED_CONTROL: &str = "SecurityHub.ControlReenabled";

/// The control name reported for a claimed standard.
pub fn standard_control(standard_id: &str) -> String {
    format!("{STANDARD_CONTROL}:{standard_id}")
}

/// The control name reported for a claimed disabled control (`key`: `<standard id>#<control id>`).
pub fn disabled_control(key: &str) -> String {
    format!("{DISABLED_CONTROL}:{key}")
}

/// The control name reported for a control this resource turned back on.
pub fn reenabled_control(key: &str) -> String {
    format!("{REENABLED_CONTROL}:{key}")
}

const HUB_OFF: &str = "Security Hub is off";

/// A claimed standard: held when READY; PENDING is not settled yet (unknown); anything else drifted.
pub(crate) fn standard(standard_id: &str, hub_on: bool, observed: Option<&Subscription>) -> ControlCheck {
    let name = standard_control(standard_id);
    match observed {
        _ if !hub_on => ControlCheck::compare(&name, false, "READY", HUB_OFF),
        None => ControlCheck::compare(&name, false, "READY", "not subscribed"),
        Some(s) if s.status == "READY" => ControlCheck::compare(&name, true, "READY", "READY"),
        Some(s) if s.status == "PENDING" => ControlCheck::unknown(
            &name,
            "READY",
            "PENDING: Security Hub is still setting the standard up; the next pass sees where it settles",
        ),
        Some(s) => ControlCheck::compare(&name, false, "READY", status_text(s)),
    }
}

fn status_text(s: &Subscription) -> String {
    match &s.reason {
        Some(reason) => format!("{} ({reason})", s.status),
        None => s.status.clone(),
    }
}

/// Where a control's standard stands, for reading the control.
pub(crate) enum ControlRead {
    HubOff,
    /// The standard is not subscribed (or being deleted): the control is not disabled anywhere.
    NotSubscribed,
    /// The control's state, or why it could not be found in its subscribed standard.
    Read(Result<ControlState, String>),
}

/// A claimed disabled control: held while it reads DISABLED.
pub(crate) fn disabled(key: &str, observed: ControlRead) -> ControlCheck {
    let name = disabled_control(key);
    match observed {
        ControlRead::HubOff => ControlCheck::compare(&name, false, "DISABLED", HUB_OFF),
        ControlRead::NotSubscribed => ControlCheck::compare(&name, false, "DISABLED", "its standard is not subscribed"),
        ControlRead::Read(Ok(state)) => ControlCheck::compare(&name, state.disabled, "DISABLED", state_text(&state)),
        ControlRead::Read(Err(why)) => ControlCheck::unknown(&name, "DISABLED", why),
    }
}

/// A control this resource turned back on: held while it is not disabled (also when its standard or the
/// hub is off: then it is disabled nowhere).
pub(crate) fn reenabled(key: &str, observed: ControlRead) -> ControlCheck {
    let name = reenabled_control(key);
    match observed {
        ControlRead::HubOff => ControlCheck::compare(&name, true, "ENABLED", HUB_OFF),
        ControlRead::NotSubscribed => ControlCheck::compare(&name, true, "ENABLED", "its standard is not subscribed"),
        ControlRead::Read(Ok(state)) => ControlCheck::compare(&name, !state.disabled, "ENABLED", state_text(&state)),
        ControlRead::Read(Err(why)) => ControlCheck::unknown(&name, "ENABLED", why),
    }
}

fn state_text(state: &ControlState) -> String {
    match (&state.reason, state.disabled) {
        (Some(reason), true) if !reason.is_empty() => format!("DISABLED ({reason})"),
        (_, true) => "DISABLED".into(),
        (_, false) => "ENABLED".into(),
    }
}

#[cfg(test)]
mod tests {
    use tapguard_shared::verify::Verdict;

    use super::*;

    fn subscription(status: &str, reason: Option<&str>) -> Subscription {
        Subscription {
            arn: "arn:aws:securityhub:eu-west-1:1:subscription/pci-dss/v/3.2.1".into(),
            standard_id: "pci-dss/v/3.2.1".into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            controls_updatable: None,
        }
    }

    fn state(disabled: bool) -> ControlState {
        ControlState {
            disabled,
            reason: disabled.then(|| "not used here".to_string()),
        }
    }

    #[test]
    fn a_standard_holds_only_when_ready_and_pending_is_unknown() {
        let id = "pci-dss/v/3.2.1";
        let ready = standard(id, true, Some(&subscription("READY", None)));
        assert_eq!(
            (ready.control.as_str(), ready.verdict),
            ("SecurityHub.StandardReady:pci-dss/v/3.2.1", Verdict::Held)
        );
        let incomplete = standard(
            id,
            true,
            Some(&subscription("INCOMPLETE", Some("NO_AVAILABLE_CONFIGURATION_RECORDER"))),
        );
        assert_eq!(incomplete.verdict, Verdict::Drifted);
        assert_eq!(incomplete.observed, "INCOMPLETE (NO_AVAILABLE_CONFIGURATION_RECORDER)");
        assert_eq!(incomplete.expected, "READY");
        assert_eq!(standard(id, true, None).observed, "not subscribed");
        assert_eq!(standard(id, true, None).verdict, Verdict::Drifted);
        assert_eq!(standard(id, false, None).observed, "Security Hub is off");
        assert_eq!(
            standard(id, true, Some(&subscription("DELETING", None))).verdict,
            Verdict::Drifted
        );
        assert_eq!(
            standard(id, true, Some(&subscription("PENDING", None))).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn a_claimed_control_holds_while_disabled_and_an_unreadable_one_is_unknown() {
        let key = "pci-dss/v/3.2.1#PCI.IAM.1";
        let off = disabled(key, ControlRead::Read(Ok(state(true))));
        assert_eq!(
            (off.control.as_str(), off.verdict, off.observed.as_str()),
            (
                "SecurityHub.ControlDisabled:pci-dss/v/3.2.1#PCI.IAM.1",
                Verdict::Held,
                "DISABLED (not used here)"
            )
        );
        let on = disabled(key, ControlRead::Read(Ok(state(false))));
        assert_eq!((on.verdict, on.observed.as_str()), (Verdict::Drifted, "ENABLED"));
        assert_eq!(disabled(key, ControlRead::NotSubscribed).verdict, Verdict::Drifted);
        assert_eq!(disabled(key, ControlRead::HubOff).verdict, Verdict::Drifted);
        let unread = disabled(key, ControlRead::Read(Err("AccessDeniedException: no".into())));
        assert_eq!(
            (unread.verdict, unread.observed.as_str()),
            (Verdict::Unknown, "AccessDeniedException: no")
        );
    }

    #[test]
    fn a_control_turned_back_on_drifts_only_when_disabled_again() {
        let key = "cis-aws-foundations-benchmark/v/1.2.0#1.1";
        assert_eq!(
            reenabled(key, ControlRead::Read(Ok(state(false)))).verdict,
            Verdict::Held
        );
        let again = reenabled(key, ControlRead::Read(Ok(state(true))));
        assert_eq!(
            (again.control.as_str(), again.verdict, again.expected.as_str()),
            (
                "SecurityHub.ControlReenabled:cis-aws-foundations-benchmark/v/1.2.0#1.1",
                Verdict::Drifted,
                "ENABLED"
            )
        );
        assert_eq!(reenabled(key, ControlRead::HubOff).verdict, Verdict::Held);
        assert_eq!(reenabled(key, ControlRead::NotSubscribed).verdict, Verdict::Held);
        assert_eq!(
            reenabled(key, ControlRead::Read(Err("throttled".into()))).verdict,
            Verdict::Unknown
        );
    }
}
