//! Where a call without an SDK client goes: the endpoint an SDK client of the same service would use.
//!
//! In the SDKs' order: the service-specific endpoint (`AWS_ENDPOINT_URL_<SERVICE_ID>` or the profile's
//! `services` section, through the configuration's service-config loader), then the global one
//! (`AWS_ENDPOINT_URL`, `endpoint_url`), then the service's regional endpoint in the region's partition,
//! with `AWS_USE_FIPS_ENDPOINT` and `AWS_USE_DUALSTACK_ENDPOINT` as the SDK's endpoint rules apply them
//! (the SDKs and Tools reference guide, "Service-specific endpoints" and "Dual-stack and FIPS endpoints";
//! the DNS suffixes are those of the SDKs' `partitions.json`).

use aws_types::service_config::ServiceConfigKey;
use aws_types::SdkConfig;

use crate::arn::partition_for_region;

/// An AWS service as the SDKs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The name in `arn:` and in SigV4's credential scope (`ec2`, `securityhub`).
    pub signing_name: &'static str,
    /// The SDK's serviceId (`EC2`, `SecurityHub`): `AWS_ENDPOINT_URL_` + it in capitals.
    pub service_id: &'static str,
    /// The first label of the regional endpoint (`ec2` in `ec2.eu-west-1.amazonaws.com`).
    pub endpoint_prefix: &'static str,
    /// The service's GovCloud endpoints are FIPS endpoints already and have no `-fips` name (EC2's
    /// endpoint rules: `ec2.us-gov-west-1.amazonaws.com` with FIPS on).
    pub gov_fips_is_regional: bool,
}

/// The DNS suffix of a partition, and its dual-stack suffix (`partitions.json`).
fn dns_suffixes(partition: &str) -> (&'static str, &'static str) {
    match partition {
        "aws-cn" => ("amazonaws.com.cn", "api.amazonwebservices.com.cn"),
        "aws-iso" => ("c2s.ic.gov", "c2s.ic.gov"),
        "aws-iso-b" => ("sc2s.sgov.gov", "sc2s.sgov.gov"),
        "aws-iso-e" => ("cloud.adc-e.uk", "cloud.adc-e.uk"),
        "aws-iso-f" => ("csp.hci.ic.gov", "csp.hci.ic.gov"),
        "aws-eusc" => ("amazonaws.eu", "amazonaws.eu"),
        // aws and aws-us-gov
        _ => ("amazonaws.com", "api.aws"),
    }
}

/// The regional endpoint of `service` in `region`.
pub fn regional(service: &Service, region: &str, fips: bool, dual_stack: bool) -> String {
    let partition = partition_for_region(region);
    let (dns, dual) = dns_suffixes(partition);
    let suffix = if dual_stack { dual } else { dns };
    let fips_name = fips && !(service.gov_fips_is_regional && partition == "aws-us-gov" && !dual_stack);
    let prefix = service.endpoint_prefix;
    if fips_name {
        format!("https://{prefix}-fips.{region}.{suffix}")
    } else {
        format!("https://{prefix}.{region}.{suffix}")
    }
}

/// The endpoint an SDK client of `service` built from `config` would call, without a trailing `/`.
pub fn resolve(config: &SdkConfig, service: &Service, region: &str) -> String {
    let configured = if config.get_origin("endpoint_url").is_client_config() {
        config.endpoint_url().map(str::to_string)
    } else {
        config
            .service_config()
            .and_then(|loader| {
                let key = ServiceConfigKey::builder()
                    .service_id(service.service_id)
                    .env("AWS_ENDPOINT_URL")
                    .profile("endpoint_url")
                    .build()
                    .expect("every field is set");
                loader.load_config(key)
            })
            .or_else(|| config.endpoint_url().map(str::to_string))
    };
    let url = configured.unwrap_or_else(|| {
        regional(
            service,
            region,
            config.use_fips().unwrap_or(false),
            config.use_dual_stack().unwrap_or(false),
        )
    });
    url.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC2: Service = Service {
        signing_name: "ec2",
        service_id: "EC2",
        endpoint_prefix: "ec2",
        gov_fips_is_regional: true,
    };

    /// Cases from the endpoint tests generated into aws-sdk-ec2 (its `config/endpoint.rs`).
    #[test]
    fn regional_endpoints_are_the_ones_the_sdks_endpoint_rules_give() {
        for (region, fips, dual, url) in [
            ("eu-west-1", false, false, "https://ec2.eu-west-1.amazonaws.com"),
            ("eu-west-1", false, true, "https://ec2.eu-west-1.api.aws"),
            ("us-east-1", true, false, "https://ec2-fips.us-east-1.amazonaws.com"),
            ("us-east-1", true, true, "https://ec2-fips.us-east-1.api.aws"),
            ("cn-north-1", false, false, "https://ec2.cn-north-1.amazonaws.com.cn"),
            (
                "cn-north-1",
                true,
                true,
                "https://ec2-fips.cn-north-1.api.amazonwebservices.com.cn",
            ),
            (
                "cn-north-1",
                false,
                true,
                "https://ec2.cn-north-1.api.amazonwebservices.com.cn",
            ),
            ("us-gov-east-1", false, false, "https://ec2.us-gov-east-1.amazonaws.com"),
            ("us-gov-east-1", true, false, "https://ec2.us-gov-east-1.amazonaws.com"),
            ("us-gov-east-1", true, true, "https://ec2-fips.us-gov-east-1.api.aws"),
            (
                "us-iso-east-1",
                true,
                false,
                "https://ec2-fips.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "us-isob-east-1",
                true,
                false,
                "https://ec2-fips.us-isob-east-1.sc2s.sgov.gov",
            ),
        ] {
            assert_eq!(
                regional(&EC2, region, fips, dual),
                url,
                "{region} fips={fips} dual={dual}"
            );
        }
        let hub = Service {
            signing_name: "securityhub",
            service_id: "SecurityHub",
            endpoint_prefix: "securityhub",
            gov_fips_is_regional: false,
        };
        assert_eq!(
            regional(&hub, "us-gov-west-1", true, false),
            "https://securityhub-fips.us-gov-west-1.amazonaws.com"
        );
    }

    #[test]
    fn a_client_configured_endpoint_comes_first_then_the_region() {
        let config = SdkConfig::builder().endpoint_url("http://127.0.0.1:5000/").build();
        assert_eq!(resolve(&config, &EC2, "eu-west-1"), "http://127.0.0.1:5000");
        let config = SdkConfig::builder().use_fips(true).build();
        assert_eq!(
            resolve(&config, &EC2, "us-west-2"),
            "https://ec2-fips.us-west-2.amazonaws.com"
        );
    }
}
