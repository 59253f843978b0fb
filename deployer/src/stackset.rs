//! `deploy --stack-set`: the same template as a service-managed StackSet, deployed by CloudFormation
//! to every account of the given organizational units in the given regions. This runs in the
//! organization's management (or delegated administrator) account, in its home region.

use std::process::ExitCode;
use std::sync::Arc;

use aws_sdk_cloudformation::types::{
    AutoDeployment, Capability, DeploymentTargets, Parameter, PermissionModels, StackSetOperationPreferences,
    StackSetOperationStatus, Tag,
};
use aws_sdk_cloudformation::Client as CloudFormation;
use serde_json::json;

use crate::deploy::{prepare, DeployArgs, DeployPlan};
use crate::targets::{run_on_targets, Ctx, Outcome, TargetArgs};

pub fn deploy(args: DeployArgs) -> ExitCode {
    let plan = match prepare(&args) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("tapguard deploy --stack-set: {e}");
            return ExitCode::from(2);
        }
    };
    // One caller: the administrator account in its own region; --regions are where instances go.
    let admin = TargetArgs {
        regions: Vec::new(),
        accounts: Vec::new(),
        role_name: None,
        external_id: None,
        ..plan.args.targets.clone()
    };
    run_on_targets("deploy --stack-set", plan.run.clone(), &admin, move |ctx| {
        let plan = plan.clone();
        async move { deploy_stack_set(&ctx, &plan).await }
    })
}

async fn deploy_stack_set(ctx: &Ctx, plan: &DeployPlan) -> Outcome {
    let cfn = CloudFormation::new(&ctx.config);
    let name = &plan.args.stack_name;
    let regions = if plan.args.targets.regions.is_empty() {
        vec![ctx.target.region.clone()]
    } else {
        plan.args.targets.regions.clone()
    };
    let targets = DeploymentTargets::builder()
        .set_organizational_unit_ids(Some(plan.args.ous.clone()))
        .build();
    let preferences = StackSetOperationPreferences::builder()
        .failure_tolerance_count(plan.args.failure_tolerance)
        .max_concurrent_count(plan.args.max_concurrent.max(1))
        .build();
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

    let exists = match ctx
        .call("DescribeStackSet", cfn.describe_stack_set().stack_set_name(name).send())
        .await
    {
        Ok(out) => out
            .stack_set()
            .and_then(|s| s.status())
            .is_some_and(|s| s.as_str() != "DELETED"),
        Err(e) if e.code == "StackSetNotFoundException" => false,
        Err(e) => return fail(ctx, e.to_string()),
    };
    let operation_id = if exists {
        let request = cfn
            .update_stack_set()
            .stack_set_name(name)
            .template_body(&plan.template_body)
            .set_parameters(Some(parameters))
            .set_tags(Some(tags))
            .set_capabilities(Some(capabilities))
            .deployment_targets(targets)
            .set_regions(Some(regions.clone()))
            .operation_preferences(preferences)
            .operation_id(format!("tapguard-{}", plan.run));
        match ctx.call("UpdateStackSet", request.send()).await {
            Ok(out) => out.operation_id().unwrap_or_default().to_string(),
            Err(e) => return fail(ctx, e.to_string()),
        }
    } else {
        let request = cfn
            .create_stack_set()
            .stack_set_name(name)
            .description(format!("tapguard baseline, deployed by run {}", plan.run))
            .template_body(&plan.template_body)
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
        if let Err(e) = ctx.call("CreateStackSet", request.send()).await {
            return fail(ctx, e.to_string());
        }
        ctx.say(format!(
            "created StackSet {name} (service-managed, automatic deployment on)"
        ));
        let request = cfn
            .create_stack_instances()
            .stack_set_name(name)
            .deployment_targets(targets)
            .set_regions(Some(regions.clone()))
            .operation_preferences(preferences)
            .operation_id(format!("tapguard-{}", plan.run));
        match ctx.call("CreateStackInstances", request.send()).await {
            Ok(out) => out.operation_id().unwrap_or_default().to_string(),
            Err(e) => return fail(ctx, e.to_string()),
        }
    };
    ctx.record(
        "stack_set_operation",
        json!({"stack_set": name, "operation_id": operation_id, "ous": plan.args.ous, "regions": regions, "update": exists}),
    );
    ctx.say(format!(
        "operation {operation_id}: {} to OUs {} in {}",
        if exists { "update" } else { "create instances" },
        plan.args.ous.join(","),
        regions.join(",")
    ));

    let mut last = String::new();
    let status = loop {
        let out = match ctx
            .call(
                "DescribeStackSetOperation",
                cfn.describe_stack_set_operation()
                    .stack_set_name(name)
                    .operation_id(&operation_id)
                    .send(),
            )
            .await
        {
            Ok(o) => o,
            Err(e) => return fail(ctx, e.to_string()),
        };
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
            other => break other,
        }
    };

    let instances = match ctx
        .call(
            "ListStackInstances",
            cfn.list_stack_instances().stack_set_name(name).send(),
        )
        .await
    {
        Ok(out) => out.summaries().to_vec(),
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
        if status != "CURRENT" {
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
        let line = format!(
            "  instance {}/{}: {status} {detailed} {}",
            instance.account().unwrap_or(""),
            instance.region().unwrap_or(""),
            instance.status_reason().unwrap_or("")
        );
        ctx.say(line.trim_end());
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
