#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    let config = tapguard_shared::aws_config().await;
    tapguard_shared::run(delegated_admin::DelegatedAdministrator::new(&config)).await
}
