//! The resource's properties, as TapStack.yml gives them.

use std::collections::BTreeMap;

use serde::Deserialize;
use tapguard_shared::props::flex;
use tapguard_shared::HandlerError;

const GENERATORS: [&str; 2] = ["SECURITY_CONTROL", "STANDARD_CONTROL"];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Subscribe FSBP and CIS v1.2.0 when enabling; off because standards are SecurityHubStandards' job.
    #[serde(default, deserialize_with = "flex::bool")]
    pub enable_default_standards: bool,
    /// SECURITY_CONTROL (consolidated findings, the default) or STANDARD_CONTROL.
    #[serde(default)]
    pub control_finding_generator: Option<String>,
    #[serde(default = "default_true", deserialize_with = "flex::bool")]
    pub auto_enable_controls: bool,
    /// Tags for the hub: given to EnableSecurityHub, and set with TagResource on a hub that is on.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Whether the scheduled verify pass sets ControlFindingGenerator and AutoEnableControls back when
    /// they were changed, as an Update would (default no).
    #[serde(default, deserialize_with = "flex::bool")]
    pub repair_drift: bool,
}

fn default_true() -> bool {
    true
}

impl Properties {
    pub(crate) fn generator(&self) -> Result<&str, HandlerError> {
        let value = self
            .control_finding_generator
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .unwrap_or("SECURITY_CONTROL");
        GENERATORS
            .iter()
            .find(|g| **g == value)
            .copied()
            .ok_or_else(|| HandlerError::InvalidProperty {
                property: "ControlFindingGenerator".into(),
                problem: format!("{value:?} is not one of {}", GENERATORS.join(", ")),
            })
    }
}
