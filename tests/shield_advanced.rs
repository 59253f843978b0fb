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
