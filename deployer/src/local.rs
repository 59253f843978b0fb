//! `tapguard local`: plays CloudFormation's part for the custom resources of a template, on this
//! machine. The real handler binaries run under a local Lambda Runtime API and answer to a local
//! ResponseURL; their AWS calls go to the configured endpoint (the embedded emulator by default).
//!
//! Only `Custom::` resources are played. A Ref or GetAtt of any other resource (a bucket, a key)
//! gets a deterministic placeholder, said so in the output, unless `--resource-value` gives one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tapguard_harness::{Account, CustomResourceDriver, Emulator, Exchange, LambdaHost, ResponseServer};

use crate::targets::partition_for_region;
use crate::template::{is_custom, scalar_text, stringify_scalars, Evaluator, Resolver, Template};

#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// The template whose Custom:: resources to play (YAML or JSON).
    #[arg(long, default_value = "TapStack.yml")]
    pub template: PathBuf,
    /// A template parameter, `Key=Value` (repeatable); others take the template's defaults.
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    pub parameters: Vec<String>,
    /// The stack name the events carry (AWS::StackName).
    #[arg(long, default_value = "TapStack-local")]
    pub stack_name: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// The account to act in: the emulator assumes a role into it.
    #[arg(long, default_value = "111111111111")]
    pub account: String,
    /// After the Creates, send the Deletes in reverse order, as a stack deletion does.
    #[arg(long)]
    pub teardown: bool,
    /// Which handler binary serves a custom resource, `Key=binary`, where Key is a logical id, a
    /// resource type or a ServiceToken export name (repeatable). The built-in table covers the
    /// tapguard resource types.
    #[arg(long = "handler", value_name = "KEY=BINARY")]
    pub handlers: Vec<String>,
    /// The value of a non-custom resource's Ref (`LogicalId=value`) or GetAtt
    /// (`LogicalId.Attribute=value`) instead of a placeholder (repeatable).
    #[arg(long = "resource-value", value_name = "REF=VALUE")]
    pub resource_values: Vec<String>,
    /// The value of a Fn::ImportValue, `ExportName=value` (repeatable).
    #[arg(long = "import", value_name = "EXPORT=VALUE")]
    pub imports: Vec<String>,
    /// In the emulator, create stand-ins for the KMS keys, S3 buckets (us-east-1) and IAM roles that
    /// custom resources refer to, instead of placeholders that do not exist: the handlers verify
    /// what they are given, so a placeholder key makes EbsDefaultEncryption fail, as it should.
    #[arg(long)]
    pub stand_ins: bool,
    /// Print the handlers' own log lines (JSON) as they come, on standard error.
    #[arg(long)]
    pub show_logs: bool,
    /// The Lambda timeout given to each invocation, in seconds.
    #[arg(long, default_value_t = 60)]
    pub lambda_timeout: u64,
    /// The AWS endpoint the handlers call (an emulator already running). Default: start the
    /// project's emulator, or use TAPGUARD_EMULATOR_URL.
    #[arg(long)]
    pub endpoint_url: Option<String>,
    /// Run the handlers against real AWS with the current credentials (environment, profile, SSO)
    /// instead of the emulator: they change the real account, as the stack would.
    #[arg(long, conflicts_with_all = ["endpoint_url", "stand_ins"])]
    pub aws: bool,
    /// The project folder holding emulator/server.py (to start the emulator).
    #[arg(long)]
    pub project_root: Option<PathBuf>,
    /// Where the handler binaries are (default: beside this binary, or TAPGUARD_BIN_DIR).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

/// The tapguard resource types and the binaries that serve them.
const HANDLERS: &[(&str, &str)] = &[
    ("Custom::EbsDefaultEncryption", "ebs-default-encryption"),
    ("Custom::ConfigSetup", "config-setup"),
    ("Custom::SecurityHubEnable", "securityhub-enable"),
    ("Custom::SecurityHubStandards", "securityhub-standards"),
    ("Custom::AccessKeyRotation", "access-key-rotation"),
    ("Custom::IamPasswordPolicy", "iam-password-policy"),
    ("Custom::ShieldAdvanced", "shield-advanced"),
    ("Custom::DelegatedAdministrator", "delegated-admin"),
];

fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| format!("{what} {item:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// The parameter values a stack would get: given ones, else defaults; lists split as CloudFormation does.
pub fn parameter_values(
    template: &Template,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Value>, String> {
    let unknown: Vec<&str> = given
        .keys()
        .filter(|k| !template.parameters.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!("parameters not in the template: {}", unknown.join(", ")));
    }
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, declaration) in &template.parameters {
        let text = match given.get(name) {
            Some(v) => v.clone(),
            None => match declaration.get("Default") {
                Some(d) => scalar_text(d),
                None => {
                    missing.push(name.as_str());
                    continue;
                }
            },
        };
        let kind = declaration["Type"].as_str().unwrap_or("String");
        let is_list = kind == "CommaDelimitedList" || kind.starts_with("List<");
        if let Some(allowed) = declaration["AllowedValues"].as_array() {
            let allowed: Vec<String> = allowed.iter().map(scalar_text).collect();
            // A list parameter's AllowedValues apply to each of its items.
            let items: Vec<&str> = if is_list {
                text.split(',').map(str::trim).collect()
            } else {
                vec![text.as_str()]
            };
            if let Some(bad) = items.iter().find(|i| !allowed.iter().any(|a| a == *i)) {
                return Err(format!(
                    "parameter {name}: {bad:?} is not one of its AllowedValues ({})",
                    allowed.join(", ")
                ));
            }
        }
        let value = if is_list {
            json!(text.split(',').map(str::trim).collect::<Vec<_>>())
        } else {
            json!(text)
        };
        values.insert(name.clone(), value);
    }
    if !missing.is_empty() {
        return Err(format!(
            "parameters without a default need a value (--parameter K=V): {}",
            missing.join(", ")
        ));
    }
    Ok(values)
}

/// What Refs and GetAtts evaluate to during a local run.
struct LocalResolver<'t> {
    template: &'t Template,
    parameters: BTreeMap<String, Value>,
    region: String,
    account: String,
    /// Physical id and Data of each custom resource created so far.
    created: HashMap<String, (String, Map<String, Value>)>,
    resource_values: BTreeMap<String, String>,
    imports: BTreeMap<String, String>,
    /// What was substituted while evaluating the current resource, to tell the reader.
    notes: Vec<String>,
    /// Stand-ins and placeholders made so far, so every reference to a resource gets the same one.
    substitutes: HashMap<String, Substitute>,
    /// With --stand-ins: the emulator to create them in, the account, and the stack name.
    stand_ins: Option<(Emulator, Account, String)>,
}

/// A non-custom resource's Ref and Arn as CloudFormation would give them, in the shape its type has
/// (an IAM role ARN has no region, a bucket name is lowercase), so handlers that check shapes accept it.
#[derive(Debug, Clone)]
struct Substitute {
    reference: String,
    arn: String,
    /// Whether the thing exists in the emulator (a stand-in) or is only a name (a placeholder).
    exists: bool,
}

fn placeholder_for(resource_type: &str, logical_id: &str, partition: &str, region: &str, account: &str) -> Substitute {
    let name = format!("local-placeholder-{}", logical_id.to_lowercase());
    let (reference, arn) = match resource_type {
        "AWS::IAM::Role" => (name.clone(), format!("arn:{partition}:iam::{account}:role/{name}")),
        "AWS::S3::Bucket" => (name.clone(), format!("arn:{partition}:s3:::{name}")),
        "AWS::KMS::Key" => {
            // A key id is a UUID: derive a stable one from the logical id.
            let hash = logical_id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
            });
            let id = format!("00000000-0000-4000-8000-{:012x}", hash & 0xffff_ffff_ffff);
            (id.clone(), format!("arn:{partition}:kms:{region}:{account}:key/{id}"))
        }
        "AWS::SNS::Topic" => {
            let arn = format!("arn:{partition}:sns:{region}:{account}:{name}");
            (arn.clone(), arn)
        }
        other => {
            let service = other.split("::").nth(1).unwrap_or("unknown").to_lowercase();
            (
                name.clone(),
                format!("arn:{partition}:{service}:{region}:{account}:local-placeholder/{logical_id}"),
            )
        }
    };
    Substitute {
        reference,
        arn,
        exists: false,
    }
}

/// Creates a stand-in for a key, a bucket or a role in the emulator, so handlers that read them
/// (DescribeKey, HeadBucket) find them; None for other types.
fn stand_in(
    emulator: &Emulator,
    account: &Account,
    region: &str,
    stack: &str,
    logical_id: &str,
    resource_type: &str,
) -> Option<Substitute> {
    let partition = partition_for_region(region);
    match resource_type {
        "AWS::KMS::Key" => {
            // The template's key policy is not evaluated here: the stand-in gets the statements every key
            // of the baseline must have for EBS default encryption, which the handler checks (the account
            // administers it through IAM; EC2 in this region may use it for this account's callers).
            let account_id = &account.account_id;
            let policy = json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": format!("arn:{partition}:iam::{account_id}:root")},
                 "Action": "kms:*", "Resource": "*"},
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Resource": "*",
                 "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                            "kms:DescribeKey", "kms:CreateGrant"],
                 "Condition": {"StringEquals": {"kms:CallerAccount": account_id,
                                                "kms:ViaService": format!("ec2.{region}.amazonaws.com")}}}]});
            let created = emulator.json_call(
                account,
                region,
                "kms",
                "TrentService.CreateKey",
                json!({"Description": format!("tapguard local stand-in for {stack}/{logical_id}"),
                       "Policy": policy.to_string()}),
            );
            Some(Substitute {
                reference: created["KeyMetadata"]["KeyId"].as_str()?.to_string(),
                arn: created["KeyMetadata"]["Arn"].as_str()?.to_string(),
                exists: true,
            })
        }
        // Outside us-east-1 a bucket needs a location constraint body the harness does not send.
        "AWS::S3::Bucket" if region == "us-east-1" => {
            let name = format!("{}-{}-{}", stack, logical_id, account.account_id).to_lowercase();
            emulator.rest_call(account, region, "s3", "PUT", &format!("/{name}"), None);
            Some(Substitute {
                arn: format!("arn:{partition}:s3:::{name}"),
                reference: name,
                exists: true,
            })
        }
        "AWS::IAM::Role" => {
            let name = format!("{stack}-{logical_id}");
            let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"config.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
            let answer = emulator.query(
                account,
                region,
                "iam",
                &[
                    ("Action", "CreateRole"),
                    ("RoleName", &name),
                    ("AssumeRolePolicyDocument", trust),
                ],
            );
            let arn = tapguard_harness::xml_value(&answer, "Arn")
                .map(str::to_string)
                .unwrap_or_else(|| format!("arn:{partition}:iam::{}:role/{name}", account.account_id));
            Some(Substitute {
                reference: name,
                arn,
                exists: true,
            })
        }
        _ => None,
    }
}

impl LocalResolver<'_> {
    fn substitute(&mut self, logical_id: &str) -> Substitute {
        if let Some(known) = self.substitutes.get(logical_id) {
            return known.clone();
        }
        let resource_type = self.template.resource_type(logical_id).unwrap_or("?").to_string();
        let made = self
            .stand_ins
            .as_ref()
            .and_then(|(emulator, account, stack)| {
                stand_in(emulator, account, &self.region, stack, logical_id, &resource_type)
            })
            .unwrap_or_else(|| {
                placeholder_for(
                    &resource_type,
                    logical_id,
                    partition_for_region(&self.region),
                    &self.region,
                    &self.account,
                )
            });
        self.substitutes.insert(logical_id.to_string(), made.clone());
        made
    }

    fn placeholder(&mut self, logical_id: &str, attribute: Option<&str>) -> Value {
        let resource_type = self.template.resource_type(logical_id).unwrap_or("?").to_string();
        let made = self.substitute(logical_id);
        let value = match attribute {
            None => made.reference.clone(),
            Some("Arn") => made.arn.clone(),
            Some(a) => format!("local-placeholder-{logical_id}-{a}"),
        };
        let what = match attribute {
            Some(a) => format!("GetAtt {logical_id}.{a}"),
            None => format!("Ref {logical_id}"),
        };
        let flag = match attribute {
            Some(a) => format!("{logical_id}.{a}=..."),
            None => format!("{logical_id}=..."),
        };
        self.notes.push(if made.exists {
            format!("{what} ({resource_type}) is not played locally: stand-in created in the emulator: {value:?}")
        } else {
            format!(
                "{what} ({resource_type}) is not played locally: placeholder {value:?} (give a real one with --resource-value {flag})"
            )
        });
        json!(value)
    }
}

impl Resolver for LocalResolver<'_> {
    fn parameter(&self, name: &str) -> Option<Value> {
        let value = match name {
            "AWS::Region" => json!(self.region),
            "AWS::AccountId" => json!(self.account),
            "AWS::Partition" => json!(partition_for_region(&self.region)),
            "AWS::URLSuffix" => json!(if self.region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            }),
            "AWS::NotificationARNs" => json!([]),
            _ => return self.parameters.get(name).cloned(),
        };
        Some(value)
    }

    fn resource_ref(&mut self, logical_id: &str) -> Result<Value, String> {
        if let Some(v) = self.resource_values.get(logical_id) {
            return Ok(json!(v));
        }
        let resource_type = self.template.resource_type(logical_id).unwrap_or_default();
        if !is_custom(resource_type) {
            return Ok(self.placeholder(logical_id, None));
        }
        match self.created.get(logical_id) {
            Some((physical_id, _)) => Ok(json!(physical_id)),
            None => Err(format!("Ref {logical_id}: that custom resource was not created")),
        }
    }

    fn resource_attribute(&mut self, logical_id: &str, attribute: &str) -> Result<Value, String> {
        if let Some(v) = self.resource_values.get(&format!("{logical_id}.{attribute}")) {
            return Ok(json!(v));
        }
        let resource_type = self.template.resource_type(logical_id).unwrap_or_default();
        if !is_custom(resource_type) {
            if self.template.resource(logical_id).is_none() {
                return Err(format!("GetAtt {logical_id}.{attribute}: no such resource"));
            }
            return Ok(self.placeholder(logical_id, Some(attribute)));
        }
        match self.created.get(logical_id) {
            // CloudFormation fails the dependant the same way when the Data lacks the key.
            Some((_, data)) => data.get(attribute).cloned().ok_or_else(|| {
                format!("GetAtt {logical_id}.{attribute}: the custom resource's response Data has no {attribute}")
            }),
            None => Err(format!(
                "GetAtt {logical_id}.{attribute}: that custom resource was not created"
            )),
        }
    }

    fn import_value(&mut self, export_name: &str) -> Result<Value, String> {
        if let Some(v) = self.imports.get(export_name) {
            return Ok(json!(v));
        }
        let value = format!("local-placeholder-import-{export_name}");
        self.notes.push(format!(
            "ImportValue {export_name} is not resolved locally: placeholder {value:?} (give one with --import {export_name}=...)"
        ));
        Ok(json!(value))
    }

    fn region(&self) -> String {
        self.region.clone()
    }
}

pub fn stack_id(region: &str, account: &str, stack_name: &str) -> String {
    format!(
        "arn:{}:cloudformation:{region}:{account}:stack/{stack_name}/00000000-0000-4000-8000-00000000c0de",
        partition_for_region(region)
    )
}

/// One custom resource to play.
struct Planned {
    logical_id: String,
    resource_type: String,
    binary: String,
    /// How the binary was chosen, for the output.
    chosen_by: String,
}

fn bin_dir(args: &LocalArgs) -> PathBuf {
    if let Some(dir) = &args.bin_dir {
        return dir.clone();
    }
    if let Some(dir) = std::env::var_os("TAPGUARD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn project_root(args: &LocalArgs) -> PathBuf {
    if let Some(root) = &args.project_root {
        return root.clone();
    }
    if Path::new("emulator/server.py").exists() {
        return PathBuf::from(".");
    }
    // Built from the workspace: the project is the manifest's parent.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn normalized(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase()
}

/// Chooses the binary for a custom resource: `--handler` by logical id, type or export name; the
/// built-in table by type; else an export name that names a tapguard resource type.
fn choose_binary(
    handlers: &BTreeMap<String, String>,
    logical_id: &str,
    resource_type: &str,
    export_name: Option<&str>,
) -> Option<(String, String)> {
    for key in [Some(logical_id), Some(resource_type), export_name]
        .into_iter()
        .flatten()
    {
        if let Some(binary) = handlers.get(key) {
            return Some((binary.clone(), format!("--handler {key}")));
        }
    }
    if let Some((_, binary)) = HANDLERS.iter().find(|(t, _)| *t == resource_type) {
        return Some((binary.to_string(), "resource type".into()));
    }
    let export = normalized(export_name?);
    HANDLERS
        .iter()
        .find(|(t, _)| export.contains(&normalized(t.trim_start_matches("Custom::"))))
        .map(|(_, binary)| {
            (
                binary.to_string(),
                format!("ServiceToken export {}", export_name.unwrap_or("")),
            )
        })
}

pub fn run(args: LocalArgs) -> ExitCode {
    match play(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tapguard local: {e}");
            ExitCode::from(2)
        }
    }
}

/// Plays the template; Ok(false) when a resource failed (after the rollback), Err when nothing could run.
fn play(args: &LocalArgs) -> Result<bool, String> {
    let text = std::fs::read_to_string(&args.template)
        .map_err(|e| format!("cannot read the template {}: {e}", args.template.display()))?;
    let template = Template::parse(&text).map_err(|e| format!("{}: {e}", args.template.display()))?;
    let order = template.creation_order()?;
    let parameters = parameter_values(&template, &key_values(&args.parameters, "--parameter")?)?;
    let handlers = key_values(&args.handlers, "--handler")?;
    let account_id = if args.aws {
        caller_account(&args.region)?
    } else {
        args.account.clone()
    };
    let mut resolver = LocalResolver {
        template: &template,
        parameters,
        region: args.region.clone(),
        account: account_id.clone(),
        created: HashMap::new(),
        resource_values: key_values(&args.resource_values, "--resource-value")?,
        imports: key_values(&args.imports, "--import")?,
        notes: Vec::new(),
        substitutes: HashMap::new(),
        stand_ins: None,
    };
    resolver
        .parameters
        .insert("AWS::StackName".into(), json!(args.stack_name));
    let stack = stack_id(&args.region, &account_id, &args.stack_name);
    resolver.parameters.insert("AWS::StackId".into(), json!(stack));
    let mut evaluator = Evaluator::new(&template, resolver);

    // Plan: which custom resources run, in which order, with which binary.
    let mut plan = Vec::new();
    let mut skipped = Vec::new();
    let mut not_played = Vec::new();
    for logical_id in &order {
        let resource = template
            .resource(logical_id)
            .expect("ordered ids come from the template");
        let resource_type = resource["Type"].as_str().unwrap_or_default().to_string();
        if let Some(condition) = resource["Condition"].as_str() {
            if !evaluator.condition(condition)? {
                skipped.push(format!("{logical_id} (condition {condition} is false)"));
                continue;
            }
        }
        if !is_custom(&resource_type) {
            not_played.push(format!("{logical_id} ({resource_type})"));
            continue;
        }
        let export_name = match &resource["Properties"]["ServiceToken"] {
            Value::Object(m) if m.contains_key("Fn::ImportValue") => {
                Some(scalar_text(&evaluator.evaluate(&m["Fn::ImportValue"])?))
            }
            _ => None,
        };
        let (binary, chosen_by) = choose_binary(&handlers, logical_id, &resource_type, export_name.as_deref())
            .ok_or_else(|| {
                format!("no handler binary for {logical_id} ({resource_type}): give one with --handler {resource_type}=<binary>")
            })?;
        plan.push(Planned {
            logical_id: logical_id.clone(),
            resource_type,
            binary,
            chosen_by,
        });
    }
    println!(
        "template {}: {} resources, {} custom resource(s) to play in account {} region {}",
        args.template.display(),
        template.resources.len(),
        plan.len(),
        account_id,
        args.region
    );
    if !not_played.is_empty() {
        println!("not played (not custom resources): {}", not_played.join(", "));
    }
    if !skipped.is_empty() {
        println!("skipped: {}", skipped.join(", "));
    }
    if plan.is_empty() {
        println!("nothing to play");
        return Ok(true);
    }

    let dir = bin_dir(args);
    let mut binaries: Vec<&str> = plan.iter().map(|p| p.binary.as_str()).collect();
    binaries.sort_unstable();
    binaries.dedup();
    for binary in &binaries {
        if !dir.join(binary).exists() {
            return Err(format!(
                "handler binary {binary} is not built in {}: run `cargo build -p {binary}`",
                dir.display()
            ));
        }
    }

    // The emulator (kept alive for the run) or real AWS; and the handlers' environment.
    let mut _emulator: Option<Emulator> = None;
    let env = if args.aws {
        println!(
            "AWS: the real account {account_id} in {} ({} handler binaries)\n",
            args.region,
            binaries.len()
        );
        real_aws_env(&args.region)
    } else {
        if let Some(url) = &args.endpoint_url {
            std::env::set_var("TAPGUARD_EMULATOR_URL", url);
        }
        let emulator = Emulator::from_env_or_start(&project_root(args))?;
        let account = emulator.account(&account_id);
        let env = emulator.sdk_env(&account, &args.region);
        if args.stand_ins {
            // A second handle on the same emulator (no new process) for the resolver to create stand-ins with.
            std::env::set_var("TAPGUARD_EMULATOR_URL", &emulator.url);
            let handle = Emulator::from_env_or_start(&project_root(args))?;
            evaluator.resolver.stand_ins = Some((handle, account.clone(), args.stack_name.clone()));
        }
        println!("AWS endpoint {} ({} handler binaries)\n", emulator.url, binaries.len());
        _emulator = Some(emulator);
        env
    };
    if args.show_logs {
        // The harness echoes what the functions print when this is set in its process.
        std::env::set_var("TAPGUARD_ECHO_LOGS", "1");
    }
    let hosts: BTreeMap<&str, LambdaHost> = binaries
        .iter()
        .map(|b| (*b, LambdaHost::start(&dir.join(b), &env)))
        .collect();
    let responses = ResponseServer::start();
    let mut drivers: Vec<CustomResourceDriver> = plan
        .iter()
        .map(|p| {
            let mut driver = CustomResourceDriver::new(
                &hosts[p.binary.as_str()],
                &responses,
                &p.resource_type,
                &p.logical_id,
                &stack,
            );
            driver.timeout = Duration::from_secs(args.lambda_timeout);
            driver
        })
        .collect();

    // Creates in dependency order; the first failure rolls back what was created, as CloudFormation does.
    let mut created = 0;
    let mut failure: Option<String> = None;
    for (step, (planned, driver)) in plan.iter().zip(drivers.iter_mut()).enumerate() {
        println!(
            "[{}/{}] {} ({}) by {} (chosen by {})",
            step + 1,
            plan.len(),
            planned.logical_id,
            planned.resource_type,
            planned.binary,
            planned.chosen_by
        );
        let resource = template
            .resource(&planned.logical_id)
            .expect("planned from the template");
        let mut properties = resource["Properties"].clone();
        if let Value::Object(m) = &mut properties {
            // The harness sends its own ServiceToken; the handler never reads it.
            m.remove("ServiceToken");
        }
        evaluator.resolver.notes.clear();
        let evaluated = evaluator.evaluate(&properties);
        let mut notes = std::mem::take(&mut evaluator.resolver.notes);
        notes.dedup();
        for note in &notes {
            println!("  note: {note}");
        }
        let properties = match evaluated {
            Ok(Value::Null) => json!({}),
            Ok(p) => stringify_scalars(p),
            Err(e) => {
                // CloudFormation fails the resource before calling its function.
                println!("  Create FAILED\n    Reason: properties cannot be evaluated: {e}");
                failure = Some(format!("{}: {e}", planned.logical_id));
                break;
            }
        };
        if let Some((emulator, account, _)) = &evaluator.resolver.stand_ins {
            for note in organization_stand_ins(emulator, account, &args.region, &planned.resource_type, &properties) {
                println!("  note: {note}");
            }
        }
        let exchange = driver.create(properties);
        created += 1;
        let ok = print_exchange("Create", &exchange);
        if ok {
            let data = exchange.response()["Data"].as_object().cloned().unwrap_or_default();
            evaluator
                .resolver
                .created
                .insert(planned.logical_id.clone(), (exchange.physical_id().to_string(), data));
        } else {
            failure = Some(format!("{}: {}", planned.logical_id, failure_reason(&exchange)));
            break;
        }
    }

    if failure.is_none() && !template.outputs.is_empty() {
        println!("\nOutputs:");
        for (name, output) in &template.outputs {
            if let Some(condition) = output["Condition"].as_str() {
                if !evaluator.condition(condition).unwrap_or(false) {
                    continue;
                }
            }
            evaluator.resolver.notes.clear();
            match evaluator.evaluate(&output["Value"]) {
                // A placeholder says nothing worth printing; a stand-in exists, but only in the emulator.
                Ok(_) if evaluator.resolver.notes.iter().any(|n| n.contains("placeholder")) => {
                    println!("  {name}: (from a resource not played locally)")
                }
                Ok(v) if !evaluator.resolver.notes.is_empty() => {
                    println!("  {name}: {} (a stand-in in the emulator)", scalar_text(&v))
                }
                Ok(v) => println!("  {name}: {}", scalar_text(&v)),
                Err(e) => println!("  {name}: cannot be evaluated: {e}"),
            }
        }
    }

    let delete_all = failure.is_some() || args.teardown;
    let mut deletes_failed = 0;
    if delete_all {
        println!(
            "\n{}",
            if failure.is_some() {
                "rolling back: Deletes in reverse order"
            } else {
                "teardown: Deletes in reverse order"
            }
        );
        for (planned, driver) in plan.iter().zip(drivers.iter_mut()).take(created).rev() {
            println!("{} ({})", planned.logical_id, planned.resource_type);
            if !print_exchange("Delete", &driver.delete()) {
                deletes_failed += 1;
            }
        }
    }

    println!();
    match &failure {
        Some(cause) => println!("local: FAILED, root cause: {cause}"),
        None if deletes_failed > 0 => println!("local: {deletes_failed} Delete(s) FAILED"),
        None => println!(
            "local: {} custom resource(s) created{}",
            plan.len(),
            if args.teardown { " and deleted" } else { "" }
        ),
    }
    Ok(failure.is_none() && deletes_failed == 0)
}

/// The account of the current credentials, from STS.
/// OrgStack.yml's delegated administrators act on an organization: with --stand-ins, the account played
/// becomes the management account of one in the emulator, with the named account as a member, and (for
/// Config) the trusted access the resource expects to find, as the organization's owner sets it up.
fn organization_stand_ins(
    emulator: &Emulator,
    account: &Account,
    region: &str,
    resource_type: &str,
    properties: &Value,
) -> Vec<String> {
    if resource_type != "Custom::DelegatedAdministrator" {
        return Vec::new();
    }
    let Some(member) = properties["AccountId"].as_str() else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    emulator.control(
        "/tapguard/organizations/member",
        json!({"account": account.account_id, "member": member}),
    );
    notes.push(format!(
        "stand-in: account {} manages an organization in the emulator, with member {member}",
        account.account_id
    ));
    if properties["Service"] == "Config" {
        for principal in ["config-multiaccountsetup.amazonaws.com", "config.amazonaws.com"] {
            emulator.json_call(
                account,
                region,
                "organizations",
                "AWSOrganizationsV20161128.EnableAWSServiceAccess",
                json!({"ServicePrincipal": principal}),
            );
        }
        notes.push("stand-in: the organization's trusted access for AWS Config's two principals is on".into());
    }
    notes
}

fn caller_account(region: &str) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(tapguard_shared::tls::https_client())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let identity = aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| crate::api::api_error("GetCallerIdentity", &e).to_string())?;
        identity
            .account()
            .map(str::to_string)
            .ok_or_else(|| "GetCallerIdentity answered without an account".to_string())
    })
}

/// The handlers get this process's AWS settings and credentials (and HOME, for profiles and SSO).
fn real_aws_env(region: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
        .filter(|(k, _)| k != "AWS_REGION" && k != "AWS_DEFAULT_REGION")
        .collect();
    env.push(("AWS_REGION".into(), region.to_string()));
    env.push(("AWS_DEFAULT_REGION".into(), region.to_string()));
    env
}

fn failure_reason(exchange: &Exchange) -> String {
    match &exchange.response {
        Some(r) => r["Reason"].as_str().unwrap_or("no reason given").to_string(),
        None => format!(
            "no response was sent to the ResponseURL (the function answered {:?})",
            exchange.invoke
        ),
    }
}

/// Prints status, physical id, reason and Data of one answer; true when it is SUCCESS.
fn print_exchange(request: &str, exchange: &Exchange) -> bool {
    let Some(response) = &exchange.response else {
        println!("  {request} NO RESPONSE: {}", failure_reason(exchange));
        return false;
    };
    let status = response["Status"].as_str().unwrap_or("?");
    println!("  {request} {status}");
    println!(
        "    PhysicalResourceId: {}",
        response["PhysicalResourceId"].as_str().unwrap_or("")
    );
    if let Some(reason) = response["Reason"].as_str().filter(|r| !r.is_empty()) {
        println!("    Reason: {reason}");
    }
    if let Some(Value::Object(data)) = response.get("Data") {
        // NoEcho Data must not be shown, as CloudFormation masks it.
        let no_echo = response["NoEcho"].as_bool() == Some(true);
        for (k, v) in data {
            let shown = if no_echo { "****".to_string() } else { scalar_text(v) };
            println!("    Data.{k}: {shown}");
        }
    }
    status == "SUCCESS"
}
