//! What a verify pass concludes from what DescribeHub shows now, against what the resource claims: the
//! hub on, with the ControlFindingGenerator and AutoEnableControls it asked for. Pure comparisons; the
//! read is in `resource.rs` (`impl Verifier`).

use tapguard_shared::verify::ControlCheck;

use crate::hub::{Hub, HubState};

/// Security Hub CSPM is on in the region.
pub const HUB_CONTROL: &str = "SecurityHub.HubEnabled";
/// The hub's ControlFindingGenerator is the one claimed.
pub const GENERATOR_CONTROL: &str = "SecurityHub.ControlFindingGenerator";
/// The hub's AutoEnableControls is the one claimed.
pub const AUTO_ENABLE_CONTROL: &str = "SecurityHub.AutoEnableControls";

const HUB_OFF: &str = "Security Hub is off";

/// The controls a claim asks for, compared with the hub as read (`None`: not subscribed).
pub(crate) fn hub(wants: &HubState, observed: Option<&Hub>) -> Vec<ControlCheck> {
    let mut checks = vec![ControlCheck::compare(
        HUB_CONTROL,
        observed.is_some(),
        true,
        observed.is_some(),
    )];
    if let Some(generator) = &wants.control_finding_generator {
        checks.push(match observed {
            Some(hub) => ControlCheck::compare(
                GENERATOR_CONTROL,
                hub.control_finding_generator == *generator,
                generator,
                &hub.control_finding_generator,
            ),
            None => ControlCheck::compare(GENERATOR_CONTROL, false, generator, HUB_OFF),
        });
    }
    if let Some(auto) = wants.auto_enable_controls {
        checks.push(match observed {
            Some(hub) => ControlCheck::compare(
                AUTO_ENABLE_CONTROL,
                hub.auto_enable_controls == auto,
                auto,
                hub.auto_enable_controls,
            ),
            None => ControlCheck::compare(AUTO_ENABLE_CONTROL, false, auto, HUB_OFF),
        });
    }
    checks
}

/// Every control a claim asks for, unknown for `why`.
pub(crate) fn unknown(wants: Option<&HubState>, why: &str) -> Vec<ControlCheck> {
    let mut checks = vec![ControlCheck::unknown(HUB_CONTROL, true, why)];
    if let Some(generator) = wants.and_then(|w| w.control_finding_generator.as_ref()) {
        checks.push(ControlCheck::unknown(GENERATOR_CONTROL, generator, why));
    }
    if let Some(auto) = wants.and_then(|w| w.auto_enable_controls) {
        checks.push(ControlCheck::unknown(AUTO_ENABLE_CONTROL, auto, why));
    }
    checks
}

#[cfg(test)]
mod tests {
    use tapguard_shared::verify::Verdict;

    use super::*;

    fn wants() -> HubState {
        HubState {
            enabled: true,
            control_finding_generator: Some("SECURITY_CONTROL".into()),
            auto_enable_controls: Some(true),
            tags: None,
        }
    }

    fn observed(generator: &str, auto: bool) -> Hub {
        Hub {
            arn: "arn:aws:securityhub:eu-west-1:1:hub/default".into(),
            subscribed_at: String::new(),
            auto_enable_controls: auto,
            control_finding_generator: generator.into(),
        }
    }

    fn verdicts(checks: &[ControlCheck]) -> Vec<(&str, Verdict)> {
        checks.iter().map(|c| (c.control.as_str(), c.verdict)).collect()
    }

    #[test]
    fn the_hub_holds_with_the_claimed_settings_and_each_setting_drifts_alone() {
        assert_eq!(
            verdicts(&hub(&wants(), Some(&observed("SECURITY_CONTROL", true)))),
            vec![
                (HUB_CONTROL, Verdict::Held),
                (GENERATOR_CONTROL, Verdict::Held),
                (AUTO_ENABLE_CONTROL, Verdict::Held)
            ]
        );
        let generator = hub(&wants(), Some(&observed("STANDARD_CONTROL", true)));
        assert_eq!(generator[1].verdict, Verdict::Drifted);
        assert_eq!(
            (generator[1].expected.as_str(), generator[1].observed.as_str()),
            ("SECURITY_CONTROL", "STANDARD_CONTROL")
        );
        assert_eq!(generator[2].verdict, Verdict::Held);
        let auto = hub(&wants(), Some(&observed("SECURITY_CONTROL", false)));
        assert_eq!(
            (auto[2].verdict, auto[2].observed.as_str()),
            (Verdict::Drifted, "false")
        );
    }

    #[test]
    fn a_hub_turned_off_drifts_every_control_and_an_unreadable_one_is_unknown() {
        let off = hub(&wants(), None);
        assert!(off.iter().all(|c| c.verdict == Verdict::Drifted), "{off:?}");
        assert_eq!(off[1].observed, "Security Hub is off");
        let only_on = HubState {
            control_finding_generator: None,
            auto_enable_controls: None,
            ..wants()
        };
        assert_eq!(hub(&only_on, None).len(), 1, "only what is claimed is checked");
        let unread = unknown(Some(&wants()), "AccessDeniedException: no");
        assert_eq!(unread.len(), 3);
        assert!(unread
            .iter()
            .all(|c| c.verdict == Verdict::Unknown && c.observed.contains("AccessDenied")));
    }
}
