//! The controls the verify pass reports for a Custom::ConfigSetup resource, and how each is judged:
//! what Config shows now (read by the caller) against what the resource claims in the ledger (its
//! claims' `wants`). Pure functions, so that every verdict is unit-tested without AWS.
//!
//! - `Config.Recorder`: the region's customer managed recorder exists with the claimed role and
//!   recording group;
//! - `Config.RecorderRecording`: it is recording;
//! - `Config.RecorderLastStatus`: its last recording event is not `Failure`;
//! - `Config.DeliveryChannel`: the delivery channel exists with the claimed bucket, prefix, topic and
//!   frequency;
//! - `Config.DeliveryChannelDelivering`: no delivery of it (history, snapshot, SNS stream) last failed,
//!   from `DescribeDeliveryChannelStatus`;
//! - `Config.Rule/<name>`: each claimed rule exists, is `ACTIVE`, and holds the claimed definition.

use aws_sdk_config::types::{
    ConfigRule, ConfigurationRecorder, ConfigurationRecorderStatus, DeliveryChannel, DeliveryChannelStatus,
};
use tapguard_shared::verify::ControlCheck;

use crate::channel::{self, ChannelSettings, ChannelWants};
use crate::recorder::{self, RecorderSettings, RecorderWants};
use crate::rules::{RuleDefinition, RuleWants};

pub const RECORDER_CONTROL: &str = "Config.Recorder";
pub const RECORDING_CONTROL: &str = "Config.RecorderRecording";
pub const LAST_STATUS_CONTROL: &str = "Config.RecorderLastStatus";
pub const CHANNEL_CONTROL: &str = "Config.DeliveryChannel";
pub const DELIVERING_CONTROL: &str = "Config.DeliveryChannelDelivering";
/// Followed by the rule's name.
pub const RULE_CONTROL_PREFIX: &str = "Config.Rule/";

/// The control of the rule `name`, e.g. `Config.Rule/tap-access-keys-rotated`.
pub fn rule_control(name: &str) -> String {
    format!("{RULE_CONTROL_PREFIX}{name}")
}

/// The recorder's three controls: present as claimed, recording, last status not Failure.
pub fn recorder_checks(
    wants: &RecorderWants,
    recorder: Option<&ConfigurationRecorder>,
    status: Option<&ConfigurationRecorderStatus>,
) -> Vec<ControlCheck> {
    let Some(recorder) = recorder else {
        return vec![
            ControlCheck::compare(RECORDER_CONTROL, false, describe_recorder_wants(wants), "no recorder"),
            ControlCheck::compare(RECORDING_CONTROL, false, true, "no recorder"),
            ControlCheck::compare(LAST_STATUS_CONTROL, false, "not Failure", "no recorder"),
        ];
    };
    let name = recorder.name().unwrap_or_default();
    let recording = status.is_some_and(|s| s.recording());
    let last = match status {
        None => "no status".to_string(),
        Some(s) => {
            let last = s.last_status().map_or("none yet", |l| l.as_str()).to_string();
            if recorder::is_failure(s) {
                format!(
                    "{last}: {}: {}",
                    s.last_error_code().unwrap_or("an unnamed error"),
                    s.last_error_message().unwrap_or_default()
                )
            } else {
                last
            }
        }
    };
    vec![
        ControlCheck::compare(
            RECORDER_CONTROL,
            wants.is_met_by(recorder),
            describe_recorder_wants(wants),
            format!(
                "recorder {name}: {}",
                describe_recorder(&RecorderSettings::of(recorder))
            ),
        ),
        ControlCheck::compare(RECORDING_CONTROL, recording, true, recording),
        ControlCheck::compare(
            LAST_STATUS_CONTROL,
            !status.is_some_and(recorder::is_failure),
            "not Failure",
            last,
        ),
    ]
}

fn describe_recorder_wants(wants: &RecorderWants) -> String {
    let what = if wants.all_supported {
        format!(
            "all supported resource types{}",
            if wants.include_global_resource_types {
                " with global ones"
            } else {
                ""
            }
        )
    } else {
        wants.resource_types.join(", ")
    };
    format!("role {}, recording {what}", wants.role_arn)
}

fn describe_recorder(now: &RecorderSettings) -> String {
    let what = if now.all_supported {
        format!(
            "all supported resource types{}",
            if now.include_global_resource_types {
                " with global ones"
            } else {
                ""
            }
        )
    } else if now.resource_types.is_empty() {
        format!("all but {}", now.excluded_resource_types.join(", "))
    } else {
        now.resource_types.join(", ")
    };
    format!("role {}, recording {what}", now.role_arn.as_deref().unwrap_or("(none)"))
}

/// The channel's two controls: present as claimed, and delivering.
pub fn channel_checks(
    wants: &ChannelWants,
    current: Option<&DeliveryChannel>,
    status: Option<&DeliveryChannelStatus>,
) -> Vec<ControlCheck> {
    let Some(current) = current else {
        return vec![
            ControlCheck::compare(
                CHANNEL_CONTROL,
                false,
                describe_channel_wants(wants),
                "no delivery channel",
            ),
            ControlCheck::compare(DELIVERING_CONTROL, false, "no failed delivery", "no delivery channel"),
        ];
    };
    let settings = ChannelSettings::of(current);
    let delivering = match status {
        None => ControlCheck::unknown(
            DELIVERING_CONTROL,
            "no failed delivery",
            format!("DescribeDeliveryChannelStatus gives no status for {}", settings.name),
        ),
        Some(status) => {
            let failures = channel::delivery_failures(status);
            let observed = if failures.is_empty() {
                channel::describe_status(status)
            } else {
                failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            };
            ControlCheck::compare(DELIVERING_CONTROL, failures.is_empty(), "no failed delivery", observed)
        }
    };
    vec![
        ControlCheck::compare(
            CHANNEL_CONTROL,
            wants.is_met_by(current),
            describe_channel_wants(wants),
            format!(
                "channel {}: {}",
                settings.name,
                describe_channel(
                    &settings.bucket,
                    &settings.key_prefix,
                    &settings.sns_topic_arn,
                    &settings.frequency
                )
            ),
        ),
        delivering,
    ]
}

fn describe_channel_wants(wants: &ChannelWants) -> String {
    describe_channel(&wants.bucket, &wants.key_prefix, &wants.sns_topic_arn, &wants.frequency)
}

fn describe_channel(bucket: &str, prefix: &Option<String>, topic: &Option<String>, frequency: &str) -> String {
    let mut out = format!("bucket {bucket}");
    if let Some(prefix) = prefix {
        out.push_str(&format!(", prefix {prefix}"));
    }
    if let Some(topic) = topic {
        out.push_str(&format!(", topic {topic}"));
    }
    out.push_str(&format!(", snapshots every {frequency}"));
    out
}

/// A rule's control: present, ACTIVE and as claimed.
pub fn rule_check(name: &str, wants: &RuleWants, current: Option<&ConfigRule>) -> ControlCheck {
    let control = rule_control(name);
    let expected = format!("ACTIVE, {}", describe_rule_wants(wants));
    let Some(current) = current else {
        return ControlCheck::compare(&control, false, expected, "no such rule");
    };
    let state = current.config_rule_state().map_or("ACTIVE", |s| s.as_str());
    let def = RuleDefinition::of(current);
    let observed = format!(
        "{state}, {}",
        describe_rule_wants(&RuleWants {
            source_identifier: def.source_identifier.clone().unwrap_or_default(),
            input_parameters: RuleWants::parameters_of(current),
            maximum_execution_frequency: def.maximum_execution_frequency.clone(),
            scope: def.scope.map(|s| s.resource_types).unwrap_or_default(),
        })
    );
    ControlCheck::compare(
        &control,
        state == "ACTIVE" && wants.is_met_by(current),
        expected,
        observed,
    )
}

fn describe_rule_wants(wants: &RuleWants) -> String {
    let mut out = wants.source_identifier.clone();
    if !wants.input_parameters.is_empty() {
        out.push_str(&format!(
            " {}",
            serde_json::to_string(&wants.input_parameters).unwrap_or_default()
        ));
    }
    if let Some(f) = &wants.maximum_execution_frequency {
        out.push_str(&format!(", every {f}"));
    }
    if !wants.scope.is_empty() {
        out.push_str(&format!(", scope {}", wants.scope.join(", ")));
    }
    out
}

/// The rule a ledger setting (`config/rule/<encoded name>`) names, decoding the ledger's `_XX` escapes.
pub fn rule_name_of(setting: &str) -> Option<String> {
    let prefix = format!("{}/", tapguard_shared::ledger::setting(&["config", "rule"]));
    let encoded = setting.strip_prefix(&prefix)?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'_' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_config::types::{
        ConfigExportDeliveryInfo, ConfigRuleState, ConfigSnapshotDeliveryProperties, ConfigStreamDeliveryInfo,
        DeliveryStatus, MaximumExecutionFrequency, Owner, RecorderStatus, RecordingGroup, Scope, Source,
    };
    use tapguard_shared::verify::Verdict;

    const ROLE: &str = "arn:aws:iam::111122223333:role/tap-config";

    fn wants() -> RecorderWants {
        RecorderWants {
            role_arn: ROLE.into(),
            all_supported: true,
            include_global_resource_types: true,
            resource_types: vec![],
        }
    }

    fn recorder(role: &str, global: bool) -> ConfigurationRecorder {
        ConfigurationRecorder::builder()
            .name("default")
            .role_arn(role)
            .recording_group(
                RecordingGroup::builder()
                    .all_supported(true)
                    .include_global_resource_types(global)
                    .build(),
            )
            .build()
    }

    fn status(recording: bool, last: &str) -> ConfigurationRecorderStatus {
        ConfigurationRecorderStatus::builder()
            .name("default")
            .recording(recording)
            .last_status(RecorderStatus::from(last))
            .last_error_code("AccessDenied")
            .last_error_message("the role cannot read")
            .build()
    }

    fn verdicts(checks: &[ControlCheck]) -> Vec<(&str, Verdict)> {
        checks.iter().map(|c| (c.control.as_str(), c.verdict)).collect()
    }

    #[test]
    fn a_recorder_as_claimed_recording_and_healthy_holds_all_three() {
        let rec = recorder(ROLE, true);
        let checks = recorder_checks(&wants(), Some(&rec), Some(&status(true, "Success")));
        assert_eq!(
            verdicts(&checks),
            [
                (RECORDER_CONTROL, Verdict::Held),
                (RECORDING_CONTROL, Verdict::Held),
                (LAST_STATUS_CONTROL, Verdict::Held)
            ]
        );
        assert_eq!(
            checks[0].observed,
            format!("recorder default: role {ROLE}, recording all supported resource types with global ones")
        );
        assert_eq!(checks[0].expected, checks[0].observed["recorder default: ".len()..]);
    }

    #[test]
    fn another_role_a_stopped_recorder_and_a_failure_are_each_drift() {
        let other = "arn:aws:iam::111122223333:role/other";
        let rec = recorder(other, true);
        let checks = recorder_checks(&wants(), Some(&rec), Some(&status(false, "Failure")));
        assert_eq!(
            verdicts(&checks),
            [
                (RECORDER_CONTROL, Verdict::Drifted),
                (RECORDING_CONTROL, Verdict::Drifted),
                (LAST_STATUS_CONTROL, Verdict::Drifted)
            ]
        );
        assert!(checks[0].observed.contains(other), "{}", checks[0].observed);
        assert_eq!(checks[1].observed, "false");
        assert_eq!(checks[2].observed, "Failure: AccessDenied: the role cannot read");
        // Global types off is drift too, and PENDING (no recording event yet) is not a failure.
        let rec = recorder(ROLE, false);
        let checks = recorder_checks(&wants(), Some(&rec), Some(&status(true, "Pending")));
        assert_eq!(checks[0].verdict, Verdict::Drifted);
        assert_eq!(
            (checks[2].verdict, checks[2].observed.as_str()),
            (Verdict::Held, "Pending")
        );
    }

    #[test]
    fn no_recorder_drifts_every_recorder_control() {
        let checks = recorder_checks(&wants(), None, None);
        assert!(checks
            .iter()
            .all(|c| c.verdict == Verdict::Drifted && c.observed == "no recorder"));
        assert_eq!(checks.len(), 3);
    }

    fn channel_wants() -> ChannelWants {
        ChannelWants {
            bucket: "tap-config".into(),
            key_prefix: None,
            sns_topic_arn: None,
            frequency: "TwentyFour_Hours".into(),
        }
    }

    fn channel(bucket: &str) -> DeliveryChannel {
        DeliveryChannel::builder()
            .name("default")
            .s3_bucket_name(bucket)
            .config_snapshot_delivery_properties(
                ConfigSnapshotDeliveryProperties::builder()
                    .delivery_frequency(MaximumExecutionFrequency::TwentyFourHours)
                    .build(),
            )
            .build()
    }

    fn delivery(history: &str, stream: &str) -> DeliveryChannelStatus {
        let info = |s: &str| {
            ConfigExportDeliveryInfo::builder()
                .last_status(DeliveryStatus::from(s))
                .set_last_error_code((s == "Failure").then(|| "NoSuchBucket".to_string()))
                .set_last_error_message((s == "Failure").then(|| "The bucket does not exist".to_string()))
                .build()
        };
        DeliveryChannelStatus::builder()
            .name("default")
            .config_history_delivery_info(info(history))
            .config_snapshot_delivery_info(info("Success"))
            .config_stream_delivery_info(
                ConfigStreamDeliveryInfo::builder()
                    .last_status(DeliveryStatus::from(stream))
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_channel_as_claimed_and_delivering_holds() {
        let ch = channel("tap-config");
        let checks = channel_checks(
            &channel_wants(),
            Some(&ch),
            Some(&delivery("Success", "Not_Applicable")),
        );
        assert_eq!(
            verdicts(&checks),
            [(CHANNEL_CONTROL, Verdict::Held), (DELIVERING_CONTROL, Verdict::Held)]
        );
        assert_eq!(
            checks[1].observed,
            "history Success, snapshot Success, stream Not_Applicable"
        );
        assert_eq!(
            checks[0].expected,
            "bucket tap-config, snapshots every TwentyFour_Hours"
        );
    }

    #[test]
    fn another_bucket_and_a_failed_delivery_are_drift_and_a_missing_status_is_unknown() {
        let ch = channel("someone-elses");
        let checks = channel_checks(&channel_wants(), Some(&ch), Some(&delivery("Failure", "Success")));
        assert_eq!(
            verdicts(&checks),
            [
                (CHANNEL_CONTROL, Verdict::Drifted),
                (DELIVERING_CONTROL, Verdict::Drifted)
            ]
        );
        assert!(checks[0].observed.contains("someone-elses"));
        assert_eq!(
            checks[1].observed,
            "configuration history delivery Failure: NoSuchBucket: The bucket does not exist"
        );
        let checks = channel_checks(&channel_wants(), Some(&ch), None);
        assert_eq!(checks[1].verdict, Verdict::Unknown);
        let checks = channel_checks(&channel_wants(), None, None);
        assert!(checks
            .iter()
            .all(|c| c.verdict == Verdict::Drifted && c.observed == "no delivery channel"));
    }

    fn rule_wants() -> RuleWants {
        RuleWants {
            source_identifier: "ACCESS_KEYS_ROTATED".into(),
            input_parameters: [("maxAccessKeyAge".to_string(), "90".to_string())].into(),
            maximum_execution_frequency: None,
            scope: vec![],
        }
    }

    fn rule(state: ConfigRuleState, params: &str) -> ConfigRule {
        ConfigRule::builder()
            .config_rule_name("keys")
            .source(
                Source::builder()
                    .owner(Owner::Aws)
                    .source_identifier("ACCESS_KEYS_ROTATED")
                    .build()
                    .unwrap(),
            )
            .input_parameters(params)
            .config_rule_state(state)
            .build()
    }

    #[test]
    fn a_rule_holds_only_when_active_and_as_claimed() {
        let active = rule(ConfigRuleState::Active, r#"{"maxAccessKeyAge":"90"}"#);
        let held = rule_check("keys", &rule_wants(), Some(&active));
        assert_eq!(
            (held.control.as_str(), held.verdict),
            ("Config.Rule/keys", Verdict::Held)
        );
        assert_eq!(held.expected, r#"ACTIVE, ACCESS_KEYS_ROTATED {"maxAccessKeyAge":"90"}"#);
        assert_eq!(held.observed, held.expected);

        let deleting = rule(ConfigRuleState::Deleting, r#"{"maxAccessKeyAge":"90"}"#);
        let check = rule_check("keys", &rule_wants(), Some(&deleting));
        assert_eq!(check.verdict, Verdict::Drifted);
        assert!(check.observed.starts_with("DELETING"), "{}", check.observed);

        let changed = rule(ConfigRuleState::Active, r#"{"maxAccessKeyAge":"365"}"#);
        let check = rule_check("keys", &rule_wants(), Some(&changed));
        assert_eq!(check.verdict, Verdict::Drifted);
        assert!(check.observed.contains("365"), "{}", check.observed);

        let gone = rule_check("keys", &rule_wants(), None);
        assert_eq!(
            (gone.verdict, gone.observed.as_str()),
            (Verdict::Drifted, "no such rule")
        );
    }

    #[test]
    fn a_scoped_rule_describes_its_scope() {
        let mut wants = rule_wants();
        wants.input_parameters.clear();
        wants.scope = vec!["AWS::IAM::User".into()];
        let scoped = ConfigRule::builder()
            .config_rule_name("keys")
            .source(
                Source::builder()
                    .owner(Owner::Aws)
                    .source_identifier("ACCESS_KEYS_ROTATED")
                    .build()
                    .unwrap(),
            )
            .scope(Scope::builder().compliance_resource_types("AWS::IAM::User").build())
            .build();
        let check = rule_check("keys", &wants, Some(&scoped));
        assert_eq!(check.verdict, Verdict::Held, "{check:?}");
        assert_eq!(check.observed, "ACTIVE, ACCESS_KEYS_ROTATED, scope AWS::IAM::User");
    }

    #[test]
    fn rule_names_come_back_from_their_ledger_setting() {
        for name in ["tap-access-keys-rotated", "with space_and/slash", "ünïcode"] {
            assert_eq!(rule_name_of(&crate::rule_setting(name)).as_deref(), Some(name));
        }
        assert_eq!(rule_name_of(&crate::recorder_setting()), None);
    }
}
