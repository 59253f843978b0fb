//! The region's delivery channel: read, put, delete, and its settings as the ledger keeps them.

use aws_sdk_config::types::{
    ConfigSnapshotDeliveryProperties, DeliveryChannel, DeliveryChannelStatus, DeliveryStatus, MaximumExecutionFrequency,
};
use aws_sdk_config::Client;
use serde::{Deserialize, Serialize};
use tapguard_shared::{HandlerError, Invocation};

use crate::advice::{advise, gone_is_fine};
use crate::properties::Desired;
use crate::SERVICE;

/// The name given to a delivery channel this resource creates (Config's own default).
pub const DEFAULT_NAME: &str = "default";
/// Config's delivery frequency when a channel names none.
const DEFAULT_FREQUENCY: &str = "TwentyFour_Hours";

/// What a claimant asks of the channel: where and how often Config delivers. Its name and KMS key are
/// not part of it (an existing channel is adopted with both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelWants {
    pub bucket: String,
    pub key_prefix: Option<String>,
    pub sns_topic_arn: Option<String>,
    pub frequency: String,
}

impl ChannelWants {
    pub fn of(desired: &Desired) -> Self {
        ChannelWants {
            bucket: desired.bucket.clone(),
            key_prefix: desired.key_prefix.clone(),
            sns_topic_arn: desired.sns_topic_arn.clone(),
            frequency: desired.frequency.clone(),
        }
    }

    pub fn is_met_by(&self, current: &DeliveryChannel) -> bool {
        let now = ChannelSettings::of(current);
        now.bucket == self.bucket
            && now.key_prefix == self.key_prefix
            && now.sns_topic_arn == self.sns_topic_arn
            && now.frequency == self.frequency
    }
}

/// The channel before the first claimant changed it: absent, or all of its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPrior {
    pub exists: bool,
    /// `None` when not known (a resource made before the ledger recorded only that it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ChannelSettings>,
}

impl ChannelPrior {
    pub fn observed(channel: Option<&DeliveryChannel>) -> Self {
        ChannelPrior {
            exists: channel.is_some(),
            settings: channel.map(ChannelSettings::of),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSettings {
    pub name: String,
    pub bucket: String,
    pub key_prefix: Option<String>,
    pub sns_topic_arn: Option<String>,
    pub kms_key_arn: Option<String>,
    pub frequency: String,
}

fn blank(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

impl ChannelSettings {
    pub fn of(channel: &DeliveryChannel) -> Self {
        ChannelSettings {
            name: channel.name().unwrap_or(DEFAULT_NAME).to_string(),
            bucket: channel.s3_bucket_name().unwrap_or_default().to_string(),
            key_prefix: blank(channel.s3_key_prefix()),
            sns_topic_arn: blank(channel.sns_topic_arn()),
            kms_key_arn: blank(channel.s3_kms_key_arn()),
            frequency: channel
                .config_snapshot_delivery_properties()
                .and_then(|p| p.delivery_frequency())
                .map_or(DEFAULT_FREQUENCY, |f| f.as_str())
                .to_string(),
        }
    }

    pub fn channel(&self) -> DeliveryChannel {
        build(
            &self.name,
            &self.bucket,
            self.key_prefix.clone(),
            self.sns_topic_arn.clone(),
            self.kms_key_arn.clone(),
            &self.frequency,
        )
    }
}

fn build(
    name: &str,
    bucket: &str,
    prefix: Option<String>,
    topic: Option<String>,
    kms: Option<String>,
    frequency: &str,
) -> DeliveryChannel {
    DeliveryChannel::builder()
        .name(name)
        .s3_bucket_name(bucket)
        .set_s3_key_prefix(prefix)
        .set_sns_topic_arn(topic)
        .set_s3_kms_key_arn(kms)
        .config_snapshot_delivery_properties(
            ConfigSnapshotDeliveryProperties::builder()
                .delivery_frequency(MaximumExecutionFrequency::from(frequency))
                .build(),
        )
        .build()
}

/// The channel this resource asks for, under `name`; an existing channel's KMS key is kept, as this
/// resource does not manage it.
pub fn wanted(name: &str, desired: &Desired, current: Option<&DeliveryChannel>) -> DeliveryChannel {
    build(
        name,
        &desired.bucket,
        desired.key_prefix.clone(),
        desired.sns_topic_arn.clone(),
        current.and_then(|c| blank(c.s3_kms_key_arn())),
        &desired.frequency,
    )
}

/// The region's delivery channel (Config allows one).
pub async fn read(config: &Client, inv: &Invocation) -> Result<Option<DeliveryChannel>, HandlerError> {
    let channels = inv
        .aws(
            SERVICE,
            "DescribeDeliveryChannels",
            config.describe_delivery_channels().send(),
        )
        .await?;
    Ok(channels.delivery_channels().first().cloned())
}

pub async fn put(
    config: &Client,
    inv: &Invocation,
    channel: DeliveryChannel,
    desired: Option<&Desired>,
) -> Result<(), HandlerError> {
    inv.aws(
        SERVICE,
        "PutDeliveryChannel",
        config.put_delivery_channel().delivery_channel(channel).send(),
    )
    .await
    .map_err(|e| advise(e, desired, None))?;
    Ok(())
}

/// Deletes the channel; already gone is fine.
pub async fn delete(config: &Client, inv: &Invocation, name: &str) -> Result<(), HandlerError> {
    gone_is_fine(
        inv.aws(
            SERVICE,
            "DeleteDeliveryChannel",
            config.delete_delivery_channel().delivery_channel_name(name).send(),
        )
        .await
        .map_err(|e| advise(e, None, None)),
    )
}

/// The delivery status of the region's channel (DescribeDeliveryChannelStatus): how Config's last
/// deliveries of configuration history, snapshots and the SNS stream went, the channel's real health.
pub async fn read_status(
    config: &Client,
    inv: &Invocation,
    name: &str,
) -> Result<Option<DeliveryChannelStatus>, HandlerError> {
    let status = inv
        .aws(
            SERVICE,
            "DescribeDeliveryChannelStatus",
            config
                .describe_delivery_channel_status()
                .delivery_channel_names(name)
                .send(),
        )
        .await?;
    Ok(status
        .delivery_channels_status()
        .iter()
        .find(|s| s.name() == Some(name))
        .cloned())
}

/// One delivery that failed: which (history, snapshot, stream), its error, and when it was attempted.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryFailure {
    pub delivery: &'static str,
    pub code: String,
    pub message: String,
    /// Seconds since the epoch of the attempt (the stream's last status change), when Config gives it.
    pub attempted_at: Option<i64>,
}

impl std::fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} delivery Failure: {}", self.delivery, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

fn is_failure(status: Option<&DeliveryStatus>) -> bool {
    status.is_some_and(|s| s.as_str().eq_ignore_ascii_case("failure"))
}

/// The deliveries whose last status is Failure.
pub fn delivery_failures(status: &DeliveryChannelStatus) -> Vec<DeliveryFailure> {
    let mut failures = Vec::new();
    for (delivery, info) in [
        ("configuration history", status.config_history_delivery_info()),
        ("configuration snapshot", status.config_snapshot_delivery_info()),
    ] {
        if let Some(info) = info.filter(|i| is_failure(i.last_status())) {
            failures.push(DeliveryFailure {
                delivery,
                code: info.last_error_code().unwrap_or("an unnamed error").to_string(),
                message: info.last_error_message().unwrap_or_default().to_string(),
                attempted_at: info.last_attempt_time().map(|t| t.secs()),
            });
        }
    }
    if let Some(info) = status
        .config_stream_delivery_info()
        .filter(|i| is_failure(i.last_status()))
    {
        failures.push(DeliveryFailure {
            delivery: "configuration stream",
            code: info.last_error_code().unwrap_or("an unnamed error").to_string(),
            message: info.last_error_message().unwrap_or_default().to_string(),
            attempted_at: info.last_status_change_time().map(|t| t.secs()),
        });
    }
    failures
}

/// The last status of each delivery, e.g. `history Success, snapshot Success, stream Not_Applicable`.
pub fn describe_status(status: &DeliveryChannelStatus) -> String {
    let last = |s: Option<&DeliveryStatus>| s.map_or("none yet", |s| s.as_str()).to_string();
    format!(
        "history {}, snapshot {}, stream {}",
        last(status.config_history_delivery_info().and_then(|i| i.last_status())),
        last(status.config_snapshot_delivery_info().and_then(|i| i.last_status())),
        last(status.config_stream_delivery_info().and_then(|i| i.last_status())),
    )
}
