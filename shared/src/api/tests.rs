//! The client against recorded AWS answers: signing, retries, error codes.

use std::sync::{Arc, Mutex};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_types::region::Region;
use aws_types::SdkConfig;
use serde_json::json;

use super::*;

const HUB: Service = Service {
    signing_name: "securityhub",
    service_id: "SecurityHub",
    endpoint_prefix: "securityhub",
    gov_fips_is_regional: false,
};

fn config() -> SdkConfig {
    SdkConfig::builder()
        .region(Region::new("eu-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session".into()),
            None,
            "test",
        )))
        .build()
}

/// A transport that answers each request with the next of `answers`, recording what it was sent.
fn recorded(answers: Vec<Result<Response, TransportError>>) -> (Arc<dyn Transport>, Arc<Mutex<Vec<Request>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let answers = Mutex::new(answers.into_iter());
    let log = sent.clone();
    let transport = move |request: &Request| {
        log.lock().unwrap().push(request.clone());
        answers.lock().unwrap().next().expect("an answer for every request")
    };
    (Arc::new(transport), sent)
}

#[tokio::test]
async fn a_call_is_signed_for_its_service_and_region_and_goes_to_the_regional_endpoint() {
    let (transport, sent) = recorded(vec![Ok(Response::new(200, r#"{"Findings":[]}"#))]);
    let client = ApiClient::with_transport(&config(), HUB, transport);
    let answer = client
        .rest_json("GetFindings", "POST", "/findings", &json!({"MaxResults": 100}))
        .await
        .unwrap();
    assert_eq!(answer, json!({"Findings": []}));
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    let request = &sent[0];
    assert_eq!(request.url, "https://securityhub.eu-west-1.amazonaws.com/findings");
    let auth = request.header("authorization").expect("signed");
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            && auth.contains("/eu-west-1/securityhub/aws4_request"),
        "{auth}"
    );
    assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date"), "{auth}");
    assert_eq!(request.header("x-amz-security-token"), Some("session"));
    assert!(
        !format!("{request:?}").contains("wJalrXUtnFEMI"),
        "the secret key is never sent"
    );
}

#[tokio::test]
async fn throttling_is_retried_up_to_the_attempts_then_named() {
    let throttled = || {
        Ok(Response::new(429, r#"{"message":"Rate exceeded"}"#)
            .with_header("x-amzn-ErrorType", "TooManyRequestsException:http://internal"))
    };
    let (transport, sent) = recorded(vec![throttled(), throttled(), throttled()]);
    let client = ApiClient::with_transport(&config(), HUB, transport).without_backoff();
    let err = client
        .rest_json("GetFindings", "POST", "/findings", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "TooManyRequestsException");
    assert_eq!(err.message, "Rate exceeded");
    assert_eq!(sent.lock().unwrap().len(), 3);

    let (transport, sent) = recorded(vec![
        Ok(Response::new(500, r#"{"__type":"InternalException","message":"x"}"#)),
        Err(TransportError::Dispatch("connection reset".into())),
        Ok(Response::new(200, "{}")),
    ]);
    let client = ApiClient::with_transport(&config(), HUB, transport).without_backoff();
    assert_eq!(
        client.rest_json("GetFindings", "POST", "/findings", &json!({})).await,
        Ok(json!({}))
    );
    assert_eq!(sent.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_denied_call_is_not_retried_and_becomes_the_handlers_error_with_advice() {
    let (transport, sent) = recorded(vec![Ok(Response::new(
        403,
        r#"{"__type":"com.amazonaws.securityhub#AccessDeniedException","Message":"not allowed"}"#,
    ))]);
    let client = ApiClient::with_transport(&config(), HUB, transport).without_backoff();
    let err = client
        .rest_json("BatchImportFindings", "POST", "/findings/import", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(sent.lock().unwrap().len(), 1);
    assert_eq!((err.code.as_str(), err.status), ("AccessDeniedException", Some(403)));
    let text = crate::AwsCallError::to_handler_error(&err, "securityhub", "BatchImportFindings").to_string();
    assert!(
        text.starts_with("BatchImportFindings failed: AccessDeniedException: not allowed (the action securityhub:BatchImportFindings was denied"),
        "{text}"
    );
}

#[tokio::test]
async fn an_ec2_query_error_is_read_from_its_xml_and_the_action_is_in_the_form_body() {
    let ec2 = Service {
        signing_name: "ec2",
        service_id: "EC2",
        endpoint_prefix: "ec2",
        gov_fips_is_regional: true,
    };
    let (transport, sent) = recorded(vec![Ok(Response::new(
        400,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code>\
         <Message>You are not authorized to perform this operation.</Message></Error></Errors>\
         <RequestID>r</RequestID></Response>",
    ))]);
    let client = ApiClient::with_transport(&config(), ec2, transport);
    let err = client
        .ec2_query(
            "ModifyEbsDefaultKmsKeyId",
            &[("KmsKeyId", "arn:aws:kms:eu-west-1:1:key/k")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "UnauthorizedOperation");
    assert_eq!(err.message, "You are not authorized to perform this operation.");
    let sent = sent.lock().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sent[0].body),
        "Action=ModifyEbsDefaultKmsKeyId&Version=2016-11-15&KmsKeyId=arn%3Aaws%3Akms%3Aeu-west-1%3A1%3Akey%2Fk"
    );
    assert_eq!(sent[0].url, "https://ec2.eu-west-1.amazonaws.com/");
}

#[tokio::test]
async fn without_a_region_nothing_is_sent() {
    let (transport, sent) = recorded(vec![]);
    let client = ApiClient::with_transport(&SdkConfig::builder().build(), HUB, transport);
    let err = client
        .rest_json("GetFindings", "POST", "/findings", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, "ConstructionFailure");
    assert!(sent.lock().unwrap().is_empty());
}

/// Counts the provider's calls; its credentials expire `expires_in` from now (none: never).
#[derive(Debug)]
struct Counting {
    calls: &'static std::sync::atomic::AtomicUsize,
    expires_in: Option<std::time::Duration>,
}

impl aws_credential_types::provider::ProvideCredentials for Counting {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let expiry = self.expires_in.map(|d| SystemTime::now() + d);
        aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            expiry,
            "counting",
        )))
    }
}

#[tokio::test]
async fn credentials_are_kept_until_five_minutes_before_they_expire() {
    static LASTING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static EXPIRING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for (calls, expires_in, expected) in [
        (&LASTING, Some(std::time::Duration::from_secs(3600)), 1),
        (&EXPIRING, Some(std::time::Duration::from_secs(60)), 2),
    ] {
        let config = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(Counting { calls, expires_in }))
            .build();
        let (transport, sent) = recorded(vec![Ok(Response::new(200, "{}")), Ok(Response::new(200, "{}"))]);
        let client = ApiClient::with_transport(&config, HUB, transport);
        for _ in 0..2 {
            client
                .rest_json("GetFindings", "POST", "/findings", &json!({}))
                .await
                .unwrap();
        }
        assert_eq!(sent.lock().unwrap().len(), 2);
        assert_eq!(
            calls.load(std::sync::atomic::Ordering::SeqCst),
            expected,
            "expires in {expires_in:?}"
        );
    }
}
