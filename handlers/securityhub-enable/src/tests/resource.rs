//! Create, Update, Delete and undo against mocked Security Hub and ledger.

use aws_sdk_securityhub::operation::describe_hub::DescribeHubError;
use aws_sdk_securityhub::operation::enable_security_hub::EnableSecurityHubError;
use aws_sdk_securityhub::operation::update_security_hub_configuration::UpdateSecurityHubConfigurationError;
use aws_sdk_securityhub::Client as SecurityHub;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;
use aws_sdk_ssm::Client as Ssm;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use serde_json::json;
use tapguard_shared::{CustomResource, HandlerError, Ledger};

use super::*;
use crate::SecurityHubEnable;

#[tokio::test]
async fn create_on_a_fresh_account_claims_then_enables_and_reads_back() {
    let (reads, admin, enable, update, ledger) = (
        hub_reads(&[None, Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
        no_administrator(),
        enable_ok(),
        update_ok(),
        LedgerMocks::empty(),
    );
    let out = handler(&[&reads, &admin, &enable, &update], &ledger)
        .create(&inv(), props())
        .await
        .unwrap();
    assert_eq!(out.physical_id, OURS);
    assert_eq!(out.data["HubArn"], HUB);
    assert_eq!(out.data["Adopted"], "false");
    assert_eq!(out.data["ManagedBy"], "Self");
    assert_eq!(out.data["SettingsNotApplied"], "");
    assert_eq!((enable.num_calls(), update.num_calls()), (1, 0));
    assert_eq!(
        ledger.put.num_calls(),
        2,
        "the record and the claim, before EnableSecurityHub"
    );
}

#[tokio::test]
async fn the_ledger_refusing_the_record_is_failed_before_any_change() {
    for (code, expect) in [
        (
            "AccessDeniedException",
            "the function's role must be allowed ssm:PutParameter",
        ),
        ("ThrottlingException", "PutParameter failed: ThrottlingException"),
    ] {
        let (reads, enable) = (hub_reads(&[None]), enable_ok());
        let mut ledger = LedgerMocks::empty();
        ledger.put = mock!(Ssm::put_parameter).then_error(move || PutParameterError::generic(meta(code, "no")));
        let ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::MatchAny,
            [&ledger.get, &ledger.list, &ledger.put, &ledger.delete]
        );
        let h = SecurityHubEnable::from_clients(
            mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, [&reads, &enable]),
            Ledger::from_client(ssm, "securityhub-enable"),
        );
        let err = h.create(&inv(), props()).await.unwrap_err().to_string();
        assert!(err.contains(expect), "{err}");
        assert!(err.contains("/tapguard/ledger/securityhub-enable/req-1"), "{err}");
        assert_eq!(enable.num_calls(), 0, "nothing changed without the record");
    }
}

#[tokio::test]
async fn resource_conflict_on_enable_means_adopted_by_the_chain() {
    // The hub came on between DescribeHub and EnableSecurityHub: someone else's, so the claim is made
    // again with the hub as it is, and the last claimant's Delete will leave it on.
    let reads = hub_reads(&[None, Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]);
    let enable = mock!(SecurityHub::enable_security_hub).then_error(|| {
        EnableSecurityHubError::generic(meta("ResourceConflictException", "Account is already subscribed"))
    });
    let (admin, list) = (no_administrator(), tag_reads(vec![vec![]]));
    // The claims on the hub as the ledger holds them: none, then this one's (prior off), then none.
    let mut ledger = LedgerMocks::empty();
    let listing = |claims: Vec<serde_json::Value>| {
        move || {
            aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput::builder()
                .set_parameters(Some(
                    claims
                        .iter()
                        .map(|c| {
                            aws_sdk_ssm::types::Parameter::builder()
                                .name("c")
                                .value(c.to_string())
                                .build()
                        })
                        .collect(),
                ))
                .build()
        }
    };
    let mine = claim(
        "req-1",
        "SecurityHub",
        wants("SECURITY_CONTROL", true),
        json!({"enabled": false}),
    );
    ledger.list = mock!(Ssm::get_parameters_by_path)
        .sequence()
        .output(listing(vec![]))
        .output(listing(vec![mine]))
        .output(listing(vec![]))
        .build();
    let out = handler(&[&reads, &enable, &admin, &list], &ledger)
        .create(&inv(), props())
        .await
        .unwrap();
    assert_eq!(out.data["Adopted"], "true");
    assert_eq!(out.data["SettingsNotApplied"], "");
    assert_eq!(enable.num_calls(), 1);
    assert_eq!(
        ledger.delete.num_calls(),
        1,
        "the claim with the stale prior is dropped"
    );
}

#[tokio::test]
async fn adopting_applies_differing_settings_and_lists_create_only_ones() {
    let (reads, admin, update, tag, ledger) = (
        hub_reads(&[Some(("STANDARD_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
        no_administrator(),
        update_ok(),
        tag_ok(),
        LedgerMocks::empty(),
    );
    let list = tag_reads(vec![
        vec![("team", "platform")],
        vec![("team", "platform")],
        vec![("team", "platform"), ("owner", "security")],
    ]);
    let mut p = props();
    p.tags.insert("owner".into(), "security".into());
    p.enable_default_standards = true;
    let out = handler(&[&reads, &admin, &update, &list, &tag], &ledger)
        .create(&inv(), p)
        .await
        .unwrap();
    assert_eq!((update.num_calls(), tag.num_calls()), (1, 1));
    assert_eq!(out.data["ControlFindingGenerator"], "SECURITY_CONTROL");
    assert_eq!(out.data["SettingsNotApplied"], "EnableDefaultStandards");
    assert_eq!(out.data["Adopted"], "true");
}

#[tokio::test]
async fn a_claimant_asking_for_another_generator_is_refused_before_any_change() {
    let (reads, update) = (hub_reads(&[Some(("STANDARD_CONTROL", true))]), update_ok());
    let list = tag_reads(vec![vec![]]);
    let ledger = LedgerMocks::new(
        None,
        vec![claim(
            "req-0",
            "OldHub",
            wants("STANDARD_CONTROL", true),
            json!({"enabled": false}),
        )],
    );
    let err = handler(&[&reads, &update, &list], &ledger)
        .create(&inv(), props())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already claimed by OldHub in stack TapStack"), "{err}");
    assert!(err.contains("STANDARD_CONTROL"), "{err}");
    assert_eq!(update.num_calls(), 0);
}

#[tokio::test]
async fn configuration_policy_denial_is_reported_in_data_not_hidden() {
    let (reads, admin, ledger) = (
        hub_reads(&[Some(("STANDARD_CONTROL", false)), Some(("STANDARD_CONTROL", false))]),
        administrator("999988887777"),
        LedgerMocks::empty(),
    );
    let list = tag_reads(vec![vec![]]);
    let update = mock!(SecurityHub::update_security_hub_configuration)
        .then_error(|| UpdateSecurityHubConfigurationError::generic(meta("AccessDeniedException", POLICY_DENIED)));
    let out = handler(&[&reads, &admin, &update, &list], &ledger)
        .create(&inv(), props())
        .await
        .unwrap();
    assert_eq!(out.data["ManagedBy"], "ConfigurationPolicy");
    assert_eq!(
        out.data["SettingsNotApplied"],
        "ControlFindingGenerator,AutoEnableControls"
    );
    assert_eq!(
        out.data["ControlFindingGenerator"], "STANDARD_CONTROL",
        "the truth, not the request"
    );
    assert_eq!(
        update.num_calls(),
        1,
        "once the policy is known, the second setting is not tried"
    );
}

#[tokio::test]
async fn configuration_policy_with_the_hub_off_is_failed() {
    let (reads, ledger) = (hub_reads(&[None]), LedgerMocks::empty());
    let enable = mock!(SecurityHub::enable_security_hub)
        .then_error(|| EnableSecurityHubError::generic(meta("AccessDeniedException", POLICY_DENIED)));
    let err = handler(&[&reads, &enable], &ledger)
        .create(&inv(), props())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("EnableSecurityHub failed: AccessDeniedException: Account 111122223333 is managed"),
        "{err}"
    );
    assert!(err.contains("ask the delegated administrator"), "{err}");
}

#[tokio::test]
async fn a_plain_access_denied_on_update_is_failed_without_an_administrator() {
    let (reads, admin, ledger) = (
        hub_reads(&[Some(("STANDARD_CONTROL", true))]),
        no_administrator(),
        LedgerMocks::empty(),
    );
    let list = tag_reads(vec![vec![]]);
    let update = mock!(SecurityHub::update_security_hub_configuration)
        .then_error(|| UpdateSecurityHubConfigurationError::generic(meta("AccessDeniedException", "not authorized")));
    let err = handler(&[&reads, &admin, &update, &list], &ledger)
        .create(&inv(), props())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("securityhub:UpdateSecurityHubConfiguration was denied"),
        "{err}"
    );
}

#[tokio::test]
async fn throttling_is_retried_then_reported_with_advice() {
    let throttled = || DescribeHubError::generic(meta("ThrottlingException", "Rate exceeded"));
    let always = mock!(SecurityHub::describe_hub).then_error(throttled);
    let ledger = LedgerMocks::empty();
    let h = SecurityHubEnable::from_clients(
        mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, [&always], |c| c.retry_config(
            aws_smithy_types::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1))
        )),
        ledger.ledger(),
    );
    let err = h.create(&inv(), props()).await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert!(err.to_string().contains("kept throttling"), "{err}");
    assert_eq!(always.num_calls(), 3);
    assert_eq!(ledger.put.num_calls(), 0);
}

#[tokio::test]
async fn the_last_claimant_disables_a_hub_its_chain_enabled_unless_an_administrator_governs_it() {
    let ours = || {
        LedgerMocks::new(
            None,
            vec![claim(
                "req-1",
                "SecurityHub",
                wants("SECURITY_CONTROL", true),
                json!({"enabled": false}),
            )],
        )
    };
    let (reads, admin, disable, ledger) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true)), None]),
        no_administrator(),
        disable_ok(),
        ours(),
    );
    handler(&[&reads, &admin, &disable], &ledger)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 1);
    assert_eq!(ledger.delete.num_calls(), 2, "the claim and the record are removed");

    let (reads, admin, disable, ledger) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        administrator("999988887777"),
        disable_ok(),
        ours(),
    );
    handler(&[&reads, &admin, &disable], &ledger)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 0, "a centrally managed hub stays on");

    let (reads, admin, disable, ledger) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
        no_administrator(),
        disable_ok(),
        ours(),
    );
    let err = handler(&[&reads, &admin, &disable], &ledger)
        .delete(&inv(), OURS, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still answers a hub"), "{err}");
}

#[tokio::test]
async fn delete_while_another_resource_claims_the_hub_changes_nothing() {
    let ledger = LedgerMocks::new(
        None,
        vec![
            claim(
                "req-0",
                "Old",
                wants("SECURITY_CONTROL", true),
                json!({"enabled": false}),
            ),
            claim(
                "req-1",
                "SecurityHub",
                wants("SECURITY_CONTROL", true),
                json!({"enabled": false}),
            ),
        ],
    );
    let (reads, disable, update) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        disable_ok(),
        update_ok(),
    );
    handler(&[&reads, &disable, &update], &ledger)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!((reads.num_calls(), disable.num_calls(), update.num_calls()), (0, 0, 0));
}

#[tokio::test]
async fn the_last_claimant_of_an_adopted_hub_puts_its_settings_and_tags_back() {
    let record = json!({"v": 1, "handler": "securityhub-enable", "stack_id": "s", "logical_id": "SecurityHub",
        "region": "eu-west-1", "settings": [crate::setting()], "state": {"default_standards": false, "tags": {"owner": "security", "team": "ours"}}});
    let ledger = LedgerMocks::new(
        Some(record),
        vec![claim(
            "req-1",
            "SecurityHub",
            wants("SECURITY_CONTROL", false),
            json!({"enabled": true, "control_finding_generator": "STANDARD_CONTROL", "auto_enable_controls": true,
                "tags": {"team": "platform"}}),
        )],
    );
    // AutoEnableControls was changed by someone since (true, not false): left as it is.
    let reads = hub_reads(&[Some(("SECURITY_CONTROL", true)), Some(("STANDARD_CONTROL", true))]);
    let (update, tag, untag) = (update_ok(), tag_ok(), untag_ok());
    let list = tag_reads(vec![vec![("owner", "security"), ("team", "ours")]]);
    handler(&[&reads, &update, &tag, &untag, &list], &ledger)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1, "the generator only");
    assert_eq!(
        (tag.num_calls(), untag.num_calls()),
        (1, 1),
        "team back to platform, owner removed"
    );
}

#[tokio::test]
async fn a_lost_ledger_turns_nothing_off_and_an_old_format_id_still_does() {
    let (reads, disable, ledger) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        disable_ok(),
        LedgerMocks::empty(),
    );
    handler(&[&reads, &disable], &ledger)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!((reads.num_calls(), disable.num_calls()), (0, 0));

    let (reads, admin, disable, ledger) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true)), None]),
        no_administrator(),
        disable_ok(),
        LedgerMocks::empty(),
    );
    handler(&[&reads, &admin, &disable], &ledger)
        .delete(
            &inv(),
            "securityhub-enable:eu-west-1:enabled:default-standards=false",
            None,
        )
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 1, "the old id says this resource enabled the hub");

    let (reads, disable, ledger) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        disable_ok(),
        LedgerMocks::empty(),
    );
    handler(&[&reads, &disable], &ledger)
        .delete(
            &inv(),
            "securityhub-enable:eu-west-1:adopted:default-standards=false",
            None,
        )
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 0, "an adopted hub stays on");
}

#[tokio::test]
async fn undoing_a_create_that_claimed_nothing_makes_no_call() {
    let (reads, ledger) = (hub_reads(&[Some(("SECURITY_CONTROL", true))]), LedgerMocks::empty());
    handler(&[&reads], &ledger)
        .undo_create(&inv(), "req-1", None)
        .await
        .unwrap();
    assert_eq!(reads.num_calls(), 0);
}

#[test]
fn properties_parse_cloudformation_strings_and_check_the_generator() {
    let p: Properties = tapguard_shared::props::parse(&serde_json::json!({
        "EnableDefaultStandards": "true", "AutoEnableControls": "false", "ControlFindingGenerator": "STANDARD_CONTROL",
        "Tags": {"owner": "security"}
    }))
    .unwrap();
    assert!(p.enable_default_standards && !p.auto_enable_controls);
    assert_eq!(p.generator().unwrap(), "STANDARD_CONTROL");
    let defaults: Properties = tapguard_shared::props::parse(&serde_json::json!({})).unwrap();
    assert!(defaults.auto_enable_controls && !defaults.enable_default_standards);
    let wrong = Properties {
        control_finding_generator: Some("BOTH".into()),
        ..defaults
    };
    let err = wrong.generator().unwrap_err();
    assert!(matches!(err, HandlerError::InvalidProperty { .. }), "{err}");
    assert!(err.to_string().contains("ControlFindingGenerator"));
}

#[tokio::test]
async fn an_administrator_whose_membership_is_not_enabled_does_not_govern_the_hub() {
    for status in ["Invited", "Resigned", "Removed"] {
        let (reads, update, ledger) = (
            hub_reads(&[Some(("STANDARD_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
            update_ok(),
            LedgerMocks::empty(),
        );
        let list = tag_reads(vec![vec![]]);
        let admin = mock!(SecurityHub::get_administrator_account).then_output(move || {
            aws_sdk_securityhub::operation::get_administrator_account::GetAdministratorAccountOutput::builder()
                .administrator(
                    aws_sdk_securityhub::types::Invitation::builder()
                        .account_id("999988887777")
                        .member_status(status)
                        .build(),
                )
                .build()
        });
        let out = handler(&[&reads, &admin, &update, &list], &ledger)
            .create(&inv(), props())
            .await
            .unwrap();
        assert_eq!(out.data["ManagedBy"], "Self", "{status}");
        assert_eq!(update.num_calls(), 1, "{status}: the account sets its own generator");
    }
}
