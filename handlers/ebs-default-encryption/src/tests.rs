//! Unit tests of the resource's paths: KMS mocked (aws-smithy-mocks), EC2 answered with the XML the EC2
//! API returns ([`Ec2Rule`]) through the handler's own EC2 client, and the ledger kept in the in-memory
//! Parameter Store ([`MemoryStore`]).

use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
use aws_sdk_kms::operation::get_key_policy::GetKeyPolicyOutput;
use aws_sdk_kms::types::{KeyManagerType, KeyMetadata, KeySpec, KeyState, KeyUsageType};
use aws_sdk_kms::Client as Kms;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tapguard_shared::api::{Request, Response, TransportError};
use tapguard_shared::ledger;
use tapguard_shared::readback::ReadBackPolicy;
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{CustomResource, HandlerError, Invocation, Ledger};

use crate::{setting, EbsDefaultEncryption, Properties};

const HANDLER: &str = "ebs-default-encryption";
/// The physical id of the resource under test (its Create had RequestId `req-1`).
const ID: &str = "ebs-default-encryption:eu-west-1:ledger-req-1";

const MANAGED: &str = "arn:aws:kms:eu-west-1:111122223333:alias/aws/ebs";
const KEY_ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn inv() -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", "111122223333");
    inv.request_id = "req-1".into();
    inv.logical_resource_id = "Ebs".into();
    inv
}

/// EC2's answers to one action: a sequence (each answer once) or one answer for every call, counted.
#[derive(Clone)]
struct Ec2Rule(Arc<Ec2RuleInner>);

struct Ec2RuleInner {
    action: &'static str,
    answers: Mutex<VecDeque<Response>>,
    repeat: Option<Response>,
    calls: AtomicUsize,
}

impl Ec2Rule {
    fn new(action: &'static str, answers: Vec<Response>, repeat: Option<Response>) -> Self {
        Ec2Rule(Arc::new(Ec2RuleInner {
            action,
            answers: Mutex::new(answers.into()),
            repeat,
            calls: AtomicUsize::new(0),
        }))
    }

    fn always(action: &'static str, answer: Response) -> Self {
        Self::new(action, vec![], Some(answer))
    }

    /// The error answer EC2 gives: `<Response><Errors><Error>` with the code and message.
    fn error(action: &'static str, status: u16, code: &str, message: &str) -> Self {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"
        );
        Self::always(action, Response::new(status, xml))
    }

    fn num_calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }

    fn answer(&self) -> Option<Response> {
        let next = self.0.answers.lock().unwrap().pop_front();
        let answer = next.or_else(|| self.0.repeat.clone())?;
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        Some(answer)
    }
}

/// An EC2 success answer: `<{action}Response>` with its fields.
fn ec2_answer(action: &str, fields: &str) -> Response {
    Response::new(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>59dbff89-35bd-4eac-99ed-be587example</requestId>{fields}</{action}Response>"
        ),
    )
}

/// The EC2 client of the handler under test, its requests answered by the first rule for their
/// `Action` that still has an answer.
fn ec2_client(rules: &[&Ec2Rule]) -> crate::Ec2 {
    let rules: Vec<Ec2Rule> = rules.iter().map(|r| (*r).clone()).collect();
    let transport = move |request: &Request| -> Result<Response, TransportError> {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        let action = body
            .split('&')
            .find_map(|p| p.strip_prefix("Action="))
            .expect("an EC2 Query request names its action")
            .to_string();
        assert!(request.header("authorization").is_some(), "{action} is signed");
        let answer = rules.iter().filter(|r| r.0.action == action).find_map(Ec2Rule::answer);
        Ok(answer.unwrap_or_else(|| panic!("no answer left for {action}")))
    };
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_kms::config::SharedCredentialsProvider::new(
            aws_sdk_kms::config::Credentials::for_tests(),
        ))
        .build();
    crate::Ec2::with_transport(&config, Arc::new(transport))
}

fn encryption_reads(values: &[bool]) -> Ec2Rule {
    let answers = values
        .iter()
        .map(|v| {
            ec2_answer(
                "GetEbsEncryptionByDefault",
                &format!("<ebsEncryptionByDefault>{v}</ebsEncryptionByDefault><sseType>sse-ebs</sseType>"),
            )
        })
        .collect();
    Ec2Rule::new("GetEbsEncryptionByDefault", answers, None)
}

fn key_reads(values: &[&'static str]) -> Ec2Rule {
    let answers = values
        .iter()
        .map(|v| ec2_answer("GetEbsDefaultKmsKeyId", &format!("<kmsKeyId>{v}</kmsKeyId>")))
        .collect();
    Ec2Rule::new("GetEbsDefaultKmsKeyId", answers, None)
}

fn enable_ok() -> Ec2Rule {
    Ec2Rule::always(
        "EnableEbsEncryptionByDefault",
        ec2_answer(
            "EnableEbsEncryptionByDefault",
            "<ebsEncryptionByDefault>true</ebsEncryptionByDefault>",
        ),
    )
}

fn modify_ok() -> Ec2Rule {
    Ec2Rule::always(
        "ModifyEbsDefaultKmsKeyId",
        ec2_answer("ModifyEbsDefaultKmsKeyId", &format!("<kmsKeyId>{KEY_ARN}</kmsKeyId>")),
    )
}

fn reset_ok() -> Ec2Rule {
    Ec2Rule::always(
        "ResetEbsDefaultKmsKeyId",
        ec2_answer("ResetEbsDefaultKmsKeyId", &format!("<kmsKeyId>{MANAGED}</kmsKeyId>")),
    )
}

fn disable_ok() -> Ec2Rule {
    Ec2Rule::always(
        "DisableEbsEncryptionByDefault",
        ec2_answer(
            "DisableEbsEncryptionByDefault",
            "<ebsEncryptionByDefault>false</ebsEncryptionByDefault>",
        ),
    )
}

fn describe_key(state: KeyState) -> Rule {
    mock!(Kms::describe_key).then_output(move || {
        DescribeKeyOutput::builder()
            .key_metadata(
                KeyMetadata::builder()
                    .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
                    .arn(KEY_ARN)
                    .key_state(state.clone())
                    .key_spec(KeySpec::SymmetricDefault)
                    .key_usage(KeyUsageType::EncryptDecrypt)
                    .build()
                    .unwrap(),
            )
            .build()
    })
}

/// The key policy of the EC2 Auto Scaling User Guide's example: the account, and the Auto Scaling
/// service-linked role with its two statements.
fn usable_policy() -> Rule {
    let role = "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling";
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": role}, "Resource": "*",
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]},
        {"Effect": "Allow", "Principal": {"AWS": role}, "Action": "kms:CreateGrant", "Resource": "*",
         "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}}]})
    .to_string();
    mock!(Kms::get_key_policy).then_output(move || GetKeyPolicyOutput::builder().policy(policy.clone()).build())
}

/// The default key policy KMS gives a key created without one: the account only.
fn default_policy() -> Rule {
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"}]})
    .to_string();
    mock!(Kms::get_key_policy).then_output(move || GetKeyPolicyOutput::builder().policy(policy.clone()).build())
}

/// The ledger's Parameter Store holding `claims` on this handler's setting.
fn store_with_claims(claims: &[Value]) -> MemoryStore {
    MemoryStore::with_claims(&setting(), claims)
}

/// The same, with the record the resource under test (`req-1`) wrote on its Create.
fn store_after_create(claims: &[Value]) -> MemoryStore {
    let store = store_with_claims(claims);
    let ledger = ledger_of(&store);
    let mut record = ledger.record(&inv(), ());
    record.settings.push(setting());
    store.insert_record(&ledger, "req-1", &record);
    store
}

fn ledger_of(store: &MemoryStore) -> Ledger {
    Ledger::from_client(store.client(), HANDLER)
}

/// Where the ledger keeps the record of resource `key`.
fn record_name(key: &str) -> String {
    ledger_of(&MemoryStore::new()).record_name(key)
}

/// Where the ledger keeps the claim of resource `key` on the region's default.
fn claim_name(key: &str) -> String {
    Ledger::claim_name(&setting(), key)
}

/// The record of `key` in the store: it lists the setting, and names the resource that wrote it.
fn assert_recorded(store: &MemoryStore, key: &str) {
    let record = store.json(&record_name(key)).expect("the record is written");
    assert_eq!(record["settings"], json!([setting()]), "{record}");
    assert_eq!(record["logical_id"], "Ebs", "{record}");
}

/// The claim of `key` in the store, with what it asks for and the prior state it keeps.
fn assert_claimed(store: &MemoryStore, key: &str, wants: Value, prior: Value) {
    let claim = store.json(&claim_name(key)).expect("the claim is written");
    assert_eq!(claim["claimant"]["key"], key, "{claim}");
    assert_eq!(claim["claimant"]["handler"], HANDLER, "{claim}");
    assert_eq!(claim["wants"], wants, "{claim}");
    assert_eq!(claim["prior"], prior, "{claim}");
}

/// What the region's default asks for, or was, as the ledger keeps it.
fn state(enabled: bool, kms_key_id: &str) -> Value {
    json!({"enabled": enabled, "kms_key_id": kms_key_id})
}

fn claim(key: &str, logical_id: &str, wants_key: &str, prior: Value) -> Value {
    json!({"v": 1, "claimant": {"key": key, "handler": "ebs-default-encryption",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1", "logical_id": logical_id},
        "wants": {"enabled": true, "kms_key_id": wants_key}, "prior": prior, "since": 100})
}

fn handler(ec2_rules: &[&Ec2Rule], kms_rules: &[&Rule], store: &MemoryStore) -> EbsDefaultEncryption {
    let ec2 = ec2_client(ec2_rules);
    let kms = mock_client!(aws_sdk_kms, RuleMode::MatchAny, kms_rules);
    EbsDefaultEncryption::from_clients(ec2, kms, ledger_of(store))
        .with_read_back(ReadBackPolicy::default().without_waiting())
}

fn props(key: Option<&str>) -> Properties {
    Properties {
        kms_key_id: key.map(str::to_string),
        repair_drift: false,
    }
}

#[tokio::test]
async fn create_on_a_fresh_region_claims_then_enables_and_verifies() {
    let (reads, keys, enable) = (
        encryption_reads(&[false, false, true]),
        key_reads(&[MANAGED, MANAGED, MANAGED]),
        enable_ok(),
    );
    let (modify, reset, store) = (modify_ok(), reset_ok(), MemoryStore::new());
    let h = handler(&[&reads, &keys, &enable, &modify, &reset], &[], &store);
    let out = h.create(&inv(), props(None)).await.unwrap();
    assert_eq!(out.physical_id, ID);
    assert_eq!(out.data["Enabled"], "true");
    assert_eq!(out.data["KmsKeyId"], MANAGED);
    assert_eq!(out.data["PreviouslyEnabled"], "false");
    assert_eq!(enable.num_calls(), 1);
    assert_recorded(&store, "req-1");
    assert_claimed(&store, "req-1", state(true, "alias/aws/ebs"), state(false, MANAGED));
    assert_eq!(
        store.calls("PutParameter"),
        2,
        "the record and the claim, each written once"
    );
    assert_eq!(
        modify.num_calls() + reset.num_calls(),
        0,
        "the managed key was already the default"
    );
}

#[tokio::test]
async fn create_with_a_customer_key_sets_it_before_enabling() {
    let (reads, keys) = (
        encryption_reads(&[false, false, true]),
        key_reads(&[MANAGED, MANAGED, KEY_ARN]),
    );
    let (enable, modify, describe, store) = (
        enable_ok(),
        modify_ok(),
        describe_key(KeyState::Enabled),
        MemoryStore::new(),
    );
    let policy = usable_policy();
    let h = handler(&[&reads, &keys, &enable, &modify], &[&describe, &policy], &store);
    let out = h.create(&inv(), props(Some("alias/tap-ebs"))).await.unwrap();
    assert_eq!(out.data["KmsKeyId"], KEY_ARN);
    assert_claimed(&store, "req-1", state(true, KEY_ARN), state(false, MANAGED));
    assert_eq!(
        (modify.num_calls(), enable.num_calls(), describe.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_second_claimant_inherits_the_first_ones_prior_state() {
    // The region is on because the first claimant turned it on; Data still reports what was before it.
    let (reads, keys) = (
        encryption_reads(&[true, true, true]),
        key_reads(&[MANAGED, MANAGED, MANAGED]),
    );
    let first = claim(
        "req-0",
        "OldName",
        "alias/aws/ebs",
        json!({"enabled": false, "kms_key_id": "alias/aws/ebs"}),
    );
    let store = store_with_claims(std::slice::from_ref(&first));
    let (enable, reset) = (enable_ok(), reset_ok());
    let h = handler(&[&reads, &keys, &enable, &reset], &[], &store);
    let out = h.create(&inv(), props(None)).await.unwrap();
    assert_eq!(out.data["PreviouslyEnabled"], "false");
    assert_eq!(enable.num_calls() + reset.num_calls(), 0);
    assert_claimed(
        &store,
        "req-1",
        state(true, "alias/aws/ebs"),
        state(false, "alias/aws/ebs"),
    );
    assert_eq!(
        store.json(&claim_name("req-1")).unwrap()["since"],
        100,
        "the chain's start is kept"
    );
    assert_eq!(
        store.json(&claim_name("req-0")),
        Some(first),
        "the first claim is not touched"
    );
}

#[tokio::test]
async fn a_claimant_asking_for_another_key_is_refused_before_any_change() {
    let (reads, keys) = (encryption_reads(&[true, true]), key_reads(&[MANAGED, MANAGED]));
    let first = claim(
        "req-0",
        "EbsDefault",
        "alias/aws/ebs",
        json!({"enabled": false, "kms_key_id": "alias/aws/ebs"}),
    );
    let store = store_with_claims(std::slice::from_ref(&first));
    let (modify, describe, policy) = (modify_ok(), describe_key(KeyState::Enabled), usable_policy());
    let h = handler(&[&reads, &keys, &modify], &[&describe, &policy], &store);
    let err = h.create(&inv(), props(Some(KEY_ARN))).await.unwrap_err().to_string();
    assert!(err.contains("already claimed by EbsDefault in stack TapStack"), "{err}");
    assert!(err.contains(&claim_name("req-0")), "names the claim to drop: {err}");
    assert_eq!(modify.num_calls(), 0);
    assert_eq!(
        store.names_under(&Ledger::claims_path(&setting())),
        [claim_name("req-0")],
        "no claim of the refused resource"
    );
    assert_eq!(
        store.json(&claim_name("req-0")),
        Some(first),
        "the first claim is not touched"
    );
}

#[tokio::test]
async fn access_denied_names_the_operation_the_code_and_the_action() {
    let (reads, keys) = (encryption_reads(&[false, false]), key_reads(&[MANAGED, MANAGED]));
    let enable = Ec2Rule::error(
        "EnableEbsEncryptionByDefault",
        403,
        "UnauthorizedOperation",
        "You are not authorized to perform this operation.",
    );
    let store = MemoryStore::new();
    let h = handler(&[&reads, &keys, &enable], &[], &store);
    let err = h.create(&inv(), props(None)).await.unwrap_err();
    assert_eq!(err.code(), Some("UnauthorizedOperation"));
    let text = err.to_string();
    assert!(
        text.starts_with("EnableEbsEncryptionByDefault failed: UnauthorizedOperation: You are not authorized to perform this operation."),
        "{text}"
    );
    assert!(text.contains("ec2:EnableEbsEncryptionByDefault was denied"), "{text}");
    // Recorded and claimed before the change was tried: the rollback Delete finds the prior state.
    assert_recorded(&store, "req-1");
    assert_claimed(&store, "req-1", state(true, "alias/aws/ebs"), state(false, MANAGED));
}

#[tokio::test]
async fn a_read_back_that_disagrees_is_failed_not_success() {
    // The state before, the one the converge starts from, then five read-backs that never show it.
    let (reads, keys, enable, store) = (
        encryption_reads(&[false; 7]),
        key_reads(&[MANAGED; 7]),
        enable_ok(),
        MemoryStore::new(),
    );
    let h = handler(&[&reads, &keys, &enable], &[], &store);
    let err = h.create(&inv(), props(None)).await.unwrap_err();
    assert!(matches!(err, HandlerError::NotVerified(_)), "{err:?}");
    assert!(
        err.to_string().contains(
            "GetEbsEncryptionByDefault still answers false in eu-west-1 after EnableEbsEncryptionByDefault (5 reads"
        ),
        "{err}"
    );
    assert_eq!(reads.num_calls(), 7);
}

#[tokio::test]
async fn an_unknown_key_is_refused_before_any_change_or_ledger_write() {
    let (reads, keys, enable, modify, store) = (
        encryption_reads(&[false]),
        key_reads(&[MANAGED]),
        enable_ok(),
        modify_ok(),
        MemoryStore::new(),
    );
    let describe = mock!(Kms::describe_key).then_error(|| {
        DescribeKeyError::generic(
            ErrorMetadata::builder()
                .code("NotFoundException")
                .message("Alias not found")
                .build(),
        )
    });
    let h = handler(&[&reads, &keys, &enable, &modify], &[&describe], &store);
    let err = h
        .create(&inv(), props(Some("alias/missing")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid property KmsKeyId: alias/missing: DescribeKey failed: NotFoundException"),
        "{err}"
    );
    assert_eq!(enable.num_calls() + modify.num_calls(), 0);
    store.assert_nothing_written();
}

#[tokio::test]
async fn the_last_claimant_restores_what_the_first_one_found() {
    let store = store_after_create(&[claim(
        "req-1",
        "Ebs",
        KEY_ARN,
        json!({"enabled": false, "kms_key_id": "alias/aws/ebs"}),
    )]);
    let (reads, keys) = (encryption_reads(&[true, false]), key_reads(&[KEY_ARN, MANAGED]));
    let (reset, disable) = (reset_ok(), disable_ok());
    let h = handler(&[&reads, &keys, &reset, &disable], &[], &store);
    h.delete(&inv(), ID, Some(props(Some(KEY_ARN)))).await.unwrap();
    assert_eq!((reset.num_calls(), disable.num_calls()), (1, 1));
    assert!(
        store.names_under("/tapguard/").is_empty(),
        "the claim and the record are removed: {:?}",
        store.names_under("/tapguard/")
    );
    assert_eq!(store.calls("DeleteParameter"), 2);
}

#[tokio::test]
async fn delete_while_another_resource_claims_the_setting_changes_nothing() {
    let other = claim(
        "req-0",
        "NewName",
        KEY_ARN,
        json!({"enabled": false, "kms_key_id": "alias/aws/ebs"}),
    );
    let store = store_after_create(&[
        other.clone(),
        claim(
            "req-1",
            "Ebs",
            KEY_ARN,
            json!({"enabled": false, "kms_key_id": "alias/aws/ebs"}),
        ),
    ]);
    let (reads, keys, reset, disable) = (encryption_reads(&[]), key_reads(&[]), reset_ok(), disable_ok());
    let h = handler(&[&reads, &keys, &reset, &disable], &[], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(reset.num_calls() + disable.num_calls() + reads.num_calls(), 0);
    assert_eq!(
        store.names_under("/tapguard/"),
        [claim_name("req-0")],
        "its own claim and record are removed, the other claim stays"
    );
    assert_eq!(store.json(&claim_name("req-0")), Some(other));
}

#[tokio::test]
async fn delete_never_disables_encryption_that_was_on_before() {
    let store = store_after_create(&[claim(
        "req-1",
        "Ebs",
        "alias/aws/ebs",
        json!({"enabled": true, "kms_key_id": "alias/aws/ebs"}),
    )]);
    let (reads, keys, disable, reset) = (
        encryption_reads(&[true]),
        key_reads(&[MANAGED]),
        disable_ok(),
        reset_ok(),
    );
    let h = handler(&[&reads, &keys, &disable, &reset], &[], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(disable.num_calls() + reset.num_calls(), 0);
    assert!(store.is_empty(), "the claim and the record are removed");
}

#[tokio::test]
async fn delete_leaves_a_key_someone_else_set_since() {
    const OTHER: &str = "arn:aws:kms:eu-west-1:111122223333:key/other";
    let store = store_after_create(&[claim(
        "req-1",
        "Ebs",
        KEY_ARN,
        json!({"enabled": true, "kms_key_id": "alias/aws/ebs"}),
    )]);
    let (reads, keys, reset, modify) = (encryption_reads(&[true]), key_reads(&[OTHER]), reset_ok(), modify_ok());
    let h = handler(&[&reads, &keys, &reset, &modify], &[], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(reset.num_calls() + modify.num_calls(), 0);
    assert!(store.is_empty(), "the claim and the record are removed");
}

#[tokio::test]
async fn a_claim_whose_wanted_state_cannot_be_read_puts_nothing_back() {
    const OTHER: &str = "arn:aws:kms:eu-west-1:111122223333:key/other";
    let mut damaged = claim("req-1", "Ebs", KEY_ARN, state(false, "alias/aws/ebs"));
    damaged["wants"] = json!({"enabled": "yes"});
    let store = store_after_create(&[damaged]);
    let (reads, keys) = (encryption_reads(&[true]), key_reads(&[OTHER]));
    let (reset, modify, disable) = (reset_ok(), modify_ok(), disable_ok());
    let h = handler(&[&reads, &keys, &reset, &modify, &disable], &[], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(
        reset.num_calls() + modify.num_calls() + disable.num_calls(),
        0,
        "neither the key someone set nor encryption is touched"
    );
    assert!(store.is_empty(), "the claim and the record are removed");
}

#[tokio::test]
async fn a_prior_key_that_is_no_longer_usable_is_not_put_back() {
    let store = store_after_create(&[claim(
        "req-1",
        "Ebs",
        "alias/aws/ebs",
        json!({"enabled": true, "kms_key_id": KEY_ARN}),
    )]);
    let (reads, keys, modify) = (encryption_reads(&[true]), key_reads(&[MANAGED]), modify_ok());
    let describe = describe_key(KeyState::PendingDeletion);
    let h = handler(&[&reads, &keys, &modify], &[&describe], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(
        modify.num_calls(),
        0,
        "a key pending deletion would break every encrypted launch"
    );
    assert!(store.is_empty(), "the claim and the record are removed");
}

#[tokio::test]
async fn a_lost_ledger_turns_nothing_off() {
    let store = MemoryStore::new();
    let (reads, keys, disable, reset) = (
        encryption_reads(&[true]),
        key_reads(&[KEY_ARN]),
        disable_ok(),
        reset_ok(),
    );
    let h = handler(&[&reads, &keys, &disable, &reset], &[], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(disable.num_calls() + reset.num_calls(), 0);
    store.assert_nothing_written();
}

#[tokio::test]
async fn an_old_format_id_is_still_restored_on_delete() {
    let store = MemoryStore::new();
    let (reads, keys) = (encryption_reads(&[true, false]), key_reads(&[KEY_ARN, MANAGED]));
    let (reset, disable, describe) = (reset_ok(), disable_ok(), describe_key(KeyState::Enabled));
    let h = handler(&[&reads, &keys, &reset, &disable], &[&describe], &store);
    let old = format!("ebs-default-encryption:eu-west-1:was-enabled=false:was-key={MANAGED}");
    h.delete(&inv(), &old, Some(props(Some(KEY_ARN)))).await.unwrap();
    assert_eq!((reset.num_calls(), disable.num_calls()), (1, 1));
    store.assert_nothing_written();
}

#[tokio::test]
async fn an_old_format_id_moves_into_the_ledger_on_update() {
    let store = MemoryStore::new();
    let (reads, keys) = (encryption_reads(&[true, true]), key_reads(&[MANAGED, MANAGED]));
    let h = handler(&[&reads, &keys], &[], &store);
    let old = format!("ebs-default-encryption:eu-west-1:was-enabled=false:was-key={MANAGED}");
    let out = h.update(&inv(), &old, props(None), None).await.unwrap();
    assert_eq!(out.physical_id, old, "the id stays: a new one would be a replacement");
    assert_eq!(
        out.data["PreviouslyEnabled"], "false",
        "the prior state came from the old id"
    );
    let key = ledger::legacy_key(&old);
    assert_recorded(&store, &key);
    assert_claimed(&store, &key, state(true, "alias/aws/ebs"), state(false, MANAGED));
    assert_eq!(store.names_under("/tapguard/").len(), 2, "record and claim written");
}

#[test]
fn empty_key_means_the_managed_key() {
    assert_eq!(props(Some("  ")).requested_key(), None);
    assert_eq!(props(Some("alias/x")).requested_key(), Some("alias/x"));
}

#[tokio::test]
async fn the_managed_keys_alias_arn_is_the_managed_key_not_a_customer_key() {
    let (reads, keys) = (
        encryption_reads(&[true, true, true]),
        key_reads(&[MANAGED, MANAGED, MANAGED]),
    );
    let store = store_with_claims(&[claim(
        "req-0",
        "EbsEncryption",
        "alias/aws/ebs",
        json!({"enabled": false, "kms_key_id": "alias/aws/ebs"}),
    )]);
    let (modify, reset, describe) = (modify_ok(), reset_ok(), describe_key(KeyState::Enabled));
    let h = handler(&[&reads, &keys, &modify, &reset], &[&describe], &store);
    let out = h.create(&inv(), props(Some(MANAGED))).await.unwrap();
    assert_eq!(out.data["KmsKeyId"], MANAGED);
    assert_eq!(
        modify.num_calls() + reset.num_calls() + describe.num_calls(),
        0,
        "the same setting as the first claimant's: nothing to look up or change"
    );
    assert_claimed(
        &store,
        "req-1",
        state(true, "alias/aws/ebs"),
        state(false, "alias/aws/ebs"),
    );
}

#[tokio::test]
async fn a_restore_that_fails_keeps_the_claim_so_the_retried_delete_still_restores() {
    let mine = claim(
        "req-1",
        "Ebs",
        "alias/aws/ebs",
        json!({"enabled": false, "kms_key_id": "alias/aws/ebs"}),
    );
    let store = store_after_create(std::slice::from_ref(&mine));
    let (reads, keys) = (encryption_reads(&[true]), key_reads(&[MANAGED]));
    let disable = Ec2Rule::error(
        "DisableEbsEncryptionByDefault",
        503,
        "RequestLimitExceeded",
        "Request limit exceeded.",
    );
    let h = handler(&[&reads, &keys, &disable], &[], &store);
    let err = h.delete(&inv(), ID, None).await.unwrap_err();
    assert_eq!(err.code(), Some("RequestLimitExceeded"));
    assert_eq!(
        store.json(&claim_name("req-1")),
        Some(mine),
        "the claim stays for the retry"
    );
    assert_recorded(&store, "req-1");
    assert_eq!(store.calls("DeleteParameter"), 0);
}

#[tokio::test]
async fn a_read_back_that_catches_up_after_a_few_reads_is_success() {
    let (reads, keys, enable, store) = (
        encryption_reads(&[false, false, false, false, true]),
        key_reads(&[MANAGED; 5]),
        enable_ok(),
        MemoryStore::new(),
    );
    let h = handler(&[&reads, &keys, &enable], &[], &store);
    let out = h.create(&inv(), props(None)).await.unwrap();
    assert_eq!(out.data["Enabled"], "true");
    assert_eq!(reads.num_calls(), 5, "two reads before the change, three after it");
    assert_eq!(
        enable.num_calls(),
        1,
        "the change is made once, only the read is repeated"
    );
}

fn aws_managed_key(key_id: &'static str, description: &'static str) -> KeyMetadata {
    KeyMetadata::builder()
        .key_id(key_id)
        .arn(format!("arn:aws:kms:eu-west-1:111122223333:key/{key_id}"))
        .key_manager(KeyManagerType::Aws)
        .description(description)
        .key_state(KeyState::Enabled)
        .key_spec(KeySpec::SymmetricDefault)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .build()
        .unwrap()
}

#[tokio::test]
async fn another_services_aws_managed_key_is_refused_and_the_ebs_one_is_the_managed_default() {
    let s3 = mock!(Kms::describe_key)
        .match_requests(|r| r.key_id() == Some("arn:aws:kms:eu-west-1:111122223333:key/s3-key"))
        .then_output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(aws_managed_key("s3-key", "Default key that protects my S3 objects"))
                .build()
        });
    let ebs = mock!(Kms::describe_key)
        .match_requests(|r| r.key_id() == Some("alias/aws/ebs"))
        .then_output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(aws_managed_key("ebs-key", "EBS"))
                .build()
        });
    let by_id = mock!(Kms::describe_key)
        .match_requests(|r| r.key_id() == Some("ebs-key"))
        .then_output(|| {
            DescribeKeyOutput::builder()
                .key_metadata(aws_managed_key("ebs-key", "EBS"))
                .build()
        });
    let (reads, keys, modify, store) = (
        encryption_reads(&[false; 3]),
        key_reads(&[MANAGED; 3]),
        modify_ok(),
        MemoryStore::new(),
    );
    let h = handler(&[&reads, &keys, &modify], &[&s3, &ebs, &by_id], &store);
    let err = h
        .create(&inv(), props(Some("arn:aws:kms:eu-west-1:111122223333:key/s3-key")))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid property KmsKeyId: arn:aws:kms:eu-west-1:111122223333:key/s3-key: DescribeKey says it is an AWS managed key (KeyManager AWS: Default key that protects my S3 objects), not the one of EBS"), "{err}");
    assert_eq!(modify.num_calls(), 0, "refused before any change");
    store.assert_nothing_written();

    // The AWS managed key of EBS given by its key id is the managed default: set by ResetEbsDefaultKmsKeyId.
    let (reads, keys, enable, store) = (
        encryption_reads(&[false, false, true]),
        key_reads(&[MANAGED; 3]),
        enable_ok(),
        MemoryStore::new(),
    );
    let h = handler(&[&reads, &keys, &enable, &modify], &[&ebs, &by_id], &store);
    let out = h.create(&inv(), props(Some("ebs-key"))).await.unwrap();
    assert_eq!(out.data["KmsKeyId"], MANAGED);
    assert_eq!(modify.num_calls(), 0, "no customer key is set");
    assert_claimed(&store, "req-1", state(true, "alias/aws/ebs"), state(false, MANAGED));
}

#[tokio::test]
async fn a_customer_key_whose_policy_leaves_out_the_auto_scaling_role_is_refused_naming_get_key_policy() {
    let (reads, keys, modify, describe, policy, store) = (
        encryption_reads(&[false; 2]),
        key_reads(&[MANAGED; 2]),
        modify_ok(),
        describe_key(KeyState::Enabled),
        default_policy(),
        MemoryStore::new(),
    );
    let h = handler(&[&reads, &keys, &modify], &[&describe, &policy], &store);
    let err = h
        .create(&inv(), props(Some("alias/tap-ebs")))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "invalid property KmsKeyId: alias/tap-ebs: its key policy (GetKeyPolicy) does not let EBS use it"
        ),
        "{err}"
    );
    assert!(
        err.contains("AWSServiceRoleForAutoScaling use the key for kms:Encrypt"),
        "{err}"
    );
    assert!(
        err.contains("Required AWS KMS key policy for use with encrypted volumes"),
        "{err}"
    );
    assert_eq!(modify.num_calls(), 0);
    store.assert_nothing_written();
}

#[tokio::test]
async fn a_key_pending_deletion_is_refused_with_what_to_do() {
    let (reads, keys, describe, store) = (
        encryption_reads(&[false; 2]),
        key_reads(&[MANAGED; 2]),
        describe_key(KeyState::PendingDeletion),
        MemoryStore::new(),
    );
    let h = handler(&[&reads, &keys], &[&describe], &store);
    let err = h
        .create(&inv(), props(Some("alias/tap-ebs")))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("alias/tap-ebs: the key is PendingDeletion"), "{err}");
    assert!(
        err.contains("cancel the deletion (CancelKeyDeletion) and enable it (EnableKey)"),
        "{err}"
    );
    store.assert_nothing_written();
}

#[tokio::test]
async fn a_denied_describe_key_is_the_calls_error_not_a_bad_property() {
    let describe = mock!(Kms::describe_key).then_error(|| {
        DescribeKeyError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("no")
                .build(),
        )
    });
    let (reads, keys, store) = (encryption_reads(&[false]), key_reads(&[MANAGED]), MemoryStore::new());
    let h = handler(&[&reads, &keys], &[&describe], &store);
    let err = h.create(&inv(), props(Some("alias/tap-ebs"))).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let text = err.to_string();
    assert!(
        text.starts_with("DescribeKey failed: AccessDeniedException: no ("),
        "{text}"
    );
    assert!(text.contains("kms:DescribeKey on alias/tap-ebs was denied"), "{text}");
    store.assert_nothing_written();
}

#[tokio::test]
async fn a_prior_key_pending_deletion_gives_way_to_the_aws_managed_key_on_delete() {
    // The claimants set another customer key; the prior one is now scheduled for deletion.
    const OURS: &str = "arn:aws:kms:eu-west-1:111122223333:key/ours";
    let store = store_after_create(&[claim(
        "req-1",
        "Ebs",
        OURS,
        json!({"enabled": true, "kms_key_id": KEY_ARN}),
    )]);
    let (reads, keys, modify, reset) = (
        encryption_reads(&[true, true]),
        key_reads(&[OURS, MANAGED]),
        modify_ok(),
        reset_ok(),
    );
    let describe = describe_key(KeyState::PendingDeletion);
    let h = handler(&[&reads, &keys, &modify, &reset], &[&describe], &store);
    h.delete(&inv(), ID, None).await.unwrap();
    assert_eq!(
        (modify.num_calls(), reset.num_calls()),
        (0, 1),
        "not the broken prior key, and not the gone resource's key: the AWS managed one"
    );
    assert!(store.is_empty(), "the claim and the record are removed");
}

#[tokio::test]
async fn a_prior_key_that_cannot_be_described_fails_the_delete_and_keeps_the_claim() {
    const OURS: &str = "arn:aws:kms:eu-west-1:111122223333:key/ours";
    let mine = claim("req-1", "Ebs", OURS, json!({"enabled": true, "kms_key_id": KEY_ARN}));
    let store = store_after_create(std::slice::from_ref(&mine));
    let (reads, keys, modify, reset) = (encryption_reads(&[true]), key_reads(&[OURS]), modify_ok(), reset_ok());
    let describe = mock!(Kms::describe_key).then_error(|| {
        DescribeKeyError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("denied")
                .build(),
        )
    });
    let h = handler(&[&reads, &keys, &modify, &reset], &[&describe], &store);
    let err = h.delete(&inv(), ID, None).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("DescribeKey failed: AccessDeniedException: denied"),
        "{err}"
    );
    assert_eq!(modify.num_calls() + reset.num_calls(), 0, "nothing changed on a guess");
    assert_eq!(
        store.json(&claim_name("req-1")),
        Some(mine),
        "the claim stays for the retry"
    );
    assert_recorded(&store, "req-1");
    assert_eq!(store.calls("DeleteParameter"), 0);
}

#[tokio::test]
async fn a_ledger_that_cannot_be_written_stops_the_create_before_any_change() {
    let (reads, keys, enable, modify, store) = (
        encryption_reads(&[false; 2]),
        key_reads(&[MANAGED; 2]),
        enable_ok(),
        modify_ok(),
        MemoryStore::new(),
    );
    store.fail("PutParameter", "AccessDeniedException");
    let h = handler(&[&reads, &keys, &enable, &modify], &[], &store);
    let err = h.create(&inv(), props(None)).await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    let text = err.to_string();
    assert!(text.starts_with("PutParameter failed: AccessDeniedException"), "{text}");
    assert!(text.contains(&record_name("req-1")), "{text}");
    assert!(text.contains("allowed ssm:PutParameter"), "{text}");
    assert_eq!(
        enable.num_calls() + modify.num_calls(),
        0,
        "no change without its claim"
    );
    assert!(store.names_under("/tapguard/").is_empty());
}
