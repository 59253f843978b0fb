//! The one HTTPS client of a process's AWS SDK clients, with no TLS work at start-up.
//!
//! Without it every SDK client builds a default HTTPS client of its own, and building the client (at
//! `Client::new`) already builds a TLS connector, parsing the system's root certificates into a root
//! store, only to throw it away: the SDK does it to load the roots early. A handler builds three or four
//! clients before its first `GET /next`, so it paid that three or four times at start-up, and once more
//! per client at its first call. Here the clients of one `SdkConfig` share one client (the SDK's own
//! rustls/aws-lc connector with the same settings), whose connector is built on the first request and
//! then reused by every client with the same timeouts.

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;

/// The SDK's default HTTPS client, whose TLS connector is made on first use instead of at `Client::new`.
pub fn client() -> SharedHttpClient {
    // What the SDK's default HTTPS client (aws-smithy-runtime, behavior version latest) builds.
    let inner = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    Deferred(inner).into_shared()
}

#[derive(Debug)]
struct Deferred(SharedHttpClient);

impl HttpClient for Deferred {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    // `validate_base_client_config` keeps its default (nothing): the inner client's would build a
    // connector at every `Client::new`.

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
}
