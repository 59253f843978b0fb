//! Custom::SecurityHubEnable and Custom::SecurityHubStandards: the real binaries under the Lambda Runtime
//! API, against the emulator, both in the same account as they are in TapStack.

use serde_json::{json, Value};
use tapguard_tests::*;

const ENABLE_BINARY: &str = "securityhub-enable";
const STANDARDS_BINARY: &str = "securityhub-standards";
const ENABLE_TYPE: &str = "Custom::SecurityHubEnable";
const STANDARDS_TYPE: &str = "Custom::SecurityHubStandards";
const REGION: &str = "eu-west-1";

const FSBP: &str = "aws-foundational-security-best-practices/v/1.0.0";
const CIS_12: &str = "cis-aws-foundations-benchmark/v/1.2.0";
const CIS_14: &str = "cis-aws-foundations-benchmark/v/1.4.0";
const PCI: &str = "pci-dss/v/3.2.1";

/// The hub handler's world, plus the standards handler running in the same account.
struct Stack {
    world: World,
    standards_host: LambdaHost,
}

impl Stack {
    fn new() -> Stack {
        let world = World::new(ENABLE_BINARY, REGION);
        let standards_host = LambdaHost::start(
            &binary_path(STANDARDS_BINARY),
            &emulator().sdk_env(&world.account, REGION),
        );
        Stack { world, standards_host }
    }

    fn hub_resource(&self) -> CustomResourceDriver<'_> {
        self.world.resource(ENABLE_TYPE, "SecurityHub")
    }

    fn standards_resource(&self) -> CustomResourceDriver<'_> {
        CustomResourceDriver::new(
            &self.standards_host,
            &self.world.responses,
            STANDARDS_TYPE,
            "SecurityHubStandards",
            &self.world.stack_id(),
        )
    }

    fn named_hub(&self, logical_id: &str) -> CustomResourceDriver<'_> {
        self.world.resource(ENABLE_TYPE, logical_id)
    }

    fn named_standards(&self, logical_id: &str) -> CustomResourceDriver<'_> {
        CustomResourceDriver::new(
            &self.standards_host,
            &self.world.responses,
            STANDARDS_TYPE,
            logical_id,
            &self.world.stack_id(),
        )
    }

    fn account_id(&self) -> &str {
        &self.world.account.account_id
    }
}

/// DescribeHub as the emulator answers it now; None when the account is not subscribed.
fn hub(w: &World) -> Option<Value> {
    let answer = w.rest_call("securityhub", "GET", "/accounts", None);
    if answer.get("HubArn").is_some() {
        Some(answer)
    } else {
        assert_eq!(answer["__type"], "InvalidAccessException", "{answer}");
        None
    }
}

/// Standard id -> status, from GetEnabledStandards. Each read moves PENDING and DELETING along, as in AWS.
fn standards(w: &World) -> Vec<(String, String)> {
    let answer = w.rest_call("securityhub", "POST", "/standards/get", Some(json!({})));
    answer["StandardsSubscriptions"]
        .as_array()
        .unwrap_or_else(|| panic!("GetEnabledStandards: {answer}"))
        .iter()
        .map(|s| {
            let arn = s["StandardsSubscriptionArn"].as_str().unwrap_or_default();
            let id = arn.split_once(":subscription/").map(|(_, id)| id).unwrap_or(arn);
            (
                id.to_string(),
                s["StandardsStatus"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The standards still subscribed once the ones being disabled are gone.
fn settled_standards(w: &World) -> Vec<(String, String)> {
    for _ in 0..5 {
        let now = standards(w);
        if now
            .iter()
            .all(|(_, status)| status != "DELETING" && status != "PENDING")
        {
            return now;
        }
    }
    panic!("standards did not settle: {:?}", standards(w))
}

fn ids(pairs: &[(String, String)]) -> Vec<&str> {
    let mut ids: Vec<&str> = pairs.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    ids
}

/// The hub's tags, from ListTagsForResource.
fn hub_tags(w: &World) -> Value {
    let arn = format!("arn:aws:securityhub:{REGION}:{}:hub/default", w.account.account_id);
    w.rest_call("securityhub", "GET", &format!("/tags/{arn}"), None)["Tags"].clone()
}

fn enable_hub_directly(w: &World, generator: &str) {
    let answer = w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false, "ControlFindingGenerator": generator})),
    );
    assert!(answer.get("__type").is_none(), "{answer}");
}

fn enable_standard_directly(w: &World, arn: &str) {
    let answer = w.rest_call(
        "securityhub",
        "POST",
        "/standards/register",
        Some(json!({"StandardsSubscriptionRequests": [{"StandardsArn": arn}]})),
    );
    assert!(answer.get("__type").is_none(), "{answer}");
}

fn standard_outcome(s: &Stack, standard: &str, status: &str, reason: Option<&str>) {
    emulator().control(
        "/tapguard/securityhub/standard-outcome",
        json!({"account": s.account_id(), "region": REGION, "standard": standard, "status": status, "reason": reason}),
    );
}

fn count(operations: &[String], name: &str) -> usize {
    operations.iter().filter(|op| *op == name).count()
}

/// The names of every parameter the ownership ledger holds in this world's account and region.
fn ledger_parameters(w: &World) -> Vec<String> {
    ledger_parameters_of(&w.account, &w.region)
}

/// Someone deletes the whole ledger.
fn delete_ledger(w: &World) {
    let names = ledger_parameters(w);
    if !names.is_empty() {
        w.json_call("ssm", "AmazonSSM.DeleteParameters", json!({ "Names": names }));
    }
    assert!(ledger_parameters(w).is_empty());
}

/// (ControlFindingGenerator, AutoEnableControls) of the hub now.
fn hub_settings(w: &World) -> (String, bool) {
    let described = hub(w).expect("the hub is on");
    (
        described["ControlFindingGenerator"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        described["AutoEnableControls"].as_bool().unwrap_or_default(),
    )
}

fn set_hub_tags(w: &World, tags: Value) {
    let arn = format!("arn:aws:securityhub:{REGION}:{}:hub/default", w.account.account_id);
    let answer = w.rest_call(
        "securityhub",
        "POST",
        &format!("/tags/{arn}"),
        Some(json!({ "Tags": tags })),
    );
    assert!(answer.get("__type").is_none(), "{answer}");
}

fn from_fixture(name: &str, w: &World) -> Value {
    let mut event = fixture(name);
    event["StackId"] = json!(w.stack_id());
    event
}

#[test]
fn fresh_enable_reads_back_updates_settings_and_delete_turns_it_off() {
    let s = Stack::new();
    let w = &s.world;
    assert!(hub(w).is_none(), "a fresh account has no hub");
    let mut r = s.hub_resource();

    let created = r.send(from_fixture("securityhub-enable-create.json", w));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let hub_arn = format!("arn:aws:securityhub:{REGION}:{}:hub/default", s.account_id());
    assert_eq!(created.data("HubArn"), Some(hub_arn.as_str()));
    assert_eq!(created.data("Adopted"), Some("false"));
    assert_eq!(created.data("ManagedBy"), Some("Self"));
    assert_eq!(created.data("ControlFindingGenerator"), Some("SECURITY_CONTROL"));
    assert_eq!(created.data("AutoEnableControls"), Some("true"));
    assert_eq!(created.data("SettingsNotApplied"), Some(""));
    assert!(created.data("SubscribedAt").is_some_and(|t| !t.is_empty()));
    assert!(
        created
            .physical_id()
            .starts_with("securityhub-enable:eu-west-1:ledger-"),
        "{}",
        created.physical_id()
    );
    let described = hub(w).expect("the hub is on");
    assert_eq!(described["HubArn"], hub_arn.as_str());
    assert_eq!(hub_tags(w), json!({"tapguard:stack": "TapStack"}));
    assert!(
        standards(w).is_empty(),
        "EnableDefaultStandards false: no standard subscribed"
    );
    r.physical_id = Some(created.physical_id().to_string());
    r.properties = created.event["ResourceProperties"].clone();

    // No-op Update: reads only.
    let before = w.operations("securityhub").len();
    let noop = r.update(r.properties.clone());
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    assert_eq!(noop.physical_id(), created.physical_id());
    let during = w.operations("securityhub")[before..].to_vec();
    assert!(
        mutating(&during).is_empty(),
        "a no-op Update changed something: {during:?}"
    );
    assert!(during.contains(&"DescribeHub".to_string()), "{during:?}");

    // Settings change: applied with UpdateSecurityHubConfiguration and read back.
    let mut changed_props = r.properties.clone();
    changed_props["AutoEnableControls"] = json!("false");
    changed_props["ControlFindingGenerator"] = json!("STANDARD_CONTROL");
    changed_props["Tags"] = json!({"owner": "security"});
    let changed = r.update(changed_props);
    assert_eq!(changed.status(), "SUCCESS", "{}", changed.reason());
    assert_eq!(changed.data("AutoEnableControls"), Some("false"));
    assert_eq!(changed.data("ControlFindingGenerator"), Some("STANDARD_CONTROL"));
    let described = hub(w).expect("the hub is on");
    assert_eq!(described["AutoEnableControls"], false);
    assert_eq!(described["ControlFindingGenerator"], "STANDARD_CONTROL");
    assert_eq!(
        hub_tags(w),
        json!({"owner": "security"}),
        "the dropped tag this resource set is removed"
    );

    // Delete: this resource enabled the hub, so it turns it off.
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(hub(w).is_none(), "the hub this resource enabled is off");
    assert_eq!(count(&w.operations("securityhub"), "DisableSecurityHub"), 1);
}

#[test]
fn adopting_an_enabled_hub_applies_settings_lists_the_rest_and_delete_leaves_it_on() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "STANDARD_CONTROL");
    let mut r = s.hub_resource();
    let created = r.create(json!({"Tags": {"owner": "security"}}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Adopted"), Some("true"));
    assert_eq!(created.data("ManagedBy"), Some("Self"));
    assert_eq!(created.data("ControlFindingGenerator"), Some("SECURITY_CONTROL"));
    assert_eq!(created.data("SettingsNotApplied"), Some(""));
    assert_eq!(hub(w).expect("on")["ControlFindingGenerator"], "SECURITY_CONTROL");
    assert_eq!(hub_tags(w), json!({"owner": "security"}));
    let ops = w.operations("securityhub");
    assert_eq!(count(&ops, "EnableSecurityHub"), 0, "{ops:?}");
    assert_eq!(count(&ops, "UpdateSecurityHubConfiguration"), 1, "{ops:?}");
    assert_eq!(count(&ops, "TagResource"), 1, "{ops:?}");

    // EnableDefaultStandards is taken only when the hub is enabled: on an adopted hub it is listed.
    r.physical_id = Some(created.physical_id().to_string());
    let listed = r.update(json!({"Tags": {"owner": "security"}, "EnableDefaultStandards": true}));
    assert_eq!(listed.status(), "SUCCESS", "{}", listed.reason());
    assert_eq!(listed.data("SettingsNotApplied"), Some("EnableDefaultStandards"));
    assert!(standards(w).is_empty());

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(hub(w).is_some(), "an adopted hub stays on");
    assert_eq!(count(&w.operations("securityhub"), "DisableSecurityHub"), 0);
}

#[test]
fn enable_default_standards_subscribes_fsbp_and_cis_1_2_0() {
    let s = Stack::new();
    let w = &s.world;
    let mut r = s.hub_resource();
    let created = r.create(json!({"EnableDefaultStandards": "true"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(ids(&standards(w)), vec![FSBP, CIS_12]);
}

#[test]
fn a_hub_managed_by_a_configuration_policy_is_reported_not_changed() {
    let s = Stack::new();
    let w = &s.world;
    emulator().control(
        "/tapguard/securityhub/central-configuration",
        json!({"account": s.account_id(), "region": REGION, "administrator": "999988887777"}),
    );
    let mut r = s.hub_resource();
    let created = r.create(json!({"ControlFindingGenerator": "STANDARD_CONTROL"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Adopted"), Some("true"));
    assert_eq!(created.data("ManagedBy"), Some("ConfigurationPolicy"));
    assert_eq!(created.data("SettingsNotApplied"), Some("ControlFindingGenerator"));
    assert_eq!(
        created.data("ControlFindingGenerator"),
        Some("SECURITY_CONTROL"),
        "Data tells what is, not what was asked"
    );

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(hub(w).is_some());
    assert_eq!(count(&w.operations("securityhub"), "DisableSecurityHub"), 0);
}

#[test]
fn an_administrator_account_is_named_and_settings_it_governs_are_listed() {
    let s = Stack::new();
    let w = &s.world;
    emulator().control(
        "/tapguard/securityhub/central-configuration",
        json!({"account": s.account_id(), "region": REGION, "administrator": "999988887777", "policy": false}),
    );
    let mut r = s.hub_resource();
    let created = r.create(json!({"ControlFindingGenerator": "STANDARD_CONTROL", "AutoEnableControls": false}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("ManagedBy"), Some("Administrator:999988887777"));
    assert_eq!(created.data("SettingsNotApplied"), Some("ControlFindingGenerator"));
    assert_eq!(
        created.data("AutoEnableControls"),
        Some("false"),
        "the member may set this one"
    );
    assert_eq!(hub(w).expect("on")["AutoEnableControls"], false);

    // The member resigned: GetAdministratorAccount still names the administrator, but it governs nothing.
    emulator().control(
        "/tapguard/securityhub/central-configuration",
        json!({"account": s.account_id(), "region": REGION, "administrator": "999988887777", "policy": false,
            "member_status": "Resigned"}),
    );
    r.physical_id = Some(created.physical_id().to_string());
    let updated = r.update(json!({"ControlFindingGenerator": "STANDARD_CONTROL", "AutoEnableControls": false}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.data("ManagedBy"), Some("Self"));
    assert_eq!(updated.data("SettingsNotApplied"), Some(""));
    assert_eq!(hub(w).expect("on")["ControlFindingGenerator"], "STANDARD_CONTROL");
}

#[test]
fn a_configuration_policy_with_the_hub_off_is_failed_and_the_delete_after_touches_nothing() {
    let s = Stack::new();
    let w = &s.world;
    emulator().control(
        "/tapguard/securityhub/central-configuration",
        json!({"account": s.account_id(), "region": REGION, "administrator": "999988887777", "enable": false}),
    );
    let mut r = s.hub_resource();
    let failed = r.create(json!({}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("EnableSecurityHub failed: AccessDeniedException: Account"),
        "{reason}"
    );
    assert!(reason.contains("is managed by a configuration policy"), "{reason}");
    assert!(reason.contains("ask the delegated administrator"), "{reason}");
    assert!(hub(w).is_none());

    let before = w.operations("securityhub").len();
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(
        w.operations("securityhub").len(),
        before,
        "nothing to undo after a failed Create"
    );
}

#[test]
fn access_denied_on_enable_is_failed_with_the_action_to_grant() {
    let s = Stack::new();
    let w = &s.world;
    w.fault(
        json!({"service": "securityhub", "operation": "EnableSecurityHub", "code": "AccessDeniedException",
        "message": "User is not authorized to perform: securityhub:EnableSecurityHub", "status": 403}),
    );
    let mut r = s.hub_resource();
    let failed = r.create(json!({}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("EnableSecurityHub failed: AccessDeniedException: User is not authorized"),
        "{}",
        failed.reason()
    );
    assert!(
        failed.reason().contains("securityhub:EnableSecurityHub was denied"),
        "{}",
        failed.reason()
    );
    assert!(hub(w).is_none());
}

#[test]
fn standards_go_pending_then_ready_update_adds_and_removes_and_delete_disables_them() {
    let s = Stack::new();
    let w = &s.world;
    let mut hub_r = s.hub_resource();
    assert_eq!(hub_r.create(json!({})).status(), "SUCCESS");

    let mut r = s.standards_resource();
    let created = r.send(from_fixture("securityhub-standards-create.json", w));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    r.physical_id = Some(created.physical_id().to_string());
    r.properties = created.event["ResourceProperties"].clone();
    let account = s.account_id();
    assert_eq!(
        created.data("EnabledStandards"),
        Some(format!("arn:aws:securityhub:{REGION}::standards/{FSBP},arn:aws:securityhub:::ruleset/{CIS_12}").as_str())
    );
    assert_eq!(
        created.data("SubscriptionArns"),
        Some(
            format!(
                "arn:aws:securityhub:{REGION}:{account}:subscription/{FSBP},\
                 arn:aws:securityhub:{REGION}:{account}:subscription/{CIS_12}"
            )
            .as_str()
        )
    );
    assert_eq!(
        created.data("Statuses"),
        Some(format!("{FSBP}=READY,{CIS_12}=READY").as_str())
    );
    assert_eq!(created.data("Adopted"), Some(""));
    let ops = w.operations("securityhub");
    assert_eq!(count(&ops, "BatchEnableStandards"), 2, "{ops:?}");
    assert!(
        count(&ops, "GetEnabledStandards") >= 3,
        "the subscriptions were PENDING and were polled until READY: {ops:?}"
    );
    assert_eq!(
        standards(w),
        vec![
            (FSBP.to_string(), "READY".to_string()),
            (CIS_12.to_string(), "READY".to_string())
        ]
    );

    // No-op Update: reads only.
    let before = w.operations("securityhub").len();
    let noop = r.update(r.properties.clone());
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    let during = w.operations("securityhub")[before..].to_vec();
    assert!(
        mutating(&during).is_empty(),
        "a no-op Update changed something: {during:?}"
    );

    // Update: CIS v1.2.0 out, PCI DSS in.
    let updated = r.update(json!({"Standards": [FSBP, PCI]}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.physical_id(), created.physical_id(), "never a replacement");
    assert_eq!(
        updated.data("Statuses"),
        Some(format!("{FSBP}=READY,{PCI}=READY").as_str())
    );
    assert_eq!(ids(&settled_standards(w)), vec![FSBP, PCI]);

    // Delete, standards first as CloudFormation does with DependsOn: all gone, then the hub.
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(settled_standards(w).is_empty());
    assert_eq!(hub_r.delete().status(), "SUCCESS");
    assert!(hub(w).is_none());
}

#[test]
fn delete_leaves_adopted_standards_and_the_adopted_hub_on() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    enable_standard_directly(w, &format!("arn:aws:securityhub:{REGION}::standards/{FSBP}"));
    let mut hub_r = s.hub_resource();
    assert_eq!(hub_r.create(json!({})).data("Adopted"), Some("true"));

    let mut r = s.standards_resource();
    let created = r.create(json!({"Standards": [FSBP, format!("arn:aws:securityhub:{REGION}::standards/{CIS_14}")]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(
        created.data("Adopted"),
        Some(format!("arn:aws:securityhub:{REGION}::standards/{FSBP}").as_str())
    );
    assert!(
        created
            .physical_id()
            .starts_with(&format!("securityhub-standards:{REGION}:ledger-")),
        "{}",
        created.physical_id()
    );
    assert_eq!(count(&w.operations("securityhub"), "BatchEnableStandards"), 1);

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(
        settled_standards(w),
        vec![(FSBP.to_string(), "READY".to_string())],
        "the adopted standard stays, the one this resource enabled is gone"
    );
    assert_eq!(hub_r.delete().status(), "SUCCESS");
    assert!(hub(w).is_some(), "the adopted hub stays on");
}

#[test]
fn a_standard_that_goes_incomplete_fails_with_its_reason_and_is_disabled_again() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    standard_outcome(&s, CIS_14, "INCOMPLETE", Some("NO_AVAILABLE_CONFIGURATION_RECORDER"));
    let mut r = s.standards_resource();
    let failed = r.create(json!({"Standards": [FSBP, CIS_14]}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with(&format!(
            "standard {CIS_14} is INCOMPLETE in {}/{REGION} (StandardsStatusReason NO_AVAILABLE_CONFIGURATION_RECORDER): \
             turn on AWS Config first",
            s.account_id()
        )),
        "{reason}"
    );
    assert!(
        reason.contains(&format!(
            "disabled again what this request had enabled: {FSBP}, {CIS_14}"
        )),
        "{reason}"
    );
    assert!(failed.physical_id().starts_with("tapguard-failed-create:"));
    assert_eq!(count(&w.operations("securityhub"), "BatchDisableStandards"), 1);
    assert!(
        settled_standards(w).is_empty(),
        "what the failed Create enabled is gone"
    );

    // CloudFormation then deletes the failed resource: SUCCESS without any Security Hub call.
    let before = w.operations("securityhub").len();
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(w.operations("securityhub").len(), before);
}

#[test]
fn still_pending_after_wait_seconds_is_failed_naming_the_standard_and_the_wait() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    standard_outcome(&s, PCI, "PENDING", None);
    let mut r = s.standards_resource();
    let failed = r.create(json!({"Standards": [PCI], "WaitSeconds": "2"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with(&format!("{PCI} still PENDING after waiting 2 s for READY")),
        "{}",
        failed.reason()
    );
    assert!(failed.reason().contains("raise WaitSeconds"), "{}", failed.reason());
    assert!(
        settled_standards(w).is_empty(),
        "the PENDING standard was disabled again"
    );
}

#[test]
fn a_rejected_standard_disables_the_one_enabled_before_it() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    standard_outcome(&s, CIS_14, "REJECTED", None);
    let mut r = s.standards_resource();
    let failed = r.create(json!({"Standards": [FSBP, CIS_14]}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("BatchEnableStandards failed: InvalidInputException: "),
        "{reason}"
    );
    assert!(reason.contains(&format!("(enabling {CIS_14})")), "{reason}");
    assert!(
        reason.contains(&format!("disabled again what this request had enabled: {FSBP}")),
        "{reason}"
    );
    assert!(settled_standards(w).is_empty());
}

#[test]
fn standards_without_the_hub_fail_with_the_remedy() {
    let s = Stack::new();
    let w = &s.world;
    let mut r = s.standards_resource();
    let failed = r.create(json!({"Standards": [FSBP]}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(&format!(
            "Security Hub is not enabled in {}/{REGION}: add a Custom::SecurityHubEnable and DependsOn it",
            s.account_id()
        )),
        "{}",
        failed.reason()
    );
    assert!(mutating(&w.operations("securityhub")).is_empty());
}

#[test]
fn an_unknown_standard_is_an_invalid_property_before_any_change() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    let mut r = s.standards_resource();
    let failed = r.create(json!({"Standards": [FSBP, "cis-aws-foundations-benchmark/v/9.9.9"]}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("invalid property Standards[1]: cis-aws-foundations-benchmark/v/9.9.9"),
        "{}",
        failed.reason()
    );
    assert!(mutating(&w.operations("securityhub")).is_empty());
}

#[test]
fn under_a_configuration_policy_standards_already_on_are_adopted_and_others_fail_with_where_to_change_them() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    enable_standard_directly(w, &format!("arn:aws:securityhub:{REGION}::standards/{FSBP}"));
    emulator().control(
        "/tapguard/securityhub/central-configuration",
        json!({"account": s.account_id(), "region": REGION, "administrator": "999988887777"}),
    );

    let mut r = s.standards_resource();
    let created = r.create(json!({"Standards": [FSBP]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(
        created.data("Adopted"),
        Some(format!("arn:aws:securityhub:{REGION}::standards/{FSBP}").as_str())
    );
    assert_eq!(r.delete().status(), "SUCCESS");
    assert_eq!(settled_standards(w), vec![(FSBP.to_string(), "READY".to_string())]);

    let mut more = s.standards_resource();
    let failed = more.create(json!({"Standards": [FSBP, CIS_14]}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("BatchEnableStandards failed: AccessDeniedException: Account"),
        "{reason}"
    );
    assert!(
        reason.contains("delegated administrator's configuration policy"),
        "{reason}"
    );
    assert_eq!(settled_standards(w), vec![(FSBP.to_string(), "READY".to_string())]);
    assert_eq!(count(&w.operations("securityhub"), "BatchDisableStandards"), 0);
}

/// (status, reason) of the controls of `standard` (by subscription), from DescribeStandardsControls.
fn control_status(w: &World, standard: &str, control: &str) -> (String, Option<String>) {
    let subscription = format!(
        "arn:aws:securityhub:{REGION}:{}:subscription/{standard}",
        w.account.account_id
    );
    let answer = w.rest_call(
        "securityhub",
        "GET",
        &format!("/standards/controls/{subscription}"),
        None,
    );
    let wanted = format!(
        "arn:aws:securityhub:{REGION}:{}:control/{standard}/{control}",
        w.account.account_id
    );
    let found = answer["Controls"]
        .as_array()
        .unwrap_or_else(|| panic!("DescribeStandardsControls: {answer}"))
        .iter()
        .find(|c| c["StandardsControlArn"] == wanted.as_str())
        .unwrap_or_else(|| panic!("{wanted} not in {answer}"));
    (
        found["ControlStatus"].as_str().unwrap_or_default().to_string(),
        found["DisabledReason"].as_str().map(str::to_string),
    )
}

#[test]
fn disabled_controls_are_turned_off_read_back_and_turned_on_again_only_where_this_resource_did_it() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    enable_standard_directly(w, &format!("arn:aws:securityhub:{REGION}::standards/{FSBP}"));
    settled_standards(w);
    let account = s.account_id();
    // IAM.2 was off before the stack: adopted, it stays off.
    let iam2 = format!("arn:aws:securityhub:{REGION}:{account}:control/{FSBP}/IAM.2");
    let answer = w.rest_call(
        "securityhub",
        "PATCH",
        &format!("/standards/control/{iam2}"),
        Some(json!({"ControlStatus": "DISABLED", "DisabledReason": "decided before the stack"})),
    );
    assert!(answer.get("__type").is_none(), "{answer}");

    let mut r = s.standards_resource();
    let created = r.create(json!({
        "Standards": [FSBP, CIS_12],
        "DisabledControls": [
            {"ControlId": "IAM.4", "Reason": "root keys are audited by AccessKeyRotation"},
            {"StandardsControlArn": iam2, "Reason": "break-glass users"},
            {"StandardsControlArn": format!("arn:aws:securityhub:{REGION}:{account}:control/{CIS_12}/1.1"), "Reason": "no CloudWatch alarms here"}
        ]
    }));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(
        created.data("DisabledControls"),
        Some(format!("{FSBP}#IAM.2,{FSBP}#IAM.4,{CIS_12}#1.1,{CIS_12}#IAM.4").as_str())
    );
    let held = ledger_parameters(w);
    assert!(
        held.iter()
            .any(|n| n.starts_with("/tapguard/claims/securityhub-standards/control/") && n.contains("IAM.2")),
        "the control that was off before is claimed too, with that prior: {held:?}"
    );
    assert_eq!(
        control_status(w, FSBP, "IAM.4"),
        (
            "DISABLED".into(),
            Some("root keys are audited by AccessKeyRotation".into())
        )
    );
    assert_eq!(
        control_status(w, CIS_12, "1.12").0,
        "DISABLED",
        "IAM.4 is CIS v1.2.0's 1.12"
    );
    assert_eq!(control_status(w, CIS_12, "1.1").0, "DISABLED");

    // Update: the CIS 1.1 entry goes; that control is turned back on, the others stay off.
    let updated = r.update(json!({
        "Standards": [FSBP, CIS_12],
        "DisabledControls": [
            {"ControlId": "IAM.4", "Reason": "root keys are audited by AccessKeyRotation"},
            {"StandardsControlArn": iam2, "Reason": "break-glass users"}
        ]
    }));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(control_status(w, CIS_12, "1.1"), ("ENABLED".into(), None));
    assert_eq!(control_status(w, FSBP, "IAM.4").0, "DISABLED");

    // Delete: CIS v1.2.0 (enabled here) goes; in the adopted FSBP, IAM.4 comes back on and IAM.2 stays off.
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(settled_standards(w), vec![(FSBP.to_string(), "READY".to_string())]);
    assert_eq!(control_status(w, FSBP, "IAM.4"), ("ENABLED".into(), None));
    assert_eq!(
        control_status(w, FSBP, "IAM.2"),
        ("DISABLED".into(), Some("decided before the stack".into()))
    );
}

#[test]
fn a_control_in_none_of_the_standards_fails_by_name_and_disables_what_the_create_enabled() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    let mut r = s.standards_resource();
    let failed = r.create(json!({
        "Standards": [FSBP],
        "DisabledControls": [{"ControlId": "Macie.1", "Reason": "no Macie"}]
    }));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(
            "invalid property DisabledControls[0]: ControlId Macie.1 is a control of none of the Standards"
        ),
        "{}",
        failed.reason()
    );
    assert!(
        failed
            .reason()
            .contains(&format!("disabled again what this request had enabled: {FSBP}")),
        "{}",
        failed.reason()
    );
    assert!(settled_standards(w).is_empty());
}

#[test]
fn throttling_is_retried_by_the_sdk_and_the_standard_still_reaches_ready() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    w.fault(
        json!({"service": "securityhub", "operation": "BatchEnableStandards", "code": "ThrottlingException",
        "message": "Rate exceeded", "status": 429, "count": 2}),
    );
    let mut r = s.standards_resource();
    let created = r.create(json!({"Standards": [FSBP]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(
        count(&w.operations("securityhub"), "BatchEnableStandards"),
        3,
        "two throttled, then through"
    );
    assert_eq!(standards(w), vec![(FSBP.to_string(), "READY".to_string())]);
}

#[test]
fn two_claimants_of_an_adopted_hub_a_conflicting_one_refused_and_the_last_one_puts_everything_back() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "STANDARD_CONTROL");
    set_hub_tags(w, json!({"team": "platform"}));
    let before = (hub_settings(w), hub_tags(w));
    assert_eq!(
        before,
        (("STANDARD_CONTROL".to_string(), true), json!({"team": "platform"}))
    );
    let props = json!({"ControlFindingGenerator": "SECURITY_CONTROL", "AutoEnableControls": false,
        "Tags": {"owner": "security", "team": "security"}});

    let mut first = s.named_hub("SecurityHub");
    let created = first.create(props.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Adopted"), Some("true"));
    assert_eq!(hub_settings(w), ("SECURITY_CONTROL".to_string(), false));
    assert_eq!(hub_tags(w), json!({"owner": "security", "team": "security"}));

    // Another resource asking for the other generator is refused, naming the claimant, and changes nothing.
    let mut other = s.named_hub("OtherHub");
    let refused = other.create(json!({"ControlFindingGenerator": "STANDARD_CONTROL", "AutoEnableControls": false}));
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused
            .reason()
            .contains("is already claimed by SecurityHub in stack tap-test (securityhub-enable)"),
        "{}",
        refused.reason()
    );
    assert_eq!(hub_settings(w), ("SECURITY_CONTROL".to_string(), false));
    assert_eq!(other.delete().status(), "SUCCESS");
    assert_eq!(hub_settings(w), ("SECURITY_CONTROL".to_string(), false));

    // A rename: the new resource is created first (tags may differ: they are no conflict), ...
    let mut second = s.named_hub("RenamedHub");
    let before_ops = w.operations("securityhub").len();
    let renamed = second.create(
        json!({"ControlFindingGenerator": "SECURITY_CONTROL", "AutoEnableControls": false,
        "Tags": {"owner": "security", "env": "prod"}}),
    );
    assert_eq!(renamed.status(), "SUCCESS", "{}", renamed.reason());
    assert_eq!(
        renamed.data("Adopted"),
        Some("true"),
        "the state before the first claimant"
    );
    let during = w.operations("securityhub")[before_ops..].to_vec();
    assert_eq!(mutating(&during), vec!["TagResource".to_string()], "{during:?}");
    assert_eq!(
        ledger_parameters(w)
            .iter()
            .filter(|n| n.starts_with("/tapguard/claims/securityhub-hub/hub/"))
            .count(),
        2
    );

    // ... then the old one is deleted: the settings stay; of its tags only the one nobody else asks for goes back.
    let deleted = first.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(hub_settings(w), ("SECURITY_CONTROL".to_string(), false));
    assert_eq!(
        hub_tags(w),
        json!({"owner": "security", "team": "platform", "env": "prod"})
    );

    // The last claimant puts the hub back as it was before either: generator, AutoEnableControls, tags; still on.
    let deleted = second.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!((hub_settings(w), hub_tags(w)), before);
    assert_eq!(count(&w.operations("securityhub"), "DisableSecurityHub"), 0);
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));
}

#[test]
fn a_create_failing_at_each_step_or_cut_by_the_deadline_and_an_update_failing_part_way_leave_the_hub_as_it_was() {
    let s = Stack::new();
    let w = &s.world;
    let props = json!({"AutoEnableControls": false, "Tags": {"owner": "security"}});
    let mut r = s.hub_resource();
    for (service, operation, code) in [
        ("ssm", "PutParameter", "AccessDeniedException"),
        ("securityhub", "EnableSecurityHub", "InvalidInputException"),
        ("securityhub", "UpdateSecurityHubConfiguration", "InvalidInputException"),
        ("securityhub", "GetAdministratorAccount", "InvalidInputException"),
    ] {
        w.fault(json!({"service": service, "operation": operation, "code": code, "message": "injected", "count": 1}));
        let failed = r.create(props.clone());
        assert_eq!(failed.status(), "FAILED", "{operation}");
        assert!(
            failed.reason().starts_with(&format!("{operation} failed: {code}")),
            "{}",
            failed.reason()
        );
        assert!(hub(w).is_none(), "a Create failing at {operation} left the hub on");
        assert!(
            ledger_parameters(w).is_empty(),
            "{operation}: {:?}",
            ledger_parameters(w)
        );
        assert_eq!(r.delete().status(), "SUCCESS");
    }
    assert_eq!(
        count(&w.operations("securityhub"), "DisableSecurityHub"),
        2,
        "undone after enabling"
    );

    // Cut by the deadline after EnableSecurityHub: nothing undone in time, the rollback Delete does it.
    w.fault(json!({"service": "securityhub", "operation": "GetAdministratorAccount", "delay_ms": 30000, "count": 1}));
    r.timeout = std::time::Duration::from_secs(8);
    let cut = r.create(props.clone());
    assert_eq!(cut.status(), "FAILED");
    assert!(cut.reason().starts_with("timed out after"), "{}", cut.reason());
    assert!(
        cut.physical_id().starts_with("tapguard-failed-create:"),
        "{}",
        cut.physical_id()
    );
    assert!(hub(w).is_some(), "enabled before the deadline");
    r.timeout = std::time::Duration::from_secs(60);
    let rollback = r.delete();
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    assert!(
        hub(w).is_none(),
        "the rollback Delete of the failed Create turned it off"
    );
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));

    // An Update failing part-way (the generator changed, the tags refused), then the rollback Update.
    let created = r.create(props.clone());
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    w.fault(json!({"service": "securityhub", "operation": "TagResource", "code": "InvalidInputException", "message": "injected", "count": 1}));
    let failed = r.update(
        json!({"ControlFindingGenerator": "STANDARD_CONTROL", "AutoEnableControls": false,
        "Tags": {"owner": "platform"}}),
    );
    assert_eq!(failed.status(), "FAILED");
    assert_eq!(
        hub_settings(w),
        ("STANDARD_CONTROL".to_string(), false),
        "changed before the failure"
    );
    let rollback = r.update(props.clone());
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    assert_eq!(rollback.physical_id(), created.physical_id());
    assert_eq!(hub_settings(w), ("SECURITY_CONTROL".to_string(), false));
    assert_eq!(hub_tags(w), json!({"owner": "security"}));
    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(hub(w).is_none());
}

#[test]
fn an_old_format_id_moves_into_the_ledger_and_a_deleted_ledger_turns_nothing_off() {
    let s = Stack::new();
    let w = &s.world;
    // A resource of the previous version enabled the hub: its state is in its physical id.
    enable_hub_directly(w, "SECURITY_CONTROL");
    let old_id = format!("securityhub-enable:{REGION}:enabled:default-standards=false");
    let mut r = s.hub_resource();
    r.physical_id = Some(old_id.clone());
    r.properties = json!({});
    let updated = r.update(json!({"AutoEnableControls": false}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(
        updated.physical_id(),
        old_id,
        "an old id is kept: a new one would be a replacement"
    );
    assert_eq!(
        updated.data("Adopted"),
        Some("false"),
        "the old id says this resource enabled the hub"
    );
    assert!(
        ledger_parameters(w)
            .iter()
            .any(|n| n.starts_with("/tapguard/ledger/securityhub-enable/legacy-")),
        "{:?}",
        ledger_parameters(w)
    );
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(hub(w).is_none(), "the hub the old resource enabled is turned off");
    assert!(ledger_parameters(w).is_empty());

    // Someone deletes the ledger: the hub's prior state is unknown, so the Delete leaves it on.
    let created = r.create(json!({}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    delete_ledger(w);
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert!(hub(w).is_some(), "never turned off without a known prior state");
    assert_eq!(count(&w.operations("securityhub"), "DisableSecurityHub"), 1);
}

fn standards_arn(id: &str) -> String {
    if id == CIS_12 {
        format!("arn:aws:securityhub:::ruleset/{id}")
    } else {
        format!("arn:aws:securityhub:{REGION}::standards/{id}")
    }
}

/// Turns controls off by security control id in the given standards, as someone did before the stack.
fn disable_directly(w: &World, standards: &[&str], control_ids: &[&str], reason: &str) {
    let updates: Vec<Value> = standards
        .iter()
        .flat_map(|s| {
            control_ids.iter().map(move |c| {
                json!({"StandardsArn": standards_arn(s), "SecurityControlId": c, "AssociationStatus": "DISABLED",
                    "UpdatedReason": reason})
            })
        })
        .collect();
    let answer = w.rest_call(
        "securityhub",
        "PATCH",
        "/associations",
        Some(json!({ "StandardsControlAssociationUpdates": updates })),
    );
    assert!(answer.get("__type").is_none(), "{answer}");
}

#[test]
fn two_standards_claimants_a_standard_on_before_create_added_by_update_and_the_last_one_restoring() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    enable_standard_directly(w, &standards_arn(FSBP));
    settled_standards(w);
    disable_directly(w, &[FSBP], &["IAM.2"], "decided before the stack");
    let iam4 = json!([{"ControlId": "IAM.4", "Reason": "root keys are audited by AccessKeyRotation"}]);

    let mut first = s.named_standards("SecurityHubStandards");
    let created = first.create(json!({"Standards": [CIS_12], "DisabledControls": iam4}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Adopted"), Some(""));
    assert_eq!(
        control_status(w, CIS_12, "1.12").0,
        "DISABLED",
        "IAM.4 is CIS v1.2.0's 1.12"
    );
    assert_eq!(
        control_status(w, FSBP, "IAM.4").0,
        "ENABLED",
        "FSBP is not this resource's yet"
    );

    // An Update adds FSBP, which was on before the Create: adopted, never this resource's to disable.
    let updated = first.update(json!({"Standards": [CIS_12, FSBP], "DisabledControls": iam4}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.data("Adopted"), Some(standards_arn(FSBP).as_str()));
    assert_eq!(control_status(w, FSBP, "IAM.4").0, "DISABLED");

    // A rename: the new resource comes first and changes nothing, ...
    let mut second = s.named_standards("RenamedStandards");
    let before = w.operations("securityhub").len();
    let renamed = second.create(json!({"Standards": [CIS_12, FSBP], "DisabledControls": iam4}));
    assert_eq!(renamed.status(), "SUCCESS", "{}", renamed.reason());
    assert_eq!(
        renamed.data("Adopted"),
        Some(standards_arn(FSBP).as_str()),
        "CIS v1.2.0 was off before the first claimant"
    );
    let during = w.operations("securityhub")[before..].to_vec();
    for op in [
        "BatchEnableStandards",
        "BatchDisableStandards",
        "BatchUpdateStandardsControlAssociations",
    ] {
        assert_eq!(count(&during, op), 0, "{op}: {during:?}");
    }

    // ... the old one's Delete leaves everything the new one stands for, ...
    let deleted = first.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(ids(&settled_standards(w)), vec![FSBP, CIS_12]);
    assert_eq!(control_status(w, FSBP, "IAM.4").0, "DISABLED");
    assert_eq!(control_status(w, CIS_12, "1.12").0, "DISABLED");

    // ... and the last one's Delete puts the account back: CIS v1.2.0 off, FSBP on with IAM.4 on, IAM.2 as it was.
    let deleted = second.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(settled_standards(w), vec![(FSBP.to_string(), "READY".to_string())]);
    assert_eq!(control_status(w, FSBP, "IAM.4"), ("ENABLED".into(), None));
    assert_eq!(
        control_status(w, FSBP, "IAM.2"),
        ("DISABLED".into(), Some("decided before the stack".into()))
    );
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));
}

#[test]
fn a_standards_create_failing_at_each_step_or_cut_by_the_deadline_and_an_update_failing_part_way_leave_the_account_as_it_was(
) {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    let props =
        json!({"Standards": [FSBP], "DisabledControls": [{"ControlId": "IAM.4", "Reason": "audited elsewhere"}]});
    let mut r = s.standards_resource();
    for (service, operation) in [
        ("ssm", "PutParameter"),
        ("securityhub", "BatchUpdateStandardsControlAssociations"),
    ] {
        w.fault(json!({"service": service, "operation": operation, "code": "InvalidInputException", "message": "injected", "count": 1}));
        let failed = r.create(props.clone());
        assert_eq!(failed.status(), "FAILED", "{operation}");
        assert!(
            failed
                .reason()
                .starts_with(&format!("{operation} failed: InvalidInputException")),
            "{}",
            failed.reason()
        );
        assert!(
            settled_standards(w).is_empty(),
            "a Create failing at {operation} left a standard on"
        );
        assert!(
            ledger_parameters(w).is_empty(),
            "{operation}: {:?}",
            ledger_parameters(w)
        );
        assert_eq!(r.delete().status(), "SUCCESS");
    }

    // Cut by the deadline once FSBP is READY: the rollback Delete of the failed Create disables it.
    w.fault(json!({"service": "securityhub", "operation": "BatchGetStandardsControlAssociations", "delay_ms": 30000, "count": 1}));
    r.timeout = std::time::Duration::from_secs(20);
    let cut = r.create(props.clone());
    assert_eq!(cut.status(), "FAILED");
    assert!(cut.reason().starts_with("timed out after"), "{}", cut.reason());
    assert_eq!(settled_standards(w), vec![(FSBP.to_string(), "READY".to_string())]);
    r.timeout = std::time::Duration::from_secs(60);
    let rollback = r.delete();
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    assert!(settled_standards(w).is_empty(), "{:?}", standards(w));
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));

    // An Update adding PCI DSS fails at the controls: PCI DSS goes again; the rollback Update succeeds.
    let created = r.create(json!({"Standards": [FSBP]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    w.fault(json!({"service": "securityhub", "operation": "BatchUpdateStandardsControlAssociations", "code": "InvalidInputException", "message": "injected", "count": 1}));
    let failed = r.update(
        json!({"Standards": [FSBP, PCI], "DisabledControls": [{"ControlId": "IAM.4", "Reason": "audited elsewhere"}]}),
    );
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .contains(&format!("disabled again what this request had enabled: {PCI}")),
        "{}",
        failed.reason()
    );
    assert_eq!(settled_standards(w), vec![(FSBP.to_string(), "READY".to_string())]);
    assert_eq!(control_status(w, FSBP, "IAM.4").0, "ENABLED");
    let rollback = r.update(json!({"Standards": [FSBP]}));
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    assert_eq!(rollback.physical_id(), created.physical_id());
    assert_eq!(settled_standards(w), vec![(FSBP.to_string(), "READY".to_string())]);
    assert_eq!(r.delete().status(), "SUCCESS");
    assert!(settled_standards(w).is_empty());
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));
}

#[test]
fn state_that_would_not_fit_a_physical_id_lives_in_the_ledger_and_an_old_format_id_moves_there() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    const CIS_3: &str = "cis-aws-foundations-benchmark/v/3.0.0";
    let all = [FSBP, CIS_12, CIS_14, CIS_3, PCI];
    for standard in all {
        enable_standard_directly(w, &standards_arn(standard));
    }
    settled_standards(w);
    let control_ids = ["IAM.2", "IAM.3", "IAM.4", "CloudTrail.1", "CloudTrail.2", "Config.1"];
    disable_directly(w, &all, &control_ids, "before the stack");
    let controls: Vec<Value> = control_ids
        .iter()
        .map(|c| json!({"ControlId": c, "Reason": "ours"}))
        .collect();

    let mut r = s.standards_resource();
    let created = r.create(json!({"Standards": all, "DisabledControls": controls}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let disabled = created.data("DisabledControls").unwrap_or_default().to_string();
    assert_eq!(disabled.split(',').count(), 21, "{disabled}");
    let old_format = format!(
        "securityhub-standards:{REGION}:adopted={}:controls-adopted={disabled}",
        all.join(",")
    );
    assert!(
        old_format.len() > 1024,
        "the old id would be {} bytes",
        old_format.len()
    );
    assert!(created.physical_id().len() < 100, "{}", created.physical_id());
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(settled_standards(w).len(), 5, "every standard was on before: all stay");
    assert_eq!(
        control_status(w, CIS_12, "1.12"),
        ("DISABLED".into(), Some("before the stack".into()))
    );
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));

    // A resource of the previous version, which enabled CIS v1.4.0 and found FSBP and its IAM.2 off.
    let old_id = format!("securityhub-standards:{REGION}:adopted={FSBP}:controls-adopted={FSBP}#IAM.2");
    let mut old = s.named_standards("OldStandards");
    old.physical_id = Some(old_id.clone());
    old.properties = json!({"Standards": [FSBP, CIS_14], "DisabledControls": [{"ControlId": "IAM.2", "Reason": "r"}]});
    let updated =
        old.update(json!({"Standards": [FSBP, CIS_14], "DisabledControls": [{"ControlId": "IAM.2", "Reason": "r"}]}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(updated.physical_id(), old_id, "kept: a new id would be a replacement");
    assert_eq!(updated.data("Adopted"), Some(standards_arn(FSBP).as_str()));
    let deleted = old.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    let settled = settled_standards(w);
    let left = ids(&settled);
    assert!(!left.contains(&CIS_14) && left.contains(&FSBP), "{left:?}");
    assert_eq!(
        control_status(w, FSBP, "IAM.2").0,
        "DISABLED",
        "off before the old resource"
    );
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));
}

#[test]
fn a_standard_that_security_hub_could_not_disable_fails_the_delete_which_a_retry_finishes() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    emulator().control(
        "/tapguard/securityhub/standard-outcome",
        json!({"account": s.account_id(), "region": REGION, "standard": CIS_14, "status": "READY",
            "disable": "FAILED", "reason": "INTERNAL_ERROR"}),
    );
    let mut r = s.standards_resource();
    let created = r.create(json!({"Standards": [CIS_14]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let failed = r.delete();
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(&format!(
            "Security Hub CSPM could not disable {CIS_14} in {}/{REGION}: GetEnabledStandards answers FAILED \
             (StandardsStatusReason INTERNAL_ERROR): Security Hub failed on its side",
            s.account_id()
        )),
        "{}",
        failed.reason()
    );
    assert!(
        ledger_parameters(w)
            .iter()
            .any(|n| n.starts_with("/tapguard/claims/securityhub-standards/standard/")),
        "the claim stays for the retry: {:?}",
        ledger_parameters(w)
    );
    // Security Hub recovers: the retried Delete disables it and gives up the claim.
    emulator().control(
        "/tapguard/securityhub/standard-outcome",
        json!({"account": s.account_id(), "region": REGION, "standard": CIS_14, "status": "READY"}),
    );
    let retried = r.delete();
    assert_eq!(retried.status(), "SUCCESS", "{}", retried.reason());
    assert!(settled_standards(w).is_empty(), "{:?}", standards(w));
    assert!(ledger_parameters(w).is_empty(), "{:?}", ledger_parameters(w));
}

#[test]
fn controls_are_changed_only_once_the_standard_says_they_are_ready_for_updates() {
    let s = Stack::new();
    let w = &s.world;
    enable_hub_directly(w, "SECURITY_CONTROL");
    emulator().control(
        "/tapguard/securityhub/controls-not-ready",
        json!({"account": s.account_id(), "region": REGION, "reads": 3}),
    );
    let mut r = s.standards_resource();
    let created = r.create(
        json!({"Standards": [FSBP], "DisabledControls": [{"ControlId": "IAM.4", "Reason": "audited elsewhere"}]}),
    );
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("DisabledControls"), Some(format!("{FSBP}#IAM.4").as_str()));
    assert_eq!(control_status(w, FSBP, "IAM.4").0, "DISABLED");

    // Not ready for longer than the wait: FAILED saying so, not blaming the property; nothing left on.
    emulator().control(
        "/tapguard/securityhub/controls-not-ready",
        json!({"account": s.account_id(), "region": REGION, "reads": 1000}),
    );
    let mut other = s.named_standards("MoreStandards");
    let failed = other.create(json!({"Standards": [PCI], "WaitSeconds": "2",
        "DisabledControls": [{"ControlId": "IAM.4", "Reason": "audited elsewhere"}]}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(&format!(
            "{PCI} READY, but StandardsControlsUpdatable still NOT_READY_FOR_UPDATES"
        )),
        "{}",
        failed.reason()
    );
    assert_eq!(ids(&settled_standards(w)), vec![FSBP], "PCI DSS disabled again");
}

// ---------------------------------------------------------------------------------------------------
// The verify pass (issue 15): read-only, drift found, published and resolved.
// ---------------------------------------------------------------------------------------------------

/// The checks of a pass's reports by control name: (verdict, observed, expected).
fn checks_of(summary: &Value) -> std::collections::BTreeMap<String, (String, String, String)> {
    summary["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["checks"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let text = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (text("control"), (text("verdict"), text("observed"), text("expected")))
        })
        .collect()
}

/// The verdicts of a pass by control name.
fn verdicts(summary: &Value) -> std::collections::BTreeMap<String, String> {
    checks_of(summary).into_iter().map(|(k, (v, _, _))| (k, v)).collect()
}

/// The drift findings a handler imported: control (the id's last part) -> (compliance, record state).
fn drift_findings(w: &World, handler: &str) -> std::collections::BTreeMap<String, (String, String)> {
    let filters =
        json!({"Filters": {"GeneratorId": [{"Value": format!("tapguard/{handler}"), "Comparison": "EQUALS"}]}});
    let answer = w.rest_call("securityhub", "POST", "/findings", Some(filters));
    answer["Findings"]
        .as_array()
        .unwrap_or_else(|| panic!("GetFindings: {answer}"))
        .iter()
        .map(|f| {
            let id = f["Id"].as_str().unwrap_or_default();
            let control = id.splitn(4, '/').nth(3).unwrap_or(id).to_string();
            (
                control,
                (
                    f["Compliance"]["Status"].as_str().unwrap_or_default().to_string(),
                    f["RecordState"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

fn open() -> (String, String) {
    ("FAILED".to_string(), "ACTIVE".to_string())
}

fn resolved() -> (String, String) {
    ("PASSED".to_string(), "ARCHIVED".to_string())
}

fn set_control_directly(w: &World, arn: &str, status: &str) {
    let body = if status == "DISABLED" {
        json!({"ControlStatus": status, "DisabledReason": "by hand"})
    } else {
        json!({"ControlStatus": status})
    };
    let answer = w.rest_call("securityhub", "PATCH", &format!("/standards/control/{arn}"), Some(body));
    assert!(answer.get("__type").is_none(), "{answer}");
}

#[test]
fn the_standards_verify_pass_finds_each_drift_publishes_and_resolves_it_reads_only_and_a_denied_read_is_unknown() {
    let s = Stack::new();
    let w = &s.world;
    let host = &s.standards_host;
    enable_hub_directly(w, "STANDARD_CONTROL");
    let account = s.account_id().to_string();
    let control_arn =
        |standard: &str, control: &str| format!("arn:aws:securityhub:{REGION}:{account}:control/{standard}/{control}");
    let (iam1, iam2) = (control_arn(FSBP, "IAM.1"), control_arn(FSBP, "IAM.2"));
    let mut r = s.standards_resource();
    let entry = |arn: &str| json!({"StandardsControlArn": arn, "Reason": "not used here"});
    let created = r.create(json!({"Standards": [FSBP], "DisabledControls": [entry(&iam1), entry(&iam2)]}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    // IAM.2 leaves DisabledControls: the Update turns it back on, and it is to stay on.
    let updated = r.update(json!({"Standards": [FSBP], "DisabledControls": [entry(&iam1)]}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(control_status(w, FSBP, "IAM.2").0, "ENABLED");

    let standard = format!("SecurityHub.StandardReady:{FSBP}");
    let disabled = format!("SecurityHub.ControlDisabled:{FSBP}#IAM.1");
    let reenabled = format!("SecurityHub.ControlReenabled:{FSBP}#IAM.2");
    let all_held: std::collections::BTreeMap<String, String> = [&standard, &disabled, &reenabled]
        .into_iter()
        .map(|c| (c.clone(), "held".to_string()))
        .collect();

    // Held: no drift, and the pass only reads.
    let before = w.operations("securityhub").len();
    let held = verify_pass(host);
    assert_eq!(
        (held["resources"].as_u64(), held["drifted"].as_u64()),
        (Some(1), Some(0)),
        "{held}"
    );
    assert_eq!(verdicts(&held), all_held, "{held}");
    let during = w.operations("securityhub")[before..].to_vec();
    assert!(mutating(&during).is_empty() && !during.is_empty(), "{during:?}");
    assert_eq!(drift_metric(host, Some("SecurityHubStandards"), &disabled), vec![0.0]);
    assert!(drift_findings(w, "securityhub-standards").is_empty());

    // Each control drifted in turn by hand, found, published, and resolved once put back.
    type Step<'a> = Box<dyn Fn() + 'a>;
    let drifts: [(&str, &String, &str, Step, Step); 2] = [
        (
            "a claimed control enabled",
            &disabled,
            "ENABLED",
            Box::new(|| set_control_directly(w, &iam1, "ENABLED")),
            Box::new(|| set_control_directly(w, &iam1, "DISABLED")),
        ),
        (
            "a control turned back on disabled again",
            &reenabled,
            "DISABLED (by hand)",
            Box::new(|| set_control_directly(w, &iam2, "DISABLED")),
            Box::new(|| set_control_directly(w, &iam2, "ENABLED")),
        ),
    ];
    for (what, control, observed, drift, put_back) in &drifts {
        drift();
        let drifted = verify_pass(host);
        assert_eq!(drifted["drifted"].as_u64(), Some(1), "{what}: {drifted}");
        assert_eq!(checks_of(&drifted)[*control].0, "drifted", "{what}");
        assert_eq!(checks_of(&drifted)[*control].1, *observed, "{what}");
        assert_eq!(
            drift_metric(host, Some("SecurityHubStandards"), control).last(),
            Some(&1.0),
            "{what}"
        );
        assert_eq!(
            drift_findings(w, "securityhub-standards").get(*control),
            Some(&open()),
            "{what}"
        );
        put_back();
        let again = verify_pass(host);
        assert_eq!(
            (again["drifted"].as_u64(), again["findings_archived"].as_u64()),
            (Some(0), Some(1)),
            "{what}: {again}"
        );
        assert_eq!(
            drift_findings(w, "securityhub-standards").get(*control),
            Some(&resolved()),
            "{what}"
        );
    }

    // The standard disabled: it and its claimed control drift; verify changes nothing back.
    let subscription = format!("arn:aws:securityhub:{REGION}:{account}:subscription/{FSBP}");
    let answer = w.rest_call(
        "securityhub",
        "POST",
        "/standards/deregister",
        Some(json!({"StandardsSubscriptionArns": [subscription]})),
    );
    assert!(answer.get("__type").is_none(), "{answer}");
    let drifted = verify_pass(host);
    let found = checks_of(&drifted);
    assert_eq!(found[&standard].0, "drifted", "{drifted}");
    assert_eq!(found[&disabled].0, "drifted", "{drifted}");
    assert_eq!(
        found[&reenabled].0, "held",
        "a control of an unsubscribed standard is disabled nowhere"
    );
    assert_eq!(drift_findings(w, "securityhub-standards").get(&standard), Some(&open()));
    assert!(settled_standards(w).is_empty(), "verify does not repair");

    // Put back by hand: every finding archived. Then a denied read is unknown with its reason, never
    // held; unknown controls get no ControlDrifted point.
    enable_standard_directly(w, &standards_arn(FSBP));
    settled_standards(w);
    set_control_directly(w, &iam1, "DISABLED");
    let back = verify_pass(host);
    assert_eq!(verdicts(&back), all_held, "{back}");
    assert_eq!(
        drift_findings(w, "securityhub-standards").get(&standard),
        Some(&resolved())
    );
    assert_eq!(
        drift_findings(w, "securityhub-standards").get(&disabled),
        Some(&resolved())
    );
    let metrics_before = drift_metric(host, Some("SecurityHubStandards"), &standard).len();
    w.fault(
        json!({"service": "securityhub", "operation": "GetEnabledStandards", "code": "AccessDeniedException",
        "message": "not authorized to perform securityhub:GetEnabledStandards"}),
    );
    let denied = verify_pass(host);
    let found = checks_of(&denied);
    assert_eq!(
        (denied["drifted"].as_u64(), denied["unknown"].as_u64()),
        (Some(0), Some(3)),
        "{denied}"
    );
    for control in [&standard, &disabled, &reenabled] {
        assert_eq!(found[control].0, "unknown", "{denied}");
        assert!(found[control].1.contains("AccessDeniedException"), "{denied}");
    }
    assert_eq!(
        drift_metric(host, Some("SecurityHubStandards"), &standard).len(),
        metrics_before
    );
}

#[test]
fn the_hub_verify_pass_finds_each_drift_publishes_and_resolves_it_reads_only_and_a_denied_read_is_unknown() {
    let s = Stack::new();
    let w = &s.world;
    let host = &w.host;
    let mut r = s.hub_resource();
    let created = r.create(json!({"ControlFindingGenerator": "SECURITY_CONTROL", "AutoEnableControls": true}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let controls = [
        "SecurityHub.HubEnabled",
        "SecurityHub.ControlFindingGenerator",
        "SecurityHub.AutoEnableControls",
    ];
    let all = |verdict: &str| -> std::collections::BTreeMap<String, String> {
        controls.iter().map(|c| (c.to_string(), verdict.to_string())).collect()
    };

    // Held: no drift, and the pass only reads.
    let before = w.operations("securityhub").len();
    let held = verify_pass(host);
    assert_eq!(
        (held["resources"].as_u64(), held["drifted"].as_u64()),
        (Some(1), Some(0)),
        "{held}"
    );
    assert_eq!(verdicts(&held), all("held"), "{held}");
    let during = w.operations("securityhub")[before..].to_vec();
    assert!(mutating(&during).is_empty() && !during.is_empty(), "{during:?}");
    assert_eq!(drift_metric(host, Some("SecurityHub"), controls[1]), vec![0.0]);

    // Each setting changed by hand in turn: found, published, resolved once put back.
    let configure = |body: Value| {
        let answer = w.rest_call("securityhub", "PATCH", "/accounts", Some(body));
        assert!(answer.get("__type").is_none(), "{answer}");
    };
    let drifts = [
        (
            controls[1],
            "STANDARD_CONTROL",
            json!({"ControlFindingGenerator": "STANDARD_CONTROL"}),
            json!({"ControlFindingGenerator": "SECURITY_CONTROL"}),
        ),
        (
            controls[2],
            "false",
            json!({"AutoEnableControls": false}),
            json!({"AutoEnableControls": true}),
        ),
    ];
    for (control, observed, drift, put_back) in drifts {
        configure(drift);
        let drifted = verify_pass(host);
        assert_eq!(drifted["drifted"].as_u64(), Some(1), "{control}: {drifted}");
        assert_eq!(
            checks_of(&drifted)[control],
            (
                "drifted".to_string(),
                observed.to_string(),
                checks_of(&held)[control].2.clone()
            ),
            "{control}"
        );
        assert_eq!(
            drift_metric(host, Some("SecurityHub"), control).last(),
            Some(&1.0),
            "{control}"
        );
        assert_eq!(
            drift_findings(w, "securityhub-enable").get(control),
            Some(&open()),
            "{control}"
        );
        configure(put_back);
        let again = verify_pass(host);
        assert_eq!(
            (again["drifted"].as_u64(), again["findings_archived"].as_u64()),
            (Some(0), Some(1)),
            "{again}"
        );
        assert_eq!(
            drift_findings(w, "securityhub-enable").get(control),
            Some(&resolved()),
            "{control}"
        );
    }

    // The hub turned off: every control drifts; with no hub for findings, the metrics say it.
    let answer = w.rest_call("securityhub", "DELETE", "/accounts", None);
    assert!(answer.get("__type").is_none(), "{answer}");
    let off = verify_pass(host);
    assert_eq!(verdicts(&off), all("drifted"), "{off}");
    assert_eq!(drift_metric(host, Some("SecurityHub"), controls[0]).last(), Some(&1.0));
    assert!(off["findings_skipped"].is_string(), "{off}");
    assert!(hub(w).is_none(), "verify does not repair");

    // Back on by hand: held again. A denied read is unknown with its reason, never held.
    enable_hub_directly(w, "SECURITY_CONTROL");
    assert_eq!(verdicts(&verify_pass(host)), all("held"));
    w.fault(
        json!({"service": "securityhub", "operation": "DescribeHub", "code": "AccessDeniedException",
        "message": "not authorized to perform securityhub:DescribeHub"}),
    );
    let denied = verify_pass(host);
    assert_eq!(verdicts(&denied), all("unknown"), "{denied}");
    assert!(
        checks_of(&denied)[controls[0]].1.contains("AccessDeniedException"),
        "{denied}"
    );
    assert_eq!(denied["drifted"].as_u64(), Some(0));
}

#[test]
fn repair_drift_sets_the_hub_settings_back_on_the_scheduled_pass_only_for_its_sole_claimant() {
    let s = Stack::new();
    let w = &s.world;
    let host = &w.host;
    let asked = |repair: bool| json!({"ControlFindingGenerator": "SECURITY_CONTROL", "AutoEnableControls": true, "RepairDrift": repair});
    let configure = |body: Value| {
        let answer = w.rest_call("securityhub", "PATCH", "/accounts", Some(body));
        assert!(answer.get("__type").is_none(), "{answer}");
    };
    let mut r = s.hub_resource();
    assert_eq!(r.create(asked(true)).status(), "SUCCESS");

    // Both settings changed behind the stack's back: reported, and set back one call each.
    configure(json!({"ControlFindingGenerator": "STANDARD_CONTROL", "AutoEnableControls": false}));
    let before = w.operations("securityhub").len();
    let repaired = verify_pass(host);
    assert_eq!(
        (repaired["drifted"].as_u64(), repaired["repaired"].as_u64()),
        (Some(2), Some(1)),
        "{repaired}"
    );
    let notes = repair_notes(&repaired, "SecurityHub");
    assert!(notes.len() == 1 && notes[0].0, "{notes:?}");
    assert!(
        notes[0]
            .1
            .contains("ControlFindingGenerator set back to SECURITY_CONTROL"),
        "{notes:?}"
    );
    assert!(notes[0].1.contains("AutoEnableControls set back to true"), "{notes:?}");
    let during = w.operations("securityhub")[before..].to_vec();
    assert_eq!(count(&during, "UpdateSecurityHubConfiguration"), 2, "{during:?}");
    assert_eq!(hub_settings(w), ("SECURITY_CONTROL".to_string(), true));
    assert!(
        host.logs().contains("drift repaired (RepairDrift)"),
        "the change is logged"
    );
    assert_eq!(verify_pass(host)["drifted"].as_u64(), Some(0));

    // The hub turned off is reported, never turned back on by a repair.
    let answer = w.rest_call("securityhub", "DELETE", "/accounts", None);
    assert!(answer.get("__type").is_none(), "{answer}");
    let off = verify_pass(host);
    let notes = repair_notes(&off, "SecurityHub");
    assert!(notes.len() == 1 && !notes[0].0, "{off}");
    assert!(notes[0].1.contains("does not turn it back on"), "{notes:?}");
    assert!(hub(w).is_none());
    enable_hub_directly(w, "SECURITY_CONTROL");

    // An Update without RepairDrift takes it back: drift is then only reported.
    assert_eq!(r.update(asked(false)).status(), "SUCCESS");
    configure(json!({"AutoEnableControls": false}));
    let reported = verify_pass(host);
    assert_eq!(
        (reported["drifted"].as_u64(), reported["repaired"].as_u64()),
        (Some(1), Some(0)),
        "{reported}"
    );
    assert!(repair_notes(&reported, "SecurityHub").is_empty(), "{reported}");
    assert!(!hub_settings(w).1);

    // Asked again, but another resource now claims the hub too: the drift cannot be attributed.
    assert_eq!(r.update(asked(true)).status(), "SUCCESS");
    let mut other = s.named_hub("SecurityHubRenamed");
    assert_eq!(other.create(asked(false)).status(), "SUCCESS");
    configure(json!({"AutoEnableControls": false}));
    let before = w.operations("securityhub").len();
    let shared = verify_pass(host);
    assert_eq!(shared["repaired"].as_u64(), Some(0), "{shared}");
    let notes = repair_notes(&shared, "SecurityHub");
    assert!(
        notes.len() == 1
            && notes[0]
                .1
                .starts_with("not repaired: also claimed by SecurityHubRenamed in stack tap-test"),
        "{notes:?}"
    );
    assert_eq!(
        count(&w.operations("securityhub")[before..], "UpdateSecurityHubConfiguration"),
        0
    );
    assert!(!hub_settings(w).1, "left as it is");
}

#[test]
fn repair_drift_enables_a_standard_again_and_disables_its_control_again_only_for_its_sole_claimant() {
    let s = Stack::new();
    let w = &s.world;
    let host = &s.standards_host;
    enable_hub_directly(w, "STANDARD_CONTROL");
    let account = s.account_id().to_string();
    let iam1 = format!("arn:aws:securityhub:{REGION}:{account}:control/{FSBP}/IAM.1");
    let asked = |repair: bool| {
        json!({"Standards": [FSBP], "RepairDrift": repair,
            "DisabledControls": [{"StandardsControlArn": iam1, "Reason": "not used here"}]})
    };
    let mut r = s.standards_resource();
    let created = r.create(asked(true));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let standard = format!("SecurityHub.StandardReady:{FSBP}");
    let disabled = format!("SecurityHub.ControlDisabled:{FSBP}#IAM.1");

    // The standard disabled behind the stack's back: enabled again, and its control disabled again.
    let subscription = format!("arn:aws:securityhub:{REGION}:{account}:subscription/{FSBP}");
    let answer = w.rest_call(
        "securityhub",
        "POST",
        "/standards/deregister",
        Some(json!({"StandardsSubscriptionArns": [subscription]})),
    );
    assert!(answer.get("__type").is_none(), "{answer}");
    let before = w.operations("securityhub").len();
    let repaired = verify_pass(host);
    assert_eq!(verdicts(&repaired)[&standard], "drifted", "{repaired}");
    assert_eq!(repaired["repaired"].as_u64(), Some(2), "{repaired}");
    let notes = repair_notes(&repaired, "SecurityHubStandards");
    assert!(notes[0].1.contains("enabled again and READY"), "{notes:?}");
    assert!(
        notes[1]
            .1
            .contains("disabled again (reason: disabled again by the tapguard verify pass"),
        "{notes:?}"
    );
    let during = w.operations("securityhub")[before..].to_vec();
    assert_eq!(count(&during, "BatchEnableStandards"), 1, "{during:?}");
    assert_eq!(count(&during, "UpdateStandardsControl"), 1, "{during:?}");
    assert_eq!(ids(&settled_standards(w)), [FSBP]);
    assert_eq!(
        control_status(w, FSBP, "IAM.1"),
        (
            "DISABLED".to_string(),
            Some("disabled again by the tapguard verify pass (RepairDrift)".to_string())
        )
    );
    assert!(
        host.logs().contains("drift repaired (RepairDrift)"),
        "the change is logged"
    );
    assert_eq!(verify_pass(host)["drifted"].as_u64(), Some(0));

    // The control alone enabled by hand: disabled again with its reason.
    set_control_directly(w, &iam1, "ENABLED");
    let control = verify_pass(host);
    assert_eq!(verdicts(&control)[&disabled], "drifted", "{control}");
    assert_eq!(control["repaired"].as_u64(), Some(1), "{control}");
    assert_eq!(control_status(w, FSBP, "IAM.1").0, "DISABLED");

    // An Update without RepairDrift takes it back: drift is then only reported.
    assert_eq!(r.update(asked(false)).status(), "SUCCESS");
    set_control_directly(w, &iam1, "ENABLED");
    let reported = verify_pass(host);
    assert_eq!(
        (reported["drifted"].as_u64(), reported["repaired"].as_u64()),
        (Some(1), Some(0)),
        "{reported}"
    );
    assert!(repair_notes(&reported, "SecurityHubStandards").is_empty(), "{reported}");
    assert_eq!(control_status(w, FSBP, "IAM.1").0, "ENABLED");

    // Asked again, but another resource now claims the control too: the drift cannot be attributed.
    assert_eq!(r.update(asked(true)).status(), "SUCCESS");
    let mut other = s.named_standards("StandardsRenamed");
    assert_eq!(other.create(asked(false)).status(), "SUCCESS");
    set_control_directly(w, &iam1, "ENABLED");
    let before = w.operations("securityhub").len();
    let shared = verify_pass(host);
    assert_eq!(shared["repaired"].as_u64(), Some(0), "{shared}");
    let notes = repair_notes(&shared, "SecurityHubStandards");
    assert!(
        notes.len() == 1
            && notes[0]
                .1
                .starts_with("not repaired: also claimed by StandardsRenamed in stack tap-test"),
        "{notes:?}"
    );
    assert_eq!(
        count(&w.operations("securityhub")[before..], "UpdateStandardsControl"),
        0
    );
    assert_eq!(control_status(w, FSBP, "IAM.1").0, "ENABLED", "left as it is");
}
