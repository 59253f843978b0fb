use super::*;

#[test]
fn function_names_and_the_function_table() {
    assert_eq!(
        function_name("arn:aws:lambda:us-east-1:123456789012:function:tap-Ebs-1A2B:$LATEST"),
        "tap-Ebs-1A2B"
    );
    assert_eq!(function_name("arn:aws-eusc:lambda:eusc-de-east-1:1:function:f"), "f");
    assert_eq!(
        handlers_from("ebs-default-encryption, config-setup,,"),
        vec!["ebs-default-encryption".to_string(), "config-setup".to_string()]
    );
}

#[tokio::test]
async fn a_record_that_is_not_a_cloudformation_event_is_not_answered() {
    let answerer = Answerer {
        ssm: None,
        handlers: vec!["probe".into()],
        responder: Responder::new(),
    };
    let record = json!({"requestContext": {"functionArn": "arn:aws:lambda:us-east-1:1:function:f"},
        "requestPayload": {"source": "aws.events"}, "responsePayload": {"errorMessage": "boom"}});
    let done = answerer.handle(&record, Instant::now()).await;
    assert_eq!(done["Answered"], false);
}
