//! The verify pass over a ledger in the in-memory Parameter Store, and what it publishes.

use super::*;
use crate::ssm::memory::MemoryStore;
use serde_json::json;

const STACK: &str = "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1";

/// A verifier that reports the claimed value as observed, held when it is `"on"`; its repairs are
/// only written down.
struct Fake {
    ledger: Ledger,
    repaired: std::sync::Mutex<Vec<String>>,
}

impl Fake {
    fn new(ledger: Ledger) -> Self {
        Fake {
            ledger,
            repaired: Default::default(),
        }
    }
}

impl Verifier for Fake {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, _inv: &Invocation, setting: &str, wants: &Value) -> Vec<ControlCheck> {
        vec![ControlCheck::compare(setting, wants == "on", "on", wants)]
    }

    async fn repair(
        &self,
        _inv: &Invocation,
        setting: &str,
        wants: &Value,
        drifted: &[ControlCheck],
    ) -> Result<Vec<String>, HandlerError> {
        self.repaired.lock().unwrap().push(format!("{setting}={wants}"));
        Ok(drifted.iter().map(|c| format!("{} put back", c.control)).collect())
    }
}

/// A verifier that does not implement `repair`: the default must repair nothing.
struct NoRepair {
    ledger: Ledger,
}

impl Verifier for NoRepair {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn check(&self, _inv: &Invocation, setting: &str, _wants: &Value) -> Vec<ControlCheck> {
        vec![ControlCheck::compare(setting, false, "on", "off")]
    }
}

fn parameter(name: &str, value: Value) -> (String, Value) {
    (name.to_string(), value)
}

fn ledger_with(records: Vec<(String, Value)>, claims: Vec<(String, Value)>) -> Ledger {
    // Records live under /tapguard/ledger/<handler>, claims under /tapguard/claims/<setting>.
    let store = MemoryStore::new();
    for (name, value) in records.into_iter().chain(claims) {
        store.insert(&name, value.to_string());
    }
    Ledger::from_client(store.client(), "fake")
}

fn record(settings: &[&str]) -> Value {
    json!({"v": 1, "handler": "fake", "stack_id": STACK, "logical_id": "Thing", "region": "eu-west-1",
        "settings": settings, "state": null})
}

/// A record of a resource created with `RepairDrift: true`.
fn repairing_record(settings: &[&str]) -> Value {
    let mut r = record(settings);
    r["repair_drift"] = json!(true);
    r
}

fn claim(key: &str, wants: &str) -> Value {
    json!({"v": 1, "claimant": {"key": key, "handler": "fake", "stack_id": STACK, "logical_id": "Thing"},
        "wants": wants, "prior": null, "since": 1})
}

#[tokio::test]
async fn each_claimed_setting_is_checked_against_this_resources_own_claim() {
    let ledger = ledger_with(
        vec![parameter("/tapguard/ledger/fake/k1", record(&["x/a"]))],
        vec![
            parameter("/tapguard/claims/x/a/k0", claim("k0", "on")),
            parameter("/tapguard/claims/x/a/k1", claim("k1", "off")),
        ],
    );
    let reports = pass(&Fake::new(ledger), &Invocation::detached("eu-west-1", "111122223333"))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].key, "k1");
    assert_eq!(reports[0].logical_id, "Thing");
    assert_eq!(
        reports[0].checks,
        vec![ControlCheck::compare("x/a", false, "on", "\"off\"")],
        "k1's own claim (off) is what is checked, not k0's"
    );
    assert_eq!(summary(&reports)["drifted"], 1);
}

#[tokio::test]
async fn a_claim_missing_from_the_ledger_is_unknown_never_held() {
    let ledger = ledger_with(vec![parameter("/tapguard/ledger/fake/k1", record(&["x/a"]))], vec![]);
    let reports = pass(&Fake::new(ledger), &Invocation::detached("eu-west-1", "111122223333"))
        .await
        .unwrap();
    assert_eq!(reports[0].checks[0].verdict, Verdict::Unknown);
    assert_eq!(summary(&reports)["unknown"], 1);
}

#[tokio::test]
async fn a_global_ledger_record_is_verified_only_in_its_own_region_and_one_claiming_nothing_not_at_all() {
    let mut elsewhere = record(&["x/b"]);
    elsewhere["region"] = json!("us-east-1");
    let ledger = ledger_with(
        vec![
            parameter("/tapguard/ledger/fake/k1", record(&["x/a"])),
            parameter("/tapguard/ledger/fake/k2", elsewhere),
            parameter("/tapguard/ledger/fake/cursor", record(&[])),
        ],
        vec![parameter("/tapguard/claims/x/a/k1", claim("k1", "on"))],
    );
    let reports = pass(&Fake::new(ledger), &Invocation::detached("eu-west-1", "111122223333"))
        .await
        .unwrap();
    let keys: Vec<&str> = reports.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["k1"],
        "k2 is verified in us-east-1, the cursor claims nothing"
    );
}

#[test]
fn metrics_are_emf_lines_one_per_known_control_and_the_handler_totals() {
    let report = ResourceReport {
        handler: "fake".into(),
        stack_id: STACK.into(),
        logical_id: "Thing".into(),
        key: "k1".into(),
        region: "eu-west-1".into(),
        repairs: vec![],
        checks: vec![
            ControlCheck::compare("A", false, "on", "off"),
            ControlCheck::compare("B", true, "on", "on"),
            ControlCheck::unknown("C", "on", "AccessDenied"),
        ],
    };
    let lines: Vec<Value> = publish::metric_lines("fake", &[report], 1_700_000_000_000)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "A, B, and the two totals; C is unknown: {lines:?}");
    assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "tapguard");
    assert_eq!(
        lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Control", "Stack", "Resource"]])
    );
    assert_eq!(
        (&lines[0]["Control"], &lines[0]["ControlDrifted"]),
        (&json!("A"), &json!(1))
    );
    assert_eq!(
        (&lines[1]["Stack"], &lines[1]["ControlDrifted"]),
        (&json!("TapStack"), &json!(0))
    );
    assert_eq!(
        (&lines[2]["Handler"], &lines[2]["ControlsDrifted"]),
        (&json!("fake"), &json!(1))
    );
    assert_eq!(lines[3]["ControlsUnknown"], 1);
}

fn inv() -> Invocation {
    Invocation::detached("eu-west-1", "111122223333")
}

#[tokio::test]
async fn a_repairing_pass_puts_back_the_drift_of_a_sole_claimant_that_asked_for_it() {
    let ledger = ledger_with(
        vec![parameter("/tapguard/ledger/fake/k1", repairing_record(&["x/a"]))],
        vec![parameter("/tapguard/claims/x/a/k1", claim("k1", "off"))],
    );
    let fake = Fake::new(ledger);
    let reports = repairing_pass(&fake, &inv()).await.unwrap();
    assert_eq!(*fake.repaired.lock().unwrap(), vec!["x/a=\"off\"".to_string()]);
    assert_eq!(
        reports[0].repairs,
        vec![RepairNote {
            setting: "x/a".into(),
            repaired: true,
            detail: "x/a put back".into()
        }]
    );
    // The drift that was found stays reported (the alarm still hears of it), with what was done.
    assert_eq!(reports[0].checks[0].verdict, Verdict::Drifted);
    assert_eq!(
        (
            summary(&reports)["drifted"].as_u64(),
            summary(&reports)["repaired"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let lines = publish::metric_lines("fake", &reports, 1);
    assert!(lines.iter().any(|l| l.contains("\"ControlsRepaired\":1")), "{lines:?}");
}

#[tokio::test]
async fn drift_of_a_setting_someone_else_also_claims_is_never_repaired() {
    let ledger = ledger_with(
        vec![parameter("/tapguard/ledger/fake/k1", repairing_record(&["x/a"]))],
        vec![
            parameter("/tapguard/claims/x/a/k0", claim("k0", "off")),
            parameter("/tapguard/claims/x/a/k1", claim("k1", "off")),
        ],
    );
    let fake = Fake::new(ledger);
    let reports = repairing_pass(&fake, &inv()).await.unwrap();
    assert!(fake.repaired.lock().unwrap().is_empty());
    let note = &reports[0].repairs[0];
    assert!(!note.repaired);
    assert!(
        note.detail
            .starts_with("not repaired: also claimed by Thing in stack TapStack (fake)"),
        "{}",
        note.detail
    );
}

#[tokio::test]
async fn only_a_repairing_pass_of_a_resource_that_asked_repairs() {
    let asked = || {
        ledger_with(
            vec![parameter("/tapguard/ledger/fake/k1", repairing_record(&["x/a"]))],
            vec![parameter("/tapguard/claims/x/a/k1", claim("k1", "off"))],
        )
    };
    // The read-only pass (`tapguard verify`) never repairs, even when the resource asked.
    let fake = Fake::new(asked());
    let reports = pass(&fake, &inv()).await.unwrap();
    assert!(fake.repaired.lock().unwrap().is_empty() && reports[0].repairs.is_empty());

    // A resource that did not ask (RepairDrift false, or a record older than it) is left as it is.
    let fake = Fake::new(ledger_with(
        vec![parameter("/tapguard/ledger/fake/k1", record(&["x/a"]))],
        vec![parameter("/tapguard/claims/x/a/k1", claim("k1", "off"))],
    ));
    let reports = repairing_pass(&fake, &inv()).await.unwrap();
    assert!(fake.repaired.lock().unwrap().is_empty() && reports[0].repairs.is_empty());

    // A handler without its own `repair` changes nothing and says so.
    let reports = repairing_pass(&NoRepair { ledger: asked() }, &inv()).await.unwrap();
    assert_eq!(
        (reports[0].repairs[0].repaired, reports[0].repairs[0].detail.as_str()),
        (false, "the repair changed nothing (this handler may not repair)")
    );
}
