// The future of the whole function (the runtime, the resource and its verify pass over the ledger's
// Parameter Store client) nests deeper than the default limit of 128 lets rustc compute its layout.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tapguard_shared::init_logging();
    tapguard_shared::run(access_key_rotation::AccessKeyRotation::new).await
}
