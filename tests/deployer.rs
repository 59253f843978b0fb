//! The deployer binary `tapguard`, run as a user runs it, against the emulator.
//! `local` plays the real handler binaries; `deploy`/`status`/`delete` talk to the emulator's CloudFormation.
//! Build it first: `cargo build -p tapguard` (make test builds every binary).

use std::path::PathBuf;
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
    let enabled = emulator().query(account, REGION, "ec2", &[("Action", "GetEbsEncryptionByDefault")]);
    let key = emulator().query(account, REGION, "ec2", &[("Action", "GetEbsDefaultKmsKeyId")]);
    (
        xml_value(&enabled, "ebsEncryptionByDefault") == Some("true"),
        xml_value(&key, "kmsKeyId").unwrap_or_default().to_string(),
    )
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
    assert_eq!(ebs_state(&account).0, true);
    let ops = emulator().operations(&account.account_id, "ec2");
    assert_eq!(
        mutating(&ops),
        vec!["EnableEbsEncryptionByDefault", "ModifyEbsDefaultKmsKeyId"],
        "the second resource found everything in place but the key ARN it was given: {ops:?}"
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

#[test]
fn local_condition_false_skips_the_resource_and_parameters_reach_the_handler() {
    let account = emulator().fresh_account();
    let created = emulator().json_call(&account, REGION, "kms", "TrentService.CreateKey", json!({}));
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
    let placeholder = format!(
        "arn:aws:kms:{REGION}:{}:local-placeholder/BaselineKey",
        account.account_id
    );
    assert!(
        out.contains(&format!(
            "note: GetAtt BaselineKey.Arn (AWS::KMS::Key) is not played locally: placeholder {placeholder:?}"
        )),
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
    assert_eq!(ebs_state(&account).0, false, "nothing was turned on");
    assert!(mutating(&emulator().operations(&account.account_id, "ec2")).is_empty());
}

#[test]
fn local_resource_value_replaces_the_placeholder() {
    let account = emulator().fresh_account();
    let created = emulator().json_call(&account, REGION, "kms", "TrentService.CreateKey", json!({}));
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
    assert_eq!(ebs_state(&account).0, false, "torn down");
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
    assert!(err.contains("is not one of its AllowedValues (true, false)"), "{err}");
    assert!(emulator().calls(&account.account_id, None).is_empty());
}
