#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    let config = tapguard_shared::aws_config().await;
    failure_answerer::run(aws_sdk_ssm::Client::new(&config)).await
}
