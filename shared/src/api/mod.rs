//! SigV4-signed calls to the few AWS operations that do not justify an SDK crate in every binary.
//!
//! An `aws-sdk-*` crate compiles every operation and shape of its service, and every binary that
//! reaches one of its operations links that operation's serializers and deserializers. Three cases were
//! out of all proportion (docs/deploy.md has the figures): the verify pass's two Security Hub calls,
//! whose `AwsSecurityFinding` shape brings the (de)serializers of hundreds of resource types into every
//! handler; the EBS handler's six EC2 calls, for which `aws-sdk-ec2`, the largest SDK crate, was a
//! quarter of a clean package build; and the four Parameter Store calls of every binary's ledger and
//! answer book ([`crate::ssm`]), for which `aws-sdk-ssm` and SDK client code were in every link. Those
//! calls are made here: the request signed with the SDK's own
//! signer (`aws-sigv4`) and the configuration's credentials, sent to the endpoint an SDK client would
//! use ([`endpoint`]), retried as the SDK's standard retry strategy retries (throttling, 5xx, transient
//! network errors; `AWS_MAX_ATTEMPTS`, default 3, with full-jitter exponential backoff), and failures
//! turned into the same [`crate::HandlerError`] with operation, code and advice.
//!
//! [`json`] speaks the REST-JSON (Security Hub) and AWS JSON 1.1 (SSM) protocols, [`query`] EC2's
//! Query protocol.

pub mod endpoint;
pub mod json;
pub mod query;
mod transport;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::SdkConfig;
use rand::Rng;
use tracing::debug;

pub use endpoint::Service;
pub use transport::{Request, Response, Transport, TransportError};

/// A failed call: the AWS error code (or what failed before AWS could answer) and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// The HTTP status of AWS's answer; none when there was no answer.
    pub status: Option<u16>,
}

impl ApiError {
    fn new(code: impl Into<String>, message: impl Into<String>, status: Option<u16>) -> Self {
        ApiError {
            code: code.into(),
            message: message.into(),
            status,
        }
    }

    /// What the SDK's standard retry strategy retries: throttling, transient codes and 5xx answers, and
    /// the network failing before an answer.
    fn is_retryable(&self) -> bool {
        crate::is_throttling(&self.code)
            || matches!(
                self.code.as_str(),
                "DispatchFailure"
                    | "TimeoutError"
                    | "RequestTimeout"
                    | "RequestTimeoutException"
                    | "PriorRequestNotComplete"
                    | "TransientError"
            )
            || self.status.is_some_and(|s| matches!(s, 500 | 502 | 503 | 504))
    }
}

/// A client for one service in one region.
#[derive(Clone)]
pub struct ApiClient {
    service: Service,
    region: String,
    endpoint: String,
    credentials: Option<SharedCredentialsProvider>,
    /// The last credentials, kept until five minutes before they expire (as the SDK's identity cache
    /// keeps them): a provider that assumes a role would otherwise call STS for every request.
    cached: Arc<tokio::sync::Mutex<Option<Credentials>>>,
    transport: Arc<dyn Transport>,
    max_attempts: u32,
    base_backoff: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("service", &self.service.signing_name)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client of `service` with `config`'s region, credentials, endpoint settings and retry attempts,
    /// over HTTPS (rustls with *ring*, proxies from the environment, as the SDK clients).
    pub fn new(config: &SdkConfig, service: Service) -> Self {
        Self::with_transport(config, service, Arc::new(transport::Https))
    }

    /// The same, sending its requests through `transport` (the tests' recorded AWS answers).
    pub fn with_transport(config: &SdkConfig, service: Service, transport: Arc<dyn Transport>) -> Self {
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let endpoint = endpoint::resolve(config, &service, &region);
        ApiClient {
            service,
            region,
            endpoint,
            credentials: config.credentials_provider(),
            cached: Arc::default(),
            transport,
            max_attempts: config.retry_config().map_or(3, |r| r.max_attempts()).max(1),
            base_backoff: config
                .retry_config()
                .map_or(Duration::from_secs(1), |r| r.initial_backoff()),
        }
    }

    /// No waits between attempts (tests).
    pub fn without_backoff(mut self) -> Self {
        self.base_backoff = Duration::ZERO;
        self
    }

    /// Signs and sends one request (`path_and_query` after the endpoint), retrying what the SDK would
    /// retry. `error_of` reads the protocol's error out of an answer that is not a success.
    pub(crate) async fn send(
        &self,
        operation: &str,
        mut request: Request,
        error_of: fn(&Response) -> ApiError,
    ) -> Result<Response, ApiError> {
        if self.region.is_empty() {
            return Err(ApiError::new(
                "ConstructionFailure",
                "no region: set AWS_REGION (Lambda sets it for every function)",
                None,
            ));
        }
        request.url = format!("{}{}", self.endpoint, request.url);
        let mut attempt = 1;
        loop {
            let signed = self.signed(&request).await?;
            let err = match self.transport.send(signed).await {
                Ok(response) if (200..300).contains(&response.status) => return Ok(response),
                Ok(response) => error_of(&response),
                Err(TransportError::Timeout(message)) => ApiError::new("TimeoutError", message, None),
                Err(TransportError::Dispatch(message)) => ApiError::new("DispatchFailure", message, None),
            };
            if attempt >= self.max_attempts || !err.is_retryable() {
                return Err(err);
            }
            // The standard strategy's full jitter: a random wait up to base × 2^(attempt-1), at most 20 s.
            let ceiling = self
                .base_backoff
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_secs(20));
            let wait = ceiling.mul_f64(rand::rng().random_range(0.0..=1.0));
            debug!(
                service = self.service.signing_name,
                operation,
                code = %err.code,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// `request` with SigV4's headers added (the secret key never leaves the signer).
    async fn signed(&self, request: &Request) -> Result<Request, ApiError> {
        let provider = self.credentials.as_ref().ok_or_else(|| {
            ApiError::new(
                "ConstructionFailure",
                "no credentials provider in the configuration",
                None,
            )
        })?;
        let mut cached = self.cached.lock().await;
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|at| at > SystemTime::now() + Duration::from_secs(300))
        };
        let credentials = match cached.as_ref().filter(|c| fresh(c)) {
            Some(credentials) => credentials.clone(),
            None => {
                let credentials = provider.provide_credentials().await.map_err(|err| {
                    ApiError::new(
                        "CredentialsNotLoaded",
                        aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
                        None,
                    )
                })?;
                *cached = Some(credentials.clone());
                credentials
            }
        };
        drop(cached);
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|err| ApiError::new("ConstructionFailure", err.to_string(), None))?
            .into();
        let signable = SignableRequest::new(
            request.method,
            request.url.as_str(),
            request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&request.body),
        )
        .and_then(|signable| sign(signable, &params))
        .map_err(|err| ApiError::new("ConstructionFailure", err.to_string(), None))?;
        let (instructions, _signature) = signable.into_parts();
        let (headers, _) = instructions.into_parts();
        let mut signed = request.clone();
        signed
            .headers
            .extend(headers.iter().map(|h| (h.name().to_string(), h.value().to_string())));
        Ok(signed)
    }
}

/// The host of a URL, for the `host` header SigV4 signs.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// A request to `path_and_query` of the client's endpoint (made absolute by [`ApiClient::send`]).
pub(crate) fn request(
    client: &ApiClient,
    method: &'static str,
    path_and_query: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Request {
    Request {
        method,
        url: path_and_query.to_string(),
        headers: vec![
            ("host".to_string(), host_of(&client.endpoint).to_string()),
            ("content-type".to_string(), content_type.to_string()),
        ],
        body,
    }
}

#[cfg(test)]
mod tests;
