//! The resource's properties, as TapStack.yml gives them, and the standards they name.

use serde::Deserialize;
use tapguard_shared::props::flex;
use tapguard_shared::{HandlerError, Invocation};

use crate::controls::DisabledControl;

/// The standard AWS publishes as a global ruleset rather than a regional standard.
const CIS_1_2_0: &str = "cis-aws-foundations-benchmark/v/1.2.0";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// Short ids (`aws-foundational-security-best-practices/v/1.0.0`) or standards ARNs.
    pub standards: Vec<String>,
    /// Controls to turn off, each `{StandardsControlArn or ControlId, Reason}`.
    #[serde(default)]
    pub disabled_controls: Vec<DisabledControl>,
    /// How long to wait for every standard to be READY; by default as long as the Lambda timeout allows.
    #[serde(default, deserialize_with = "flex::option_u32")]
    pub wait_seconds: Option<u32>,
    /// Whether the scheduled verify pass re-enables a claimed standard that was disabled and disables
    /// again a claimed control that was enabled, as an Update would (default no).
    #[serde(default, deserialize_with = "flex::bool")]
    pub repair_drift: bool,
    /// The account is a member governed by the delegated administrator's central configuration policy:
    /// only verify that the policy gives the requested standards and controls, never change them (a
    /// refusal by such a policy is taken the same way when this is not set).
    #[serde(default, deserialize_with = "flex::bool")]
    pub centrally_managed: bool,
}

/// One standard, named by its id (the part after `standards/` or `ruleset/`) and its ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Standard {
    pub id: String,
    pub arn: String,
}

/// `arn:<partition>:securityhub:<region>::standards/<id>`, or the global ruleset ARN of CIS v1.2.0.
pub fn standards_arn(partition: &str, region: &str, id: &str) -> String {
    if id == CIS_1_2_0 {
        format!("arn:{partition}:securityhub:::ruleset/{id}")
    } else {
        format!("arn:{partition}:securityhub:{region}::standards/{id}")
    }
}

/// The id of a standards or subscription ARN: what follows `standards/`, `ruleset/` or `subscription/`.
pub fn standard_id(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let (kind, id) = resource.split_once('/')?;
    matches!(kind, "standards" | "ruleset" | "subscription").then_some(id)
}

/// Expands a short id or checks an ARN; the catalog check comes after, against DescribeStandards.
pub(crate) fn expand(inv: &Invocation, index: usize, given: &str) -> Result<Standard, HandlerError> {
    let given = given.trim();
    let invalid = |problem: String| HandlerError::InvalidProperty {
        property: format!("Standards[{index}]"),
        problem,
    };
    if given.starts_with("arn:") {
        let id = standard_id(given)
            .filter(|_| given.contains(":securityhub:"))
            .ok_or_else(|| invalid(format!("{given:?} is not a Security Hub standards ARN")))?;
        return Ok(Standard {
            id: id.to_string(),
            arn: given.to_string(),
        });
    }
    let id = given.trim_start_matches("standards/").trim_start_matches("ruleset/");
    if id.is_empty() || !id.contains("/v/") {
        return Err(invalid(format!(
            "{given:?} is neither a standards ARN nor a short id such as aws-foundational-security-best-practices/v/1.0.0"
        )));
    }
    Ok(Standard {
        id: id.to_string(),
        arn: standards_arn(&inv.partition, &inv.region, id),
    })
}

/// The requested standards, in order, without duplicates; unchecked against the catalog.
pub(crate) fn expand_all(inv: &Invocation, given: &[String]) -> Result<Vec<Standard>, HandlerError> {
    let mut out: Vec<Standard> = Vec::new();
    for (index, g) in given.iter().enumerate() {
        let standard = expand(inv, index, g)?;
        if !out.iter().any(|s| s.id == standard.id) {
            out.push(standard);
        }
    }
    Ok(out)
}
