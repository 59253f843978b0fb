//! Unit tests of the resource's paths, with Security Hub mocked (aws-smithy-mocks) and the ledger in the
//! in-memory Parameter Store (`tapguard_shared::ssm::memory`).

mod resource;

use std::collections::BTreeMap;

use aws_sdk_securityhub::operation::describe_hub::{DescribeHubError, DescribeHubOutput};
use aws_sdk_securityhub::operation::disable_security_hub::DisableSecurityHubOutput;
use aws_sdk_securityhub::operation::enable_security_hub::EnableSecurityHubOutput;
use aws_sdk_securityhub::operation::get_administrator_account::GetAdministratorAccountOutput;
use aws_sdk_securityhub::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_securityhub::operation::tag_resource::TagResourceOutput;
use aws_sdk_securityhub::operation::untag_resource::UntagResourceOutput;
use aws_sdk_securityhub::operation::update_security_hub_configuration::UpdateSecurityHubConfigurationOutput;
use aws_sdk_securityhub::types::{ControlFindingGenerator, Invitation};
use aws_sdk_securityhub::Client as SecurityHub;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
use tapguard_shared::ssm::memory::MemoryStore;
use tapguard_shared::{Invocation, Ledger};

use crate::{Properties, SecurityHubEnable};

pub(crate) const HUB: &str = "arn:aws:securityhub:eu-west-1:111122223333:hub/default";
pub(crate) const POLICY_DENIED: &str = "Account 111122223333 is managed by a configuration policy";
pub(crate) const OURS: &str = "securityhub-enable:eu-west-1:ledger-req-1";

pub(crate) fn inv() -> Invocation {
    let mut inv = Invocation::detached("eu-west-1", "111122223333");
    inv.request_id = "req-1".into();
    inv.logical_resource_id = "SecurityHub".into();
    inv
}

pub(crate) fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn hub(generator: &'static str, auto: bool) -> DescribeHubOutput {
    DescribeHubOutput::builder()
        .hub_arn(HUB)
        .subscribed_at("2026-11-23T10:00:00.000Z")
        .auto_enable_controls(auto)
        .control_finding_generator(ControlFindingGenerator::from(generator))
        .build()
}

/// DescribeHub answers, in order: None = not subscribed, Some = this hub.
pub(crate) fn hub_reads(answers: &[Option<(&'static str, bool)>]) -> Rule {
    let mut seq = mock!(SecurityHub::describe_hub).sequence();
    for answer in answers.iter().copied() {
        seq = match answer {
            Some((generator, auto)) => seq.output(move || hub(generator, auto)),
            None => seq.error(|| {
                DescribeHubError::generic(meta(
                    "InvalidAccessException",
                    "Account 111122223333 is not subscribed to AWS Security Hub",
                ))
            }),
        };
    }
    seq.build()
}

pub(crate) fn no_administrator() -> Rule {
    mock!(SecurityHub::get_administrator_account).then_output(|| GetAdministratorAccountOutput::builder().build())
}

pub(crate) fn administrator(account: &'static str) -> Rule {
    mock!(SecurityHub::get_administrator_account).then_output(move || {
        GetAdministratorAccountOutput::builder()
            .administrator(
                Invitation::builder()
                    .account_id(account)
                    .member_status("Enabled")
                    .build(),
            )
            .build()
    })
}

pub(crate) fn enable_ok() -> Rule {
    mock!(SecurityHub::enable_security_hub).then_output(|| EnableSecurityHubOutput::builder().build())
}

pub(crate) fn update_ok() -> Rule {
    mock!(SecurityHub::update_security_hub_configuration)
        .then_output(|| UpdateSecurityHubConfigurationOutput::builder().build())
}

pub(crate) fn tag_ok() -> Rule {
    mock!(SecurityHub::tag_resource).then_output(|| TagResourceOutput::builder().build())
}

pub(crate) fn untag_ok() -> Rule {
    mock!(SecurityHub::untag_resource).then_output(|| UntagResourceOutput::builder().build())
}

pub(crate) fn disable_ok() -> Rule {
    mock!(SecurityHub::disable_security_hub).then_output(|| DisableSecurityHubOutput::builder().build())
}

/// ListTagsForResource answers, in order; the last one repeats.
pub(crate) fn tag_reads(answers: Vec<Vec<(&'static str, &'static str)>>) -> Rule {
    let mut seq = mock!(SecurityHub::list_tags_for_resource).sequence();
    let count = answers.len();
    for (i, answer) in answers.into_iter().enumerate() {
        let make = move || {
            ListTagsForResourceOutput::builder()
                .set_tags(Some(
                    answer.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ))
                .build()
        };
        if i + 1 == count {
            return seq.output(make).repeatedly().build();
        }
        seq = seq.output(make);
    }
    panic!("give at least one answer")
}

/// The ledger of this handler over `store`.
pub(crate) fn ledger(store: &MemoryStore) -> Ledger {
    Ledger::from_client(store.client(), "securityhub-enable")
}

/// A Parameter Store holding `claims` on the hub, each at its claimant's parameter.
pub(crate) fn with_claims(claims: &[Value]) -> MemoryStore {
    let store = MemoryStore::new();
    for claim in claims {
        let key = claim["claimant"]["key"].as_str().expect("a claim names its key");
        store.insert(&claim_name(key), claim.to_string());
    }
    store
}

/// The parameter of the claim of resource `key` on the hub.
pub(crate) fn claim_name(key: &str) -> String {
    Ledger::claim_name(&crate::setting(), key)
}

/// The claim of resource `key` on the hub as `store` holds it.
pub(crate) fn stored_claim(store: &MemoryStore, key: &str) -> Option<Value> {
    store.json(&claim_name(key))
}

/// The record of resource `key` as `store` holds it.
pub(crate) fn stored_record(store: &MemoryStore, key: &str) -> Option<Value> {
    store.json(&ledger(store).record_name(key))
}

/// A claim on the hub, as the ledger stores it.
pub(crate) fn claim(key: &str, logical_id: &str, wants: Value, prior: Value) -> Value {
    json!({"v": 1, "claimant": {"key": key, "handler": "securityhub-enable",
        "stack_id": "arn:aws:cloudformation:eu-west-1:111122223333:stack/TapStack/1", "logical_id": logical_id},
        "wants": wants, "prior": prior, "since": 100})
}

pub(crate) fn wants(generator: &str, auto: bool) -> Value {
    json!({"enabled": true, "control_finding_generator": generator, "auto_enable_controls": auto})
}

pub(crate) fn handler(rules: &[&Rule], store: &MemoryStore) -> SecurityHubEnable {
    SecurityHubEnable::from_clients(
        mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules),
        ledger(store),
    )
}

pub(crate) fn props() -> Properties {
    Properties {
        enable_default_standards: false,
        control_finding_generator: None,
        auto_enable_controls: true,
        tags: BTreeMap::new(),
        repair_drift: false,
    }
}
