//! `tapguard deploy`: per target, first the plan (what the target already has, and from it the
//! template's `Existing...` parameters), then a change set shown (resources and where each parameter
//! value comes from) before it is executed, then the stack watched to its end.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Stack, Tag};
use aws_sdk_cloudformation::Client as CloudFormation;
use serde_json::{json, Value};

use crate::api::{api_error, explain_entry_error};
use crate::parameters::Source;
use crate::prompt::confirm;
use crate::stack_watch::{
    describe_stack, explain_change_set_error, explain_status, fail, is_no_changes, settle, stack_events, stack_status,
};
use crate::survey::{decide, stack_resources, survey, Decision};
use crate::targets::{run_id, run_on_targets, Ctx, Outcome, TargetArgs};

#[derive(Debug, clap::Args, Clone)]
pub struct DeployArgs {
    #[arg(long, default_value = "TapStack")]
    pub stack_name: String,
    #[arg(long, default_value = "TapStack.yml")]
    pub template: PathBuf,
    /// A stack parameter, `Key=Value` (repeatable).
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// A JSON file of parameters: `{"Key": "Value"}` or `[{"ParameterKey": ..., "ParameterValue": ...}]`.
    #[arg(long)]
    pub parameters_file: Option<PathBuf>,
    /// A stack tag, `Key=Value` (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    pub tags: Vec<String>,
    /// Capabilities acknowledged for the change set (default: what the template needs:
    /// CAPABILITY_IAM for IAM resources, CAPABILITY_NAMED_IAM for named ones, CAPABILITY_AUTO_EXPAND
    /// for a transform such as SAM's).
    #[arg(long, value_delimiter = ',')]
    pub capabilities: Vec<String>,
    /// Execute the change set without asking.
    #[arg(long)]
    pub yes: bool,
    /// Create and show the change set only; do not execute it.
    #[arg(long, conflicts_with = "yes")]
    pub no_execute: bool,
    /// Keep what was created or changed when the operation fails, instead of rolling back.
    #[arg(long)]
    pub disable_rollback: bool,
    /// A CloudFormation service role for the stack operation (its ARN), instead of the caller's permissions.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// SNS topics that receive the stack's events, comma-separated ARNs.
    #[arg(long, value_delimiter = ',')]
    pub notification_arns: Vec<String>,
    /// Templates over 51,200 bytes go through S3: the bucket `<prefix>-<account>-<region>`, created
    /// (private, encrypted) where it does not exist yet.
    #[arg(long)]
    pub artifact_bucket_prefix: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Deploy as a service-managed StackSet to organizational units instead of one stack per target.
    #[arg(long, requires = "ous")]
    pub stack_set: bool,
    /// Organizational units (StackSet mode), comma-separated.
    #[arg(long = "ou", value_delimiter = ',')]
    pub ous: Vec<String>,
    /// StackSet mode: how many accounts per region may fail before the operation stops.
    #[arg(long, default_value_t = 0)]
    pub failure_tolerance: i32,
    /// StackSet mode: SELF in the management account, DELEGATED_ADMIN in a delegated administrator
    /// account of the organization. Default: detected (Organizations DescribeOrganization: SELF when
    /// the caller is the management account, DELEGATED_ADMIN otherwise).
    #[arg(long, value_parser = ["SELF", "DELEGATED_ADMIN"])]
    pub call_as: Option<String>,
    /// StackSet mode: how many accounts at once per region.
    #[arg(long, default_value_t = 1)]
    pub max_concurrent: i32,
    /// StackSet mode: the failure tolerance as a percentage of each region's accounts, instead of
    /// --failure-tolerance (CloudFormation rounds it down).
    #[arg(long, conflicts_with = "failure_tolerance", value_parser = clap::value_parser!(i32).range(0..=100))]
    pub failure_tolerance_percentage: Option<i32>,
    /// StackSet mode: how many accounts at once as a percentage of each region's accounts, instead of
    /// --max-concurrent (CloudFormation rounds it down, to at least 1).
    #[arg(long, conflicts_with = "max_concurrent", value_parser = clap::value_parser!(i32).range(1..=100))]
    pub max_concurrent_percentage: Option<i32>,
    /// StackSet mode: SEQUENTIAL (CloudFormation's default: one region after another, in the order of
    /// --regions) or PARALLEL.
    #[arg(long, value_parser = ["SEQUENTIAL", "PARALLEL"])]
    pub region_concurrency: Option<String>,
    /// StackSet mode: STRICT_FAILURE_TOLERANCE (CloudFormation's default: at most the failure
    /// tolerance + 1 accounts at once, lowered as accounts fail) or SOFT_FAILURE_TOLERANCE (always the
    /// maximum concurrency).
    #[arg(long, value_parser = ["STRICT_FAILURE_TOLERANCE", "SOFT_FAILURE_TOLERANCE"])]
    pub concurrency_mode: Option<String>,
    /// StackSet mode, on a later run: delete the stack instances of OUs and regions this run does not
    /// name (DeleteStackInstances, stacks not retained), after confirmation unless --yes. Without it
    /// they are left as they are and listed.
    #[arg(long)]
    pub remove_unlisted: bool,
}

/// Parameters from the file (if any), then the command line (which wins).
pub fn parameters(args: &DeployArgs) -> Result<Vec<(String, String)>, String> {
    crate::parameters::given(args.parameters_file.as_deref(), &args.parameters)
}

pub struct DeployPlan {
    pub args: DeployArgs,
    pub template_body: String,
    pub parameters: Vec<(String, String)>,
    /// The parameters the template declares.
    pub declared: Vec<crate::parameters::Declared>,
    /// Given with --capabilities, or what the template needs.
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub run: String,
}

/// CloudFormation takes at most this many bytes of template inline; larger ones must come from S3.
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;

pub fn prepare(args: &DeployArgs) -> Result<DeployPlan, String> {
    let template_body = std::fs::read_to_string(&args.template)
        .map_err(|e| format!("cannot read the template {}: {e}", args.template.display()))?;
    if template_body.len() > INLINE_TEMPLATE_LIMIT && args.artifact_bucket_prefix.is_none() {
        return Err(format!(
            "{} is {} bytes: CloudFormation accepts at most 51,200 bytes inline; give --artifact-bucket-prefix to upload it to S3",
            args.template.display(),
            template_body.len()
        ));
    }
    let template =
        crate::template::Template::parse(&template_body).map_err(|e| format!("{}: {e}", args.template.display()))?;
    let declared = crate::parameters::declared(&template);
    let parameters = parameters(args)?;
    crate::parameters::check_known(&declared, &parameters)?;
    let capabilities = if args.capabilities.is_empty() {
        template
            .required_capabilities()
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        args.capabilities.clone()
    };
    Ok(DeployPlan {
        parameters,
        declared,
        capabilities,
        tags: crate::parameters::key_values(&args.tags, "--tag")?,
        template_body,
        run: run_id(),
        args: args.clone(),
    })
}

pub fn deploy(args: DeployArgs) -> ExitCode {
    let plan = match prepare(&args) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("tapguard deploy: {e}");
            return ExitCode::from(2);
        }
    };
    run_on_targets("deploy", plan.run.clone(), &args.targets, move |ctx| {
        let plan = plan.clone();
        async move { deploy_target(&ctx, &plan).await }
    })
}

/// The bucket for a target's artifacts: `<prefix>-<account>-<region>`, created private and
/// encrypted where it does not exist yet. Returns its name.
async fn artifact_bucket(ctx: &Ctx, prefix: &str) -> Result<String, String> {
    let sts = aws_sdk_sts::Client::new(&ctx.config);
    let account = match &ctx.target.account {
        Some(a) => a.clone(),
        None => ctx
            .call("GetCallerIdentity", sts.get_caller_identity().send())
            .await
            .map_err(|e| e.to_string())?
            .account()
            .unwrap_or_default()
            .to_string(),
    };
    let region = ctx.target.region.clone();
    let bucket = format!("{prefix}-{account}-{region}");
    let s3 = s3_client(&ctx.config);
    match s3
        .head_bucket()
        .bucket(&bucket)
        .expected_bucket_owner(&account)
        .send()
        .await
    {
        Ok(_) => return Ok(bucket),
        Err(err) if err.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
        Err(err) => {
            let e = api_error("HeadBucket", &err);
            ctx.record(
                "api_error",
                json!({"operation": e.operation, "code": e.code, "message": e.message}),
            );
            return Err(format!("{e} (the bucket {bucket} must be this account's)"));
        }
    }
    let mut create = s3.create_bucket().bucket(&bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    ctx.call("CreateBucket", create.send())
        .await
        .map_err(|e| e.to_string())?;
    ctx.call(
        "PutPublicAccessBlock",
        s3.put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ctx.call(
        "PutBucketEncryption",
        s3.put_bucket_encryption()
            .bucket(&bucket)
            .server_side_encryption_configuration(
                aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                    .rules(
                        aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                                    .build()
                                    .map_err(|e| e.to_string())?,
                            )
                            .build(),
                    )
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    ctx.say(format!(
        "created the artifact bucket {bucket} (public access blocked, encrypted)"
    ));
    ctx.record("artifact_bucket_created", json!({"bucket": bucket}));
    Ok(bucket)
}

/// S3 with path-style addressing when an endpoint is configured (an emulator), virtual-hosted otherwise.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Uploads a template too large to send inline; returns its URL for TemplateURL.
async fn upload_template(ctx: &Ctx, plan: &DeployPlan, prefix: &str) -> Result<String, String> {
    let bucket = artifact_bucket(ctx, prefix).await?;
    let key = format!("tapguard/{}/{}.template", plan.args.stack_name, plan.run);
    let s3 = s3_client(&ctx.config);
    ctx.call(
        "PutObject",
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(aws_sdk_s3::primitives::ByteStream::from(
                plan.template_body.clone().into_bytes(),
            ))
            .send(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let suffix = if ctx.target.region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    let url = format!("https://{bucket}.s3.{}.{suffix}/{key}", ctx.target.region);
    ctx.say(format!(
        "template is {} bytes (over 51,200): uploaded to s3://{bucket}/{key}",
        plan.template_body.len()
    ));
    ctx.record(
        "template_uploaded",
        json!({"bucket": bucket, "key": key, "bytes": plan.template_body.len()}),
    );
    Ok(url)
}

/// A change set computed for a target and shown, not executed yet.
pub struct Prepared {
    pub cfn: CloudFormation,
    pub existing: Option<Stack>,
    pub change_set_type: ChangeSetType,
    pub change_set_name: String,
    pub change_set_id: String,
    pub stack_id: String,
    pub resolved: Vec<crate::parameters::Resolved>,
    pub decision: Decision,
    pub changes: Vec<Value>,
}

impl Prepared {
    /// What `--output json` shows of the target.
    pub fn detail(&self, plan: &DeployPlan, executed: bool, status: &str) -> Value {
        json!({
            "stack_id": self.stack_id,
            "stack_status": status,
            "change_set": {"name": self.change_set_name, "id": self.change_set_id, "type": self.change_set_type.as_str()},
            "changes": self.changes,
            "parameters": self.resolved.iter().map(crate::parameters::Resolved::json).collect::<Vec<_>>(),
            "plan": self.decision.json(),
            "capabilities": plan.capabilities,
            "executed": executed,
        })
    }

    /// The stack status before this change set ("REVIEW_IN_PROGRESS" for a new stack).
    pub fn status_before(&self) -> String {
        self.existing
            .as_ref()
            .map(stack_status)
            .unwrap_or_else(|| "REVIEW_IN_PROGRESS".into())
    }
}

/// The stack's parameters as DescribeStacks gives them.
fn stack_parameters(stack: &Stack) -> Vec<(String, String)> {
    stack
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap_or_default().to_string(),
                p.parameter_value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The plan of a target: what it already has (survey.rs), and from it the `Existing...`
/// parameters. Shown as lines of the target and recorded in the audit log (keys, not values).
pub async fn plan_target(
    ctx: &Ctx,
    cfn: &CloudFormation,
    plan: &DeployPlan,
    existing: Option<&Stack>,
    given: &[(String, String)],
) -> Result<Decision, String> {
    let resources = match existing.and_then(|s| s.stack_id()) {
        Some(id) => stack_resources(ctx, cfn, id).await.map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let found = survey(ctx, &resources).await;
    let declared: Vec<&str> = plan.declared.iter().map(|d| d.key.as_str()).collect();
    // HomeRegion as the change set will have it: given, else the stack's, else the template default.
    let previous = existing.map(stack_parameters).unwrap_or_default();
    let home_region = given
        .iter()
        .chain(previous.iter())
        .find(|(k, _)| k == "HomeRegion")
        .map(|(_, v)| v.clone())
        .or_else(|| {
            plan.declared
                .iter()
                .find(|d| d.key == "HomeRegion")
                .and_then(|d| d.default.clone())
        });
    let decision = decide(&found, &declared, home_region.as_deref(), &ctx.target.region);
    ctx.say("plan:");
    for item in &decision.items {
        ctx.say(format!(
            "  {:<8} {:<26} {}",
            item.action.as_str(),
            item.thing,
            item.detail
        ));
    }
    ctx.record(
        "plan",
        json!({
            "items": decision.items.iter().map(|i| json!({"thing": i.thing, "action": i.action.as_str()})).collect::<Vec<_>>(),
            "parameters_detected": decision.detected.iter().map(|d| d.key).collect::<Vec<_>>(),
        }),
    );
    Ok(decision)
}

/// The first steps of `deploy` (and all of `plan`) in a target: the stack's state, the plan, the
/// parameters (given, then this target's own from the targets file, over what the plan read), and
/// the change set computed and shown. Err: how the target already ends (no changes, or a failure).
pub async fn change_set(ctx: &Ctx, plan: &DeployPlan) -> Result<Prepared, Outcome> {
    let cfn = CloudFormation::new(&ctx.config);
    let name = &plan.args.stack_name;
    let existing = match describe_stack(ctx, &cfn, name).await {
        Ok(s) => s,
        Err(e) => return Err(fail(ctx, explain_entry_error(&e, None))),
    };
    let change_set_type = match &existing {
        None => ChangeSetType::Create,
        Some(stack) => {
            let status = stack_status(stack);
            ctx.set_status(&status);
            if status == "REVIEW_IN_PROGRESS" {
                ChangeSetType::Create
            } else if let Some(why) = explain_status(&status).filter(|_| status != "UPDATE_ROLLBACK_COMPLETE") {
                return Err(fail(ctx, format!("stack {name} is in {status}: {why}")));
            } else {
                ChangeSetType::Update
            }
        }
    };
    let mut given = plan.parameters.clone();
    for (k, v) in &ctx.target.parameters {
        given.retain(|(g, _)| g != k);
        given.push((k.clone(), v.clone()));
    }
    if let Err(e) = crate::parameters::check_known(&plan.declared, &given) {
        return Err(fail(ctx, format!("the targets file: {e}")));
    }
    let decision = match plan_target(ctx, &cfn, plan, existing.as_ref(), &given).await {
        Ok(d) => d,
        Err(e) => return Err(fail(ctx, format!("cannot plan: {e}"))),
    };
    // What the plan read, unless given.
    let mut sent_values = given.clone();
    for d in &decision.detected {
        if !given.iter().any(|(k, _)| k == d.key) {
            sent_values.push((d.key.to_string(), d.value.to_string()));
        }
    }
    let change_set_name = format!("tapguard-{}", plan.run);
    // On an update, every parameter not given keeps its value (UsePreviousValue).
    let previous: Option<Vec<(String, String)>> = existing
        .as_ref()
        .filter(|_| change_set_type == ChangeSetType::Update)
        .map(stack_parameters);
    let (sent, mut resolved) = crate::parameters::resolve(&plan.declared, &sent_values, previous.as_deref());
    for r in resolved.iter_mut() {
        if r.source == Source::Given && !given.iter().any(|(k, _)| *k == r.key) {
            r.source = Source::Detected;
        }
    }
    let no_changes = |reason: &str| {
        ctx.say(format!("no changes: stack {name} is already up to date"));
        ctx.record("change_set_empty", json!({"name": change_set_name, "reason": reason}));
        let status = existing.as_ref().map(stack_status).unwrap_or_default();
        Outcome::good(format!("no changes ({status})")).with(json!({
            "stack_status": status,
            "changes": [],
            "parameters": resolved.iter().map(crate::parameters::Resolved::json).collect::<Vec<_>>(),
            "plan": decision.json(),
            "executed": false,
        }))
    };
    let mut request = cfn
        .create_change_set()
        .stack_name(name)
        .change_set_name(&change_set_name)
        .change_set_type(change_set_type.clone())
        .set_parameters(Some(sent))
        .set_role_arn(plan.args.role_arn.clone())
        .set_notification_arns(Some(plan.args.notification_arns.clone()).filter(|n| !n.is_empty()))
        .description(format!("tapguard deploy, run {}", plan.run));
    request = match (
        &plan.args.artifact_bucket_prefix,
        plan.template_body.len() > INLINE_TEMPLATE_LIMIT,
    ) {
        (Some(prefix), true) => match upload_template(ctx, plan, prefix).await {
            Ok(url) => request.template_url(url),
            Err(e) => return Err(fail(ctx, format!("cannot upload the template: {e}"))),
        },
        _ => request.template_body(&plan.template_body),
    };
    for (k, v) in &plan.tags {
        request = request.tags(Tag::builder().key(k).value(v).build());
    }
    for c in &plan.capabilities {
        request = request.capabilities(Capability::from(c.as_str()));
    }
    let created = match ctx.call("CreateChangeSet", request.send()).await {
        Ok(c) => c,
        // CloudFormation answers an update that changes nothing either way: this refusal here, or a
        // change set that ends FAILED with "didn't contain changes" (below).
        Err(e) if is_no_changes(&e.message) => return Err(no_changes(&e.message)),
        Err(e) => return Err(fail(ctx, explain_change_set_error(&e))),
    };
    let change_set_id = created.id().unwrap_or(&change_set_name).to_string();
    let stack_id = created.stack_id().unwrap_or(name).to_string();
    ctx.record(
        "change_set",
        json!({
            "name": change_set_name,
            "type": change_set_type.as_str(),
            "stack_id": stack_id,
            "capabilities": plan.capabilities,
            "parameters_given": resolved.iter().filter(|r| r.source == Source::Given).map(|r| &r.key).collect::<Vec<_>>(),
            "parameters_detected": resolved.iter().filter(|r| r.source == Source::Detected).map(|r| &r.key).collect::<Vec<_>>(),
            "parameters_kept": resolved.iter().filter(|r| r.source == Source::Previous).map(|r| &r.key).collect::<Vec<_>>(),
            "parameters_changed": resolved.iter().filter(|r| r.changed == Some(true) && matches!(r.source, Source::Given | Source::Detected)).map(|r| &r.key).collect::<Vec<_>>(),
        }),
    );

    // Wait for the change set to be computed.
    let described = loop {
        let out = match ctx
            .call_retrying("DescribeChangeSet", || {
                cfn.describe_change_set()
                    .change_set_name(&change_set_id)
                    .stack_name(&stack_id)
                    .send()
            })
            .await
        {
            Ok(o) => o,
            Err(e) => return Err(fail(ctx, e.to_string())),
        };
        match out.status() {
            Some(ChangeSetStatus::CreateComplete) | Some(ChangeSetStatus::Failed) => break out,
            _ => tokio::time::sleep(ctx.poll).await,
        }
    };
    if described.status() == Some(&ChangeSetStatus::Failed) {
        let reason = described.status_reason().unwrap_or("no reason given").to_string();
        // A change set that cannot be executed is only clutter in the console.
        let _ = ctx
            .call(
                "DeleteChangeSet",
                cfn.delete_change_set()
                    .change_set_name(&change_set_id)
                    .stack_name(&stack_id)
                    .send(),
            )
            .await;
        if is_no_changes(&reason) {
            return Err(no_changes(&reason));
        }
        return Err(fail(ctx, format!("the change set failed: {reason}")));
    }

    ctx.say(format!(
        "change set {change_set_name} ({}) for stack {name}:",
        change_set_type.as_str()
    ));
    if !resolved.is_empty() {
        ctx.say("parameters:");
        for r in &resolved {
            ctx.say(r.line());
        }
    }
    let mut changes = Vec::new();
    for change in described.changes() {
        if let Some(rc) = change.resource_change() {
            let line = format!(
                "  {:<8} {:<28} {:<36}{}",
                rc.action().map(|a| a.as_str()).unwrap_or(""),
                rc.logical_resource_id().unwrap_or(""),
                rc.resource_type().unwrap_or(""),
                match rc.replacement().map(|r| r.as_str()) {
                    Some("True") => "  REPLACEMENT".to_string(),
                    Some("Conditional") => "  replacement: conditional".to_string(),
                    _ => String::new(),
                }
            );
            ctx.say(line.trim_end());
            changes.push(json!({"action": rc.action().map(|a| a.as_str()), "logical_id": rc.logical_resource_id(), "type": rc.resource_type(), "replacement": rc.replacement().map(|r| r.as_str())}));
        }
    }
    ctx.record("change_set_ready", json!({"name": change_set_name, "changes": changes}));
    Ok(Prepared {
        cfn,
        existing,
        change_set_type,
        change_set_name,
        change_set_id,
        stack_id,
        resolved,
        decision,
        changes,
    })
}

async fn deploy_target(ctx: &Ctx, plan: &DeployPlan) -> Outcome {
    let prepared = match change_set(ctx, plan).await {
        Ok(p) => p,
        Err(outcome) => return outcome,
    };
    let Prepared {
        cfn,
        change_set_name,
        change_set_id,
        stack_id,
        ..
    } = &prepared;
    let name = &plan.args.stack_name;
    if plan.args.no_execute {
        ctx.say(format!(
            "change set {change_set_name} is ready; not executed (--no-execute)"
        ));
        return Outcome::good(format!("change set {change_set_name} ready, not executed")).with(prepared.detail(
            plan,
            false,
            &prepared.status_before(),
        ));
    }
    if !plan.args.yes && !confirm(ctx, &format!("execute change set {change_set_name}?")).await {
        return Outcome::bad(format!("change set {change_set_name} created, not executed")).with(prepared.detail(
            plan,
            false,
            &prepared.status_before(),
        ));
    }

    // Events from before this run are history: only what this execution causes is shown.
    let mut seen: HashSet<String> = match stack_events(ctx, cfn, stack_id, &HashSet::new()).await {
        Ok(events) => events.iter().filter_map(|e| e.event_id().map(str::to_string)).collect(),
        Err(e) => return fail(ctx, e.to_string()),
    };
    let mut execute = cfn
        .execute_change_set()
        .change_set_name(change_set_id)
        .stack_name(stack_id);
    if plan.args.disable_rollback {
        execute = execute.disable_rollback(true);
    }
    if let Err(e) = ctx.call("ExecuteChangeSet", execute.send()).await {
        return fail(ctx, explain_change_set_error(&e));
    }
    ctx.say(format!("executing {change_set_name}"));
    let outcome = settle(ctx, cfn, stack_id, &mut seen, name).await;
    let status = ctx
        .last_status
        .lock()
        .expect("status")
        .get(&ctx.label)
        .cloned()
        .unwrap_or_default();
    let detail = prepared.detail(plan, true, &status);
    outcome.with(detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::OutputFormat;

    #[test]
    fn parameters_come_from_the_file_in_either_form_and_the_command_line_wins() {
        let dir = std::env::temp_dir().join(format!("tapguard-params-{}", run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let object = dir.join("object.json");
        std::fs::write(&object, r#"{"EnvironmentSuffix": "prod", "MaxAccessKeyAgeDays": 90}"#).unwrap();
        let list = dir.join("list.json");
        std::fs::write(
            &list,
            r#"[{"ParameterKey": "EnvironmentSuffix", "ParameterValue": "stage"}]"#,
        )
        .unwrap();
        let args = |file: &PathBuf, cli: &[&str]| DeployArgs {
            stack_name: "TapStack".into(),
            template: "TapStack.yml".into(),
            parameters: cli.iter().map(|s| s.to_string()).collect(),
            parameters_file: Some(file.clone()),
            tags: vec![],
            capabilities: vec![],
            yes: true,
            no_execute: false,
            disable_rollback: false,
            role_arn: None,
            notification_arns: vec![],
            artifact_bucket_prefix: None,
            targets: TargetArgs {
                regions: vec![],
                accounts: vec![],
                role_name: None,
                targets_file: None,
                external_id: None,
                role_duration: 3600,
                concurrency: 1,
                audit_log: None,
                poll_interval_ms: 100,
                profile: None,
                output: OutputFormat::Text,
            },
            stack_set: false,
            ous: vec![],
            failure_tolerance: 0,
            call_as: None,
            max_concurrent: 1,
            failure_tolerance_percentage: None,
            max_concurrent_percentage: None,
            region_concurrency: None,
            concurrency_mode: None,
            remove_unlisted: false,
        };
        assert_eq!(
            parameters(&args(&object, &["EnvironmentSuffix=dev"])).unwrap(),
            vec![
                ("EnvironmentSuffix".into(), "dev".into()),
                ("MaxAccessKeyAgeDays".into(), "90".into())
            ]
        );
        assert_eq!(
            parameters(&args(&list, &[])).unwrap(),
            vec![("EnvironmentSuffix".to_string(), "stage".to_string())]
        );
        let err = parameters(&args(&list, &["NoEquals"])).unwrap_err();
        assert!(err.contains("expected KEY=VALUE"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
