//! SSM Parameter Store: the four operations the ledger ([`crate::ledger`]) and the answer book
//! ([`crate::answers`]) call, made without `aws-sdk-ssm` ([`crate::api`]: SigV4, the SDK's endpoint and
//! retries). Every binary keeps its ledger and answers here, so an SDK client of SSM was compiled and
//! linked into each of them for four operations (docs/deploy.md has the figures).
//!
//! The requests and answers are those of the SSM API reference (AWS JSON 1.1, target prefix
//! `AmazonSSM`): `GetParameter`, `PutParameter`, `GetParametersByPath` and `DeleteParameter`, whose
//! missing parameter is the error code `ParameterNotFound`.

#[cfg(any(test, feature = "test-support"))]
pub mod memory;

use std::sync::Arc;

use aws_types::SdkConfig;
use serde_json::{json, Value};

use crate::api::{ApiClient, ApiError, Service, Transport};

/// SSM as the SDKs name it; its GovCloud endpoints are FIPS endpoints already (the endpoint tests
/// generated into aws-sdk-ssm: `ssm.us-gov-west-1.amazonaws.com` with FIPS on).
pub const SSM: Service = Service {
    signing_name: "ssm",
    service_id: "SSM",
    endpoint_prefix: "ssm",
    gov_fips_is_regional: true,
};

/// The JSON 1.1 target prefix of SSM's operations.
const TARGET: &str = "AmazonSSM";

/// The error code of a parameter that does not exist.
pub const NOT_FOUND: &str = "ParameterNotFound";

/// One parameter as GetParametersByPath lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    /// Seconds since the Unix epoch of the last change (`LastModifiedDate`).
    pub last_modified: Option<f64>,
}

/// One page of GetParametersByPath.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub parameters: Vec<Parameter>,
    pub next_token: Option<String>,
}

/// A Parameter Store client in one region.
#[derive(Clone, Debug)]
pub struct ParameterStore {
    client: ApiClient,
}

impl ParameterStore {
    /// The Parameter Store of `config`'s region, over HTTPS.
    pub fn new(config: &SdkConfig) -> Self {
        ParameterStore {
            client: ApiClient::new(config, SSM),
        }
    }

    /// The same, its requests sent through `transport` (recorded answers in tests), with `config`'s
    /// retries and their waits.
    pub fn with_transport(config: &SdkConfig, transport: Arc<dyn Transport>) -> Self {
        ParameterStore {
            client: ApiClient::with_transport(config, SSM, transport),
        }
    }

    /// The value of `name`; `None` when there is no such parameter.
    pub async fn get(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.call("GetParameter", json!({ "Name": name })).await {
            Ok(answer) => Ok(answer["Parameter"]["Value"].as_str().map(str::to_string)),
            Err(err) if err.code == NOT_FOUND => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Writes `name` as a standard-tier String parameter, overwriting it if it exists.
    pub async fn put(&self, name: &str, value: &str, description: Option<&str>) -> Result<(), ApiError> {
        let mut body = json!({
            "Name": name,
            "Value": value,
            "Type": "String",
            "Tier": "Standard",
            "Overwrite": true,
        });
        if let Some(description) = description {
            body["Description"] = json!(description);
        }
        self.call("PutParameter", body).await.map(drop)
    }

    /// One page of the parameters directly under `path` (not recursive).
    pub async fn list_page(
        &self,
        path: &str,
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        let mut body = json!({ "Path": path, "Recursive": false });
        if let Some(max) = max_results {
            body["MaxResults"] = json!(max);
        }
        if let Some(token) = next_token {
            body["NextToken"] = json!(token);
        }
        let answer = self.call("GetParametersByPath", body).await?;
        let parameters = answer["Parameters"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|p| Parameter {
                name: p["Name"].as_str().unwrap_or_default().to_string(),
                value: p["Value"].as_str().unwrap_or_default().to_string(),
                last_modified: p["LastModifiedDate"].as_f64(),
            })
            .collect();
        let next_token = answer["NextToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(Page { parameters, next_token })
    }

    /// Every parameter directly under `path`, every page of them.
    pub async fn list(&self, path: &str) -> Result<Vec<Parameter>, ApiError> {
        let mut parameters = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(path, None, token.as_deref()).await?;
            parameters.extend(page.parameters);
            match page.next_token {
                // A token equal to the one sent would never end: SSM does not do that, but a loop must not hang.
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                _ => return Ok(parameters),
            }
        }
    }

    /// Deletes `name`; `false` when there was no such parameter.
    pub async fn delete(&self, name: &str) -> Result<bool, ApiError> {
        match self.call("DeleteParameter", json!({ "Name": name })).await {
            Ok(_) => Ok(true),
            Err(err) if err.code == NOT_FOUND => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn call(&self, operation: &str, body: Value) -> Result<Value, ApiError> {
        self.client.aws_json(TARGET, operation, &body).await
    }
}

#[cfg(test)]
mod tests;
