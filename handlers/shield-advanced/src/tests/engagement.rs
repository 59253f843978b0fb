//! Proactive engagement and the emergency contacts: each path of Create and Delete, with Shield mocked
//! and the ledger in the in-memory Parameter Store.

use aws_sdk_shield::operation::associate_proactive_engagement_details::{
    AssociateProactiveEngagementDetailsError, AssociateProactiveEngagementDetailsOutput,
};
use aws_sdk_shield::operation::describe_emergency_contact_settings::{
    DescribeEmergencyContactSettingsError, DescribeEmergencyContactSettingsOutput,
};
use aws_sdk_shield::operation::describe_subscription::DescribeSubscriptionOutput;
use aws_sdk_shield::operation::disable_proactive_engagement::DisableProactiveEngagementOutput;
use aws_sdk_shield::operation::enable_proactive_engagement::{
    EnableProactiveEngagementError, EnableProactiveEngagementOutput,
};
use aws_sdk_shield::operation::update_emergency_contact_settings::UpdateEmergencyContactSettingsOutput;
use aws_sdk_shield::types::{AutoRenew, EmergencyContact, ProactiveEngagementStatus, Subscription};
use aws_sdk_shield::Client as Shield;
use aws_smithy_mocks::{mock, Rule};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{CustomResource, HandlerError};

use super::{
    claim, claim_name, handler, inv, ledger, no_srt_role, recorded_settings, ssm_calls, stored_claim, subscribed,
    with_claims, KEY,
};
use crate::{engagement_settings, settings, Properties};

const PHYSICAL_ID: &str = "shield-advanced:eu-west-1:ledger-req-1";
const EMAIL: &str = "soc@example.com";
const PHONE: &str = "+15555550100";

/// An existing subscription whose ProactiveEngagementStatus answers in turn (`None`: never set up).
fn statuses(states: &[Option<ProactiveEngagementStatus>]) -> Rule {
    let mut seq = mock!(Shield::describe_subscription).sequence();
    for state in states {
        let state = state.clone();
        seq = seq.output(move || with_status(state.clone()));
    }
    seq.build()
}

fn with_status(state: Option<ProactiveEngagementStatus>) -> DescribeSubscriptionOutput {
    let subscription = subscribed(AutoRenew::Enabled).subscription.unwrap();
    let subscription = Subscription::builder()
        .auto_renew(AutoRenew::Enabled)
        .set_subscription_arn(subscription.subscription_arn)
        .subscription_limits(subscription.subscription_limits.unwrap())
        .set_proactive_engagement_status(state)
        .build();
    DescribeSubscriptionOutput::builder().subscription(subscription).build()
}

fn contact(email: &str, phone: Option<&str>) -> EmergencyContact {
    EmergencyContact::builder()
        .email_address(email)
        .set_phone_number(phone.map(str::to_string))
        .build()
        .unwrap()
}

/// DescribeEmergencyContactSettings answering these lists in turn.
fn contact_lists(lists: Vec<Vec<EmergencyContact>>) -> Rule {
    let mut seq = mock!(Shield::describe_emergency_contact_settings).sequence();
    for list in lists {
        seq = seq.output(move || {
            DescribeEmergencyContactSettingsOutput::builder()
                .set_emergency_contact_list(Some(list.clone()))
                .build()
        });
    }
    seq.build()
}

fn ours() -> Vec<EmergencyContact> {
    vec![contact(EMAIL, Some(PHONE))]
}

fn props(on: bool) -> Properties {
    serde_json::from_value(json!({
        "EmergencyContacts": [{"EmailAddress": EMAIL, "PhoneNumber": PHONE}],
        "ProactiveEngagement": on.to_string(),
    }))
    .unwrap()
}

fn associate_ok() -> Rule {
    mock!(Shield::associate_proactive_engagement_details)
        .then_output(|| AssociateProactiveEngagementDetailsOutput::builder().build())
}

fn update_ok() -> Rule {
    mock!(Shield::update_emergency_contact_settings)
        .then_output(|| UpdateEmergencyContactSettingsOutput::builder().build())
}

fn enable_ok() -> Rule {
    mock!(Shield::enable_proactive_engagement).then_output(|| EnableProactiveEngagementOutput::builder().build())
}

fn disable_ok() -> Rule {
    mock!(Shield::disable_proactive_engagement).then_output(|| DisableProactiveEngagementOutput::builder().build())
}

fn ours_json() -> Value {
    json!({"contacts": [{"EmailAddress": EMAIL, "PhoneNumber": PHONE}]})
}

#[tokio::test]
async fn proactive_engagement_without_a_phone_number_fails_before_any_call() {
    let (describe, store) = (statuses(&[]), MemoryStore::new());
    let h = handler(&[&describe], &store);
    let no_phone: Properties =
        serde_json::from_value(json!({"EmergencyContacts": [{"EmailAddress": EMAIL}], "ProactiveEngagement": "true"}))
            .unwrap();
    let err = h.create(&inv("eu-west-1"), no_phone).await.unwrap_err();
    assert!(matches!(&err, HandlerError::InvalidProperty { property, .. } if property == "ProactiveEngagement"));
    assert!(err.to_string().contains("at least one PhoneNumber"), "{err}");
    let bad_phone: Properties =
        serde_json::from_value(json!({"EmergencyContacts": [{"EmailAddress": EMAIL, "PhoneNumber": "555-0100"}]}))
            .unwrap();
    let err = h.create(&inv("eu-west-1"), bad_phone).await.unwrap_err().to_string();
    assert!(err.contains("is not in E.164 form"), "{err}");
    assert_eq!(describe.num_calls() + ssm_calls(&store), 0);
}

#[tokio::test]
async fn the_first_set_up_is_one_associate_call_claimed_before_and_read_back() {
    let describe = statuses(&[None, Some(ProactiveEngagementStatus::Enabled)]);
    let (drt, contacts) = (no_srt_role(), contact_lists(vec![vec![], ours()]));
    let (update, enable, store) = (update_ok(), enable_ok(), MemoryStore::new());
    let (subscription, _) = settings();
    let (contacts_setting, engagement_setting) = engagement_settings();
    // AssociateProactiveEngagementDetails is answered only once both claims are in the ledger.
    let (written, claimed) = (
        store.clone(),
        [claim_name(&contacts_setting), claim_name(&engagement_setting)],
    );
    let associate = mock!(Shield::associate_proactive_engagement_details)
        .match_requests(move |_| claimed.iter().all(|name| written.value(name).is_some()))
        .then_output(|| AssociateProactiveEngagementDetailsOutput::builder().build());
    let h = handler(&[&describe, &drt, &contacts, &associate, &update, &enable], &store);
    let out = h.create(&inv("eu-west-1"), props(true)).await.unwrap();
    assert_eq!(out.data["ProactiveEngagementStatus"], "ENABLED");
    assert_eq!(out.data["EmergencyContactCount"], "1");
    assert_eq!(
        (associate.num_calls(), update.num_calls(), enable.num_calls()),
        (1, 0, 0)
    );
    // The record, the subscription, the contacts and proactive engagement claimed before the change.
    assert_eq!(
        recorded_settings(&store),
        json!([subscription, contacts_setting, engagement_setting])
    );
    let found = json!({"exists": true, "auto_renew": "ENABLED",
        "arn": "arn:aws:shield::111122223333:subscription/abcd"});
    assert_eq!(
        stored_claim(&store, &subscription),
        Some((json!({"subscribed": true}), found))
    );
    assert_eq!(
        stored_claim(&store, &contacts_setting),
        Some((ours_json(), json!({"contacts": []})))
    );
    assert_eq!(
        stored_claim(&store, &engagement_setting),
        Some((json!({"status": "ENABLED"}), json!({"status": null})))
    );
    assert_eq!(store.calls("PutParameter"), 4);
}

#[tokio::test]
async fn once_set_up_the_contacts_are_updated_and_it_is_enabled_with_the_later_calls() {
    let describe = statuses(&[
        Some(ProactiveEngagementStatus::Disabled),
        Some(ProactiveEngagementStatus::Enabled),
    ]);
    let theirs = vec![contact("old@example.com", Some("+15555550199"))];
    let (drt, contacts) = (no_srt_role(), contact_lists(vec![theirs, ours()]));
    let (associate, enable) = (associate_ok(), enable_ok());
    let update = mock!(Shield::update_emergency_contact_settings)
        .match_requests(|input| input.emergency_contact_list().first().map(|c| c.email_address()) == Some(EMAIL))
        .then_output(|| UpdateEmergencyContactSettingsOutput::builder().build());
    let store = MemoryStore::new();
    let h = handler(&[&describe, &drt, &contacts, &associate, &update, &enable], &store);
    h.create(&inv("eu-west-1"), props(true)).await.unwrap();
    assert_eq!(
        (associate.num_calls(), update.num_calls(), enable.num_calls()),
        (0, 1, 1)
    );
}

#[tokio::test]
async fn an_associate_refused_as_already_set_up_falls_back_to_update_and_enable() {
    let describe = statuses(&[None, Some(ProactiveEngagementStatus::Enabled)]);
    let (drt, contacts) = (no_srt_role(), contact_lists(vec![vec![], ours()]));
    let associate = mock!(Shield::associate_proactive_engagement_details).then_error(|| {
        AssociateProactiveEngagementDetailsError::generic(
            ErrorMetadata::builder()
                .code("InvalidOperationException")
                .message("already initialized")
                .build(),
        )
    });
    let (update, enable) = (update_ok(), enable_ok());
    let store = MemoryStore::new();
    let h = handler(&[&describe, &drt, &contacts, &associate, &update, &enable], &store);
    let out = h.create(&inv("eu-west-1"), props(true)).await.unwrap();
    assert_eq!(out.data["ProactiveEngagementStatus"], "ENABLED");
    assert_eq!(
        (associate.num_calls(), update.num_calls(), enable.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn an_enable_shield_refuses_is_failed_with_the_support_plan_advice() {
    let describe = statuses(&[Some(ProactiveEngagementStatus::Disabled)]);
    let (drt, contacts) = (no_srt_role(), contact_lists(vec![ours()]));
    let enable = mock!(Shield::enable_proactive_engagement).then_error(|| {
        EnableProactiveEngagementError::generic(
            ErrorMetadata::builder()
                .code("InvalidParameterException")
                .message("no support plan")
                .build(),
        )
    });
    let store = MemoryStore::new();
    let h = handler(&[&describe, &drt, &contacts, &enable], &store);
    let err = h.create(&inv("eu-west-1"), props(true)).await.unwrap_err().to_string();
    assert!(
        err.starts_with("EnableProactiveEngagement failed: InvalidParameterException: no support plan"),
        "{err}"
    );
    assert!(err.contains("Business or Enterprise Support plan"), "{err}");
}

#[tokio::test]
async fn a_status_that_does_not_read_back_on_is_not_verified() {
    let describe = statuses(&[
        Some(ProactiveEngagementStatus::Disabled),
        Some(ProactiveEngagementStatus::Disabled),
    ]);
    let (drt, contacts, enable) = (no_srt_role(), contact_lists(vec![ours(), ours()]), enable_ok());
    let store = MemoryStore::new();
    let h = handler(&[&describe, &drt, &contacts, &enable], &store);
    let err = h.create(&inv("eu-west-1"), props(true)).await.unwrap_err();
    assert!(matches!(err, HandlerError::NotVerified(_)), "{err}");
    assert!(
        err.to_string().contains("ProactiveEngagementStatus Some(\"DISABLED\")"),
        "{err}"
    );
}

/// The ledger of a Delete: this resource's record, the subscription adopted, and its claims on the
/// contacts (found `prior_contacts`) and, when `prior_status` is given, on proactive engagement.
fn delete_ledger(prior_contacts: Value, prior_status: Option<Option<&str>>) -> MemoryStore {
    let (subscription, _) = settings();
    let (contacts, engagement) = engagement_settings();
    let mut claims = vec![
        (
            subscription.as_str(),
            claim(json!({"subscribed": true}), json!({"exists": true})),
        ),
        (contacts.as_str(), claim(ours_json(), prior_contacts)),
    ];
    if let Some(status) = prior_status {
        claims.push((
            engagement.as_str(),
            claim(json!({"status": "ENABLED"}), json!({"status": status})),
        ));
    }
    let store = with_claims(&claims);
    let record = json!({"v": 1, "handler": "shield-advanced",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1", "logical_id": "ShieldAdvanced",
        "region": "eu-west-1", "settings": claims.iter().map(|(s, _)| s).collect::<Vec<_>>(), "state": null});
    store.insert(&ledger(&store).record_name(KEY), record.to_string());
    store
}

/// Checks that the Delete left nothing of this resource in the ledger.
fn assert_forgotten(store: &MemoryStore) {
    assert_eq!(store.names_under("/tapguard/"), Vec::<String>::new());
}

#[tokio::test]
async fn delete_turns_off_what_it_turned_on_and_removes_the_contacts_it_set() {
    let store = delete_ledger(json!({"contacts": []}), Some(None));
    let (contacts_claim, engagement_claim) = {
        let (contacts, engagement) = engagement_settings();
        (claim_name(&contacts), claim_name(&engagement))
    };
    let describe = statuses(&[
        Some(ProactiveEngagementStatus::Enabled),
        Some(ProactiveEngagementStatus::Disabled),
        Some(ProactiveEngagementStatus::Disabled),
    ]);
    let contacts = contact_lists(vec![ours(), vec![]]);
    // Each claim is dropped only after its restore: the calls are answered while it is still held.
    let held = store.clone();
    let update = mock!(Shield::update_emergency_contact_settings)
        .match_requests(move |input| input.emergency_contact_list().is_empty() && held.value(&contacts_claim).is_some())
        .then_output(|| UpdateEmergencyContactSettingsOutput::builder().build());
    let held = store.clone();
    let disable = mock!(Shield::disable_proactive_engagement)
        .match_requests(move |_| held.value(&engagement_claim).is_some())
        .then_output(|| DisableProactiveEngagementOutput::builder().build());
    let h = handler(&[&describe, &contacts, &update, &disable], &store);
    h.delete(&inv("eu-west-1"), PHYSICAL_ID, None).await.unwrap();
    assert_eq!((disable.num_calls(), update.num_calls()), (1, 1));
    assert_eq!(contacts.num_calls(), 2, "read before, read back after");
    // Every claim given up, and the record with them.
    assert_forgotten(&store);
}

#[tokio::test]
async fn delete_leaves_adopted_proactive_engagement_on_and_contacts_changed_since_alone() {
    let theirs = json!({"contacts": [{"EmailAddress": "old@example.com", "PhoneNumber": "+15555550199"}]});
    let store = delete_ledger(theirs, Some(Some("ENABLED")));
    let describe = statuses(&[]);
    // Someone replaced the contacts this resource set.
    let contacts = contact_lists(vec![vec![contact("new@example.com", Some("+15555550111"))]]);
    let (update, disable) = (update_ok(), disable_ok());
    let h = handler(&[&describe, &contacts, &update, &disable], &store);
    h.delete(&inv("eu-west-1"), PHYSICAL_ID, None).await.unwrap();
    assert_eq!(
        (disable.num_calls(), update.num_calls(), describe.num_calls()),
        (0, 0, 0)
    );
    assert_eq!(contacts.num_calls(), 1);
    assert_forgotten(&store);
}

#[tokio::test]
async fn delete_keeps_the_contacts_while_adopted_proactive_engagement_needs_a_phone_number() {
    // This resource set contacts only; proactive engagement was on before it, with no contacts.
    let store = delete_ledger(json!({"contacts": []}), None);
    let describe = statuses(&[Some(ProactiveEngagementStatus::Enabled)]);
    let contacts = contact_lists(vec![ours()]);
    let update = update_ok();
    let h = handler(&[&describe, &contacts, &update], &store);
    h.delete(&inv("eu-west-1"), PHYSICAL_ID, None).await.unwrap();
    assert_eq!(
        update.num_calls(),
        0,
        "Shield would refuse a list without a phone number"
    );
    assert_eq!(describe.num_calls(), 1, "the status was read");
    assert_forgotten(&store);
}

#[tokio::test]
async fn delete_after_the_subscription_is_gone_has_no_contacts_to_put_back() {
    let store = delete_ledger(json!({"contacts": []}), None);
    let contacts = mock!(Shield::describe_emergency_contact_settings).then_error(|| {
        DescribeEmergencyContactSettingsError::generic(
            ErrorMetadata::builder()
                .code("ResourceNotFoundException")
                .message("The subscription does not exist.")
                .build(),
        )
    });
    let update = update_ok();
    let h = handler(&[&contacts, &update], &store);
    h.delete(&inv("eu-west-1"), PHYSICAL_ID, None).await.unwrap();
    assert_eq!((contacts.num_calls(), update.num_calls()), (1, 0));
    assert_forgotten(&store);
}
