//! EC2's Query protocol (`ec2Query`): the action and its parameters as a form body, an XML answer; an
//! error is `<Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors>…` (the EC2 API
//! reference, "Error codes for the Amazon EC2 API" and "Query requests for Amazon EC2").

use super::{request, ApiClient, ApiError, Response};
use crate::error::code_for_status;

/// The EC2 API version every action is called at.
pub const EC2_VERSION: &str = "2016-11-15";

impl ApiClient {
    /// `Action=<action>` with `params`, answering the XML body of the answer.
    pub async fn ec2_query(&self, action: &str, params: &[(&str, &str)]) -> Result<String, ApiError> {
        let mut body = format!("Action={}&Version={EC2_VERSION}", encode(action));
        for (name, value) in params {
            body.push_str(&format!("&{}={}", encode(name), encode(value)));
        }
        let request = request(
            self,
            "POST",
            "/",
            "application/x-www-form-urlencoded; charset=utf-8",
            body.into_bytes(),
        );
        let answer = self.send(action, request, error_of).await?;
        Ok(String::from_utf8_lossy(&answer.body).into_owned())
    }
}

/// The code and message of an EC2 error answer.
fn error_of(answer: &Response) -> ApiError {
    let xml = String::from_utf8_lossy(&answer.body);
    let code = element(&xml, "Code").unwrap_or_else(|| code_for_status(answer.status));
    let message = element(&xml, "Message").unwrap_or_else(|| xml.chars().take(300).collect());
    ApiError::new(code, message, Some(answer.status))
}

/// The text of the first `<name>` element of `xml` (EC2's answers are flat where these calls read
/// them), with XML's entities decoded; `<name/>` is empty.
pub fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    if let Some(start) = xml.find(&open).map(|i| i + open.len()) {
        let end = xml[start..].find(&format!("</{name}>"))? + start;
        return Some(unescape(xml[start..end].trim()));
    }
    xml.contains(&format!("<{name}/>")).then(String::new)
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Form encoding as SigV4 canonicalizes it: everything but `A-Za-z0-9-_.~` percent-encoded.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_read_and_decoded() {
        let xml = "<GetEbsDefaultKmsKeyIdResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
            <requestId>1</requestId><kmsKeyId>arn:aws:kms:eu-west-1:1:key/a&amp;b</kmsKeyId>\
            <empty/></GetEbsDefaultKmsKeyIdResponse>";
        assert_eq!(
            element(xml, "kmsKeyId").as_deref(),
            Some("arn:aws:kms:eu-west-1:1:key/a&b")
        );
        assert_eq!(element(xml, "empty").as_deref(), Some(""));
        assert_eq!(element(xml, "missing"), None);
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(
            encode("arn:aws:kms:eu-west-1:1:key/a b"),
            "arn%3Aaws%3Akms%3Aeu-west-1%3A1%3Akey%2Fa%20b"
        );
    }
}
