//! Unit tests of the resource's paths, with Security Hub and the ledger's SSM mocked (aws-smithy-mocks).

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
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::Parameter;
use aws_sdk_ssm::Client as Ssm;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use serde_json::{json, Value};
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

/// The ledger's SSM: the given record (or none), the given claims on the hub, writes accepted.
pub(crate) struct LedgerMocks {
    pub get: Rule,
    pub list: Rule,
    pub put: Rule,
    pub delete: Rule,
}

impl LedgerMocks {
    pub(crate) fn new(record: Option<Value>, claims: Vec<Value>) -> Self {
        LedgerMocks {
            get: match record {
                Some(record) => mock!(Ssm::get_parameter).then_output(move || {
                    aws_sdk_ssm::operation::get_parameter::GetParameterOutput::builder()
                        .parameter(Parameter::builder().name("record").value(record.to_string()).build())
                        .build()
                }),
                None => mock!(Ssm::get_parameter).then_error(|| {
                    GetParameterError::generic(ErrorMetadata::builder().code("ParameterNotFound").build())
                }),
            },
            list: mock!(Ssm::get_parameters_by_path).then_output(move || {
                let parameters = claims
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        Parameter::builder()
                            .name(format!("claim-{i}"))
                            .value(c.to_string())
                            .build()
                    })
                    .collect();
                GetParametersByPathOutput::builder()
                    .set_parameters(Some(parameters))
                    .build()
            }),
            put: mock!(Ssm::put_parameter).then_output(|| PutParameterOutput::builder().version(1).build()),
            delete: mock!(Ssm::delete_parameter).then_output(|| DeleteParameterOutput::builder().build()),
        }
    }

    pub(crate) fn empty() -> Self {
        Self::new(None, vec![])
    }

    pub(crate) fn ledger(&self) -> Ledger {
        let ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::MatchAny,
            [&self.get, &self.list, &self.put, &self.delete]
        );
        Ledger::from_client(ssm, "securityhub-enable")
    }
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

pub(crate) fn handler(rules: &[&Rule], ledger: &LedgerMocks) -> SecurityHubEnable {
    SecurityHubEnable::from_clients(
        mock_client!(aws_sdk_securityhub, RuleMode::MatchAny, rules),
        ledger.ledger(),
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
