//! Where a verify pass shows its outcome: CloudWatch metrics (namespace `tapguard`) that an alarm per
//! function watches, and, when Security Hub CSPM is on, one finding per drifted control (imported with
//! `BatchImportFindings` under the account's `default` product), archived again when the control holds.
//!
//! The metrics are written in CloudWatch's embedded metric format (EMF): one JSON line on stdout per
//! data point, which Lambda sends to the function's log group and CloudWatch turns into metrics. No
//! PutMetricData call, no permission for it, and the drift stays searchable next to the pass's log line.
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>)

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use std::io::Write;
use tracing::{info, warn};

use super::{ResourceReport, Verdict};
use crate::api::{ApiClient, Service};
use crate::ledger::stack_name;
use crate::{HandlerError, Invocation};

pub const NAMESPACE: &str = "tapguard";

/// Security Hub, called without its SDK crate (`crate::api`): the finding shape's (de)serializers for
/// every resource type were about 2 MiB of each handler's zip, for two calls that need a dozen fields.
pub const SECURITY_HUB: Service = Service {
    signing_name: "securityhub",
    service_id: "SecurityHub",
    endpoint_prefix: "securityhub",
    gov_fips_is_regional: false,
};

pub struct Publisher {
    securityhub: ApiClient,
}

/// What was published, for the pass's summary.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Published {
    pub metrics: usize,
    pub findings_imported: usize,
    pub findings_archived: usize,
    /// Why no findings were imported, when Security Hub CSPM could not take them (off, denied).
    pub findings_skipped: Option<String>,
}

impl Publisher {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::from_client(ApiClient::new(config, SECURITY_HUB))
    }

    pub fn from_client(securityhub: ApiClient) -> Self {
        Publisher { securityhub }
    }

    /// Metrics first (they are what the alarm watches), then findings; a Security Hub that is off is
    /// not a failure of the pass.
    pub async fn publish(
        &self,
        inv: &Invocation,
        handler: &str,
        reports: &[ResourceReport],
    ) -> Result<Published, HandlerError> {
        let lines = metric_lines(handler, reports, now_ms());
        let mut out = std::io::stdout().lock();
        for line in &lines {
            let _ = writeln!(out, "{line}");
        }
        drop(out);
        let mut published = Published {
            metrics: lines.len(),
            ..Published::default()
        };
        match self.findings(inv, handler, reports).await {
            Ok((imported, archived)) => {
                published.findings_imported = imported;
                published.findings_archived = archived;
            }
            Err(err) => {
                warn!(error = %err, "drift findings not sent to Security Hub CSPM");
                published.findings_skipped = Some(err.to_string());
            }
        }
        Ok(published)
    }

    async fn findings(
        &self,
        inv: &Invocation,
        handler: &str,
        reports: &[ResourceReport],
    ) -> Result<(usize, usize), HandlerError> {
        let generator = format!("tapguard/{handler}");
        let open = self.open_findings(inv, &generator).await?;
        let now = DateTime::from(std::time::SystemTime::now())
            .fmt(Format::DateTime)
            .unwrap_or_default();
        let mut findings = Vec::new();
        let (mut imported, mut archived) = (0, 0);
        for report in reports {
            for check in &report.checks {
                let id = format!("{generator}/{}/{}", report.key, check.control);
                let drifted = check.verdict == Verdict::Drifted;
                if !(drifted || check.verdict == Verdict::Held && open.contains(&id)) {
                    continue;
                }
                if drifted {
                    imported += 1;
                } else {
                    archived += 1;
                }
                findings.push(finding(inv, &generator, &id, report, check, drifted, &now));
            }
        }
        for chunk in findings.chunks(100) {
            let body = json!({ "Findings": chunk });
            let import = self
                .securityhub
                .rest_json("BatchImportFindings", "POST", "/findings/import", &body);
            let out = inv.aws("securityhub", "BatchImportFindings", import).await?;
            let failed = out["FailedFindings"].as_array().and_then(|f| f.first());
            if let Some(failed) = failed {
                return Err(HandlerError::Failed(format!(
                    "BatchImportFindings refused {} finding(s): {}: {}",
                    out["FailedCount"].as_u64().unwrap_or_default(),
                    failed["ErrorCode"].as_str().unwrap_or_default(),
                    failed["ErrorMessage"].as_str().unwrap_or_default()
                )));
            }
        }
        if imported + archived > 0 {
            info!(imported, archived, "drift findings sent to Security Hub CSPM");
        }
        Ok((imported, archived))
    }

    /// Ids of this generator's findings that are still open (active and failed).
    async fn open_findings(&self, inv: &Invocation, generator: &str) -> Result<Vec<String>, HandlerError> {
        let equals = |value: &str| json!([{ "Value": value, "Comparison": "EQUALS" }]);
        let filters = json!({
            "GeneratorId": equals(generator),
            "RecordState": equals("ACTIVE"),
            "ComplianceStatus": equals("FAILED"),
        });
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({ "Filters": filters, "MaxResults": 100 });
            if let Some(token) = &token {
                body["NextToken"] = json!(token);
            }
            let page = self
                .securityhub
                .rest_json("GetFindings", "POST", "/findings", &body)
                .await
                .map_err(|err| inv.aws_failed("securityhub", "GetFindings", &err))?;
            let findings = page["Findings"].as_array().map(Vec::as_slice).unwrap_or_default();
            ids.extend(findings.iter().filter_map(|f| f["Id"].as_str().map(str::to_string)));
            token = page["NextToken"].as_str().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        inv.step("publishing drift findings");
        Ok(ids)
    }
}

/// The pass's metrics as EMF lines: `ControlDrifted` (0 or 1) per control with its Control, Stack and
/// Resource, and per handler the `ControlsDrifted` and `ControlsUnknown` counts its alarm watches (and
/// `ControlsRepaired` when a repairing pass changed something). An unknown control gets no
/// `ControlDrifted` point: 0 would read as held.
pub fn metric_lines(handler: &str, reports: &[ResourceReport], timestamp_ms: u64) -> Vec<String> {
    let emf = |dimensions: &[&str], metric: &str, fields: serde_json::Value| {
        let mut line = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": [{"Name": metric, "Unit": "Count"}],
                }],
            },
        });
        if let (Some(line), serde_json::Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
        }
        line.to_string()
    };
    let mut lines = Vec::new();
    for report in reports {
        for check in report.checks.iter().filter(|c| c.verdict != Verdict::Unknown) {
            lines.push(emf(
                &["Control", "Stack", "Resource"],
                "ControlDrifted",
                serde_json::json!({
                    "Control": check.control,
                    "Stack": stack_name(&report.stack_id),
                    "Resource": report.logical_id,
                    "ControlDrifted": u8::from(check.verdict == Verdict::Drifted),
                }),
            ));
        }
    }
    let drifted: usize = reports.iter().map(ResourceReport::drifted).sum();
    let unknown = reports
        .iter()
        .flat_map(|r| &r.checks)
        .filter(|c| c.verdict == Verdict::Unknown)
        .count();
    lines.push(emf(
        &["Handler"],
        "ControlsDrifted",
        serde_json::json!({"Handler": handler, "ControlsDrifted": drifted}),
    ));
    lines.push(emf(
        &["Handler"],
        "ControlsUnknown",
        serde_json::json!({"Handler": handler, "ControlsUnknown": unknown}),
    ));
    // Only a repairing pass that changed something writes this one (RepairDrift).
    let repaired = reports.iter().flat_map(|r| &r.repairs).filter(|n| n.repaired).count();
    if repaired > 0 {
        lines.push(emf(
            &["Handler"],
            "ControlsRepaired",
            serde_json::json!({"Handler": handler, "ControlsRepaired": repaired}),
        ));
    }
    lines
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn finding(
    inv: &Invocation,
    generator: &str,
    id: &str,
    report: &ResourceReport,
    check: &super::ControlCheck,
    drifted: bool,
    now: &str,
) -> Value {
    // The account the resource lives in, from its stack (the function's own, on AWS).
    let (_, _, stack_account) = crate::arn::stack_location(&report.stack_id);
    let account = if stack_account.is_empty() {
        inv.account_id.clone()
    } else {
        stack_account
    };
    let product = format!(
        "arn:{}:securityhub:{}:{account}:product/{account}/default",
        inv.partition, inv.region
    );
    let (status, state, label) = if drifted {
        ("FAILED", "ACTIVE", "HIGH")
    } else {
        ("PASSED", "ARCHIVED", "INFORMATIONAL")
    };
    json!({
        "SchemaVersion": "2018-10-08",
        "Id": id,
        "ProductArn": product,
        "GeneratorId": generator,
        "AwsAccountId": account,
        "Types": ["Software and Configuration Checks/AWS Security Best Practices"],
        "CreatedAt": now,
        "UpdatedAt": now,
        "Severity": { "Label": label },
        "Title": format!("tapguard: {} drifted", check.control),
        "Description": format!(
            "{} of {} in stack {} expects {}; observed {}",
            check.control,
            report.logical_id,
            stack_name(&report.stack_id),
            check.expected,
            check.observed
        ),
        "Resources": [{
            "Type": "AwsAccount",
            "Id": format!("AWS::::Account:{account}"),
            "Region": report.region,
        }],
        "Compliance": { "Status": status },
        "RecordState": state,
    })
}
