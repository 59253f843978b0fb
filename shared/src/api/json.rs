//! AWS's JSON protocols: REST-JSON (`restJson1`: Security Hub), a JSON body to an operation's path, and
//! AWS JSON 1.1 (`awsJson1_1`: SSM), a JSON body POSTed to `/` with the operation named in the
//! `X-Amz-Target` header. Both answer JSON; an error names its code in the `x-amzn-errortype` header or
//! the body's `__type` or `code` (the Smithy protocol specifications, "Operation error serialization").

use serde_json::Value;

use super::{request, ApiClient, ApiError, Response};
use crate::error::code_for_status;

impl ApiClient {
    /// `method path` with `body`, answering the JSON AWS returned (`{}` for an empty body).
    pub async fn rest_json(
        &self,
        operation: &str,
        method: &'static str,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let body = serde_json::to_vec(body).expect("a JSON value serializes");
        let request = request(self, method, path, "application/json", body);
        self.json_answer(operation, request).await
    }

    /// `operation` of an AWS JSON 1.1 service whose target prefix is `target` (`AmazonSSM`), answering
    /// the JSON AWS returned.
    pub async fn aws_json(&self, target: &str, operation: &str, body: &Value) -> Result<Value, ApiError> {
        let body = serde_json::to_vec(body).expect("a JSON value serializes");
        let mut request = request(self, "POST", "/", "application/x-amz-json-1.1", body);
        request
            .headers
            .push(("x-amz-target".to_string(), format!("{target}.{operation}")));
        self.json_answer(operation, request).await
    }

    async fn json_answer(&self, operation: &str, request: super::Request) -> Result<Value, ApiError> {
        let answer = self.send(operation, request, error_of).await?;
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&answer.body).map_err(|err| {
            ApiError::new(
                "ResponseError",
                format!("the answer to {operation} is not JSON: {err}"),
                Some(answer.status),
            )
        })
    }
}

/// The code and message of a REST-JSON error answer.
pub(crate) fn error_of(answer: &Response) -> ApiError {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let code = answer
        .header("x-amzn-errortype")
        .map(str::to_string)
        .or_else(|| text("__type"))
        .or_else(|| text("code"))
        .or_else(|| text("Code"))
        .map(|code| sanitize_code(&code))
        .filter(|code| !code.is_empty())
        .unwrap_or_else(|| code_for_status(answer.status));
    let message = text("message")
        .or_else(|| text("Message"))
        .or_else(|| text("errorMessage"))
        .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).chars().take(300).collect());
    ApiError::new(code, message, Some(answer.status))
}

/// `aws.protocoltests.restjson#FooError:http://internal.amazon.com/...` is `FooError`.
fn sanitize_code(code: &str) -> String {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code).trim().to_string()
}
