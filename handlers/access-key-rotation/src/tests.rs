//! Unit tests: properties, names, the state tags, and every failure between the steps of a rotation,
//! against a stateful fake of IAM, Secrets Manager and SNS built from aws-smithy-mocks rules (each rule
//! answers from the shared state, as the service would, or with an injected error), with the ledger in
//! the in-memory Parameter Store (`tapguard_shared::ssm::memory`), which a pass never touches.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_iam::operation::create_access_key::{CreateAccessKeyError, CreateAccessKeyOutput};
use aws_sdk_iam::operation::delete_access_key::{DeleteAccessKeyError, DeleteAccessKeyOutput};
use aws_sdk_iam::operation::get_access_key_last_used::{GetAccessKeyLastUsedError, GetAccessKeyLastUsedOutput};
use aws_sdk_iam::operation::get_credential_report::{GetCredentialReportError, GetCredentialReportOutput};
use aws_sdk_iam::operation::list_access_keys::{ListAccessKeysError, ListAccessKeysOutput};
use aws_sdk_iam::operation::list_user_tags::{ListUserTagsError, ListUserTagsOutput};
use aws_sdk_iam::operation::tag_user::{TagUserError, TagUserOutput};
use aws_sdk_iam::operation::untag_user::{UntagUserError, UntagUserOutput};
use aws_sdk_iam::operation::update_access_key::{UpdateAccessKeyError, UpdateAccessKeyOutput};
use aws_sdk_iam::types::{AccessKey, AccessKeyLastUsed, AccessKeyMetadata, StatusType, Tag};
use aws_sdk_secretsmanager::operation::create_secret::{CreateSecretError, CreateSecretOutput};
use aws_sdk_secretsmanager::operation::delete_secret::{DeleteSecretError, DeleteSecretOutput};
use aws_sdk_secretsmanager::operation::describe_secret::{DescribeSecretError, DescribeSecretOutput};
use aws_sdk_secretsmanager::operation::get_secret_value::{GetSecretValueError, GetSecretValueOutput};
use aws_sdk_secretsmanager::operation::put_resource_policy::{PutResourcePolicyError, PutResourcePolicyOutput};
use aws_sdk_secretsmanager::operation::put_secret_value::{PutSecretValueError, PutSecretValueOutput};
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::{Blob, DateTime};
use serde_json::{json, Value};
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{props, Invocation, Ledger};

use crate::properties::{Mode, Properties, Tuning};
use crate::resource::AccessKeyRotation;
use crate::secrets::{encode_user, policy, secret_name, OWNER_TAG};
use crate::state::{UserState, HANDED_OVER_TAG, INTENT_TAG};
use crate::{epoch_now, role_of_session, Summary};

const DAY: i64 = 86_400;
const TOPIC: &str = "arn:aws:sns:eu-west-1:111122223333:key-rotation";
const ROLE: &str = "arn:aws:iam::111122223333:role/rotation";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNEWSECRETKEY";
const OLD: &str = "AKIAOLD0000000000001";
const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

#[derive(Debug, Clone)]
struct FakeKey {
    id: String,
    active: bool,
    created: i64,
}

#[derive(Debug, Clone, Default)]
struct FakeSecret {
    tags: Vec<(String, String)>,
    value: Option<String>,
    policy: Option<String>,
    /// Epoch seconds (DescribeSecret's CreatedDate).
    created: i64,
}

/// The accounts' state as the fake services keep it, the calls made, and the injected failures.
#[derive(Default)]
struct State {
    keys: BTreeMap<String, Vec<FakeKey>>,
    tags: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, FakeSecret>,
    last_used: HashMap<String, i64>,
    published: Vec<String>,
    calls: Vec<String>,
    /// operation -> the call (1-based) that fails.
    fail: HashMap<&'static str, u32>,
    seen: HashMap<String, u32>,
    next_key: u32,
    /// The ledger's Parameter Store: the resource's record, claim and resume point live there, and a
    /// pass or an undo itself never reads or writes it.
    ledger: MemoryStore,
}

type Shared = Arc<Mutex<State>>;

impl State {
    /// Records the call; whether it is the one that fails.
    fn hit(&mut self, op: &str, detail: String) -> bool {
        self.calls.push(format!("{op} {detail}").trim().to_string());
        let n = self.seen.entry(op.to_string()).or_default();
        *n += 1;
        self.fail.get(op).is_some_and(|at| at == n)
    }
}

fn meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message(format!("{code} from the fake"))
        .build()
}

fn fake() -> Shared {
    Arc::new(Mutex::new(State::default()))
}

fn add_user(s: &Shared, user: &str, keys: &[(&str, bool, i64)]) {
    let mut st = s.lock().unwrap();
    st.keys.insert(
        user.into(),
        keys.iter()
            .map(|(id, active, age)| FakeKey {
                id: id.to_string(),
                active: *active,
                created: epoch_now() - age * DAY,
            })
            .collect(),
    );
    st.tags.entry(user.into()).or_default();
}

fn iam_rules(s: &Shared) -> Vec<Rule> {
    let report = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::get_credential_report)
            .then_compute_response(move |_| {
                let st = s.lock().unwrap();
                let mut csv = format!("{HEADER}\n");
                for (user, keys) in &st.keys {
                    let slot = |i: usize| match keys.get(i) {
                        Some(k) => format!(
                            "{},{},N/A,N/A,N/A",
                            k.active,
                            DateTime::from_secs(k.created)
                                .fmt(aws_smithy_types::date_time::Format::DateTime)
                                .unwrap()
                        ),
                        None => "false,N/A,N/A,N/A,N/A".into(),
                    };
                    csv.push_str(&format!(
                        "{user},arn:aws:iam::111122223333:user/{user},2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,{},{},false,N/A,false,N/A\n",
                        slot(0),
                        slot(1)
                    ));
                }
                MockResponse::<_, GetCredentialReportError>::Output(
                    GetCredentialReportOutput::builder().content(Blob::new(csv)).build(),
                )
            })
    };
    let list = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::list_access_keys).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let user = r.user_name().unwrap_or_default().to_string();
            if st.hit("ListAccessKeys", user.clone()) {
                return MockResponse::Error(ListAccessKeysError::generic(meta("ServiceFailure")));
            }
            let keys = st.keys.get(&user).cloned().unwrap_or_default();
            MockResponse::Output(
                ListAccessKeysOutput::builder()
                    .set_access_key_metadata(Some(
                        keys.iter()
                            .map(|k| {
                                AccessKeyMetadata::builder()
                                    .user_name(&user)
                                    .access_key_id(&k.id)
                                    .status(if k.active {
                                        StatusType::Active
                                    } else {
                                        StatusType::Inactive
                                    })
                                    .create_date(DateTime::from_secs(k.created))
                                    .build()
                            })
                            .collect(),
                    ))
                    .build()
                    .unwrap(),
            )
        })
    };
    let list_tags = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::list_user_tags).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let user = r.user_name().unwrap_or_default().to_string();
            if st.hit("ListUserTags", user.clone()) {
                return MockResponse::Error(ListUserTagsError::generic(meta("ServiceFailure")));
            }
            let tags = st.tags.get(&user).cloned().unwrap_or_default();
            MockResponse::Output(
                ListUserTagsOutput::builder()
                    .set_tags(Some(
                        tags.iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build().unwrap())
                            .collect(),
                    ))
                    .build()
                    .unwrap(),
            )
        })
    };
    let create = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::create_access_key).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let user = r.user_name().unwrap_or_default().to_string();
            if st.hit("CreateAccessKey", user.clone()) {
                return MockResponse::Error(CreateAccessKeyError::generic(meta("ServiceFailure")));
            }
            st.next_key += 1;
            let id = format!("AKIANEW{:013}", st.next_key);
            st.keys.entry(user.clone()).or_default().push(FakeKey {
                id: id.clone(),
                active: true,
                created: epoch_now(),
            });
            MockResponse::Output(
                CreateAccessKeyOutput::builder()
                    .access_key(
                        AccessKey::builder()
                            .user_name(user)
                            .access_key_id(id)
                            .status(StatusType::Active)
                            .secret_access_key(SECRET)
                            .create_date(DateTime::from_secs(epoch_now()))
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
        })
    };
    let update = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::update_access_key).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let (user, id) = (
                r.user_name().unwrap_or_default().to_string(),
                r.access_key_id().unwrap_or_default().to_string(),
            );
            let status = r.status().map(|s| s.as_str().to_string()).unwrap_or_default();
            if st.hit("UpdateAccessKey", format!("{id} {status}")) {
                return MockResponse::Error(UpdateAccessKeyError::generic(meta("ServiceFailure")));
            }
            if let Some(k) = st.keys.get_mut(&user).and_then(|ks| ks.iter_mut().find(|k| k.id == id)) {
                k.active = status == "Active";
            }
            MockResponse::Output(UpdateAccessKeyOutput::builder().build())
        })
    };
    let delete = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::delete_access_key).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let (user, id) = (
                r.user_name().unwrap_or_default().to_string(),
                r.access_key_id().unwrap_or_default().to_string(),
            );
            if st.hit("DeleteAccessKey", id.clone()) {
                return MockResponse::Error(DeleteAccessKeyError::generic(meta("ServiceFailure")));
            }
            if let Some(ks) = st.keys.get_mut(&user) {
                ks.retain(|k| k.id != id);
            }
            MockResponse::Output(DeleteAccessKeyOutput::builder().build())
        })
    };
    let tag = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::tag_user).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let user = r.user_name().unwrap_or_default().to_string();
            let t = &r.tags()[0];
            if st.hit("TagUser", t.key().to_string()) {
                return MockResponse::Error(TagUserError::generic(meta("ServiceFailure")));
            }
            st.tags
                .entry(user)
                .or_default()
                .insert(t.key().into(), t.value().into());
            MockResponse::Output(TagUserOutput::builder().build())
        })
    };
    let untag = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::untag_user).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let user = r.user_name().unwrap_or_default().to_string();
            let key = r.tag_keys()[0].clone();
            if st.hit("UntagUser", key.clone()) {
                return MockResponse::Error(UntagUserError::generic(meta("ServiceFailure")));
            }
            st.tags.entry(user).or_default().remove(&key);
            MockResponse::Output(UntagUserOutput::builder().build())
        })
    };
    let last_used = {
        let s = s.clone();
        mock!(aws_sdk_iam::Client::get_access_key_last_used).then_compute_response(move |r| {
            let st = s.lock().unwrap();
            let used = st.last_used.get(r.access_key_id().unwrap_or_default()).copied();
            let mut last = AccessKeyLastUsed::builder().service_name("N/A").region("N/A");
            if let Some(at) = used {
                last = last.last_used_date(DateTime::from_secs(at));
            }
            MockResponse::<_, GetAccessKeyLastUsedError>::Output(
                GetAccessKeyLastUsedOutput::builder()
                    .access_key_last_used(last.build().unwrap())
                    .build(),
            )
        })
    };
    vec![report, list, list_tags, create, update, delete, tag, untag, last_used]
}

fn secrets_rules(s: &Shared) -> Vec<Rule> {
    let describe = {
        let s = s.clone();
        mock!(aws_sdk_secretsmanager::Client::describe_secret).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let name = r.secret_id().unwrap_or_default().to_string();
            if st.hit("DescribeSecret", name.clone()) {
                return MockResponse::Error(DescribeSecretError::generic(meta("InternalServiceError")));
            }
            match st.secrets.get(&name) {
                None => MockResponse::Error(DescribeSecretError::generic(meta("ResourceNotFoundException"))),
                Some(secret) => MockResponse::Output(
                    DescribeSecretOutput::builder()
                        .name(&name)
                        .created_date(DateTime::from_secs(secret.created))
                        .set_tags(Some(
                            secret
                                .tags
                                .iter()
                                .map(|(k, v)| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build())
                                .collect(),
                        ))
                        .build(),
                ),
            }
        })
    };
    let create = {
        let s = s.clone();
        mock!(aws_sdk_secretsmanager::Client::create_secret).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let name = r.name().unwrap_or_default().to_string();
            if st.hit("CreateSecret", name.clone()) {
                return MockResponse::Error(CreateSecretError::generic(meta("AccessDeniedException")));
            }
            assert!(
                r.secret_string().is_none(),
                "a secret is created empty: the policy comes first"
            );
            let tags = r
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            st.secrets.insert(
                name.clone(),
                FakeSecret {
                    tags,
                    created: epoch_now(),
                    ..Default::default()
                },
            );
            MockResponse::Output(CreateSecretOutput::builder().name(name).build())
        })
    };
    let policy = {
        let s = s.clone();
        mock!(aws_sdk_secretsmanager::Client::put_resource_policy).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let name = r.secret_id().unwrap_or_default().to_string();
            if st.hit("PutResourcePolicy", name.clone()) {
                return MockResponse::Error(PutResourcePolicyError::generic(meta(
                    "MalformedPolicyDocumentException",
                )));
            }
            assert_eq!(r.block_public_policy(), Some(true));
            st.secrets.get_mut(&name).expect("exists").policy = r.resource_policy().map(str::to_string);
            MockResponse::Output(PutResourcePolicyOutput::builder().name(name).build())
        })
    };
    let put = {
        let s = s.clone();
        mock!(aws_sdk_secretsmanager::Client::put_secret_value).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let name = r.secret_id().unwrap_or_default().to_string();
            if st.hit("PutSecretValue", name.clone()) {
                return MockResponse::Error(PutSecretValueError::generic(meta("InternalServiceError")));
            }
            let secret = st.secrets.get_mut(&name).expect("exists");
            assert!(secret.policy.is_some(), "the policy is in place before any value");
            secret.value = r.secret_string().map(str::to_string);
            MockResponse::Output(PutSecretValueOutput::builder().name(name).version_id("v1").build())
        })
    };
    let get = {
        let s = s.clone();
        mock!(aws_sdk_secretsmanager::Client::get_secret_value).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let name = r.secret_id().unwrap_or_default().to_string();
            if st.hit("GetSecretValue", name.clone()) {
                return MockResponse::Error(GetSecretValueError::generic(meta("InternalServiceError")));
            }
            match st.secrets.get(&name).and_then(|s| s.value.clone()) {
                None => MockResponse::Error(GetSecretValueError::generic(meta("ResourceNotFoundException"))),
                Some(value) => MockResponse::Output(
                    GetSecretValueOutput::builder()
                        .name(name)
                        .secret_string(value)
                        .version_id("v1")
                        .build(),
                ),
            }
        })
    };
    let delete = {
        let s = s.clone();
        mock!(aws_sdk_secretsmanager::Client::delete_secret).then_compute_response(move |r| {
            let mut st = s.lock().unwrap();
            let name = r.secret_id().unwrap_or_default().to_string();
            if st.hit("DeleteSecret", name.clone()) {
                return MockResponse::Error(DeleteSecretError::generic(meta("InternalServiceError")));
            }
            assert_eq!(
                r.force_delete_without_recovery(),
                Some(true),
                "an empty secret is deleted at once, so its name is free for the next hand-over"
            );
            st.secrets.remove(&name);
            MockResponse::Output(DeleteSecretOutput::builder().name(name).build())
        })
    };
    vec![describe, create, policy, put, get, delete]
}

fn sns_rules(s: &Shared) -> Vec<Rule> {
    let s = s.clone();
    vec![mock!(aws_sdk_sns::Client::publish).then_compute_response(move |r| {
        let mut st = s.lock().unwrap();
        let message = r.message().unwrap_or_default().to_string();
        let event = serde_json::from_str::<Value>(&message).unwrap_or_default()["Event"].to_string();
        if st.hit("Publish", event) {
            return MockResponse::Error(PublishError::generic(meta("InternalError")));
        }
        st.published.push(message);
        MockResponse::Output(PublishOutput::builder().message_id("m-1").build())
    })]
}

fn handler(s: &Shared) -> AccessKeyRotation {
    let iam_rules = iam_rules(s);
    let sm_rules = secrets_rules(s);
    let sns_rules = sns_rules(s);
    let iam: Vec<&Rule> = iam_rules.iter().collect();
    let sm: Vec<&Rule> = sm_rules.iter().collect();
    let sns: Vec<&Rule> = sns_rules.iter().collect();
    let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, &iam, |c| c
        .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled()));
    let secrets = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, &sm, |c| c
        .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()));
    let sns = mock_client!(aws_sdk_sns, RuleMode::MatchAny, &sns, |c| c
        .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled()));
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[]);
    let ledger = s.lock().unwrap().ledger.client();
    let tuning = Tuning {
        concurrency: 2,
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(2),
        report_poll: Duration::from_millis(1),
        deadline_margin: Duration::from_secs(1),
        ..Tuning::default()
    };
    AccessKeyRotation::from_clients(
        iam,
        secrets,
        sns,
        sts,
        Ledger::from_client(ledger, "access-key-rotation"),
        tuning,
    )
    .with_role_arn(ROLE)
}

fn rotate() -> Properties {
    Properties {
        mode: Mode::Rotate,
        notify_topic_arn: Some(TOPIC.into()),
        secret_reader_arns: vec!["arn:aws:iam::111122223333:role/deployer".into()],
        ..Default::default()
    }
}

async fn pass(s: &Shared, props: &Properties) -> Summary {
    let summary = handler(s)
        .run_pass(&Invocation::detached("eu-west-1", "111122223333"), props, None)
        .await
        .expect("the pass runs");
    assert_ledger_untouched(s);
    summary
}

/// A pass (or an undo) neither reads nor writes the ledger: that is the custom resource's and the
/// schedule's business, around it.
fn assert_ledger_untouched(s: &Shared) {
    let st = s.lock().unwrap();
    for op in ["GetParameter", "GetParametersByPath", "PutParameter", "DeleteParameter"] {
        assert_eq!(st.ledger.calls(op), 0, "{op} on the ledger");
    }
    assert!(st.ledger.names_under("/").is_empty());
}

fn keys(s: &Shared, user: &str) -> Vec<(String, bool)> {
    s.lock().unwrap().keys[user]
        .iter()
        .map(|k| (k.id.clone(), k.active))
        .collect()
}

fn tag(s: &Shared, user: &str, key: &str) -> Option<String> {
    s.lock().unwrap().tags[user].get(key).cloned()
}

fn calls(s: &Shared) -> Vec<String> {
    s.lock().unwrap().calls.clone()
}

fn fail_at(s: &Shared, op: &'static str, nth: u32) {
    s.lock().unwrap().fail.insert(op, nth);
}

fn stored_key(s: &Shared, user: &str) -> Option<String> {
    let st = s.lock().unwrap();
    let value = st
        .secrets
        .get(&format!("tap/access-keys/{}", encode_user(user)))?
        .value
        .clone()?;
    serde_json::from_str::<Value>(&value).ok()?["AccessKeyId"]
        .as_str()
        .map(str::to_string)
}

// ----- a rotation that completes -------------------------------------------------------------------

#[tokio::test]
async fn a_rotate_pass_hands_over_in_order_and_keeps_the_old_key_active() {
    let s = fake();
    add_user(&s, "alice", &[(OLD, true, 120)]);
    let summary = pass(&s, &rotate()).await;
    assert_eq!(
        (summary.keys_rotated, summary.keys_deactivated, summary.users_failed()),
        (1, 0, 0)
    );
    let ks = keys(&s, "alice");
    assert_eq!(ks.len(), 2);
    assert!(ks.iter().all(|(_, active)| *active), "the old key stays active: {ks:?}");
    let new = ks.iter().find(|(id, _)| id != OLD).unwrap().0.clone();
    assert_eq!(stored_key(&s, "alice").as_deref(), Some(new.as_str()));
    assert!(tag(&s, "alice", HANDED_OVER_TAG)
        .unwrap()
        .starts_with(&format!("{new} ")));
    assert_eq!(tag(&s, "alice", INTENT_TAG), None);

    // The order: intent before the key, the policy before the value, the notice after the read-back
    // and before the hand-over is recorded; no old key is deactivated.
    let mutating: Vec<String> = calls(&s)
        .into_iter()
        .filter(|c| !c.starts_with("List") && !c.starts_with("Describe"))
        .collect();
    assert_eq!(
        mutating,
        vec![
            format!("TagUser {INTENT_TAG}"),
            "CreateAccessKey alice".to_string(),
            "CreateSecret tap/access-keys/alice".to_string(),
            "PutResourcePolicy tap/access-keys/alice".to_string(),
            "PutSecretValue tap/access-keys/alice".to_string(),
            "GetSecretValue tap/access-keys/alice".to_string(),
            "Publish \"AccessKeyRotated\"".to_string(),
            format!("TagUser {HANDED_OVER_TAG}"),
            format!("UntagUser {INTENT_TAG}"),
        ]
    );
    let st = s.lock().unwrap();
    let secret = &st.secrets["tap/access-keys/alice"];
    assert!(secret.tags.contains(&(OWNER_TAG.to_string(), "alice".to_string())));
    let stored_policy: Value = serde_json::from_str(secret.policy.as_deref().unwrap()).unwrap();
    assert_eq!(
        stored_policy["Statement"][1]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"],
        json!([
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/deployer",
            ROLE
        ])
    );
    let notice: Value = serde_json::from_str(&st.published[0]).unwrap();
    assert_eq!(
        (notice["UserName"].as_str(), notice["OldAccessKeyId"].as_str()),
        (Some("alice"), Some(OLD))
    );
    assert!(
        st.published.iter().all(|m| !m.contains(SECRET)),
        "no notice carries the secret"
    );
}

#[tokio::test]
async fn after_the_overlap_the_old_key_is_retired_only_when_unused_since_the_new_key() {
    let s = fake();
    add_user(&s, "alice", &[(OLD, true, 120)]);
    add_user(&s, "bob", &[("AKIAOLDBOB0000000001", true, 120)]);
    pass(&s, &rotate()).await;
    // Inside the overlap: nothing.
    let inside = pass(&s, &rotate()).await;
    assert_eq!((inside.keys_deactivated, inside.users_waiting), (0, 0));
    // Eight days on; bob's old key was used after his new key was created.
    {
        let mut st = s.lock().unwrap();
        for user in ["alice", "bob"] {
            let value = st.tags[user][HANDED_OVER_TAG].clone();
            let (id, _) = value.split_once(' ').unwrap();
            let moved = format!("{id} {}", crate::state::iso(epoch_now() - 8 * DAY));
            st.tags.get_mut(user).unwrap().insert(HANDED_OVER_TAG.into(), moved);
        }
        st.last_used.insert("AKIAOLDBOB0000000001".into(), epoch_now());
        st.last_used.insert(OLD.into(), epoch_now() - 30 * DAY);
    }
    let after = pass(&s, &rotate()).await;
    assert_eq!(
        (after.keys_deactivated, after.users_waiting, after.users_failed()),
        (1, 1, 0)
    );
    assert!(keys(&s, "alice").contains(&(OLD.to_string(), false)));
    assert!(keys(&s, "bob").contains(&("AKIAOLDBOB0000000001".to_string(), true)));
    assert!(tag(&s, "alice", &format!("tap:rotation-deactivated:{OLD}")).is_some());
    let events: Vec<String> = s
        .lock()
        .unwrap()
        .published
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap()["Event"].to_string())
        .collect();
    assert!(
        events.contains(&"\"OldAccessKeyDeactivated\"".to_string())
            && events.contains(&"\"OldAccessKeyStillInUse\"".to_string()),
        "{events:?}"
    );

    // Someone reactivates alice's old key: left alone, reported and notified.
    s.lock()
        .unwrap()
        .keys
        .get_mut("alice")
        .unwrap()
        .iter_mut()
        .find(|k| k.id == OLD)
        .unwrap()
        .active = true;
    let before = calls(&s).len();
    let overridden = pass(&s, &rotate()).await;
    assert_eq!((overridden.users_overridden, overridden.keys_deactivated), (1, 0));
    assert!(
        !calls(&s)[before..].iter().any(|c| c.starts_with("UpdateAccessKey")),
        "never deactivated again"
    );
}

// ----- each failure between the steps ----------------------------------------------------------------

/// Runs a Rotate pass over alice with the `nth` call of `op` failing; answers her reason.
async fn failing(op: &'static str, nth: u32) -> (Shared, String) {
    let s = fake();
    add_user(&s, "alice", &[(OLD, true, 120)]);
    fail_at(&s, op, nth);
    let summary = pass(&s, &rotate()).await;
    assert_eq!(summary.users_failed(), 1, "{op}: {summary:?}");
    let reason = summary.failures[0].1.clone();
    assert!(reason.contains(&format!("{op} failed")), "{op}: {reason}");
    assert!(
        keys(&s, "alice").contains(&(OLD.to_string(), true)),
        "{op}: the old key stays active"
    );
    (s, reason)
}

#[tokio::test]
async fn the_intent_tag_failing_creates_nothing() {
    let (s, _) = failing("TagUser", 1).await;
    assert_eq!(keys(&s, "alice").len(), 1);
    assert!(!calls(&s).iter().any(|c| c.starts_with("CreateAccessKey")));
}

#[tokio::test]
async fn create_access_key_failing_clears_the_intent() {
    let (s, reason) = failing("CreateAccessKey", 1).await;
    assert!(reason.contains("stays active"), "{reason}");
    assert_eq!(keys(&s, "alice").len(), 1);
    assert_eq!(tag(&s, "alice", INTENT_TAG), None);
}

#[tokio::test]
async fn a_key_that_could_not_be_stored_is_deleted_again() {
    for op in ["CreateSecret", "PutResourcePolicy", "PutSecretValue"] {
        let (s, reason) = failing(op, 1).await;
        assert!(
            reason.contains("was never handed over and was deleted again"),
            "{op}: {reason}"
        );
        assert_eq!(keys(&s, "alice"), vec![(OLD.to_string(), true)], "{op}: no orphan");
        assert_eq!(tag(&s, "alice", INTENT_TAG), None, "{op}");
        // The secret as it was before the hand-over: there was none, so none is left (an empty one,
        // created by the hand-over, is deleted with the key).
        assert!(
            !s.lock().unwrap().secrets.contains_key("tap/access-keys/alice"),
            "{op}: the hand-over's empty secret is left: {reason}"
        );
        if op == "PutResourcePolicy" {
            assert!(
                !calls(&s).iter().any(|c| c.starts_with("PutSecretValue")),
                "no value without the policy"
            );
        }
    }
}

/// Alice's secret from an earlier rotation, holding `value`, created `age` days ago.
fn earlier_secret(s: &Shared, value: Option<&str>, age: i64) {
    s.lock().unwrap().secrets.insert(
        "tap/access-keys/alice".into(),
        FakeSecret {
            tags: vec![(OWNER_TAG.to_string(), "alice".to_string())],
            value: value.map(str::to_string),
            policy: Some(policy("arn:aws:iam::111122223333:user/alice", &[], ROLE)),
            created: epoch_now() - age * DAY,
        },
    );
}

// Do no harm: the undo takes back only what this hand-over did. A secret that existed before keeps
// the value it had (the earlier key), and an empty one this hand-over did not create stays too.
#[tokio::test]
async fn an_undone_hand_over_leaves_a_secret_that_existed_before_as_it_was() {
    let earlier = json!({"UserName": "alice", "AccessKeyId": OLD}).to_string();
    for (value, op) in [
        (Some(earlier.as_str()), "PutResourcePolicy"),
        (Some(earlier.as_str()), "PutSecretValue"),
        (None, "PutSecretValue"),
    ] {
        let s = fake();
        add_user(&s, "alice", &[(OLD, true, 120)]);
        earlier_secret(&s, value, 200);
        fail_at(&s, op, 1);
        let summary = pass(&s, &rotate()).await;
        let reason = &summary.failures[0].1;
        assert!(reason.contains("deleted again"), "{op}: {reason}");
        assert_eq!(keys(&s, "alice"), vec![(OLD.to_string(), true)], "{op}");
        let st = s.lock().unwrap();
        let secret = st.secrets.get("tap/access-keys/alice");
        assert_eq!(
            secret.map(|s| s.value.as_deref()),
            Some(value),
            "{op}: the earlier secret is kept with its value"
        );
        assert!(!st.calls.iter().any(|c| c.starts_with("DeleteSecret")), "{op}");
    }
}

#[tokio::test]
async fn an_empty_secret_that_could_not_be_deleted_is_deleted_by_the_undo_of_the_failed_create() {
    let s = fake();
    add_user(&s, "alice", &[(OLD, true, 120)]);
    fail_at(&s, "PutSecretValue", 1);
    fail_at(&s, "DeleteSecret", 1);
    let props = rotate();
    let summary = pass(&s, &props).await;
    let reason = &summary.failures[0].1;
    assert!(
        reason.contains("PutSecretValue failed")
            && reason.contains("could not be deleted")
            && reason.contains("DeleteSecret failed"),
        "{reason}"
    );
    assert_eq!(keys(&s, "alice"), vec![(OLD.to_string(), true)], "the key is undone");
    assert!(
        tag(&s, "alice", INTENT_TAG).is_some(),
        "the intent stays while the secret is not undone"
    );
    // CloudFormation's rollback Delete of the failed Create: the undo finishes.
    let undo = handler(&s)
        .recover_only(&Invocation::detached("eu-west-1", "111122223333"), &props)
        .await
        .expect("the undo runs");
    assert_ledger_untouched(&s);
    assert_eq!(undo.users_failed(), 0, "{undo:?}");
    assert!(!s.lock().unwrap().secrets.contains_key("tap/access-keys/alice"));
    assert_eq!(tag(&s, "alice", INTENT_TAG), None);
    assert_eq!(keys(&s, "alice"), vec![(OLD.to_string(), true)]);
}

/// Alice as a pass cut after CreateSecret left her: the intent, a key never handed over, and the empty
/// secret it created.
fn cut_after_create_secret(s: &Shared) {
    add_user(s, "alice", &[(OLD, true, 120), ("AKIAORPHAN0000000001", true, 0)]);
    s.lock()
        .unwrap()
        .tags
        .get_mut("alice")
        .unwrap()
        .insert(INTENT_TAG.into(), crate::state::step_value(OLD, epoch_now() - 60));
    earlier_secret(s, None, 0);
}

#[tokio::test]
async fn the_undo_of_a_cut_create_deletes_the_empty_secret_its_hand_over_created() {
    let s = fake();
    cut_after_create_secret(&s);
    let undo = handler(&s)
        .recover_only(&Invocation::detached("eu-west-1", "111122223333"), &rotate())
        .await
        .expect("the undo runs");
    assert_ledger_untouched(&s);
    assert_eq!((undo.keys_undone, undo.users_failed()), (1, 0), "{undo:?}");
    assert_eq!(keys(&s, "alice"), vec![(OLD.to_string(), true)]);
    assert!(!s.lock().unwrap().secrets.contains_key("tap/access-keys/alice"));
    assert_eq!(tag(&s, "alice", INTENT_TAG), None);

    // A scheduled pass that finds the same goes on to hand over: it writes into the secret instead
    // (a secret deleted just now may keep its name from CreateSecret for a while).
    let s = fake();
    cut_after_create_secret(&s);
    let summary = pass(&s, &rotate()).await;
    assert_eq!(
        (summary.keys_undone, summary.keys_rotated, summary.users_failed()),
        (1, 1, 0)
    );
    assert!(!calls(&s).iter().any(|c| c.starts_with("DeleteSecret")));
    let new = keys(&s, "alice").into_iter().find(|(id, _)| id != OLD).unwrap().0;
    assert_eq!(stored_key(&s, "alice"), Some(new));
}

#[tokio::test]
async fn a_failed_read_back_never_deletes_a_key_the_secret_holds() {
    // The read-back fails after the value was written: the secret's current value is the new key.
    let (s, reason) = failing("GetSecretValue", 1).await;
    assert!(
        reason.contains("holds the new key") && reason.contains("the next pass finishes"),
        "{reason}"
    );
    let ks = keys(&s, "alice");
    assert_eq!(ks.len(), 2, "the stored key is kept: {ks:?}");
    assert!(
        tag(&s, "alice", INTENT_TAG).is_some(),
        "the intent stays for the next pass"
    );
    // The next pass finishes the hand-over: announces it and records it.
    let next = pass(&s, &rotate()).await;
    assert_eq!(
        (next.keys_rotated, next.keys_undone, next.users_failed()),
        (1, 0, 0),
        "{next:?}"
    );
    assert_eq!(tag(&s, "alice", INTENT_TAG), None);
    assert!(tag(&s, "alice", HANDED_OVER_TAG).is_some());
}

#[tokio::test]
async fn a_failed_notice_keeps_the_key_and_the_next_pass_announces_it() {
    let (s, reason) = failing("Publish", 1).await;
    assert!(reason.contains("the next pass announces it again"), "{reason}");
    assert_eq!(keys(&s, "alice").len(), 2);
    assert_eq!(
        tag(&s, "alice", HANDED_OVER_TAG),
        None,
        "not handed over before the user is told"
    );
    let next = pass(&s, &rotate()).await;
    assert_eq!((next.keys_rotated, next.users_failed()), (1, 0));
    let events: Vec<String> = s
        .lock()
        .unwrap()
        .published
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(m).unwrap()["Event"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        events,
        ["RotationFailed", "AccessKeyRotated"],
        "told of the failure, then of the key"
    );
}

#[tokio::test]
async fn the_hand_over_tag_failing_leaves_the_intent_for_the_next_pass() {
    let (s, _) = failing("TagUser", 2).await;
    assert_eq!(keys(&s, "alice").len(), 2);
    assert!(tag(&s, "alice", INTENT_TAG).is_some());
    let next = pass(&s, &rotate()).await;
    assert_eq!((next.keys_rotated, next.keys_undone), (1, 0));
    assert_eq!(keys(&s, "alice").len(), 2, "finished, not a third key");
}

#[tokio::test]
async fn a_key_a_cut_pass_created_and_never_handed_over_is_deleted() {
    let s = fake();
    add_user(&s, "alice", &[(OLD, true, 120), ("AKIAORPHAN0000000001", true, 0)]);
    s.lock()
        .unwrap()
        .tags
        .get_mut("alice")
        .unwrap()
        .insert(INTENT_TAG.into(), crate::state::step_value(OLD, epoch_now() - 60));
    let summary = pass(&s, &rotate()).await;
    assert_eq!(
        (summary.keys_undone, summary.keys_rotated, summary.users_failed()),
        (1, 1, 0),
        "{summary:?}"
    );
    let ks = keys(&s, "alice");
    assert!(
        !ks.iter().any(|(id, _)| id == "AKIAORPHAN0000000001"),
        "orphan deleted: {ks:?}"
    );
    assert_eq!(ks.len(), 2);
    let new = ks.iter().find(|(id, _)| id != OLD).unwrap().0.clone();
    assert_eq!(stored_key(&s, "alice"), Some(new), "then a fresh hand-over");
}

/// Alice rotated in a first pass, with her hand-over moved past the overlap.
async fn handed_over_past_the_overlap(s: &Shared) -> String {
    add_user(s, "alice", &[(OLD, true, 120)]);
    pass(s, &rotate()).await;
    let mut st = s.lock().unwrap();
    let value = st.tags["alice"][HANDED_OVER_TAG].clone();
    let (new, _) = value.split_once(' ').unwrap();
    let moved = format!("{new} {}", crate::state::iso(epoch_now() - 8 * DAY));
    st.tags.get_mut("alice").unwrap().insert(HANDED_OVER_TAG.into(), moved);
    new.to_string()
}

// Found while writing the fault matrix's plan for this handler (tests/fault_matrix.rs, iam:UpdateAccessKey
// under HTTP 500 and AccessDenied, whose rows now pass): the date tag stayed on the key that was never deactivated, and every later pass took it for a key a
// person had reactivated.
#[tokio::test]
async fn a_failed_deactivation_takes_its_date_back_so_the_next_pass_still_retires_the_key() {
    let s = fake();
    handed_over_past_the_overlap(&s).await;
    fail_at(&s, "UpdateAccessKey", 1);
    let failed = pass(&s, &rotate()).await;
    assert_eq!(failed.users_failed(), 1, "{failed:?}");
    assert!(
        failed.failures[0].1.contains("UpdateAccessKey failed"),
        "{:?}",
        failed.failures
    );
    assert!(keys(&s, "alice").contains(&(OLD.to_string(), true)));
    assert_eq!(tag(&s, "alice", &format!("tap:rotation-deactivated:{OLD}")), None);

    let next = pass(&s, &rotate()).await;
    assert_eq!(
        (next.keys_deactivated, next.users_overridden, next.users_failed()),
        (1, 0, 0),
        "{next:?}"
    );
    assert!(keys(&s, "alice").contains(&(OLD.to_string(), false)));
}

// Found the same way (iam:UntagUser, and iam:UpdateAccessKey past the deadline): the old key was
// deactivated but the hand-over tag stayed, and every later pass left the inactive old key alone, so it
// was never deleted and the user's second key slot never freed up.
#[tokio::test]
async fn an_old_key_deactivated_before_the_hand_over_tag_came_off_is_deleted_after_the_grace_period() {
    let s = fake();
    let new = handed_over_past_the_overlap(&s).await;
    // Cut after UpdateAccessKey, before the tag came off (the calls before it made as the pass does).
    fail_at(&s, "UntagUser", 2);
    let cut = pass(&s, &rotate()).await;
    assert_eq!(cut.users_failed(), 1, "{cut:?}");
    assert!(keys(&s, "alice").contains(&(OLD.to_string(), false)));
    assert!(tag(&s, "alice", HANDED_OVER_TAG).is_some());

    let next = pass(&s, &rotate()).await;
    assert_eq!(next.users_failed(), 0, "{next:?}");
    assert_eq!(tag(&s, "alice", HANDED_OVER_TAG), None, "the hand-over is over");
    // The grace period since the deactivation, then the old key goes.
    {
        let mut st = s.lock().unwrap();
        let at = crate::state::iso(epoch_now() - 15 * DAY);
        st.tags
            .get_mut("alice")
            .unwrap()
            .insert(format!("tap:rotation-deactivated:{OLD}"), at);
    }
    let later = pass(&s, &rotate()).await;
    assert_eq!((later.keys_deleted, later.users_failed()), (1, 0), "{later:?}");
    assert_eq!(keys(&s, "alice"), vec![(new, true)]);
}

#[tokio::test]
async fn a_foreign_secret_is_refused_before_anything_changes() {
    let s = fake();
    add_user(&s, "admin", &[(OLD, true, 120)]);
    s.lock().unwrap().secrets.insert(
        "tap/access-keys/admin".into(),
        FakeSecret {
            value: Some("planted".into()),
            ..Default::default()
        },
    );
    let summary = pass(&s, &rotate()).await;
    assert_eq!(summary.users_failed(), 1);
    assert!(
        summary.failures[0].1.contains("was not created by this rotation"),
        "{:?}",
        summary.failures
    );
    assert_eq!(keys(&s, "admin"), vec![(OLD.to_string(), true)]);
    assert!(!calls(&s)
        .iter()
        .any(|c| c.starts_with("TagUser") || c.starts_with("CreateAccessKey")));
    assert_eq!(
        s.lock().unwrap().secrets["tap/access-keys/admin"].value.as_deref(),
        Some("planted")
    );
}

#[tokio::test]
async fn an_exempt_user_is_matched_in_any_case_and_never_touched() {
    let s = fake();
    add_user(&s, "vip", &[(OLD, true, 120)]);
    s.lock()
        .unwrap()
        .tags
        .get_mut("vip")
        .unwrap()
        .insert("TAP:ROTATION-EXEMPT".into(), "yes".into());
    let summary = pass(&s, &rotate()).await;
    assert_eq!(
        (summary.users_exempt, summary.keys_rotated, summary.keys_over_age),
        (1, 0, 1)
    );
    assert!(calls(&s).iter().all(|c| c.starts_with("List")));
}

// ----- properties, names, state ------------------------------------------------------------------------

#[test]
fn defaults_match_the_documented_ones() {
    let p = Properties::default();
    assert_eq!(
        (
            p.max_key_age_days,
            p.mode,
            p.overlap_days,
            p.grace_days,
            p.dry_run,
            p.fail_on_user_errors
        ),
        (90, Mode::Audit, 7, 14, false, true)
    );
    assert_eq!(
        (p.exempt_tag_key.as_str(), p.secret_prefix.as_str()),
        ("tap:rotation-exempt", "tap/access-keys/")
    );
    assert!(p.secret_reader_arns.is_empty());
}

#[test]
fn rotate_without_a_topic_or_with_grace_days_0_is_refused_with_advice() {
    let p = Properties {
        mode: Mode::Rotate,
        ..Default::default()
    };
    let err = p.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("invalid property NotifyTopicArn: is required with Mode Rotate"),
        "{err}"
    );
    let p = Properties {
        grace_days: 0,
        ..rotate()
    };
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("rotation stops after one cycle"));
    Properties {
        grace_days: 0,
        mode: Mode::Disable,
        ..Default::default()
    }
    .validate()
    .unwrap();
    rotate().validate().unwrap();
    let bad_reader = Properties {
        secret_reader_arns: vec!["deployer".into()],
        ..rotate()
    };
    assert!(bad_reader
        .validate()
        .unwrap_err()
        .to_string()
        .contains("SecretReaderArns"));
}

#[test]
fn reader_arns_come_as_a_list_or_a_comma_separated_variable() {
    let p: Properties = props::parse(&json!({"SecretReaderArns": ["arn:aws:iam::1:role/a", " "]})).unwrap();
    assert_eq!(p.secret_reader_arns, vec!["arn:aws:iam::1:role/a"]);
    let env =
        |name: &str| (name == "SecretReaderArns").then(|| "arn:aws:iam::1:role/a, arn:aws:iam::1:user/b".to_string());
    assert_eq!(
        Properties::from_lookup(env).unwrap().secret_reader_arns,
        vec!["arn:aws:iam::1:role/a", "arn:aws:iam::1:user/b"]
    );
    let err = Properties::from_lookup(|n| (n == "Mode").then(|| "Sometimes".to_string()))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid environment variable Mode"), "{err}");
}

#[test]
fn secret_names_are_an_injective_function_of_the_user_name() {
    let p = Properties::default();
    let names: Vec<String> = ["ops,bob", "ops_bob", "ops=2Cbob", "ops=bob"]
        .iter()
        .map(|u| secret_name(&p, u))
        .collect();
    assert_eq!(
        names,
        vec![
            "tap/access-keys/ops=2Cbob",
            "tap/access-keys/ops_bob",
            "tap/access-keys/ops=3D2Cbob",
            "tap/access-keys/ops=3Dbob"
        ]
    );
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len());
    assert!(names.iter().all(|n| !n.contains(',')), "Secrets Manager refuses commas");
}

#[test]
fn the_policy_lets_only_the_user_and_the_readers_read() {
    let doc: Value = serde_json::from_str(&policy(
        "arn:aws:iam::1:user/a",
        &["arn:aws:iam::1:role/r".into()],
        ROLE,
    ))
    .unwrap();
    assert_eq!(
        doc["Statement"][0]["Principal"]["AWS"],
        json!(["arn:aws:iam::1:user/a", "arn:aws:iam::1:role/r"])
    );
    assert_eq!(doc["Statement"][1]["Effect"], "Deny");
    assert_eq!(doc["Statement"][1]["Principal"], "*");
}

#[test]
fn the_callers_principal_is_the_role_not_the_session() {
    assert_eq!(
        role_of_session("arn:aws:sts::111122223333:assumed-role/rotation/fn-session").as_deref(),
        Some("arn:aws:iam::111122223333:role/rotation")
    );
    assert_eq!(
        role_of_session("arn:aws:iam::1:user/ci").as_deref(),
        Some("arn:aws:iam::1:user/ci")
    );
    assert_eq!(role_of_session("arn:aws:iam::1:root"), None);
}

#[test]
fn state_tags_are_read_whatever_their_case() {
    let now = epoch_now();
    let state = UserState::from_tags(
        [
            ("Tap:Rotation-Exempt", ""),
            ("TAP:ROTATION-INTENT", "AKIAOLD 2026-01-01T00:00:00Z"),
            ("tap:rotation-deactivated:akiaold", "garbled"),
        ],
        "tap:rotation-exempt",
        now,
    );
    assert!(state.exempt);
    assert_eq!(state.intent.as_ref().map(|i| i.key_id.as_str()), Some("AKIAOLD"));
    assert_eq!(
        state.deactivated_by_us("AKIAOLD"),
        Some(now),
        "an unreadable date counts as now"
    );
}

// ----- the credential report's CSV ------------------------------------------------------------------

mod credential_report {
    use crate::report::*;

    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    #[test]
    fn reads_both_key_slots_and_skips_the_root_row() {
        let csv = format!(
            "{HEADER}\n\
             <root_account>,arn:aws:iam::1:root,2020-01-01T00:00:00+00:00,not_supported,N/A,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n\
             alice,arn:aws:iam::1:user/alice,2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,true,2026-05-07T13:07:53+00:00,N/A,N/A,N/A,false,2026-11-20T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A\n\
             \"bob,ops\",arn:aws:iam::1:user/bob,2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"
        );
        let users = parse(&csv).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].user, "alice");
        assert_eq!(
            users[0].keys,
            vec![
                ReportKey {
                    active: true,
                    last_rotated: parse_timestamp("2026-05-07T13:07:53Z").unwrap()
                },
                ReportKey {
                    active: false,
                    last_rotated: parse_timestamp("2026-11-20T00:00:00Z").unwrap()
                },
            ]
        );
        assert_eq!(users[1].user, "bob,ops");
        assert!(users[1].keys.is_empty());
        let cutoff = parse_timestamp("2026-08-01T00:00:00Z").unwrap();
        assert!(users[0].has_key_created_before(cutoff));
        assert!(!users[1].has_key_created_before(cutoff));
    }

    #[test]
    fn a_report_without_key_columns_is_an_error_naming_the_column() {
        let err = parse("user,arn\nalice,arn:aws:iam::1:user/alice\n").unwrap_err();
        assert!(err.contains("access_key_1_active"), "{err}");
    }

    #[test]
    fn timestamps_with_offsets_fractions_and_z_agree() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(parse_timestamp("2000-03-01T00:00:00Z"), Some(951_868_800));
        assert_eq!(parse_timestamp("2000-03-01T01:00:00+01:00"), Some(951_868_800));
        assert_eq!(parse_timestamp("2000-02-29T23:00:00.5-01:00"), Some(951_868_800));
        assert_eq!(parse_timestamp("N/A"), None);
        assert_eq!(parse_timestamp("2000-13-01T00:00:00Z"), None);
    }
}
