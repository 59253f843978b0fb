//! One error type for every handler. It keeps the AWS operation, the error code and the message,
//! and carries advice a person can act on: a FAILED reason is built from it.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// An AWS call failed.
    #[error("{operation} failed: {code}: {message} ({advice})")]
    Aws {
        service: String,
        operation: String,
        code: String,
        message: String,
        advice: String,
    },
    /// A resource property is missing, unknown or malformed.
    #[error("invalid property {property}: {problem}")]
    InvalidProperty { property: String, problem: String },
    /// The read-back after the change did not show the state that was asked for.
    #[error("not verified: {0}")]
    NotVerified(String),
    /// Anything else, already phrased for a person.
    #[error("{0}")]
    Failed(String),
}

impl HandlerError {
    /// The AWS error code, when this is a failed AWS call.
    pub fn code(&self) -> Option<&str> {
        match self {
            HandlerError::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Replaces the advice of a failed AWS call with one specific to the resource; other errors are unchanged.
    pub fn with_advice(mut self, new_advice: impl Into<String>) -> Self {
        if let HandlerError::Aws { advice, .. } = &mut self {
            *advice = new_advice.into();
        }
        self
    }

    /// Adds context to the message of a failed AWS call (which standard, which rule); other errors are unchanged.
    pub fn with_context(mut self, context: &str) -> Self {
        if let HandlerError::Aws { message, .. } = &mut self {
            message.push_str(&format!(" ({context})"));
        }
        self
    }

    /// Appends a note (what an undo did, for instance) to any error, keeping operation and code first.
    pub fn with_note(mut self, note: &str) -> Self {
        let text = match &mut self {
            HandlerError::Aws { advice, .. } => advice,
            HandlerError::NotVerified(text) | HandlerError::Failed(text) => text,
            HandlerError::InvalidProperty { problem, .. } => problem,
        };
        text.push_str(&format!("; {note}"));
        self
    }

    /// Turns a failed SDK call into an error that names the operation, the code and what to do.
    pub fn from_sdk<E>(service: &str, operation: &str, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let (code, message) = match err {
            SdkError::ServiceError(service_error) => (
                // A 5xx without a modeled code still says who failed: name it by its HTTP status.
                err.code()
                    .map(str::to_string)
                    .unwrap_or_else(|| code_for_status(service_error.raw().status().as_u16())),
                err.message()
                    .map(str::to_string)
                    .unwrap_or_else(|| DisplayErrorContext(err).to_string()),
            ),
            SdkError::TimeoutError(_) => ("TimeoutError".to_string(), DisplayErrorContext(err).to_string()),
            SdkError::DispatchFailure(_) => ("DispatchFailure".to_string(), DisplayErrorContext(err).to_string()),
            SdkError::ResponseError(_) => ("ResponseError".to_string(), DisplayErrorContext(err).to_string()),
            SdkError::ConstructionFailure(_) => {
                ("ConstructionFailure".to_string(), DisplayErrorContext(err).to_string())
            }
            _ => (
                err.code().unwrap_or("UnknownError").to_string(),
                DisplayErrorContext(err).to_string(),
            ),
        };
        let advice = advice_for(service, operation, &code);
        HandlerError::Aws {
            service: service.to_string(),
            operation: operation.to_string(),
            code,
            message,
            advice,
        }
    }
}

/// A failed call of any AWS client here: an SDK client's [`SdkError`], or a call made without an SDK
/// crate ([`crate::api::ApiError`]).
pub trait AwsCallError {
    /// The error that names `operation`, the code and what to do.
    fn to_handler_error(&self, service: &str, operation: &str) -> HandlerError;
}

impl<E> AwsCallError for SdkError<E, HttpResponse>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn to_handler_error(&self, service: &str, operation: &str) -> HandlerError {
        HandlerError::from_sdk(service, operation, self)
    }
}

impl AwsCallError for crate::api::ApiError {
    fn to_handler_error(&self, service: &str, operation: &str) -> HandlerError {
        HandlerError::Aws {
            service: service.to_string(),
            operation: operation.to_string(),
            code: self.code.clone(),
            message: self.message.clone(),
            advice: advice_for(service, operation, &self.code),
        }
    }
}

/// The code of an AWS answer that names none: `InternalError` for a 5xx, else `HTTP<status>`.
pub(crate) fn code_for_status(status: u16) -> String {
    if status >= 500 {
        "InternalError".to_string()
    } else {
        format!("HTTP{status}")
    }
}

/// True for the codes AWS uses to say a call was not allowed.
pub fn is_access_denied(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "AuthorizationError"
            | "AuthorizationErrorException"
            | "UnauthorizedException"
    )
}

/// True for the codes AWS uses for rate limiting.
pub fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "SlowDown"
    )
}

fn advice_for(service: &str, operation: &str, code: &str) -> String {
    if is_access_denied(code) {
        format!(
            "the action {service}:{operation} was denied: grant it to the function's execution role, \
             or lift the SCP or permission boundary that denies it"
        )
    } else if is_throttling(code) {
        "AWS kept throttling after the SDK's retries with backoff: retry the stack operation later, \
         or raise the service quota"
            .to_string()
    } else if matches!(
        code,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable"
    ) {
        "AWS failed on its side after the SDK's retries: retry the stack operation".to_string()
    } else if matches!(code, "DispatchFailure" | "TimeoutError") {
        format!(
            "the function could not reach the {service} endpoint: check its network path \
             (VPC endpoints or NAT) and that the service is available in this region"
        )
    } else {
        "correct what the message describes, then update or retry the stack".to_string()
    }
}

/// Maps a failed SDK call into a [`HandlerError`] that keeps the operation and the code.
pub trait AwsResultExt<T> {
    fn aws_op(self, service: &str, operation: &str) -> Result<T, HandlerError>;
}

impl<T, E: AwsCallError> AwsResultExt<T> for Result<T, E> {
    fn aws_op(self, service: &str, operation: &str) -> Result<T, HandlerError> {
        self.map_err(|err| err.to_handler_error(service, operation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityError;
    use aws_sdk_sts::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    async fn failing_call(rule: aws_smithy_mocks::Rule) -> HandlerError {
        let client = mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&rule]);
        client
            .get_caller_identity()
            .send()
            .await
            .aws_op("sts", "GetCallerIdentity")
            .unwrap_err()
    }

    fn modeled(code: &'static str, message: &'static str) -> aws_smithy_mocks::Rule {
        mock!(Client::get_caller_identity).then_error(move || {
            GetCallerIdentityError::generic(ErrorMetadata::builder().code(code).message(message).build())
        })
    }

    #[tokio::test]
    async fn access_denied_keeps_operation_code_message_and_names_the_action() {
        let err = failing_call(modeled("AccessDeniedException", "You are not authorized")).await;
        assert_eq!(err.code(), Some("AccessDeniedException"));
        let text = err.to_string();
        assert!(
            text.starts_with("GetCallerIdentity failed: AccessDeniedException: You are not authorized ("),
            "{text}"
        );
        assert!(text.contains("the action sts:GetCallerIdentity was denied"), "{text}");
    }

    #[tokio::test]
    async fn throttling_says_the_sdk_already_retried() {
        let err = failing_call(modeled("ThrottlingException", "Rate exceeded")).await;
        assert!(is_throttling(err.code().unwrap()));
        assert!(
            err.to_string().contains("kept throttling after the SDK's retries"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_5xx_without_a_code_is_named_an_internal_error() {
        // What the SDK makes of a 500 whose body names no code: a service error with empty metadata.
        let raw = HttpResponse::new(StatusCode::try_from(500).unwrap(), SdkBody::from("{}"));
        let err: SdkError<GetCallerIdentityError, HttpResponse> =
            SdkError::service_error(GetCallerIdentityError::generic(ErrorMetadata::builder().build()), raw);
        let err = HandlerError::from_sdk("sts", "GetCallerIdentity", &err);
        assert_eq!(err.code(), Some("InternalError"), "{err:?}");
        assert!(err.to_string().contains("AWS failed on its side"), "{err}");
    }

    #[tokio::test]
    async fn advice_context_and_notes_keep_the_operation_and_code_first() {
        let err = failing_call(modeled("ValidationException", "bad value")).await;
        let text = err
            .with_context("Rules[1]")
            .with_advice("fix Rules[1]")
            .with_note("deleted rule keys")
            .to_string();
        assert_eq!(
            text,
            "GetCallerIdentity failed: ValidationException: bad value (Rules[1]) (fix Rules[1]; deleted rule keys)"
        );
        let other = HandlerError::Failed("no hub".into())
            .with_advice("ignored")
            .with_note("undone");
        assert_eq!(other.to_string(), "no hub; undone");
    }

    #[tokio::test]
    async fn an_unknown_code_keeps_its_message_and_asks_for_a_correction() {
        let err = failing_call(modeled("ValidationException", "bad value")).await;
        let text = err.to_string();
        assert!(
            text.starts_with("GetCallerIdentity failed: ValidationException: bad value"),
            "{text}"
        );
        assert!(text.contains("correct what the message describes"), "{text}");
    }
}
