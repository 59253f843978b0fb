//! The Parameter Store client against the in-memory store and against SSM's recorded answers.

use std::sync::{Arc, Mutex};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_types::region::Region;

use super::memory::MemoryStore;
use super::*;
use crate::api::{endpoint, Request, Response, TransportError};

fn config(region: &str) -> SdkConfig {
    SdkConfig::builder()
        .region(Region::new(region.to_string()))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        )))
        .build()
}

#[tokio::test]
async fn a_parameter_is_written_read_listed_and_deleted() {
    let store = MemoryStore::new();
    let ssm = store.client();
    assert_eq!(ssm.get("/tapguard/a/one").await.unwrap(), None);
    ssm.put("/tapguard/a/one", "1", Some("what it is")).await.unwrap();
    ssm.put("/tapguard/a/one", "2", None).await.unwrap();
    ssm.put("/tapguard/a/deeper/two", "3", None).await.unwrap();
    assert_eq!(ssm.get("/tapguard/a/one").await.unwrap().as_deref(), Some("2"));
    let listed = ssm.list("/tapguard/a").await.unwrap();
    assert_eq!(listed.len(), 1, "not recursive: {listed:?}");
    assert_eq!(
        (listed[0].name.as_str(), listed[0].value.as_str()),
        ("/tapguard/a/one", "2")
    );
    assert!(listed[0].last_modified.is_some_and(|t| t > 1.6e9));
    assert!(ssm.delete("/tapguard/a/one").await.unwrap());
    assert!(!ssm.delete("/tapguard/a/one").await.unwrap(), "already gone");
    assert_eq!(store.names_under("/tapguard/"), ["/tapguard/a/deeper/two"]);
    assert_eq!((store.calls("PutParameter"), store.calls("DeleteParameter")), (3, 2));
}

#[tokio::test]
async fn every_page_of_a_long_folder_is_read() {
    let store = MemoryStore::new();
    for i in 0..23 {
        store.insert(&format!("/tapguard/claims/x/k{i:02}"), i.to_string());
    }
    let ssm = store.client();
    let first = ssm.list_page("/tapguard/claims/x", Some(10), None).await.unwrap();
    assert_eq!(first.parameters.len(), 10);
    assert!(first.next_token.is_some());
    let all = ssm.list("/tapguard/claims/x").await.unwrap();
    assert_eq!(all.len(), 23);
    assert_eq!(store.calls("GetParametersByPath"), 1 + 3, "three pages of at most ten");
    let err = ssm.list_page("/tapguard/claims/x", Some(50), None).await.unwrap_err();
    assert_eq!(err.code, "ValidationException");
}

#[tokio::test]
async fn failures_keep_their_code_and_throttling_is_retried() {
    let store = MemoryStore::new();
    let ssm = store.client();
    store.fail("PutParameter", "AccessDeniedException");
    let err = ssm.put("/tapguard/x", "v", None).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.status), ("AccessDeniedException", Some(400)));
    assert_eq!(store.calls("PutParameter"), 1, "an access denial is not retried");
    store
        .heal("PutParameter")
        .fail_times("PutParameter", "ThrottlingException", 2);
    ssm.put("/tapguard/x", "v", None).await.unwrap();
    assert_eq!(
        store.calls("PutParameter"),
        1 + 3,
        "two throttled attempts, then the third"
    );
    assert_eq!(store.value("/tapguard/x").as_deref(), Some("v"));
}

/// A transport that answers `answer` once, recording the request.
fn recorded(answer: Response) -> (Arc<dyn Transport>, Arc<Mutex<Vec<Request>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let transport = move |request: &Request| -> Result<Response, TransportError> {
        log.lock().unwrap().push(request.clone());
        Ok(answer.clone())
    };
    (Arc::new(transport), sent)
}

#[tokio::test]
async fn requests_are_aws_json_1_1_to_the_regional_endpoint_and_errors_are_read_as_ssm_writes_them() {
    // SSM's answer to a missing parameter (the SSM API reference, GetParameter, Errors), with the
    // namespace some services put before the code.
    let missing = Response::new(400, r#"{"__type":"com.amazonaws.ssm#ParameterNotFound","message":""}"#);
    let (transport, sent) = recorded(missing);
    let ssm = ParameterStore::with_transport(&config("eu-west-1"), transport);
    assert_eq!(ssm.get("/tapguard/ledger/h/k").await.unwrap(), None);
    let request = sent.lock().unwrap()[0].clone();
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "https://ssm.eu-west-1.amazonaws.com/");
    assert_eq!(request.header("x-amz-target"), Some("AmazonSSM.GetParameter"));
    assert_eq!(request.header("content-type"), Some("application/x-amz-json-1.1"));
    assert!(request
        .header("authorization")
        .is_some_and(|a| a.contains("/eu-west-1/ssm/aws4_request")));
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, json!({"Name": "/tapguard/ledger/h/k"}));

    let denied = Response::new(
        400,
        r#"{"__type":"AccessDeniedException","Message":"User: arn:aws:sts::111122223333:assumed-role/r/f is not authorized to perform: ssm:PutParameter"}"#,
    );
    let (transport, sent) = recorded(denied);
    let ssm = ParameterStore::with_transport(&config("eu-west-1"), transport);
    let err = ssm.put("/tapguard/x", "v", Some("d")).await.unwrap_err();
    assert_eq!(err.code, "AccessDeniedException");
    assert!(err.message.contains("ssm:PutParameter"), "{}", err.message);
    let body: Value = serde_json::from_slice(&sent.lock().unwrap()[0].body).unwrap();
    assert_eq!(
        body,
        json!({"Name": "/tapguard/x", "Value": "v", "Type": "String", "Tier": "Standard",
               "Overwrite": true, "Description": "d"})
    );
}

#[tokio::test]
async fn a_listing_reads_ssms_recorded_answer() {
    let page = Response::new(
        200,
        r#"{"Parameters":[{"ARN":"arn:aws:ssm:us-east-1:111122223333:parameter/tapguard/claims/s/k1",
            "DataType":"text","LastModifiedDate":1.764547200123E9,"Name":"/tapguard/claims/s/k1",
            "Type":"String","Value":"{\"v\":1}","Version":3}]}"#,
    );
    let (transport, sent) = recorded(page);
    let ssm = ParameterStore::with_transport(&config("us-east-1"), transport);
    let listed = ssm.list("/tapguard/claims/s").await.unwrap();
    assert_eq!(
        listed,
        [Parameter {
            name: "/tapguard/claims/s/k1".into(),
            value: r#"{"v":1}"#.into(),
            last_modified: Some(1.764547200123E9),
        }]
    );
    let body: Value = serde_json::from_slice(&sent.lock().unwrap()[0].body).unwrap();
    assert_eq!(body, json!({"Path": "/tapguard/claims/s", "Recursive": false}));
}

/// Cases from the endpoint tests generated into aws-sdk-ssm (its `config/endpoint.rs`).
#[test]
fn ssm_endpoints_are_the_ones_the_sdks_endpoint_rules_give() {
    for (region, fips, dual, url) in [
        ("us-east-1", false, false, "https://ssm.us-east-1.amazonaws.com"),
        ("us-east-1", true, true, "https://ssm-fips.us-east-1.api.aws"),
        (
            "ca-central-1",
            true,
            false,
            "https://ssm-fips.ca-central-1.amazonaws.com",
        ),
        (
            "cn-north-1",
            true,
            false,
            "https://ssm-fips.cn-north-1.amazonaws.com.cn",
        ),
        (
            "cn-north-1",
            false,
            true,
            "https://ssm.cn-north-1.api.amazonwebservices.com.cn",
        ),
        ("us-gov-west-1", true, false, "https://ssm.us-gov-west-1.amazonaws.com"),
        ("us-gov-east-1", true, true, "https://ssm-fips.us-gov-east-1.api.aws"),
        ("us-gov-east-1", false, true, "https://ssm.us-gov-east-1.api.aws"),
        (
            "us-iso-east-1",
            true,
            false,
            "https://ssm-fips.us-iso-east-1.c2s.ic.gov",
        ),
        (
            "us-isob-east-1",
            false,
            false,
            "https://ssm.us-isob-east-1.sc2s.sgov.gov",
        ),
    ] {
        assert_eq!(
            endpoint::regional(&SSM, region, fips, dual),
            url,
            "{region} fips={fips} dual={dual}"
        );
    }
}
