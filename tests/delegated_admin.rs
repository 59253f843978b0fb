//! Custom::DelegatedAdministrator: the real binary under the Lambda Runtime API, against the emulator,
//! in an account made the management account of an organization with member accounts.

use serde_json::{json, Value};
use tapguard_tests::*;

const BINARY: &str = "delegated-admin";
const TYPE: &str = "Custom::DelegatedAdministrator";
const REGION: &str = "eu-west-1";
const ADMIN: &str = "222222222222";
const OTHER: &str = "333333333333";
const ORGS: &str = "AWSOrganizationsV20161128";
const CONFIG_PRINCIPALS: [&str; 2] = ["config-multiaccountsetup.amazonaws.com", "config.amazonaws.com"];

/// A world whose account manages an organization with the members ADMIN and OTHER.
fn organization() -> World {
    let w = World::new(BINARY, REGION);
    for member in [ADMIN, OTHER] {
        emulator().control(
            "/tapguard/organizations/member",
            json!({"account": w.account.account_id, "member": member}),
        );
    }
    w
}

/// GuardDuty's delegated administrators in the world's region: (account, status).
fn guardduty_admins(w: &World) -> Vec<(String, String)> {
    let answer = w.rest_call("guardduty", "GET", "/admin", None);
    answer["adminAccounts"]
        .as_array()
        .unwrap_or_else(|| panic!("ListOrganizationAdminAccounts: {answer}"))
        .iter()
        .map(|a| {
            (
                a["adminAccountId"].as_str().unwrap_or_default().to_string(),
                a["adminStatus"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn enabled(account: &str) -> Vec<(String, String)> {
    vec![(account.to_string(), "ENABLED".to_string())]
}

fn config_admins(w: &World, principal: &str) -> Vec<String> {
    let answer = w.json_call(
        "organizations",
        &format!("{ORGS}.ListDelegatedAdministrators"),
        json!({"ServicePrincipal": principal}),
    );
    answer["DelegatedAdministrators"]
        .as_array()
        .unwrap_or_else(|| panic!("ListDelegatedAdministrators: {answer}"))
        .iter()
        .filter_map(|a| a["Id"].as_str().map(str::to_string))
        .collect()
}

fn trust_config(w: &World) {
    for principal in CONFIG_PRINCIPALS {
        w.json_call(
            "organizations",
            &format!("{ORGS}.EnableAWSServiceAccess"),
            json!({"ServicePrincipal": principal}),
        );
    }
}

fn ledger_parameters(w: &World) -> Vec<String> {
    ledger_parameters_of(&w.account, "us-east-1")
}

fn count(operations: &[String], name: &str) -> usize {
    operations.iter().filter(|o| *o == name).count()
}

fn guardduty(account: &str) -> Value {
    json!({"Service": "GuardDuty", "AccountId": account})
}

#[test]
fn guardduty_fresh_organization_is_designated_read_back_and_removed_on_delete() {
    let w = organization();
    let mut r = w.resource(TYPE, "GuardDutyDelegatedAdmin");
    let created = r.create(guardduty(ADMIN));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert!(created.physical_id().starts_with("delegated-admin:eu-west-1:ledger-"));
    assert_eq!(created.data("Service"), Some("GuardDuty"));
    assert_eq!(created.data("AdministratorAccountId"), Some(ADMIN));
    assert_eq!(created.data("Scope"), Some(REGION));
    assert_eq!(created.data("Adopted"), Some("false"));
    assert_eq!(guardduty_admins(&w), enabled(ADMIN));
    let ops = w.operations("guardduty");
    assert_eq!(count(&ops, "EnableOrganizationAdminAccount"), 1, "{ops:?}");
    // Read back after the change: a List after the Enable.
    let enable_at = ops.iter().position(|o| o == "EnableOrganizationAdminAccount").unwrap();
    assert!(
        ops[enable_at + 1..]
            .iter()
            .any(|o| o == "ListOrganizationAdminAccounts"),
        "{ops:?}"
    );
    // GuardDuty registered it in Organizations too (the emulator follows the GuardDuty User Guide).
    assert_eq!(config_admins(&w, "guardduty.amazonaws.com"), vec![ADMIN.to_string()]);

    // A no-op Update only reads.
    let before = mutating(&w.operations("guardduty")).len();
    let noop = r.update(guardduty(ADMIN));
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    assert_eq!(mutating(&w.operations("guardduty")).len(), before);

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(guardduty_admins(&w), vec![]);
    assert_eq!(count(&w.operations("guardduty"), "DisableOrganizationAdminAccount"), 1);
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn guardduty_the_same_account_already_designated_is_adopted_and_left_on_delete() {
    let w = organization();
    w.rest_call(
        "guardduty",
        "POST",
        "/admin/enable",
        Some(json!({"adminAccountId": ADMIN})),
    );
    let mut r = w.resource(TYPE, "GuardDutyDelegatedAdmin");
    let created = r.create(guardduty(ADMIN));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Adopted"), Some("true"));
    // The test's own calls are not in the call log: the handler made no Enable.
    assert_eq!(count(&w.operations("guardduty"), "EnableOrganizationAdminAccount"), 0);

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(guardduty_admins(&w), enabled(ADMIN), "an adopted designation stays");
    assert_eq!(count(&w.operations("guardduty"), "DisableOrganizationAdminAccount"), 0);
    assert!(w.host.logs().contains("was adopted: it is left registered"));
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn guardduty_another_account_designated_is_refused_naming_it_and_nothing_changes() {
    let w = organization();
    w.rest_call(
        "guardduty",
        "POST",
        "/admin/enable",
        Some(json!({"adminAccountId": OTHER})),
    );
    let mut r = w.resource(TYPE, "GuardDutyDelegatedAdmin");
    let refused = r.create(guardduty(ADMIN));
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused.reason().contains("already account 333333333333")
            && refused.reason().contains("set AccountId to 333333333333")
            && refused.reason().contains("nothing was changed"),
        "{}",
        refused.reason()
    );
    assert_eq!(guardduty_admins(&w), enabled(OTHER));
    assert!(
        mutating(&w.operations("guardduty")).is_empty(),
        "{:?}",
        w.operations("guardduty")
    );
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
    // The rollback Delete of the failed Create changes nothing either.
    assert_eq!(r.delete().status(), "SUCCESS");
    assert_eq!(guardduty_admins(&w), enabled(OTHER));
    assert_eq!(count(&w.operations("guardduty"), "DisableOrganizationAdminAccount"), 0);
}

#[test]
fn guardduty_a_failed_create_leaves_nothing() {
    let w = organization();
    w.fault(
        json!({"service": "guardduty", "operation": "EnableOrganizationAdminAccount",
        "code": "InternalServerErrorException", "message": "injected", "status": 500}),
    );
    let mut r = w.resource(TYPE, "GuardDutyDelegatedAdmin");
    let failed = r.create(guardduty(ADMIN));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("EnableOrganizationAdminAccount failed: InternalServerErrorException"),
        "{}",
        failed.reason()
    );
    assert_eq!(guardduty_admins(&w), vec![]);
    assert!(
        ledger_parameters(&w).is_empty(),
        "the undo dropped the claim: {:?}",
        ledger_parameters(&w)
    );
    emulator().clear_faults(&w.account.account_id);
    assert_eq!(r.delete().status(), "SUCCESS");
    assert_eq!(guardduty_admins(&w), vec![]);
}

#[test]
fn guardduty_outside_the_management_account_fails_with_what_to_do() {
    // No organization: the account manages none.
    let w = World::new(BINARY, REGION);
    let mut r = w.resource(TYPE, "GuardDutyDelegatedAdmin");
    let failed = r.create(guardduty(ADMIN));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("ListOrganizationAdminAccounts failed: BadRequestException")
            && failed.reason().contains("StackRole=Management"),
        "{}",
        failed.reason()
    );
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

fn config(account: &str) -> Value {
    json!({"Service": "Config", "AccountId": account})
}

#[test]
fn config_is_registered_for_both_principals_read_back_and_deregistered_on_delete() {
    let w = organization();
    trust_config(&w);
    let mut r = w.resource(TYPE, "ConfigDelegatedAdmin");
    let created = r.create(config(ADMIN));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Scope"), Some("organization"));
    assert_eq!(created.data("Adopted"), Some("false"));
    for principal in CONFIG_PRINCIPALS {
        assert_eq!(config_admins(&w, principal), vec![ADMIN.to_string()], "{principal}");
    }
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    for principal in CONFIG_PRINCIPALS {
        assert!(config_admins(&w, principal).is_empty(), "{principal}");
    }
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn config_an_adopted_registration_stays_and_another_account_is_refused() {
    let w = organization();
    trust_config(&w);
    for principal in CONFIG_PRINCIPALS {
        w.json_call(
            "organizations",
            &format!("{ORGS}.RegisterDelegatedAdministrator"),
            json!({"AccountId": ADMIN, "ServicePrincipal": principal}),
        );
    }
    let mut other = w.resource(TYPE, "ConfigDelegatedAdminOther");
    let refused = other.create(config(OTHER));
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused.reason().contains("is already account 222222222222")
            && refused
                .reason()
                .contains("deregister-delegated-administrator --account-id 222222222222"),
        "{}",
        refused.reason()
    );
    assert!(
        mutating(&w.operations("organizations")).is_empty(),
        "{:?}",
        w.operations("organizations")
    );

    let mut r = w.resource(TYPE, "ConfigDelegatedAdmin");
    let adopted = r.create(config(ADMIN));
    assert_eq!(adopted.status(), "SUCCESS", "{}", adopted.reason());
    assert_eq!(adopted.data("Adopted"), Some("true"));
    assert_eq!(r.delete().status(), "SUCCESS");
    for principal in CONFIG_PRINCIPALS {
        assert_eq!(
            config_admins(&w, principal),
            vec![ADMIN.to_string()],
            "{principal} stays"
        );
    }
    assert_eq!(
        count(&w.operations("organizations"), "DeregisterDelegatedAdministrator"),
        0
    );
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn config_a_create_that_fails_half_way_deregisters_what_it_registered() {
    let w = organization();
    trust_config(&w);
    // The second registration (config.amazonaws.com) fails; the first succeeded.
    w.fault(
        json!({"service": "organizations", "operation": "RegisterDelegatedAdministrator",
        "code": "ConcurrentModificationException", "message": "injected", "status": 400,
        "body_excludes": "config-multiaccountsetup"}),
    );
    let mut r = w.resource(TYPE, "ConfigDelegatedAdmin");
    let failed = r.create(config(ADMIN));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("RegisterDelegatedAdministrator failed: ConcurrentModificationException"),
        "{}",
        failed.reason()
    );
    for principal in CONFIG_PRINCIPALS {
        assert!(
            config_admins(&w, principal).is_empty(),
            "{principal}: the undo deregistered it"
        );
    }
    assert_eq!(
        count(&w.operations("organizations"), "DeregisterDelegatedAdministrator"),
        1
    );
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn config_without_trusted_access_is_refused_before_any_change() {
    let w = organization();
    let mut r = w.resource(TYPE, "ConfigDelegatedAdmin");
    let refused = r.create(config(ADMIN));
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused
            .reason()
            .contains("trusted access for AWS Config is not enabled")
            && refused.reason().contains("enable-aws-service-access"),
        "{}",
        refused.reason()
    );
    assert!(
        mutating(&w.operations("organizations")).is_empty(),
        "{:?}",
        w.operations("organizations")
    );
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

/// `tapguard local` plays OrgStack.yml's custom resources with the real handler: with --stand-ins the
/// account becomes an organization's management account with the security account as a member.
#[test]
fn tapguard_local_plays_orgstack_with_the_real_handler_and_tears_it_down() {
    let account = emulator().fresh_account();
    let template = root().join("OrgStack.yml");
    let play = |extra: &[&str]| {
        let mut args = vec![
            "local",
            "--template",
            template.to_str().expect("utf-8 path"),
            "--region",
            REGION,
            "--account",
            &account.account_id,
            "--stand-ins",
            "--parameter",
            "StackRole=Management",
            "--parameter",
            "PolicyTargetIds=r-abcd",
            "--parameter",
        ];
        let security = format!("SecurityAccountId={ADMIN}");
        args.push(&security);
        args.extend_from_slice(extra);
        let output = std::process::Command::new(binary_path("tapguard"))
            .args(&args)
            .env("TAPGUARD_EMULATOR_URL", &emulator().url)
            .env_remove("AWS_PROFILE")
            .current_dir(root())
            .output()
            .expect("run tapguard");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).to_string(),
        )
    };
    let (code, out) = play(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 custom resource(s) to play"), "{out}");
    assert!(out.contains("GuardDutyAdministrator: 222222222222"), "{out}");
    assert!(out.contains("ConfigAdministrator: 222222222222"), "{out}");
    let gd = emulator().rest_call(&account, REGION, "guardduty", "GET", "/admin", None);
    assert_eq!(gd["adminAccounts"][0]["adminAccountId"], ADMIN, "{gd}");

    // A second play, with teardown: the first play's resources still claim both designations, so the
    // second ones inherit their prior state (designated by tapguard, Adopted false) and their Deletes
    // leave the designations to the first ones.
    let (code, out) = play(&["--teardown"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Data.Adopted: false") && out.contains("created and deleted"),
        "{out}"
    );
    for principal in CONFIG_PRINCIPALS {
        let admins = emulator().json_call(
            &account,
            REGION,
            "organizations",
            &format!("{ORGS}.ListDelegatedAdministrators"),
            json!({"ServicePrincipal": principal}),
        );
        assert_eq!(
            admins["DelegatedAdministrators"][0]["Id"], ADMIN,
            "{principal}: {admins}"
        );
    }
    let gd = emulator().rest_call(&account, REGION, "guardduty", "GET", "/admin", None);
    assert_eq!(gd["adminAccounts"][0]["adminAccountId"], ADMIN, "{gd}");
}

/// (verdict, observed) of each control in a verify pass's summary.
fn checks_of(summary: &Value) -> std::collections::BTreeMap<String, (String, String)> {
    summary["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["checks"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["control"].as_str().unwrap_or_default().to_string(),
                (
                    c["verdict"].as_str().unwrap_or_default().to_string(),
                    c["observed"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn the_verify_pass_reads_only_and_finds_a_designation_removed_behind_its_back() {
    let w = organization();
    trust_config(&w);
    let mut gd = w.resource(TYPE, "GuardDutyDelegatedAdmin");
    assert_eq!(gd.create(guardduty(ADMIN)).status(), "SUCCESS");
    let mut cfg = w.resource(TYPE, "ConfigDelegatedAdmin");
    assert_eq!(cfg.create(config(ADMIN)).status(), "SUCCESS");

    let before = (w.operations("guardduty").len(), w.operations("organizations").len());
    let held = verify_pass(&w.host);
    assert_eq!(
        (held["resources"].as_u64(), held["drifted"].as_u64()),
        (Some(2), Some(0)),
        "{held}"
    );
    let checks = checks_of(&held);
    assert_eq!(checks["GuardDuty.DelegatedAdministrator"].0, "held", "{held}");
    assert_eq!(checks["Config.DelegatedAdministrator"].0, "held", "{held}");
    let during: Vec<String> = w.operations("guardduty")[before.0..]
        .iter()
        .chain(&w.operations("organizations")[before.1..])
        .cloned()
        .collect();
    assert!(mutating(&during).is_empty() && !during.is_empty(), "{during:?}");

    // Removed behind the stack's back: drifted, with what is there now.
    w.rest_call(
        "guardduty",
        "POST",
        "/admin/disable",
        Some(json!({"adminAccountId": ADMIN})),
    );
    w.json_call(
        "organizations",
        &format!("{ORGS}.DeregisterDelegatedAdministrator"),
        json!({"AccountId": ADMIN, "ServicePrincipal": "config.amazonaws.com"}),
    );
    let drifted = verify_pass(&w.host);
    assert_eq!(drifted["drifted"].as_u64(), Some(2), "{drifted}");
    let checks = checks_of(&drifted);
    assert_eq!(
        checks["GuardDuty.DelegatedAdministrator"],
        ("drifted".to_string(), "no administrator".to_string())
    );
    assert_eq!(
        checks["Config.DelegatedAdministrator"],
        (
            "drifted".to_string(),
            "config-multiaccountsetup.amazonaws.com: 222222222222; config.amazonaws.com: none".to_string()
        )
    );
    assert_eq!(
        drift_metric(&w.host, None, "GuardDuty.DelegatedAdministrator").last(),
        Some(&1.0)
    );
}
