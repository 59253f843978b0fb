//! What carries a signed request: HTTPS in the functions, recorded AWS answers in unit tests.

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::future::BoxFuture;

/// The value of header `name` (HTTP header names are case-insensitive).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A request as it goes on the wire (headers already signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// AWS's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// No answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// Connecting or waiting for the answer took too long.
    Timeout(String),
    /// The request could not be sent (DNS, connection refused, TLS).
    Dispatch(String),
}

pub trait Transport: Send + Sync {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>>;
}

/// Recorded answers, for tests: a function of the request.
impl<F> Transport for F
where
    F: Fn(&Request) -> Result<Response, TransportError> + Send + Sync,
{
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        let answer = self(&request);
        Box::pin(async move { answer })
    }
}

/// HTTPS with reqwest (rustls with *ring*, the system's roots, `HTTPS_PROXY` and `NO_PROXY`). One client
/// for the whole process, built at the first call: the ledger's, the answer book's and a handler's own
/// direct calls share its connection pool (the ledger and the answer book call the same SSM endpoint,
/// so one TLS connection serves both) and the system's roots are read once, as the SDK clients built
/// from one configuration share their HTTP client. Timeouts as the SDK's defaults for this behaviour
/// version: 3.1 s to connect; each attempt is also bounded (the SDK sets none, the runtime's deadline
/// bounds the event).
pub(crate) struct Https;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

impl Https {
    fn client(&self) -> &'static reqwest::Client {
        static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
        CLIENT.get_or_init(|| {
            crate::tls::install_crypto_provider();
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(ATTEMPT_TIMEOUT)
                .build()
                .expect("the HTTPS client builds")
        })
    }
}

impl Transport for Https {
    fn send(&self, request: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|err| TransportError::Dispatch(err.to_string()))?;
            let mut builder = self.client().request(method, &request.url);
            for (name, value) in &request.headers {
                if !name.eq_ignore_ascii_case("host") {
                    builder = builder.header(name, value);
                }
            }
            let failed = |err: reqwest::Error| {
                let text = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
                if err.is_timeout() {
                    TransportError::Timeout(text)
                } else {
                    TransportError::Dispatch(text)
                }
            };
            let answer = builder.body(request.body).send().await.map_err(failed)?;
            let status = answer.status().as_u16();
            let headers = answer
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let body = answer.bytes().await.map_err(failed)?.to_vec();
            Ok(Response { status, headers, body })
        })
    }
}
