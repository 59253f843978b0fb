//! The AWS configuration of a function: from the environment Lambda gives it, and from nothing else.
//!
//! `aws_config::defaults(..).load()` resolves every setting through its whole provider chain (profile
//! files, SSO, web identity and assume-role through STS, the ECS and IMDS credential endpoints,
//! `credential_process`), and every binary that calls it links all of that: a share of each of the
//! nine whole-program-optimised links of `make package` (docs/deploy.md). A Lambda function needs none
//! of it: Lambda puts the execution role's credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//! and `AWS_SESSION_TOKEN`, and the region in `AWS_REGION` (the Lambda developer guide, "Defined
//! runtime environment variables"). So the functions read exactly the variables the SDKs define for
//! these settings (the SDKs and Tools reference guide, "Environment variables"):
//!
//! | setting | variables |
//! | --- | --- |
//! | region | `AWS_REGION`, else `AWS_DEFAULT_REGION` |
//! | credentials | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` |
//! | endpoints | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE_ID>`, `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` |
//! | FIPS, dual-stack | `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT` |
//! | retries | `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE` (`standard`, `adaptive`) |
//!
//! Timeouts, stalled-stream protection and the identity cache are the SDK clients' defaults for the
//! latest behaviour version, as with `load_defaults`. The deployer, which runs with a person's
//! credentials (profiles, SSO), loads its configuration with the full chain.

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::tls;

/// The configuration from `var` (the process's environment: [`from_environment`]); the credentials
/// provider reads the process's environment whenever it is asked.
pub fn from_vars(var: impl Fn(&str) -> Option<String> + Clone + Send + Sync + 'static) -> SdkConfig {
    let value = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let flag = |name: &str| value(name).map(|v| v.eq_ignore_ascii_case("true"));
    let ignore_endpoints = flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").unwrap_or(false);
    let mut retry = match value("AWS_RETRY_MODE") {
        Some(mode) if mode.eq_ignore_ascii_case("adaptive") => RetryConfig::adaptive(),
        _ => RetryConfig::standard(),
    };
    if let Some(attempts) = value("AWS_MAX_ATTEMPTS").and_then(|v| v.parse::<u32>().ok()) {
        if attempts > 0 {
            retry = retry.with_max_attempts(attempts);
        }
    }
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(
            value("AWS_REGION")
                .or_else(|| value("AWS_DEFAULT_REGION"))
                .map(Region::new),
        )
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(tls::https_client())
        .retry_config(retry)
        .service_config(EnvEndpoints {
            var: Box::new(var.clone()),
            ignore: ignore_endpoints,
        });
    builder.set_use_fips(flag("AWS_USE_FIPS_ENDPOINT"));
    builder.set_use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"));
    if !ignore_endpoints {
        builder.set_endpoint_url(value("AWS_ENDPOINT_URL"));
    }
    builder.build()
}

/// The configuration from the process's environment.
pub fn from_environment() -> SdkConfig {
    from_vars(|name| std::env::var(name).ok())
}

/// Where the variables are read from: the process's environment, or a test's map.
type Vars = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The service-specific endpoint variables, as the SDK clients look them up when they are built:
/// `AWS_ENDPOINT_URL_` + the serviceId in capitals, spaces as `_` (`AWS_ENDPOINT_URL_CONFIG_SERVICE`).
struct EnvEndpoints {
    var: Box<Vars>,
    ignore: bool,
}

impl std::fmt::Debug for EnvEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvEndpoints").field("ignore", &self.ignore).finish()
    }
}

impl LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if self.ignore && key.env() == "AWS_ENDPOINT_URL" {
            return None;
        }
        let service = key.service_id().to_uppercase().replace([' ', '-'], "_");
        (self.var)(&format!("{}_{service}", key.env()))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> SdkConfig {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        from_vars(move |name| vars.get(name).cloned())
    }

    fn endpoint_of(config: &SdkConfig, service_id: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service_id)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap();
        config
            .service_config()
            .and_then(|c| c.load_config(key))
            .or_else(|| config.endpoint_url().map(str::to_string))
    }

    #[test]
    fn lambdas_variables_give_region_endpoints_fips_and_retries() {
        let c = config(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_CONFIG_SERVICE", "http://127.0.0.1:9999"),
            ("AWS_USE_FIPS_ENDPOINT", "true"),
            ("AWS_MAX_ATTEMPTS", "5"),
        ]);
        assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(
            endpoint_of(&c, "Config Service").as_deref(),
            Some("http://127.0.0.1:9999")
        );
        assert_eq!(endpoint_of(&c, "SSM").as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!((c.use_fips(), c.use_dual_stack()), (Some(true), None));
        assert_eq!(c.retry_config().map(|r| r.max_attempts()), Some(5));
        // The credentials are the process's own AWS_ACCESS_KEY_ID etc.: every integration test's binary
        // reaches the emulator with them.
        assert!(c.credentials_provider().is_some());
        assert!(c.behavior_version().is_some());
    }

    #[test]
    fn ignoring_configured_endpoints_drops_both_kinds_and_the_default_region_is_the_fallback() {
        let c = config(&[
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_EC2", "http://127.0.0.1:9999"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(c.region().map(|r| r.as_ref()), Some("us-east-1"));
        assert_eq!(endpoint_of(&c, "EC2"), None);
        assert_eq!(c.retry_config().map(|r| r.max_attempts()), Some(3));
    }
}
