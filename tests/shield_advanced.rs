//! Custom::ShieldAdvanced: the real binary under the Lambda Runtime API, against the emulator.

use serde_json::{json, Value};
use tapguard_tests::*;

const BINARY: &str = "shield-advanced";
const TYPE: &str = "Custom::ShieldAdvanced";
const REGION: &str = "eu-west-1";
const TARGET: &str = "AWSShield_20160616";

fn shield(w: &World, operation: &str, body: Value) -> Value {
    w.json_call("shield", &format!("{TARGET}.{operation}"), body)
}

fn subscription(w: &World) -> Value {
    shield(w, "DescribeSubscription", json!({}))
}

fn srt_role(w: &World) -> Option<String> {
    shield(w, "DescribeDRTAccess", json!({}))["RoleArn"]
        .as_str()
        .map(str::to_string)
}

fn role_arn(w: &World, name: &str) -> String {
    format!("arn:aws:iam::{}:role/{name}", w.account.account_id)
}

fn ledger_parameters(w: &World) -> Vec<String> {
    ledger_parameters_of(&w.account, "us-east-1")
}

/// Regions of the Shield calls this world's account made.
fn shield_regions(w: &World) -> Vec<String> {
    emulator()
        .calls(&w.account.account_id, Some("shield"))
        .iter()
        .filter_map(|c| c["region"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn subscribes_only_when_asked_then_update_and_delete_turn_auto_renew_off_for_what_it_created() {
    let w = World::new(BINARY, REGION);
    let mut r = w.resource(TYPE, "ShieldAdvanced");

    // Not asked to subscribe: FAILED, nothing created.
    let refused = r.create(json!({}));
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused
            .reason()
            .contains("the account has no Shield Advanced subscription")
            && refused.reason().contains("set CreateSubscription to true"),
        "{}",
        refused.reason()
    );
    assert!(
        mutating(&w.operations("shield")).is_empty(),
        "{:?}",
        w.operations("shield")
    );
    assert_eq!(r.delete().status(), "SUCCESS");
    assert_eq!(subscription(&w)["__type"], "ResourceNotFoundException");

    let srt = role_arn(&w, "tap-shield-srt");
    let created = r.create(json!({"CreateSubscription": "true", "SrtRoleArn": srt}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert!(created.physical_id().starts_with("shield-advanced:eu-west-1:ledger-"));
    assert_eq!(created.data("Subscribed"), Some("true"));
    assert_eq!(created.data("Adopted"), Some("false"));
    assert_eq!(created.data("AutoRenew"), Some("ENABLED"));
    assert_eq!(created.data("SrtRoleArn"), Some(srt.as_str()));
    assert!(!created.data("CommitmentEndTime").unwrap_or_default().is_empty());
    assert!(created
        .data("SubscriptionArn")
        .unwrap_or_default()
        .starts_with("arn:aws:shield::"));
    assert_eq!(srt_role(&w), Some(srt.clone()));
    // The function runs in eu-west-1; Shield's API is called in us-east-1.
    let regions = shield_regions(&w);
    assert!(
        !regions.is_empty() && regions.iter().all(|r| r == "us-east-1"),
        "{regions:?}"
    );
    assert_eq!(
        w.operations("shield")
            .iter()
            .filter(|o| *o == "CreateSubscription")
            .count(),
        1
    );

    // A no-op Update only reads; dropping the role gives the SRT access back as it was (none).
    let before = mutating(&w.operations("shield")).len();
    let noop = r.update(json!({"CreateSubscription": "true", "SrtRoleArn": srt}));
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    assert_eq!(mutating(&w.operations("shield")).len(), before);
    let dropped = r.update(json!({"CreateSubscription": "true"}));
    assert_eq!(dropped.status(), "SUCCESS", "{}", dropped.reason());
    assert_eq!(dropped.physical_id(), created.physical_id());
    assert_eq!(srt_role(&w), None);

    // Delete cannot end the commitment: auto-renew goes off, the subscription stays until its end.
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let after = subscription(&w);
    assert_eq!(after["Subscription"]["AutoRenew"], "DISABLED", "{after}");
    assert!(w.host.logs().contains("cannot be cancelled by any API call"));
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn an_existing_subscription_and_srt_role_are_adopted_and_put_back() {
    let w = World::new(BINARY, REGION);
    let old_role = role_arn(&w, "their-srt-role");
    shield(&w, "CreateSubscription", json!({}));
    shield(&w, "AssociateDRTRole", json!({"RoleArn": old_role}));

    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let srt = role_arn(&w, "tap-shield-srt");
    let created = r.create(json!({"SrtRoleArn": srt}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Adopted"), Some("true"));
    assert_eq!(srt_role(&w), Some(srt));
    assert!(!w.operations("shield").contains(&"CreateSubscription".to_string()));

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(srt_role(&w), Some(old_role), "the role found before is back");
    assert_eq!(
        subscription(&w)["Subscription"]["AutoRenew"],
        "ENABLED",
        "an adopted subscription is left alone"
    );
    assert!(!w.operations("shield").contains(&"UpdateSubscription".to_string()));
}

#[test]
fn a_failed_create_after_subscribing_turns_auto_renew_off_and_partitions_without_shield_fail_cleanly() {
    let w = World::new(BINARY, REGION);
    w.fault(
        json!({"service": "shield", "operation": "AssociateDRTRole", "code": "AccessDeniedForDependencyException",
        "message": "Cannot get role", "count": 1}),
    );
    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let failed = r.create(json!({"CreateSubscription": "true", "SrtRoleArn": role_arn(&w, "no-such-role")}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("AssociateDRTRole failed: AccessDeniedForDependencyException: Cannot get role"),
        "{}",
        failed.reason()
    );
    assert!(
        failed.reason().contains("drt.shield.amazonaws.com"),
        "{}",
        failed.reason()
    );
    // The subscription could not be undone; its auto-renew was turned off before the answer.
    assert_eq!(subscription(&w)["Subscription"]["AutoRenew"], "DISABLED");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
    let rolled_back = r.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());

    for (region, partition) in [("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")] {
        let w = World::new(BINARY, region);
        let mut r = w.resource(TYPE, "ShieldAdvanced");
        let failed = r.create(json!({"CreateSubscription": "true"}));
        assert_eq!(failed.status(), "FAILED");
        assert!(
            failed.reason().starts_with(&format!(
                "Shield Advanced is not offered in the {partition} partition (region {region})"
            )),
            "{}",
            failed.reason()
        );
        let deleted = r.delete();
        assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
        // Nothing but the runtime's answer book (SSM, kept for duplicate deliveries): no Shield call and
        // no claim in the ledger.
        let calls = emulator().calls(&w.account.account_id, None);
        assert!(
            calls.iter().all(|c| c["service"] == "ssm"),
            "no AWS call but the answer book in {region}: {calls:?}"
        );
        assert!(
            ledger_parameters_of(&w.account, region).is_empty(),
            "no claim in {region}"
        );
    }
}

/// control -> (verdict, observed) of a pass.
fn checks_of(summary: &Value) -> std::collections::BTreeMap<String, (String, String)> {
    summary["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["checks"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("control"), (text("verdict"), text("observed")))
        })
        .collect()
}

/// (compliance, record state) of the drift finding of `control`, in this world's region.
fn drift_finding(w: &World, control: &str) -> Option<(String, String)> {
    let filters = json!({"Filters": {"GeneratorId": [{"Value": "tapguard/shield-advanced", "Comparison": "EQUALS"}]}});
    let answer = w.rest_call("securityhub", "POST", "/findings", Some(filters));
    answer["Findings"]
        .as_array()
        .unwrap_or_else(|| panic!("GetFindings: {answer}"))
        .iter()
        .find(|f| f["Id"].as_str().is_some_and(|id| id.ends_with(&format!("/{control}"))))
        .map(|f| {
            (
                f["Compliance"]["Status"].as_str().unwrap_or_default().to_string(),
                f["RecordState"].as_str().unwrap_or_default().to_string(),
            )
        })
}

#[test]
fn the_verify_pass_finds_an_ended_subscription_and_another_srt_role_reads_only_and_a_denied_read_is_unknown() {
    let w = World::new(BINARY, REGION);
    w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false})),
    );
    let srt = role_arn(&w, "tap-shield-srt");
    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let created = r.create(json!({"CreateSubscription": "true", "SrtRoleArn": srt}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    // Held, and the pass only reads.
    let before = w.operations("shield").len();
    let held = verify_pass(&w.host);
    assert_eq!(
        (held["resources"].as_u64(), held["drifted"].as_u64()),
        (Some(1), Some(0)),
        "{held}"
    );
    let checks = checks_of(&held);
    assert_eq!(checks["Shield.Subscription"].0, "held", "{held}");
    assert_eq!(checks["Shield.SrtRole"], ("held".to_string(), srt.clone()));
    let during = w.operations("shield")[before..].to_vec();
    assert!(mutating(&during).is_empty() && !during.is_empty(), "{during:?}");

    // Each control drifted in turn: found, published, resolved once put back.
    let commitment = |in_seconds: i64, auto_renew: &str| {
        emulator().control(
            "/tapguard/shield/commitment-end",
            json!({"account": w.account.account_id, "in_seconds": in_seconds, "auto_renew": auto_renew}),
        );
    };
    type Step<'a> = Box<dyn Fn() + 'a>;
    let drifts: [(&str, &str, Step, Step); 2] = [
        (
            "Shield.SrtRole",
            "no role",
            Box::new(|| {
                shield(&w, "DisassociateDRTRole", json!({}));
            }),
            Box::new(|| {
                shield(&w, "AssociateDRTRole", json!({"RoleArn": srt}));
            }),
        ),
        (
            "Shield.Subscription",
            "ended ",
            Box::new(|| commitment(-60, "DISABLED")),
            Box::new(|| commitment(365 * 86_400, "ENABLED")),
        ),
    ];
    for (control, observed, drift, put_back) in &drifts {
        drift();
        let drifted = verify_pass(&w.host);
        assert_eq!(drifted["drifted"].as_u64(), Some(1), "{control}: {drifted}");
        let (verdict, seen) = checks_of(&drifted)[*control].clone();
        assert_eq!(verdict, "drifted", "{control}");
        assert!(seen.starts_with(observed), "{control}: {seen}");
        assert_eq!(drift_metric(&w.host, None, control).last(), Some(&1.0), "{control}");
        assert_eq!(
            drift_finding(&w, control),
            Some(("FAILED".to_string(), "ACTIVE".to_string())),
            "{control}"
        );
        put_back();
        let again = verify_pass(&w.host);
        assert_eq!(
            (again["drifted"].as_u64(), again["findings_archived"].as_u64()),
            (Some(0), Some(1)),
            "{again}"
        );
        assert_eq!(
            drift_finding(&w, control),
            Some(("PASSED".to_string(), "ARCHIVED".to_string())),
            "{control}"
        );
    }

    // A denied read is unknown with its reason, never held.
    w.fault(
        json!({"service": "shield", "operation": "DescribeSubscription", "code": "AccessDeniedException",
        "message": "not authorized to perform shield:DescribeSubscription"}),
    );
    let denied = verify_pass(&w.host);
    let (verdict, why) = checks_of(&denied)["Shield.Subscription"].clone();
    assert_eq!(verdict, "unknown", "{denied}");
    assert!(why.contains("AccessDeniedException"), "{why}");
    assert_eq!(checks_of(&denied)["Shield.SrtRole"].0, "held");
}

const EMAIL: &str = "soc@example.com";
const PHONE: &str = "+15555550100";

fn our_contacts() -> Value {
    json!([{"EmailAddress": EMAIL, "PhoneNumber": PHONE}])
}

/// ProactiveEngagementStatus as DescribeSubscription answers it (None: never set up).
fn engagement(w: &World) -> Option<String> {
    subscription(w)["Subscription"]["ProactiveEngagementStatus"]
        .as_str()
        .map(str::to_string)
}

fn contacts(w: &World) -> Value {
    shield(w, "DescribeEmergencyContactSettings", json!({}))["EmergencyContactList"].clone()
}

fn count(w: &World, operation: &str) -> usize {
    w.operations("shield").iter().filter(|o| *o == operation).count()
}

#[test]
fn proactive_engagement_is_set_up_once_then_turned_off_and_its_contacts_removed_on_delete() {
    let w = World::new(BINARY, REGION);
    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let props =
        json!({"CreateSubscription": "true", "EmergencyContacts": our_contacts(), "ProactiveEngagement": "true"});
    let created = r.create(props.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("ProactiveEngagementStatus"), Some("ENABLED"));
    assert_eq!(created.data("EmergencyContactCount"), Some("1"));
    assert_eq!(engagement(&w).as_deref(), Some("ENABLED"));
    assert_eq!(contacts(&w), our_contacts());
    // The one-time set-up call, nothing else.
    assert_eq!(count(&w, "AssociateProactiveEngagementDetails"), 1);
    assert_eq!(
        count(&w, "UpdateEmergencyContactSettings") + count(&w, "EnableProactiveEngagement"),
        0
    );
    assert!(w.host.logs().contains("needs a health check associated"));

    // A no-op Update only reads.
    let before = mutating(&w.operations("shield")).len();
    let noop = r.update(props.clone());
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    assert_eq!(mutating(&w.operations("shield")).len(), before);

    // Dropping ProactiveEngagement turns it off; the contacts stay, still claimed.
    let off = r.update(json!({"CreateSubscription": "true", "EmergencyContacts": our_contacts()}));
    assert_eq!(off.status(), "SUCCESS", "{}", off.reason());
    assert_eq!(off.data("ProactiveEngagementStatus"), Some("DISABLED"));
    assert_eq!(engagement(&w).as_deref(), Some("DISABLED"));
    assert_eq!(contacts(&w), our_contacts());
    // Asked again, it is turned on with the call for later changes.
    let on = r.update(props);
    assert_eq!(on.status(), "SUCCESS", "{}", on.reason());
    assert_eq!(engagement(&w).as_deref(), Some("ENABLED"));
    assert_eq!(count(&w, "AssociateProactiveEngagementDetails"), 1);
    assert_eq!(count(&w, "EnableProactiveEngagement"), 1);

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(
        engagement(&w).as_deref(),
        Some("DISABLED"),
        "off (no call brings back 'never set up')"
    );
    assert_eq!(contacts(&w), json!([]), "the contacts it set are removed");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn adopted_proactive_engagement_stays_on_and_the_contacts_found_are_put_back() {
    let w = World::new(BINARY, REGION);
    let theirs = json!([{"EmailAddress": "noc@example.com", "PhoneNumber": "+15555550199", "ContactNotes": "24x7"}]);
    shield(&w, "CreateSubscription", json!({}));
    shield(
        &w,
        "AssociateProactiveEngagementDetails",
        json!({"EmergencyContactList": theirs}),
    );
    assert_eq!(engagement(&w).as_deref(), Some("ENABLED"));

    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let created = r.create(json!({"EmergencyContacts": our_contacts(), "ProactiveEngagement": "true"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Adopted"), Some("true"));
    assert_eq!(contacts(&w), our_contacts());
    // Already on: no set-up and no enable; the contacts through the call for later changes.
    assert_eq!(
        count(&w, "AssociateProactiveEngagementDetails"),
        0,
        "the test's own set-up is not logged"
    );
    assert_eq!(count(&w, "EnableProactiveEngagement"), 0);
    assert_eq!(count(&w, "UpdateEmergencyContactSettings"), 1);

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(engagement(&w).as_deref(), Some("ENABLED"), "it was on before: left on");
    assert_eq!(contacts(&w), theirs, "the contacts found are back");
    assert_eq!(count(&w, "DisableProactiveEngagement"), 0);
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn a_failed_create_with_proactive_engagement_leaves_the_contacts_and_status_it_found() {
    // Set up before and off: the Create changes the contacts, then Shield refuses to enable.
    let w = World::new(BINARY, REGION);
    let theirs = json!([{"EmailAddress": "noc@example.com", "PhoneNumber": "+15555550199"}]);
    shield(&w, "CreateSubscription", json!({}));
    shield(
        &w,
        "AssociateProactiveEngagementDetails",
        json!({"EmergencyContactList": theirs}),
    );
    shield(&w, "DisableProactiveEngagement", json!({}));
    w.fault(json!({"service": "shield", "operation": "EnableProactiveEngagement",
        "code": "InvalidParameterException", "message": "The account has no Business Support plan", "count": 1}));
    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let failed = r.create(json!({"EmergencyContacts": our_contacts(), "ProactiveEngagement": "true"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(
            "EnableProactiveEngagement failed: InvalidParameterException: The account has no Business Support plan"
        ),
        "{}",
        failed.reason()
    );
    assert!(
        failed.reason().contains("Business or Enterprise Support plan"),
        "{}",
        failed.reason()
    );
    assert_eq!(count(&w, "UpdateEmergencyContactSettings"), 2, "set, then put back");
    assert_eq!(contacts(&w), theirs);
    assert_eq!(engagement(&w).as_deref(), Some("DISABLED"));
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
    assert_eq!(r.delete().status(), "SUCCESS");
    assert_eq!(contacts(&w), theirs);

    // A fresh account whose set-up fails: nothing but the subscription, whose auto-renew goes off.
    let w = World::new(BINARY, REGION);
    w.fault(
        json!({"service": "shield", "operation": "AssociateProactiveEngagementDetails",
        "code": "AccessDeniedException", "message": "not authorized", "count": 1}),
    );
    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let failed = r.create(
        json!({"CreateSubscription": "true", "EmergencyContacts": our_contacts(), "ProactiveEngagement": "true"}),
    );
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("AssociateProactiveEngagementDetails failed: AccessDeniedException"),
        "{}",
        failed.reason()
    );
    assert_eq!(engagement(&w), None, "never set up");
    assert_eq!(contacts(&w), json!([]));
    assert_eq!(subscription(&w)["Subscription"]["AutoRenew"], "DISABLED");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
    assert_eq!(r.delete().status(), "SUCCESS");
}

#[test]
fn the_verify_pass_finds_proactive_engagement_off_and_other_contacts() {
    let w = World::new(BINARY, REGION);
    w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false})),
    );
    let mut r = w.resource(TYPE, "ShieldAdvanced");
    let created = r.create(
        json!({"CreateSubscription": "true", "EmergencyContacts": our_contacts(), "ProactiveEngagement": "true"}),
    );
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let held = verify_pass(&w.host);
    assert_eq!(held["drifted"].as_u64(), Some(0), "{held}");
    let checks = checks_of(&held);
    assert_eq!(
        checks["Shield.ProactiveEngagement"],
        ("held".to_string(), "ENABLED".to_string())
    );
    assert_eq!(
        checks["Shield.EmergencyContacts"],
        ("held".to_string(), EMAIL.to_string())
    );

    shield(&w, "DisableProactiveEngagement", json!({}));
    let other = json!([{"EmailAddress": EMAIL, "PhoneNumber": "+15555550111"}]);
    shield(
        &w,
        "UpdateEmergencyContactSettings",
        json!({"EmergencyContactList": other}),
    );
    let before = w.operations("shield").len();
    let drifted = verify_pass(&w.host);
    assert_eq!(drifted["drifted"].as_u64(), Some(2), "{drifted}");
    let checks = checks_of(&drifted);
    assert_eq!(
        checks["Shield.ProactiveEngagement"],
        ("drifted".to_string(), "DISABLED".to_string())
    );
    assert_eq!(
        checks["Shield.EmergencyContacts"],
        ("drifted".to_string(), format!("{EMAIL} (other phone numbers or notes)"))
    );
    assert!(
        mutating(&w.operations("shield")[before..]).is_empty(),
        "the pass only reads"
    );
    assert_eq!(
        drift_finding(&w, "Shield.ProactiveEngagement"),
        Some(("FAILED".to_string(), "ACTIVE".to_string()))
    );
}
