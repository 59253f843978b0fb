//! `deploy --stack-set`: the same template as a service-managed StackSet, deployed by CloudFormation
//! to every account of the given organizational units in the given regions; and `status` and
//! `delete` of it. This runs in the organization's management (or delegated administrator) account,
//! in its home region; which of the two is found out (`call_as`) unless --call-as says.

use std::process::ExitCode;
use std::sync::Arc;

use aws_sdk_cloudformation::types::{
    AutoDeployment, CallAs, Capability, ConcurrencyMode, DeploymentTargets, Parameter, PermissionModels,
    RegionConcurrencyType, StackInstanceSummary, StackSetOperationPreferences, StackSetOperationStatus, Tag,
};

use crate::api::ApiError;
use aws_sdk_cloudformation::Client as CloudFormation;
use serde_json::json;

use crate::delete::DeleteArgs;
use crate::deploy::{prepare, DeployArgs, DeployPlan};
use crate::stackset_plan::{additions, distinct, preview, unlisted, InstancePlan};
use crate::status::StatusArgs;
use crate::targets::{run_id, run_on_targets, Ctx, Outcome, TargetArgs};

/// The targets frame of StackSet mode: one caller, the administrator account in its own region;
/// --regions say where instances are, not where the caller runs.
fn administrator(targets: &TargetArgs) -> TargetArgs {
    TargetArgs {
        regions: Vec::new(),
        accounts: Vec::new(),
        role_name: None,
        targets_file: None,
        external_id: None,
        ..targets.clone()
    }
}

/// CloudFormation's `CallAs` for this caller: as given, or found out. Organizations'
/// DescribeOrganization names the management account: the caller is SELF there and must be a
/// delegated administrator (DELEGATED_ADMIN) anywhere else. When the organization cannot be read,
/// SELF, and the line says how to override it.
pub async fn call_as(ctx: &Ctx, given: Option<&str>) -> CallAs {
    if let Some(given) = given {
        return CallAs::from(given);
    }
    let sts = aws_sdk_sts::Client::new(&ctx.config);
    let organizations = aws_sdk_organizations::Client::new(&ctx.config);
    let caller = ctx
        .call("GetCallerIdentity", sts.get_caller_identity().send())
        .await
        .ok()
        .and_then(|c| c.account().map(str::to_string));
    let organization = ctx
        .call("DescribeOrganization", organizations.describe_organization().send())
        .await;
    let (call_as, why) = match (caller, organization) {
        (Some(caller), Ok(out)) => {
            let management = out
                .organization()
                .and_then(|o| o.master_account_id())
                .unwrap_or_default()
                .to_string();
            if management == caller {
                ("SELF", format!("{caller} is the organization's management account"))
            } else {
                (
                    "DELEGATED_ADMIN",
                    format!("{caller} is not the management account ({management}): acting as a delegated administrator"),
                )
            }
        }
        (_, Err(e)) => (
            "SELF",
            format!("the organization cannot be read ({}: {}); give --call-as DELEGATED_ADMIN in a delegated administrator account", e.operation, e.code),
        ),
        (None, Ok(_)) => ("SELF", "the caller's account is not known".to_string()),
    };
    ctx.say(format!("call as {call_as}: {why}"));
    ctx.record("call_as", json!({"call_as": call_as, "why": why}));
    CallAs::from(call_as)
}

/// A one-line account/region summary of an instance, with its status and reason.
fn instance_line(instance: &StackInstanceSummary) -> (bool, String) {
    let status = instance.status().map(|s| s.as_str()).unwrap_or("");
    let detailed = instance
        .stack_instance_status()
        .and_then(|s| s.detailed_status())
        .map(|s| s.as_str())
        .unwrap_or("");
    let line = format!(
        "  instance {}/{}: {status} {detailed} {}",
        instance.account().unwrap_or(""),
        instance.region().unwrap_or(""),
        instance.status_reason().unwrap_or("")
    );
    (status == "CURRENT", line.trim_end().to_string())
}

/// `tapguard status --stack-set`: the StackSet's status and every instance's.
pub fn status(args: StatusArgs) -> ExitCode {
    let admin = administrator(&args.targets);
    let args = Arc::new(args);
    run_on_targets("status --stack-set", run_id(), &admin, move |ctx| {
        let args = args.clone();
        async move {
            let cfn = CloudFormation::new(&ctx.config);
            let name = &args.stack_name;
            let call_as = call_as(&ctx, args.call_as.as_deref()).await;
            let set = match live_stack_set(&ctx, &cfn, name, &call_as).await {
                Ok(set) => set,
                Err(e) => return fail(&ctx, e),
            };
            let Some(set) = set else {
                return fail(&ctx, format!("StackSet {name} does not exist"));
            };
            let set_status = set.status().map(|s| s.as_str()).unwrap_or("").to_string();
            ctx.say(format!("StackSet {name}: {set_status}"));
            let regions = &args.targets.regions;
            let listed = match instances(&ctx, &cfn, name, &call_as).await {
                Ok(all) => all
                    .into_iter()
                    .filter(|i| regions.is_empty() || i.region().is_some_and(|r| regions.iter().any(|x| x == r)))
                    .collect::<Vec<_>>(),
                Err(e) => return fail(&ctx, e.to_string()),
            };
            let mut not_current = 0;
            for instance in &listed {
                let (current, line) = instance_line(instance);
                not_current += usize::from(!current);
                ctx.say(line);
            }
            ctx.record(
                "stack_set_status",
                json!({"stack_set": name, "status": set_status, "instances": listed.len(), "not_current": not_current}),
            );
            let text = format!(
                "StackSet {name}: {set_status}, {} instance(s), {not_current} not current",
                listed.len()
            );
            if not_current == 0 {
                Outcome::good(text)
            } else {
                Outcome::bad(text)
            }
        }
    })
}

/// `tapguard delete --stack-set`: every instance (through the OUs they were deployed to, in their
/// regions; the stacks are deleted, not retained), then the StackSet itself.
pub fn delete(args: DeleteArgs) -> ExitCode {
    let admin = administrator(&args.targets);
    let args = Arc::new(args);
    run_on_targets("delete --stack-set", run_id(), &admin, move |ctx| {
        let args = args.clone();
        async move {
            let cfn = CloudFormation::new(&ctx.config);
            let name = &args.stack_name;
            let call_as = call_as(&ctx, args.call_as.as_deref()).await;
            let listed = match instances(&ctx, &cfn, name, &call_as).await {
                Ok(all) => all,
                Err(e) if e.code == "StackSetNotFoundException" => {
                    ctx.say(format!("StackSet {name} does not exist: nothing to delete"));
                    return Outcome::good("absent");
                }
                Err(e) => return fail(&ctx, e.to_string()),
            };
            let ous = distinct(listed.iter().filter_map(|i| i.organizational_unit_id()));
            let regions = distinct(listed.iter().filter_map(|i| i.region()));
            if !args.yes
                && !crate::prompt::confirm(
                    &ctx,
                    &format!("delete StackSet {name} and its {} instance(s)?", listed.len()),
                )
                .await
            {
                return Outcome::bad("not deleted");
            }
            if !listed.is_empty() {
                let request = cfn
                    .delete_stack_instances()
                    .stack_set_name(name)
                    .call_as(call_as.clone())
                    .deployment_targets(ous_targets(&ous))
                    .set_regions(Some(regions.clone()))
                    .retain_stacks(false);
                let operation = match ctx.call("DeleteStackInstances", request.send()).await {
                    Ok(out) => out.operation_id().unwrap_or_default().to_string(),
                    Err(e) => return fail(&ctx, e.to_string()),
                };
                ctx.say(format!(
                    "operation {operation}: delete instances of OUs {} in {}",
                    ous.join(","),
                    regions.join(",")
                ));
                match wait_operation(&ctx, &cfn, name, &operation, &call_as).await {
                    Ok(StackSetOperationStatus::Succeeded) => {}
                    Ok(status) => return fail(&ctx, format!("operation {operation}: {}", status.as_str())),
                    Err(e) => return fail(&ctx, e.to_string()),
                }
            }
            if let Err(e) = ctx
                .call(
                    "DeleteStackSet",
                    cfn.delete_stack_set()
                        .stack_set_name(name)
                        .call_as(call_as.clone())
                        .send(),
                )
                .await
            {
                return fail(&ctx, e.to_string());
            }
            ctx.say(format!("StackSet {name} deleted"));
            ctx.record(
                "stack_set_deleted",
                json!({"stack_set": name, "instances": listed.len()}),
            );
            Outcome::good(format!("StackSet {name} deleted with {} instance(s)", listed.len()))
        }
    })
}

pub fn deploy(args: DeployArgs) -> ExitCode {
    let plan = match prepare(&args) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("tapguard deploy --stack-set: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(f) = &plan.functions {
        let (functions, _) = &**f;
        if let Some((_, v)) = functions.parameters.iter().find(|(k, _)| k == EXPORT_PREFIX) {
            if *v != functions.stack_name {
                eprintln!(
                    "tapguard deploy --stack-set: {EXPORT_PREFIX}={v}, but the stack imports from {}: leave {EXPORT_PREFIX} out (it is set to --functions-stack-name)",
                    functions.stack_name
                );
                return ExitCode::from(2);
            }
        }
    }
    let admin = administrator(&plan.args.targets);
    run_on_targets("deploy --stack-set", plan.run.clone(), &admin, move |ctx| {
        let plan = plan.clone();
        async move { deploy_stack_sets(&ctx, &plan).await }
    })
}

/// The functions template's parameter that names its exports: a StackSet instance's stack is named
/// `StackSet-<name>-<id>`, not as the stack's FunctionsStackName says, so the deployer sets it.
const EXPORT_PREFIX: &str = "ExportPrefix";

/// What a StackSet's template is sent as: inline, or (over 51,200 bytes) an object of the
/// administrator's artifact bucket.
enum SetTemplate {
    Body(String),
    Url(String),
}

/// The regions of the operation: --regions, else the administrator's own.
fn operation_regions(ctx: &Ctx, plan: &DeployPlan) -> Vec<String> {
    if plan.args.targets.regions.is_empty() {
        vec![ctx.target.region.clone()]
    } else {
        plan.args.targets.regions.clone()
    }
}

/// The functions StackSet first (with --functions-template), then the stack's: every instance of the
/// latter imports the ServiceTokens its account and region got from the former.
async fn deploy_stack_sets(ctx: &Ctx, plan: &DeployPlan) -> Outcome {
    let call_as = call_as(ctx, plan.args.call_as.as_deref()).await;
    if plan.args.no_execute {
        return preview_stack_sets(ctx, plan, &call_as).await;
    }
    let mut functions = None;
    if let Some(f) = &plan.functions {
        let (functions_plan, package) = &**f;
        let name = &functions_plan.stack_name;
        let (functions_plan, template) = match publish_functions(ctx, plan, functions_plan, package).await {
            Ok(p) => p,
            Err(e) => {
                return fail(
                    ctx,
                    format!("functions StackSet {name}: cannot publish the functions: {e}"),
                )
            }
        };
        let outcome = deploy_stack_set(ctx, &functions_plan, &template, &call_as).await;
        if !outcome.good {
            return Outcome::bad(format!("functions StackSet {name}: {}", outcome.text));
        }
        functions = Some(format!(" (functions: {})", outcome.text));
    }
    let template = match set_template(ctx, plan, &plan.stack_name, &plan.template_body).await {
        Ok(t) => t,
        Err(e) => return fail(ctx, format!("cannot upload the template: {e}")),
    };
    let mut outcome = deploy_stack_set(ctx, plan, &template, &call_as).await;
    if let Some(text) = functions {
        outcome.text.push_str(&text);
    }
    outcome
}

/// `--no-execute`: what this run would do to each StackSet (the functions' first), read from the
/// StackSets and their instances. Nothing is uploaded, created or changed.
async fn preview_stack_sets(ctx: &Ctx, plan: &DeployPlan, call_as: &CallAs) -> Outcome {
    let cfn = CloudFormation::new(&ctx.config);
    let regions = operation_regions(ctx, plan);
    let mut names = Vec::new();
    if let Some(f) = &plan.functions {
        names.push(f.0.stack_name.clone());
    }
    names.push(plan.stack_name.clone());
    let mut all = Vec::new();
    for name in &names {
        let present = match live_stack_set(ctx, &cfn, name, call_as).await {
            Ok(None) => None,
            Ok(Some(_)) => match instances(ctx, &cfn, name, call_as).await {
                Ok(present) => Some(present),
                Err(e) => return fail(ctx, e.to_string()),
            },
            Err(e) => return fail(ctx, e),
        };
        let lines = preview(
            name,
            present.as_deref(),
            &plan.args.ous,
            &regions,
            plan.args.remove_unlisted,
        );
        for line in &lines {
            ctx.say(line);
        }
        ctx.record("stack_set_preview", json!({"stack_set": name, "lines": lines}));
        all.extend(lines);
    }
    let mut outcome = Outcome::good(format!("--no-execute, nothing changed: {}", all.join("; ")));
    outcome.detail = json!({"no_execute": true, "preview": all});
    outcome
}

/// StackSet `name`, or None when there is none (or only a DELETED one).
async fn live_stack_set(
    ctx: &Ctx,
    cfn: &CloudFormation,
    name: &str,
    call_as: &CallAs,
) -> Result<Option<aws_sdk_cloudformation::types::StackSet>, String> {
    match ctx
        .call(
            "DescribeStackSet",
            cfn.describe_stack_set()
                .stack_set_name(name)
                .call_as(call_as.clone())
                .send(),
        )
        .await
    {
        Ok(out) => Ok(out
            .stack_set()
            .filter(|s| s.status().is_some_and(|st| st.as_str() != "DELETED"))
            .cloned()),
        Err(e) if e.code == "StackSetNotFoundException" => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// A template as a StackSet takes it: inline up to 51,200 bytes, else uploaded to the
/// administrator's artifact bucket in its own region.
async fn set_template(ctx: &Ctx, plan: &DeployPlan, name: &str, body: &str) -> Result<SetTemplate, String> {
    match &plan.args.artifact_bucket_prefix {
        Some(prefix) if body.len() > crate::deploy::INLINE_TEMPLATE_LIMIT => {
            crate::artifacts::upload_template(ctx, prefix, name, body)
                .await
                .map(SetTemplate::Url)
        }
        _ => Ok(SetTemplate::Body(body.to_string())),
    }
}

/// The functions' zips put into the administrator's artifact bucket of every region of the operation
/// (Lambda takes code only from its own region; the organization's accounts may read them), each
/// once; returns the functions StackSet's plan with the code keys, the administrator's account and
/// the export prefix as its parameters, and its template (through the bucket: it is over 51,200 bytes).
async fn publish_functions(
    ctx: &Ctx,
    plan: &DeployPlan,
    functions: &DeployPlan,
    package: &crate::artifacts::Package,
) -> Result<(DeployPlan, SetTemplate), String> {
    let Some(prefix) = plan.args.artifact_bucket_prefix.as_deref() else {
        return Err("the functions need --artifact-bucket-prefix".into());
    };
    let account = crate::artifacts::target_account(ctx).await?;
    let organizations = aws_sdk_organizations::Client::new(&ctx.config);
    let organization = ctx
        .call("DescribeOrganization", organizations.describe_organization().send())
        .await
        .map_err(|e| format!("{e}: the buckets admit the organization's accounts by its id"))?
        .organization()
        .and_then(|o| o.id())
        .unwrap_or_default()
        .to_string();
    if organization.is_empty() {
        return Err("DescribeOrganization gave no organization id".into());
    }
    let mut parameters = Vec::new();
    for region in operation_regions(ctx, plan) {
        let config = ctx
            .config
            .to_builder()
            .region(aws_config::Region::new(region.clone()))
            .build();
        let s3 = crate::artifacts::s3_client(&config);
        let (published, _) =
            crate::artifacts::publish(ctx, &s3, package, prefix, &account, &region, Some(&organization)).await?;
        // The keys are content-addressed: the same in every region.
        parameters = published;
    }
    let mut functions = functions.clone();
    if functions.declared.iter().any(|d| d.key == EXPORT_PREFIX) {
        parameters.push((EXPORT_PREFIX.to_string(), functions.stack_name.clone()));
    }
    for (k, v) in parameters {
        functions.parameters.retain(|(g, _)| *g != k);
        functions.parameters.push((k, v));
    }
    let template = set_template(ctx, plan, &functions.stack_name, &functions.template_body).await?;
    Ok((functions, template))
}

async fn deploy_stack_set(ctx: &Ctx, plan: &DeployPlan, template: &SetTemplate, call_as: &CallAs) -> Outcome {
    let cfn = CloudFormation::new(&ctx.config);
    let name = &plan.stack_name;
    let regions = operation_regions(ctx, plan);
    let targets = ous_targets(&plan.args.ous);
    let preferences = preferences(&plan.args, &regions);
    let parameters: Vec<Parameter> = plan
        .parameters
        .iter()
        .map(|(k, v)| Parameter::builder().parameter_key(k).parameter_value(v).build())
        .collect();
    let tags: Vec<Tag> = plan
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let capabilities: Vec<Capability> = plan.capabilities.iter().map(|c| Capability::from(c.as_str())).collect();

    let call_as = call_as.clone();
    let exists = match live_stack_set(ctx, &cfn, name, &call_as).await {
        Ok(set) => set.is_some(),
        Err(e) => return fail(ctx, e),
    };
    let mut operations: Vec<(String, String)> = Vec::new();
    if exists {
        // An update reaches only the instances that exist: OUs and regions new to this run get
        // theirs with CreateStackInstances afterwards.
        let present = match instances(ctx, &cfn, name, &call_as).await {
            Ok(i) => i,
            Err(e) => return fail(ctx, e.to_string()),
        };
        let InstancePlan {
            present_ous,
            present_regions,
            new_ous,
            new_regions,
        } = InstancePlan::of(&present, &plan.args.ous, &regions);
        let request = cfn
            .update_stack_set()
            .stack_set_name(name)
            .call_as(call_as.clone())
            .set_parameters(Some(parameters))
            .set_tags(Some(tags))
            .set_capabilities(Some(capabilities))
            .deployment_targets(ous_targets(&present_ous))
            .set_regions(Some(present_regions.clone()))
            .operation_preferences(preferences.clone())
            .operation_id(format!("tapguard-{}", plan.run));
        let request = match template {
            SetTemplate::Body(body) => request.template_body(body),
            SetTemplate::Url(url) => request.template_url(url),
        };
        if !present_ous.is_empty() && !present_regions.is_empty() {
            match ctx.call("UpdateStackSet", request.send()).await {
                Ok(out) => operations.push((
                    out.operation_id().unwrap_or_default().to_string(),
                    format!("update OUs {} in {}", present_ous.join(","), present_regions.join(",")),
                )),
                Err(e) => return fail(ctx, e.to_string()),
            }
        }
        let additions = additions(&present_ous, &new_ous, &new_regions, &regions);
        let unlisted = unlisted(&present, &plan.args.ous, &regions);
        let mut removals = Vec::new();
        if !unlisted.is_empty() {
            let described: Vec<String> = unlisted
                .iter()
                .map(|(ous, in_regions)| format!("OUs {} in {}", ous.join(","), in_regions.join(",")))
                .collect();
            if !plan.args.remove_unlisted {
                ctx.say(format!(
                    "left as they are (not named by this run; --remove-unlisted deletes them): instances of {}",
                    described.join("; ")
                ));
            } else if plan.args.yes
                || crate::prompt::confirm(
                    ctx,
                    &format!(
                        "delete the stack instances (and their stacks) of {}?",
                        described.join("; ")
                    ),
                )
                .await
            {
                removals = unlisted;
            } else {
                ctx.say("the unlisted instances are left as they are");
            }
        }
        for (n, (ous, in_regions)) in additions.into_iter().enumerate() {
            // One operation at a time on a StackSet: wait for the previous one first.
            if let Err(e) = after_the_last(ctx, &cfn, name, &operations, &call_as).await {
                return fail(ctx, e);
            }
            let request = cfn
                .create_stack_instances()
                .stack_set_name(name)
                .call_as(call_as.clone())
                .deployment_targets(ous_targets(&ous))
                .set_regions(Some(in_regions.clone()))
                .operation_preferences(preferences.clone())
                .operation_id(format!("tapguard-{}-add{n}", plan.run));
            match ctx.call("CreateStackInstances", request.send()).await {
                Ok(out) => operations.push((
                    out.operation_id().unwrap_or_default().to_string(),
                    format!("add instances for OUs {} in {}", ous.join(","), in_regions.join(",")),
                )),
                Err(e) => return fail(ctx, e.to_string()),
            }
        }
        for (n, (ous, in_regions)) in removals.into_iter().enumerate() {
            // One operation at a time on a StackSet: wait for the previous one first.
            if let Err(e) = after_the_last(ctx, &cfn, name, &operations, &call_as).await {
                return fail(ctx, e);
            }
            let request = cfn
                .delete_stack_instances()
                .stack_set_name(name)
                .call_as(call_as.clone())
                .deployment_targets(ous_targets(&ous))
                .set_regions(Some(in_regions.clone()))
                .retain_stacks(false)
                .operation_preferences(preferences.clone())
                .operation_id(format!("tapguard-{}-remove{n}", plan.run));
            match ctx.call("DeleteStackInstances", request.send()).await {
                Ok(out) => operations.push((
                    out.operation_id().unwrap_or_default().to_string(),
                    format!("remove instances of OUs {} in {}", ous.join(","), in_regions.join(",")),
                )),
                Err(e) => return fail(ctx, e.to_string()),
            }
        }
    } else {
        let request = cfn
            .create_stack_set()
            .stack_set_name(name)
            .call_as(call_as.clone())
            .description(format!("tapguard baseline, deployed by run {}", plan.run))
            .set_parameters(Some(parameters))
            .set_tags(Some(tags))
            .set_capabilities(Some(capabilities))
            .permission_model(PermissionModels::ServiceManaged)
            // New accounts in the OUs get the baseline without another run.
            .auto_deployment(
                AutoDeployment::builder()
                    .enabled(true)
                    .retain_stacks_on_account_removal(false)
                    .build(),
            );
        let request = match template {
            SetTemplate::Body(body) => request.template_body(body),
            SetTemplate::Url(url) => request.template_url(url),
        };
        if let Err(e) = ctx.call("CreateStackSet", request.send()).await {
            return fail(ctx, e.to_string());
        }
        ctx.say(format!(
            "created StackSet {name} (service-managed, automatic deployment on)"
        ));
        let request = cfn
            .create_stack_instances()
            .stack_set_name(name)
            .call_as(call_as.clone())
            .deployment_targets(targets)
            .set_regions(Some(regions.clone()))
            .operation_preferences(preferences)
            .operation_id(format!("tapguard-{}", plan.run));
        match ctx.call("CreateStackInstances", request.send()).await {
            Ok(out) => operations.push((
                out.operation_id().unwrap_or_default().to_string(),
                format!(
                    "create instances for OUs {} in {}",
                    plan.args.ous.join(","),
                    regions.join(",")
                ),
            )),
            Err(e) => return fail(ctx, e.to_string()),
        }
    }
    let mut status = StackSetOperationStatus::Succeeded;
    for (operation_id, what) in &operations {
        ctx.record(
            "stack_set_operation",
            json!({"stack_set": name, "operation_id": operation_id, "what": what, "ous": plan.args.ous, "regions": regions, "update": exists}),
        );
        ctx.say(format!("operation {operation_id}: {what}"));
        status = match wait_operation(ctx, &cfn, name, operation_id, &call_as).await {
            Ok(s) => s,
            Err(e) => return fail(ctx, e.to_string()),
        };
        if status != StackSetOperationStatus::Succeeded {
            break;
        }
    }
    if operations.is_empty() {
        ctx.say("nothing to update or add");
    }

    // The instances this run is about: the requested regions, in the requested OUs.
    let instances: Vec<StackInstanceSummary> = match instances(ctx, &cfn, name, &call_as).await {
        Ok(all) => all
            .into_iter()
            .filter(|i| i.region().is_some_and(|r| regions.iter().any(|x| x == r)))
            .filter(|i| {
                i.organizational_unit_id()
                    .is_none_or(|ou| plan.args.ous.iter().any(|x| x == ou))
            })
            .collect(),
        Err(e) => return fail(ctx, e.to_string()),
    };
    let mut bad = 0;
    let mut first_failure: Option<String> = None;
    for instance in &instances {
        let status = instance.status().map(|s| s.as_str()).unwrap_or("");
        let detailed = instance
            .stack_instance_status()
            .and_then(|s| s.detailed_status())
            .map(|s| s.as_str())
            .unwrap_or("");
        let (current, line) = instance_line(instance);
        if !current {
            bad += 1;
            first_failure.get_or_insert_with(|| {
                format!(
                    "{}/{}: {}",
                    instance.account().unwrap_or(""),
                    instance.region().unwrap_or(""),
                    instance.status_reason().unwrap_or("no reason given")
                )
            });
        }
        ctx.say(line);
        ctx.record(
            "stack_instance",
            json!({"account": instance.account(), "region": instance.region(), "status": status, "detailed_status": detailed, "reason": instance.status_reason()}),
        );
    }
    let mut text = format!(
        "StackSet {name}: operation {}, {} instance(s), {bad} not current",
        status.as_str(),
        instances.len()
    );
    if let Some(cause) = first_failure {
        text.push_str(&format!("; first failure: {cause}"));
    }
    if status == StackSetOperationStatus::Succeeded && bad == 0 {
        ctx.say(&text);
        Outcome::good(text)
    } else {
        fail(ctx, text)
    }
}

fn fail(ctx: &Ctx, text: String) -> Outcome {
    ctx.say(format!("FAILED: {text}"));
    Outcome::bad(text)
}

/// Every instance of the StackSet, all pages.
/// The operation preferences of every operation of a run: counts or percentages, region concurrency
/// and concurrency mode as given (CloudFormation's defaults otherwise), and the regions in the order
/// given, which SEQUENTIAL follows.
fn preferences(args: &DeployArgs, regions: &[String]) -> StackSetOperationPreferences {
    let mut builder = StackSetOperationPreferences::builder().set_region_order(Some(regions.to_vec()));
    builder = match args.failure_tolerance_percentage {
        Some(percentage) => builder.failure_tolerance_percentage(percentage),
        None => builder.failure_tolerance_count(args.failure_tolerance),
    };
    builder = match args.max_concurrent_percentage {
        Some(percentage) => builder.max_concurrent_percentage(percentage),
        None => builder.max_concurrent_count(args.max_concurrent.max(1)),
    };
    if let Some(kind) = &args.region_concurrency {
        builder = builder.region_concurrency_type(RegionConcurrencyType::from(kind.as_str()));
    }
    if let Some(mode) = &args.concurrency_mode {
        builder = builder.concurrency_mode(ConcurrencyMode::from(mode.as_str()));
    }
    builder.build()
}

async fn instances(
    ctx: &Ctx,
    cfn: &CloudFormation,
    name: &str,
    call_as: &CallAs,
) -> Result<Vec<StackInstanceSummary>, ApiError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ctx
            .call_retrying("ListStackInstances", || {
                cfn.list_stack_instances()
                    .stack_set_name(name)
                    .call_as(call_as.clone())
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
        all.extend(out.summaries().iter().cloned());
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(all);
        }
    }
}

/// The deployment targets of a service-managed StackSet operation: organizational units.
fn ous_targets(ous: &[String]) -> DeploymentTargets {
    DeploymentTargets::builder()
        .set_organizational_unit_ids(Some(ous.to_vec()))
        .build()
}

/// Waits for the last of `operations` (if any) to succeed: a StackSet runs one operation at a time.
async fn after_the_last(
    ctx: &Ctx,
    cfn: &CloudFormation,
    name: &str,
    operations: &[(String, String)],
    call_as: &CallAs,
) -> Result<(), String> {
    let Some((previous, _)) = operations.last() else {
        return Ok(());
    };
    match wait_operation(ctx, cfn, name, previous, call_as).await {
        Ok(StackSetOperationStatus::Succeeded) => Ok(()),
        Ok(status) => Err(format!("operation {previous}: {}", status.as_str())),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits for a StackSet operation to end, saying each status it passes through.
async fn wait_operation(
    ctx: &Ctx,
    cfn: &CloudFormation,
    name: &str,
    operation_id: &str,
    call_as: &CallAs,
) -> Result<StackSetOperationStatus, ApiError> {
    let mut last = String::new();
    loop {
        let out = ctx
            .call_retrying("DescribeStackSetOperation", || {
                cfn.describe_stack_set_operation()
                    .stack_set_name(name)
                    .operation_id(operation_id)
                    .call_as(call_as.clone())
                    .send()
            })
            .await?;
        let status = out
            .stack_set_operation()
            .and_then(|o| o.status())
            .cloned()
            .unwrap_or(StackSetOperationStatus::Running);
        if status.as_str() != last {
            last = status.as_str().to_string();
            ctx.say(format!("operation {operation_id}: {last}"));
        }
        match status {
            StackSetOperationStatus::Running | StackSetOperationStatus::Queued | StackSetOperationStatus::Stopping => {
                tokio::time::sleep(ctx.poll).await
            }
            other => return Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: DeployArgs,
    }

    fn deploy_args(extra: &[&str]) -> Result<DeployArgs, clap::Error> {
        let mut argv = vec!["tapguard", "--stack-name", "TapBaseline", "--template", "TapStack.yml"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| cli.args)
    }

    fn instance(ou: &str, region: &str) -> StackInstanceSummary {
        StackInstanceSummary::builder()
            .organizational_unit_id(ou)
            .region(region)
            .build()
    }

    #[test]
    fn preferences_are_counts_or_percentages_with_the_regions_in_the_order_given() {
        let regions = vec!["us-east-1".to_string(), "eu-west-1".to_string()];
        let counts = preferences(
            &deploy_args(&["--failure-tolerance", "2", "--max-concurrent", "3"]).unwrap(),
            &regions,
        );
        assert_eq!(counts.failure_tolerance_count(), Some(2));
        assert_eq!(counts.max_concurrent_count(), Some(3));
        assert_eq!(counts.failure_tolerance_percentage(), None);
        assert_eq!(counts.region_order(), ["us-east-1", "eu-west-1"]);
        assert_eq!(counts.region_concurrency_type(), None, "CloudFormation's default");

        let percentages = preferences(
            &deploy_args(&[
                "--failure-tolerance-percentage",
                "10",
                "--max-concurrent-percentage",
                "25",
                "--region-concurrency",
                "PARALLEL",
                "--concurrency-mode",
                "SOFT_FAILURE_TOLERANCE",
            ])
            .unwrap(),
            &regions,
        );
        assert_eq!(percentages.failure_tolerance_percentage(), Some(10));
        assert_eq!(percentages.failure_tolerance_count(), None);
        assert_eq!(percentages.max_concurrent_percentage(), Some(25));
        assert_eq!(percentages.max_concurrent_count(), None);
        assert_eq!(
            percentages.region_concurrency_type(),
            Some(&RegionConcurrencyType::Parallel)
        );
        assert_eq!(
            percentages.concurrency_mode(),
            Some(&ConcurrencyMode::SoftFailureTolerance)
        );

        let both = deploy_args(&["--failure-tolerance", "1", "--failure-tolerance-percentage", "10"]);
        assert!(
            both.is_err(),
            "a count and a percentage of the same preference are refused"
        );
        assert!(deploy_args(&["--max-concurrent-percentage", "0"]).is_err());
        assert!(deploy_args(&["--region-concurrency", "SOMETIMES"]).is_err());
    }

    #[test]
    fn unlisted_instances_are_the_other_ous_everywhere_then_the_named_ous_in_other_regions() {
        let present = [
            instance("ou-aa11-11111111", "us-east-1"),
            instance("ou-aa11-11111111", "eu-west-1"),
            instance("ou-bb22-22222222", "us-east-1"),
            instance("ou-cc33-33333333", "ap-south-1"),
        ];
        let named = |ous: &[&str], regions: &[&str]| {
            unlisted(
                &present,
                &ous.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &regions.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            named(&["ou-aa11-11111111"], &["us-east-1"]),
            vec![
                (
                    s(&["ou-bb22-22222222", "ou-cc33-33333333"]),
                    s(&["ap-south-1", "us-east-1"])
                ),
                (s(&["ou-aa11-11111111"]), s(&["eu-west-1"])),
            ]
        );
        assert!(
            named(
                &["ou-aa11-11111111", "ou-bb22-22222222", "ou-cc33-33333333"],
                &["us-east-1", "eu-west-1", "ap-south-1"]
            )
            .is_empty(),
            "everything named: nothing to remove"
        );
    }
}
