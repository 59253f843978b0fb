//! Reads a CloudFormation template (YAML with the short-form tags, or JSON) and evaluates the parts
//! that `local` needs: parameters, conditions, the intrinsic functions, and the order CloudFormation
//! creates resources in.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

/// A template with its resources in the order they are written (the tie-breaker CloudFormation's
/// dependency order leaves open, and the order a reader expects).
#[derive(Debug, Clone)]
pub struct Template {
    pub parameters: Map<String, Value>,
    pub conditions: Map<String, Value>,
    pub mappings: Map<String, Value>,
    pub resources: Vec<(String, Value)>,
    pub outputs: Vec<(String, Value)>,
    /// The macros named by `Transform` (e.g. `AWS::Serverless-2016-10-31`).
    pub transforms: Vec<String>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let yaml: serde_yaml::Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            // JSON indented with tabs is valid JSON but not valid YAML.
            Err(yaml_err) => match serde_json::from_str::<Value>(text) {
                Ok(json) => serde_yaml::to_value(json).map_err(|e| e.to_string())?,
                Err(_) => return Err(format!("not a YAML or JSON template: {yaml_err}")),
            },
        };
        let serde_yaml::Value::Mapping(top) = yaml else {
            return Err("the template is not a mapping".into());
        };
        let section = |name: &str| -> Result<Vec<(String, Value)>, String> {
            match top.get(name) {
                None | Some(serde_yaml::Value::Null) => Ok(Vec::new()),
                Some(serde_yaml::Value::Mapping(m)) => m
                    .iter()
                    .map(|(k, v)| Ok((key_string(k)?, to_json(v)?)))
                    .collect::<Result<Vec<_>, String>>(),
                Some(_) => Err(format!("section {name} is not a mapping")),
            }
        };
        let resources = section("Resources")?;
        if resources.is_empty() {
            return Err("the template has no Resources".into());
        }
        Ok(Template {
            parameters: section("Parameters")?.into_iter().collect(),
            conditions: section("Conditions")?.into_iter().collect(),
            mappings: section("Mappings")?.into_iter().collect(),
            resources,
            outputs: section("Outputs")?,
            transforms: match top.get("Transform") {
                Some(serde_yaml::Value::String(t)) => vec![t.clone()],
                Some(serde_yaml::Value::Sequence(list)) => list
                    .iter()
                    .filter_map(|t| match t {
                        serde_yaml::Value::String(t) => Some(t.clone()),
                        serde_yaml::Value::Mapping(m) => m.get("Name").and_then(|n| n.as_str()).map(str::to_string),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
        })
    }

    /// The capabilities a change set of this template must acknowledge: CAPABILITY_IAM for IAM
    /// resources, CAPABILITY_NAMED_IAM when one of them has a custom name, CAPABILITY_AUTO_EXPAND for
    /// a macro (a SAM template also gets CAPABILITY_IAM: the transform creates the functions' roles).
    pub fn required_capabilities(&self) -> Vec<&'static str> {
        const IAM: [&str; 11] = [
            "AWS::IAM::AccessKey",
            "AWS::IAM::Group",
            "AWS::IAM::GroupPolicy",
            "AWS::IAM::InstanceProfile",
            "AWS::IAM::ManagedPolicy",
            "AWS::IAM::Policy",
            "AWS::IAM::Role",
            "AWS::IAM::RolePolicy",
            "AWS::IAM::User",
            "AWS::IAM::UserPolicy",
            "AWS::IAM::UserToGroupAddition",
        ];
        const NAMES: [(&str, &str); 5] = [
            ("AWS::IAM::Role", "RoleName"),
            ("AWS::IAM::User", "UserName"),
            ("AWS::IAM::Group", "GroupName"),
            ("AWS::IAM::ManagedPolicy", "ManagedPolicyName"),
            ("AWS::IAM::InstanceProfile", "InstanceProfileName"),
        ];
        let sam = self.transforms.iter().any(|t| t.starts_with("AWS::Serverless"));
        let iam = sam
            || self
                .resources
                .iter()
                .any(|(_, r)| r["Type"].as_str().is_some_and(|t| IAM.contains(&t)));
        let named = self.resources.iter().any(|(_, r)| {
            NAMES
                .iter()
                .any(|(t, field)| r["Type"] == json!(t) && !r["Properties"][*field].is_null())
        });
        let mut out = Vec::new();
        if named {
            out.push("CAPABILITY_NAMED_IAM");
        } else if iam {
            out.push("CAPABILITY_IAM");
        }
        if !self.transforms.is_empty() {
            out.push("CAPABILITY_AUTO_EXPAND");
        }
        out
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.resources.iter().find(|(id, _)| id == logical_id).map(|(_, r)| r)
    }

    pub fn resource_type(&self, logical_id: &str) -> Option<&str> {
        self.resource(logical_id).and_then(|r| r["Type"].as_str())
    }

    /// Every resource in an order where each comes after what it depends on (DependsOn, Ref, GetAtt,
    /// Sub), keeping the template's order where dependencies leave a choice.
    pub fn creation_order(&self) -> Result<Vec<String>, String> {
        let ids: BTreeSet<&str> = self.resources.iter().map(|(id, _)| id.as_str()).collect();
        let mut needs: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (id, resource) in &self.resources {
            let mut deps = BTreeSet::new();
            match &resource["DependsOn"] {
                Value::String(s) => {
                    deps.insert(s.clone());
                }
                Value::Array(list) => deps.extend(list.iter().filter_map(Value::as_str).map(str::to_string)),
                _ => {}
            }
            references(&resource["Properties"], &mut deps);
            let mut kept = BTreeSet::new();
            for dep in deps {
                if dep == *id {
                    return Err(format!("resource {id} refers to itself"));
                }
                if ids.contains(dep.as_str()) {
                    kept.insert(dep);
                } else if resource["DependsOn"] == json!(dep)
                    || resource["DependsOn"]
                        .as_array()
                        .is_some_and(|l| l.contains(&json!(dep)))
                {
                    return Err(format!(
                        "resource {id} DependsOn {dep}, which the template does not define"
                    ));
                }
            }
            needs.insert(id.as_str(), kept);
        }
        let mut order: Vec<String> = Vec::new();
        while order.len() < self.resources.len() {
            let next = self
                .resources
                .iter()
                .map(|(id, _)| id.as_str())
                .find(|id| !order.iter().any(|o| o == id) && needs[id].iter().all(|d| order.contains(d)));
            match next {
                Some(id) => order.push(id.to_string()),
                None => {
                    let stuck: Vec<&str> = self
                        .resources
                        .iter()
                        .map(|(id, _)| id.as_str())
                        .filter(|id| !order.iter().any(|o| o == id))
                        .collect();
                    return Err(format!("circular dependency between {}", stuck.join(", ")));
                }
            }
        }
        Ok(order)
    }
}

pub fn is_custom(resource_type: &str) -> bool {
    resource_type.starts_with("Custom::") || resource_type == "AWS::CloudFormation::CustomResource"
}

fn key_string(key: &serde_yaml::Value) -> Result<String, String> {
    match key {
        serde_yaml::Value::String(s) => Ok(s.clone()),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("unsupported mapping key {other:?}")),
    }
}

/// YAML to the JSON form of the template, turning the short-form tags (`!Ref X`, `!GetAtt A.B`,
/// `!Sub ...`) into their long forms (`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::Sub": ...}`).
fn to_json(value: &serde_yaml::Value) -> Result<Value, String> {
    Ok(match value {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => json!(b),
        serde_yaml::Value::Number(n) => serde_json::to_value(n).map_err(|e| e.to_string())?,
        serde_yaml::Value::String(s) => json!(s),
        serde_yaml::Value::Sequence(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key_string(k)?, to_json(v)?);
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = to_json(&tagged.value)?;
            match name {
                "Ref" | "Condition" => json!({ name: inner }),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (resource, attribute) = s
                            .split_once('.')
                            .ok_or_else(|| format!("!GetAtt {s}: expected Resource.Attribute"))?;
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                _ => json!({ format!("Fn::{name}"): inner }),
            }
        }
    })
}

/// The resources a value refers to by Ref, GetAtt or Sub (names may also be parameters or
/// pseudo-parameters; the caller keeps the resources).
pub fn references(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        Value::Object(map) => {
            if map.len() == 1 {
                let (k, v) = map.iter().next().expect("one entry");
                match (k.as_str(), v) {
                    ("Ref", Value::String(name)) => {
                        out.insert(name.clone());
                        return;
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(name) = parts.first().and_then(Value::as_str) {
                            out.insert(name.to_string());
                        }
                        return;
                    }
                    ("Fn::Sub", Value::String(text)) => {
                        out.extend(sub_names(text));
                        return;
                    }
                    ("Fn::Sub", Value::Array(parts)) => {
                        let vars = parts.get(1).and_then(Value::as_object);
                        if let Some(text) = parts.first().and_then(Value::as_str) {
                            out.extend(sub_names(text).filter(|n| !vars.is_some_and(|v| v.contains_key(n))));
                        }
                        if let Some(vars) = parts.get(1) {
                            references(vars, out);
                        }
                        return;
                    }
                    _ => {}
                }
            }
            map.values().for_each(|v| references(v, out));
        }
        _ => {}
    }
}

/// The names a `Fn::Sub` string refers to: `${Name}` and `${Name.Attribute}` (not `${!Literal}`).
fn sub_names(text: &str) -> impl Iterator<Item = String> + '_ {
    sub_tokens(text).filter_map(|t| match t {
        SubToken::Var(v) => Some(v.split('.').next().unwrap_or(v).to_string()),
        SubToken::Text(_) => None,
    })
}

enum SubToken<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn sub_tokens(text: &str) -> impl Iterator<Item = SubToken<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find("${") {
            Some(0) => {
                let Some(end) = rest.find('}') else {
                    let t = rest;
                    rest = "";
                    return Some(SubToken::Text(t));
                };
                let inner = &rest[2..end];
                let token = if inner.starts_with('!') {
                    // `${!Literal}` stands for the text `${Literal}`: `render` drops the `!`.
                    SubToken::Text(&rest[..end + 1])
                } else {
                    SubToken::Var(inner.trim())
                };
                rest = &rest[end + 1..];
                Some(token)
            }
            Some(start) => {
                let t = &rest[..start];
                rest = &rest[start..];
                Some(SubToken::Text(t))
            }
            None => {
                let t = rest;
                rest = "";
                Some(SubToken::Text(t))
            }
        }
    })
}

/// What a Ref or GetAtt of a resource evaluates to, supplied by the caller (played custom resources
/// answer with their physical id and Data; others with placeholders).
pub trait Resolver {
    fn parameter(&self, name: &str) -> Option<Value>;
    fn resource_ref(&mut self, logical_id: &str) -> Result<Value, String>;
    fn resource_attribute(&mut self, logical_id: &str, attribute: &str) -> Result<Value, String>;
    fn import_value(&mut self, export_name: &str) -> Result<Value, String>;
    fn region(&self) -> String;
}

/// Sentinel for `AWS::NoValue`: removed from the enclosing object or list.
const NO_VALUE: &str = "\u{0}tapguard:AWS::NoValue";

pub struct Evaluator<'t, R: Resolver> {
    pub template: &'t Template,
    pub resolver: R,
    conditions: BTreeMap<String, bool>,
}

impl<'t, R: Resolver> Evaluator<'t, R> {
    pub fn new(template: &'t Template, resolver: R) -> Self {
        Evaluator {
            template,
            resolver,
            conditions: BTreeMap::new(),
        }
    }

    /// Whether the named condition holds.
    pub fn condition(&mut self, name: &str) -> Result<bool, String> {
        if let Some(known) = self.conditions.get(name) {
            return Ok(*known);
        }
        let definition = self
            .template
            .conditions
            .get(name)
            .cloned()
            .ok_or_else(|| format!("condition {name} is not defined"))?;
        let result = self.truth(&definition)?;
        self.conditions.insert(name.to_string(), result);
        Ok(result)
    }

    fn truth(&mut self, value: &Value) -> Result<bool, String> {
        let Some((function, args)) = single(value) else {
            return match value {
                Value::Bool(b) => Ok(*b),
                other => Err(format!("not a condition: {other}")),
            };
        };
        let list = || args.as_array().cloned().unwrap_or_default();
        match function {
            "Condition" => self.condition(args.as_str().ok_or("Condition takes a name")?),
            "Fn::Equals" => {
                let items = list();
                if items.len() != 2 {
                    return Err("Fn::Equals takes two values".into());
                }
                let a = self.evaluate(&items[0])?;
                let b = self.evaluate(&items[1])?;
                Ok(scalar_text(&a) == scalar_text(&b))
            }
            "Fn::Not" => Ok(!self.truth(list().first().ok_or("Fn::Not takes one condition")?)?),
            "Fn::And" => {
                for item in list() {
                    if !self.truth(&item)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for item in list() {
                    if self.truth(&item)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            other => Err(format!("{other} is not a condition function")),
        }
    }

    /// Evaluates the intrinsic functions in `value` (a resource's Properties, an Output).
    pub fn evaluate(&mut self, value: &Value) -> Result<Value, String> {
        let v = self.eval(value)?;
        Ok(if v == json!(NO_VALUE) { Value::Null } else { v })
    }

    fn eval(&mut self, value: &Value) -> Result<Value, String> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    let v = self.eval(item)?;
                    if v != json!(NO_VALUE) {
                        out.push(v);
                    }
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) => {
                if let Some((function, args)) = single(value) {
                    if function == "Ref" || function.starts_with("Fn::") {
                        return self.function(function, args);
                    }
                }
                let mut out = Map::new();
                for (k, v) in map {
                    let v = self.eval(v)?;
                    if v != json!(NO_VALUE) {
                        out.insert(k.clone(), v);
                    }
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn function(&mut self, function: &str, args: &Value) -> Result<Value, String> {
        let list = |n: usize| -> Result<Vec<Value>, String> {
            match args.as_array() {
                Some(items) if items.len() == n => Ok(items.clone()),
                _ => Err(format!("{function} takes a list of {n}: {args}")),
            }
        };
        match function {
            "Ref" => {
                let name = args.as_str().ok_or("Ref takes a name")?;
                self.reference(name)
            }
            "Fn::GetAtt" => {
                let parts = list(2)?;
                let resource = parts[0].as_str().ok_or("Fn::GetAtt takes a resource name")?;
                let attribute = self.eval(&parts[1])?;
                let attribute = attribute.as_str().ok_or("Fn::GetAtt takes an attribute name")?;
                self.resolver.resource_attribute(resource, attribute)
            }
            "Fn::Sub" => {
                let (text, vars) = match args {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(parts) if parts.len() == 2 => {
                        let text = parts[0].as_str().ok_or("Fn::Sub takes a string")?.to_string();
                        let mut vars = Map::new();
                        for (k, v) in parts[1].as_object().ok_or("Fn::Sub takes a map of variables")? {
                            vars.insert(k.clone(), self.eval(v)?);
                        }
                        (text, vars)
                    }
                    _ => return Err(format!("Fn::Sub: {args}")),
                };
                let mut out = String::new();
                for token in sub_tokens(&text) {
                    match token {
                        SubToken::Text(t) => out.push_str(&t.replace("${!", "${")),
                        SubToken::Var(name) => {
                            let v = if let Some(v) = vars.get(name) {
                                v.clone()
                            } else if let Some((resource, attribute)) = name.split_once('.') {
                                self.resolver.resource_attribute(resource, attribute)?
                            } else {
                                self.reference(name)?
                            };
                            out.push_str(&scalar_text(&v));
                        }
                    }
                }
                Ok(json!(out))
            }
            "Fn::Join" => {
                let parts = list(2)?;
                let delimiter = parts[0].as_str().ok_or("Fn::Join takes a delimiter")?;
                let items = self.eval(&parts[1])?;
                let items = items.as_array().ok_or("Fn::Join takes a list")?;
                Ok(json!(items.iter().map(scalar_text).collect::<Vec<_>>().join(delimiter)))
            }
            "Fn::Select" => {
                let parts = list(2)?;
                let index = scalar_text(&self.eval(&parts[0])?)
                    .parse::<usize>()
                    .map_err(|_| "Fn::Select takes an index")?;
                let items = self.eval(&parts[1])?;
                items
                    .as_array()
                    .and_then(|l| l.get(index).cloned())
                    .ok_or_else(|| format!("Fn::Select: no item {index}"))
            }
            "Fn::Split" => {
                let parts = list(2)?;
                let delimiter = parts[0].as_str().ok_or("Fn::Split takes a delimiter")?;
                let text = scalar_text(&self.eval(&parts[1])?);
                Ok(json!(text.split(delimiter).collect::<Vec<_>>()))
            }
            "Fn::If" => {
                let parts = list(3)?;
                let name = parts[0].as_str().ok_or("Fn::If takes a condition name")?;
                if self.condition(name)? {
                    self.eval(&parts[1])
                } else {
                    self.eval(&parts[2])
                }
            }
            "Fn::ImportValue" => {
                let name = scalar_text(&self.eval(args)?);
                self.resolver.import_value(&name)
            }
            "Fn::FindInMap" => {
                let parts = args
                    .as_array()
                    .filter(|p| p.len() >= 3)
                    .ok_or("Fn::FindInMap takes [map, key, key]")?;
                let keys: Vec<String> = parts[..3]
                    .iter()
                    .map(|p| self.eval(p).map(|v| scalar_text(&v)))
                    .collect::<Result<_, _>>()?;
                self.template
                    .mappings
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .cloned()
                    .ok_or_else(|| format!("Fn::FindInMap: no {}.{}.{}", keys[0], keys[1], keys[2]))
            }
            "Fn::GetAZs" => {
                let region = self.resolver.region();
                Ok(json!(["a", "b", "c"]
                    .iter()
                    .map(|z| format!("{region}{z}"))
                    .collect::<Vec<_>>()))
            }
            "Fn::Base64" => self.eval(args),
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" => {
                let condition = json!({ function: args });
                Ok(json!(self.truth(&condition)?))
            }
            other => Err(format!("{other} is not supported by `tapguard local`")),
        }
    }

    fn reference(&mut self, name: &str) -> Result<Value, String> {
        if name == "AWS::NoValue" {
            return Ok(json!(NO_VALUE));
        }
        if let Some(value) = self.resolver.parameter(name) {
            return Ok(value);
        }
        if self.template.resource(name).is_some() {
            return self.resolver.resource_ref(name);
        }
        Err(format!(
            "Ref {name}: no parameter, pseudo-parameter or resource has that name"
        ))
    }
}

fn single(value: &Value) -> Option<(&str, &Value)> {
    match value {
        Value::Object(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

/// A value as CloudFormation renders a scalar into a string (lists joined with commas, as a
/// CommaDelimitedList parameter reads).
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// CloudFormation hands custom resources every scalar property as a string.
pub fn stringify_scalars(value: Value) -> Value {
    match value {
        Value::Bool(b) => json!(b.to_string()),
        Value::Number(n) => json!(n.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(stringify_scalars).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, stringify_scalars(v))).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl Resolver for Fixed {
        fn parameter(&self, name: &str) -> Option<Value> {
            match name {
                "Env" => Some(json!("prod")),
                "AWS::Region" => Some(json!("eu-west-1")),
                "Rules" => Some(json!(["A", "B"])),
                _ => None,
            }
        }
        fn resource_ref(&mut self, logical_id: &str) -> Result<Value, String> {
            Ok(json!(format!("id-of-{logical_id}")))
        }
        fn resource_attribute(&mut self, logical_id: &str, attribute: &str) -> Result<Value, String> {
            Ok(json!(format!("{logical_id}.{attribute}")))
        }
        fn import_value(&mut self, export_name: &str) -> Result<Value, String> {
            Ok(json!(format!("import:{export_name}")))
        }
        fn region(&self) -> String {
            "eu-west-1".into()
        }
    }

    const YAML: &str = r#"
Parameters:
  Env: { Type: String, Default: dev }
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  NotProd: !Not [!Condition IsProd]
Resources:
  Second:
    Type: Custom::B
    Properties:
      ServiceToken: !ImportValue { "Fn::Sub": "${Env}-Token" }
      Key: !GetAtt First.Arn
      Name: !Sub "x-${First}-${AWS::Region}-${!Literal}"
      Maybe: !If [NotProd, yes, !Ref AWS::NoValue]
      Picked: !Select [1, !Ref Rules]
      Count: 3
  First:
    Type: AWS::KMS::Key
  Third:
    Type: Custom::C
    DependsOn: Second
"#;

    #[test]
    fn short_form_tags_become_long_form_and_order_follows_references() {
        let t = Template::parse(YAML).unwrap();
        let second = t.resource("Second").unwrap();
        assert_eq!(second["Properties"]["Key"], json!({"Fn::GetAtt": ["First", "Arn"]}));
        assert_eq!(t.creation_order().unwrap(), vec!["First", "Second", "Third"]);
    }

    #[test]
    fn intrinsic_functions_evaluate_like_cloudformation() {
        let t = Template::parse(YAML).unwrap();
        let mut e = Evaluator::new(&t, Fixed);
        let props = e.evaluate(&t.resource("Second").unwrap()["Properties"]).unwrap();
        assert_eq!(props["ServiceToken"], json!("import:prod-Token"));
        assert_eq!(props["Key"], json!("First.Arn"));
        assert_eq!(props["Name"], json!("x-id-of-First-eu-west-1-${Literal}"));
        assert!(props.get("Maybe").is_none(), "AWS::NoValue removes the key: {props}");
        assert_eq!(props["Picked"], json!("B"));
        assert_eq!(stringify_scalars(props)["Count"], json!("3"));
    }

    #[test]
    fn cycles_and_unknown_references_are_errors() {
        let cyclic =
            "Resources:\n  A: {Type: Custom::A, DependsOn: B}\n  B: {Type: Custom::B, Properties: {X: !Ref A}}\n";
        let err = Template::parse(cyclic).unwrap().creation_order().unwrap_err();
        assert!(err.contains("circular dependency between A, B"), "{err}");
        let t = Template::parse("Resources:\n  A: {Type: Custom::A, Properties: {X: !Ref Nope}}\n").unwrap();
        let err = Evaluator::new(&t, Fixed)
            .evaluate(&t.resource("A").unwrap()["Properties"])
            .unwrap_err();
        assert!(err.contains("Ref Nope"), "{err}");
    }

    #[test]
    fn capabilities_follow_what_the_template_holds() {
        let caps = |text: &str| Template::parse(text).unwrap().required_capabilities();
        assert_eq!(
            caps("Resources:\n  T:\n    Type: AWS::SNS::Topic\n"),
            Vec::<&str>::new()
        );
        assert_eq!(
            caps("Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties: {Path: /x/}\n"),
            ["CAPABILITY_IAM"]
        );
        assert_eq!(
            caps("Resources:\n  R:\n    Type: AWS::IAM::Role\n    Properties: {RoleName: fixed}\n"),
            ["CAPABILITY_NAMED_IAM"]
        );
        // SAM: the transform is a macro, and it creates the functions' roles.
        assert_eq!(
            caps("Transform: AWS::Serverless-2016-10-31\nResources:\n  F:\n    Type: AWS::Serverless::Function\n"),
            ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
        );
        assert_eq!(
            caps("Transform: [{Name: AWS::Include, Parameters: {Location: s3://b/k}}]\nResources:\n  T:\n    Type: AWS::SNS::Topic\n"),
            ["CAPABILITY_AUTO_EXPAND"]
        );
        // TapStack.yml names one IAM resource: the MFA group (RequireMfaGroupName), so users can be put in it.
        let tapstack = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../TapStack.yml")).unwrap();
        assert_eq!(
            Template::parse(&tapstack).unwrap().required_capabilities(),
            ["CAPABILITY_NAMED_IAM"]
        );
    }

    #[test]
    fn json_templates_parse_too() {
        let t = Template::parse(
            r#"{"Resources": {"A": {"Type": "Custom::A", "Properties": {"K": {"Ref": "AWS::Region"}}}}}"#,
        )
        .unwrap();
        let props = Evaluator::new(&t, Fixed)
            .evaluate(&t.resource("A").unwrap()["Properties"])
            .unwrap();
        assert_eq!(props["K"], json!("eu-west-1"));
    }
}
