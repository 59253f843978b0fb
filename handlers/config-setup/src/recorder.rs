//! The region's customer managed configuration recorder: read, put, start, stop, delete, and the
//! recorder's settings as the ledger keeps them (what a claimant asks for, what was there before).

use aws_sdk_config::types::{
    ConfigurationRecorder, ConfigurationRecorderStatus, ExclusionByResourceTypes, RecordingFrequency, RecordingGroup,
    RecordingMode, RecordingModeOverride, RecordingStrategy, RecordingStrategyType, ResourceType,
};
use aws_sdk_config::Client;
use serde::{Deserialize, Serialize};
use tapguard_shared::{HandlerError, Invocation};

use crate::advice::{advise, gone_is_fine};
use crate::properties::{Desired, SERVICE_LINKED_PREFIX};
use crate::{retry, SERVICE};

/// What a claimant asks of the recorder: its role and what it records. The recorder's name is not part
/// of it (an existing recorder is adopted under its own name), nor is its recording mode (kept as found).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecorderWants {
    pub role_arn: String,
    pub all_supported: bool,
    pub include_global_resource_types: bool,
    pub resource_types: Vec<String>,
}

impl RecorderWants {
    pub fn of(desired: &Desired) -> Self {
        RecorderWants {
            role_arn: desired.role_arn.clone(),
            all_supported: desired.all_supported,
            include_global_resource_types: desired.include_global_resource_types,
            resource_types: desired.resource_types.clone(),
        }
    }

    pub fn is_met_by(&self, current: &ConfigurationRecorder) -> bool {
        let Some(group) = current.recording_group() else {
            return false;
        };
        let mut types: Vec<&str> = group.resource_types().iter().map(|t| t.as_str()).collect();
        types.sort();
        current.role_arn() == Some(self.role_arn.as_str())
            && group.all_supported() == self.all_supported
            && group.include_global_resource_types() == self.include_global_resource_types
            && (self.all_supported || types == self.resource_types)
    }
}

/// The recorder before the first claimant changed it: absent, or everything needed to put it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecorderPrior {
    pub exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Whether it was recording.
    #[serde(default)]
    pub recording: bool,
    /// Its settings; `None` when not known (a resource made before the ledger kept only the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<RecorderSettings>,
}

impl RecorderPrior {
    pub fn absent() -> Self {
        RecorderPrior {
            exists: false,
            name: None,
            recording: false,
            settings: None,
        }
    }

    pub fn observed(recorder: Option<&ConfigurationRecorder>, recording: bool) -> Self {
        match recorder {
            None => Self::absent(),
            Some(r) => RecorderPrior {
                exists: true,
                name: r.name().map(str::to_string),
                recording,
                settings: Some(RecorderSettings::of(r)),
            },
        }
    }
}

/// A recorder's role, recording group and recording mode, in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecorderSettings {
    pub role_arn: Option<String>,
    pub all_supported: bool,
    pub include_global_resource_types: bool,
    #[serde(default)]
    pub resource_types: Vec<String>,
    #[serde(default)]
    pub excluded_resource_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    pub frequency: String,
    #[serde(default)]
    pub overrides: Vec<ModeOverride>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub resource_types: Vec<String>,
    pub frequency: String,
}

fn sorted(types: &[ResourceType]) -> Vec<String> {
    let mut v: Vec<String> = types.iter().map(|t| t.as_str().to_string()).collect();
    v.sort();
    v
}

impl RecorderSettings {
    pub fn of(recorder: &ConfigurationRecorder) -> Self {
        let group = recorder.recording_group();
        RecorderSettings {
            role_arn: recorder.role_arn().map(str::to_string),
            all_supported: group.is_some_and(|g| g.all_supported()),
            include_global_resource_types: group.is_some_and(|g| g.include_global_resource_types()),
            resource_types: group.map(|g| sorted(g.resource_types())).unwrap_or_default(),
            excluded_resource_types: group
                .and_then(|g| g.exclusion_by_resource_types())
                .map(|e| sorted(e.resource_types()))
                .unwrap_or_default(),
            strategy: group
                .and_then(|g| g.recording_strategy())
                .and_then(|s| s.use_only())
                .map(|u| u.as_str().to_string()),
            mode: recorder.recording_mode().map(|m| Mode {
                frequency: m.recording_frequency().as_str().to_string(),
                overrides: m
                    .recording_mode_overrides()
                    .iter()
                    .map(|o| ModeOverride {
                        description: o.description().map(str::to_string),
                        resource_types: sorted(o.resource_types()),
                        frequency: o.recording_frequency().as_str().to_string(),
                    })
                    .collect(),
            }),
        }
    }

    /// The recorder `name` with exactly these settings, as PutConfigurationRecorder takes it.
    pub fn recorder(&self, name: &str) -> ConfigurationRecorder {
        let types = |v: &[String]| v.iter().map(|t| ResourceType::from(t.as_str())).collect::<Vec<_>>();
        let group = RecordingGroup::builder()
            .all_supported(self.all_supported)
            .include_global_resource_types(self.include_global_resource_types)
            .set_resource_types((!self.resource_types.is_empty()).then(|| types(&self.resource_types)))
            .set_exclusion_by_resource_types((!self.excluded_resource_types.is_empty()).then(|| {
                ExclusionByResourceTypes::builder()
                    .set_resource_types(Some(types(&self.excluded_resource_types)))
                    .build()
            }))
            .set_recording_strategy(self.strategy.as_deref().map(|s| {
                RecordingStrategy::builder()
                    .use_only(RecordingStrategyType::from(s))
                    .build()
            }))
            .build();
        ConfigurationRecorder::builder()
            .name(name)
            .set_role_arn(self.role_arn.clone())
            .recording_group(group)
            .set_recording_mode(self.mode.as_ref().and_then(Mode::sdk))
            .build()
    }

    /// Whether `current` holds these settings (its recording mode compared only when one is known).
    pub fn is_met_by(&self, current: &ConfigurationRecorder) -> bool {
        let now = RecorderSettings::of(current);
        now.role_arn == self.role_arn
            && now.all_supported == self.all_supported
            && now.include_global_resource_types == self.include_global_resource_types
            && (self.all_supported || now.resource_types == self.resource_types)
            && now.excluded_resource_types == self.excluded_resource_types
            && (self.mode.is_none() || now.mode == self.mode)
    }
}

impl Mode {
    fn sdk(&self) -> Option<RecordingMode> {
        let overrides = self
            .overrides
            .iter()
            .filter_map(|o| {
                RecordingModeOverride::builder()
                    .set_description(o.description.clone())
                    .set_resource_types(Some(
                        o.resource_types
                            .iter()
                            .map(|t| ResourceType::from(t.as_str()))
                            .collect(),
                    ))
                    .recording_frequency(RecordingFrequency::from(o.frequency.as_str()))
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        RecordingMode::builder()
            .recording_frequency(RecordingFrequency::from(self.frequency.as_str()))
            .set_recording_mode_overrides((!overrides.is_empty()).then_some(overrides))
            .build()
            .ok()
    }
}

/// The recorder this resource asks for, under `name`; an existing recorder's recording mode is kept, as
/// this resource does not manage it.
pub fn wanted(name: &str, desired: &Desired, current: Option<&ConfigurationRecorder>) -> ConfigurationRecorder {
    let strategy = if desired.all_supported {
        RecordingStrategyType::AllSupportedResourceTypes
    } else {
        RecordingStrategyType::InclusionByResourceTypes
    };
    let group = RecordingGroup::builder()
        .all_supported(desired.all_supported)
        .include_global_resource_types(desired.include_global_resource_types)
        .set_resource_types((!desired.all_supported).then(|| {
            desired
                .resource_types
                .iter()
                .map(|t| ResourceType::from(t.as_str()))
                .collect()
        }))
        .recording_strategy(RecordingStrategy::builder().use_only(strategy).build())
        .build();
    ConfigurationRecorder::builder()
        .name(name)
        .role_arn(&desired.role_arn)
        .recording_group(group)
        .set_recording_mode(current.and_then(|c| c.recording_mode()).cloned())
        .build()
}

/// The names of the service-linked recorders in the region (`ListConfigurationRecorders`, every page):
/// their AWS service owns them; reported, never changed. `DescribeConfigurationRecorders` without names
/// answers only the customer managed recorder, so it cannot find them.
pub async fn list_service_linked(config: &Client, inv: &Invocation) -> Result<Vec<String>, HandlerError> {
    let mut names = Vec::new();
    let mut pages = config.list_configuration_recorders().into_paginator().send();
    inv.step("calling config:ListConfigurationRecorders");
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| inv.aws_failed(SERVICE, "ListConfigurationRecorders", &err))?;
        names.extend(
            page.configuration_recorder_summaries()
                .iter()
                .filter(|s| s.service_principal().is_some())
                .map(|s| s.name().to_string()),
        );
    }
    names.sort();
    Ok(names)
}

/// The region's customer managed recorder (at most one). Should a service-linked one come back too, it
/// is left out: only its service may change it.
pub async fn read(config: &Client, inv: &Invocation) -> Result<Option<ConfigurationRecorder>, HandlerError> {
    let recorders = inv
        .aws(
            SERVICE,
            "DescribeConfigurationRecorders",
            config.describe_configuration_recorders().send(),
        )
        .await?;
    Ok(recorders
        .configuration_recorders()
        .iter()
        .find(|r| r.service_principal().is_none() && !r.name().unwrap_or_default().starts_with(SERVICE_LINKED_PREFIX))
        .cloned())
}

pub async fn read_status(
    config: &Client,
    inv: &Invocation,
    name: &str,
) -> Result<Option<ConfigurationRecorderStatus>, HandlerError> {
    let status = inv
        .aws(
            SERVICE,
            "DescribeConfigurationRecorderStatus",
            config
                .describe_configuration_recorder_status()
                .configuration_recorder_names(name)
                .send(),
        )
        .await?;
    Ok(status
        .configuration_recorders_status()
        .iter()
        .find(|s| s.name() == Some(name))
        .cloned())
}

pub async fn put(
    config: &Client,
    inv: &Invocation,
    recorder: ConfigurationRecorder,
    desired: Option<&Desired>,
) -> Result<(), HandlerError> {
    let once = || {
        inv.aws(
            SERVICE,
            "PutConfigurationRecorder",
            config
                .put_configuration_recorder()
                .configuration_recorder(recorder.clone())
                .send(),
        )
    };
    // The resource's own role may be brand new (IAM is eventually consistent): waited out. A prior role
    // put back on restore is an old one: its refusal is final.
    let result = match desired {
        Some(_) => {
            retry::until_settled(
                inv,
                "the recorder's role to be usable",
                retry::role_not_yet_usable,
                once,
            )
            .await
        }
        None => once().await,
    };
    result.map_err(|e| advise(e, desired, None))?;
    Ok(())
}

pub async fn start(config: &Client, inv: &Invocation, name: &str) -> Result<(), HandlerError> {
    inv.aws(
        SERVICE,
        "StartConfigurationRecorder",
        config
            .start_configuration_recorder()
            .configuration_recorder_name(name)
            .send(),
    )
    .await
    .map_err(|e| advise(e, None, None))?;
    Ok(())
}

/// Stops recording; a recorder already gone is fine.
pub async fn stop(config: &Client, inv: &Invocation, name: &str) -> Result<(), HandlerError> {
    gone_is_fine(
        inv.aws(
            SERVICE,
            "StopConfigurationRecorder",
            config
                .stop_configuration_recorder()
                .configuration_recorder_name(name)
                .send(),
        )
        .await,
    )
}

/// Deletes the recorder; already gone is fine.
pub async fn delete(config: &Client, inv: &Invocation, name: &str) -> Result<(), HandlerError> {
    gone_is_fine(
        inv.aws(
            SERVICE,
            "DeleteConfigurationRecorder",
            config
                .delete_configuration_recorder()
                .configuration_recorder_name(name)
                .send(),
        )
        .await,
    )
}

/// AWS answers "Failure"; the emulator answers upper case. PENDING is normal until the first delivery.
pub fn is_failure(status: &ConfigurationRecorderStatus) -> bool {
    status
        .last_status()
        .is_some_and(|s| s.as_str().eq_ignore_ascii_case("failure"))
}
