//! template.yml and TapStack.yml against the code: the properties TapStack.yml gives each custom resource
//! parse with the handler's own property type, each ServiceToken is the function that runs that handler,
//! the outputs read Data keys the handlers return, and the functions' logging, alarms and timeouts fit
//! what the runtime does.

#[path = "support/template.rs"]
mod template;

use std::collections::{BTreeMap, BTreeSet};

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tapguard_shared::CustomResource;
use tapguard_tests::*;
use template::Template;

/// Parses resolved properties with a handler's own `Properties`.
type ParseProperties = fn(&Value) -> Result<(), String>;

/// One handler binary and, once its crate is a dependency of this package, its property type.
struct Handler {
    binary: &'static str,
    resource_type: &'static str,
    parse: Option<ParseProperties>,
}

fn typed<R: CustomResource>(binary: &'static str) -> Handler {
    Handler {
        binary,
        resource_type: R::RESOURCE_TYPE,
        parse: Some(parse_with::<R::Properties>),
    }
}

/// A handler whose crate is not a dependency of this package yet: only its wiring is checked.
// Unused once every handler's crate is a dependency; kept for the next new handler.
#[allow(dead_code)]
fn awaiting_crate(binary: &'static str, resource_type: &'static str) -> Handler {
    Handler {
        binary,
        resource_type,
        parse: None,
    }
}

fn parse_with<P: DeserializeOwned>(properties: &Value) -> Result<(), String> {
    tapguard_shared::props::parse::<P>(properties)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every handler. Adding one is one line here (and its crate in tests/Cargo.toml).
fn handlers() -> Vec<Handler> {
    vec![
        typed::<ebs_default_encryption::EbsDefaultEncryption>("ebs-default-encryption"),
        typed::<config_setup::ConfigSetup>("config-setup"),
        typed::<securityhub_enable::SecurityHubEnable>("securityhub-enable"),
        typed::<securityhub_standards::SecurityHubStandards>("securityhub-standards"),
        typed::<access_key_rotation::AccessKeyRotation>("access-key-rotation"),
        typed::<iam_password_policy::IamPasswordPolicy>("iam-password-policy"),
        typed::<shield_advanced::ShieldAdvanced>("shield-advanced"),
        typed::<delegated_admin::DelegatedAdministrator>("delegated-admin"),
    ]
}

/// Handlers whose resources live in OrgStack.yml (the management account's organization stack), not in
/// TapStack.yml: the TapStack checks skip them, the OrgStack ones require them.
const ORGSTACK_ONLY: &[&str] = &["delegated-admin"];

fn org_stack() -> Template {
    Template::load(&root(), "OrgStack.yml")
}

fn handler_for(resource_type: &str) -> Handler {
    handlers()
        .into_iter()
        .find(|h| h.resource_type == resource_type)
        .unwrap_or_else(|| panic!("TapStack.yml uses {resource_type}, which no handler in this test serves"))
}

fn tap_stack() -> Template {
    Template::load(&root(), "TapStack.yml")
}

fn functions_template() -> Template {
    Template::load(&root(), "template.yml")
}

/// The properties of `resource` as CloudFormation could send them, one per combination of `Fn::If` branches.
fn property_variants(stack: &Template, logical_id: &str) -> Vec<Value> {
    let properties = stack
        .resource(logical_id)
        .get("Properties")
        .cloned()
        .unwrap_or(json!({}));
    stack
        .resolve(&properties)
        .into_iter()
        .map(|v| v.unwrap_or_else(|| json!({})))
        .collect()
}

#[test]
fn every_custom_resource_in_tapstack_parses_with_its_handlers_properties() {
    let stack = tap_stack();
    let mut failures = Vec::new();
    let mut checked = BTreeMap::<&str, usize>::new();
    for (logical_id, resource) in stack.custom_resources() {
        let resource_type = resource["Type"].as_str().expect("Type");
        let handler = handler_for(resource_type);
        let Some(parse) = handler.parse else { continue };
        let variants = property_variants(&stack, logical_id);
        assert!(!variants.is_empty(), "{logical_id}: no properties resolved");
        for properties in &variants {
            if let Err(problem) = parse(properties) {
                failures.push(format!(
                    "{logical_id} ({resource_type}): {problem}\n  properties: {properties}"
                ));
            }
        }
        *checked.entry(handler.resource_type).or_default() += variants.len();
    }
    assert!(
        failures.is_empty(),
        "TapStack.yml drifted from the handlers:\n{}",
        failures.join("\n")
    );
    for handler in handlers()
        .iter()
        .filter(|h| h.parse.is_some() && !ORGSTACK_ONLY.contains(&h.binary))
    {
        assert!(
            checked.contains_key(handler.resource_type),
            "TapStack.yml has no {} resource",
            handler.resource_type
        );
    }
}

#[test]
fn a_misspelled_or_mistyped_property_in_the_template_is_caught() {
    let stack = tap_stack();
    let (logical_id, _) = stack
        .custom_resources()
        .find(|(_, r)| r["Type"] == "Custom::EbsDefaultEncryption")
        .expect("TapStack.yml has a Custom::EbsDefaultEncryption");
    let parse = handler_for("Custom::EbsDefaultEncryption").parse.expect("typed");
    let properties = property_variants(&stack, logical_id).remove(0);
    parse(&properties).expect("TapStack.yml's own properties parse");

    let mut misspelled = properties.clone();
    let key = misspelled["KmsKeyId"].take();
    misspelled["KmsKeyID"] = key;
    misspelled.as_object_mut().expect("object").remove("KmsKeyId");
    let problem = parse(&misspelled).expect_err("an unknown property must not parse");
    assert!(
        problem.contains("KmsKeyID") && problem.contains("unknown property"),
        "{problem}"
    );

    let mut mistyped = properties;
    mistyped["KmsKeyId"] = json!(["not", "a", "string"]);
    let problem = parse(&mistyped).expect_err("a list where a string belongs must not parse");
    assert!(problem.contains("KmsKeyId"), "{problem}");
}

#[test]
fn the_resolver_follows_if_branches_novalue_and_parameter_shapes() {
    let stack = Template::parse(
        &root(),
        "inline",
        r#"
Parameters:
  Names: { Type: CommaDelimitedList, Default: "a,b" }
  Age: { Type: Number, Default: 90 }
  Topic: { Type: String, Default: "" }
Conditions:
  HasTopic: !Not [!Equals [!Ref Topic, ""]]
Resources:
  Key: { Type: AWS::KMS::Key }
  Thing:
    Type: Custom::Thing
    Properties:
      ServiceToken: !ImportValue { "Fn::Sub": "${AWS::StackName}-ThingFunctionArn" }
      Names: !Ref Names
      Age: !Ref Age
      Literal: 7
      Topic: !If [HasTopic, !Ref Topic, !Ref AWS::NoValue]
      Key: !GetAtt Key.Arn
      Rules:
        - !If [HasTopic, { Name: !Sub "rule-${Age}" }, !Ref AWS::NoValue]
        - Name: fixed
"#,
    );
    let variants = property_variants(&stack, "Thing");
    assert_eq!(variants.len(), 4, "two Fn::If, two branches each: {variants:#?}");
    for properties in &variants {
        assert_eq!(properties["Names"], json!(["a", "b"]));
        assert_eq!(
            properties["Age"],
            json!("90"),
            "CloudFormation sends numbers as strings"
        );
        assert_eq!(properties["Literal"], json!("7"));
        assert!(properties["Key"].as_str().unwrap().starts_with("arn:aws:"));
        assert!(properties["ServiceToken"]
            .as_str()
            .unwrap()
            .ends_with("tap-stack-ThingFunctionArn"));
    }
    let without_topic = variants.iter().filter(|p| p.get("Topic").is_none()).count();
    assert_eq!(without_topic, 2, "AWS::NoValue leaves the property out");
    let rule_counts: BTreeSet<usize> = variants.iter().map(|p| p["Rules"].as_array().unwrap().len()).collect();
    assert_eq!(
        rule_counts,
        BTreeSet::from([1, 2]),
        "AWS::NoValue in a list drops the element"
    );
    assert!(variants.iter().any(|p| p["Rules"][0]["Name"] == "rule-90"));
}

/// The handlers' OnFailure destination (handlers/failure-answerer): a function, not a custom resource.
const FAILURE_ANSWERER: &str = "failure-answerer";

/// template.yml's functions by the binary they run: (logical id, resource).
fn functions_by_binary(functions: &Template) -> BTreeMap<String, (String, Value)> {
    functions
        .resources_of_type("AWS::Serverless::Function")
        .map(|(logical_id, function)| {
            let binary = function["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{logical_id}: no Metadata.BuildProperties.Binary"))
                .to_string();
            (binary, (logical_id.to_string(), function.clone()))
        })
        .collect()
}

/// Export name (with `${AWS::StackName}` standing for its prefix) → the function whose ARN it exports.
/// Every export is `!Sub ["${ExportPrefixOrStack}-...", {ExportPrefixOrStack: ExportPrefix, or the
/// stack's name when that is empty}]`: a StackSet instance's stack is not named as the functions stack.
fn exported_functions(functions: &Template) -> BTreeMap<String, String> {
    let prefix = serde_json::json!({"Fn::If": ["HasExportPrefix", {"Ref": "ExportPrefix"}, {"Ref": "AWS::StackName"}]});
    functions
        .outputs()
        .filter_map(|(output_id, output)| {
            let target = output["Value"]["Fn::GetAtt"].as_array()?;
            if target[1] != "Arn" {
                return None;
            }
            let sub = output["Export"]["Name"]["Fn::Sub"].as_array()?;
            assert_eq!(
                sub[1]["ExportPrefixOrStack"], prefix,
                "{output_id}: the export's prefix is ExportPrefix, else the stack's name"
            );
            let name = sub[0].as_str()?.replace("${ExportPrefixOrStack}", "${AWS::StackName}");
            Some((name, target[0].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

#[test]
fn every_service_token_imports_the_function_that_runs_the_same_handler() {
    let functions = functions_template();
    let by_binary = functions_by_binary(&functions);
    let exports = exported_functions(&functions);
    let mut seen = BTreeSet::new();
    let (tap, org) = (tap_stack(), org_stack());
    let resources = tap.custom_resources().chain(org.custom_resources());
    for (logical_id, resource) in resources {
        let handler = handler_for(resource["Type"].as_str().expect("Type"));
        let token = &resource["Properties"]["ServiceToken"]["Fn::ImportValue"]["Fn::Sub"];
        let import = token
            .as_str()
            .unwrap_or_else(|| panic!("{logical_id}: ServiceToken must be !ImportValue of a !Sub name, got {token}"));
        let export_suffix = import.strip_prefix("${FunctionsStackName}").unwrap_or_else(|| {
            panic!("{logical_id}: ServiceToken {import} is not one of FunctionsStackName's exports")
        });
        let exported = exports
            .get(&format!("${{AWS::StackName}}{export_suffix}"))
            .unwrap_or_else(|| panic!("{logical_id}: template.yml exports no {export_suffix}"));
        let (runs_handler, _) = &by_binary
            .get(handler.binary)
            .unwrap_or_else(|| panic!("template.yml has no function for {}", handler.binary));
        assert_eq!(
            exported, runs_handler,
            "{logical_id} ({}) imports the ARN of {exported}, but {runs_handler} runs {}",
            handler.resource_type, handler.binary
        );
        let timeout = &resource["Properties"]["ServiceTimeout"];
        assert!(!timeout.is_null(), "{logical_id}: no ServiceTimeout");
        seen.insert(handler.binary);
    }
    for handler in handlers() {
        assert!(
            seen.contains(handler.binary),
            "neither TapStack.yml nor OrgStack.yml uses {}",
            handler.resource_type
        );
    }
}

#[test]
fn every_handler_binary_is_a_function_in_template_yml() {
    let functions = functions_template();
    let by_binary = functions_by_binary(&functions);
    let on_disk: BTreeSet<String> = std::fs::read_dir(root().join("handlers"))
        .expect("handlers/")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").exists())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    let deployed: BTreeSet<String> = by_binary.keys().cloned().collect();
    assert_eq!(deployed, on_disk, "template.yml's functions and handlers/ differ");
    let mut listed: BTreeSet<String> = handlers().iter().map(|h| h.binary.to_string()).collect();
    // Not a custom resource: the handlers' failure destination.
    listed.insert(FAILURE_ANSWERER.to_string());
    assert_eq!(listed, on_disk, "this test's handlers() and handlers/ differ");

    let globals = &functions.body["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Architectures"], json!([{"Ref": "Architecture"}]));
    assert_eq!(
        functions.parameter("Architecture")["AllowedValues"],
        json!(["x86_64", "arm64"])
    );
    for (binary, (logical_id, function)) in &by_binary {
        assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda", "{logical_id}");
        for key in ["Runtime", "Handler", "Architectures"] {
            assert!(
                function["Properties"].get(key).is_none(),
                "{logical_id} ({binary}) overrides the global {key}"
            );
        }
    }
}

#[test]
fn every_function_has_its_own_role_encrypted_json_logs_and_two_alarms() {
    let functions = functions_template();
    let globals = &functions.body["Globals"]["Function"];
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    assert_eq!(globals["EventInvokeConfig"]["MaximumRetryAttempts"], 0);

    let filters: Vec<&Value> = functions
        .resources_of_type("AWS::Logs::MetricFilter")
        .map(|(_, f)| f)
        .collect();
    let alarms: Vec<&Value> = functions
        .resources_of_type("AWS::CloudWatch::Alarm")
        .map(|(_, a)| a)
        .collect();
    let mut roles = BTreeSet::new();
    for (binary, (logical_id, function)) in functions_by_binary(&functions) {
        let properties = &function["Properties"];
        let role = properties["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{logical_id}: Role must be !GetAtt <its role>.Arn"));
        assert!(
            roles.insert(role.to_string()),
            "{role} is shared by more than one function"
        );
        let role_policies = functions.resource(role)["Properties"]["Policies"].to_string();
        assert!(!role_policies.contains("\"*:*\"") && !role_policies.contains("\"Action\":\"*\""));
        assert!(functions.resource(role)["Properties"]
            .get("ManagedPolicyArns")
            .is_none());

        let log_group_id = properties["LoggingConfig"]["LogGroup"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{logical_id}: LoggingConfig.LogGroup must be !Ref its log group"));
        let log_group = &functions.resource(log_group_id)["Properties"];
        assert!(
            log_group.get("KmsKeyId").is_some(),
            "{log_group_id} is not KMS-encrypted"
        );
        assert!(
            log_group.get("RetentionInDays").is_some(),
            "{log_group_id} keeps logs forever"
        );

        let filter = filters
            .iter()
            .find(|f| f["Properties"]["LogGroupName"]["Ref"] == log_group_id)
            .unwrap_or_else(|| panic!("{logical_id} ({binary}): no metric filter on {log_group_id}"));
        assert_eq!(filter["Properties"]["FilterPattern"], FAILED_FILTER);
        let metric = &filter["Properties"]["MetricTransformations"][0];
        assert!(
            alarms
                .iter()
                .any(|a| a["Properties"]["MetricName"] == metric["MetricName"]
                    && a["Properties"]["Namespace"] == metric["MetricNamespace"]),
            "{logical_id}: no alarm on {}",
            metric["MetricName"]
        );
        assert!(
            alarms.iter().any(|a| a["Properties"]["MetricName"] == "Errors"
                && a["Properties"]["Namespace"] == "AWS/Lambda"
                && a["Properties"]["Dimensions"][0]["Value"]["Ref"] == logical_id),
            "{logical_id}: no alarm on its Lambda Errors"
        );
    }
}

#[test]
fn the_scheduled_function_reads_settings_named_like_its_properties() {
    let functions = functions_template();
    let (_, rotation) = &functions_by_binary(&functions)["access-key-rotation"];
    let schedules: Vec<&Value> = rotation["Properties"]["Events"]
        .as_object()
        .map(|events| {
            events
                .values()
                // The daily verify pass (issue 15) is a schedule of its own, with its own Input.
                .filter(|e| e["Type"] == "Schedule" && e["Properties"]["Input"] != r#"{"tapguard": "verify"}"#)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(schedules.len(), 1, "the access-key pass runs on one schedule");
    assert_eq!(
        schedules[0]["Properties"]["Schedule"],
        json!({"Ref": "RotationSchedule"})
    );
    for (binary, (logical_id, function)) in functions_by_binary(&functions) {
        let Some(variables) = function["Properties"]["Environment"].get("Variables") else {
            continue;
        };
        if binary == FAILURE_ANSWERER {
            continue;
        }
        let handler = handlers().into_iter().find(|h| h.binary == binary).expect("listed");
        let Some(parse) = handler.parse else { continue };
        for resolved in functions.resolve(variables).into_iter().flatten() {
            // The runtime leaves empty variables out, as the handler reads an unset one.
            let set: serde_json::Map<String, Value> = resolved
                .as_object()
                .expect("variables")
                .iter()
                .filter(|(_, v)| v.as_str() != Some(""))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Err(problem) = parse(&Value::Object(set)) {
                panic!(
                    "{logical_id}: its environment does not parse as {} properties: {problem}",
                    handler.resource_type
                );
            }
        }
    }
}

#[test]
fn custom_resources_always_wait_longer_than_the_functions_can_run() {
    let functions = functions_template();
    let longest_run = functions.parameter("FunctionTimeout")["MaxValue"]
        .as_u64()
        .expect("FunctionTimeout has a MaxValue");
    for stack in [tap_stack(), org_stack()] {
        for (logical_id, resource) in stack.custom_resources() {
            let timeout = &resource["Properties"]["ServiceTimeout"];
            let shortest_wait = match timeout {
                Value::Object(f) if f.contains_key("Ref") => {
                    let parameter = stack.parameter(f["Ref"].as_str().expect("Ref"));
                    parameter["MinValue"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("{logical_id}: its ServiceTimeout parameter has no MinValue"))
                }
                other => other
                    .as_u64()
                    .or_else(|| other.as_str().and_then(|s| s.parse().ok()))
                    .unwrap_or_else(|| panic!("{logical_id}: ServiceTimeout {other}")),
            };
            assert!(
            shortest_wait > longest_run,
            "{logical_id}: CloudFormation may stop waiting after {shortest_wait} s while the function may run {longest_run} s"
        );
        }
    }
}

/// Data keys a handler documents in the Data section of its README: the first cell of each table row
/// (`| `Key` |` or `| `KeyA`, `KeyB` |`), or, for a section written as prose, every `PascalCase` name.
fn documented_data_keys(binary: &str) -> Option<BTreeSet<String>> {
    let readme = std::fs::read_to_string(root().join("handlers").join(binary).join("README.md")).ok()?;
    let section = readme.split("\n## Data").nth(1)?;
    let section = section.split("\n## ").next().unwrap_or(section);
    let quoted = |text: &str| -> Vec<String> { text.split('`').skip(1).step_by(2).map(str::to_string).collect() };
    let from_table: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix('|'))
        .filter_map(|row| row.split('|').next())
        .flat_map(quoted)
        .collect();
    if !from_table.is_empty() {
        return Some(from_table);
    }
    let pascal_case = |name: &String| {
        name.starts_with(|c: char| c.is_ascii_uppercase()) && name.chars().all(|c| c.is_ascii_alphanumeric())
    };
    Some(quoted(section).into_iter().filter(pascal_case).collect())
}

#[test]
fn outputs_read_only_data_keys_the_handlers_document() {
    let mut read = 0;
    for stack in [tap_stack(), org_stack()] {
        for (name, output) in stack.outputs() {
            let Some(target) = output["Value"]["Fn::GetAtt"].as_array() else {
                continue;
            };
            let (logical_id, key) = (target[0].as_str().unwrap(), target[1].as_str().unwrap());
            let resource_type = stack.resource(logical_id)["Type"].as_str().unwrap_or_default();
            if !resource_type.starts_with("Custom::") {
                continue;
            }
            let handler = handler_for(resource_type);
            match documented_data_keys(handler.binary) {
                Some(keys) => assert!(
                    keys.contains(key),
                    "output {name} reads {logical_id}.{key}, but handlers/{}/README.md documents only {keys:?}",
                    handler.binary
                ),
                None => assert!(
                    handler.parse.is_none(),
                    "handlers/{}/README.md has no Data table",
                    handler.binary
                ),
            }
            read += 1;
        }
    }
    assert!(
        read >= handlers().len(),
        "every custom resource's status should be an output"
    );
}

const FAILED_FILTER: &str = r#"{ $.outcome = "FAILED" }"#;

/// CloudWatch Logs' JSON filter syntax, as far as template.yml uses it: `{ $.field = "value" }`.
fn filter_matches(pattern: &str, event: &Value) -> bool {
    let inner = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not a JSON filter pattern: {pattern}"));
    let (selector, value) = inner
        .split_once('=')
        .unwrap_or_else(|| panic!("only `$.field = \"value\"` is understood here: {pattern}"));
    let field = selector.trim().strip_prefix("$.").expect("a $. selector");
    let value = value.trim().trim_matches('"');
    event.pointer(&format!("/{}", field.replace('.', "/"))) == Some(&Value::String(value.to_string()))
}

#[test]
fn the_failed_answer_alarm_counts_the_runtimes_failed_log_lines_and_nothing_else() {
    let functions = functions_template();
    let pattern = functions
        .resources_of_type("AWS::Logs::MetricFilter")
        .map(|(_, f)| f["Properties"]["FilterPattern"].as_str().unwrap().to_string())
        .next()
        .expect("a metric filter");

    // The real handler binary: one FAILED answer (a property it does not know), one SUCCESS.
    let w = World::new("ebs-default-encryption", "eu-west-1");
    let mut failing = w.resource("Custom::EbsDefaultEncryption", "Misspelled");
    let failed = failing.create(json!({"KmsKeyID": "alias/aws/ebs"}));
    assert_eq!(failed.status(), "FAILED");
    let mut working = w.resource("Custom::EbsDefaultEncryption", "Managed");
    let succeeded = working.create(json!({}));
    assert_eq!(succeeded.status(), "SUCCESS", "{}", succeeded.reason());

    // The runtime logs an event's line after its answer was delivered (the line says so), so the second
    // line may follow the answer by a moment on a loaded machine: wait for it, within a generous bound.
    let handled_lines = || -> Vec<Value> {
        w.host
            .log_lines()
            .into_iter()
            .filter(|line| line["message"] == "custom resource event handled")
            .collect()
    };
    wait_until(std::time::Duration::from_secs(20), || handled_lines().len() >= 2);
    let handled = handled_lines();
    assert_eq!(handled.len(), 2, "one log line per event: {handled:#?}");
    let counted: Vec<&Value> = handled.iter().filter(|l| filter_matches(&pattern, l)).collect();
    assert_eq!(
        counted.len(),
        1,
        "{pattern} must count the FAILED answer only: {handled:#?}"
    );
    assert_eq!(counted[0]["logical_resource_id"], "Misspelled");
}

#[test]
fn the_readme_data_table_reader_finds_the_documented_keys() {
    let keys = documented_data_keys("ebs-default-encryption").expect("a Data table");
    let expected: BTreeSet<String> = ["Enabled", "KmsKeyId", "PreviouslyEnabled"].map(String::from).into();
    assert_eq!(keys, expected);
    assert!(documented_data_keys("no-such-handler").is_none());
}

/// The `service:Action` names in the Permissions section of a handler's README.
fn documented_permissions(binary: &str) -> BTreeSet<String> {
    let path = root().join("handlers").join(binary).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = readme
        .split("\n## Permissions")
        .nth(1)
        .unwrap_or_else(|| panic!("{}: no Permissions section", path.display()));
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| {
            name.split_once(':').is_some_and(|(service, action)| {
                !service.is_empty()
                    && service
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && action.starts_with(|c: char| c.is_ascii_uppercase())
                    && action.chars().all(|c| c.is_ascii_alphanumeric())
            })
        })
        .map(str::to_string)
        .collect()
}

/// Every action a role's policies allow: its inline policies and the RolePolicy resources attached to it.
fn role_actions(functions: &Template, role: &str) -> BTreeSet<String> {
    let mut documents: Vec<Value> = functions.resource(role)["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|policy| policy["PolicyDocument"].clone())
        .collect();
    documents.extend(
        functions
            .resources_of_type("AWS::IAM::RolePolicy")
            .filter(|(_, policy)| policy["Properties"]["RoleName"]["Ref"] == role)
            .map(|(_, policy)| policy["Properties"]["PolicyDocument"].clone()),
    );
    let mut actions = BTreeSet::new();
    for statement in documents
        .iter()
        .flat_map(|d| d["Statement"].as_array().cloned().unwrap_or_default())
    {
        // A Deny narrows what the Allows grant (e.g. no key of an exempt user may be changed): it grants
        // nothing, so it is not counted here; the handler's README documents it in its Permissions section.
        match statement["Effect"].as_str() {
            Some("Allow") => {}
            Some("Deny") => continue,
            other => panic!("{role}: Effect {other:?} in {statement}"),
        }
        match &statement["Action"] {
            Value::String(action) => {
                actions.insert(action.clone());
            }
            Value::Array(list) => actions.extend(list.iter().filter_map(Value::as_str).map(str::to_string)),
            other => panic!("{role}: Action {other}"),
        }
    }
    actions
}

#[test]
fn each_role_allows_exactly_the_actions_its_handler_documents() {
    let functions = functions_template();
    // Every function's own logs, and every handler's failure destination (the runtime's, not the handler's).
    let own_logs = BTreeSet::from([
        "logs:CreateLogStream".to_string(),
        "logs:PutLogEvents".to_string(),
        "lambda:InvokeFunction".to_string(),
    ]);
    let mut problems = Vec::new();
    for (binary, (logical_id, function)) in functions_by_binary(&functions) {
        let role = function["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .expect("Role is !GetAtt <role>.Arn");
        let granted: BTreeSet<String> = role_actions(&functions, role).difference(&own_logs).cloned().collect();
        let documented = documented_permissions(&binary);
        let undocumented: Vec<&String> = granted.difference(&documented).collect();
        let missing: Vec<&String> = documented.difference(&granted).collect();
        if !undocumented.is_empty() || !missing.is_empty() {
            problems.push(format!(
                "{logical_id} ({role}): granted but not in handlers/{binary}/README.md: {undocumented:?}; \
                 documented but not granted: {missing:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn orgstack_reads_as_a_template_and_its_custom_resources_parse_with_their_handlers() {
    let org = org_stack();
    let mut failures = Vec::new();
    for (logical_id, resource) in org.custom_resources() {
        let handler = handler_for(resource["Type"].as_str().expect("Type"));
        assert!(
            !resource["Properties"]["ServiceTimeout"].is_null(),
            "{logical_id}: no ServiceTimeout"
        );
        let Some(parse) = handler.parse else { continue };
        for properties in property_variants(&org, logical_id) {
            if let Err(problem) = parse(&properties) {
                failures.push(format!("{logical_id}: {problem}"));
            }
        }
    }
    assert!(failures.is_empty(), "OrgStack.yml drifted: {}", failures.join("\n"));
    // GuardDuty's and Config's delegated administrators: the custom resource, one of each, in the management account.
    let mut delegated: Vec<(String, String)> = org
        .resources_of_type("Custom::DelegatedAdministrator")
        .map(|(_, r)| {
            (
                r["Properties"]["Service"].as_str().unwrap_or_default().to_string(),
                r["Condition"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    delegated.sort();
    assert_eq!(
        delegated,
        vec![
            ("Config".to_string(), "CreateConfigAdmin".to_string()),
            ("GuardDuty".to_string(), "CreateGuardDutyAdmin".to_string())
        ]
    );
    // Native types where CloudFormation has them: the Security Hub administrator and central configuration.
    assert_eq!(org.resources_of_type("AWS::SecurityHub::DelegatedAdmin").count(), 1);
    let (_, central) = org
        .resources_of_type("AWS::SecurityHub::OrganizationConfiguration")
        .next()
        .expect("central configuration");
    assert_eq!(central["Properties"]["ConfigurationType"], "CENTRAL");
    let (_, aggregator) = org
        .resources_of_type("AWS::Config::ConfigurationAggregator")
        .next()
        .expect("an organization aggregator");
    assert!(aggregator["Properties"]["OrganizationAggregationSource"].is_object());
    let (_, trail) = org
        .resources_of_type("AWS::CloudTrail::Trail")
        .next()
        .expect("the organization trail option");
    assert_eq!(trail["Properties"]["IsOrganizationTrail"], true);
    assert_eq!(trail["Condition"], "CreateTrail");
}

#[test]
fn the_mfa_group_denies_all_but_mfa_self_service_without_mfa_and_adds_no_users() {
    let stack = tap_stack();
    let policy = stack.resource("RequireMfaPolicy");
    assert_eq!(
        policy["Condition"], "IsHomeRegion",
        "IAM is global: one policy per account"
    );
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_array()
        .expect("statements");
    let deny = statements
        .iter()
        .find(|s| s["Effect"] == "Deny")
        .expect("a Deny statement");
    assert_eq!(deny["Resource"], "*");
    assert_eq!(
        deny["Condition"]["BoolIfExists"]["aws:MultiFactorAuthPresent"], "false",
        "BoolIfExists: long-term keys (no MFA context at all) are denied too"
    );
    let allowed_without_mfa: BTreeSet<&str> = deny["NotAction"]
        .as_array()
        .expect("NotAction")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for needed in [
        "iam:CreateVirtualMFADevice",
        "iam:EnableMFADevice",
        "sts:GetSessionToken",
    ] {
        assert!(
            allowed_without_mfa.contains(needed),
            "{needed} must stay possible without MFA"
        );
    }
    let group = stack.resource("RequireMfaGroup");
    assert_eq!(
        group["Properties"]["ManagedPolicyArns"],
        json!([{"Ref": "RequireMfaPolicy"}])
    );
    assert!(
        stack
            .resources_of_type("AWS::IAM::UserToGroupAddition")
            .next()
            .is_none(),
        "the stack must not put existing users in the group (it would lock out those without MFA)"
    );
    assert_eq!(stack.parameter("EnableShieldAdvanced")["Default"], "false");
    assert!(stack.parameter("EnableShieldAdvanced")["Description"]
        .as_str()
        .is_some_and(|d| d.contains("ONE-YEAR COMMITMENT")));
    assert_eq!(stack.resource("PasswordPolicy")["Condition"], "IsHomeRegion");
}
