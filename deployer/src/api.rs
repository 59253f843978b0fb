//! AWS errors as the deployer reports them: the operation, the code and the message kept; which
//! of them are worth another try; what a person should do about those met entering a target.

use std::fmt;

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};

/// A failed AWS call, with its code kept.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub operation: String,
    pub code: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}: {}", self.operation, self.code, self.message)
    }
}

/// Keeps the code and message of an SDK error; one without a code (a bare HTTP 500, a network
/// failure) is named by its HTTP status or its first words rather than the SDK's whole debug dump.
pub fn api_error<E>(operation: &str, err: &SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = match (err.code(), status) {
        (Some(code), _) => code.to_string(),
        (None, Some(status)) => format!("HTTP{status}"),
        (None, None) => "NoResponse".to_string(),
    };
    let message = match err.message() {
        Some(m) => m.to_string(),
        None => {
            let full = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
            full.chars().take(160).collect()
        }
    };
    ApiError {
        operation: operation.to_string(),
        code,
        message,
    }
}

/// How many times a call made while waiting is tried before the target fails.
pub const RETRY_ATTEMPTS: u32 = 6;

/// Throttling and server-side errors, worth another try later.
pub fn is_transient(e: &ApiError) -> bool {
    matches!(
        e.code.as_str(),
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "InternalFailure"
            | "InternalError"
            | "InternalServiceError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "NoResponse"
    ) || e.code.starts_with("HTTP5")
}

/// What a person should do about an error code met while entering a target.
pub fn explain_entry_error(error: &ApiError, role_arn: Option<&str>) -> String {
    let advice = match error.code.as_str() {
        "AccessDenied" | "AccessDeniedException" => match role_arn {
            Some(role) => format!(
                "these credentials cannot assume {role}: the role's trust policy must allow this principal (and the external id, if one is set), and the caller needs sts:AssumeRole on it"
            ),
            None => "the credentials lack permission for this call".to_string(),
        },
        "InvalidClientTokenId" | "UnrecognizedClientException" | "RegionDisabledException" => {
            "the region may not be enabled in this account (opt-in regions are enabled under Account settings), or the credentials are not valid".to_string()
        }
        "ExpiredToken" | "ExpiredTokenException" => "the credentials have expired: refresh them".to_string(),
        _ => return error.to_string(),
    };
    format!("{error} ({advice})")
}
