//! Custom::EbsDefaultEncryption: the real binary under the Lambda Runtime API, against the emulator.

use serde_json::{json, Value};
use tapguard_tests::*;

const BINARY: &str = "ebs-default-encryption";
const TYPE: &str = "Custom::EbsDefaultEncryption";
const REGION: &str = "eu-west-1";

fn world() -> World {
    World::new(BINARY, REGION)
}

/// (encryption by default on?, default KMS key) as the emulator holds them now.
fn ebs_state(w: &World) -> (bool, String) {
    let enabled = w.query("ec2", &[("Action", "GetEbsEncryptionByDefault")]);
    let key = w.query("ec2", &[("Action", "GetEbsDefaultKmsKeyId")]);
    (
        xml_value(&enabled, "ebsEncryptionByDefault") == Some("true"),
        xml_value(&key, "kmsKeyId").unwrap_or_default().to_string(),
    )
}

/// The names of every parameter the ownership ledger holds in this world's account and region.
fn ledger_parameters(w: &World) -> Vec<String> {
    ledger_parameters_of(&w.account, &w.region)
}

fn managed_key(w: &World) -> String {
    format!("arn:aws:kms:{REGION}:{}:alias/aws/ebs", w.account.account_id)
}

/// A key policy that lets EBS use the key as AWS documents it: the default statement for the account
/// (its IAM policies decide) and the EC2 Auto Scaling User Guide's two statements for the Auto Scaling
/// service-linked role.
fn usable_policy(w: &World) -> Value {
    let account = &w.account.account_id;
    let role =
        format!("arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling");
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
         "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "Allow service-linked role use of the customer managed key", "Effect": "Allow",
         "Principal": {"AWS": [role]}, "Resource": "*",
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]},
        {"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
         "Principal": {"AWS": [role]}, "Action": ["kms:CreateGrant"], "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}}]})
}

/// Creates a customer managed key with an alias and `policy` (none: KMS's default key policy);
/// returns the key ARN.
fn customer_key_with(w: &World, alias: &str, policy: Option<Value>) -> String {
    let mut body = json!({"Description": "tapguard test"});
    if let Some(policy) = policy {
        body["Policy"] = json!(policy.to_string());
    }
    let created = w.json_call("kms", "TrentService.CreateKey", body);
    let arn = created["KeyMetadata"]["Arn"].as_str().expect("key ARN").to_string();
    let key_id = created["KeyMetadata"]["KeyId"].as_str().expect("key id");
    w.json_call(
        "kms",
        "TrentService.CreateAlias",
        json!({"AliasName": alias, "TargetKeyId": key_id}),
    );
    arn
}

/// A customer managed key EBS can use (see `usable_policy`), with an alias; returns the key ARN.
fn customer_key(w: &World, alias: &str) -> String {
    customer_key_with(w, alias, Some(usable_policy(w)))
}

fn from_fixture(name: &str, w: &World, physical_id: Option<&str>, props: Value) -> Value {
    let mut event = fixture(name);
    event["StackId"] = json!(w.stack_id());
    for key in ["ResourceProperties", "OldResourceProperties"] {
        if let Some(Value::Object(map)) = event.get_mut(key) {
            if key == "ResourceProperties" {
                if let Value::Object(extra) = &props {
                    map.extend(extra.clone());
                }
            }
        }
    }
    if let Some(id) = physical_id {
        event["PhysicalResourceId"] = json!(id);
    }
    event
}

#[test]
fn create_noop_update_key_change_rollback_and_delete_restore_the_region() {
    let w = world();
    let mut r = w.resource(TYPE, "EbsDefaultEncryption");
    let managed = managed_key(&w);
    assert_eq!(
        ebs_state(&w),
        (false, managed.clone()),
        "a fresh account starts unencrypted"
    );

    // Create, from the recorded CloudFormation fixture.
    let created = r.send(from_fixture("ebs-default-encryption-create.json", &w, None, json!({})));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("Enabled"), Some("true"));
    assert_eq!(created.data("PreviouslyEnabled"), Some("false"));
    assert_eq!(created.data("KmsKeyId"), Some(managed.as_str()));
    assert!(
        created
            .physical_id()
            .starts_with("ebs-default-encryption:eu-west-1:ledger-"),
        "{}",
        created.physical_id()
    );
    assert_eq!(ebs_state(&w), (true, managed.clone()));
    r.physical_id = Some(created.physical_id().to_string());
    r.properties = json!({});

    // No-op Update: reads only.
    let before = w.operations("ec2").len();
    let noop = r.update(json!({}));
    assert_eq!(noop.status(), "SUCCESS", "{}", noop.reason());
    assert_eq!(noop.physical_id(), created.physical_id(), "no replacement");
    let during: Vec<String> = w.operations("ec2")[before..].to_vec();
    assert!(
        mutating(&during).is_empty(),
        "a no-op Update changed something: {during:?}"
    );
    assert!(!during.is_empty(), "the Update must still read the state back");

    // Update to a customer managed key given by alias: the key ARN is set and verified.
    let key_arn = customer_key(&w, "alias/tap-ebs");
    let changed = r.update(json!({"KmsKeyId": "alias/tap-ebs"}));
    assert_eq!(changed.status(), "SUCCESS", "{}", changed.reason());
    assert_eq!(changed.data("KmsKeyId"), Some(key_arn.as_str()));
    assert_eq!(
        changed.physical_id(),
        created.physical_id(),
        "a key change is not a replacement"
    );
    assert_eq!(ebs_state(&w), (true, key_arn.clone()));

    // Rollback Update: CloudFormation sends the old properties as the new ones.
    let rollback = r.update(json!({}));
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    assert_eq!(ebs_state(&w), (true, managed.clone()));

    // Delete restores what Create found: encryption off, the managed key.
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(deleted.physical_id(), created.physical_id());
    assert_eq!(ebs_state(&w), (false, managed));
}

#[test]
fn delete_keeps_encryption_that_was_on_before_create_and_restores_the_prior_key() {
    let w = world();
    let prior_key = customer_key(&w, "alias/prior");
    w.query("ec2", &[("Action", "EnableEbsEncryptionByDefault")]);
    w.query(
        "ec2",
        &[("Action", "ModifyEbsDefaultKmsKeyId"), ("KmsKeyId", prior_key.as_str())],
    );

    let mut r = w.resource(TYPE, "Ebs");
    let created = r.create(json!({}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("PreviouslyEnabled"), Some("true"));
    assert_eq!(ebs_state(&w), (true, managed_key(&w)));

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(
        ebs_state(&w),
        (true, prior_key),
        "encryption stays on and the prior key is back"
    );
    assert!(!w
        .operations("ec2")
        .contains(&"DisableEbsEncryptionByDefault".to_string()));
}

#[test]
fn a_second_claimant_makes_no_mutating_call_and_the_last_one_restores_the_region() {
    // A rename or a replacement: CloudFormation creates the new resource before deleting the old one.
    let w = world();
    let mut first = w.resource(TYPE, "First");
    assert_eq!(first.create(json!({})).status(), "SUCCESS");
    let before = w.operations("ec2").len();

    let mut second = w.resource(TYPE, "Second");
    let again = second.create(json!({"KmsKeyId": ""}));
    assert_eq!(again.status(), "SUCCESS", "{}", again.reason());
    assert_eq!(
        again.data("PreviouslyEnabled"),
        Some("false"),
        "the state before the first claimant, not the one it left"
    );
    let during = w.operations("ec2")[before..].to_vec();
    assert!(mutating(&during).is_empty(), "{during:?}");
    let held = ledger_parameters(&w);
    assert_eq!(
        held.iter()
            .filter(|n| n.starts_with("/tapguard/claims/ebs/default-encryption/"))
            .count(),
        2,
        "two claims on the region's default: {held:?}"
    );

    // Deleting the first (the old name) leaves the second one's encryption on.
    assert_eq!(first.delete().status(), "SUCCESS");
    assert_eq!(ebs_state(&w), (true, managed_key(&w)));
    // The last claimant's Delete puts the region back as it was before either.
    let deleted = second.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(ebs_state(&w), (false, managed_key(&w)));
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn malformed_properties_fail_by_name_and_the_delete_after_touches_nothing() {
    let w = world();
    let mut r = w.resource(TYPE, "Ebs");
    let failed = r.create(json!({"KmsKeyID": "alias/typo"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .starts_with("invalid property KmsKeyID: unknown property (supported: KmsKeyId, RepairDrift)"),
        "{}",
        failed.reason()
    );
    assert!(
        failed.physical_id().starts_with("tapguard-failed-create:"),
        "{}",
        failed.physical_id()
    );

    let wrong_type = r.create(json!({"KmsKeyId": {"Ref": "Key"}}));
    assert_eq!(wrong_type.status(), "FAILED");
    assert!(
        wrong_type.reason().starts_with("invalid property KmsKeyId: "),
        "{}",
        wrong_type.reason()
    );
    assert!(
        wrong_type.reason().contains("{\"Ref\":\"Key\"}"),
        "{}",
        wrong_type.reason()
    );

    // CloudFormation then deletes the failed resource: SUCCESS without any AWS call.
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(deleted.physical_id(), wrong_type.physical_id());
    assert!(w.operations("ec2").is_empty(), "{:?}", w.operations("ec2"));
    assert!(!ebs_state(&w).0, "encryption by default must still be off");
}

#[test]
fn an_unknown_key_fails_before_any_change() {
    let w = world();
    let mut r = w.resource(TYPE, "Ebs");
    let failed = r.create(json!({"KmsKeyId": "alias/does-not-exist"}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed
            .reason()
            .contains("invalid property KmsKeyId: alias/does-not-exist: DescribeKey failed: NotFoundException"),
        "{}",
        failed.reason()
    );
    assert!(mutating(&w.operations("ec2")).is_empty());
    assert!(!ebs_state(&w).0, "encryption by default must still be off");
}

#[test]
fn access_denied_is_failed_with_operation_code_action_and_log_stream() {
    let w = world();
    w.fault(
        json!({"service": "ec2", "operation": "EnableEbsEncryptionByDefault", "code": "UnauthorizedOperation",
        "message": "You are not authorized to perform this operation.", "status": 403}),
    );
    let mut r = w.resource(TYPE, "Ebs");
    let failed = r.create(json!({}));
    assert_eq!(failed.status(), "FAILED");
    let reason = failed.reason();
    assert!(
        reason.starts_with("EnableEbsEncryptionByDefault failed: UnauthorizedOperation: You are not authorized"),
        "{reason}"
    );
    assert!(
        reason.contains("ec2:EnableEbsEncryptionByDefault was denied"),
        "{reason}"
    );
    assert!(
        reason.ends_with(&format!("(log stream {})", w.host.log_stream)),
        "{reason}"
    );
    assert!(!ebs_state(&w).0, "encryption by default must still be off");
}

#[test]
fn throttling_is_retried_by_the_sdk_and_recovers() {
    let w = world();
    w.fault(json!({"service": "ec2", "operation": "EnableEbsEncryptionByDefault", "code": "RequestLimitExceeded", "count": 2}));
    let mut r = w.resource(TYPE, "Ebs");
    let created = r.create(json!({}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    let enables = w
        .operations("ec2")
        .iter()
        .filter(|op| *op == "EnableEbsEncryptionByDefault")
        .count();
    assert_eq!(enables, 3, "two throttled attempts, then success");
    assert!(ebs_state(&w).0);
}

#[test]
fn an_oversized_reason_is_cut_to_fit_keeping_both_ends() {
    let w = world();
    let message = format!("START{}END", "x".repeat(6000));
    w.fault(json!({"service": "ec2", "operation": "EnableEbsEncryptionByDefault", "code": "InvalidParameterValue", "message": message}));
    let mut r = w.resource(TYPE, "Ebs");
    let failed = r.create(json!({}));
    assert_eq!(failed.status(), "FAILED");
    let body = &w.responses.attempts(failed.response_url())[0].body;
    assert!(body.len() <= 4096, "{} bytes", body.len());
    let reason = failed.reason();
    assert!(
        reason.starts_with("EnableEbsEncryptionByDefault failed: InvalidParameterValue: START"),
        "{reason}"
    );
    assert!(reason.contains("bytes cut"), "{reason}");
    assert!(
        reason.ends_with(&format!("(log stream {})", w.host.log_stream)),
        "{reason}"
    );
}

#[test]
fn a_slow_call_past_the_deadline_answers_failed_in_time() {
    let w = world();
    w.fault(json!({"service": "ec2", "operation": "GetEbsEncryptionByDefault", "delay_ms": 30000, "count": 1}));
    let mut r = w.resource(TYPE, "Ebs");
    r.timeout = std::time::Duration::from_secs(8);
    let started = std::time::Instant::now();
    let failed = r.create(json!({}));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "answered after the Lambda deadline"
    );
    assert_eq!(failed.status(), "FAILED");
    // The budget is the 8 s deadline less the 5 s kept back for the response: the reason says how long
    // the handler ran, which is within the deadline (how far within depends on the machine's load).
    let reason = failed.reason();
    let ran: u64 = reason
        .strip_prefix("timed out after ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a deadline reason: {reason}"));
    assert!(ran < 8, "{reason}");
    assert!(
        reason.contains(" s while calling ec2:GetEbsEncryptionByDefault: answering now"),
        "{reason}"
    );
}

/// The ledger's parameters whose name starts with `prefix`.
fn ledger_entries(w: &World, prefix: &str) -> Vec<String> {
    ledger_parameters(w)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn a_second_claimant_asking_for_another_key_is_refused_and_its_rollback_changes_nothing() {
    let w = world();
    let mut first = w.resource(TYPE, "EbsDefault");
    assert_eq!(first.create(json!({})).status(), "SUCCESS");
    let other_key = customer_key(&w, "alias/other");

    let mut second = w.resource(TYPE, "EbsElsewhere");
    let refused = second.create(json!({"KmsKeyId": "alias/other"}));
    assert_eq!(refused.status(), "FAILED");
    let reason = refused.reason();
    assert!(
        reason.contains("already claimed by EbsDefault in stack tap-test"),
        "the other claimant is named: {reason}"
    );
    assert!(reason.contains(&other_key), "{reason}");
    assert_eq!(ebs_state(&w), (true, managed_key(&w)), "nothing was changed");

    // CloudFormation's rollback Delete of the failed Create leaves the first claimant's setting alone.
    let rolled_back = second.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    assert_eq!(ebs_state(&w), (true, managed_key(&w)));
    assert_eq!(
        ledger_entries(&w, "/tapguard/claims/").len(),
        1,
        "{:?}",
        ledger_parameters(&w)
    );
}

#[test]
fn a_create_failing_at_each_mutating_step_leaves_the_region_as_it_was() {
    // The ledger writes, the key change and the switch-on: wherever the Create fails, it is undone
    // before the answer, and the rollback Delete after it finds nothing left to do.
    let steps = [
        ("ssm", "PutParameter", "AccessDeniedException", 400),
        ("ec2", "ModifyEbsDefaultKmsKeyId", "InvalidParameterValue", 400),
        ("ec2", "EnableEbsEncryptionByDefault", "UnauthorizedOperation", 403),
    ];
    for (service, operation, code, status) in steps {
        let w = world();
        let managed = managed_key(&w);
        customer_key(&w, "alias/tap-ebs");
        w.fault(json!({"service": service, "operation": operation, "code": code, "status": status, "count": 1}));
        let mut r = w.resource(TYPE, "Ebs");
        let failed = r.create(json!({"KmsKeyId": "alias/tap-ebs"}));
        assert_eq!(failed.status(), "FAILED", "{operation}");
        assert!(
            failed.reason().starts_with(&format!("{operation} failed: {code}")),
            "{operation}: {}",
            failed.reason()
        );
        assert_eq!(ebs_state(&w), (false, managed.clone()), "after {operation} failed");
        assert!(
            ledger_parameters(&w).is_empty(),
            "{operation}: {:?}",
            ledger_parameters(&w)
        );

        let rolled_back = r.delete();
        assert_eq!(rolled_back.status(), "SUCCESS", "{operation}: {}", rolled_back.reason());
        assert_eq!(ebs_state(&w), (false, managed), "after the rollback of {operation}");
    }
}

#[test]
fn a_create_cut_by_the_deadline_is_undone_by_its_rollback_delete() {
    let w = world();
    let managed = managed_key(&w);
    let key_arn = customer_key(&w, "alias/tap-ebs");
    // The key is set, then the switch-on hangs past the deadline (and fails, so it never lands later).
    w.fault(
        json!({"service": "ec2", "operation": "EnableEbsEncryptionByDefault", "delay_ms": 20000,
        "code": "InternalError", "status": 500, "count": 1}),
    );
    let mut r = w.resource(TYPE, "Ebs");
    // Time enough for the steps before the switch-on even on a loaded machine (the handler gets what
    // the answer's reserve leaves), and still well short of the 20 s the switch-on hangs.
    r.timeout = std::time::Duration::from_secs(14);
    let cut = r.create(json!({"KmsKeyId": "alias/tap-ebs"}));
    assert_eq!(cut.status(), "FAILED");
    assert!(cut.reason().starts_with("timed out after"), "{}", cut.reason());
    assert!(cut.physical_id().starts_with("tapguard-failed-create:"));
    assert_eq!(ebs_state(&w), (false, key_arn), "cut off after the key was changed");

    r.timeout = std::time::Duration::from_secs(60);
    let rolled_back = r.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    assert_eq!(ebs_state(&w), (false, managed), "the rollback Delete put the key back");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn an_update_failing_part_way_is_put_right_by_the_rollback_update() {
    let w = world();
    let managed = managed_key(&w);
    customer_key(&w, "alias/tap-ebs");
    let mut r = w.resource(TYPE, "Ebs");
    assert_eq!(r.create(json!({})).status(), "SUCCESS");

    w.fault(
        json!({"service": "ec2", "operation": "ModifyEbsDefaultKmsKeyId", "code": "InvalidParameterValue", "count": 1}),
    );
    let failed = r.update(json!({"KmsKeyId": "alias/tap-ebs"}));
    assert_eq!(failed.status(), "FAILED");
    // CloudFormation now sends the old properties back as an Update.
    let rollback = r.update(json!({}));
    assert_eq!(rollback.status(), "SUCCESS", "{}", rollback.reason());
    assert_eq!(ebs_state(&w), (true, managed.clone()));

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(
        ebs_state(&w),
        (false, managed),
        "the claim went back to what the rollback asked"
    );
}

#[test]
fn a_deleted_ledger_turns_nothing_off() {
    let w = world();
    let mut r = w.resource(TYPE, "Ebs");
    assert_eq!(r.create(json!({})).status(), "SUCCESS");
    let names = ledger_parameters(&w);
    assert_eq!(names.len(), 2, "a record and a claim: {names:?}");
    w.json_call("ssm", "AmazonSSM.DeleteParameters", json!({"Names": names}));

    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(
        ebs_state(&w),
        (true, managed_key(&w)),
        "with the prior state unknown, encryption stays on"
    );
    assert!(!w
        .operations("ec2")
        .contains(&"DisableEbsEncryptionByDefault".to_string()));
}

#[test]
fn an_old_format_id_moves_into_the_ledger_and_is_still_restored() {
    // A resource made by the previous version: encryption turned on, the prior state in its id.
    let w = world();
    let managed = managed_key(&w);
    w.query("ec2", &[("Action", "EnableEbsEncryptionByDefault")]);
    let old_id = format!("ebs-default-encryption:{REGION}:was-enabled=false:was-key={managed}");
    let mut old = w.resource(TYPE, "Ebs");
    old.physical_id = Some(old_id.clone());
    old.properties = json!({});

    let updated = old.update(json!({}));
    assert_eq!(updated.status(), "SUCCESS", "{}", updated.reason());
    assert_eq!(
        updated.physical_id(),
        old_id,
        "the id stays: a new one would be a replacement"
    );
    assert_eq!(updated.data("PreviouslyEnabled"), Some("false"));
    assert_eq!(ledger_entries(&w, "/tapguard/claims/ebs/default-encryption/").len(), 1);

    // A replacement claims it too; the old one's Delete leaves it on, the last one's turns it off.
    let mut new = w.resource(TYPE, "EbsRenamed");
    assert_eq!(new.create(json!({})).status(), "SUCCESS");
    assert_eq!(old.delete().status(), "SUCCESS");
    assert_eq!(ebs_state(&w), (true, managed.clone()));
    assert_eq!(new.delete().status(), "SUCCESS");
    assert_eq!(ebs_state(&w), (false, managed));
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

/// (compliance status, record state) of the drift findings tapguard imported into Security Hub.
fn drift_findings(w: &World) -> Vec<(String, String)> {
    let answer = w.rest_call(
        "securityhub",
        "POST",
        "/findings",
        Some(
            json!({"Filters": {"GeneratorId": [{"Value": "tapguard/ebs-default-encryption", "Comparison": "EQUALS"}]}}),
        ),
    );
    answer["Findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            (
                f["Compliance"]["Status"].as_str().unwrap_or_default().to_string(),
                f["RecordState"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_verify_pass_finds_drift_publishes_it_and_reads_only() {
    let w = world();
    w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false})),
    );
    let mut r = w.resource(TYPE, "Ebs");
    assert_eq!(r.create(json!({})).status(), "SUCCESS");

    // A held baseline: no drift, and the pass only reads the account's settings.
    let before = w.operations("ec2").len();
    let held = verify_pass(&w.host);
    assert_eq!(
        (held["resources"].as_u64(), held["drifted"].as_u64()),
        (Some(1), Some(0)),
        "{held}"
    );
    let during = w.operations("ec2")[before..].to_vec();
    assert!(mutating(&during).is_empty() && !during.is_empty(), "{during:?}");
    assert_eq!(drift_metric(&w.host, Some("Ebs"), "EBS.EncryptionByDefault"), vec![0.0]);
    assert!(drift_findings(&w).is_empty(), "{:?}", drift_findings(&w));

    // Someone turns encryption by default off behind the stack's back.
    w.query("ec2", &[("Action", "DisableEbsEncryptionByDefault")]);
    let drifted = verify_pass(&w.host);
    assert_eq!(drifted["drifted"].as_u64(), Some(1), "{drifted}");
    let checks = &drifted["reports"][0]["checks"];
    let encryption = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["control"] == "EBS.EncryptionByDefault")
        .expect("the encryption control is checked");
    assert_eq!(
        (encryption["verdict"].as_str(), encryption["observed"].as_str()),
        (Some("drifted"), Some("false"))
    );
    assert_eq!(
        drift_metric(&w.host, Some("Ebs"), "EBS.EncryptionByDefault"),
        vec![0.0, 1.0]
    );
    assert_eq!(drift_findings(&w), vec![("FAILED".to_string(), "ACTIVE".to_string())]);
    assert!(!ebs_state(&w).0, "verify does not repair");

    // Put back by hand: the next pass archives the finding.
    w.query("ec2", &[("Action", "EnableEbsEncryptionByDefault")]);
    let again = verify_pass(&w.host);
    assert_eq!(
        (again["drifted"].as_u64(), again["findings_archived"].as_u64()),
        (Some(0), Some(1)),
        "{again}"
    );
    assert_eq!(drift_findings(&w), vec![("PASSED".to_string(), "ARCHIVED".to_string())]);
}

/// The report of `logical_id` in a verify pass's summary.
fn report_of<'a>(pass: &'a Value, logical_id: &str) -> &'a Value {
    pass["reports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["logical_id"] == logical_id)
        .unwrap_or_else(|| panic!("no report of {logical_id}: {pass}"))
}

#[test]
fn repair_drift_puts_the_default_back_on_the_scheduled_pass_only_for_its_sole_claimant() {
    let w = world();
    let managed = managed_key(&w);
    let mut r = w.resource(TYPE, "Ebs");
    let created = r.create(json!({"RepairDrift": "true"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    // Turned off behind the stack's back: the scheduled pass reports the drift and puts it back.
    w.query("ec2", &[("Action", "DisableEbsEncryptionByDefault")]);
    let before = w.operations("ec2").len();
    let repaired = verify_pass(&w.host);
    assert_eq!(
        (repaired["drifted"].as_u64(), repaired["repaired"].as_u64()),
        (Some(1), Some(1)),
        "{repaired}"
    );
    let note = &report_of(&repaired, "Ebs")["repairs"][0];
    assert_eq!(note["repaired"], true, "{repaired}");
    assert!(note["detail"].as_str().unwrap().contains("turned back on"), "{note}");
    assert_eq!(
        mutating(&w.operations("ec2")[before..]),
        vec!["EnableEbsEncryptionByDefault"],
        "only what drifted is changed"
    );
    assert_eq!(ebs_state(&w), (true, managed.clone()));
    assert!(
        w.host.logs().contains("drift repaired (RepairDrift)"),
        "the change is logged"
    );
    let held = verify_pass(&w.host);
    assert_eq!(
        (held["drifted"].as_u64(), held["repaired"].as_u64()),
        (Some(0), Some(0)),
        "{held}"
    );

    // An Update without RepairDrift takes it back: drift is then only reported.
    assert_eq!(r.update(json!({})).status(), "SUCCESS");
    w.query("ec2", &[("Action", "DisableEbsEncryptionByDefault")]);
    let reported = verify_pass(&w.host);
    assert_eq!(
        (reported["drifted"].as_u64(), reported["repaired"].as_u64()),
        (Some(1), Some(0)),
        "{reported}"
    );
    assert!(report_of(&reported, "Ebs").get("repairs").is_none(), "{reported}");
    assert!(!ebs_state(&w).0);

    // Asked again, but another resource now claims the setting too: the drift cannot be attributed.
    assert_eq!(r.update(json!({"RepairDrift": true})).status(), "SUCCESS");
    let mut other = w.resource(TYPE, "EbsRenamed");
    assert_eq!(other.create(json!({})).status(), "SUCCESS");
    w.query("ec2", &[("Action", "DisableEbsEncryptionByDefault")]);
    let shared = verify_pass(&w.host);
    assert_eq!(shared["repaired"].as_u64(), Some(0), "{shared}");
    let note = &report_of(&shared, "Ebs")["repairs"][0];
    assert!(
        note["detail"]
            .as_str()
            .unwrap()
            .starts_with("not repaired: also claimed by EbsRenamed in stack tap-test"),
        "{note}"
    );
    assert!(!ebs_state(&w).0, "left as it is");
}

/// Makes this world's chosen EC2 reads answer their previous value for `reads` reads after each write,
/// as an eventually consistent API does (emulator/README.md).
fn stale_reads(w: &World, reads: u32, which: &[&str]) {
    emulator().control(
        "/tapguard/consistency/behave",
        json!({"account": w.account.account_id, "region": REGION, "stale_reads": reads, "reads": which}),
    );
}

/// The operations of this world's account on `service` from the first `after` on.
fn operations_after(w: &World, service: &str, after: &str) -> Vec<String> {
    let ops = w.operations(service);
    let start = ops
        .iter()
        .position(|op| op == after)
        .unwrap_or_else(|| panic!("no {after}: {ops:?}"));
    ops[start..].to_vec()
}

#[test]
fn another_services_aws_managed_key_a_key_policy_without_the_auto_scaling_role_and_a_key_pending_deletion_are_refused()
{
    let w = world();
    let mut r = w.resource(TYPE, "Ebs");

    // The AWS managed key of S3 (DescribeKey of its predefined alias makes it, as KMS does).
    let s3 = w.json_call("kms", "TrentService.DescribeKey", json!({"KeyId": "alias/aws/s3"}));
    assert_eq!(s3["KeyMetadata"]["KeyManager"], "AWS", "{s3}");
    let s3_arn = s3["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
    let refused = r.create(json!({"KmsKeyId": s3_arn}));
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused.reason().starts_with(&format!(
            "invalid property KmsKeyId: {s3_arn}: DescribeKey says it is an AWS managed key (KeyManager AWS"
        )),
        "{}",
        refused.reason()
    );
    assert!(
        refused.reason().contains("Give alias/aws/ebs (or no key)"),
        "{}",
        refused.reason()
    );

    // A customer managed key with KMS's default key policy: the account may use it, the Auto Scaling
    // service-linked role may not.
    customer_key_with(&w, "alias/default-policy", None);
    let refused = r.create(json!({"KmsKeyId": "alias/default-policy"}));
    assert_eq!(refused.status(), "FAILED");
    let reason = refused.reason();
    assert!(
        reason.starts_with(
            "invalid property KmsKeyId: alias/default-policy: its key policy (GetKeyPolicy) does not let EBS use it"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("AWSServiceRoleForAutoScaling use the key for kms:Encrypt"),
        "{reason}"
    );
    assert!(
        !reason.contains("through EC2 (kms:ViaService"),
        "the account's principals may: {reason}"
    );
    assert!(w.operations("kms").contains(&"GetKeyPolicy".to_string()));

    // A key that is scheduled for deletion.
    let doomed = customer_key(&w, "alias/doomed");
    w.json_call(
        "kms",
        "TrentService.ScheduleKeyDeletion",
        json!({"KeyId": doomed.rsplit('/').next().unwrap(), "PendingWindowInDays": 7}),
    );
    let refused = r.create(json!({"KmsKeyId": "alias/doomed"}));
    assert_eq!(refused.status(), "FAILED");
    assert!(
        refused
            .reason()
            .contains("alias/doomed: the key is PendingDeletion (scheduled for deletion"),
        "{}",
        refused.reason()
    );
    assert!(
        refused.reason().contains("cancel the deletion (CancelKeyDeletion)"),
        "{}",
        refused.reason()
    );

    assert!(mutating(&w.operations("ec2")).is_empty(), "{:?}", w.operations("ec2"));
    assert_eq!(ebs_state(&w), (false, managed_key(&w)), "nothing was changed");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));

    // The AWS managed key of EBS itself, given by its key id, is the managed default.
    let ebs = w.json_call("kms", "TrentService.DescribeKey", json!({"KeyId": "alias/aws/ebs"}));
    let ebs_id = ebs["KeyMetadata"]["KeyId"].as_str().unwrap();
    let created = r.create(json!({"KmsKeyId": ebs_id}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("KmsKeyId"), Some(managed_key(&w).as_str()));
    assert_eq!(mutating(&w.operations("ec2")), vec!["EnableEbsEncryptionByDefault"]);
}

#[test]
fn a_prior_key_scheduled_for_deletion_gives_way_to_the_aws_managed_key_on_delete() {
    let w = world();
    let prior = customer_key(&w, "alias/prior");
    w.query(
        "ec2",
        &[("Action", "ModifyEbsDefaultKmsKeyId"), ("KmsKeyId", prior.as_str())],
    );
    customer_key(&w, "alias/tap-ebs");
    let mut r = w.resource(TYPE, "Ebs");
    let created = r.create(json!({"KmsKeyId": "alias/tap-ebs"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());

    // The prior key is scheduled for deletion while the stack runs: as the default it would break every
    // encrypted launch, and the resource's own key must not outlive it either.
    w.json_call(
        "kms",
        "TrentService.ScheduleKeyDeletion",
        json!({"KeyId": prior.rsplit('/').next().unwrap(), "PendingWindowInDays": 7}),
    );
    let deleted = r.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}", deleted.reason());
    assert_eq!(ebs_state(&w), (false, managed_key(&w)));
    assert!(
        w.host.logs().contains("the prior default EBS key cannot be put back"),
        "the choice is logged"
    );
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}

#[test]
fn a_read_back_that_ec2_shows_late_is_read_again_and_then_success() {
    let w = world();
    let key = customer_key(&w, "alias/tap-ebs");
    stale_reads(&w, 2, &["GetEbsEncryptionByDefault", "GetEbsDefaultKmsKeyId"]);
    let mut r = w.resource(TYPE, "Ebs");
    let created = r.create(json!({"KmsKeyId": "alias/tap-ebs"}));
    assert_eq!(created.status(), "SUCCESS", "{}", created.reason());
    assert_eq!(created.data("KmsKeyId"), Some(key.as_str()));
    // Two reads still answer the values before the writes, the third the new ones.
    let read = |op: &str| ["GetEbsEncryptionByDefault".to_string(), op.to_string()];
    let mut expected = vec!["EnableEbsEncryptionByDefault".to_string()];
    for _ in 0..3 {
        expected.extend(read("GetEbsDefaultKmsKeyId"));
    }
    assert_eq!(operations_after(&w, "ec2", "EnableEbsEncryptionByDefault"), expected);
    assert!(w.host.logs().contains("reading again"), "the repeated reads are logged");
    assert_eq!(ebs_state(&w), (true, key));
}

#[test]
fn reads_stale_past_the_bound_are_failed_naming_the_operation_and_the_rollback_restores_the_region() {
    let w = world();
    stale_reads(&w, 5, &["GetEbsEncryptionByDefault"]);
    let mut r = w.resource(TYPE, "Ebs");
    let failed = r.create(json!({}));
    assert_eq!(failed.status(), "FAILED");
    assert!(
        failed.reason().starts_with(
            "not verified: GetEbsEncryptionByDefault still answers false in eu-west-1 after \
             EnableEbsEncryptionByDefault (5 reads with backoff"
        ),
        "{}",
        failed.reason()
    );
    let reads = operations_after(&w, "ec2", "EnableEbsEncryptionByDefault")
        .iter()
        .skip(1)
        .take_while(|op| op.starts_with("Get"))
        .filter(|op| *op == "GetEbsEncryptionByDefault")
        .count();
    assert_eq!(
        reads, 6,
        "the bound, five reads, then the undo's own read before it turns encryption off"
    );

    let rolled_back = r.delete();
    assert_eq!(rolled_back.status(), "SUCCESS", "{}", rolled_back.reason());
    assert_eq!(ebs_state(&w), (false, managed_key(&w)), "the region as it was");
    assert!(ledger_parameters(&w).is_empty(), "{:?}", ledger_parameters(&w));
}
