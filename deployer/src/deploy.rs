//! `tapguard deploy`: per target, first the plan (what the target already has, and from it the
//! template's `Existing...` parameters), then a change set shown (resources and where each parameter
//! value comes from) before it is executed, then the stack watched to its end. With
//! `--functions-template`, the functions stack goes first in each target: its zips published to the
//! artifact bucket (artifacts.rs), then deployed the same way.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Stack, Tag};
use aws_sdk_cloudformation::Client as CloudFormation;
use serde_json::{json, Value};

use crate::api::explain_entry_error;
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
    /// Templates over 51,200 bytes, and the functions' zips, go through S3: the bucket
    /// `<prefix>-<account>-<region>`, created (private, encrypted) where it does not exist yet.
    #[arg(long)]
    pub artifact_bucket_prefix: Option<String>,
    #[command(flatten)]
    pub functions: FunctionsArgs,
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

/// The functions stack, deployed in each target before the stack itself.
#[derive(Debug, clap::Args, Clone, Default)]
pub struct FunctionsArgs {
    /// Put the functions stack into each target first: this template is template.yml with its SAM
    /// transform expanded (`scripts/expand-sam.py template.yml target/lambda/functions.json`). Its functions' zips
    /// (`<lambda-dir>/<binary>/bootstrap.zip`) are uploaded to the artifact bucket first (needs
    /// --artifact-bucket-prefix).
    #[arg(long, requires = "artifact_bucket_prefix")]
    pub functions_template: Option<PathBuf>,
    /// The functions stack's name; the stack's FunctionsStackName parameter is set to it.
    #[arg(long, default_value = "tapguard-functions")]
    pub functions_stack_name: String,
    /// Where `make package` put the zips.
    #[arg(long, default_value = "target/lambda")]
    pub lambda_dir: PathBuf,
    /// A parameter of the functions stack, `Key=Value` (repeatable), e.g. AlarmTopicArn.
    #[arg(long = "functions-parameter", value_name = "KEY=VALUE")]
    pub functions_parameters: Vec<String>,
}

/// Parameters from the file (if any), then the command line (which wins).
pub fn parameters(args: &DeployArgs) -> Result<Vec<(String, String)>, String> {
    crate::parameters::given(args.parameters_file.as_deref(), &args.parameters)
}

#[derive(Clone)]
pub struct DeployPlan {
    pub args: DeployArgs,
    /// The stack's name (the functions stack's, for its plan).
    pub stack_name: String,
    pub template_body: String,
    pub parameters: Vec<(String, String)>,
    /// The parameters the template declares.
    pub declared: Vec<crate::parameters::Declared>,
    /// Given with --capabilities, or what the template needs.
    pub capabilities: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub run: String,
    /// Whether the plan reads what the target has (survey.rs) first: not for the functions stack.
    pub survey: bool,
    /// The functions stack to deploy first, with the zips its template names.
    pub functions: Option<Arc<(DeployPlan, crate::artifacts::Package)>>,
}

/// CloudFormation takes at most this many bytes of template inline; larger ones must come from S3.
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;

pub fn prepare(args: &DeployArgs) -> Result<DeployPlan, String> {
    let (template_body, template) = read_template(&args.template, args)?;
    let declared = crate::parameters::declared(&template);
    let mut parameters = parameters(args)?;
    let functions = match &args.functions.functions_template {
        Some(path) => {
            let (body, functions_template) = read_template(path, args)?;
            let package = crate::artifacts::package(&functions_template, &body, &args.functions.lambda_dir)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let functions_declared = crate::parameters::declared(&functions_template);
            let functions_parameters =
                crate::parameters::key_values(&args.functions.functions_parameters, "--functions-parameter")?;
            crate::parameters::check_known(&functions_declared, &functions_parameters)?;
            // The stack imports the functions' ARNs from the stack of this name.
            let name = &args.functions.functions_stack_name;
            if declared.iter().any(|d| d.key == "FunctionsStackName") {
                match parameters.iter().find(|(k, _)| k == "FunctionsStackName") {
                    Some((_, v)) if v != name => {
                        return Err(format!(
                            "FunctionsStackName={v} but the functions stack is {name}: give --functions-stack-name {v}"
                        ))
                    }
                    Some(_) => {}
                    None => parameters.push(("FunctionsStackName".into(), name.clone())),
                }
            }
            let plan = DeployPlan {
                args: args.clone(),
                stack_name: name.clone(),
                capabilities: functions_template
                    .required_capabilities()
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
                template_body: body,
                parameters: functions_parameters,
                declared: functions_declared,
                tags: crate::parameters::key_values(&args.tags, "--tag")?,
                run: String::new(),
                survey: false,
                functions: None,
            };
            Some((plan, package))
        }
        None => None,
    };
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
    let run = run_id();
    Ok(DeployPlan {
        parameters,
        declared,
        capabilities,
        tags: crate::parameters::key_values(&args.tags, "--tag")?,
        template_body,
        stack_name: args.stack_name.clone(),
        survey: true,
        functions: functions.map(|(mut plan, package)| {
            plan.run = run.clone();
            Arc::new((plan, package))
        }),
        run,
        args: args.clone(),
    })
}

/// A template read and parsed; one over 51,200 bytes needs the artifact bucket to go through.
fn read_template(path: &std::path::Path, args: &DeployArgs) -> Result<(String, crate::template::Template), String> {
    let body =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the template {}: {e}", path.display()))?;
    if body.len() > INLINE_TEMPLATE_LIMIT && args.artifact_bucket_prefix.is_none() {
        return Err(format!(
            "{} is {} bytes: CloudFormation accepts at most 51,200 bytes inline; give --artifact-bucket-prefix to upload it to S3",
            path.display(),
            body.len()
        ));
    }
    let template = crate::template::Template::parse(&body).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((body, template))
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
    let found = survey(ctx, &resources, &plan.stack_name).await;
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
    let name = &plan.stack_name;
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
    // A targets file's parameters are the stack's, not the functions stack's.
    if plan.survey {
        for (k, v) in &ctx.target.parameters {
            given.retain(|(g, _)| g != k);
            given.push((k.clone(), v.clone()));
        }
    }
    if let Err(e) = crate::parameters::check_known(&plan.declared, &given) {
        return Err(fail(ctx, format!("the targets file: {e}")));
    }
    let decision = if plan.survey {
        match plan_target(ctx, &cfn, plan, existing.as_ref(), &given).await {
            Ok(d) => d,
            Err(e) => return Err(fail(ctx, format!("cannot plan: {e}"))),
        }
    } else {
        Decision::default()
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
        (Some(prefix), true) => match crate::artifacts::upload_template(ctx, prefix, name, &plan.template_body).await {
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

/// The functions stack first (when given), then the stack: the stack imports the functions' ARNs.
async fn deploy_target(ctx: &Ctx, plan: &DeployPlan) -> Outcome {
    let mut functions = None;
    if let Some(f) = &plan.functions {
        let (functions_plan, package) = &**f;
        let name = &functions_plan.stack_name;
        let outcome = deploy_functions(ctx, functions_plan, package).await;
        let detail = json!({"stack": name, "outcome": outcome.text, "good": outcome.good, "detail": outcome.detail});
        if !outcome.good {
            return Outcome::bad(format!("functions stack {name}: {}", outcome.text))
                .with(json!({"functions": detail}));
        }
        let deployed = outcome.detail["executed"] == json!(true) || outcome.text.starts_with("no changes");
        if !deployed {
            // --no-execute: the stack's change set would import exports that do not exist yet.
            ctx.say(format!(
                "the change set of stack {} follows once the functions stack {name} is deployed",
                plan.stack_name
            ));
            return Outcome::good(format!("functions stack {name}: {}", outcome.text))
                .with(json!({"functions": detail}));
        }
        functions = Some((name.clone(), outcome.text.clone(), detail));
    }
    let mut outcome = deploy_stack(ctx, plan).await;
    if let Some((name, text, detail)) = functions {
        outcome.text = format!("{} (functions stack {name}: {text})", outcome.text);
        if !outcome.detail.is_object() {
            outcome.detail = json!({});
        }
        outcome.detail["functions"] = detail;
    }
    outcome
}

/// The functions' zips put into the target's artifact bucket (only those not there yet), then the
/// functions stack deployed with their S3 keys as its parameters.
async fn deploy_functions(ctx: &Ctx, plan: &DeployPlan, package: &crate::artifacts::Package) -> Outcome {
    let Some(prefix) = plan.args.artifact_bucket_prefix.as_deref() else {
        return fail(ctx, "the functions need --artifact-bucket-prefix".into());
    };
    let account = match crate::artifacts::target_account(ctx).await {
        Ok(a) => a,
        Err(e) => return fail(ctx, format!("cannot publish the functions: {e}")),
    };
    let s3 = crate::artifacts::s3_client(&ctx.config);
    let published = crate::artifacts::publish(ctx, &s3, package, prefix, &account, &ctx.target.region, None).await;
    let parameters = match published {
        Ok((parameters, _)) => parameters,
        Err(e) => return fail(ctx, format!("cannot publish the functions: {e}")),
    };
    let mut plan = plan.clone();
    for (k, v) in parameters {
        plan.parameters.retain(|(g, _)| *g != k);
        plan.parameters.push((k, v));
    }
    ctx.say(format!("functions stack {}:", plan.stack_name));
    deploy_stack(ctx, &plan).await
}

/// One stack: its change set, shown, executed (unless --no-execute or declined), watched to its end.
async fn deploy_stack(ctx: &Ctx, plan: &DeployPlan) -> Outcome {
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
    let name = &plan.stack_name;
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
            functions: FunctionsArgs::default(),
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
