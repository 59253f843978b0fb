//! The deployer binary `tapguard`, run as a user runs it, against the emulator.
//! `local` plays the real handler binaries; `deploy`/`status`/`delete` talk to the emulator's CloudFormation.
//! Build it first: `cargo build -p tapguard` (make test builds every binary).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use tapguard_tests::*;

const REGION: &str = "eu-west-1";

fn fixture_path(name: &str) -> PathBuf {
    root().join("tests/fixtures/deployer").join(name)
}

/// Runs `tapguard` with `args` against this test process's emulator; returns (exit code, stdout, stderr).
fn tapguard(args: &[&str]) -> (i32, String, String) {
    let output: Output = Command::new(binary_path("tapguard"))
        .args(args)
        .env("TAPGUARD_EMULATOR_URL", &emulator().url)
        .env_remove("AWS_PROFILE")
        .current_dir(root())
        .output()
        .expect("run tapguard");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

fn local(template: &str, account: &Account, extra: &[&str]) -> (i32, String, String) {
    let template = fixture_path(template);
    let mut args = vec![
        "local",
        "--template",
        template.to_str().expect("utf-8 path"),
        "--region",
        REGION,
        "--account",
        &account.account_id,
    ];
    args.extend_from_slice(extra);
    tapguard(&args)
}

/// (encryption by default on?, default KMS key) in `account`, as the emulator holds them now.
fn ebs_state(account: &Account) -> (bool, String) {
    ebs_state_in(account, REGION)
}

fn ebs_state_in(account: &Account, region: &str) -> (bool, String) {
    let enabled = emulator().query(account, region, "ec2", &[("Action", "GetEbsEncryptionByDefault")]);
    let key = emulator().query(account, region, "ec2", &[("Action", "GetEbsDefaultKmsKeyId")]);
    (
        xml_value(&enabled, "ebsEncryptionByDefault") == Some("true"),
        xml_value(&key, "kmsKeyId").unwrap_or_default().to_string(),
    )
}

/// The table of targets and outcomes at the end of a run, one `target (padded to 32) outcome` line
/// per target, whatever the table's borders and column widths.
fn outcomes_table(out: &str) -> String {
    let mut lines = out.lines().skip_while(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.first() != Some(&"target") || words.last() != Some(&"outcome")
    });
    lines.next();
    lines
        .filter_map(|l| {
            let l = l.trim();
            let (target, rest) = l.split_once(char::is_whitespace)?;
            let rest = rest.trim_start();
            let text = rest
                .strip_prefix("ok")
                .or_else(|| rest.strip_prefix("FAILED"))
                .unwrap_or(rest)
                .trim();
            Some(format!("{target:<32} {text}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_index(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("output lacks {needle:?}:\n{text}"))
}

#[test]
fn local_plays_custom_resources_in_dependency_order_and_leaves_them_in_place() {
    let account = emulator().fresh_account();
    let (code, out, err) = local(
        "local-ebs.yml",
        &account,
        &["--parameter", "CreateSecondRegionSetting=true"],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");

    let managed = format!("arn:aws:kms:{REGION}:{}:alias/aws/ebs", account.account_id);
    assert!(
        out.contains("not played (not custom resources): BaselineKey (AWS::KMS::Key)"),
        "{out}"
    );
    // The dependant comes after the resource whose Data it reads, and gets that Data as its property.
    let first = line_index(
        &out,
        "[1/2] EbsEncryption (Custom::EbsDefaultEncryption) by ebs-default-encryption",
    );
    let second = line_index(&out, "[2/2] EbsEncryptionCheck (Custom::EbsDefaultEncryption)");
    assert!(first < second);
    assert!(out.contains(&format!("    Data.KmsKeyId: {managed}")), "{out}");
    assert!(out.contains("    Data.PreviouslyEnabled: false"), "{out}");
    assert!(out.contains("  EbsEncryptionEnabled: true"), "{out}");
    assert!(out.contains(&format!("  EbsDefaultKey: {managed}")), "{out}");
    assert!(
        out.contains("  BaselineKeyArn: (from a resource not played locally)"),
        "{out}"
    );
    assert!(!out.contains("teardown"), "{out}");
    assert!(out.contains("local: 2 custom resource(s) created\n"), "{out}");

    // Created for real, and left in place without --teardown.
    assert!(ebs_state(&account).0, "encryption by default is on");
    let ops = emulator().operations(&account.account_id, "ec2");
    assert_eq!(
        mutating(&ops),
        vec!["EnableEbsEncryptionByDefault"],
        "the second resource names the managed key by the alias ARN the first read back: the same \
         setting, found in place: {ops:?}"
    );
    assert!(!ops.contains(&"DisableEbsEncryptionByDefault".to_string()), "{ops:?}");
}

#[test]
fn local_teardown_deletes_in_reverse_order_and_restores_the_account() {
    let account = emulator().fresh_account();
    let before = ebs_state(&account);
    let (code, out, err) = local(
        "local-ebs.yml",
        &account,
        &["--parameter", "CreateSecondRegionSetting=true", "--teardown"],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let teardown = line_index(&out, "teardown: Deletes in reverse order");
    let check = line_index(
        &out[teardown..],
        "EbsEncryptionCheck (Custom::EbsDefaultEncryption)\n  Delete SUCCESS",
    );
    let main = line_index(
        &out[teardown..],
        "\nEbsEncryption (Custom::EbsDefaultEncryption)\n  Delete SUCCESS",
    );
    assert!(check < main, "dependants are deleted first:\n{out}");
    assert!(out.contains("local: 2 custom resource(s) created and deleted"), "{out}");
    assert_eq!(
        ebs_state(&account),
        before,
        "the Deletes put the account back as it was"
    );
    assert!(emulator()
        .operations(&account.account_id, "ec2")
        .contains(&"DisableEbsEncryptionByDefault".to_string()));
}

/// A key policy that lets EBS use the key (the handler refuses others): TapStack's BaselineKey statement.
fn ebs_key_policy(account: &Account) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", account.account_id)},
         "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Resource": "*",
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
         "Condition": {"StringEquals": {"kms:CallerAccount": account.account_id,
                                        "kms:ViaService": format!("ec2.{REGION}.amazonaws.com")}}}]})
}

#[test]
fn local_condition_false_skips_the_resource_and_parameters_reach_the_handler() {
    let account = emulator().fresh_account();
    let created = emulator().json_call(
        &account,
        REGION,
        "kms",
        "TrentService.CreateKey",
        json!({"Policy": ebs_key_policy(&account).to_string()}),
    );
    let key_arn = created["KeyMetadata"]["Arn"].as_str().expect("key ARN").to_string();
    let parameter = format!("EbsKmsKeyId={key_arn}");
    let (code, out, err) = local("local-ebs.yml", &account, &["--parameter", &parameter]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("skipped: EbsEncryptionCheck (condition SecondSetting is false)"),
        "{out}"
    );
    assert!(out.contains("1 custom resource(s) to play"), "{out}");
    assert!(out.contains(&format!("    Data.KmsKeyId: {key_arn}")), "{out}");
    assert_eq!(ebs_state(&account), (true, key_arn));
}

#[test]
fn local_failure_names_the_root_cause_and_rolls_back() {
    let account = emulator().fresh_account();
    let (code, out, err) = local("local-placeholder-key.json", &account, &[]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    // A key ARN in the shape KMS gives, naming a key that does not exist.
    let placeholder = format!(
        "note: GetAtt BaselineKey.Arn (AWS::KMS::Key) is not played locally: placeholder \"arn:aws:kms:{REGION}:{}:key/00000000-0000-4000-8000-",
        account.account_id
    );
    assert!(out.contains(&placeholder), "{out}");
    assert!(
        out.contains("(give a real one with --resource-value BaselineKey.Arn=...)"),
        "{out}"
    );
    assert!(out.contains("  Create FAILED"), "{out}");
    assert!(out.contains("rolling back: Deletes in reverse order"), "{out}");
    // The handler's own reason, not a generic one: the operation and the AWS error code.
    let root_cause = out
        .lines()
        .find(|l| l.starts_with("local: FAILED, root cause: EbsEncryption: "))
        .unwrap_or_else(|| panic!("no root cause line:\n{out}"));
    assert!(root_cause.contains("DescribeKey"), "{root_cause}");
    assert!(root_cause.contains("NotFoundException"), "{root_cause}");
    assert!(!ebs_state(&account).0, "nothing was turned on");
    assert!(mutating(&emulator().operations(&account.account_id, "ec2")).is_empty());
}

#[test]
fn local_resource_value_replaces_the_placeholder() {
    let account = emulator().fresh_account();
    let policy = ebs_key_policy(&account);
    let created = emulator().json_call(
        &account,
        REGION,
        "kms",
        "TrentService.CreateKey",
        json!({"Policy": policy.to_string()}),
    );
    let key_arn = created["KeyMetadata"]["Arn"].as_str().expect("key ARN").to_string();
    let value = format!("BaselineKey.Arn={key_arn}");
    let (code, out, err) = local(
        "local-placeholder-key.json",
        &account,
        &["--resource-value", &value, "--teardown"],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains("note:"), "no placeholder was needed: {out}");
    assert!(out.contains(&format!("    Data.KmsKeyId: {key_arn}")), "{out}");
    assert!(!ebs_state(&account).0, "torn down");
}

#[test]
fn local_refuses_bad_parameters_before_running_anything() {
    let account = emulator().fresh_account();
    let (code, _, err) = local("local-ebs.yml", &account, &["--parameter", "NoSuchParameter=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("parameters not in the template: NoSuchParameter"), "{err}");
    let (code, _, err) = local(
        "local-ebs.yml",
        &account,
        &["--parameter", "CreateSecondRegionSetting=maybe"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("parameter CreateSecondRegionSetting: \"maybe\" is not one of its AllowedValues (true, false)"),
        "{err}"
    );
    assert!(emulator().calls(&account.account_id, None).is_empty());
}

// ---- deploy / status / delete against the emulator's CloudFormation ----

/// A fresh audit log path for one run.
fn audit_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tapguard-test-{name}-{:016x}.jsonl", rand_id()))
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// Runs `tapguard` with the credentials of `account` (the "current" credentials of a user).
fn tapguard_as(account: &Account, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary_path("tapguard"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(emulator().sdk_env(account, REGION))
        .current_dir(root())
        .output()
        .expect("run tapguard");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn deploy(account: &Account, stack: &str, template: &str, audit: &Path, extra: &[&str]) -> (i32, String, String) {
    deploy_with(account, stack, template, audit, "--yes", extra)
}

/// `deploy` with `mode` in place of `--yes` (`--no-execute` refuses `--yes`: it has nothing to confirm).
fn deploy_with(
    account: &Account,
    stack: &str,
    template: &str,
    audit: &Path,
    mode: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let template = fixture_path(template);
    let mut args = vec![
        "deploy",
        "--stack-name",
        stack,
        "--template",
        template.to_str().unwrap(),
        mode,
        "--poll-interval-ms",
        "100",
        "--audit-log",
        audit.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tapguard_as(account, &args)
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line {l:?}: {e}")))
        .collect()
}

/// (logical id, status) of the event lines a target printed, in order.
fn event_lines(out: &str, target: &str) -> Vec<(String, String)> {
    let prefix = format!("[{target}] 20");
    out.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[2].to_string(), fields[4].to_string())
        })
        .collect()
}

/// An S3 GET in the emulator, the body as text (an error document too).
fn s3_get(account: &Account, region: &str, path: &str) -> String {
    match emulator().rest_call(account, region, "s3", "GET", path, None) {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

/// The deployer's bucket is private (every public-access block on) and encrypted (AES256).
fn assert_private_and_encrypted(account: &Account, region: &str, bucket: &str, label: &str) {
    let block = s3_get(account, region, &format!("/{bucket}?publicAccessBlock"));
    for setting in [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(xml_value(&block, setting), Some("true"), "{label} {setting}: {block}");
    }
    let encryption = s3_get(account, region, &format!("/{bucket}?encryption"));
    assert_eq!(
        xml_value(&encryption, "SSEAlgorithm"),
        Some("AES256"),
        "{label}: {encryption}"
    );
}

fn stack_status(account: &Account, region: &str, stack: &str) -> Option<String> {
    let xml = emulator().query(
        account,
        region,
        "cloudformation",
        &[("Action", "DescribeStacks"), ("StackName", stack)],
    );
    xml_value(&xml, "StackStatus").map(str::to_string)
}

fn fate(account: &Account, region: &str, body: serde_json::Value) {
    let mut body = body;
    body["account"] = json!(account.account_id);
    body["region"] = json!(region);
    emulator().control("/tapguard/cloudformation/fate", body);
}

#[test]
fn deploy_creates_updates_and_treats_no_changes_as_success_with_an_audit_trail() {
    let account = emulator().fresh_account();
    let audit = audit_path("create");
    let (code, out, err) = deploy(&account, "TapStack", "stack.yml", &audit, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // The change set is shown before it runs.
    let shown = line_index(&out, &format!("[{REGION}]   Add      AlarmTopic"));
    let executing = line_index(&out, &format!("[{REGION}] executing tapguard-"));
    assert!(shown < executing, "{out}");
    assert_eq!(
        event_lines(&out, REGION),
        [
            ("TapStack", "CREATE_IN_PROGRESS"),
            ("AlarmTopic", "CREATE_IN_PROGRESS"),
            ("AlarmTopic", "CREATE_IN_PROGRESS"),
            ("AlarmTopic", "CREATE_COMPLETE"),
            ("BaselineMarker", "CREATE_IN_PROGRESS"),
            ("BaselineMarker", "CREATE_IN_PROGRESS"),
            ("BaselineMarker", "CREATE_COMPLETE"),
            ("TapStack", "CREATE_COMPLETE"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
        "{out}"
    );
    assert_eq!(
        stack_status(&account, REGION, "TapStack").as_deref(),
        Some("CREATE_COMPLETE")
    );

    // The audit log, line by line: the run, the change set, each event once, the final status.
    let lines = audit_lines(&audit);
    for line in &lines {
        for field in ["target", "time", "kind", "detail"] {
            assert!(line.get(field).is_some(), "audit line without {field}: {line}");
        }
        let text = line.to_string();
        assert!(
            !text.contains(&account.secret_access_key) && !text.contains(&account.session_token),
            "{text}"
        );
    }
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    let events: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "stack_event").collect();
    assert_eq!(events.len(), 8, "{lines:#?}");
    assert_eq!(events[3]["detail"]["logical_id"], "AlarmTopic");
    assert_eq!(events[3]["detail"]["status"], "CREATE_COMPLETE");
    assert!(events.iter().all(|e| e["target"] == REGION));
    let final_status = lines
        .iter()
        .find(|l| l["kind"] == "final_status")
        .expect("final status");
    assert_eq!(
        final_status["detail"],
        json!({"good": true, "outcome": "CREATE_COMPLETE"})
    );
    // The stack did not exist yet: that lookup failed, and the log says so with its code.
    let missing = lines
        .iter()
        .find(|l| l["kind"] == "api_error")
        .expect("the DescribeStacks miss");
    assert_eq!(missing["detail"]["operation"], "DescribeStacks");
    assert_eq!(missing["detail"]["code"], "ValidationError");

    // Same template again: no changes, which is success, and nothing executed.
    let (code, out, _) = deploy(&account, "TapStack", "stack.yml", &audit, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("[{REGION}] no changes: stack TapStack is already up to date")),
        "{out}"
    );
    assert!(!out.contains("executing"), "{out}");
    let ops = emulator().operations(&account.account_id, "cloudformation");
    assert_eq!(ops.iter().filter(|o| *o == "ExecuteChangeSet").count(), 1, "{ops:?}");

    // An update: the modification and the addition are shown, and only new events are streamed.
    let (code, out, err) = deploy(&account, "TapStack", "stack-v2.yml", &audit, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("Add      AuditMarker"), "{out}");
    assert!(out.contains("Modify   BaselineMarker"), "{out}");
    let events = event_lines(&out, REGION);
    assert_eq!(
        events.first().map(|e| e.1.as_str()),
        Some("UPDATE_IN_PROGRESS"),
        "{out}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.1.starts_with("CREATE_COMPLETE") && e.0 == "AlarmTopic"),
        "{out}"
    );
    assert!(
        events.contains(&("AuditMarker".into(), "CREATE_COMPLETE".into())),
        "{out}"
    );
    assert!(
        events.contains(&("BaselineMarker".into(), "UPDATE_COMPLETE".into())),
        "{out}"
    );
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("UPDATE_COMPLETE"));
    assert_eq!(
        stack_status(&account, REGION, "TapStack").as_deref(),
        Some("UPDATE_COMPLETE")
    );
}

#[test]
fn a_failed_creation_names_the_resource_and_its_reason_and_the_stack_must_be_deleted_first() {
    let account = emulator().fresh_account();
    let reason = "Received response status [FAILED] from custom resource. Message returned: PutParameter failed: AccessDeniedException: denied (grant ssm:PutParameter)";
    fate(
        &account,
        REGION,
        json!({"stack": "TapStack", "logical_id": "BaselineMarker", "operation": "CREATE", "reason": reason, "count": 1}),
    );
    let audit = audit_path("failed");
    let (code, out, _) = deploy(&account, "TapStack", "stack.yml", &audit, &[]);
    assert_eq!(code, 1, "{out}");
    let events = event_lines(&out, REGION);
    let failed = events
        .iter()
        .position(|e| e == &("BaselineMarker".to_string(), "CREATE_FAILED".to_string()))
        .expect("the failure event");
    assert_eq!(
        events[failed + 1],
        ("TapStack".to_string(), "ROLLBACK_IN_PROGRESS".to_string())
    );
    assert!(
        events.contains(&("AlarmTopic".into(), "DELETE_COMPLETE".into())),
        "rolled back: {out}"
    );
    assert_eq!(events.last().unwrap().1, "ROLLBACK_COMPLETE");
    let summary = format!(
        "stack TapStack: ROLLBACK_COMPLETE; root cause: BaselineMarker (AWS::SSM::Parameter) CREATE_FAILED: {reason}"
    );
    assert!(out.contains(&format!("[{REGION}] FAILED: {summary}")), "{out}");
    // The table of targets and outcomes.
    let table = outcomes_table(&out);
    assert!(table.contains(&format!("{REGION:<32} {summary}")), "{table}");
    let final_status = audit_lines(&audit)
        .into_iter()
        .find(|l| l["kind"] == "final_status")
        .unwrap();
    assert_eq!(final_status["detail"]["good"], false);
    assert!(final_status["detail"]["outcome"].as_str().unwrap().contains(reason));

    // A stack in ROLLBACK_COMPLETE cannot be updated: the deployer says to delete it, and calls nothing else.
    let (code, out, _) = deploy(&account, "TapStack", "stack.yml", &audit, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("stack TapStack is in ROLLBACK_COMPLETE: its creation failed and was rolled back: a stack in this state cannot be updated and must be deleted first"),
        "{out}"
    );
    let ops = emulator().operations(&account.account_id, "cloudformation");
    assert_eq!(ops.iter().filter(|o| *o == "CreateChangeSet").count(), 1, "{ops:?}");

    // delete, then the same deploy works.
    let (code, out, _) = tapguard_as(
        &account,
        &[
            "delete",
            "--stack-name",
            "TapStack",
            "--yes",
            "--poll-interval-ms",
            "100",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("[{REGION}] stack TapStack: DELETE_COMPLETE")),
        "{out}"
    );
    assert_eq!(stack_status(&account, REGION, "TapStack"), None);
    let (code, out, _) = deploy(&account, "TapStack", "stack.yml", &audit, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_failed_update_rolls_back_and_a_failed_rollback_is_explained() {
    let account = emulator().fresh_account();
    let audit = audit_path("update");
    assert_eq!(deploy(&account, "TapStack", "stack.yml", &audit, &[]).0, 0);
    fate(
        &account,
        REGION,
        json!({"logical_id": "BaselineMarker", "operation": "UPDATE", "reason": "Parameter value is too long", "count": 1}),
    );
    let (code, out, _) = deploy(&account, "TapStack", "stack-v2.yml", &audit, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("stack TapStack: UPDATE_ROLLBACK_COMPLETE; root cause: BaselineMarker (AWS::SSM::Parameter) UPDATE_FAILED: Parameter value is too long (the update failed and was rolled back"),
        "{out}"
    );
    // The stack keeps working on its previous template: status says so and exits 0.
    let (code, out, _) = tapguard_as(
        &account,
        &[
            "status",
            "--stack-name",
            "TapStack",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("[{REGION}] stack TapStack: UPDATE_ROLLBACK_COMPLETE")),
        "{out}"
    );

    fate(
        &account,
        REGION,
        json!({"logical_id": "AuditMarker", "operation": "UPDATE", "reason": "Rate exceeded", "rollback_fails": true, "count": 1}),
    );
    let (code, out, _) = deploy(&account, "TapStack", "stack-v2.yml", &audit, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "UPDATE_ROLLBACK_FAILED; root cause: AuditMarker (AWS::SSM::Parameter) CREATE_FAILED: Rate exceeded"
        ),
        "{out}"
    );
    assert!(out.contains("continue-update-rollback"), "{out}");
    let (code, out, _) = tapguard_as(
        &account,
        &[
            "status",
            "--stack-name",
            "TapStack",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("an update failed and so did its rollback"), "{out}");
}

#[test]
fn events_are_streamed_as_they_come_each_once_in_order() {
    let account = emulator().fresh_account();
    emulator().control(
        "/tapguard/cloudformation/pace",
        json!({"account": account.account_id, "region": REGION, "event_interval_ms": 150}),
    );
    let audit = audit_path("paced");
    let (code, out, err) = deploy(&account, "TapStack", "stack.yml", &audit, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let events = event_lines(&out, REGION);
    assert_eq!(events.len(), 8, "{out}");
    assert_eq!(events.last().unwrap().1, "CREATE_COMPLETE");
    // Polled many times while the stack was in progress, yet each event was printed once.
    let ops = emulator().operations(&account.account_id, "cloudformation");
    assert!(
        ops.iter().filter(|o| *o == "DescribeStackEvents").count() >= 4,
        "{ops:?}"
    );
    let ids: Vec<String> = audit_lines(&audit)
        .iter()
        .filter(|l| l["kind"] == "stack_event")
        .map(|l| l["detail"]["event_id"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());

    // While it is in progress, another deploy is refused with the reason.
    emulator().control(
        "/tapguard/cloudformation/pace",
        json!({"account": account.account_id, "region": REGION, "event_interval_ms": 1000}),
    );
    let template = fixture_path("stack-v2.yml");
    let child = Command::new(binary_path("tapguard"))
        .args([
            "deploy",
            "--stack-name",
            "TapStack",
            "--template",
            template.to_str().unwrap(),
            "--yes",
        ])
        .args(["--poll-interval-ms", "100", "--audit-log", audit.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(emulator().sdk_env(&account, REGION))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stack_status(&account, REGION, "TapStack").as_deref() != Some("UPDATE_IN_PROGRESS") {
        assert!(std::time::Instant::now() < until, "the update never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (code, out, _) = deploy(&account, "TapStack", "stack.yml", &audit, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("is in UPDATE_IN_PROGRESS: another operation on this stack is in progress"),
        "{out}"
    );
    let first = child.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stdout));
}

#[test]
fn two_accounts_times_two_regions_run_in_parallel_and_stay_apart() {
    let caller = emulator().fresh_account();
    let a = emulator().fresh_account().account_id;
    let b = emulator().fresh_account().account_id;
    let outsider = emulator().fresh_account();
    let regions = "us-east-1,us-west-2";
    let accounts = format!("{a},{b}");
    let audit = audit_path("multi");
    fate(
        &emulator().account(&b),
        "us-west-2",
        json!({"logical_id": "AlarmTopic", "operation": "CREATE", "reason": "Topic limit exceeded"}),
    );
    let (code, out, err) = deploy(
        &caller,
        "TapStack",
        "stack.yml",
        &audit,
        &[
            "--regions",
            regions,
            "--accounts",
            &accounts,
            "--role-name",
            "tapguard-deployer",
            "--external-id",
            "tap-ext-1",
            "--concurrency",
            "4",
        ],
    );
    assert_eq!(code, 1, "one target failed:\n{out}\n{err}");
    for account in [&a, &b] {
        for region in ["us-east-1", "us-west-2"] {
            let target = format!("{account}/{region}");
            let events = event_lines(&out, &target);
            assert!(!events.is_empty(), "no events for {target}:\n{out}");
            let status = stack_status(&emulator().account(account), region, "TapStack");
            if account == &b && region == "us-west-2" {
                assert_eq!(events.last().unwrap().1, "ROLLBACK_COMPLETE");
                assert_eq!(status.as_deref(), Some("ROLLBACK_COMPLETE"));
                assert!(outcomes_table(&out).contains(&format!("{target:<32} stack TapStack: ROLLBACK_COMPLETE; root cause: AlarmTopic (AWS::SNS::Topic) CREATE_FAILED: Topic limit exceeded")), "{out}");
            } else {
                assert_eq!(events.last().unwrap().1, "CREATE_COMPLETE", "{target}:\n{out}");
                assert_eq!(status.as_deref(), Some("CREATE_COMPLETE"));
                assert!(
                    outcomes_table(&out).contains(&format!("{target:<32} CREATE_COMPLETE")),
                    "{out}"
                );
            }
        }
    }
    // The caller's own account and any other account got nothing.
    assert_eq!(stack_status(&caller, "us-east-1", "TapStack"), None);
    assert_eq!(stack_status(&outsider, "us-east-1", "TapStack"), None);
    // Each account was entered with STS, with a session name naming the run.
    let lines = audit_lines(&audit);
    let run = lines[0]["detail"]["run_id"].as_str().unwrap().to_string();
    let assumed: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "assumed_role").collect();
    assert_eq!(assumed.len(), 4);
    for line in assumed {
        let target = line["target"].as_str().unwrap();
        let account = target.split('/').next().unwrap();
        assert_eq!(
            line["detail"]["role_arn"],
            format!("arn:aws:iam::{account}:role/tapguard-deployer")
        );
        assert_eq!(line["detail"]["session_name"], format!("tapguard-{run}"));
        assert_eq!(line["detail"]["external_id_given"], true);
    }
}

#[test]
fn a_role_that_cannot_be_assumed_fails_its_target_only_and_says_why() {
    let caller = emulator().fresh_account();
    let good = emulator().fresh_account().account_id;
    let denied = emulator().fresh_account().account_id;
    emulator().add_fault(json!({
        "service": "sts", "operation": "AssumeRole", "code": "AccessDenied", "account": caller.account_id,
        "message": format!("User: arn:aws:sts::{}:assumed-role/tapguard-test/x is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{denied}:role/tapguard-deployer", caller.account_id),
        "count": 1
    }));
    let audit = audit_path("denied");
    let accounts = format!("{denied},{good}");
    let (code, out, _) = deploy(
        &caller,
        "TapStack",
        "stack.yml",
        &audit,
        &[
            "--accounts",
            &accounts,
            "--role-name",
            "tapguard-deployer",
            "--concurrency",
            "1",
        ],
    );
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "AssumeRole failed: AccessDenied: User: arn:aws:sts::{}:assumed-role/tapguard-test/x is not authorized",
        caller.account_id
    );
    assert!(out.contains(&format!("[{denied}/{REGION}] {expected}")), "{out}");
    assert!(
        out.contains(&format!(
            "cannot assume arn:aws:iam::{denied}:role/tapguard-deployer: the role's trust policy must allow"
        )),
        "{out}"
    );
    assert!(
        outcomes_table(&out).contains(&format!("{:<32} CREATE_COMPLETE", format!("{good}/{REGION}"))),
        "{out}"
    );
    let errors: Vec<serde_json::Value> = audit_lines(&audit)
        .into_iter()
        .filter(|l| l["kind"] == "api_error")
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e["detail"]["operation"] == "AssumeRole" && e["detail"]["code"] == "AccessDenied"),
        "{errors:#?}"
    );
}

/// An organization whose management account is `management`, with one OU holding two new accounts.
fn organization(management: &Account) -> (String, Vec<String>) {
    let org = |target: &str, body: serde_json::Value| {
        emulator().json_call(
            management,
            "us-east-1",
            "organizations",
            &format!("AWSOrganizationsV20161128.{target}"),
            body,
        )
    };
    org("CreateOrganization", json!({"FeatureSet": "ALL"}));
    let root = org("ListRoots", json!({}))["Roots"][0]["Id"]
        .as_str()
        .expect("root")
        .to_string();
    let ou = org(
        "CreateOrganizationalUnit",
        json!({"ParentId": root, "Name": "Workloads"}),
    )["OrganizationalUnit"]["Id"]
        .as_str()
        .expect("OU id")
        .to_string();
    let mut members = Vec::new();
    for name in ["workload-a", "workload-b"] {
        let created = org(
            "CreateAccount",
            json!({"AccountName": name, "Email": format!("{name}@example.com")}),
        );
        let id = created["CreateAccountStatus"]["AccountId"]
            .as_str()
            .expect("account id")
            .to_string();
        org(
            "MoveAccount",
            json!({"AccountId": id, "SourceParentId": root, "DestinationParentId": ou}),
        );
        members.push(id);
    }
    (ou, members)
}

#[test]
fn stack_set_mode_deploys_to_every_account_of_the_ou_in_every_region() {
    let management = emulator().fresh_account();
    let (ou, members) = organization(&management);
    let audit = audit_path("stackset");
    let (code, out, err) = deploy(
        &management,
        "TapBaseline",
        "stack.yml",
        &audit,
        &[
            "--stack-set",
            "--ou",
            &ou,
            "--regions",
            "us-east-1,us-west-2",
            "--failure-tolerance",
            "1",
            "--max-concurrent",
            "2",
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("created StackSet TapBaseline (service-managed, automatic deployment on)"),
        "{out}"
    );
    for member in &members {
        for region in ["us-east-1", "us-west-2"] {
            assert!(
                out.contains(&format!("  instance {member}/{region}: CURRENT")),
                "no line for {member}/{region}:\n{out}"
            );
            // The instance's resources exist in the member account and region.
            let topics = emulator().query(&emulator().account(member), region, "sns", &[("Action", "ListTopics")]);
            assert!(
                topics.contains(&format!(":{member}:tapguard-alarms-dev")),
                "no topic in {member}/{region}: {topics}"
            );
        }
    }
    assert!(
        out.contains("StackSet TapBaseline: operation SUCCEEDED, 4 instance(s), 0 not current"),
        "{out}"
    );
    let own = emulator().query(&management, "us-east-1", "sns", &[("Action", "ListTopics")]);
    assert!(
        !own.contains("tapguard-alarms-dev"),
        "the management account itself got nothing: {own}"
    );
    let instances = audit_lines(&audit)
        .into_iter()
        .filter(|l| l["kind"] == "stack_instance")
        .count();
    assert_eq!(instances, 4);

    // A second run updates the StackSet instead of creating it, and adds the region new to it:
    // an update reaches only existing instances, so the new region gets CreateStackInstances.
    let (code, out, err) = deploy(
        &management,
        "TapBaseline",
        "stack-v2.yml",
        &audit,
        &[
            "--stack-set",
            "--ou",
            &ou,
            "--regions",
            "us-east-1,us-west-2,eu-central-1",
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(": update OUs {ou} in us-east-1,us-west-2")),
        "{out}"
    );
    assert!(
        out.contains(&format!(": add instances for OUs {ou} in eu-central-1")),
        "{out}"
    );
    for member in &members {
        assert!(
            out.contains(&format!("  instance {member}/eu-central-1: CURRENT")),
            "{out}"
        );
        let topics = emulator().query(
            &emulator().account(member),
            "eu-central-1",
            "sns",
            &[("Action", "ListTopics")],
        );
        assert!(
            topics.contains(&format!(":{member}:tapguard-alarms-dev")),
            "{member}: {topics}"
        );
    }
    assert!(
        out.contains("StackSet TapBaseline: operation SUCCEEDED, 6 instance(s), 0 not current"),
        "{out}"
    );
    let ops = emulator().operations(&management.account_id, "cloudformation");
    assert_eq!(ops.iter().filter(|o| *o == "UpdateStackSet").count(), 1, "{ops:?}");
    assert_eq!(ops.iter().filter(|o| *o == "CreateStackSet").count(), 1, "{ops:?}");
    assert_eq!(
        ops.iter().filter(|o| *o == "CreateStackInstances").count(),
        2,
        "{ops:?}"
    );

    // The instances reported are those of the regions asked for, not the StackSet's whole list.
    let (code, out, err) = deploy(
        &management,
        "TapBaseline",
        "stack-v2.yml",
        &audit,
        &["--stack-set", "--ou", &ou, "--regions", "eu-central-1"],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("StackSet TapBaseline: operation SUCCEEDED, 2 instance(s), 0 not current"),
        "{out}"
    );
    assert!(!out.contains("/us-east-1: CURRENT"), "{out}");
    // The regions this run does not name keep their instances, and the run says so.
    assert!(
        out.contains(&format!(
            "left as they are (not named by this run; --remove-unlisted deletes them): instances of OUs {ou} in us-east-1,us-west-2"
        )),
        "{out}"
    );
    let listed = |management: &Account| {
        emulator().query(
            management,
            REGION,
            "cloudformation",
            &[("Action", "ListStackInstances"), ("StackSetName", "TapBaseline")],
        )
    };
    assert!(listed(&management).contains("<Region>us-east-1</Region>"));

    // With --remove-unlisted they go: one DeleteStackInstances for the named OU in those regions, with
    // the run's operation preferences.
    let (code, out, err) = deploy(
        &management,
        "TapBaseline",
        "stack-v2.yml",
        &audit,
        &[
            "--stack-set",
            "--ou",
            &ou,
            "--regions",
            "eu-central-1",
            "--remove-unlisted",
            "--region-concurrency",
            "PARALLEL",
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(": remove instances of OUs {ou} in us-east-1,us-west-2")),
        "{out}"
    );
    let left = listed(&management);
    assert!(left.contains("<Region>eu-central-1</Region>"), "{left}");
    assert!(
        !left.contains("<Region>us-east-1</Region>") && !left.contains("<Region>us-west-2</Region>"),
        "{left}"
    );
    let ops = emulator().operations(&management.account_id, "cloudformation");
    assert_eq!(
        ops.iter().filter(|o| *o == "DeleteStackInstances").count(),
        1,
        "{ops:?}"
    );
}

#[test]
fn status_reports_each_target_with_outputs_and_a_missing_stack_fails() {
    let account = emulator().fresh_account();
    let audit = audit_path("status");
    assert_eq!(deploy(&account, "TapStack", "stack.yml", &audit, &[]).0, 0);
    let topic = format!("arn:aws:sns:{REGION}:{}:tapguard-alarms-dev", account.account_id);
    let (code, out, _) = tapguard_as(
        &account,
        &[
            "status",
            "--stack-name",
            "TapStack",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("[{REGION}] stack TapStack: CREATE_COMPLETE")),
        "{out}"
    );
    assert!(
        out.contains(&format!("[{REGION}]   output AlarmTopicArn = {topic}")),
        "{out}"
    );
    let recorded = audit_lines(&audit)
        .into_iter()
        .rfind(|l| l["kind"] == "stack_status")
        .unwrap();
    assert_eq!(
        recorded["detail"]["outputs"],
        json!([{"key": "AlarmTopicArn", "value": topic}])
    );

    let (code, out, _) = tapguard_as(
        &account,
        &[
            "status",
            "--stack-name",
            "TapStack",
            "--regions",
            &format!("{REGION},ap-south-1"),
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "one region has no stack:\n{out}");
    assert!(
        outcomes_table(&out).contains(&format!("{REGION:<32} CREATE_COMPLETE")),
        "{out}"
    );
    assert!(
        outcomes_table(&out).contains(&format!("{:<32} stack TapStack does not exist", "ap-south-1")),
        "{out}"
    );
}

#[test]
fn ctrl_c_stops_waiting_and_leaves_the_stack_as_it_is() {
    let account = emulator().fresh_account();
    emulator().control(
        "/tapguard/cloudformation/pace",
        json!({"account": account.account_id, "region": REGION, "event_interval_ms": 400}),
    );
    let audit = audit_path("interrupt");
    let template = fixture_path("stack.yml");
    let child = Command::new(binary_path("tapguard"))
        .args([
            "deploy",
            "--stack-name",
            "TapStack",
            "--template",
            template.to_str().unwrap(),
            "--yes",
        ])
        .args(["--poll-interval-ms", "100", "--audit-log", audit.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(emulator().sdk_env(&account, REGION))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stack_status(&account, REGION, "TapStack").as_deref() != Some("CREATE_IN_PROGRESS") {
        assert!(std::time::Instant::now() < until, "the creation never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{out}");
    assert!(
        out.contains("interrupted: stopped waiting. The stacks are left as they are"),
        "{out}"
    );
    assert!(
        outcomes_table(&out).contains(&format!("{REGION:<32} interrupted (last seen: CREATE_IN_PROGRESS)")),
        "{out}"
    );
    // Nothing was cancelled or deleted: CloudFormation carries on and the stack completes.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stack_status(&account, REGION, "TapStack").as_deref() != Some("CREATE_COMPLETE") {
        assert!(std::time::Instant::now() < until, "the creation did not go on");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let ops = emulator().operations(&account.account_id, "cloudformation");
    assert!(
        !ops.iter().any(|o| o == "DeleteStack" || o == "CancelUpdateStack"),
        "{ops:?}"
    );
    let kinds: Vec<String> = audit_lines(&audit)
        .iter()
        .map(|l| l["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"interrupted".to_string()), "{kinds:?}");
}

// ---- local on the project's own TapStack.yml, every handler binary ----

fn tapstack(account: &Account, extra: &[&str]) -> (i32, String, String) {
    let template = root().join("TapStack.yml");
    let mut args = vec![
        "local",
        "--template",
        template.to_str().expect("utf-8 path"),
        "--region",
        "us-east-1",
        "--account",
        &account.account_id,
        "--stand-ins",
    ];
    args.extend_from_slice(extra);
    tapguard(&args)
}

#[test]
fn local_plays_tapstack_with_every_handler_and_stand_ins() {
    let account = emulator().fresh_account();
    let (code, out, err) = tapstack(&account, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    // Dependency order from the template: ConfigSetup and SecurityHub before SecurityHubStandards.
    let config = line_index(&out, "ConfigSetup (Custom::ConfigSetup) by config-setup");
    let hub = line_index(&out, "SecurityHub (Custom::SecurityHubEnable) by securityhub-enable");
    let standards = line_index(
        &out,
        "SecurityHubStandards (Custom::SecurityHubStandards) by securityhub-standards",
    );
    assert!(config < standards && hub < standards, "{out}");
    assert!(out.contains("EbsDefaultEncryption (Custom::EbsDefaultEncryption) by ebs-default-encryption"));
    assert!(out.contains("AccessKeyAudit (Custom::AccessKeyRotation) by access-key-rotation"));
    // The password policy is played in the home region; Shield Advanced is opt-in and skipped.
    assert!(
        out.contains("PasswordPolicy (Custom::IamPasswordPolicy) by iam-password-policy"),
        "{out}"
    );
    assert_eq!(out.matches("  Create SUCCESS").count(), 6, "{out}");
    assert!(out.contains("local: 6 custom resource(s) created\n"), "{out}");

    // The EBS default key is the KMS stand-in, which exists in the account.
    let key_line = out
        .lines()
        .find(|l| {
            l.starts_with("  note: GetAtt BaselineKey.Arn (AWS::KMS::Key) is not played locally: stand-in created")
        })
        .unwrap_or_else(|| panic!("no stand-in note:\n{out}"));
    let key_arn = key_line.rsplit('"').nth(1).expect("quoted ARN").to_string();
    let ebs_key = emulator().query(&account, "us-east-1", "ec2", &[("Action", "GetEbsDefaultKmsKeyId")]);
    assert_eq!(xml_value(&ebs_key, "kmsKeyId"), Some(key_arn.as_str()));
    assert!(out.contains(&format!("  EbsDefaultKmsKeyId: {key_arn}")), "{out}");
    // Config records, Security Hub is on with the template's standards.
    let recorders = emulator().json_call(
        &account,
        "us-east-1",
        "config",
        "StarlingDoveService.DescribeConfigurationRecorderStatus",
        json!({}),
    );
    assert_eq!(
        recorders["ConfigurationRecordersStatus"][0]["recording"], true,
        "{recorders}"
    );
    let hub = emulator().rest_call(&account, "us-east-1", "securityhub", "GET", "/accounts", None);
    assert!(
        hub["HubArn"].as_str().is_some_and(|a| a.ends_with(":hub/default")),
        "{hub}"
    );
    assert!(
        out.contains("SecurityHubStandardsStatuses: aws-foundational-security-best-practices/v/1.0.0=READY"),
        "{out}"
    );
}

#[test]
fn local_tapstack_teardown_leaves_the_account_as_it_was() {
    let account = emulator().fresh_account();
    let (code, out, err) = tapstack(&account, &["--teardown"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.matches("  Delete SUCCESS").count(), 6, "{out}");
    let teardown = &out[line_index(&out, "teardown: Deletes in reverse order")..];
    assert!(
        line_index(teardown, "SecurityHubStandards (Custom::SecurityHubStandards)\n")
            < line_index(teardown, "\nSecurityHub (Custom::SecurityHubEnable)\n"),
        "standards go before the hub:\n{teardown}"
    );
    assert!(
        !ebs_state_in(&account, "us-east-1").0,
        "EBS encryption by default is off again"
    );
    let recorders = emulator().json_call(
        &account,
        "us-east-1",
        "config",
        "StarlingDoveService.DescribeConfigurationRecorders",
        json!({}),
    );
    assert_eq!(recorders["ConfigurationRecorders"], json!([]), "{recorders}");
}

#[test]
fn a_region_that_is_not_enabled_is_explained() {
    let account = emulator().fresh_account();
    emulator().add_fault(json!({
        "service": "cloudformation", "operation": "DescribeStacks", "code": "InvalidClientTokenId",
        "message": "The security token included in the request is invalid.", "status": 403,
        "account": account.account_id, "count": 1
    }));
    let audit = audit_path("region");
    let (code, out, _) = deploy(&account, "TapStack", "stack.yml", &audit, &["--regions", "ap-east-1"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[ap-east-1] FAILED: DescribeStacks failed: InvalidClientTokenId: The security token included in the request is invalid. (the region may not be enabled in this account"),
        "{out}"
    );
    let ops = emulator().operations(&account.account_id, "cloudformation");
    assert_eq!(ops, vec!["DescribeStacks"], "nothing else was tried: {ops:?}");
}

#[test]
fn local_with_aws_uses_the_current_credentials_and_their_account() {
    // --aws passes this process's AWS settings to the handlers: pointed at the emulator here, it is
    // what a user's real credentials would be.
    let account = emulator().fresh_account();
    let template = fixture_path("local-ebs.yml");
    let (code, out, err) = tapguard_as(
        &account,
        &[
            "local",
            "--aws",
            "--template",
            template.to_str().unwrap(),
            "--region",
            REGION,
            "--teardown",
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!("AWS: the real account {} in {REGION}", account.account_id)),
        "{out}"
    );
    assert!(
        out.contains(&format!("to play in account {} region {REGION}", account.account_id)),
        "{out}"
    );
    let ops = emulator().operations(&account.account_id, "ec2");
    assert_eq!(
        mutating(&ops),
        vec!["EnableEbsEncryptionByDefault", "DisableEbsEncryptionByDefault"],
        "{ops:?}"
    );
    assert!(emulator()
        .operations(&account.account_id, "sts")
        .contains(&"GetCallerIdentity".to_string()));
}

#[test]
fn delete_asks_first_then_streams_the_resources_deletions_in_reverse_order() {
    let account = emulator().fresh_account();
    let audit = audit_path("delete");
    assert_eq!(deploy(&account, "TapStack", "stack.yml", &audit, &[]).0, 0);
    let audit_arg = audit.to_str().unwrap();

    // Without a terminal to ask on and without --yes, nothing is deleted.
    let (code, out, _) = tapguard_as(
        &account,
        &["delete", "--stack-name", "TapStack", "--audit-log", audit_arg],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not confirmed: standard input is not a terminal (use --yes)"),
        "{out}"
    );
    assert!(
        outcomes_table(&out).contains(&format!("{REGION:<32} not deleted")),
        "{out}"
    );
    assert_eq!(
        stack_status(&account, REGION, "TapStack").as_deref(),
        Some("CREATE_COMPLETE")
    );

    let (code, out, _) = tapguard_as(
        &account,
        &[
            "delete",
            "--stack-name",
            "TapStack",
            "--yes",
            "--poll-interval-ms",
            "100",
            "--audit-log",
            audit_arg,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        event_lines(&out, REGION),
        [
            ("TapStack", "DELETE_IN_PROGRESS"),
            ("BaselineMarker", "DELETE_IN_PROGRESS"),
            ("BaselineMarker", "DELETE_COMPLETE"),
            ("AlarmTopic", "DELETE_IN_PROGRESS"),
            ("AlarmTopic", "DELETE_COMPLETE"),
            ("TapStack", "DELETE_COMPLETE"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
        "only the deletion's events, dependants first:\n{out}"
    );
    assert_eq!(stack_status(&account, REGION, "TapStack"), None);
    let topics = emulator().query(&account, REGION, "sns", &[("Action", "ListTopics")]);
    assert!(!topics.contains("tapguard-alarms-dev"), "{topics}");

    // Deleting what is not there is not an error.
    let (code, out, _) = tapguard_as(
        &account,
        &["delete", "--stack-name", "TapStack", "--yes", "--audit-log", audit_arg],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stack TapStack does not exist: nothing to delete"),
        "{out}"
    );
}

#[test]
fn no_execute_in_stack_set_mode_says_what_each_run_would_do_and_changes_nothing() {
    let management = emulator().fresh_account();
    let (ou, members) = organization(&management);
    let audit = audit_path("stackset-no-execute");
    let changing = |management: &Account| -> Vec<String> {
        emulator()
            .operations(&management.account_id, "cloudformation")
            .into_iter()
            .filter(|o| {
                [
                    "CreateStackSet",
                    "UpdateStackSet",
                    "CreateStackInstances",
                    "DeleteStackInstances",
                ]
                .contains(&o.as_str())
            })
            .collect()
    };
    let set = |regions: &'static str| ["--stack-set", "--ou", ou.as_str(), "--regions", regions];
    let preview = |template: &str, regions: &'static str| {
        deploy_with(
            &management,
            "TapBaseline",
            template,
            &audit,
            "--no-execute",
            &set(regions),
        )
    };

    // Before the StackSet exists: it would be created, and nothing is.
    let (code, out, err) = preview("stack.yml", "us-east-1");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(
            "would create StackSet TapBaseline (service-managed, automatic deployment on) with instances for OUs {ou} in us-east-1"
        )),
        "{out}"
    );
    assert!(changing(&management).is_empty(), "{:?}", changing(&management));
    let ops = emulator().operations(&management.account_id, "cloudformation");
    assert!(ops.iter().any(|o| o == "DescribeStackSet"), "{ops:?}");

    // Deployed for real in one region; then a preview of a second region adds nothing.
    let (code, out, err) = deploy(&management, "TapBaseline", "stack.yml", &audit, &set("us-east-1"));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let before = changing(&management);
    assert_eq!(before, ["CreateStackSet", "CreateStackInstances"]);
    let (code, out, err) = preview("stack-v2.yml", "us-east-1,us-west-2");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(
            "would update StackSet TapBaseline: OUs {ou} in us-east-1 (2 instance(s) now)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "would add instances to StackSet TapBaseline for OUs {ou} in us-west-2"
        )),
        "{out}"
    );
    assert_eq!(changing(&management), before);
    for member in &members {
        let topics = emulator().query(
            &emulator().account(member),
            "us-west-2",
            "sns",
            &[("Action", "ListTopics")],
        );
        assert!(
            !topics.contains("tapguard-alarms-dev"),
            "{member}/us-west-2 got the stack: {topics}"
        );
    }
    let previews = audit_lines(&audit)
        .into_iter()
        .filter(|l| l["kind"] == "stack_set_preview")
        .count();
    assert_eq!(previews, 2);
}

#[test]
fn stack_set_mode_reports_a_failed_instance_and_its_reason() {
    let management = emulator().fresh_account();
    let (ou, members) = organization(&management);
    let reason =
        "ResourceLogicalId:AlarmTopic, ResourceType:AWS::SNS::Topic, ResourceStatusReason:Topic limit exceeded.";
    emulator().control(
        "/tapguard/cloudformation/stack-instance-fate",
        json!({"account": management.account_id, "region": REGION, "stack_set": "TapBaseline",
               "instance_account": members[1], "instance_region": "us-west-2", "reason": reason}),
    );
    let audit = audit_path("stackset-failed");
    let (code, out, err) = deploy(
        &management,
        "TapBaseline",
        "stack.yml",
        &audit,
        &["--stack-set", "--ou", &ou, "--regions", "us-east-1,us-west-2"],
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(
            "  instance {}/us-west-2: OUTDATED FAILED {reason}",
            members[1]
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("  instance {}/us-west-2: CURRENT", members[0])),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "StackSet TapBaseline: operation FAILED, 4 instance(s), 1 not current; first failure: {}/us-west-2: {reason}",
            members[1]
        )),
        "{out}"
    );
    let failed = audit_lines(&audit)
        .into_iter()
        .find(|l| l["kind"] == "stack_instance" && l["detail"]["status"] == "OUTDATED")
        .expect("the failed instance in the audit log");
    assert_eq!(failed["detail"]["reason"], reason);
}

/// What the deployer sent in each CreateChangeSet in `account`/`region`, as the emulator received it.
fn sent_change_sets(account: &Account, region: &str) -> Vec<serde_json::Value> {
    let sent = emulator().control(
        "/tapguard/cloudformation/sent",
        json!({"account": account.account_id, "region": region}),
    );
    sent["change_sets"].as_array().expect("a list").clone()
}

#[test]
fn an_update_that_repeats_no_parameter_keeps_every_previous_value() {
    let account = emulator().fresh_account();
    let audit = audit_path("previous");
    let (code, out, err) = deploy(
        &account,
        "TapStack",
        "stack.yml",
        &audit,
        &["--parameter", "Environment=prod"],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("Environment                      prod                     given (new)"),
        "{out}"
    );

    // v2 adds a resource and a parameter (Owner, with a default); nothing is repeated on the command line.
    let (code, out, err) = deploy(&account, "TapStack", "stack-v2.yml", &audit, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let sent = sent_change_sets(&account, REGION);
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(sent[0]["type"], "CREATE");
    assert_eq!(
        sent[0]["parameters"],
        json!([{"ParameterKey": "Environment", "ParameterValue": "prod"}])
    );
    assert_eq!(sent[1]["type"], "UPDATE");
    // Environment is kept with UsePreviousValue (no value sent); Owner, new to the template, is not
    // sent at all, so CloudFormation applies its default.
    let params = sent[1]["parameters"].as_array().unwrap();
    assert_eq!(params.len(), 1, "{params:?}");
    assert_eq!(params[0]["ParameterKey"], "Environment");
    assert!(params[0].get("ParameterValue").is_none(), "{params:?}");
    assert_eq!(params[0]["UsePreviousValue"], json!(true), "{params:?}");
    // The review says where each value comes from.
    let shown = line_index(&out, &format!("[{REGION}] parameters:"));
    let executing = line_index(&out, "executing tapguard-");
    assert!(shown < executing, "{out}");
    assert!(
        out.contains(&format!(
            "[{REGION}]   Environment                      prod                     kept (previous value)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "[{REGION}]   Owner                            security                 template default (new parameter)"
        )),
        "{out}"
    );
    // The resources really are the prod ones still (moto resolves the kept value).
    let param = emulator().json_call(
        &account,
        REGION,
        "ssm",
        "AmazonSSM.GetParameter",
        json!({"Name": "/tapguard/prod/audit"}),
    );
    assert_eq!(param["Parameter"]["Value"], "audited", "{param}");
    let change_set = audit_lines(&audit)
        .into_iter()
        .filter(|l| l["kind"] == "change_set")
        .nth(1)
        .expect("the update's change set");
    assert_eq!(change_set["detail"]["parameters_kept"], json!(["Environment"]));
    assert_eq!(change_set["detail"]["parameters_given"], json!([]));
    assert!(
        !change_set.to_string().contains("prod"),
        "no parameter values in the audit log: {change_set}"
    );

    // Again, still nothing repeated: CloudFormation refuses with "No updates are to be performed." —
    // a no-change success, and nothing executed.
    let (code, out, _) = deploy(&account, "TapStack", "stack-v2.yml", &audit, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no changes: stack TapStack is already up to date"),
        "{out}"
    );
    assert!(
        outcomes_table(&out).contains(&format!("{REGION:<32} no changes (UPDATE_COMPLETE)")),
        "{out}"
    );

    // A value given that differs is shown as changed, the others still kept.
    let (code, out, _) = deploy(
        &account,
        "TapStack",
        "stack-v2.yml",
        &audit,
        &["--parameter", "Environment=stage"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Environment                      stage                    CHANGED from prod"),
        "{out}"
    );
    assert!(
        out.contains("Owner                            security                 kept (previous value)"),
        "{out}"
    );
    let last = sent_change_sets(&account, REGION).pop().unwrap();
    assert_eq!(
        last["parameters"],
        json!([{"ParameterKey": "Environment", "ParameterValue": "stage"}, {"ParameterKey": "Owner", "UsePreviousValue": true}])
    );

    // A template without parameters: the empty change set is created and ends FAILED with
    // "didn't contain changes" (AWS's other wording): also a no-change success, and it is removed.
    assert_eq!(deploy(&account, "Plain", "no-parameters.yml", &audit, &[]).0, 0);
    let (code, out, _) = deploy(&account, "Plain", "no-parameters.yml", &audit, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no changes: stack Plain is already up to date"), "{out}");
    let empty: Vec<serde_json::Value> = audit_lines(&audit)
        .into_iter()
        .filter(|l| l["kind"] == "change_set_empty")
        .collect();
    assert!(empty[0]["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("No updates are to be performed"));
    assert!(empty[1]["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("didn't contain changes"));
    let ops = emulator().operations(&account.account_id, "cloudformation");
    assert!(ops.contains(&"DeleteChangeSet".to_string()), "{ops:?}");
}

/// A template over CloudFormation's 51,200-byte inline limit: stack.yml with an (unnamed) IAM role
/// and a large Metadata section, written to a temporary file.
fn large_template() -> PathBuf {
    let stack = std::fs::read_to_string(fixture_path("stack.yml")).unwrap();
    let (resources, outputs) = stack.split_once("Outputs:").unwrap();
    let mut text = resources.to_string();
    text.push_str(
        r#"  DeployRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: cloudformation.amazonaws.com}
            Action: sts:AssumeRole
"#,
    );
    text.push_str("Outputs:");
    text.push_str(outputs);
    text.push_str("Metadata:\n  Padding:\n");
    for i in 0..700 {
        text.push_str(&format!(
            "    - \"line {i:04} of padding that makes this template larger than fifty kB\"\n"
        ));
    }
    assert!(text.len() > 51_200, "{}", text.len());
    let path = std::env::temp_dir().join(format!("tapguard-large-{:016x}.yml", rand_id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_large_template_goes_through_s3_no_execute_shows_only_and_json_output_parses() {
    let account = emulator().fresh_account();
    let audit = audit_path("large");
    let template = large_template();
    let template = template.to_str().unwrap();

    // Too large without a bucket to send it through: refused before any call.
    let (code, _, err) = deploy(&account, "Big", template, &audit, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("CloudFormation accepts at most 51,200 bytes inline; give --artifact-bucket-prefix"),
        "{err}"
    );
    assert!(emulator().calls(&account.account_id, None).is_empty());

    // The topic must exist: CloudFormation publishes the stack's events to it.
    let created = emulator().query(
        &account,
        REGION,
        "sns",
        &[("Action", "CreateTopic"), ("Name", "stack-events")],
    );
    let topic = xml_value(&created, "TopicArn").expect("topic ARN").to_string();
    let role = format!("arn:aws:iam::{}:role/cfn-service", account.account_id);
    let base = [
        "--artifact-bucket-prefix",
        "tapguard-artifacts",
        "--output",
        "json",
        "--role-arn",
        &role,
        "--notification-arns",
        &topic,
    ];
    // --no-execute: the change set is created and shown, nothing runs; stdout is only the JSON.
    let mut args: Vec<&str> = base.to_vec();
    args.push("--no-execute");
    let template_arg = ["--template", template];
    let (code, out, err) = tapguard_as(
        &account,
        &[
            &[
                "deploy",
                "--stack-name",
                "Big",
                "--poll-interval-ms",
                "100",
                "--audit-log",
                audit.to_str().unwrap(),
            ][..],
            &template_arg[..],
            &args[..],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["command"], "deploy");
    assert_eq!(doc["all_good"], true);
    let target = &doc["targets"][0];
    assert_eq!(target["target"], REGION);
    assert_eq!(target["good"], true, "{target}");
    assert_eq!(target["detail"]["executed"], false);
    assert_eq!(target["detail"]["change_set"]["type"], "CREATE");
    let added: Vec<&str> = target["detail"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["logical_id"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["AlarmTopic", "BaselineMarker", "DeployRole"], "{target}");
    assert_eq!(target["detail"]["capabilities"], json!(["CAPABILITY_IAM"]));
    assert!(err.contains("not executed (--no-execute)"), "{err}");
    assert!(err.contains("uploaded to s3://tapguard-artifacts-"), "{err}");

    // What CloudFormation got: a TemplateURL to the bucket of this account and region, no body,
    // only the capability the template needs, the service role and the topic.
    let bucket = format!("tapguard-artifacts-{}-{REGION}", account.account_id);
    let sent = sent_change_sets(&account, REGION);
    assert_eq!(sent.len(), 1);
    let url = sent[0]["template_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("https://{bucket}.s3.{REGION}.amazonaws.com/tapguard/Big/")),
        "{url}"
    );
    assert_eq!(sent[0]["template_bytes"], serde_json::Value::Null);
    assert_eq!(sent[0]["capabilities"], json!(["CAPABILITY_IAM"]));
    assert_eq!(sent[0]["role_arn"], role);
    assert_eq!(sent[0]["notification_arns"], json!([topic]));
    // The bucket is private and encrypted, and holds the template as it was read.
    assert_private_and_encrypted(&account, REGION, &bucket, "");
    let key = url.split(".amazonaws.com/").nth(1).unwrap();
    assert_eq!(
        s3_get(&account, REGION, &format!("/{bucket}/{key}")),
        std::fs::read_to_string(template).unwrap()
    );
    let bucket_puts = |calls: &[String]| calls.iter().filter(|o| **o == format!("PUT /{bucket}/")).count();
    let object_puts = |calls: &[String]| {
        calls
            .iter()
            .filter(|o| o.starts_with(&format!("PUT /{bucket}/tapguard/")))
            .count()
    };
    let s3 = emulator().operations(&account.account_id, "s3");
    // CreateBucket, PutPublicAccessBlock, PutBucketEncryption; then PutObject.
    assert_eq!((bucket_puts(&s3), object_puts(&s3)), (3, 1), "{s3:?}");
    let ops = emulator().operations(&account.account_id, "cloudformation");
    assert!(!ops.contains(&"ExecuteChangeSet".to_string()), "{ops:?}");
    assert_eq!(
        stack_status(&account, REGION, "Big").as_deref(),
        Some("REVIEW_IN_PROGRESS")
    );

    // Executed, with rollback disabled, through throttling while waiting: retried, not failed.
    for operation in ["DescribeChangeSet", "DescribeStackEvents"] {
        emulator().add_fault(json!({
            "service": "cloudformation", "operation": operation, "code": "Throttling",
            "message": "Rate exceeded", "account": account.account_id, "count": 4
        }));
    }
    let mut args: Vec<&str> = base.to_vec();
    args.extend(["--yes", "--disable-rollback"]);
    let (code, out, err) = tapguard_as(
        &account,
        &[
            &[
                "deploy",
                "--stack-name",
                "Big2",
                "--poll-interval-ms",
                "100",
                "--audit-log",
                audit.to_str().unwrap(),
            ][..],
            &template_arg[..],
            &args[..],
        ]
        .concat(),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let target = &doc["targets"][0];
    assert_eq!(target["outcome"], "CREATE_COMPLETE", "{target}");
    assert_eq!(target["detail"]["executed"], true);
    assert_eq!(target["detail"]["stack_status"], "CREATE_COMPLETE");
    assert!(
        err.contains("DescribeChangeSet: Throttling (transient), retrying in"),
        "{err}"
    );
    assert!(
        err.contains("DescribeStackEvents: Throttling (transient), retrying in"),
        "{err}"
    );
    let executions = emulator().control(
        "/tapguard/cloudformation/sent",
        json!({"account": account.account_id, "region": REGION}),
    )["executions"]
        .clone();
    assert_eq!(executions.as_array().unwrap().len(), 1, "{executions}");
    assert_eq!(executions[0]["disable_rollback"], true);
    assert_eq!(
        stack_status(&account, REGION, "Big2").as_deref(),
        Some("CREATE_COMPLETE")
    );
    // The bucket was there already: only the template was put in it.
    let s3 = emulator().operations(&account.account_id, "s3");
    assert_eq!((bucket_puts(&s3), object_puts(&s3)), (3, 2), "{s3:?}");
    let faults: Vec<serde_json::Value> = emulator()
        .calls(&account.account_id, Some("cloudformation"))
        .into_iter()
        .filter(|c| c.get("injected").is_some())
        .collect();
    assert_eq!(faults.len(), 8, "every injected throttle was met: {faults:?}");
}

/// Held by the whole-baseline fleet test and by the test of expiring credentials, so that they never
/// run at the same time: the fleet's handler processes and four targets load the one emulator enough
/// to delay a call past the 2-second sessions of the other (it failed so once, a DescribeStacks
/// refused ExpiredToken).
fn apart_from_the_fleet_test() -> std::sync::MutexGuard<'static, ()> {
    static APART: std::sync::Mutex<()> = std::sync::Mutex::new(());
    APART.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn assumed_role_credentials_that_expire_mid_run_are_renewed() {
    let _apart = apart_from_the_fleet_test();
    let caller = emulator().fresh_account();
    let member = emulator().fresh_account().account_id;
    // Sessions into the member account last two seconds and are refused after; the stack takes
    // several seconds (events paced), so the first session expires long before the run ends.
    emulator().control("/tapguard/sts/lifetime", json!({"account": member, "seconds": 2}));
    emulator().control(
        "/tapguard/cloudformation/pace",
        json!({"account": member, "region": REGION, "event_interval_ms": 500}),
    );
    let audit = audit_path("expiring");
    let (code, out, err) = deploy(
        &caller,
        "TapStack",
        "stack.yml",
        &audit,
        &[
            "--accounts",
            &member,
            "--role-name",
            "tapguard-deployer",
            "--role-duration",
            "900",
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let target = format!("{member}/{REGION}");
    assert_eq!(event_lines(&out, &target).last().unwrap().1, "CREATE_COMPLETE", "{out}");
    assert_eq!(
        stack_status(&emulator().account(&member), REGION, "TapStack").as_deref(),
        Some("CREATE_COMPLETE")
    );
    let assumed = emulator().control("/tapguard/sts/assumed", json!({"account": member}));
    // The harness's own sessions (to look at the stack) are not the deployer's.
    let sessions: Vec<&serde_json::Value> = assumed
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["session_name"] != "tapguard-test")
        .collect();
    // The entry check, then a new session each time the one in use was about to expire.
    assert!(sessions.len() >= 3, "{assumed}");
    for session in sessions {
        assert_eq!(session["duration_seconds"], 900, "{session}");
        assert!(
            session["session_name"].as_str().unwrap().starts_with("tapguard-"),
            "{session}"
        );
        assert_eq!(
            session["expired_uses"], 0,
            "no call went out with expired credentials: {session}"
        );
    }
    assert!(
        !audit_lines(&audit)
            .iter()
            .any(|l| l["kind"] == "api_error" && l["detail"]["code"] == "ExpiredToken"),
        "no ExpiredToken met"
    );
}

// ---- verify: the resources' own verify pass, from the deployer, read-only ----

/// Runs `tapguard verify` as `account` in REGION with a fresh audit log; returns (code, stdout, stderr, log).
fn verify_as(account: &Account, name: &str, extra: &[&str]) -> (i32, String, String, Vec<serde_json::Value>) {
    let audit = audit_path(name);
    let mut args = vec!["verify", "--audit-log", audit.to_str().unwrap()];
    if !extra.contains(&"--targets") {
        args.extend_from_slice(&["--regions", REGION]);
    }
    args.extend_from_slice(extra);
    let (code, out, err) = tapguard_as(account, &args);
    (code, out, err, audit_lines(&audit))
}

/// The matrix row of `control` of `target`, as `target resource control verdict`, whatever the widths.
fn matrix_row(out: &str, target: &str, control: &str) -> String {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&target) && w.get(2) == Some(&control))
        .map(|w| w[..4].join(" "))
        .unwrap_or_else(|| panic!("no matrix row for {target} {control}:\n{out}"))
}

#[test]
fn verify_finds_drift_behind_the_stacks_back_and_a_held_baseline_only_reads() {
    let account = emulator().fresh_account();
    let (code, out, err) = local("local-ebs.yml", &account, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let target = format!("{}/{REGION}", account.account_id);

    // Held: exit 0, the row, and nothing but reads in the account.
    let before = emulator().calls(&account.account_id, None).len();
    let (code, out, err, _) = verify_as(&account, "verify-held", &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        matrix_row(&out, &target, "EBS.EncryptionByDefault"),
        format!("{target} TapStack-local/EbsEncryption EBS.EncryptionByDefault held")
    );
    assert_eq!(
        matrix_row(&out, &target, "EBS.DefaultKmsKey"),
        format!("{target} TapStack-local/EbsEncryption EBS.DefaultKmsKey held")
    );
    let during: Vec<String> = emulator().calls(&account.account_id, None)[before..]
        .iter()
        .filter_map(|c| c["operation"].as_str().map(str::to_string))
        .collect();
    assert!(
        during.contains(&"GetEbsEncryptionByDefault".to_string())
            && during.contains(&"GetParametersByPath".to_string()),
        "{during:?}"
    );
    assert!(mutating(&during).is_empty(), "verify only reads: {during:?}");

    // Someone turns encryption by default off: exit 1, the drifted row, its JSON and its audit line.
    emulator().query(&account, REGION, "ec2", &[("Action", "DisableEbsEncryptionByDefault")]);
    let (code, out, err, audit) = verify_as(&account, "verify-drifted", &[]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(
        matrix_row(&out, &target, "EBS.EncryptionByDefault"),
        format!("{target} TapStack-local/EbsEncryption EBS.EncryptionByDefault drifted")
    );
    assert!(out.contains("1 held, 1 drifted, 0 unknown"), "{out}");
    let line = audit
        .iter()
        .find(|l| l["kind"] == "control_check" && l["detail"]["control"] == "EBS.EncryptionByDefault")
        .unwrap_or_else(|| panic!("no audit line for the control: {audit:#?}"));
    assert_eq!(line["detail"]["target"], target.as_str());
    assert_eq!(
        (&line["detail"]["verdict"], &line["detail"]["observed"]),
        (&json!("drifted"), &json!("false"))
    );
    assert!(
        audit
            .iter()
            .any(|l| l["kind"] == "verify_matrix" && l["detail"]["exit_code"] == 1),
        "{audit:#?}"
    );

    let (code, out, _, _) = verify_as(&account, "verify-json", &["--output", "json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        (doc["drifted"].as_u64(), doc["held"].as_u64()),
        (Some(1), Some(1)),
        "{doc:#}"
    );
    let drifted: Vec<&serde_json::Value> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verdict"] == "drifted")
        .collect();
    assert_eq!(drifted.len(), 1, "{doc:#}");
    assert_eq!(
        (
            &drifted[0]["target"],
            &drifted[0]["stack"],
            &drifted[0]["logical_id"],
            &drifted[0]["control"],
            &drifted[0]["expected"],
            &drifted[0]["observed"]
        ),
        (
            &json!(target),
            &json!("TapStack-local"),
            &json!("EbsEncryption"),
            &json!("EBS.EncryptionByDefault"),
            &json!("true"),
            &json!("false")
        )
    );
    assert!(!ebs_state(&account).0, "verify never repairs");
}

#[test]
fn verify_of_a_denied_target_is_unknown_with_the_reason_never_held() {
    let caller = emulator().fresh_account();
    let good = emulator().fresh_account();
    let denied = emulator().fresh_account().account_id;
    let (code, out, err) = local("local-ebs.yml", &good, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    emulator().add_fault(json!({
        "service": "sts", "operation": "AssumeRole", "code": "AccessDenied", "account": caller.account_id,
        "message": format!("User: arn:aws:sts::{}:assumed-role/tapguard-test/x is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::{denied}:role/tapguard-auditor", caller.account_id),
        "count": 1
    }));
    let file = std::env::temp_dir().join(format!("tapguard-test-targets-{:016x}.txt", rand_id()));
    std::fs::write(
        &file,
        format!(
            "# the accounts to verify\n{denied}/{REGION}\n{}/{REGION}\n",
            good.account_id
        ),
    )
    .unwrap();
    let (code, out, err, audit) = verify_as(
        &caller,
        "verify-denied",
        &[
            "--targets",
            file.to_str().unwrap(),
            "--role-name",
            "tapguard-auditor",
            "--concurrency",
            "1",
            "--output",
            "json",
        ],
    );
    assert_eq!(
        code, 3,
        "unknown without drift has its own exit status\nstdout:\n{out}\nstderr:\n{err}"
    );
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let rows = doc["rows"].as_array().unwrap();
    let denied_target = format!("{denied}/{REGION}");
    let unknown: Vec<&serde_json::Value> = rows.iter().filter(|r| r["target"] == denied_target.as_str()).collect();
    assert_eq!(unknown.len(), 1, "{doc:#}");
    assert_eq!(unknown[0]["verdict"], "unknown");
    let reason = unknown[0]["observed"].as_str().unwrap();
    assert!(reason.starts_with("AssumeRole failed: AccessDenied: User:"), "{reason}");
    assert!(
        reason.contains(&format!("cannot assume arn:aws:iam::{denied}:role/tapguard-auditor")),
        "{reason}"
    );
    // The other target is verified as usual.
    let good_target = format!("{}/{REGION}", good.account_id);
    assert!(
        rows.iter()
            .filter(|r| r["target"] == good_target.as_str())
            .all(|r| r["verdict"] == "held")
            && rows.iter().any(|r| r["target"] == good_target.as_str()),
        "{doc:#}"
    );
    assert_eq!((doc["unknown"].as_u64(), doc["drifted"].as_u64()), (Some(1), Some(0)));
    assert!(
        audit
            .iter()
            .any(|l| l["kind"] == "verify_matrix" && l["detail"]["exit_code"] == 3),
        "{audit:#?}"
    );
}

// ---- plan: what each target already has sets the Existing... parameters ----

/// A GuardDuty detector made by a direct call, as an account that had one before the baseline.
fn existing_detector(account: &Account, region: &str) {
    emulator().rest_call(
        account,
        region,
        "guardduty",
        "POST",
        "/detector",
        Some(json!({"enable": true})),
    );
}

/// An account analyzer made by a direct call.
fn existing_analyzer(account: &Account, region: &str, name: &str) {
    emulator().rest_call(
        account,
        region,
        "access-analyzer",
        "PUT",
        "/analyzer",
        Some(json!({"analyzerName": name, "type": "ACCOUNT"})),
    );
}

/// A multi-region trail `org-trail` (home us-east-1) with its bucket, made by direct calls.
fn existing_trail(account: &Account) {
    let bucket = format!("org-trail-{}", account.account_id);
    emulator().rest_call(account, "us-east-1", "s3", "PUT", &format!("/{bucket}"), None);
    let trail = emulator().json_call(
        account,
        "us-east-1",
        "cloudtrail",
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateTrail",
        json!({"Name": "org-trail", "S3BucketName": bucket, "IsMultiRegionTrail": true}),
    );
    assert!(trail["TrailARN"].is_string(), "{trail}");
}

/// A fleet of four accounts x two regions, some with a GuardDuty detector, a multi-region trail or an
/// account analyzer made by direct calls (not by any stack): (accounts, what each target has).
fn mixed_fleet() -> (Vec<String>, Vec<(String, [&'static str; 3])>) {
    let accounts: Vec<Account> = (0..4).map(|_| emulator().fresh_account()).collect();
    let ids: Vec<String> = accounts.iter().map(|a| a.account_id.clone()).collect();
    let (a, b, c) = (&accounts[0], &accounts[1], &accounts[2]);
    // a: a detector in us-east-1 and an analyzer in eu-west-1.
    existing_detector(a, "us-east-1");
    existing_analyzer(a, "eu-west-1", "security-team");
    // b: a multi-region trail (home us-east-1), seen in every region.
    existing_trail(b);
    // c: a detector in both regions and an analyzer in us-east-1. d: nothing.
    for region in ["us-east-1", "eu-west-1"] {
        existing_detector(c, region);
    }
    existing_analyzer(c, "us-east-1", "legacy");
    // (ExistingCloudTrail, ExistingGuardDutyDetector, ExistingAccessAnalyzer) per target.
    let expected = vec![
        (format!("{}/us-east-1", ids[0]), ["false", "true", "false"]),
        (format!("{}/eu-west-1", ids[0]), ["false", "false", "true"]),
        (format!("{}/us-east-1", ids[1]), ["true", "false", "false"]),
        (format!("{}/eu-west-1", ids[1]), ["true", "false", "false"]),
        (format!("{}/us-east-1", ids[2]), ["false", "true", "true"]),
        (format!("{}/eu-west-1", ids[2]), ["false", "true", "false"]),
        (format!("{}/us-east-1", ids[3]), ["false", "false", "false"]),
        (format!("{}/eu-west-1", ids[3]), ["false", "false", "false"]),
    ];
    (ids, expected)
}

const EXISTING: [&str; 3] = [
    "ExistingCloudTrail",
    "ExistingGuardDutyDetector",
    "ExistingAccessAnalyzer",
];

/// (value, source) of `key` among a target's parameters in the JSON document.
fn parameter_of<'a>(target: &'a serde_json::Value, key: &str) -> (&'a str, &'a str) {
    let p = target["detail"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["key"] == key))
        .unwrap_or_else(|| panic!("no parameter {key} in {target:#}"));
    (p["value"].as_str().unwrap(), p["source"].as_str().unwrap())
}

/// Calls in `account` that change something: anything but Get/Describe/List/Head, by service.
fn writes_in(account: &str) -> Vec<String> {
    emulator()
        .calls(account, None)
        .iter()
        .filter_map(|c| {
            let op = c["operation"].as_str()?;
            let read = ["Get", "Describe", "List", "Head"].iter().any(|r| op.starts_with(r));
            (!read).then(|| format!("{}:{op}", c["service"].as_str().unwrap_or_default()))
        })
        .collect()
}

fn detector_count(account: &str, region: &str) -> usize {
    let listed = emulator().rest_call(
        &emulator().account(account),
        region,
        "guardduty",
        "GET",
        "/detector",
        None,
    );
    listed["detectorIds"].as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn plan_reads_each_target_sets_its_parameters_and_changes_nothing_then_deploy_uses_it() {
    let caller = emulator().fresh_account();
    let (accounts, expected) = mixed_fleet();
    let template = fixture_path("fleet.yml");
    let template = template.to_str().unwrap();
    let audit = audit_path("plan");
    let (code, out, err) = tapguard_as(
        &caller,
        &[
            "plan",
            "--template",
            template,
            "--accounts",
            &accounts.join(","),
            "--regions",
            "us-east-1,eu-west-1",
            "--role-name",
            "tapguard-deployer",
            "--concurrency",
            "8",
            "--poll-interval-ms",
            "100",
            "--audit-log",
            audit.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["command"], "plan");
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 8, "{doc:#}");
    for (label, values) in &expected {
        let target = targets
            .iter()
            .find(|t| t["target"] == label.as_str())
            .unwrap_or_else(|| panic!("no {label} in {doc:#}"));
        assert_eq!(target["good"], true, "{target:#}");
        for (key, value) in EXISTING.iter().zip(values) {
            assert_eq!(
                parameter_of(target, key),
                (*value, "detected"),
                "{label} {key}: {target:#}"
            );
        }
        // The summary of the change set a creation would run: the marker, and what is not there.
        let outcome = target["outcome"].as_str().unwrap();
        // The marker, a detector and an analyzer unless there, and in HomeRegion without a trail
        // the trail and its bucket.
        let creates_trail = label.ends_with("/us-east-1") && values[0] == "false";
        let adds = 1 + values[1..].iter().filter(|v| **v == "false").count() + if creates_trail { 2 } else { 0 };
        assert!(
            outcome.starts_with("CREATE change set: ") && outcome.contains(&format!("{adds} to add")),
            "{label}: {outcome}"
        );
    }
    // What b's trail looks like in its other region: the shadow of a multi-region trail.
    let b_eu = targets
        .iter()
        .find(|t| t["target"] == format!("{}/eu-west-1", accounts[1]).as_str())
        .unwrap();
    let trail_item = b_eu["detail"]["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["thing"] == "CloudTrail")
        .unwrap();
    assert_eq!(trail_item["action"], "leave");
    assert!(
        trail_item["detail"]
            .as_str()
            .unwrap()
            .contains("trail org-trail (multi-region, home us-east-1)"),
        "{trail_item}"
    );
    // plan changed nothing: in every account only reads, and the change set it made to summarise
    // (deleted again, with the REVIEW_IN_PROGRESS stack that held it); no stack, no new detector.
    for account in &accounts {
        let mut writes = writes_in(account);
        writes.sort();
        writes.dedup();
        assert_eq!(
            writes,
            [
                "cloudformation:CreateChangeSet",
                "cloudformation:DeleteChangeSet",
                "cloudformation:DeleteStack"
            ],
            "{account}"
        );
        for region in ["us-east-1", "eu-west-1"] {
            assert_eq!(stack_status(&emulator().account(account), region, "TapStack"), None);
        }
    }
    assert_eq!(detector_count(&accounts[3], "us-east-1"), 0);
    assert_eq!(detector_count(&accounts[0], "us-east-1"), 1);

    // deploy with a targets file over the same fleet: no parameter given, one target's own override.
    let file = std::env::temp_dir().join(format!("tapguard-test-fleet-{:016x}.txt", rand_id()));
    let mut lines = String::from("# the fleet\n");
    for (label, _) in &expected {
        lines.push_str(label);
        if *label == format!("{}/eu-west-1", accounts[3]) {
            // The targets file wins over what the plan reads.
            lines.push_str("  ExistingAccessAnalyzer=true");
        }
        lines.push('\n');
    }
    std::fs::write(&file, lines).unwrap();
    let run = |name: &str| {
        let audit = audit_path(name);
        tapguard_as(
            &caller,
            &[
                "deploy",
                "--template",
                template,
                "--targets",
                file.to_str().unwrap(),
                "--role-name",
                "tapguard-deployer",
                "--yes",
                "--concurrency",
                "8",
                "--poll-interval-ms",
                "100",
                "--audit-log",
                audit.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
    };
    let (code, out, err) = run("fleet-deploy");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["all_good"], true, "{doc:#}");
    for (label, values) in &expected {
        let target = doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == label.as_str())
            .unwrap();
        assert_eq!(target["outcome"], "CREATE_COMPLETE", "{target:#}");
        let (account, region) = label.split_once('/').unwrap();
        // One detector in every target: the one that was there, or the stack's.
        assert_eq!(detector_count(account, region), 1, "{label}");
        if *label == format!("{}/eu-west-1", accounts[3]) {
            assert_eq!(parameter_of(target, "ExistingAccessAnalyzer"), ("true", "given"));
        } else {
            assert_eq!(parameter_of(target, "ExistingAccessAnalyzer"), (values[2], "detected"));
        }
    }
    // A re-run finds the stacks' own detectors and analyzers as theirs: nothing changes.
    let (code, out, err) = run("fleet-again");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    for target in doc["targets"].as_array().unwrap() {
        assert_eq!(target["outcome"], "no changes (CREATE_COMPLETE)", "{target:#}");
        assert_eq!(target["detail"]["executed"], false);
    }
    let d_us = format!("{}/us-east-1", accounts[3]);
    let again = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == d_us.as_str())
        .unwrap();
    let detector_item = again["detail"]["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["thing"] == "GuardDuty")
        .unwrap();
    assert!(
        detector_item["detail"]
            .as_str()
            .unwrap()
            .starts_with("this stack's own ("),
        "{detector_item}"
    );
    assert_eq!(parameter_of(again, "ExistingGuardDutyDetector"), ("false", "detected"));
}

#[test]
fn a_parameter_given_wins_over_the_plan_and_the_emulator_refuses_a_second_detector_as_aws_does() {
    let account = emulator().fresh_account();
    existing_detector(&account, REGION);
    let audit = audit_path("second-detector");
    let (code, out, err) = deploy(
        &account,
        "TapStack",
        "fleet.yml",
        &audit,
        &[
            "--parameter",
            "ExistingGuardDutyDetector=false",
            "--parameter",
            "HomeRegion=us-east-1",
        ],
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.lines()
            .any(|l| l.contains(" GuardDuty ") && l.contains("already there: not created")),
        "the plan still says what it found:\n{out}"
    );
    assert!(
        outcomes_table(&out).contains("root cause: GuardDutyDetector (AWS::GuardDuty::Detector) CREATE_FAILED: The request is rejected because a detector already exists for the current account."),
        "{out}"
    );
    assert_eq!(detector_count(&account.account_id, REGION), 1);
}

#[test]
fn a_delegated_administrator_is_detected_and_status_and_delete_work_in_stack_set_mode() {
    let management = emulator().fresh_account();
    let (ou, members) = organization(&management);
    // A member account outside the OU, registered as the StackSets delegated administrator.
    let org = |target: &str, body: serde_json::Value| {
        emulator().json_call(
            &management,
            "us-east-1",
            "organizations",
            &format!("AWSOrganizationsV20161128.{target}"),
            body,
        )
    };
    let created = org(
        "CreateAccount",
        json!({"AccountName": "security-tooling", "Email": "security@example.com"}),
    );
    let admin_id = created["CreateAccountStatus"]["AccountId"]
        .as_str()
        .unwrap()
        .to_string();
    org(
        "RegisterDelegatedAdministrator",
        json!({"AccountId": admin_id, "ServicePrincipal": "member.org.stacksets.cloudformation.amazonaws.com"}),
    );
    let admin = emulator().account(&admin_id);
    let audit = audit_path("delegated");
    let set = ["--stack-set", "--ou", ou.as_str(), "--regions", "us-east-1"];

    // As SELF, CloudFormation refuses a member account.
    let mut refused = set.to_vec();
    refused.extend(["--call-as", "SELF"]);
    let (code, out, _) = deploy(&admin, "TapBaseline", "stack.yml", &audit, &refused);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CallAs DELEGATED_ADMIN"), "{out}");

    // Without --call-as, the deployer finds it is not the management account.
    let (code, out, err) = deploy(&admin, "TapBaseline", "stack.yml", &audit, &set);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(
            "call as DELEGATED_ADMIN: {admin_id} is not the management account ({}): acting as a delegated administrator",
            management.account_id
        )),
        "{out}"
    );
    for member in &members {
        assert!(
            out.contains(&format!("  instance {member}/us-east-1: CURRENT")),
            "{out}"
        );
    }

    // status in StackSet mode: the StackSet and each instance.
    let (code, out, err) = tapguard_as(
        &admin,
        &[
            "status",
            "--stack-set",
            "--stack-name",
            "TapBaseline",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for member in &members {
        assert!(
            out.contains(&format!("  instance {member}/us-east-1: CURRENT")),
            "{out}"
        );
    }
    assert!(
        outcomes_table(&out).contains("StackSet TapBaseline: ACTIVE, 2 instance(s), 0 not current"),
        "{out}"
    );

    // delete in StackSet mode: the instances (their stacks go), then the StackSet.
    let (code, out, err) = tapguard_as(
        &admin,
        &[
            "delete",
            "--stack-set",
            "--stack-name",
            "TapBaseline",
            "--yes",
            "--poll-interval-ms",
            "100",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains(&format!(": delete instances of OUs {ou} in us-east-1")),
        "{out}"
    );
    assert!(
        outcomes_table(&out).contains("StackSet TapBaseline deleted with 2 instance(s)"),
        "{out}"
    );
    for member in &members {
        let topics = emulator().query(
            &emulator().account(member),
            "us-east-1",
            "sns",
            &[("Action", "ListTopics")],
        );
        assert!(!topics.contains("tapguard-alarms-dev"), "{member}: {topics}");
    }
    let (code, out, _) = tapguard_as(
        &admin,
        &[
            "status",
            "--stack-set",
            "--stack-name",
            "TapBaseline",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("StackSet TapBaseline does not exist"), "{out}");
}

/// A YAML targets file over an organization: an OU's accounts (one excluded) with the group's own role
/// and a listed account with the defaults' role, each in the group's regions; `status` enters each with
/// its role (the audit log's AssumeRole records) and reports every target.
#[test]
fn a_yaml_targets_file_expands_an_ou_and_enters_each_account_with_its_groups_role() {
    let management = emulator().fresh_account();
    let (ou, members) = organization(&management);
    let listed = emulator().fresh_account().account_id;
    let file = std::env::temp_dir().join(format!("tapguard-test-fleet-{:016x}.yml", rand_id()));
    std::fs::write(
        &file,
        format!(
            "defaults:\n  role: tapguard-deployer\n  regions: [{REGION}]\ntargets:\n  - ous: [{ou}]\n    exclude_accounts: [\"{excluded}\"]\n    regions: [{REGION}, us-west-2]\n    role: OrganizationAccountAccessRole\n  - accounts: [\"{listed}\"]\n",
            excluded = members[1]
        ),
    )
    .unwrap();
    let audit = audit_path("yaml-targets");
    let (code, out, err) = tapguard_as(
        &management,
        &[
            "status",
            "--stack-name",
            "TapStack",
            "--targets",
            file.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    // No stack is deployed anywhere: status fails every target, after entering each one.
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let lines = audit_lines(&audit);
    let started = lines.iter().find(|l| l["kind"] == "run_started").expect("run_started");
    let targets: Vec<&str> = started["detail"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(
        targets,
        [
            format!("{}/{REGION}", members[0]),
            format!("{}/us-west-2", members[0]),
            format!("{listed}/{REGION}"),
        ],
        "the OU's accounts but the excluded one, by the group's regions; the listed account in the defaults' region"
    );
    let mut roles: Vec<String> = lines
        .iter()
        .filter(|l| l["kind"] == "assumed_role")
        .map(|l| l["detail"]["role_arn"].as_str().unwrap_or_default().to_string())
        .collect();
    roles.sort();
    roles.dedup();
    let mut expected = vec![
        format!("arn:aws:iam::{}:role/OrganizationAccountAccessRole", members[0]),
        format!("arn:aws:iam::{listed}:role/tapguard-deployer"),
    ];
    expected.sort();
    assert_eq!(roles, expected);
    let _ = std::fs::remove_file(&file);

    let bad = std::env::temp_dir().join(format!("tapguard-test-fleet-{:016x}.yaml", rand_id()));
    std::fs::write(&bad, "targets:\n  - accounts: [123]\n    regions: [eu-west-1]\n").unwrap();
    let (code, _, err) = tapguard_as(
        &management,
        &["status", "--stack-name", "TapStack", "--targets", bad.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("targets[0].accounts: 123 is not a 12-digit account id"),
        "{err}"
    );
    let _ = std::fs::remove_file(&bad);
}

// ---- deploy --functions-template: the functions stack, then the stack, in each target ----

/// template.yml with its SAM transform expanded, as `make package` writes it (scripts/expand-sam.py,
/// with the SAM translator of .venv-tools, which scripts/check-templates.sh installs, or of
/// .venv-package, which `make package` installs).
fn expanded_functions_template(dir: &Path) -> PathBuf {
    let python = [".venv-tools", ".venv-package"]
        .iter()
        .map(|venv| root().join(venv).join("bin/python"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "{} is missing: run scripts/check-templates.sh (make test does) to install the SAM translator",
                root().join(".venv-tools/bin/python").display()
            )
        });
    let out = dir.join("functions.json");
    let run = Command::new(&python)
        .arg(root().join("scripts/expand-sam.py"))
        .arg(root().join("template.yml"))
        .arg(&out)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run scripts/expand-sam.py");
    assert!(
        run.status.success(),
        "expand-sam.py failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// A zip with no entries and `comment` as its comment: a valid archive, a few dozen bytes, its own
/// sha256 per binary.
fn stand_in_zip(comment: &str) -> Vec<u8> {
    let mut zip = b"PK\x05\x06".to_vec();
    zip.extend_from_slice(&[0; 16]);
    zip.extend_from_slice(&(comment.len() as u16).to_le_bytes());
    zip.extend_from_slice(comment.as_bytes());
    zip
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64, as Lambda reports CodeSha256.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn deploy_puts_the_functions_stack_then_the_stack_into_two_assumed_accounts_and_a_rerun_uploads_nothing() {
    assert_eq!(base64(b"abcd"), "YWJjZA==");
    let caller = emulator().fresh_account();
    let a = emulator().fresh_account().account_id;
    let b = emulator().fresh_account().account_id;
    let dir = std::env::temp_dir().join(format!("tapguard-test-functions-{:016x}", rand_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let functions = expanded_functions_template(&dir);
    let expanded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&functions).unwrap()).unwrap();
    assert!(expanded.get("Transform").is_none(), "the SAM transform is expanded");
    // (logical id of the function, binary, the stand-in zip)
    let zips: Vec<(String, String, Vec<u8>)> = expanded["Metadata"]["tapguard::Artifacts"]["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let binary = f["Binary"].as_str().unwrap().to_string();
            (
                f["Function"].as_str().unwrap().to_string(),
                binary.clone(),
                stand_in_zip(&format!("tapguard test stand-in for {binary}")),
            )
        })
        .collect();
    assert_eq!(zips.len(), 9, "{zips:?}");
    let lambda_dir = dir.join("lambda");
    for (_, binary, zip) in &zips {
        std::fs::create_dir_all(lambda_dir.join(binary)).unwrap();
        std::fs::write(lambda_dir.join(binary).join("bootstrap.zip"), zip).unwrap();
    }
    let template = fixture_path("imports-functions.yml");
    let regions = ["us-east-1", REGION];
    let run = |name: &str| {
        let audit = audit_path(name);
        tapguard_as(
            &caller,
            &[
                "deploy",
                "--stack-name",
                "TapStack",
                "--template",
                template.to_str().unwrap(),
                "--functions-template",
                functions.to_str().unwrap(),
                "--lambda-dir",
                lambda_dir.to_str().unwrap(),
                "--artifact-bucket-prefix",
                "tapguard-art",
                "--accounts",
                &format!("{a},{b}"),
                "--regions",
                &regions.join(","),
                "--role-name",
                "tapguard-deployer",
                "--yes",
                "--concurrency",
                "4",
                "--poll-interval-ms",
                "100",
                "--audit-log",
                audit.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
    };
    let (code, out, err) = run("functions-deploy");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["targets"].as_array().unwrap().len(), 4, "{doc:#}");
    for target in doc["targets"].as_array().unwrap() {
        assert_eq!(
            target["outcome"], "CREATE_COMPLETE (functions stack tapguard-functions: CREATE_COMPLETE)",
            "{target:#}"
        );
        // The stack was told which functions stack to import from.
        assert_eq!(
            parameter_of(target, "FunctionsStackName"),
            ("tapguard-functions", "given")
        );
    }
    for account in [&a, &b] {
        let acct = emulator().account(account);
        for region in regions {
            let label = format!("{account}/{region}");
            // In order: the functions stack ended before the stack began.
            let events = event_lines(&err, &label);
            let functions_done = events
                .iter()
                .position(|e| *e == ("tapguard-functions".to_string(), "CREATE_COMPLETE".to_string()))
                .unwrap_or_else(|| panic!("{label}: {events:?}"));
            let stack_begun = events
                .iter()
                .position(|e| e.0 == "TapStack")
                .unwrap_or_else(|| panic!("{label}: {events:?}"));
            assert!(functions_done < stack_begun, "{label}: {events:?}");
            assert_eq!(
                stack_status(&acct, region, "tapguard-functions").as_deref(),
                Some("CREATE_COMPLETE"),
                "{label}"
            );
            assert_eq!(
                stack_status(&acct, region, "TapStack").as_deref(),
                Some("CREATE_COMPLETE"),
                "{label}"
            );
            // The bucket of this account and region: private, encrypted, holding each zip under its sha256.
            let bucket = format!("tapguard-art-{account}-{region}");
            assert_private_and_encrypted(&acct, region, &bucket, &label);
            let s3_get = |path: &str| s3_get(&acct, region, path);
            // Per account, only the account itself reads it: no bucket policy (StackSet mode adds one).
            assert!(
                s3_get(&format!("/{bucket}?policy")).contains("NoSuchBucketPolicy"),
                "{label}"
            );
            for (_, binary, zip) in &zips {
                let key = format!("tapguard/functions/{binary}/{}.zip", sha256_hex(zip));
                assert_eq!(
                    s3_get(&format!("/{bucket}/{key}")).as_bytes(),
                    &zip[..],
                    "{label} {key}"
                );
            }
            // The functions, created from those objects: each one's code is its binary's zip.
            let listed = emulator().rest_call(&acct, region, "lambda", "GET", "/2015-03-31/functions/", None);
            let listed = listed["Functions"].as_array().cloned().unwrap_or_default();
            assert_eq!(listed.len(), 9, "{label}: {listed:#?}");
            for (function, binary, zip) in &zips {
                let found = listed
                    .iter()
                    .find(|f| {
                        f["FunctionName"]
                            .as_str()
                            .is_some_and(|n| n.starts_with(&format!("tapguard-functions-{function}-")))
                    })
                    .unwrap_or_else(|| panic!("{label}: no function {function}: {listed:#?}"));
                use sha2::Digest;
                assert_eq!(
                    found["CodeSha256"],
                    base64(&sha2::Sha256::digest(zip)),
                    "{label} {binary}"
                );
                assert_eq!(found["CodeSize"], zip.len(), "{label} {binary}");
            }
            // The stack imported the functions stack's exports: the ARNs of those functions.
            let arn_of = |function: &str| {
                listed
                    .iter()
                    .find(|f| {
                        f["FunctionName"]
                            .as_str()
                            .is_some_and(|n| n.starts_with(&format!("tapguard-functions-{function}-")))
                    })
                    .and_then(|f| f["FunctionArn"].as_str())
                    .unwrap()
                    .to_string()
            };
            let parameter = emulator().json_call(
                &acct,
                region,
                "ssm",
                "AmazonSSM.GetParameter",
                json!({"Name": "/tapguard/baseline/ebs-default-encryption-service-token"}),
            );
            assert_eq!(
                parameter["Parameter"]["Value"],
                arn_of("EbsDefaultEncryptionFunction"),
                "{label}: {parameter}"
            );
            // The expanded template (over 51,200 bytes) went through the same bucket.
            let sent = sent_change_sets(&acct, region);
            let functions_sent = sent.iter().find(|c| c["stack"] == "tapguard-functions").unwrap();
            assert!(
                functions_sent["template_url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with(&format!(
                        "https://{bucket}.s3.{region}.amazonaws.com/tapguard/tapguard-functions/"
                    ))),
                "{functions_sent}"
            );
            assert_eq!(functions_sent["capabilities"], json!(["CAPABILITY_IAM"]));
        }
    }
    let puts = |account: &str| {
        emulator()
            .operations(account, "s3")
            .iter()
            .filter(|o| o.starts_with("PUT "))
            .count()
    };
    let executions = |account: &str, region: &str| {
        emulator().control(
            "/tapguard/cloudformation/sent",
            json!({"account": account, "region": region}),
        )["executions"]
            .as_array()
            .unwrap()
            .len()
    };
    // Per account: per region the bucket (create, public access block, encryption), 9 zips, the template.
    let before = (puts(&a), puts(&b));
    assert_eq!(
        before,
        (2 * (3 + 9 + 1), 2 * (3 + 9 + 1)),
        "{:?}",
        emulator().operations(&a, "s3")
    );
    assert_eq!(executions(&a, REGION), 2);

    // A second run uploads nothing and changes nothing.
    let (code, out, err) = run("functions-again");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    for target in doc["targets"].as_array().unwrap() {
        assert_eq!(
            target["outcome"],
            "no changes (CREATE_COMPLETE) (functions stack tapguard-functions: no changes (CREATE_COMPLETE))",
            "{target:#}"
        );
    }
    assert!(err.contains("0 uploaded, 9 already there"), "{err}");
    assert_eq!((puts(&a), puts(&b)), before);
    for account in [&a, &b] {
        for region in regions {
            assert_eq!(executions(account, region), 2, "{account}/{region}");
        }
    }

    // One account, the current credentials', with --no-execute: the functions' change set is made
    // and shown, the zips are in the bucket, and the stack's change set waits for the functions.
    let single = emulator().fresh_account();
    let audit = audit_path("functions-no-execute");
    let one = |lambda_dir: &Path| {
        tapguard_as(
            &single,
            &[
                "deploy",
                "--template",
                template.to_str().unwrap(),
                "--functions-template",
                functions.to_str().unwrap(),
                "--lambda-dir",
                lambda_dir.to_str().unwrap(),
                "--artifact-bucket-prefix",
                "tapguard-art",
                "--no-execute",
                "--poll-interval-ms",
                "100",
                "--audit-log",
                audit.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
    };
    // A zip that `make package` did not make: refused before any call.
    let (code, _, refused) = one(&dir.join("nowhere"));
    assert_eq!(code, 2, "{refused}");
    assert!(
        refused.contains("bootstrap.zip") && refused.contains("run `make package` first"),
        "{refused}"
    );
    assert!(emulator().calls(&single.account_id, None).is_empty());
    let (code, out, err) = one(&lambda_dir);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let target = &doc["targets"][0];
    assert_eq!(target["target"], REGION);
    assert!(
        target["outcome"]
            .as_str()
            .unwrap()
            .starts_with("functions stack tapguard-functions: change set tapguard-"),
        "{target:#}"
    );
    assert_eq!(target["detail"]["functions"]["detail"]["executed"], false, "{target:#}");
    assert!(
        err.contains(
            "the change set of stack TapStack follows once the functions stack tapguard-functions is deployed"
        ),
        "{err}"
    );
    let sent = sent_change_sets(&single, REGION);
    assert_eq!(
        sent.iter().map(|c| c["stack"].as_str().unwrap()).collect::<Vec<_>>(),
        ["tapguard-functions"]
    );
    assert_eq!(
        stack_status(&single, REGION, "tapguard-functions").as_deref(),
        Some("REVIEW_IN_PROGRESS")
    );
    assert_eq!(stack_status(&single, REGION, "TapStack"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of parameter `key` in a DescribeStacks answer of one stack.
fn stack_parameter(xml: &str, key: &str) -> Option<String> {
    let after = xml.split(&format!("<ParameterKey>{key}</ParameterKey>")).nth(1)?;
    xml_value(after, "ParameterValue").map(str::to_string)
}

#[test]
fn stack_set_mode_with_functions_publishes_to_the_administrators_buckets_then_deploys_two_stack_sets() {
    let management = emulator().fresh_account();
    let admin = management.account_id.clone();
    let (ou, members) = organization(&management);
    let organization_id = emulator().json_call(
        &management,
        "us-east-1",
        "organizations",
        "AWSOrganizationsV20161128.DescribeOrganization",
        json!({}),
    )["Organization"]["Id"]
        .as_str()
        .expect("organization id")
        .to_string();
    let dir = std::env::temp_dir().join(format!("tapguard-test-stackset-functions-{:016x}", rand_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let functions = expanded_functions_template(&dir);
    let expanded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&functions).unwrap()).unwrap();
    // (logical id of the function, its key parameter, the stand-in zip)
    let zips: Vec<(String, String, Vec<u8>)> = expanded["Metadata"]["tapguard::Artifacts"]["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let binary = f["Binary"].as_str().unwrap();
            let zip = stand_in_zip(&format!("tapguard stack set stand-in for {binary}"));
            std::fs::create_dir_all(dir.join("lambda").join(binary)).unwrap();
            std::fs::write(dir.join("lambda").join(binary).join("bootstrap.zip"), &zip).unwrap();
            (
                f["Function"].as_str().unwrap().to_string(),
                f["KeyParameter"].as_str().unwrap().to_string(),
                zip,
            )
        })
        .collect();
    let key_of = |zip: &[u8], binary_dir: &str| format!("tapguard/functions/{binary_dir}/{}.zip", sha256_hex(zip));
    let binaries: Vec<String> = expanded["Metadata"]["tapguard::Artifacts"]["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Binary"].as_str().unwrap().to_string())
        .collect();
    let lambda_dir = dir.join("lambda");
    let regions = ["us-east-1", "us-west-2"];
    let run = |audit: &Path| {
        deploy(
            &management,
            "TapBaseline",
            "imports-functions.yml",
            audit,
            &[
                "--stack-set",
                "--ou",
                &ou,
                "--regions",
                &regions.join(","),
                "--max-concurrent",
                "2",
                "--functions-template",
                functions.to_str().unwrap(),
                "--lambda-dir",
                lambda_dir.to_str().unwrap(),
                "--artifact-bucket-prefix",
                "tapguard-org",
            ],
        )
    };
    let audit = audit_path("stackset-functions");
    let (code, out, err) = run(&audit);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("StackSet TapBaseline: operation SUCCEEDED, 4 instance(s), 0 not current (functions: StackSet tapguard-functions: operation SUCCEEDED, 4 instance(s), 0 not current)"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    // The functions StackSet's operations all came before the stack's.
    let operations: Vec<String> = audit_lines(&audit)
        .into_iter()
        .filter(|l| l["kind"] == "stack_set_operation")
        .map(|l| l["detail"]["stack_set"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(operations, ["tapguard-functions", "TapBaseline"], "{operations:?}");
    let s3_get = |region: &str, path: &str| s3_get(&management, region, path);
    // One bucket per region of the operation, in the administrator's account, readable by the organization.
    for region in regions {
        let bucket = format!("tapguard-org-{admin}-{region}");
        let policy: serde_json::Value = serde_json::from_str(&s3_get(region, &format!("/{bucket}?policy")))
            .unwrap_or_else(|e| panic!("{bucket} policy: {e}"));
        let allow = &policy["Statement"][0];
        assert_eq!(allow["Action"], "s3:GetObject", "{policy:#}");
        assert_eq!(
            allow["Condition"]["StringEquals"]["aws:PrincipalOrgID"], organization_id,
            "{policy:#}"
        );
        for ((_, _, zip), binary) in zips.iter().zip(&binaries) {
            let key = key_of(zip, binary);
            assert_eq!(
                s3_get(region, &format!("/{bucket}/{key}")).as_bytes(),
                &zip[..],
                "{bucket}/{key}"
            );
        }
    }
    // The functions template (over 51,200 bytes) went as a TemplateURL, through the home region's bucket.
    let body = std::fs::read(&functions).unwrap();
    assert!(body.len() > 51_200);
    let template_key = format!("tapguard/tapguard-functions/{}.template", sha256_hex(&body));
    let uploaded: serde_json::Value = serde_json::from_str(&s3_get(
        REGION,
        &format!("/tapguard-org-{admin}-{REGION}/{template_key}"),
    ))
    .expect("the uploaded template");
    assert!(
        uploaded == expanded,
        "the object at {template_key} is not the functions template"
    );
    for member in &members {
        let acct = emulator().account(member);
        for region in regions {
            let label = format!("{member}/{region}");
            let listed = emulator().query(&acct, region, "cloudformation", &[("Action", "DescribeStacks")]);
            let instance = listed
                .split("<StackName>")
                .skip(1)
                .filter_map(|s| s.split("</StackName>").next())
                .find(|n| n.starts_with("StackSet-tapguard-functions-"))
                .unwrap_or_else(|| panic!("{label}: no functions instance stack: {listed}"))
                .to_string();
            let stack = emulator().query(
                &acct,
                region,
                "cloudformation",
                &[("Action", "DescribeStacks"), ("StackName", &instance)],
            );
            // The instance's parameters: code from the administrator's buckets, exports under the
            // name the stack's FunctionsStackName gives.
            assert_eq!(
                stack_parameter(&stack, "ArtifactBucketAccount").as_deref(),
                Some(admin.as_str()),
                "{label}"
            );
            assert_eq!(
                stack_parameter(&stack, "ArtifactBucketPrefix").as_deref(),
                Some("tapguard-org"),
                "{label}"
            );
            assert_eq!(
                stack_parameter(&stack, "ExportPrefix").as_deref(),
                Some("tapguard-functions"),
                "{label}"
            );
            for ((_, key_parameter, zip), binary) in zips.iter().zip(&binaries) {
                assert_eq!(
                    stack_parameter(&stack, key_parameter),
                    Some(key_of(zip, binary)),
                    "{label} {key_parameter}"
                );
            }
            // The functions in the member account, each made from its zip in the administrator's bucket.
            let functions_listed = emulator().rest_call(&acct, region, "lambda", "GET", "/2015-03-31/functions/", None);
            let functions_listed = functions_listed["Functions"].as_array().cloned().unwrap_or_default();
            assert_eq!(functions_listed.len(), 9, "{label}: {functions_listed:#?}");
            let arn_of = |zip: &[u8]| {
                use sha2::Digest;
                let sha = base64(&sha2::Sha256::digest(zip));
                functions_listed
                    .iter()
                    .find(|f| f["CodeSha256"] == sha.as_str())
                    .and_then(|f| f["FunctionArn"].as_str())
                    .map(str::to_string)
            };
            for (function, _, zip) in &zips {
                let arn = arn_of(zip).unwrap_or_else(|| panic!("{label}: no function with {function}'s code"));
                assert!(arn.contains(&format!(":{member}:function:")), "{label}: {arn}");
            }
            // The stack's instance imported the functions' exports of its own account and region.
            let ebs = &zips
                .iter()
                .find(|(f, _, _)| f == "EbsDefaultEncryptionFunction")
                .unwrap()
                .2;
            let parameter = emulator().json_call(
                &acct,
                region,
                "ssm",
                "AmazonSSM.GetParameter",
                json!({"Name": "/tapguard/baseline/ebs-default-encryption-service-token"}),
            );
            assert_eq!(
                parameter["Parameter"]["Value"].as_str(),
                arn_of(ebs).as_deref(),
                "{label}: {parameter}"
            );
        }
    }
    let puts = || {
        emulator()
            .operations(&admin, "s3")
            .iter()
            .filter(|o| o.starts_with("PUT "))
            .count()
    };
    // Per region of the operation: the bucket (create, public access block, encryption, policy) and 9
    // zips; in the home region a bucket (create, public access block, encryption) and the template.
    let before = puts();
    assert_eq!(before, 2 * (4 + 9) + 3 + 1, "{:?}", emulator().operations(&admin, "s3"));

    // A second run uploads nothing and updates both StackSets in place.
    let (code, out, err) = run(&audit_path("stackset-functions-again"));
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let said = format!("{out}{err}");
    assert_eq!(said.matches("0 uploaded, 9 already there").count(), 2, "{said}");
    assert_eq!(puts(), before);
    let ops = emulator().operations(&admin, "cloudformation");
    assert_eq!(ops.iter().filter(|o| *o == "CreateStackSet").count(), 2, "{ops:?}");
    assert_eq!(ops.iter().filter(|o| *o == "UpdateStackSet").count(), 2, "{ops:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// ExecuteChangeSet returns as CloudFormation's does, once the execution has started ("After the call
/// successfully completes, CloudFormation starts updating the stack"): the stack is in progress while
/// its custom resource's function still runs, and settles on its own afterwards; reading its resources
/// meanwhile creates none, and the change set cannot be executed twice.
#[test]
fn execute_change_set_answers_while_a_custom_resource_is_still_being_created() {
    use std::os::unix::fs::PermissionsExt;
    let account = emulator().fresh_account();
    let dir = std::env::temp_dir().join(format!("tapguard-test-held-{:016x}", rand_id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The function's code: says it started, waits until the test lets it go, then exits without answering.
    let started = dir.join("started");
    let release = dir.join("release");
    let function = dir.join("held");
    std::fs::write(
        &function,
        format!(
            "#!/bin/sh\n: > '{}'\nwhile [ ! -e '{}' ]; do sleep 0.1; done\n",
            started.display(),
            release.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&function, std::fs::Permissions::from_mode(0o755)).unwrap();
    emulator().control(
        "/tapguard/lambda/binaries",
        json!({"account": account.account_id, "binaries": {"HeldFunction": function.to_str().unwrap()}, "timeout_seconds": 60}),
    );
    let template = json!({
        "Resources": {
            "HeldRole": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
            }}},
            "HeldFunction": {"Type": "AWS::Lambda::Function", "Properties": {
                "Runtime": "provided.al2023", "Handler": "bootstrap",
                "Role": {"Fn::GetAtt": ["HeldRole", "Arn"]}, "Code": {"ZipFile": "stand-in"}
            }},
            "Held": {"Type": "Custom::Held", "Properties": {"ServiceToken": {"Fn::GetAtt": ["HeldFunction", "Arn"]}}}
        }
    })
    .to_string();
    let cfn = |params: &[(&str, &str)]| emulator().query(&account, REGION, "cloudformation", params);
    let created = cfn(&[
        ("Action", "CreateChangeSet"),
        ("StackName", "held"),
        ("ChangeSetName", "held-1"),
        ("ChangeSetType", "CREATE"),
        ("TemplateBody", &template),
        ("Capabilities.member.1", "CAPABILITY_IAM"),
    ]);
    let change_set = xml_value(&created, "Id")
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let executed = cfn(&[("Action", "ExecuteChangeSet"), ("ChangeSetName", &change_set)]);
    assert!(executed.contains("ExecuteChangeSetResponse"), "{executed}");
    // The function is still waiting: the call did not wait for it.
    assert_eq!(
        stack_status(&account, REGION, "held").as_deref(),
        Some("CREATE_IN_PROGRESS")
    );
    let invocations = || {
        emulator().control("/tapguard/lambda/invocations", json!({"account": account.account_id}))["invocations"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert_eq!(invocations(), Vec::<serde_json::Value>::new());
    let events = cfn(&[("Action", "DescribeStackEvents"), ("StackName", "held")]);
    assert!(events.contains("User Initiated"), "{events}");
    assert!(
        wait_until(std::time::Duration::from_secs(60), || started.exists()),
        "the custom resource's function never started"
    );
    // Reading the stack's resources meanwhile (the deployer does, from another region's target) lists
    // what is created so far and creates nothing: moto's resource map created the custom resource
    // there a second time, its function run twice.
    for action in ["ListStackResources", "DescribeStackResources"] {
        let listed = cfn(&[("Action", action), ("StackName", "held")]);
        assert!(
            listed.contains("<LogicalResourceId>HeldFunction</LogicalResourceId>"),
            "{listed}"
        );
        assert!(
            !listed.contains("<LogicalResourceId>Held</LogicalResourceId>"),
            "{listed}"
        );
    }
    // The change set is being executed: a second ExecuteChangeSet is refused, as CloudFormation refuses it.
    let again = cfn(&[("Action", "ExecuteChangeSet"), ("ChangeSetName", &change_set)]);
    assert!(again.contains("<Code>InvalidChangeSetStatus</Code>"), "{again}");
    assert!(again.contains("EXECUTE_IN_PROGRESS"), "{again}");

    std::fs::write(&release, b"").unwrap();
    let settled = wait_until(std::time::Duration::from_secs(60), || {
        stack_status(&account, REGION, "held").is_some_and(|s| !s.ends_with("_IN_PROGRESS"))
    });
    assert!(settled, "{:?}", stack_status(&account, REGION, "held"));
    assert_eq!(
        stack_status(&account, REGION, "held").as_deref(),
        Some("ROLLBACK_COMPLETE")
    );
    let invoked = invocations();
    assert_eq!(invoked.len(), 1, "{invoked:#?}");
    assert_eq!(invoked[0]["status"], "FAILED");
    let events = cfn(&[("Action", "DescribeStackEvents"), ("StackName", "held")]);
    assert!(
        events.contains("the function exited with status 0 without answering CloudFormation"),
        "{events}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the whole baseline, for real: template.yml's functions and TapStack.yml over a mixed fleet ----

/// The stack's output `key` in a DescribeStacks answer of one stack.
fn stack_output(xml: &str, key: &str) -> Option<String> {
    let after = xml.split(&format!("<OutputKey>{key}</OutputKey>")).nth(1)?;
    xml_value(after, "OutputValue").map(str::to_string)
}

#[test]
fn one_deploy_with_a_targets_file_puts_the_whole_baseline_into_a_mixed_fleet_and_a_rerun_changes_nothing() {
    let _apart = apart_from_the_fleet_test();
    let caller = emulator().fresh_account();
    let (a, b) = (emulator().fresh_account(), emulator().fresh_account());
    let regions = ["us-east-1", REGION];
    // a already has a multi-region trail (home us-east-1), a detector in both regions and an account
    // analyzer in us-east-1; b has nothing.
    existing_trail(&a);
    for region in regions {
        existing_detector(&a, region);
    }
    existing_analyzer(&a, "us-east-1", "security-team");
    // (ExistingCloudTrail, ExistingGuardDutyDetector, ExistingAccessAnalyzer) per target.
    let expected = [
        (format!("{}/us-east-1", a.account_id), ["true", "true", "true"]),
        (format!("{}/{REGION}", a.account_id), ["true", "true", "false"]),
        (format!("{}/us-east-1", b.account_id), ["false", "false", "false"]),
        (format!("{}/{REGION}", b.account_id), ["false", "false", "false"]),
    ];

    // The functions stack as `make package` makes it, each function's code a stand-in zip; the
    // emulator runs each function's handler binary (built by cargo) for the custom resources.
    let dir = std::env::temp_dir().join(format!("tapguard-test-baseline-{:016x}", rand_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let functions = expanded_functions_template(&dir);
    let expanded: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&functions).unwrap()).unwrap();
    let lambda_dir = dir.join("lambda");
    let mut binaries = serde_json::Map::new();
    for f in expanded["Metadata"]["tapguard::Artifacts"]["Functions"]
        .as_array()
        .unwrap()
    {
        let binary = f["Binary"].as_str().unwrap();
        std::fs::create_dir_all(lambda_dir.join(binary)).unwrap();
        std::fs::write(
            lambda_dir.join(binary).join("bootstrap.zip"),
            stand_in_zip(&format!("tapguard test stand-in for {binary}")),
        )
        .unwrap();
        let path = binary_path(binary);
        assert!(
            path.exists(),
            "{} is not built: cargo build --workspace",
            path.display()
        );
        binaries.insert(
            f["Function"].as_str().unwrap().to_string(),
            json!(path.to_str().unwrap()),
        );
    }
    for account in [&a, &b] {
        emulator().control(
            "/tapguard/lambda/binaries",
            json!({"account": account.account_id, "binaries": binaries, "timeout_seconds": 120}),
        );
    }
    let file = dir.join("fleet.yml");
    std::fs::write(
        &file,
        format!(
            "defaults:\n  role: tapguard-deployer\n  regions: [us-east-1, {REGION}]\ntargets:\n  - accounts: [\"{}\", \"{}\"]\n",
            a.account_id, b.account_id
        ),
    )
    .unwrap();
    let template = root().join("TapStack.yml");
    let common = |command: &'static str, audit: &Path| -> Vec<String> {
        [
            command,
            "--template",
            template.to_str().unwrap(),
            "--targets",
            file.to_str().unwrap(),
            "--concurrency",
            "4",
            // Four targets poll the one emulator while their handlers run: every 500 ms is enough.
            "--poll-interval-ms",
            "500",
            "--audit-log",
            audit.to_str().unwrap(),
            "--output",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let target_of = |doc: &serde_json::Value, label: &str| -> serde_json::Value {
        doc["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["target"] == label)
            .cloned()
            .unwrap_or_else(|| panic!("no {label} in {doc:#}"))
    };

    // plan: the real TapStack.yml's Existing... parameters read per target; nothing changes.
    let audit = audit_path("baseline-plan");
    let args = common("plan", &audit);
    let (code, out, err) = tapguard_as(&caller, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["targets"].as_array().unwrap().len(), 4, "{doc:#}");
    for (label, values) in &expected {
        let target = target_of(&doc, label);
        for (key, value) in EXISTING.iter().zip(values) {
            assert_eq!(
                parameter_of(&target, key),
                (*value, "detected"),
                "{label} {key}: {target:#}"
            );
        }
    }
    for account in [&a, &b] {
        for region in regions {
            assert_eq!(stack_status(account, region, "TapStack"), None);
        }
        assert!(
            emulator().control("/tapguard/lambda/invocations", json!({"account": account.account_id}))["invocations"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    // deploy: the functions stack, then TapStack.yml, in every target, from one command.
    let run = |name: &str| {
        let audit = audit_path(name);
        let mut args = common("deploy", &audit);
        args.extend(
            [
                "--functions-template",
                functions.to_str().unwrap(),
                "--lambda-dir",
                lambda_dir.to_str().unwrap(),
                "--artifact-bucket-prefix",
                "tapguard-base",
                "--yes",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        tapguard_as(&caller, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, out, err) = run("baseline-deploy");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["all_good"], true, "{doc:#}");
    for (label, values) in &expected {
        let target = target_of(&doc, label);
        assert_eq!(
            target["outcome"], "CREATE_COMPLETE (functions stack tapguard-functions: CREATE_COMPLETE)",
            "{target:#}"
        );
        for (key, value) in EXISTING.iter().zip(values) {
            assert_eq!(parameter_of(&target, key), (*value, "detected"), "{label} {key}");
        }
    }
    for (label, values) in &expected {
        let (id, region) = label.split_once('/').unwrap();
        let account = if id == a.account_id { &a } else { &b };
        let home = region == "us-east-1";
        assert_eq!(
            stack_status(account, region, "tapguard-functions").as_deref(),
            Some("CREATE_COMPLETE")
        );
        assert_eq!(
            stack_status(account, region, "TapStack").as_deref(),
            Some("CREATE_COMPLETE"),
            "{label}"
        );
        let described = emulator().query(
            account,
            region,
            "cloudformation",
            &[("Action", "DescribeStacks"), ("StackName", "TapStack")],
        );
        // Each custom resource was answered by its handler binary: Create, SUCCESS.
        let invocations = emulator().control("/tapguard/lambda/invocations", json!({"account": id}))["invocations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["region"] == region)
            .map(|i| {
                assert_eq!(i["status"], "SUCCESS", "{label}: {i}");
                assert_eq!(i["request_type"], "Create");
                i["logical_id"].as_str().unwrap().to_string()
            })
            .collect::<Vec<_>>();
        let mut want = vec![
            "ConfigSetup",
            "SecurityHub",
            "SecurityHubStandards",
            "EbsDefaultEncryption",
            "AccessKeyAudit",
        ];
        if home {
            want.push("PasswordPolicy");
        }
        assert_eq!(invocations, want, "{label}");
        // AWS Config records, with the template's rules.
        let status = emulator().json_call(
            account,
            region,
            "config",
            "StarlingDoveService.DescribeConfigurationRecorderStatus",
            json!({}),
        );
        assert_eq!(
            status["ConfigurationRecordersStatus"][0]["recording"], true,
            "{label}: {status}"
        );
        assert_eq!(
            stack_output(&described, "ConfigRecording").as_deref(),
            Some("true"),
            "{label}"
        );
        let rules = emulator().json_call(
            account,
            region,
            "config",
            "StarlingDoveService.DescribeConfigRules",
            json!({}),
        );
        assert_eq!(rules["ConfigRules"].as_array().unwrap().len(), 7, "{label}: {rules}");
        // Security Hub on, with the two standards READY.
        let hub = emulator().rest_call(account, region, "securityhub", "GET", "/accounts", None);
        assert!(
            hub["HubArn"].as_str().is_some_and(|h| h.ends_with(":hub/default")),
            "{label}: {hub}"
        );
        assert_eq!(
            stack_output(&described, "SecurityHubStandardsStatuses").as_deref(),
            Some("aws-foundational-security-best-practices/v/1.0.0=READY,cis-aws-foundations-benchmark/v/3.0.0=READY"),
            "{label}"
        );
        // EBS encryption by default, with the stack's baseline key.
        let key = stack_output(&described, "BaselineKeyArn").unwrap();
        assert_eq!(ebs_state_in(account, region), (true, key.clone()), "{label}");
        // The IAM password policy (HomeRegion only).
        if home {
            let policy = emulator().query(account, region, "iam", &[("Action", "GetAccountPasswordPolicy")]);
            assert_eq!(
                xml_value(&policy, "MinimumPasswordLength"),
                Some("14"),
                "{label}: {policy}"
            );
        }
        // One detector and one account analyzer: the one that was there, or the stack's.
        assert_eq!(detector_count(id, region), 1, "{label}");
        let analyzers = emulator().rest_call(
            account,
            region,
            "access-analyzer",
            "GET",
            "/analyzer?type=ACCOUNT",
            None,
        );
        assert_eq!(
            analyzers["analyzers"].as_array().map(Vec::len),
            Some(1),
            "{label}: {analyzers}"
        );
        assert_eq!(
            stack_output(&described, "AccessAnalyzerArn").is_some(),
            values[2] == "false",
            "{label}"
        );
        assert_eq!(
            stack_output(&described, "GuardDutyDetectorId").is_some(),
            values[1] == "false",
            "{label}"
        );
        // One multi-region trail per account: a's own, or b's from its HomeRegion stack, logging.
        if home {
            let trails = emulator().json_call(
                account,
                region,
                "cloudtrail",
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.DescribeTrails",
                json!({}),
            );
            let trails = trails["trailList"].as_array().unwrap().clone();
            assert_eq!(trails.len(), 1, "{label}: {trails:#?}");
            assert_eq!(trails[0]["IsMultiRegionTrail"], true);
            if values[0] == "true" {
                assert_eq!(trails[0]["Name"], "org-trail");
                assert_eq!(stack_output(&described, "TrailArn"), None);
            } else {
                assert_eq!(
                    stack_output(&described, "TrailArn").as_deref(),
                    trails[0]["TrailARN"].as_str()
                );
                let logging = emulator().json_call(
                    account,
                    region,
                    "cloudtrail",
                    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.GetTrailStatus",
                    json!({"Name": trails[0]["TrailARN"]}),
                );
                assert_eq!(logging["IsLogging"], true, "{logging}");
            }
        }
    }
    let executions = |account: &Account, region: &str| {
        emulator().control(
            "/tapguard/cloudformation/sent",
            json!({"account": account.account_id, "region": region}),
        )["executions"]
            .as_array()
            .unwrap()
            .len()
    };
    let invocations = |account: &Account| {
        emulator().control("/tapguard/lambda/invocations", json!({"account": account.account_id}))["invocations"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = (invocations(&a), invocations(&b));
    assert_eq!(before, (11, 11));

    // The same command again: every target already has it all; nothing is executed or invoked.
    let (code, out, err) = run("baseline-again");
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["all_good"], true, "{doc:#}");
    for (label, values) in &expected {
        let target = target_of(&doc, label);
        assert_eq!(
            target["outcome"],
            "no changes (CREATE_COMPLETE) (functions stack tapguard-functions: no changes (CREATE_COMPLETE))",
            "{target:#}"
        );
        // The stacks' own detectors and analyzers are theirs: the parameters stay as they were.
        for (key, value) in EXISTING.iter().zip(values) {
            assert_eq!(parameter_of(&target, key), (*value, "detected"), "{label} {key}");
        }
    }
    assert_eq!((invocations(&a), invocations(&b)), before);
    for account in [&a, &b] {
        for region in regions {
            assert_eq!(executions(account, region), 2, "{}/{region}", account.account_id);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
