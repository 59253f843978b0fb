//! Create, Update, Delete and undo against mocked Security Hub and the in-memory ledger.

use aws_sdk_securityhub::operation::describe_hub::DescribeHubError;
use aws_sdk_securityhub::operation::enable_security_hub::EnableSecurityHubError;
use aws_sdk_securityhub::operation::update_security_hub_configuration::UpdateSecurityHubConfigurationError;
use aws_sdk_securityhub::Client as SecurityHub;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use serde_json::json;
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{CustomResource, HandlerError};

use super::*;
use crate::SecurityHubEnable;

#[tokio::test]
async fn create_on_a_fresh_account_claims_then_enables_and_reads_back() {
    let (reads, admin, enable, update, store) = (
        hub_reads(&[None, Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
        no_administrator(),
        enable_ok(),
        update_ok(),
        MemoryStore::new(),
    );
    let out = handler(&[&reads, &admin, &enable, &update], &store)
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
        store.calls("PutParameter"),
        2,
        "the record and the claim, each written once"
    );
    let record = stored_record(&store, "req-1").expect("the record is written");
    assert_eq!(record["settings"], json!([crate::setting()]));
    assert_eq!(record["state"], json!({"default_standards": false, "tags": {}}));
    let claim = stored_claim(&store, "req-1").expect("the claim is written");
    assert_eq!(claim["wants"], wants("SECURITY_CONTROL", true));
    assert_eq!(
        claim["prior"],
        json!({"enabled": false}),
        "this chain turned the hub on"
    );
    assert_eq!(claim["claimant"]["logical_id"], "SecurityHub");
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
        let (reads, enable, store) = (hub_reads(&[None]), enable_ok(), MemoryStore::new());
        store.fail("PutParameter", code);
        let err = handler(&[&reads, &enable], &store)
            .create(&inv(), props())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{err}");
        assert!(err.contains("/tapguard/ledger/securityhub-enable/req-1"), "{err}");
        assert_eq!(enable.num_calls(), 0, "nothing changed without the record");
        assert!(
            store.names_under("/tapguard/").is_empty(),
            "{code}: no claim without the record"
        );
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
    let (admin, list, store) = (no_administrator(), tag_reads(vec![vec![]]), MemoryStore::new());
    let out = handler(&[&reads, &enable, &admin, &list], &store)
        .create(&inv(), props())
        .await
        .unwrap();
    assert_eq!(out.data["Adopted"], "true");
    assert_eq!(out.data["SettingsNotApplied"], "");
    assert_eq!(enable.num_calls(), 1);
    assert_eq!(
        store.calls("DeleteParameter"),
        1,
        "the claim with the stale prior is dropped"
    );
    let claim = stored_claim(&store, "req-1").expect("claimed again");
    assert_eq!(
        claim["prior"],
        json!({"enabled": true, "control_finding_generator": "SECURITY_CONTROL", "auto_enable_controls": true,
            "tags": {}}),
        "the hub as someone else turned it on"
    );
    assert_eq!(claim["wants"], wants("SECURITY_CONTROL", true));
    assert!(stored_record(&store, "req-1").is_some(), "the record stays");
}

#[tokio::test]
async fn adopting_applies_differing_settings_and_lists_create_only_ones() {
    let (reads, admin, update, tag, store) = (
        hub_reads(&[Some(("STANDARD_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
        no_administrator(),
        update_ok(),
        tag_ok(),
        MemoryStore::new(),
    );
    let list = tag_reads(vec![
        vec![("team", "platform")],
        vec![("team", "platform")],
        vec![("team", "platform"), ("owner", "security")],
    ]);
    let mut p = props();
    p.tags.insert("owner".into(), "security".into());
    p.enable_default_standards = true;
    let out = handler(&[&reads, &admin, &update, &list, &tag], &store)
        .create(&inv(), p)
        .await
        .unwrap();
    assert_eq!((update.num_calls(), tag.num_calls()), (1, 1));
    assert_eq!(out.data["ControlFindingGenerator"], "SECURITY_CONTROL");
    assert_eq!(out.data["SettingsNotApplied"], "EnableDefaultStandards");
    assert_eq!(out.data["Adopted"], "true");
    let claim = stored_claim(&store, "req-1").expect("the claim is written");
    assert_eq!(
        claim["prior"],
        json!({"enabled": true, "control_finding_generator": "STANDARD_CONTROL", "auto_enable_controls": true,
            "tags": {"team": "platform"}}),
        "the hub as it was found"
    );
    let record = stored_record(&store, "req-1").expect("the record is written");
    assert_eq!(
        record["state"],
        json!({"default_standards": false, "tags": {"owner": "security"}}),
        "the tags it set; the default standards it did not enable"
    );
}

#[tokio::test]
async fn a_claimant_asking_for_another_generator_is_refused_before_any_change() {
    let (reads, update) = (hub_reads(&[Some(("STANDARD_CONTROL", true))]), update_ok());
    let list = tag_reads(vec![vec![]]);
    let other = claim(
        "req-0",
        "OldHub",
        wants("STANDARD_CONTROL", true),
        json!({"enabled": false}),
    );
    let store = with_claims(std::slice::from_ref(&other));
    let err = handler(&[&reads, &update, &list], &store)
        .create(&inv(), props())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already claimed by OldHub in stack TapStack"), "{err}");
    assert!(err.contains("STANDARD_CONTROL"), "{err}");
    assert!(err.contains(&claim_name("req-0")), "{err}");
    assert_eq!(update.num_calls(), 0);
    assert_eq!(stored_claim(&store, "req-1"), None, "no claim of its own");
    assert_eq!(
        stored_claim(&store, "req-0"),
        Some(other),
        "the other claim is not touched"
    );
}

#[tokio::test]
async fn configuration_policy_denial_is_reported_in_data_not_hidden() {
    let (reads, admin, store) = (
        hub_reads(&[Some(("STANDARD_CONTROL", false)), Some(("STANDARD_CONTROL", false))]),
        administrator("999988887777"),
        MemoryStore::new(),
    );
    let list = tag_reads(vec![vec![]]);
    let update = mock!(SecurityHub::update_security_hub_configuration)
        .then_error(|| UpdateSecurityHubConfigurationError::generic(meta("AccessDeniedException", POLICY_DENIED)));
    let out = handler(&[&reads, &admin, &update, &list], &store)
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
    let (reads, store) = (hub_reads(&[None]), MemoryStore::new());
    let enable = mock!(SecurityHub::enable_security_hub)
        .then_error(|| EnableSecurityHubError::generic(meta("AccessDeniedException", POLICY_DENIED)));
    let err = handler(&[&reads, &enable], &store)
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
    let (reads, admin, store) = (
        hub_reads(&[Some(("STANDARD_CONTROL", true))]),
        no_administrator(),
        MemoryStore::new(),
    );
    let list = tag_reads(vec![vec![]]);
    let update = mock!(SecurityHub::update_security_hub_configuration)
        .then_error(|| UpdateSecurityHubConfigurationError::generic(meta("AccessDeniedException", "not authorized")));
    let err = handler(&[&reads, &admin, &update, &list], &store)
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
    let store = MemoryStore::new();
    let h = SecurityHubEnable::from_clients(
        mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, [&always], |c| c.retry_config(
            aws_smithy_types::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(std::time::Duration::from_millis(1))
        )),
        ledger(&store),
    );
    let err = h.create(&inv(), props()).await.unwrap_err();
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert!(err.to_string().contains("kept throttling"), "{err}");
    assert_eq!(always.num_calls(), 3);
    assert_eq!(store.calls("PutParameter"), 0);
    assert!(store.names_under("/tapguard/").is_empty());
}

#[tokio::test]
async fn the_last_claimant_disables_a_hub_its_chain_enabled_unless_an_administrator_governs_it() {
    // The claim and the record a Create that turned the hub on left.
    let ours = || {
        let store = with_claims(&[claim(
            "req-1",
            "SecurityHub",
            wants("SECURITY_CONTROL", true),
            json!({"enabled": false}),
        )]);
        let record = json!({"v": 1, "handler": "securityhub-enable", "stack_id": "s", "logical_id": "SecurityHub",
            "region": "eu-west-1", "settings": [crate::setting()], "state": {"default_standards": false, "tags": {}}});
        store.insert(&ledger(&store).record_name("req-1"), record.to_string());
        store
    };
    let (reads, admin, disable, store) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true)), None]),
        no_administrator(),
        disable_ok(),
        ours(),
    );
    handler(&[&reads, &admin, &disable], &store)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 1);
    assert_eq!(store.calls("DeleteParameter"), 2);
    assert!(
        store.names_under("/tapguard/").is_empty(),
        "the claim and the record are removed"
    );

    let (reads, admin, disable, store) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        administrator("999988887777"),
        disable_ok(),
        ours(),
    );
    handler(&[&reads, &admin, &disable], &store)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 0, "a centrally managed hub stays on");
    assert!(
        store.names_under("/tapguard/").is_empty(),
        "the claim and the record are removed"
    );

    let (reads, admin, disable, store) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
        no_administrator(),
        disable_ok(),
        ours(),
    );
    let err = handler(&[&reads, &admin, &disable], &store)
        .delete(&inv(), OURS, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still answers a hub"), "{err}");
    assert_eq!(store.calls("DeleteParameter"), 0);
    assert_eq!(
        stored_claim(&store, "req-1").map(|c| c["prior"].clone()),
        Some(json!({"enabled": false})),
        "the claim stays for the retried Delete"
    );
    assert!(stored_record(&store, "req-1").is_some());
}

#[tokio::test]
async fn delete_while_another_resource_claims_the_hub_changes_nothing() {
    let old = claim(
        "req-0",
        "Old",
        wants("SECURITY_CONTROL", true),
        json!({"enabled": false}),
    );
    let store = with_claims(&[
        old.clone(),
        claim(
            "req-1",
            "SecurityHub",
            wants("SECURITY_CONTROL", true),
            json!({"enabled": false}),
        ),
    ]);
    let (reads, disable, update) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        disable_ok(),
        update_ok(),
    );
    handler(&[&reads, &disable, &update], &store)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!((reads.num_calls(), disable.num_calls(), update.num_calls()), (0, 0, 0));
    assert_eq!(stored_claim(&store, "req-1"), None, "its own claim is given up");
    assert_eq!(stored_claim(&store, "req-0"), Some(old), "the other claim stays");
    assert_eq!(store.names_under("/tapguard/"), [claim_name("req-0")]);
}

#[tokio::test]
async fn the_last_claimant_of_an_adopted_hub_puts_its_settings_and_tags_back() {
    let record = json!({"v": 1, "handler": "securityhub-enable", "stack_id": "s", "logical_id": "SecurityHub",
        "region": "eu-west-1", "settings": [crate::setting()], "state": {"default_standards": false, "tags": {"owner": "security", "team": "ours"}}});
    let store = with_claims(&[claim(
        "req-1",
        "SecurityHub",
        wants("SECURITY_CONTROL", false),
        json!({"enabled": true, "control_finding_generator": "STANDARD_CONTROL", "auto_enable_controls": true,
            "tags": {"team": "platform"}}),
    )]);
    store.insert(&ledger(&store).record_name("req-1"), record.to_string());
    // AutoEnableControls was changed by someone since (true, not false): left as it is.
    let reads = hub_reads(&[Some(("SECURITY_CONTROL", true)), Some(("STANDARD_CONTROL", true))]);
    let (update, tag, untag) = (update_ok(), tag_ok(), untag_ok());
    let list = tag_reads(vec![vec![("owner", "security"), ("team", "ours")]]);
    handler(&[&reads, &update, &tag, &untag, &list], &store)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1, "the generator only");
    assert_eq!(
        (tag.num_calls(), untag.num_calls()),
        (1, 1),
        "team back to platform, owner removed"
    );
    assert!(
        store.names_under("/tapguard/").is_empty(),
        "the claim and the record are removed"
    );
}

#[tokio::test]
async fn a_lost_ledger_turns_nothing_off_and_an_old_format_id_still_does() {
    let (reads, disable, store) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        disable_ok(),
        MemoryStore::new(),
    );
    handler(&[&reads, &disable], &store)
        .delete(&inv(), OURS, None)
        .await
        .unwrap();
    assert_eq!((reads.num_calls(), disable.num_calls()), (0, 0));
    assert_eq!(store.calls("PutParameter"), 0);

    let (reads, admin, disable, store) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true)), None]),
        no_administrator(),
        disable_ok(),
        MemoryStore::new(),
    );
    handler(&[&reads, &admin, &disable], &store)
        .delete(
            &inv(),
            "securityhub-enable:eu-west-1:enabled:default-standards=false",
            None,
        )
        .await
        .unwrap();
    assert_eq!(disable.num_calls(), 1, "the old id says this resource enabled the hub");

    let (reads, disable, store) = (
        hub_reads(&[Some(("SECURITY_CONTROL", true))]),
        disable_ok(),
        MemoryStore::new(),
    );
    handler(&[&reads, &disable], &store)
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
    let (reads, store) = (hub_reads(&[Some(("SECURITY_CONTROL", true))]), MemoryStore::new());
    handler(&[&reads], &store)
        .undo_create(&inv(), "req-1", None)
        .await
        .unwrap();
    assert_eq!(reads.num_calls(), 0);
    assert_eq!(store.calls("PutParameter"), 0);
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
        let (reads, update, store) = (
            hub_reads(&[Some(("STANDARD_CONTROL", true)), Some(("SECURITY_CONTROL", true))]),
            update_ok(),
            MemoryStore::new(),
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
        let out = handler(&[&reads, &admin, &update, &list], &store)
            .create(&inv(), props())
            .await
            .unwrap();
        assert_eq!(out.data["ManagedBy"], "Self", "{status}");
        assert_eq!(update.num_calls(), 1, "{status}: the account sets its own generator");
    }
}
