//! Custom::SecurityHubStandards in a member account under the delegated administrator's central
//! configuration policy: the real binary against the emulator, which refuses a member's standards and
//! controls changes while a policy governs it (`/tapguard/securityhub/central-configuration`).

use serde_json::{json, Value};
use tapguard_tests::*;

const BINARY: &str = "securityhub-standards";
const TYPE: &str = "Custom::SecurityHubStandards";
const REGION: &str = "eu-west-1";
const FSBP: &str = "aws-foundational-security-best-practices/v/1.0.0";
const CIS_14: &str = "cis-aws-foundations-benchmark/v/1.4.0";

fn arn(id: &str) -> String {
    format!("arn:aws:securityhub:{REGION}::standards/{id}")
}

/// Standard id -> status, from GetEnabledStandards (each read moves PENDING along, as in AWS).
fn standards(w: &World) -> Vec<(String, String)> {
    let answer = w.rest_call("securityhub", "POST", "/standards/get", Some(json!({})));
    answer["StandardsSubscriptions"]
        .as_array()
        .unwrap_or_else(|| panic!("GetEnabledStandards: {answer}"))
        .iter()
        .map(|s| {
            let arn = s["StandardsArn"].as_str().unwrap_or_default();
            let id = arn.split_once("standards/").map(|(_, id)| id).unwrap_or(arn);
            let status = s["StandardsStatus"].as_str().unwrap_or_default();
            (id.to_string(), status.to_string())
        })
        .collect()
}

/// A member whose policy enables FSBP (set up before the policy governs, as the policy would have).
fn member_with_fsbp() -> World {
    let w = World::new(BINARY, REGION);
    let hub = w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false})),
    );
    assert!(hub.get("__type").is_none(), "{hub}");
    let enabled = w.rest_call(
        "securityhub",
        "POST",
        "/standards/register",
        Some(json!({"StandardsSubscriptionRequests": [{"StandardsArn": arn(FSBP)}]})),
    );
    assert!(enabled.get("__type").is_none(), "{enabled}");
    for _ in 0..10 {
        if standards(&w) == vec![(FSBP.to_string(), "READY".to_string())] {
            break;
        }
    }
    assert_eq!(standards(&w), vec![(FSBP.to_string(), "READY".to_string())]);
    emulator().control(
        "/tapguard/securityhub/central-configuration",
        json!({"account": w.account.account_id, "region": REGION, "administrator": "999988887777"}),
    );
    w
}

fn changes(w: &World) -> Vec<String> {
    mutating(&w.operations("securityhub"))
}

#[test]
fn a_declared_centrally_managed_member_verifies_what_the_policy_gives_and_its_delete_changes_nothing() {
    let w = member_with_fsbp();
    let mut r = w.resource(TYPE, "SecurityHubStandards");
    let created = r.create(json!({"Standards": [FSBP], "CentrallyManaged": "true"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("CentrallyManaged"), Some("true"));
    assert_eq!(created.data("Statuses"), Some(format!("{FSBP}=READY").as_str()));
    assert_eq!(created.data("Adopted"), Some(arn(FSBP).as_str()));
    assert!(changes(&w).is_empty(), "{:?}", changes(&w));

    // What the policy does not give is named, with where to change it.
    let failed = r.update(json!({"Standards": [FSBP, CIS_14], "CentrallyManaged": "true"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().contains(&format!(
            "the central configuration policy does not give the requested standard {} (not enabled)",
            arn(CIS_14)
        )),
        "{}",
        failed.reason()
    );
    assert!(
        failed.reason().contains("in the delegated administrator account"),
        "{}",
        failed.reason()
    );

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(changes(&w).is_empty(), "{:?}", changes(&w));
    assert_eq!(standards(&w), vec![(FSBP.to_string(), "READY".to_string())]);
    assert!(ledger_parameters_of(&w.account, REGION).is_empty());
}

#[test]
fn a_refusal_by_the_policy_is_taken_as_central_management_and_a_failed_create_leaves_nothing() {
    let w = member_with_fsbp();
    let mut r = w.resource(TYPE, "SecurityHubStandards");
    let failed = r.create(json!({"Standards": [FSBP, CIS_14]}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("BatchEnableStandards failed: AccessDeniedException: Account"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "the central configuration policy does not give the requested standard {} (not enabled)",
            arn(CIS_14)
        )),
        "{reason}"
    );
    assert_eq!(
        changes(&w),
        vec!["BatchEnableStandards".to_string()],
        "the refused call only"
    );
    assert!(ledger_parameters_of(&w.account, REGION).is_empty());
    assert_eq!(r.delete().status(), "SUCCESS");
    assert_eq!(standards(&w), vec![(FSBP.to_string(), "READY".to_string())]);

    // A control the policy keeps enabled: the refused update is taken the same way.
    let mut r = w.resource(TYPE, "SecurityHubStandardsControls");
    let props: Value =
        json!({"Standards": [FSBP], "DisabledControls": [{"ControlId": "IAM.4", "Reason": "break-glass"}]});
    let failed = r.create(props);
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().contains(&format!(
            "the central configuration policy keeps the control {FSBP}#IAM.4 enabled"
        )),
        "{}",
        failed.reason()
    );
    assert!(ledger_parameters_of(&w.account, REGION).is_empty());
    assert_eq!(r.delete().status(), "SUCCESS");
}
