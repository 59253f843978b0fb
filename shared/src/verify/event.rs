//! Serving a `{"tapguard": "verify"}` event: the pass, its metrics and findings, one log line.

use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;
use tracing::{error, info};

use super::{summary, Publisher, VERIFY_EVENT_KEY, VERIFY_EVENT_VALUE};
use crate::{arn, CustomResource, HandlerError, Invocation};

/// Whether a Lambda event asks for a verify pass.
pub fn is_verify_event(payload: &Value) -> bool {
    payload.get(VERIFY_EVENT_KEY).and_then(Value::as_str) == Some(VERIFY_EVENT_VALUE)
}

/// Runs the resource's verify pass in the function's own account and region and publishes it.
/// The invocation fails (a Lambda error, which its Errors alarm counts) only when the pass could not
/// run at all; drift itself is reported through metrics, findings and the returned summary.
pub(crate) async fn serve<R: CustomResource>(
    resource: &R,
    context: &lambda_runtime::Context,
    hard_deadline: Instant,
) -> Result<Value, lambda_runtime::Error> {
    // arn:<partition>:lambda:<region>:<account>:function:<name>
    let parts: Vec<&str> = context.invoked_function_arn.split(':').collect();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| parts.get(3).copied().unwrap_or_default().to_string());
    let account = parts.get(4).copied().unwrap_or_default();
    let mut inv = Invocation::detached(&region, account);
    if let Some(partition) = parts.get(1).filter(|p| !p.is_empty()) {
        inv.partition = partition.to_string();
    } else {
        inv.partition = arn::partition_for_region(&region).to_string();
    }
    inv.deadline = Some(hard_deadline);
    let started = Instant::now();
    let budget = hard_deadline.saturating_duration_since(Instant::now());
    let outcome = tokio::time::timeout(budget, Box::pin(run(resource, &inv))).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(Ok(summary)) => {
            info!(event_kind = "verify", resource_type = R::RESOURCE_TYPE, outcome = "SUCCESS", duration_ms,
                drifted = summary["drifted"].as_u64().unwrap_or_default(),
                unknown = summary["unknown"].as_u64().unwrap_or_default(),
                repaired = summary["repaired"].as_u64().unwrap_or_default(), summary = %summary, "verify pass done");
            Ok(summary)
        }
        Ok(Err(err)) => {
            error!(event_kind = "verify", resource_type = R::RESOURCE_TYPE, outcome = "FAILED", duration_ms, reason = %err, "verify pass failed");
            Err(err.to_string().into())
        }
        Err(_) => {
            let reason = format!("verify pass timed out while {}", inv.current_step());
            error!(
                event_kind = "verify",
                resource_type = R::RESOURCE_TYPE,
                outcome = "FAILED",
                duration_ms,
                reason,
                "verify pass failed"
            );
            Err(reason.into())
        }
    }
}

async fn run<R: CustomResource>(resource: &R, inv: &Invocation) -> Result<Value, HandlerError> {
    static PUBLISHER: OnceLock<Publisher> = OnceLock::new();
    let reports = Box::pin(resource.verify(inv)).await?;
    let publisher = match PUBLISHER.get() {
        Some(p) => p,
        None => {
            let config = crate::aws_config().await;
            PUBLISHER.get_or_init(|| Publisher::new(&config))
        }
    };
    let handler = reports.first().map(|r| r.handler.clone()).unwrap_or_default();
    let published = publisher.publish(inv, &handler, &reports).await?;
    let mut out = summary(&reports);
    out["metrics"] = published.metrics.into();
    out["findings_imported"] = published.findings_imported.into();
    out["findings_archived"] = published.findings_archived.into();
    if let Some(why) = published.findings_skipped {
        out["findings_skipped"] = why.into();
    }
    Ok(out)
}
