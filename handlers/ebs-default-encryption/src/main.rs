#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    tapguard_shared::run(|config| ebs_default_encryption::EbsDefaultEncryption::new(config)).await
}
