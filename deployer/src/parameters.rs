//! Stack parameters as `deploy` sends them: given ones (file, then command line), and on an update
//! every other parameter the stack already has with `UsePreviousValue`, as `aws cloudformation
//! deploy`, rain and `sam deploy` do. A parameter new to the template gets its default. Without
//! this, CloudFormation resets every parameter not repeated to the template default (turning
//! `ExistingGuardDutyDetector=true` back into a second detector).

use std::collections::BTreeMap;
use std::path::Path;

use aws_sdk_cloudformation::types::Parameter;
use serde_json::{json, Value};

use crate::template::{scalar_text, Template};

/// `KEY=VALUE` items, in order.
pub fn key_values(items: &[String], what: &str) -> Result<Vec<(String, String)>, String> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| format!("{what} {item:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// Parameters from the file (if any), then the command line (which wins).
pub fn given(file: Option<&Path>, cli: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        match json {
            Value::Object(map) => {
                for (k, v) in map {
                    values.insert(k, scalar_text(&v));
                }
            }
            Value::Array(items) => {
                for item in items {
                    let key = item["ParameterKey"]
                        .as_str()
                        .ok_or("a parameters file entry lacks ParameterKey")?;
                    values.insert(key.to_string(), scalar_text(&item["ParameterValue"]));
                }
            }
            _ => return Err(format!("{}: expected an object or a list", path.display())),
        }
    }
    values.extend(key_values(cli, "--parameter")?);
    Ok(values.into_iter().collect())
}

/// A parameter the template declares.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub key: String,
    pub no_echo: bool,
    pub default: Option<String>,
}

pub fn declared(template: &Template) -> Vec<Declared> {
    template
        .parameters
        .iter()
        .map(|(key, declaration)| Declared {
            key: key.clone(),
            no_echo: matches!(&declaration["NoEcho"], Value::Bool(true))
                || declaration["NoEcho"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            default: declaration.get("Default").map(scalar_text),
        })
        .collect()
}

/// Refuses given parameters the template does not declare (CloudFormation would refuse the change set).
pub fn check_known(declared: &[Declared], given: &[(String, String)]) -> Result<(), String> {
    let unknown: Vec<&str> = given
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !declared.iter().any(|d| d.key == *k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!("parameters not in the template: {}", unknown.join(", ")))
    }
}

/// Where a parameter's value comes from in this change set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Given on the command line, in the parameters file or the targets file.
    Given,
    /// Set by the plan from what the target already has (an `Existing...` parameter).
    Detected,
    /// Kept from the stack with UsePreviousValue.
    Previous,
    /// Not sent: the template default applies (a new stack, or a parameter new to the template).
    Default,
}

/// One parameter of the change set, for the person reviewing it (NoEcho values never shown).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub key: String,
    pub source: Source,
    /// The value shown: `****` for NoEcho, empty for a default the template lacks.
    pub shown: String,
    /// The stack's value before (None: the stack or the parameter is new).
    pub previous: Option<String>,
    /// Whether the value changes; None when it cannot be known (a NoEcho value given again).
    pub changed: Option<bool>,
}

impl Resolved {
    pub fn line(&self) -> String {
        let note = match (self.source, &self.previous, self.changed) {
            (Source::Previous, _, _) => "kept (previous value)".to_string(),
            (Source::Default, _, Some(_)) => "template default (new parameter)".to_string(),
            (Source::Default, _, None) => "template default".to_string(),
            (Source::Given, None, _) => "given (new)".to_string(),
            (Source::Given, Some(_), Some(false)) => "given, unchanged".to_string(),
            (Source::Given, Some(old), Some(true)) => format!("CHANGED from {old}"),
            (Source::Given, Some(_), None) => "given (NoEcho: whether it changes is not shown)".to_string(),
            (Source::Detected, None, _) => "read from the target (new)".to_string(),
            (Source::Detected, Some(_), Some(false)) => "read from the target, unchanged".to_string(),
            (Source::Detected, Some(old), _) => format!("read from the target: CHANGED from {old}"),
        };
        format!("  {:<32} {:<24} {note}", self.key, self.shown)
            .trim_end()
            .to_string()
    }

    pub fn json(&self) -> Value {
        json!({
            "key": self.key,
            "source": match self.source { Source::Given => "given", Source::Detected => "detected", Source::Previous => "previous", Source::Default => "default" },
            "value": self.shown,
            "previous": self.previous,
            "changed": self.changed,
        })
    }
}

/// What to send and what to show. `previous` is the stack's parameters on an update (None on a
/// creation); their values are as DescribeStacks gives them (`****` for NoEcho ones).
pub fn resolve(
    declared: &[Declared],
    given: &[(String, String)],
    previous: Option<&[(String, String)]>,
) -> (Vec<Parameter>, Vec<Resolved>) {
    let given: BTreeMap<&str, &str> = given.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut send = Vec::new();
    let mut shown = Vec::new();
    for d in declared {
        let old = previous.and_then(|p| p.iter().find(|(k, _)| *k == d.key).map(|(_, v)| v.clone()));
        let mask = |v: &str| if d.no_echo { "****".to_string() } else { v.to_string() };
        if let Some(value) = given.get(d.key.as_str()) {
            send.push(
                Parameter::builder()
                    .parameter_key(&d.key)
                    .parameter_value(*value)
                    .build(),
            );
            let changed = match &old {
                None => Some(true),
                Some(_) if d.no_echo => None,
                Some(o) => Some(o != value),
            };
            shown.push(Resolved {
                key: d.key.clone(),
                source: Source::Given,
                shown: mask(value),
                previous: old.as_deref().map(mask),
                changed,
            });
        } else if let Some(old) = old {
            send.push(
                Parameter::builder()
                    .parameter_key(&d.key)
                    .use_previous_value(true)
                    .build(),
            );
            shown.push(Resolved {
                key: d.key.clone(),
                source: Source::Previous,
                shown: mask(&old),
                previous: Some(mask(&old)),
                changed: Some(false),
            });
        } else {
            shown.push(Resolved {
                key: d.key.clone(),
                source: Source::Default,
                shown: d.default.as_deref().map(mask).unwrap_or_default(),
                previous: None,
                // On an update, a parameter new to the template; on a creation, not a change to report.
                changed: previous.map(|_| true),
            });
        }
    }
    (send, shown)
}
