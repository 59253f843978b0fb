//! The one TLS stack of every binary here: rustls with *ring* as its cryptography, for the AWS SDK
//! clients and for the response PUT alike.
//!
//! The SDK's default HTTPS client (its `default-https-client` feature) is rustls with AWS-LC, whose C
//! build script was one of the largest steps of every clean build and whose code was 0.23 MiB of each
//! handler's zip (measured in `docs/deploy.md`; the zips are still over the 5 MiB goal). *ring* gives the
//! same TLS 1.2/1.3 suites to AWS endpoints. What is given up: AWS-LC's FIPS-validated module
//! (`rustls-aws-lc-fips`), which no part of this project used; FIPS *endpoints* (`AWS_USE_FIPS_ENDPOINT`)
//! are an endpoint choice and work as before.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The HTTPS client for `aws_config::defaults(..).http_client(..)`: built as the SDK builds its own
/// default client (the operation's connect and read timeouts, the runtime's sleep, `HTTPS_PROXY`,
/// `HTTP_PROXY` and `NO_PROXY` from the environment), with *ring* in place of AWS-LC. Its connections
/// trust the system's root certificates, loaded when a client first uses it.
pub fn https_client() -> SharedHttpClient {
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// Makes *ring* the process's rustls provider, which reqwest (the response PUT, the test harness)
/// builds its TLS configuration from; without one it panics. Idempotent.
pub fn install_crypto_provider() {
    // Err only when a provider is installed already: this one, or one the program chose itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both clients complete a TLS handshake against a real HTTPS server, its certificate checked
    /// against the system's roots: the SDK's (an STS call to that server gets an HTTP answer, whatever
    /// its status, not a dispatch failure) and reqwest's. The emulator of every other test is plain
    /// HTTP, so this is the only test of the TLS stack; it reaches the network, so it is run by hand:
    /// `TAPGUARD_TLS_CHECK_URL=https://<any HTTPS host> cargo test --workspace --lib tls -- --ignored`.
    #[tokio::test]
    #[ignore = "reaches the network: set TAPGUARD_TLS_CHECK_URL and run with --ignored"]
    async fn both_clients_complete_a_handshake_checked_against_the_system_roots() {
        let url = std::env::var("TAPGUARD_TLS_CHECK_URL").expect("TAPGUARD_TLS_CHECK_URL=https://...");
        assert!(url.starts_with("https://"), "{url} is not an HTTPS URL");

        let config = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                aws_sdk_sts::config::Credentials::for_tests(),
            ))
            .http_client(https_client())
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let err = aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .expect_err("an HTTPS server that is not STS does not answer GetCallerIdentity");
        let answered = matches!(
            err,
            aws_sdk_sts::error::SdkError::ServiceError(_) | aws_sdk_sts::error::SdkError::ResponseError(_)
        );
        assert!(answered, "the SDK's client got no HTTP answer: {err:?}");

        install_crypto_provider();
        let answer = reqwest::Client::new().get(&url).send().await;
        assert!(answer.is_ok(), "reqwest got no HTTP answer: {answer:?}");
    }
}
