//! The fault matrix, generated from what each handler declares (`CustomResource::OPERATIONS`, plus the
//! runtime's own answer-record operations): for every declared operation × fault, a Create, an Update
//! and a Delete are driven as CloudFormation sends them, each case in its own account of one emulator,
//! cases in parallel (ten at a time, the cases of every handler in one queue, spread over two emulator
//! processes). Every case checks:
//! - exactly one answer per event;
//! - SUCCESS only when the emulator's state is what was asked (read back from the emulator);
//! - FAILED naming the operation and the error code of the fault that fired;
//! - after the Delete (retried once with the fault gone when it answered FAILED, as a person retrying
//!   the stack operation would), the region is as it was (or as the plan says this resource's Delete
//!   deliberately leaves it) and nothing but answer records is left;
//! - a refused service was reached: some answer is FAILED naming one of its operations;
//! - no call to an operation the handler did not declare (the emulator's call log).
//!
//! `TAPGUARD_MATRIX_ONLY=securityhub-enable,shield-advanced` runs only those handlers' rows;
//! `TAPGUARD_MATRIX_TRACE=1` prints each answer's status and reason as the cases run;
//! `TAPGUARD_MATRIX_PARALLEL=N` and `TAPGUARD_MATRIX_EMULATORS=N` change how many cases run at once
//! and over how many emulator processes (to measure them).
//!
//! The matrix is printed as a table (`cargo test --test fault_matrix -- --nocapture`), and written to
//! `target/fault-matrix.md` for RELIABILITY.md (`make reliability`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tapguard_shared::CustomResource;
use tapguard_tests::*;

const REGION: &str = "eu-west-1";
/// Cases at once, and the emulator processes they are spread over: each moto server runs on one Python
/// interpreter; with two, the 461 cases took 485 s instead of 577 s on a loaded 2-core machine (see
/// RELIABILITY.md).
const PARALLEL: usize = 10;
const EMULATORS: usize = 2;
/// The Lambda timeout of every event: short, so the "slower than the deadline" cases stay short.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a slow answer takes (past the handler's share of TIMEOUT, half of it).
const SLOW: Duration = Duration::from_secs(6);

/// A slow answer for a Lambda timeout of `timeout`: one second past the handler's share of it (what the
/// runtime keeps back for the answer is the retry policy's reserve, at most half the time).
fn slow_for(timeout: Duration) -> Duration {
    let reserve = tapguard_shared::responder::RetryPolicy::default()
        .reserve()
        .min(timeout / 2);
    timeout.saturating_sub(reserve) + Duration::from_secs(1)
}

/// Broken promises this matrix found in a handler, left to its owner: each cell is still run and
/// printed (marked `known`), and the test fails if one of them starts keeping its promise (take it out
/// of here then) or any other cell breaks one.
const KNOWN: &[(&str, &str, &str)] = &[
    // Empty: the EBS Delete now keeps its claim until the restore is read back, and the ledger's steps
    // name their SSM operation, which were the cells listed here.
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Throttled3,
    Error500,
    AccessDenied,
    Slow,
    Refused,
}

const FAULTS: [Fault; 5] = [
    Fault::Throttled3,
    Fault::Error500,
    Fault::AccessDenied,
    Fault::Slow,
    Fault::Refused,
];

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Throttled3 => "throttled ×3",
            Fault::Error500 => "HTTP 500",
            Fault::AccessDenied => "AccessDenied",
            Fault::Slow => "past the deadline",
            Fault::Refused => "refused (service)",
        }
    }

    /// The emulator rule (None: no rule, the endpoint itself refuses).
    fn rule(self, service: &str, operation: &str, slow: Duration) -> Option<(Value, &'static str)> {
        let ec2 = service == "ec2";
        let (code, status, count) = match self {
            Fault::Throttled3 => (
                if ec2 {
                    "RequestLimitExceeded"
                } else {
                    "ThrottlingException"
                },
                400,
                json!(3),
            ),
            Fault::Error500 => (if ec2 { "InternalError" } else { "InternalFailure" }, 500, Value::Null),
            Fault::AccessDenied => (
                if ec2 {
                    "UnauthorizedOperation"
                } else {
                    "AccessDeniedException"
                },
                400,
                Value::Null,
            ),
            Fault::Slow => {
                return Some((
                    json!({"service": service, "operation": operation, "delay_ms": slow.as_millis() as u64, "count": 1}),
                    "timed out",
                ))
            }
            Fault::Refused => return None,
        };
        let mut rule = json!({"service": service, "operation": operation, "code": code, "status": status,
            "message": format!("injected {code}")});
        if !count.is_null() {
            rule["count"] = count;
        }
        Some((rule, code))
    }
}

/// One handler's declaration, the events it is driven with, and how to read its state back.
struct Subject {
    binary: &'static str,
    /// The row set's name when one handler has two (its plan in another mode): `<binary>-<variant>`.
    variant: &'static str,
    /// The services whose operations get faults (empty: all of them); the others are still declared,
    /// so calling anything outside `operations` fails the case.
    faulted: &'static [&'static str],
    resource_type: &'static str,
    operations: Vec<(&'static str, &'static str)>,
    /// The Lambda timeout of its events: TIMEOUT, or longer for a handler that must wait for AWS within
    /// the event (its slow faults are then slower too, see `slow_for`).
    timeout: Duration,
    /// Where its ownership ledger lives (IAM settings are claimed in one region per partition).
    ledger_regions: &'static [&'static str],
    /// Environment of its function besides the SDK's (settings the template would give it).
    env: &'static [(&'static str, &'static str)],
    /// The state the resource manages, as one comparable string, read from the emulator.
    state: fn(&World) -> String,
    /// Prepares the account and says what to ask for and what the state must then be, for a case of
    /// the operation given (a plan may take another path so that the operation is reached at all).
    plan: fn(&World, &str) -> Plan,
}

/// The Create and the Update of a case, each with the state a SUCCESS must leave.
struct Plan {
    create: Value,
    after_create: String,
    update: Value,
    after_update: String,
    /// States besides the one before the case that the Delete may leave, because this resource's Delete
    /// deliberately keeps what its events did (access keys handed over belong to their users); empty
    /// for a resource whose Delete restores everything.
    kept: Vec<String>,
}

fn declared(operations: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut all = operations.to_vec();
    all.extend(tapguard_shared::answers::OPERATIONS);
    all.sort();
    all.dedup();
    all
}

fn subjects() -> Vec<Subject> {
    vec![
        Subject {
            binary: "ebs-default-encryption",
            variant: "",
            faulted: &[],
            resource_type: "Custom::EbsDefaultEncryption",
            operations: declared(ebs_default_encryption::EbsDefaultEncryption::OPERATIONS),
            timeout: TIMEOUT,
            ledger_regions: &[REGION],
            env: &[],
            state: ebs_state,
            plan: ebs_plan,
        },
        Subject {
            binary: "iam-password-policy",
            variant: "",
            faulted: &[],
            resource_type: "Custom::IamPasswordPolicy",
            operations: declared(iam_password_policy::IamPasswordPolicy::OPERATIONS),
            timeout: TIMEOUT,
            ledger_regions: &[REGION, "us-east-1"],
            env: &[],
            state: password_policy_state,
            plan: password_policy_plan,
        },
        Subject {
            binary: "securityhub-enable",
            variant: "",
            faulted: &[],
            resource_type: "Custom::SecurityHubEnable",
            operations: declared(securityhub_enable::SecurityHubEnable::OPERATIONS),
            timeout: TIMEOUT,
            ledger_regions: &[REGION],
            env: &[],
            state: hub_state,
            plan: hub_plan,
        },
        Subject {
            binary: "securityhub-standards",
            variant: "",
            faulted: &[],
            resource_type: "Custom::SecurityHubStandards",
            operations: declared(securityhub_standards::SecurityHubStandards::OPERATIONS),
            // It waits within the event for each standard to be READY, keeping 10 s back for undoing.
            timeout: Duration::from_secs(25),
            ledger_regions: &[REGION],
            env: &[],
            state: standards_state,
            plan: standards_plan,
        },
        Subject {
            binary: "shield-advanced",
            variant: "",
            faulted: &[],
            resource_type: "Custom::ShieldAdvanced",
            operations: declared(shield_advanced::ShieldAdvanced::OPERATIONS),
            timeout: TIMEOUT,
            // Shield is global: its ledger is in us-east-1, where its API is.
            ledger_regions: &[REGION, "us-east-1"],
            env: &[],
            state: shield_state,
            plan: shield_plan,
        },
        Subject {
            binary: "config-setup",
            variant: "",
            faulted: &[],
            resource_type: "Custom::ConfigSetup",
            operations: declared(config_setup::ConfigSetup::OPERATIONS),
            timeout: TIMEOUT,
            ledger_regions: &[REGION],
            env: &[],
            state: config_state,
            plan: config_plan,
        },
        Subject {
            binary: "delegated-admin",
            variant: "",
            faulted: &[],
            resource_type: "Custom::DelegatedAdministrator",
            operations: declared(delegated_admin::DelegatedAdministrator::OPERATIONS),
            timeout: TIMEOUT,
            // Its claims are organization-wide: the ledger is in the partition's global region.
            ledger_regions: &[REGION, "us-east-1"],
            env: &[],
            state: delegated_admin_state,
            plan: delegated_admin_plan,
        },
        Subject {
            binary: "access-key-rotation",
            variant: "",
            faulted: &[],
            resource_type: "Custom::AccessKeyRotation",
            operations: declared(access_key_rotation::AccessKeyRotation::OPERATIONS),
            // Its own backoff on throttling comes on top of the SDK's (three throttled answers take up to
            // 4 s): with 10 s (5 s for the handler) a throttled case was cut off in the middle of a user,
            // or deferred every user to the schedule.
            timeout: Duration::from_secs(16),
            // IAM is global; the rotation claims its policy in the function's region.
            ledger_regions: &[REGION],
            // Users are started until 1 s before the deadline (20 s in Lambda, longer than these events).
            env: &[("TAPGUARD_DEADLINE_MARGIN_SECS", "1")],
            state: rotation_state,
            plan: rotation_plan,
        },
        // Audit: the same user, only read. Its operations are the reads it may make: a write (a tag, a key,
        // a secret, a notice, a claim) is an undeclared call and fails the case. Faults go into the IAM
        // reads only: the SSM rows (the answer records and the release of a claim it never made) are
        // the runtime's and the ledger's, which every other handler's rows cover.
        Subject {
            binary: "access-key-rotation",
            variant: "audit",
            faulted: &["iam"],
            resource_type: "Custom::AccessKeyRotation",
            operations: declared(&[
                ("iam", "GetCredentialReport"),
                ("iam", "GenerateCredentialReport"),
                ("iam", "ListAccessKeys"),
                ("iam", "ListUserTags"),
            ]),
            timeout: Duration::from_secs(16),
            ledger_regions: &[REGION],
            env: &[("TAPGUARD_DEADLINE_MARGIN_SECS", "1")],
            state: rotation_state,
            plan: audit_plan,
        },
    ]
}

impl Subject {
    /// `binary`, or `binary-variant`: the name of its rows, and what TAPGUARD_MATRIX_ONLY matches.
    fn name(&self) -> String {
        if self.variant.is_empty() {
            self.binary.to_string()
        } else {
            format!("{}-{}", self.binary, self.variant)
        }
    }
}

/// The region's AWS Config: each recorder with whether it records, each delivery channel with its
/// bucket, and each rule with its source, or `none`.
fn config_state(w: &World) -> String {
    let call = |operation: &str| w.json_call("config", &format!("StarlingDoveService.{operation}"), json!({}));
    let list = |answer: Value, key: &str| answer[key].as_array().cloned().unwrap_or_default();
    let statuses = list(
        call("DescribeConfigurationRecorderStatus"),
        "ConfigurationRecordersStatus",
    );
    let mut parts: Vec<String> = list(call("DescribeConfigurationRecorders"), "ConfigurationRecorders")
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap_or_default();
            let recording = statuses.iter().any(|s| s["name"] == name && s["recording"] == true);
            format!("recorder {name} recording {recording}")
        })
        .collect();
    parts.extend(
        list(call("DescribeDeliveryChannels"), "DeliveryChannels")
            .iter()
            .map(|c| {
                format!(
                    "channel {} {}",
                    c["name"].as_str().unwrap_or_default(),
                    c["s3BucketName"].as_str().unwrap_or_default()
                )
            }),
    );
    let mut rules: Vec<String> = list(call("DescribeConfigRules"), "ConfigRules")
        .iter()
        .map(|r| {
            format!(
                "rule {} {}",
                r["ConfigRuleName"].as_str().unwrap_or_default(),
                r["Source"]["SourceIdentifier"].as_str().unwrap_or_default()
            )
        })
        .collect();
    rules.sort();
    parts.extend(rules);
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join("; ")
    }
}

/// A recorder, channel and one rule in a fresh region, then an Update that swaps the rule for another.
fn config_plan(w: &World, _: &str) -> Plan {
    let account = &w.account.account_id;
    let props = |rule: Value| {
        json!({"RoleArn": format!("arn:aws:iam::{account}:role/tap-config-recorder"),
            "DeliveryBucketName": format!("tap-config-{account}"), "Rules": [rule]})
    };
    let state = |rule: &str, source: &str| {
        format!("recorder default recording true; channel default tap-config-{account}; rule {rule} {source}")
    };
    Plan {
        create: props(json!({"Name": "tap-encrypted-volumes", "SourceIdentifier": "ENCRYPTED_VOLUMES"})),
        after_create: state("tap-encrypted-volumes", "ENCRYPTED_VOLUMES"),
        update: props(json!({"Name": "tap-root-mfa", "SourceIdentifier": "ROOT_ACCOUNT_MFA_ENABLED"})),
        after_update: state("tap-root-mfa", "ROOT_ACCOUNT_MFA_ENABLED"),
        kept: Vec::new(),
    }
}

/// The region's hub: `off`, or `on <ControlFindingGenerator> <AutoEnableControls> <tag keys>`.
fn hub_state(w: &World) -> String {
    let hub = w.rest_call("securityhub", "GET", "/accounts", None);
    if hub.get("HubArn").is_none() {
        return "off".into();
    }
    let arn = hub["HubArn"].as_str().unwrap_or_default();
    let tags = w.rest_call("securityhub", "GET", &format!("/tags/{arn}"), None);
    let keys: Vec<&str> = tags["Tags"]
        .as_object()
        .map(|t| t.keys().map(String::as_str).collect())
        .unwrap_or_default();
    format!(
        "on {} {} [{}]",
        hub["ControlFindingGenerator"].as_str().unwrap_or_default(),
        hub["AutoEnableControls"],
        keys.join(",")
    )
}

/// Turn the hub on in a fresh account, then Update a setting and add a tag. For UntagResource's cases
/// the tag comes with the Create and the Update drops it, so that the Update takes the tag off.
fn hub_plan(_: &World, operation: &str) -> Plan {
    if operation == "UntagResource" {
        return Plan {
            create: json!({"ControlFindingGenerator": "SECURITY_CONTROL", "Tags": {"owner": "matrix"}}),
            after_create: "on SECURITY_CONTROL true [owner]".into(),
            update: json!({"ControlFindingGenerator": "SECURITY_CONTROL", "AutoEnableControls": "false"}),
            after_update: "on SECURITY_CONTROL false []".into(),
            kept: Vec::new(),
        };
    }
    Plan {
        create: json!({"ControlFindingGenerator": "SECURITY_CONTROL"}),
        after_create: "on SECURITY_CONTROL true []".into(),
        update: json!({"ControlFindingGenerator": "SECURITY_CONTROL", "AutoEnableControls": "false",
            "Tags": {"owner": "matrix"}}),
        after_update: "on SECURITY_CONTROL false [owner]".into(),
        kept: Vec::new(),
    }
}

const FSBP: &str = "aws-foundational-security-best-practices/v/1.0.0";

/// The region's subscribed standards with their status, and FSBP's IAM.4 when it is subscribed; `none`
/// when there are none (or no hub). Each read moves PENDING and DELETING along, as in AWS.
fn standards_state(w: &World) -> String {
    let mut last = String::new();
    for _ in 0..5 {
        let answer = w.rest_call("securityhub", "POST", "/standards/get", Some(json!({})));
        let subscribed: Vec<String> = answer["StandardsSubscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let arn = s["StandardsArn"].as_str().unwrap_or_default();
                format!(
                    "{} {}",
                    arn.rsplit_once(":standards/").map_or(arn, |(_, id)| id),
                    s["StandardsStatus"].as_str().unwrap_or_default()
                )
            })
            .collect();
        if subscribed
            .iter()
            .any(|s| s.ends_with("PENDING") || s.ends_with("DELETING"))
        {
            last = subscribed.join(", ");
            continue;
        }
        if subscribed.is_empty() {
            return "none".into();
        }
        let subscription = format!(
            "arn:aws:securityhub:{REGION}:{}:subscription/{FSBP}",
            w.account.account_id
        );
        let control = format!(
            "arn:aws:securityhub:{REGION}:{}:control/{FSBP}/IAM.4",
            w.account.account_id
        );
        let controls = w.rest_call(
            "securityhub",
            "GET",
            &format!("/standards/controls/{subscription}"),
            None,
        );
        let iam4 = controls["Controls"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["StandardsControlArn"] == control.as_str())
            .and_then(|c| c["ControlStatus"].as_str())
            .unwrap_or("-");
        return format!("{}; IAM.4 {iam4}", subscribed.join(", "));
    }
    format!("not settled: {last}")
}

/// With the hub on (as SecurityHubEnable leaves it), subscribe FSBP, then Update to disable a control:
/// by its security control id, or, for the cases of the standards-control API (DescribeStandardsControls,
/// UpdateStandardsControl), by its standards control ARN, which is changed through that API.
fn standards_plan(w: &World, operation: &str) -> Plan {
    let enabled = w.rest_call(
        "securityhub",
        "POST",
        "/accounts",
        Some(json!({"EnableDefaultStandards": false, "ControlFindingGenerator": "SECURITY_CONTROL"})),
    );
    assert!(enabled.get("__type").is_none(), "{enabled}");
    Plan {
        create: json!({"Standards": [FSBP]}),
        after_create: format!("{FSBP} READY; IAM.4 ENABLED"),
        update: if matches!(operation, "DescribeStandardsControls" | "UpdateStandardsControl") {
            let arn = format!(
                "arn:aws:securityhub:{REGION}:{}:control/{FSBP}/IAM.4",
                w.account.account_id
            );
            json!({"Standards": [FSBP], "DisabledControls": [{"StandardsControlArn": arn, "Reason": "matrix"}]})
        } else {
            json!({"Standards": [FSBP], "DisabledControls": [{"ControlId": "IAM.4", "Reason": "matrix"}]})
        },
        after_update: format!("{FSBP} READY; IAM.4 DISABLED"),
        kept: Vec::new(),
    }
}

/// What a Shield Advanced resource can commit the account to and undo: whether the subscription renews
/// (a subscription cannot be cancelled, so a Delete turns auto-renew off and the subscription lapses at
/// the end of its term), the SRT's role, proactive engagement (on, or off: once set up it cannot go back
/// to never set up, so DISABLED and absent are both off) and the emergency contacts.
fn shield_state(w: &World) -> String {
    let subscription = w.json_call("shield", "AWSShield_20160616.DescribeSubscription", json!({}));
    let renews = subscription["Subscription"]["AutoRenew"] == "ENABLED";
    let role = w.json_call("shield", "AWSShield_20160616.DescribeDRTAccess", json!({}));
    let engaged = matches!(
        subscription["Subscription"]["ProactiveEngagementStatus"].as_str(),
        Some("ENABLED" | "PENDING")
    );
    let contacts = w.json_call(
        "shield",
        "AWSShield_20160616.DescribeEmergencyContactSettings",
        json!({}),
    );
    let contacts: Vec<String> = contacts["EmergencyContactList"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}/{}",
                c["EmailAddress"].as_str().unwrap_or("?"),
                c["PhoneNumber"].as_str().unwrap_or("-")
            )
        })
        .collect();
    format!(
        "renews {renews} srt {} pe {} contacts {}",
        role["RoleArn"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or("none"),
        if engaged { "on" } else { "off" },
        if contacts.is_empty() {
            "none".to_string()
        } else {
            contacts.join(",")
        }
    )
}

/// Subscribe with an SRT role, an emergency contact and proactive engagement on, then Update to give the
/// SRT access back and turn proactive engagement off, keeping the contact.
fn shield_plan(w: &World, _: &str) -> Plan {
    let role = format!("arn:aws:iam::{}:role/tap-shield-srt", w.account.account_id);
    let contacts = json!([{"EmailAddress": "soc@example.com", "PhoneNumber": "+15555550100"}]);
    Plan {
        create: json!({"CreateSubscription": "true", "SrtRoleArn": role, "EmergencyContacts": contacts,
            "ProactiveEngagement": "true"}),
        after_create: "renews true srt tap-shield-srt pe on contacts soc@example.com/+15555550100".into(),
        update: json!({"CreateSubscription": "true", "EmergencyContacts": contacts}),
        after_update: "renews true srt none pe off contacts soc@example.com/+15555550100".into(),
        kept: Vec::new(),
    }
}

/// The organization member that the delegated-administrator cases designate.
const DELEGATE: &str = "222222222222";

/// GuardDuty's delegated administrators in the region (with their status) and AWS Config's (each
/// principal's), as the organization's management account sees them; empty before there is one.
fn delegated_admin_state(w: &World) -> String {
    let guardduty = w.rest_call("guardduty", "GET", "/admin", None);
    let guardduty: Vec<String> = guardduty["adminAccounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} {}",
                a["adminAccountId"].as_str().unwrap_or_default(),
                a["adminStatus"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let config: Vec<String> = delegated_admin::CONFIG_PRINCIPALS
        .iter()
        .flat_map(|principal| {
            let answer = w.json_call(
                "organizations",
                "AWSOrganizationsV20161128.ListDelegatedAdministrators",
                json!({"ServicePrincipal": principal}),
            );
            answer["DelegatedAdministrators"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |a| format!("{} {principal}", a["Id"].as_str().unwrap_or_default()))
        })
        .collect();
    format!("guardduty [{}] config [{}]", guardduty.join(", "), config.join(", "))
}

/// The case's account manages an organization with DELEGATE as a member; designate DELEGATE for GuardDuty,
/// or, for the cases of an Organizations operation (the refused Organizations endpoint's included: it is
/// planned with the service's first operation), for AWS Config (whose trusted access is then on): only
/// that path calls Organizations. An Update cannot change the account or service, so it sends the same again.
fn delegated_admin_plan(w: &World, operation: &str) -> Plan {
    w.emulator.control(
        "/tapguard/organizations/member",
        json!({"account": w.account.account_id, "member": DELEGATE}),
    );
    let config = delegated_admin::DelegatedAdministrator::OPERATIONS
        .iter()
        .any(|&(service, op)| service == "organizations" && op == operation);
    let (properties, after) = if config {
        for principal in delegated_admin::CONFIG_PRINCIPALS {
            w.json_call(
                "organizations",
                "AWSOrganizationsV20161128.EnableAWSServiceAccess",
                json!({"ServicePrincipal": principal}),
            );
        }
        let config: Vec<String> = delegated_admin::CONFIG_PRINCIPALS
            .iter()
            .map(|p| format!("{DELEGATE} {p}"))
            .collect();
        (
            json!({"Service": "Config", "AccountId": DELEGATE}),
            format!("guardduty [] config [{}]", config.join(", ")),
        )
    } else {
        (
            json!({"Service": "GuardDuty", "AccountId": DELEGATE}),
            format!("guardduty [{DELEGATE} ENABLED] config []"),
        )
    };
    Plan {
        create: properties.clone(),
        after_create: after.clone(),
        update: properties,
        after_update: after,
        kept: Vec::new(),
    }
}

/// The IAM user whose keys the access-key-rotation cases rotate, and the secret its new key goes to.
const ROTATED_USER: &str = "alice-0";
const ROTATED_SECRET: &str = "tap/access-keys/alice-0";

/// What the rotation of ROTATED_USER has come to, keys by their age in days (the setup's keys are
/// 120 and 130 days old, a new one 0): `keys [<age>d <status>, …] secret <holds <age>d | empty | none>
/// tags [<the user's tap: tags, a key id as its key's age>] | ledger [<claims, records>]`.
fn rotation_state(w: &World) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let listed = w.query("iam", &[("Action", "ListAccessKeys"), ("UserName", ROTATED_USER)]);
    let keys: Vec<(String, String, String)> = listed
        .split("<member>")
        .skip(1)
        .map(|member| {
            let created = xml_value(member, "CreateDate")
                .and_then(access_key_rotation::report::parse_timestamp)
                .unwrap_or(now);
            (
                xml_value(member, "AccessKeyId").unwrap_or_default().to_string(),
                format!("{}d", (now - created) / 86_400),
                xml_value(member, "Status").unwrap_or_default().to_string(),
            )
        })
        .collect();
    let age_of = |id: &str| {
        keys.iter()
            .find(|(key, _, _)| key.eq_ignore_ascii_case(id))
            .map_or("a deleted key".to_string(), |(_, age, _)| age.clone())
    };
    let mut statuses: Vec<String> = keys.iter().map(|(_, age, status)| format!("{age} {status}")).collect();
    statuses.sort();
    let described = w.json_call(
        "secretsmanager",
        "secretsmanager.DescribeSecret",
        json!({"SecretId": ROTATED_SECRET}),
    );
    let secret = if described.get("ARN").is_none() {
        "none".to_string()
    } else {
        let value = w.json_call(
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            json!({"SecretId": ROTATED_SECRET}),
        );
        match value["SecretString"]
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
        {
            Some(stored) => format!("holds {}", age_of(stored["AccessKeyId"].as_str().unwrap_or_default())),
            None => "empty".to_string(),
        }
    };
    let tagged = w.query("iam", &[("Action", "ListUserTags"), ("UserName", ROTATED_USER)]);
    let mut tags: Vec<String> = tagged
        .split("<member>")
        .skip(1)
        .filter_map(|member| xml_value(member, "Key"))
        .filter(|key| key.to_ascii_lowercase().starts_with("tap:"))
        .map(
            |key| match key.strip_prefix(access_key_rotation::DEACTIVATED_TAG_PREFIX) {
                Some(id) => format!("{}{}", access_key_rotation::DEACTIVATED_TAG_PREFIX, age_of(id)),
                None => key.to_string(),
            },
        )
        .collect();
    tags.sort();
    let mut ledger: Vec<String> = left_behind(w, &[REGION])
        .iter()
        .map(|name| {
            let name = name.trim_start_matches(&format!("{REGION}:"));
            match name.strip_prefix("/tapguard/claims/") {
                Some(claim) => format!("claim {}", claim.rsplit_once('/').map_or(claim, |(setting, _)| setting)),
                None if name.ends_with("/schedule-cursor") => "resume point".to_string(),
                None => "record".to_string(),
            }
        })
        .collect();
    ledger.sort();
    format!(
        "keys [{}] secret {secret} tags [{}] | ledger [{}]",
        statuses.join(", "),
        tags.join(", "),
        ledger.join(", ")
    )
}

/// ROTATED_USER holds an active key over age (120 days) and an inactive one past the grace period (130
/// days, never used). A Rotate Create deletes the expired key and hands a new key over in the user's
/// secret, the old one staying active through the overlap; the Update, with no overlap left, retires
/// the old key (unused since). The Delete gives up the claim and leaves the keys and the secret to the
/// user, so it may leave the user as any event (or a part of one that it finished or undid) left it:
/// the expired key deleted (a hand-over undone, at whatever step: the secret it created goes with its
/// key, so there is no secret); the new key handed over; the old key retired, with or without the
/// hand-over tag still on (a cut or failed Update: the next pass takes it off); never a key nobody was
/// handed, an empty secret, an unfinished intent, a date on a key still active, or a claim.
fn rotation_plan(w: &World, _: &str) -> Plan {
    let account = &w.account.account_id;
    let topic = w.query("sns", &[("Action", "CreateTopic"), ("Name", "key-rotation")]);
    let topic = xml_value(&topic, "TopicArn")
        .unwrap_or_else(|| panic!("CreateTopic: {topic}"))
        .to_string();
    w.emulator.control(
        "/tapguard/iam/bulk-users",
        json!({"account": account, "prefix": "alice-", "count": 1,
            "keys": [{"age_days": 120}, {"age_days": 130, "status": "Inactive"}]}),
    );
    let props = |overlap: &str| {
        json!({"Mode": "Rotate", "NotifyTopicArn": topic, "MaxKeyAgeDays": "90", "OverlapDays": overlap,
            "GraceDays": "14"})
    };
    let user = |keys: &str, secret: &str, tags: &str| format!("keys [{keys}] secret {secret} tags [{tags}]");
    let claimed = " | ledger [claim iam-access-keys/rotation-policy, record]";
    let released = " | ledger []";
    let handed_over = user("0d Active, 120d Active", "holds 0d", "tap:rotation-handed-over");
    let retired = user("0d Active, 120d Inactive", "holds 0d", "tap:rotation-deactivated:120d");
    Plan {
        create: props("7"),
        after_create: format!("{handed_over}{claimed}"),
        update: props("0"),
        after_update: format!("{retired}{claimed}"),
        kept: vec![
            format!("{}{released}", user("120d Active", "none", "")),
            format!("{handed_over}{released}"),
            format!("{retired}{released}"),
            format!(
                "{}{released}",
                user(
                    "0d Active, 120d Inactive",
                    "holds 0d",
                    "tap:rotation-deactivated:120d, tap:rotation-handed-over"
                )
            ),
        ],
    }
}

/// The same user under an Audit resource: the Create and an Update (another age) report and change
/// nothing, so every SUCCESS must leave the user exactly as the set-up made it, and so must the Delete.
fn audit_plan(w: &World, _: &str) -> Plan {
    w.emulator.control(
        "/tapguard/iam/bulk-users",
        json!({"account": w.account.account_id, "prefix": "alice-", "count": 1,
            "keys": [{"age_days": 120}, {"age_days": 130, "status": "Inactive"}]}),
    );
    let untouched = "keys [120d Active, 130d Inactive] secret none tags [] | ledger []".to_string();
    Plan {
        create: json!({"Mode": "Audit", "MaxKeyAgeDays": "90"}),
        after_create: untouched.clone(),
        update: json!({"Mode": "Audit", "MaxKeyAgeDays": "100"}),
        after_update: untouched,
        kept: Vec::new(),
    }
}

/// The region's EBS default: `<enabled> <key>`.
fn ebs_state(w: &World) -> String {
    let enabled = w.query("ec2", &[("Action", "GetEbsEncryptionByDefault")]);
    let key = w.query("ec2", &[("Action", "GetEbsDefaultKmsKeyId")]);
    format!(
        "{} {}",
        xml_value(&enabled, "ebsEncryptionByDefault") == Some("true"),
        xml_value(&key, "kmsKeyId").unwrap_or_default()
    )
}

/// Create with the AWS managed key, Update to a customer managed key by its alias (with a key policy
/// that lets EBS use it: the account, and the Auto Scaling service-linked role).
fn ebs_plan(w: &World, _: &str) -> Plan {
    let account = &w.account.account_id;
    let role =
        format!("arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling");
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*",
         "kms:GenerateDataKey*", "kms:DescribeKey"], "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}}]});
    let created = w.json_call(
        "kms",
        "TrentService.CreateKey",
        json!({"Description": "matrix", "Policy": policy.to_string()}),
    );
    let id = created["KeyMetadata"]["KeyId"].as_str().unwrap_or_default().to_string();
    w.json_call(
        "kms",
        "TrentService.CreateAlias",
        json!({"AliasName": "alias/matrix", "TargetKeyId": id}),
    );
    let key_arn = created["KeyMetadata"]["Arn"].as_str().unwrap_or_default();
    let managed = format!("arn:aws:kms:{REGION}:{}:alias/aws/ebs", w.account.account_id);
    Plan {
        create: json!({}),
        after_create: format!("true {managed}"),
        update: json!({"KmsKeyId": "alias/matrix"}),
        after_update: format!("true {key_arn}"),
        kept: Vec::new(),
    }
}

/// The account's password policy: its minimum length and symbol rule, or `none`.
fn password_policy_state(w: &World) -> String {
    let xml = w.query("iam", &[("Action", "GetAccountPasswordPolicy")]);
    if !xml.contains("<PasswordPolicy>") {
        return "none".into();
    }
    format!(
        "length {} symbols {}",
        xml_value(&xml, "MinimumPasswordLength").unwrap_or_default(),
        xml_value(&xml, "RequireSymbols").unwrap_or_default()
    )
}

/// Create a policy in an account without one, then Update it to a longer minimum length.
fn password_policy_plan(_: &World, _: &str) -> Plan {
    Plan {
        create: json!({"MinimumPasswordLength": "14", "RequireSymbols": "true"}),
        after_create: "length 14 symbols true".into(),
        update: json!({"MinimumPasswordLength": "16", "RequireSymbols": "true"}),
        after_update: "length 16 symbols true".into(),
        kept: Vec::new(),
    }
}

/// The tapguard parameters of this account in `regions` (its ledgers and answer records).
fn parameters(w: &World, regions: &[&str]) -> Vec<String> {
    regions
        .iter()
        .flat_map(|region| {
            let listed = w.emulator.json_call(
                &w.account,
                region,
                "ssm",
                "AmazonSSM.GetParametersByPath",
                json!({"Path": "/tapguard", "Recursive": true}),
            );
            listed["Parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["Name"].as_str().map(|name| format!("{region}:{name}")))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What a resource left in its ledgers: every tapguard parameter but the answer records.
fn left_behind(w: &World, regions: &[&str]) -> Vec<String> {
    parameters(w, regions)
        .into_iter()
        .filter(|p| !p.contains("/answers/"))
        .collect()
}

/// How often the rules of this account fired.
fn fired(w: &World) -> u64 {
    w.emulator
        .faults()
        .iter()
        .filter(|r| r["account"] == w.account.account_id.as_str())
        .map(|r| r["fired"].as_u64().unwrap_or(0))
        .sum()
}

/// The outcome of one case: a letter per event (S, F; `F>S` a Delete that succeeded on retry) or the
/// broken promises.
struct Case {
    service: &'static str,
    operation: &'static str,
    fault: Fault,
    cell: String,
    problems: Vec<String>,
}

/// The SDK's service-specific endpoint variable of a service: `AWS_ENDPOINT_URL_` and its serviceId in
/// capitals with spaces as underscores (the SDKs and Tools guide, "Identifiers for service-specific
/// endpoints"): AWS Config's serviceId is "Config Service", so `config` alone would set nothing.
fn endpoint_variable(service: &str) -> String {
    let service_id = match service {
        "config" => "CONFIG_SERVICE",
        "secretsmanager" => "SECRETS_MANAGER",
        other => return format!("AWS_ENDPOINT_URL_{}", other.to_uppercase()),
    };
    format!("AWS_ENDPOINT_URL_{service_id}")
}

impl Case {
    /// Its only problems are answers cut off by the deadline in events where no fault had fired (and
    /// its state was therefore not checked): a machine too loaded for the short Lambda timeout.
    fn cut_off_by_the_machine(&self) -> bool {
        !self.problems.is_empty()
            && self.problems.iter().all(|p| {
                (p.contains("FAILED although no fault fired: ") || p.starts_with("Delete retried without the fault: "))
                    && p.contains(tapguard_shared::CUT_OFF_REASON)
            })
    }
}

/// Runs one case in an account of `emulator` with a Lambda timeout of `timeout` for each event (the
/// subject's, or longer on a rerun).
fn run_case(
    emulator: &'static Emulator,
    subject: &Subject,
    service: &'static str,
    operation: &'static str,
    fault: Fault,
    timeout: Duration,
) -> Case {
    let refused_env;
    let mut extra: Vec<(&str, &str)> = subject.env.to_vec();
    if fault == Fault::Refused {
        refused_env = (
            endpoint_variable(service),
            ResponseServer::refusing_url()
                .split("/responses")
                .next()
                .unwrap()
                .to_string(),
        );
        extra.push((refused_env.0.as_str(), refused_env.1.as_str()));
    }
    // The operations of the service this case's fault is on (all of them for a refused endpoint).
    let service_operations: Vec<&str> = subject
        .operations
        .iter()
        .filter(|(s, _)| *s == service)
        .map(|(_, o)| *o)
        .collect();
    let w = World::on(emulator, subject.binary, REGION, &extra);
    // A refused endpoint is planned as a case of the service's first operation (a plan that takes another
    // path for some operations then takes it for their service's refusal too).
    let planned = if operation == "*" {
        service_operations.first().copied().unwrap_or(operation)
    } else {
        operation
    };
    let plan = (subject.plan)(&w, planned);
    // After the plan's set-up (the users whose keys a rotation case rotates are part of what it reads).
    let before = (subject.state)(&w);
    let mut expected_code = None;
    if let Some((rule, code)) = fault.rule(service, operation, slow_for(timeout)) {
        w.fault(rule);
        expected_code = Some(code);
    }
    let mut problems = Vec::new();
    let mut letters = Vec::new();
    let slow = slow_for(timeout);
    // `TAPGUARD_MATRIX_TRACE=1` prints every answer of every case (status and reason) to stderr.
    let trace = std::env::var_os("TAPGUARD_MATRIX_TRACE").is_some();
    let mut r = w.resource(subject.resource_type, "Resource");
    r.timeout = timeout;
    // Whether an answer of a refused case named an operation of the refused service.
    let reached = std::cell::Cell::new(false);
    let check = |step: &str,
                 exchange: &Exchange,
                 wanted: Option<&str>,
                 fired_before: u64,
                 w: &World,
                 letters: &mut Vec<String>,
                 problems: &mut Vec<String>| {
        let accepted = w.responses.accepted(exchange.response_url());
        if accepted.len() != 1 {
            problems.push(format!("{step}: {} answers", accepted.len()));
        }
        if fault == Fault::Slow && fired(w) > fired_before {
            // The slow call was made in this event: let it land before reading the state or sending the
            // next event (the rule fires once, so the other events of the case need no wait).
            std::thread::sleep(slow);
        }
        let Some(answer) = accepted.first() else {
            letters.push("-".to_string());
            return false;
        };
        let ok = answer["Status"] == "SUCCESS";
        if trace {
            eprintln!(
                "{} {service}:{operation} {}: {step}: {} {}",
                subject.name(),
                fault.name(),
                answer["Status"],
                answer["Reason"].as_str().unwrap_or_default()
            );
        }
        if ok {
            if let Some(wanted) = wanted {
                let state = (subject.state)(w);
                if state != wanted {
                    problems.push(format!(
                        "{step}: SUCCESS but the emulator holds {state:?}, not {wanted:?}"
                    ));
                }
            }
        } else {
            let reason = answer["Reason"].as_str().unwrap_or_default();
            if fault == Fault::Refused && service_operations.iter().any(|op| reason.contains(op)) {
                reached.set(true);
            }
            if fired(w) > fired_before {
                if let Some(code) = expected_code {
                    // The code, or the deadline that ran out while the SDK was still retrying it.
                    let named = reason.contains(operation) && (reason.contains(code) || reason.contains("timed out"));
                    if !named {
                        problems.push(format!(
                            "{step}: FAILED without naming {operation} and {code}: {reason}"
                        ));
                    }
                }
            } else if fault != Fault::Refused {
                problems.push(format!("{step}: FAILED although no fault fired: {reason}"));
            }
        }
        letters.push(if ok { "S" } else { "F" }.to_string());
        ok
    };

    let f = fired(&w);
    let created = r.create(plan.create.clone());
    // CloudFormation's rollback Delete of a failed Create carries the Create's properties (the driver
    // keeps only those of a SUCCESS): a handler whose undo depends on them must get them.
    r.properties = plan.create.clone();
    check(
        "Create",
        &created,
        Some(plan.after_create.as_str()),
        f,
        &w,
        &mut letters,
        &mut problems,
    );
    if created.status() == "SUCCESS" {
        let f = fired(&w);
        let updated = r.update(plan.update.clone());
        check(
            "Update",
            &updated,
            Some(plan.after_update.as_str()),
            f,
            &w,
            &mut letters,
            &mut problems,
        );
    } else {
        letters.push("·".into());
    }
    let f = fired(&w);
    let deleted = r.delete();
    let mut deleted_ok = check("Delete", &deleted, None, f, &w, &mut letters, &mut problems);
    if !deleted_ok {
        // The fault goes away and the Delete is retried, in a fresh process without the fault's endpoint.
        w.emulator.clear_faults(&w.account.account_id);
        let mut env = w.emulator.sdk_env(&w.account, REGION);
        env.extend(subject.env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let host = LambdaHost::start(&binary_path(subject.binary), &env);
        let mut retry = CustomResourceDriver {
            host: &host,
            ..w.resource(subject.resource_type, "Resource")
        };
        retry.physical_id = r.physical_id.clone();
        retry.properties = r.properties.clone();
        let again = retry.delete();
        deleted_ok = again.status() == "SUCCESS";
        let last = letters.pop().unwrap_or_default();
        letters.push(format!("{last}>{}", if deleted_ok { "S" } else { "F" }));
        if !deleted_ok {
            problems.push(format!("Delete retried without the fault: {}", again.reason()));
        }
    }
    if deleted_ok {
        let after = (subject.state)(&w);
        if after != before && !plan.kept.contains(&after) {
            problems.push(format!(
                "after the Delete the emulator holds {after:?}, before {before:?}"
            ));
        }
        let left = left_behind(&w, subject.ledger_regions);
        if !left.is_empty() {
            problems.push(format!("left behind: {left:?}"));
        }
    }
    if fault == Fault::Refused && !reached.get() {
        problems.push(format!(
            "the refused {service} endpoint was never met: no answer is FAILED naming one of its operations"
        ));
    }
    // Nothing undeclared was called.
    let declared: BTreeSet<(String, String)> = subject
        .operations
        .iter()
        .map(|(s, o)| (s.to_string(), o.to_string()))
        .collect();
    for call in w.emulator.calls(&w.account.account_id, None) {
        let service = call["service"].as_str().unwrap_or_default().to_string();
        let op = call["operation"].as_str().unwrap_or_default().to_string();
        // The harness's own setup and read-backs are marked and left out of the call log.
        if !declared.contains(&(service.clone(), op.clone())) {
            problems.push(format!("called {service}:{op}, which it does not declare"));
        }
    }
    Case {
        service,
        operation,
        fault,
        cell: letters.join(" "),
        problems,
    }
}

#[test]
fn every_declared_operation_under_every_fault_ends_in_one_true_answer_and_leaves_nothing_behind() {
    let mut table = String::new();
    let mut all_problems = Vec::new();
    let mut known_problems = Vec::new();
    // One queue for every subject's cases, so that the slow cases of one handler overlap the others'.
    // `TAPGUARD_MATRIX_ONLY=binary,binary` runs those handlers' rows only (and writes no table file).
    let only = std::env::var("TAPGUARD_MATRIX_ONLY").ok();
    let subjects: Vec<Subject> = subjects()
        .into_iter()
        .filter(|s| {
            only.as_deref()
                .is_none_or(|only| only.split(',').any(|b| b == s.name()))
        })
        .collect();
    let mut cases: Vec<(usize, &'static str, &'static str, Fault)> = Vec::new();
    for (index, subject) in subjects.iter().enumerate() {
        // Refusal is per service (the endpoint itself); the other faults per operation.
        let mut services = BTreeSet::new();
        for &(service, operation) in &subject.operations {
            if !subject.faulted.is_empty() && !subject.faulted.contains(&service) {
                continue;
            }
            for fault in FAULTS {
                if fault == Fault::Refused {
                    if services.insert(service) {
                        cases.push((index, service, "*", fault));
                    }
                } else {
                    cases.push((index, service, operation, fault));
                }
            }
        }
    }
    let total = cases.len();
    // The slow faults last in the queue (it is taken from the end), so they start first.
    cases.sort_by_key(|case| case.3 == Fault::Slow);
    let queue = Mutex::new(cases);
    let finished = Mutex::new(Vec::new());
    let reruns = std::sync::atomic::AtomicUsize::new(0);
    let setting = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(default)
    };
    let parallel = setting("TAPGUARD_MATRIX_PARALLEL", PARALLEL);
    let emulators = emulators(setting("TAPGUARD_MATRIX_EMULATORS", EMULATORS));
    let started = std::time::Instant::now();
    let (queue, finished_ref, reruns_ref, subjects_ref) = (&queue, &finished, &reruns, &subjects);
    std::thread::scope(|scope| {
        for worker in 0..parallel {
            // The workers take turns over the emulators; each case stays in one of them.
            let emulator = emulators[worker % emulators.len()];
            let (finished, reruns, subjects) = (finished_ref, reruns_ref, subjects_ref);
            scope.spawn(move || loop {
                let next = queue.lock().unwrap().pop();
                let Some((index, service, operation, fault)) = next else {
                    break;
                };
                let subject = &subjects[index];
                let mut case = run_case(emulator, subject, service, operation, fault, subject.timeout);
                if case.cut_off_by_the_machine() {
                    // Cut off by its deadline with no fault fired: the machine was too slow for the short
                    // timeout, which says nothing of the handler. Run once more with twice the time (a slow
                    // fault then twice as slow); whatever that run finds counts.
                    eprintln!(
                        "{} {service}:{operation} {}: run again, cut off with no fault fired: {}",
                        subject.name(),
                        fault.name(),
                        case.problems.join("; ")
                    );
                    case = run_case(emulator, subject, service, operation, fault, subject.timeout * 2);
                    reruns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                finished.lock().unwrap().push((index, case));
            });
        }
    });
    let elapsed = started.elapsed();
    let finished = finished.into_inner().unwrap();
    println!(
        "{total} cases, {parallel} at a time over {} emulator processes, in {} s; {} of them were run twice \
         (cut off by the deadline with no fault fired)",
        emulators.len(),
        elapsed.as_secs(),
        reruns.into_inner()
    );
    for (index, subject) in subjects.iter().enumerate() {
        let done: Vec<&Case> = finished
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, case)| case)
            .collect();
        let mut rows: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
        for case in &done {
            let ops: Vec<&str> = if case.operation == "*" {
                subject
                    .operations
                    .iter()
                    .filter(|(s, _)| *s == case.service)
                    .map(|(_, o)| *o)
                    .collect()
            } else {
                vec![case.operation]
            };
            for op in ops {
                let known = KNOWN
                    .iter()
                    .any(|(o, f, _)| *o == format!("{}:{}", case.service, case.operation) && *f == case.fault.name());
                let mark = match (case.problems.is_empty(), known) {
                    (true, _) => "",
                    (false, true) => " ✗ known",
                    (false, false) => " ✗",
                };
                rows.entry(format!("{}:{op}", case.service))
                    .or_default()
                    .insert(case.fault.name(), format!("{}{mark}", case.cell));
            }
            let cell = format!("{}:{}", case.service, case.operation);
            let known = KNOWN
                .iter()
                .any(|(op, fault, _)| *op == cell && *fault == case.fault.name());
            if known && case.problems.is_empty() {
                all_problems.push(format!(
                    "{cell} {}: keeps its promise now: take it out of KNOWN",
                    case.fault.name()
                ));
            }
            for p in &case.problems {
                let line = format!("{} {cell} {}: {p}", subject.name(), case.fault.name());
                if known {
                    known_problems.push(line);
                } else {
                    all_problems.push(line);
                }
            }
        }
        table.push_str(&format!(
            "\n{} ({} cases; Create Update Delete: S SUCCESS, F FAILED, · not sent, F>S Delete retried)\n\n| operation |",
            subject.name(),
            done.len()
        ));
        for fault in FAULTS {
            table.push_str(&format!(" {} |", fault.name()));
        }
        table.push_str("\n|---|");
        table.push_str(&"---|".repeat(FAULTS.len()));
        table.push('\n');
        for (op, cells) in &rows {
            table.push_str(&format!("| {op} |"));
            for fault in FAULTS {
                table.push_str(&format!(" {} |", cells.get(fault.name()).map_or("", String::as_str)));
            }
            table.push('\n');
        }
    }
    println!(
        "{table}\nknown (left to the handler's owner):\n{}",
        known_problems.join("\n")
    );
    let _ = only.is_none().then(|| {
        std::fs::write(
            root().join("target/fault-matrix.md"),
            format!(
                "{total} cases\n{table}\nKnown broken promises:\n\n{}\n",
                known_problems
                    .iter()
                    .map(|p| format!("- {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        )
    });
    assert!(all_problems.is_empty(), "{}\n{table}", all_problems.join("\n"));
}

/// An event sequence the matrix above does not make: the Create is cut off by its deadline while its
/// `EnableEbsEncryptionByDefault` is still on its way (the emulator answers it slowly, and applies it
/// only then), and CloudFormation's rollback Delete arrives at once, in another process, while that call
/// has not landed yet. The Delete must not undo too early: after everything has landed, the region is
/// as it was and nothing of the resource is left.
#[test]
fn a_rollback_delete_arriving_while_the_cut_off_create_still_has_a_call_in_flight_leaves_nothing_behind() {
    let w = World::new("ebs-default-encryption", REGION);
    let before = ebs_state(&w);
    w.fault(json!({"service": "ec2", "operation": "EnableEbsEncryptionByDefault",
        "delay_ms": SLOW.as_millis() as u64, "count": 1}));
    let mut r = w.resource("Custom::EbsDefaultEncryption", "Resource");
    r.timeout = TIMEOUT;
    let created = r.create(json!({}));
    assert_eq!(created.status(), "FAILED", "{}", w.host.logs());
    assert!(created.reason().contains("timed out"), "{}", created.reason());
    assert!(created.physical_id().starts_with(tapguard_shared::FAILED_CREATE_PREFIX));

    // The rollback Delete, in a second process, while the first one's call is still in flight.
    let second = LambdaHost::start(
        &binary_path("ebs-default-encryption"),
        &w.emulator.sdk_env(&w.account, REGION),
    );
    let mut rollback = CustomResourceDriver {
        host: &second,
        ..w.resource("Custom::EbsDefaultEncryption", "Resource")
    };
    rollback.physical_id = r.physical_id.clone();
    rollback.timeout = Duration::from_secs(30);
    let deleted = rollback.delete();
    assert_eq!(deleted.status(), "SUCCESS", "{}\n{}", deleted.reason(), second.logs());
    assert!(
        second.logs().contains("waiting before undoing a failed Create"),
        "the Delete knew the Create was cut off: {}",
        second.logs()
    );

    // Whatever was in flight has landed by now.
    std::thread::sleep(SLOW);
    assert_eq!(ebs_state(&w), before, "the region after the rollback");
    let left = left_behind(&w, &[REGION]);
    assert!(left.is_empty(), "left behind: {left:?}");
}
