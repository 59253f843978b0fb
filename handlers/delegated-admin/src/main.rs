#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    tapguard_shared::run(delegated_admin::DelegatedAdministrator::new).await
}
