//! Unit tests of the resource's paths, with Security Hub mocked (aws-smithy-mocks) and the ledger's SSM
//! kept in memory by [`FakeSsm`], so that what one call writes the next one reads.

mod claims;
mod controls;
mod resource;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ssm::operation::delete_parameter::{DeleteParameterError, DeleteParameterOutput};
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_sdk_ssm::types::Parameter;
use aws_sdk_ssm::Client as Ssm;
use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use tapguard_shared::Ledger;

/// SSM Parameter Store as the ledger uses it (GetParameter, PutParameter, DeleteParameter,
/// GetParametersByPath without recursion), in memory; `refuse_puts` answers PutParameter with an error.
#[derive(Clone, Default)]
pub(crate) struct FakeSsm {
    pub parameters: Arc<Mutex<BTreeMap<String, String>>>,
    pub refuse_puts: Option<&'static str>,
}

fn not_found() -> ErrorMetadata {
    ErrorMetadata::builder().code("ParameterNotFound").build()
}

impl FakeSsm {
    pub(crate) fn names(&self) -> Vec<String> {
        self.parameters.lock().unwrap().keys().cloned().collect()
    }

    pub(crate) fn rules(&self) -> Vec<Rule> {
        let store = self.parameters.clone();
        let get = mock!(Ssm::get_parameter).then_compute_response(move |req| {
            match store.lock().unwrap().get(req.name().unwrap_or_default()) {
                Some(value) => MockResponse::Output(
                    GetParameterOutput::builder()
                        .parameter(
                            Parameter::builder()
                                .name(req.name().unwrap_or_default())
                                .value(value)
                                .build(),
                        )
                        .build(),
                ),
                None => MockResponse::Error(GetParameterError::generic(not_found())),
            }
        });
        let store = self.parameters.clone();
        let refuse = self.refuse_puts;
        let put = mock!(Ssm::put_parameter).then_compute_response(move |req| match refuse {
            Some(code) => MockResponse::Error(PutParameterError::generic(
                ErrorMetadata::builder().code(code).message("refused").build(),
            )),
            None => {
                store.lock().unwrap().insert(
                    req.name().unwrap_or_default().to_string(),
                    req.value().unwrap_or_default().to_string(),
                );
                MockResponse::Output(PutParameterOutput::builder().version(1).build())
            }
        });
        let store = self.parameters.clone();
        let delete = mock!(Ssm::delete_parameter).then_compute_response(move |req| {
            match store.lock().unwrap().remove(req.name().unwrap_or_default()) {
                Some(_) => MockResponse::Output(DeleteParameterOutput::builder().build()),
                None => MockResponse::Error(DeleteParameterError::generic(not_found())),
            }
        });
        let store = self.parameters.clone();
        let list = mock!(Ssm::get_parameters_by_path).then_compute_response(move |req| {
            let path = format!("{}/", req.path().unwrap_or_default());
            let parameters = store
                .lock()
                .unwrap()
                .iter()
                .filter(|(name, _)| name.starts_with(&path) && !name[path.len()..].contains('/'))
                .map(|(name, value)| Parameter::builder().name(name).value(value).build())
                .collect();
            MockResponse::Output(
                GetParametersByPathOutput::builder()
                    .set_parameters(Some(parameters))
                    .build(),
            )
        });
        vec![get, put, delete, list]
    }

    pub(crate) fn ledger(&self) -> Ledger {
        let rules = self.rules();
        let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &rules);
        Ledger::from_client(ssm, "securityhub-standards")
    }
}
