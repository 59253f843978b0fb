#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    failure_answerer::run().await
}
