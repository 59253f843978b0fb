//! CloudFormation templates as data, for tests that keep the templates and the code from drifting apart.
//!
//! [`Template::load`] reads a YAML template, short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...) included, into
//! JSON in long form (`{"Ref": ...}`, `{"Fn::GetAtt": [..]}`), with the decoder of the project's pinned
//! cfn-lint (in `.venv`, which the emulator needs anyway): it reads templates as CloudFormation does. [`Template::resolve`] then replaces intrinsic
//! functions with placeholder values of the shape CloudFormation would send a custom resource: strings for
//! scalars (CloudFormation sends every scalar as a string), lists for list parameters and `Fn::Split`, the
//! property left out for `AWS::NoValue`, and one result per combination of `Fn::If` branches, so every
//! shape a stack can send is checked.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

/// More `Fn::If` combinations than this in one value means a runaway template, not a real one.
const MAX_VARIANTS: usize = 4096;

pub const ACCOUNT_ID: &str = "123456789012";
pub const REGION: &str = "us-east-1";
const STACK_NAME: &str = "tap-stack";

pub struct Template {
    pub name: String,
    /// The whole template, in long form.
    pub body: Value,
}

/// Reads a template from stdin, writes it as JSON in long form; a template cfn-lint cannot read is an error.
const DECODE: &str = r#"
import json, sys
from cfnlint.decode import decode_str
template, problems = decode_str(sys.stdin.read())
if problems:
    sys.exit("\n".join(str(p) for p in problems))
json.dump(template, sys.stdout)
"#;

impl Template {
    /// Loads `root/<file>`; `root` is the project, whose `.venv` holds cfn-lint.
    pub fn load(root: &Path, file: &str) -> Template {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Template::parse(root, file, &text)
    }

    pub fn parse(root: &Path, name: &str, text: &str) -> Template {
        let python = root.join(".venv/bin/python");
        let mut decoder = Command::new(&python)
            .args(["-c", DECODE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run `make venv`)", python.display()));
        decoder
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("template to the decoder");
        let decoded = decoder.wait_with_output().expect("decoder output");
        assert!(
            decoded.status.success(),
            "{name} does not read as a template: {}",
            String::from_utf8_lossy(&decoded.stderr)
        );
        Template {
            name: name.to_string(),
            body: serde_json::from_slice(&decoded.stdout).unwrap_or_else(|e| panic!("{name}: {e}")),
        }
    }

    pub fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.section("Resources")
    }

    pub fn resource(&self, logical_id: &str) -> &Value {
        self.body["Resources"]
            .get(logical_id)
            .unwrap_or_else(|| panic!("{}: no resource {logical_id}", self.name))
    }

    /// Resources of one type, e.g. `AWS::Serverless::Function`.
    pub fn resources_of_type<'a>(&'a self, resource_type: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> {
        self.resources()
            .filter(move |(_, resource)| resource["Type"] == resource_type)
    }

    /// Custom resources: `Custom::<Name>` or `AWS::CloudFormation::CustomResource`.
    pub fn custom_resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.resources().filter(|(_, resource)| {
            let kind = resource["Type"].as_str().unwrap_or_default();
            kind.starts_with("Custom::") || kind == "AWS::CloudFormation::CustomResource"
        })
    }

    pub fn parameter(&self, name: &str) -> &Value {
        self.body["Parameters"]
            .get(name)
            .unwrap_or_else(|| panic!("{}: no parameter {name}", self.name))
    }

    pub fn outputs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.section("Outputs")
    }

    fn section(&self, name: &str) -> impl Iterator<Item = (&str, &Value)> {
        self.body
            .get(name)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|section| section.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// Every value `value` can take once CloudFormation has resolved its intrinsic functions: one per
    /// combination of `Fn::If` branches; `None` where the whole value is `AWS::NoValue`.
    pub fn resolve(&self, value: &Value) -> Vec<Option<Value>> {
        let variants = self.variants(value);
        assert!(
            variants.len() <= MAX_VARIANTS,
            "{}: {} combinations of Fn::If",
            self.name,
            variants.len()
        );
        variants
    }

    fn variants(&self, value: &Value) -> Vec<Option<Value>> {
        match value {
            Value::Array(items) => {
                // AWS::NoValue in a list takes the element out.
                let per_item: Vec<Vec<Option<Value>>> = items.iter().map(|item| self.variants(item)).collect();
                product(&per_item)
                    .into_iter()
                    .map(|chosen| Some(Value::Array(chosen.into_iter().flatten().collect())))
                    .collect()
            }
            Value::Object(map) if map.len() == 1 && is_intrinsic(map.keys().next().expect("one key")) => {
                let (function, argument) = map.iter().next().expect("one key");
                self.intrinsic(function, argument)
            }
            Value::Object(map) => {
                let names: Vec<&String> = map.keys().collect();
                let per_field: Vec<Vec<Option<Value>>> = map.values().map(|v| self.variants(v)).collect();
                product(&per_field)
                    .into_iter()
                    .map(|chosen| {
                        let object: Map<String, Value> = names
                            .iter()
                            .zip(chosen)
                            .filter_map(|(name, v)| v.map(|v| (name.to_string(), v)))
                            .collect();
                        Some(Value::Object(object))
                    })
                    .collect()
            }
            Value::Number(n) => vec![Some(Value::String(n.to_string()))],
            Value::Bool(b) => vec![Some(Value::String(b.to_string()))],
            other => vec![Some(other.clone())],
        }
    }

    fn intrinsic(&self, function: &str, argument: &Value) -> Vec<Option<Value>> {
        let args = argument.as_array().map(Vec::as_slice).unwrap_or_default();
        match function {
            "Ref" => vec![self.reference(argument.as_str().expect("Ref takes a name"))],
            "Fn::If" => {
                assert_eq!(args.len(), 3, "{}: Fn::If takes [condition, then, else]", self.name);
                let mut both = self.variants(&args[1]);
                both.extend(self.variants(&args[2]));
                both
            }
            "Fn::GetAtt" => {
                let (resource, attribute) = match argument {
                    Value::Array(parts) => (
                        parts[0].as_str().unwrap_or_default().to_string(),
                        parts[1].as_str().unwrap_or_default().to_string(),
                    ),
                    Value::String(dotted) => {
                        let (r, a) = dotted.split_once('.').expect("GetAtt Resource.Attribute");
                        (r.to_string(), a.to_string())
                    }
                    other => panic!("{}: Fn::GetAtt of {other}", self.name),
                };
                vec![Some(Value::String(attribute_placeholder(&resource, &attribute)))]
            }
            "Fn::Sub" => {
                let (text, names) = match argument {
                    Value::String(text) => (text.as_str(), Map::new()),
                    Value::Array(parts) => (
                        parts[0].as_str().expect("Fn::Sub string"),
                        parts.get(1).and_then(Value::as_object).cloned().unwrap_or_default(),
                    ),
                    other => panic!("{}: Fn::Sub of {other}", self.name),
                };
                vec![Some(Value::String(self.substitute(text, &names)))]
            }
            "Fn::Join" => {
                let delimiter = args[0].as_str().expect("Fn::Join delimiter");
                let items = self.one(&args[1]);
                let parts: Vec<String> = match items {
                    Value::Array(items) => items.iter().map(scalar_text).collect(),
                    other => vec![scalar_text(&other)],
                };
                vec![Some(Value::String(parts.join(delimiter)))]
            }
            "Fn::Split" => {
                let delimiter = args[0].as_str().expect("Fn::Split delimiter");
                let text = scalar_text(&self.one(&args[1]));
                vec![Some(Value::Array(
                    text.split(delimiter).map(|s| Value::String(s.to_string())).collect(),
                ))]
            }
            "Fn::Select" => {
                let index: usize = scalar_text(&self.one(&args[0])).parse().expect("Fn::Select index");
                let picked = match self.one(&args[1]) {
                    Value::Array(items) => items.get(index).cloned().unwrap_or(Value::String("selected".into())),
                    other => other,
                };
                vec![Some(picked)]
            }
            "Fn::ImportValue" => {
                let name = scalar_text(&self.one(argument));
                vec![Some(Value::String(format!(
                    "arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:imported-{}",
                    name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
                )))]
            }
            "Fn::FindInMap" => {
                let keys: Vec<String> = args.iter().map(|a| scalar_text(&self.one(a))).collect();
                let found = self.body["Mappings"]
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .cloned()
                    .unwrap_or_else(|| Value::String(keys.join(".")));
                vec![Some(found)]
            }
            "Fn::GetAZs" => vec![Some(serde_json::json!([format!("{REGION}a"), format!("{REGION}b")]))],
            "Fn::Cidr" => vec![Some(serde_json::json!(["10.0.0.0/24", "10.0.1.0/24"]))],
            "Fn::Base64" => vec![Some(Value::String(scalar_text(&self.one(argument))))],
            "Fn::ToJsonString" => vec![Some(Value::String(self.one(argument).to_string()))],
            "Fn::Length" => {
                let length = self.one(argument).as_array().map_or(0, Vec::len);
                vec![Some(Value::String(length.to_string()))]
            }
            other => panic!("{}: intrinsic function {other} is not known to this test", self.name),
        }
    }

    /// The first resolution of a value that must be present (inside Join, Split, Select, ...).
    fn one(&self, value: &Value) -> Value {
        self.variants(value)
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_else(|| panic!("{}: AWS::NoValue where a value is required: {value}", self.name))
    }

    fn reference(&self, name: &str) -> Option<Value> {
        let text = |s: &str| Some(Value::String(s.to_string()));
        match name {
            "AWS::NoValue" => None,
            "AWS::Region" => text(REGION),
            "AWS::AccountId" => text(ACCOUNT_ID),
            "AWS::Partition" => text("aws"),
            "AWS::URLSuffix" => text("amazonaws.com"),
            "AWS::StackName" => text(STACK_NAME),
            "AWS::StackId" => text(&format!(
                "arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/0b4b8f70-5a3e-11ef-8a3c-0a1b2c3d4e5f"
            )),
            "AWS::NotificationARNs" => Some(serde_json::json!([])),
            _ => {
                if let Some(parameter) = self.body["Parameters"].get(name) {
                    return Some(parameter_value(parameter));
                }
                if self.body["Resources"].get(name).is_some() {
                    return text(&format!("{name}-physical-id"));
                }
                panic!(
                    "{}: Ref to {name}, which is neither a parameter nor a resource",
                    self.name
                )
            }
        }
    }

    /// `${Name}`, `${Resource.Attribute}` and `${!Literal}` as Fn::Sub reads them.
    fn substitute(&self, text: &str, names: &Map<String, Value>) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .unwrap_or_else(|| panic!("{}: unclosed ${{ in {text}", self.name));
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = names.get(name) {
                out.push_str(&scalar_text(&self.one(value)));
            } else if let Some((resource, attribute)) = name.split_once('.') {
                out.push_str(&attribute_placeholder(resource, attribute));
            } else {
                let value = self
                    .reference(name)
                    .unwrap_or_else(|| panic!("{}: AWS::NoValue in Fn::Sub", self.name));
                out.push_str(&scalar_text(&value));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

fn is_intrinsic(key: &str) -> bool {
    key == "Ref" || key.starts_with("Fn::")
}

/// A parameter as CloudFormation passes it: its default (lists split on commas), or a placeholder of its type.
fn parameter_value(parameter: &Value) -> Value {
    let kind = parameter["Type"].as_str().unwrap_or("String");
    let default = parameter.get("Default").map(scalar_text);
    if kind == "CommaDelimitedList" || kind.starts_with("List<") {
        let items = default.unwrap_or_else(|| "placeholder".into());
        return Value::Array(items.split(',').map(|s| Value::String(s.trim().to_string())).collect());
    }
    match (kind, default) {
        (_, Some(value)) => Value::String(value),
        ("Number", None) => Value::String("1".into()),
        (_, None) => Value::String("placeholder".into()),
    }
}

fn attribute_placeholder(resource: &str, attribute: &str) -> String {
    if attribute == "Arn" || attribute.ends_with("Arn") {
        format!("arn:aws:placeholder:{REGION}:{ACCOUNT_ID}:{resource}/{attribute}")
    } else {
        format!("{resource}.{attribute}")
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Every combination of one choice per slot.
fn product(slots: &[Vec<Option<Value>>]) -> Vec<Vec<Option<Value>>> {
    let mut combinations: Vec<Vec<Option<Value>>> = vec![Vec::new()];
    for choices in slots {
        let mut next = Vec::with_capacity(combinations.len() * choices.len());
        for partial in &combinations {
            for choice in choices {
                let mut extended = partial.clone();
                extended.push(choice.clone());
                next.push(extended);
            }
        }
        assert!(
            next.len() <= MAX_VARIANTS,
            "more than {MAX_VARIANTS} combinations of Fn::If"
        );
        combinations = next;
    }
    combinations
}
