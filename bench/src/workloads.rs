//! The Create events the bench times, and the read-back of the emulator's state after each, so that a
//! figure is only ever one of a function that did the work (Rust or peer alike).

use serde_json::{json, Value};
use tapguard_harness::{event, xml_value, Account, Emulator};

/// Managed rules with no parameters the emulator would refuse; the first takes one.
const RULES: [&str; 10] = [
    "ACCESS_KEYS_ROTATED",
    "S3_BUCKET_PUBLIC_READ_PROHIBITED",
    "ENCRYPTED_VOLUMES",
    "ROOT_ACCOUNT_MFA_ENABLED",
    "IAM_PASSWORD_POLICY",
    "CLOUD_TRAIL_ENABLED",
    "S3_BUCKET_SSL_REQUESTS_ONLY",
    "RDS_STORAGE_ENCRYPTED",
    "MFA_ENABLED_FOR_IAM_CONSOLE_ACCESS",
    "VPC_FLOW_LOGS_ENABLED",
];

pub enum Workload {
    ConfigSetup { rules: usize },
    EbsDefaultEncryption,
}

pub fn config_setup(rules: usize) -> Workload {
    Workload::ConfigSetup {
        rules: rules.min(RULES.len()),
    }
}

pub fn ebs_default_encryption() -> Workload {
    Workload::EbsDefaultEncryption
}

impl Workload {
    /// The Create event for a stack in `account_id`, answered at `response_url`.
    pub fn event(&self, account_id: &str, region: &str, response_url: &str) -> Value {
        let stack_id = format!(
            "arn:aws:cloudformation:{region}:{account_id}:stack/tap-bench/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f"
        );
        match self {
            Workload::ConfigSetup { rules } => {
                let rules: Vec<Value> = RULES[..*rules]
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        let mut rule = json!({"Name": format!("tap-bench-{i}"), "SourceIdentifier": id});
                        if *id == "ACCESS_KEYS_ROTATED" {
                            rule["InputParameters"] = json!({"maxAccessKeyAge": "90"});
                        }
                        rule
                    })
                    .collect();
                let props = json!({
                    "RoleArn": format!("arn:aws:iam::{account_id}:role/tap-config-recorder"),
                    "DeliveryBucketName": format!("tap-config-{account_id}"),
                    "AllSupported": "true",
                    "IncludeGlobalResourceTypes": "true",
                    "Rules": rules,
                });
                event(
                    "Create",
                    "Custom::ConfigSetup",
                    "ConfigSetup",
                    &stack_id,
                    response_url,
                    &props,
                    None,
                    None,
                )
            }
            Workload::EbsDefaultEncryption => event(
                "Create",
                "Custom::EbsDefaultEncryption",
                "EbsDefaultEncryption",
                &stack_id,
                response_url,
                &json!({}),
                None,
                None,
            ),
        }
    }

    /// What the Create must have left in the emulator.
    pub fn check(&self, emulator: &Emulator, account: &Account, region: &str) -> Result<(), String> {
        match self {
            Workload::ConfigSetup { rules } => {
                let config = |op: &str| {
                    emulator.json_call(
                        account,
                        region,
                        "config",
                        &format!("StarlingDoveService.{op}"),
                        json!({}),
                    )
                };
                let statuses = config("DescribeConfigurationRecorderStatus");
                let recording = statuses["ConfigurationRecordersStatus"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|r| r["recording"] == true));
                let channels = config("DescribeDeliveryChannels")["DeliveryChannels"]
                    .as_array()
                    .map_or(0, Vec::len);
                let found = config("DescribeConfigRules")["ConfigRules"]
                    .as_array()
                    .map_or(0, Vec::len);
                if recording && channels == 1 && found == *rules {
                    Ok(())
                } else {
                    Err(format!(
                        "ConfigSetup left recording={recording}, {channels} channels, {found} of {rules} rules"
                    ))
                }
            }
            Workload::EbsDefaultEncryption => {
                let on = emulator.query(account, region, "ec2", &[("Action", "GetEbsEncryptionByDefault")]);
                if xml_value(&on, "ebsEncryptionByDefault") == Some("true") {
                    Ok(())
                } else {
                    Err("EbsDefaultEncryption left encryption by default off".into())
                }
            }
        }
    }
}
