#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    tapguard_shared::run(ebs_default_encryption::EbsDefaultEncryption::new).await
}
