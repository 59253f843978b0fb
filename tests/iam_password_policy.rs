//! Custom::IamPasswordPolicy: the real binary under the Lambda Runtime API, against the emulator.
//! IAM is global, so the ledger is too: its claims live in us-east-1 whichever region a function runs in.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tapguard_tests::*;

const BINARY: &str = "iam-password-policy";
const TYPE: &str = "Custom::IamPasswordPolicy";
const REGION: &str = "eu-west-1";
const OTHER_REGION: &str = "ap-southeast-2";
/// Where the ledger of the aws partition's global settings lives.
const LEDGER_REGION: &str = "us-east-1";
const FIELDS: [&str; 9] = [
    "MinimumPasswordLength",
    "RequireSymbols",
    "RequireNumbers",
    "RequireUppercaseCharacters",
    "RequireLowercaseCharacters",
    "AllowUsersToChangePassword",
    "MaxPasswordAge",
    "PasswordReusePrevention",
    "HardExpiry",
];

fn strict() -> Value {
    json!({"MinimumPasswordLength": "14", "RequireSymbols": "true", "RequireNumbers": "true",
        "RequireUppercaseCharacters": "true", "RequireLowercaseCharacters": "true",
        "AllowUsersToChangePassword": "true", "MaxPasswordAge": "90", "PasswordReusePrevention": "24"})
}

/// The account's password policy as IAM answers it (absent fields left out); `None` without one.
fn policy(w: &World) -> Option<BTreeMap<String, String>> {
    let xml = w.query("iam", &[("Action", "GetAccountPasswordPolicy")]);
    if xml.contains("NoSuchEntity") {
        return None;
    }
    assert!(xml.contains("<PasswordPolicy>"), "{xml}");
    Some(
        FIELDS
            .iter()
            .filter_map(|f| xml_value(&xml, f).map(|v| (f.to_string(), v.to_string())))
            .collect(),
    )
}

fn expect(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn strict_policy() -> Option<BTreeMap<String, String>> {
    expect(&[
        ("MinimumPasswordLength", "14"),
        ("RequireSymbols", "true"),
        ("RequireNumbers", "true"),
        ("RequireUppercaseCharacters", "true"),
        ("RequireLowercaseCharacters", "true"),
        ("AllowUsersToChangePassword", "true"),
        ("MaxPasswordAge", "90"),
        ("PasswordReusePrevention", "24"),
        ("HardExpiry", "false"),
    ])
}

/// The names of the ledger's parameters in `region` of this world's account.
fn ledger_parameters(w: &World, region: &str) -> Vec<String> {
    ledger_parameters_of(&w.account, region)
}

fn claims(w: &World) -> usize {
    ledger_parameters(w, LEDGER_REGION)
        .iter()
        .filter(|n| n.starts_with("/tapguard/claims/iam-password-policy/account/"))
        .count()
}

fn iam_mutations(w: &World) -> Vec<String> {
    mutating(&w.operations("iam"))
}

#[test]
fn fresh_account_create_update_and_claimants_in_two_regions_then_the_last_delete_removes_the_policy() {
    let w = World::new(BINARY, REGION);
    assert_eq!(policy(&w), None, "a fresh account has no password policy");

    let mut first = w.resource(TYPE, "PasswordPolicy");
    let created = first.create(strict());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert!(
        created
            .physical_id()
            .starts_with("iam-password-policy:eu-west-1:ledger-"),
        "{}",
        created.physical_id()
    );
    assert_eq!(created.data("PreviousPolicy"), Some("none"));
    assert_eq!(created.data("MinimumPasswordLength"), Some("14"));
    assert_eq!(created.data("KeptFromPreviousPolicy"), Some(""));
    assert_eq!(policy(&w), strict_policy());
    // The ledger is in the partition's global region, not in the function's.
    assert_eq!(claims(&w), 1, "{:?}", ledger_parameters(&w, LEDGER_REGION));
    assert!(ledger_parameters(&w, REGION).is_empty());

    // A no-op Update only reads; a longer minimum is set and read back.
    let before = iam_mutations(&w).len();
    let noop = first.update(strict());
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    assert_eq!(iam_mutations(&w).len(), before, "a no-op Update changed something");
    let mut longer = strict();
    longer["MinimumPasswordLength"] = json!("16");
    let updated = first.update(longer.clone());
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.physical_id(), created.physical_id(), "not a replacement");
    assert_eq!(
        updated.data("PreviousPolicy"),
        Some("none"),
        "the prior stays the one before Create"
    );
    assert_eq!(policy(&w).unwrap()["MinimumPasswordLength"], "16");

    // A stack in another region: its function's ledger is the same one, so it sees the first claim.
    let host = LambdaHost::start(&binary_path(BINARY), &emulator().sdk_env(&w.account, OTHER_REGION));
    let stack = format!(
        "arn:aws:cloudformation:{OTHER_REGION}:{}:stack/tap-apse2/7c1d2e3f-5a3e-11ef-8a3c-0a1b2c3d4e5f",
        w.account.account_id
    );
    let mut second = CustomResourceDriver::new(&host, &w.responses, TYPE, "PasswordPolicy", &stack);
    let refused = second.create(strict());
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused
            .reason()
            .contains("already claimed by PasswordPolicy in stack tap-test"),
        "the claimant in the other region is named: {}",
        refused.reason()
    );
    assert_eq!(
        policy(&w).unwrap()["MinimumPasswordLength"],
        "16",
        "nothing was changed"
    );
    let rolled_back = second.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    assert_eq!(claims(&w), 1);

    let before = iam_mutations(&w).len();
    let agreeing = second.create(longer);
    assert_eq!(agreeing.status(), "SUCCESS", "{}", agreeing.reason());
    assert!(agreeing
        .physical_id()
        .starts_with("iam-password-policy:ap-southeast-2:ledger-"));
    assert_eq!(
        agreeing.data("PreviousPolicy"),
        Some("none"),
        "the first claimant's prior"
    );
    assert_eq!(iam_mutations(&w).len(), before, "{:?}", iam_mutations(&w));
    assert_eq!(claims(&w), 2);

    // The first Delete leaves the other region's claim in force; the last one removes the policy.
    assert_eq!(first.delete().status(), "SUCCESS");
    assert_eq!(policy(&w).unwrap()["MinimumPasswordLength"], "16");
    let last = second.delete();
    assert_eq!(last.status(), "SUCCESS", "{}", last.reason());
    assert_eq!(policy(&w), None, "the account is back to no policy");
    assert!(ledger_parameters(&w, LEDGER_REGION).is_empty());
}

#[test]
fn a_weaker_existing_policy_is_raised_keeping_its_stronger_fields_and_restored_on_delete() {
    let w = World::new(BINARY, REGION);
    w.query(
        "iam",
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("MinimumPasswordLength", "8"),
            ("MaxPasswordAge", "30"),
            ("HardExpiry", "true"),
            ("RequireNumbers", "true"),
        ],
    );
    let prior = policy(&w);
    assert_eq!(prior.as_ref().unwrap()["MaxPasswordAge"], "30");

    let mut r = w.resource(TYPE, "PasswordPolicy");
    let created = r.create(strict());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("PreviousPolicy"), Some("adopted"));
    assert_eq!(
        created.data("KeptFromPreviousPolicy"),
        Some("MaxPasswordAge,HardExpiry")
    );
    let mut merged = strict_policy().unwrap();
    merged.insert("MaxPasswordAge".into(), "30".into());
    merged.insert("HardExpiry".into(), "true".into());
    assert_eq!(policy(&w), Some(merged.clone()), "raised, never below the prior policy");

    // An Update asking for less than the prior policy still keeps the prior's stronger fields.
    let mut lower = strict();
    lower["RequireNumbers"] = json!("false");
    let updated = r.update(lower);
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(
        policy(&w),
        Some(merged),
        "RequireNumbers stays: the prior policy had it"
    );

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(
        policy(&w),
        prior,
        "the weaker policy found before is back, field for field"
    );
    assert!(ledger_parameters(&w, LEDGER_REGION).is_empty());
}

#[test]
fn failed_creates_leave_nothing_and_their_rollback_deletes_change_nothing() {
    let w = World::new(BINARY, REGION);

    // Refused before any call: IAM's own range.
    let mut typo = w.resource(TYPE, "PasswordPolicy");
    let mut bad = strict();
    bad["PasswordReusePrevention"] = json!("25");
    let failed = typo.create(bad);
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("invalid property PasswordReusePrevention: 25 is outside what IAM accepts (1 to 24)"),
        "{}",
        failed.reason()
    );
    assert_eq!(typo.delete().status(), "SUCCESS");
    assert!(w.operations("iam").is_empty(), "{:?}", w.operations("iam"));

    // Denied after the claim was written: undone before the answer, and the rollback Delete after it.
    w.fault(
        json!({"service": "iam", "operation": "UpdateAccountPasswordPolicy", "code": "AccessDenied",
        "message": "User is not authorized to perform: iam:UpdateAccountPasswordPolicy", "status": 403, "count": 1}),
    );
    let mut denied = w.resource(TYPE, "PasswordPolicy");
    let failed = denied.create(strict());
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("UpdateAccountPasswordPolicy failed: AccessDenied"),
        "{}",
        failed.reason()
    );
    assert!(
        failed.reason().contains("iam:UpdateAccountPasswordPolicy was denied"),
        "{}",
        failed.reason()
    );
    assert!(
        failed
            .reason()
            .ends_with(&format!("(log stream {})", w.host.log_stream)),
        "{}",
        failed.reason()
    );
    assert_eq!(policy(&w), None);
    assert!(ledger_parameters(&w, LEDGER_REGION).is_empty());
    let rolled_back = denied.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    assert_eq!(policy(&w), None);
    assert!(iam_mutations(&w).iter().all(|op| op == "UpdateAccountPasswordPolicy"));
}

/// control -> (verdict, observed) of a pass.
fn checks_of(summary: &Value) -> BTreeMap<String, (String, String)> {
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

/// control -> (compliance, record state) of the drift findings imported in this world's region.
fn drift_findings(w: &World) -> BTreeMap<String, (String, String)> {
    let filters =
        json!({"Filters": {"GeneratorId": [{"Value": "tapguard/iam-password-policy", "Comparison": "EQUALS"}]}});
    let answer = w.rest_call("securityhub", "POST", "/findings", Some(filters));
    answer["Findings"]
        .as_array()
        .unwrap_or_else(|| panic!("GetFindings: {answer}"))
        .iter()
        .map(|f| {
            let id = f["Id"].as_str().unwrap_or_default();
            (
                id.rsplit('/').next().unwrap_or(id).to_string(),
                (
                    f["Compliance"]["Status"].as_str().unwrap_or_default().to_string(),
                    f["RecordState"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

/// Sets the account's policy by hand: `strict()` with `changes` on top.
fn set_policy_directly(w: &World, changes: &[(&str, &str)]) {
    let mut params: BTreeMap<String, String> = strict()
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    for (k, v) in changes {
        if v.is_empty() {
            params.remove(*k);
        } else {
            params.insert(k.to_string(), v.to_string());
        }
    }
    let mut query: Vec<(&str, &str)> = vec![("Action", "UpdateAccountPasswordPolicy")];
    query.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let answer = w.query("iam", &query);
    assert!(!answer.contains("<Error>"), "{answer}");
}

#[test]
fn the_verify_pass_compares_by_strength_finds_each_weakened_field_and_a_denied_read_is_unknown() {
    let w = World::new(BINARY, REGION);
    w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false})),
    );
    let mut r = w.resource(TYPE, "PasswordPolicy");
    assert_eq!(r.create(strict()).status(), "SUCCESS");
    let held_all = |summary: &Value| checks_of(summary).values().all(|(v, _)| v == "held");

    // Held, and stronger than asked still holds; the pass only reads IAM.
    set_policy_directly(&w, &[("MinimumPasswordLength", "20"), ("MaxPasswordAge", "30")]);
    let before = w.operations("iam").len();
    let held = verify_pass(&w.host);
    assert_eq!(
        (held["resources"].as_u64(), held["drifted"].as_u64()),
        (Some(1), Some(0)),
        "{held}"
    );
    assert!(held_all(&held), "{held}");
    assert_eq!(
        checks_of(&held).len(),
        9,
        "the policy and the 8 fields strict() asks for: {held}"
    );
    let during = w.operations("iam")[before..].to_vec();
    assert_eq!(during, vec!["GetAccountPasswordPolicy"], "reads only");

    // Each field weakened by hand in turn: found, published, resolved once put back.
    let weaker = [
        ("MinimumPasswordLength", "10", "10"),
        ("RequireSymbols", "false", "false"),
        ("RequireNumbers", "false", "false"),
        ("RequireUppercaseCharacters", "false", "false"),
        ("RequireLowercaseCharacters", "false", "false"),
        ("AllowUsersToChangePassword", "false", "false"),
        ("MaxPasswordAge", "", "never expires"),
        ("PasswordReusePrevention", "5", "5"),
    ];
    for (field, value, observed) in weaker {
        let control = format!("IAM.PasswordPolicy.{field}");
        set_policy_directly(&w, &[(field, value)]);
        let drifted = verify_pass(&w.host);
        assert_eq!(drifted["drifted"].as_u64(), Some(1), "{field}: {drifted}");
        assert_eq!(
            checks_of(&drifted)[&control],
            ("drifted".to_string(), observed.to_string()),
            "{field}"
        );
        assert_eq!(drift_metric(&w.host, None, &control).last(), Some(&1.0), "{field}");
        assert_eq!(
            drift_findings(&w).get(&control),
            Some(&("FAILED".to_string(), "ACTIVE".to_string())),
            "{field}"
        );
        set_policy_directly(&w, &[]);
        let again = verify_pass(&w.host);
        assert_eq!(
            (again["drifted"].as_u64(), again["findings_archived"].as_u64()),
            (Some(0), Some(1)),
            "{again}"
        );
        assert_eq!(
            drift_findings(&w).get(&control),
            Some(&("PASSED".to_string(), "ARCHIVED".to_string())),
            "{field}"
        );
    }

    // No policy at all: every control drifts, and verify does not put it back.
    w.query("iam", &[("Action", "DeleteAccountPasswordPolicy")]);
    let gone = verify_pass(&w.host);
    assert_eq!(gone["drifted"].as_u64(), Some(9), "{gone}");
    assert_eq!(checks_of(&gone)["IAM.PasswordPolicy"].1, "no password policy");
    assert_eq!(policy(&w), None, "verify does not repair");

    // A denied read is unknown with its reason, never held.
    set_policy_directly(&w, &[]);
    w.fault(
        json!({"service": "iam", "operation": "GetAccountPasswordPolicy", "code": "AccessDenied",
        "message": "not authorized to perform iam:GetAccountPasswordPolicy"}),
    );
    let denied = verify_pass(&w.host);
    assert_eq!(
        (denied["drifted"].as_u64(), denied["unknown"].as_u64()),
        (Some(0), Some(9)),
        "{denied}"
    );
    assert!(
        checks_of(&denied)["IAM.PasswordPolicy"].1.contains("AccessDenied"),
        "{denied}"
    );
}

/// Makes this world's GetAccountPasswordPolicy answer its previous value for `reads` reads after each
/// write, as IAM's eventual consistency does (emulator/README.md).
fn stale_policy_reads(w: &World, reads: u32) {
    emulator().control(
        "/tapguard/consistency/behave",
        json!({"account": w.account.account_id, "stale_reads": reads, "reads": ["GetAccountPasswordPolicy"]}),
    );
}

/// The IAM operations of this world's account from the first UpdateAccountPasswordPolicy on.
fn iam_calls_from_the_update(w: &World) -> Vec<String> {
    let ops = w.operations("iam");
    let start = ops
        .iter()
        .position(|op| op == "UpdateAccountPasswordPolicy")
        .unwrap_or_else(|| panic!("no update: {ops:?}"));
    ops[start..].to_vec()
}

#[test]
fn a_policy_that_iam_shows_late_is_read_again_and_then_success() {
    let w = World::new(BINARY, REGION);
    stale_policy_reads(&w, 2);
    let mut r = w.resource(TYPE, "PasswordPolicy");
    let created = r.create(strict());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("MinimumPasswordLength"), Some("14"));
    assert_eq!(
        iam_calls_from_the_update(&w),
        vec![
            "UpdateAccountPasswordPolicy",
            "GetAccountPasswordPolicy",
            "GetAccountPasswordPolicy",
            "GetAccountPasswordPolicy"
        ],
        "two reads still answer NoSuchEntity, the third the new policy"
    );
    assert!(w.host.logs().contains("reading again"), "the repeated reads are logged");
    assert_eq!(policy(&w), strict_policy());
}

#[test]
fn a_policy_read_stale_past_the_bound_is_failed_naming_the_operation_and_undone() {
    let w = World::new(BINARY, REGION);
    stale_policy_reads(&w, 5);
    let mut r = w.resource(TYPE, "PasswordPolicy");
    let failed = r.create(strict());
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(
            "not verified: GetAccountPasswordPolicy answers NoSuchEntity: the account has no policy after 5 reads"
        ),
        "{}",
        failed.reason()
    );
    let reads = iam_calls_from_the_update(&w)[1..]
        .iter()
        .take_while(|op| *op == "GetAccountPasswordPolicy")
        .count();
    assert_eq!(
        reads, 6,
        "the bound, five reads, then the undo's own read before it deletes the policy"
    );
    // The failed Create was undone: no policy had been there, so none is.
    assert_eq!(policy(&w), None);
    let rolled_back = r.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    assert_eq!(claims(&w), 0);
}

#[test]
fn repair_drift_raises_a_weakened_policy_back_keeping_stronger_fields_only_for_its_sole_claimant() {
    let w = World::new(BINARY, REGION);
    let mut r = w.resource(TYPE, "PasswordPolicy");
    let mut asked = strict();
    asked["RepairDrift"] = json!("true");
    assert_eq!(r.create(asked.clone()).status(), "SUCCESS");

    // Weakened in one field and made stronger in another: the weak one is raised, the strong one stays.
    set_policy_directly(&w, &[("MinimumPasswordLength", "10"), ("MaxPasswordAge", "30")]);
    let before = w.operations("iam").len();
    let repaired = verify_pass(&w.host);
    assert_eq!(
        (repaired["drifted"].as_u64(), repaired["repaired"].as_u64()),
        (Some(1), Some(1)),
        "{repaired}"
    );
    let notes = repair_notes(&repaired, "PasswordPolicy");
    assert_eq!(notes.len(), 1, "{repaired}");
    assert!(
        notes[0].0 && notes[0].1.contains("MinimumPasswordLength 14 (not 10)"),
        "{notes:?}"
    );
    assert_eq!(
        mutating(&w.operations("iam")[before..]),
        ["UpdateAccountPasswordPolicy"]
    );
    let mut expected = strict_policy().unwrap();
    expected.insert("MaxPasswordAge".into(), "30".into());
    assert_eq!(policy(&w), Some(expected));
    assert!(
        w.host.logs().contains("drift repaired (RepairDrift)"),
        "the change is logged"
    );
    assert_eq!(verify_pass(&w.host)["drifted"].as_u64(), Some(0));

    // No policy at all: set again as asked.
    w.query("iam", &[("Action", "DeleteAccountPasswordPolicy")]);
    let gone = verify_pass(&w.host);
    assert_eq!(gone["repaired"].as_u64(), Some(1), "{gone}");
    assert_eq!(policy(&w), strict_policy());

    // An Update without RepairDrift takes it back: drift is then only reported.
    assert_eq!(r.update(strict()).status(), "SUCCESS");
    set_policy_directly(&w, &[("RequireSymbols", "false")]);
    let reported = verify_pass(&w.host);
    assert_eq!(
        (reported["drifted"].as_u64(), reported["repaired"].as_u64()),
        (Some(1), Some(0)),
        "{reported}"
    );
    assert!(repair_notes(&reported, "PasswordPolicy").is_empty(), "{reported}");
    assert_eq!(policy(&w).unwrap()["RequireSymbols"], "false");

    // Asked again, but another resource now claims the policy too: the drift cannot be attributed.
    assert_eq!(r.update(asked).status(), "SUCCESS");
    let mut other = w.resource(TYPE, "PasswordPolicyRenamed");
    assert_eq!(other.create(strict()).status(), "SUCCESS");
    set_policy_directly(&w, &[("RequireSymbols", "false")]);
    let before = w.operations("iam").len();
    let shared = verify_pass(&w.host);
    assert_eq!(shared["repaired"].as_u64(), Some(0), "{shared}");
    let notes = repair_notes(&shared, "PasswordPolicy");
    assert!(
        notes.len() == 1
            && notes[0]
                .1
                .starts_with("not repaired: also claimed by PasswordPolicyRenamed in stack tap-test"),
        "{notes:?}"
    );
    assert!(mutating(&w.operations("iam")[before..]).is_empty());
    assert_eq!(policy(&w).unwrap()["RequireSymbols"], "false", "left as it is");
}
