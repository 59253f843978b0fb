//! The resource properties and their validation. Everything here runs before the first AWS call, so a
//! typo fails the stack at once, naming the field, instead of half-configuring AWS Config.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;
use tapguard_shared::props::flex;
use tapguard_shared::{arn, HandlerError};

/// Config reserves this prefix for service-linked recorders, which only their service may change.
pub const SERVICE_LINKED_PREFIX: &str = "AWSConfigurationRecorderFor";
pub const FREQUENCIES: [&str; 5] = [
    "One_Hour",
    "Three_Hours",
    "Six_Hours",
    "Twelve_Hours",
    "TwentyFour_Hours",
];
const DEFAULT_FREQUENCY: &str = "TwentyFour_Hours";
const DEFAULT_RECORDER: &str = "default";
/// Config's limit on the InputParameters JSON of a rule.
const MAX_INPUT_PARAMETERS: usize = 1024;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Properties {
    /// The IAM role the recorder uses.
    pub role_arn: String,
    pub delivery_bucket_name: String,
    #[serde(default)]
    pub delivery_s3_key_prefix: Option<String>,
    #[serde(default)]
    pub delivery_sns_topic_arn: Option<String>,
    /// One_Hour | Three_Hours | Six_Hours | Twelve_Hours | TwentyFour_Hours (default).
    #[serde(default)]
    pub delivery_frequency: Option<String>,
    /// The name for a recorder this resource creates (default `default`); an existing one keeps its own.
    #[serde(default)]
    pub recorder_name: Option<String>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub all_supported: Option<bool>,
    #[serde(default, deserialize_with = "flex::option_bool")]
    pub include_global_resource_types: Option<bool>,
    /// Recorded resource types, when AllSupported is false.
    #[serde(default)]
    pub resource_types: Vec<String>,
    #[serde(default)]
    pub rules: Vec<RuleProperties>,
    /// Whether the scheduled verify pass restarts a stopped recorder and puts a missing or changed rule
    /// back as an Update would (default no).
    #[serde(default, deserialize_with = "flex::bool")]
    pub repair_drift: bool,
}

/// One AWS managed Config rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RuleProperties {
    pub name: String,
    /// The managed rule identifier, e.g. ACCESS_KEYS_ROTATED.
    pub source_identifier: String,
    /// Parameter name to value; CloudFormation sends values as strings, numbers and booleans are accepted.
    #[serde(default)]
    pub input_parameters: BTreeMap<String, Value>,
    #[serde(default)]
    pub maximum_execution_frequency: Option<String>,
    /// Resource types the rule evaluates (its scope); empty means the rule's own default.
    #[serde(default)]
    pub resource_types_scope: Vec<String>,
}

impl Properties {
    /// The RecorderName asked for, with its default.
    pub fn recorder_name(&self) -> &str {
        self.recorder_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_RECORDER)
    }

    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }
}

/// The validated, normalized request.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub recorder_name: String,
    pub role_arn: String,
    pub all_supported: bool,
    pub include_global_resource_types: bool,
    /// Sorted, for comparison with what Config answers.
    pub resource_types: Vec<String>,
    pub bucket: String,
    pub key_prefix: Option<String>,
    pub sns_topic_arn: Option<String>,
    pub frequency: String,
    pub rules: Vec<DesiredRule>,
    pub repair_drift: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRule {
    /// Where the rule sits in the Rules list, for reasons that name the field.
    pub index: usize,
    pub name: String,
    pub source_identifier: String,
    pub input_parameters: BTreeMap<String, String>,
    pub maximum_execution_frequency: Option<String>,
    /// Sorted.
    pub scope: Vec<String>,
}

impl DesiredRule {
    pub fn field(&self) -> String {
        format!("Rules[{}] ({})", self.index, self.name)
    }

    /// The InputParameters JSON Config takes: an object of strings.
    pub fn input_parameters_json(&self) -> Option<String> {
        (!self.input_parameters.is_empty())
            .then(|| serde_json::to_string(&self.input_parameters).expect("a map of strings serializes"))
    }
}

fn invalid(property: impl Into<String>, problem: impl Into<String>) -> HandlerError {
    HandlerError::InvalidProperty {
        property: property.into(),
        problem: problem.into(),
    }
}

/// Checks every property and returns the normalized request; `region` is the function's region.
pub fn validate(props: &Properties, region: &str) -> Result<Desired, HandlerError> {
    let partition = arn::partition_for_region(region);
    validate_role_arn(&props.role_arn, partition)?;
    validate_bucket(&props.delivery_bucket_name)?;
    let key_prefix = props
        .delivery_s3_key_prefix
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if let Some(prefix) = key_prefix {
        if prefix.starts_with('/') || prefix.contains("//") {
            return Err(invalid(
                "DeliveryS3KeyPrefix",
                format!("{prefix:?}: give the prefix without a leading slash or empty path segments (e.g. config)"),
            ));
        }
    }
    let sns_topic_arn = props
        .delivery_sns_topic_arn
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(topic) = sns_topic_arn {
        validate_sns_arn(topic, partition)?;
    }
    let frequency = match props.delivery_frequency.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_FREQUENCY.to_string(),
        Some(f) => enum_value("DeliveryFrequency", f)?,
    };

    let recorder_name = props.recorder_name().to_string();
    validate_name("RecorderName", &recorder_name, 256)?;
    if recorder_name.starts_with(SERVICE_LINKED_PREFIX) {
        return Err(invalid(
            "RecorderName",
            format!(
                "{recorder_name:?}: names starting with {SERVICE_LINKED_PREFIX} belong to service-linked recorders, \
                 which only their AWS service may change: choose another name"
            ),
        ));
    }

    let all_supported = props.all_supported.unwrap_or(true);
    let mut resource_types = Vec::new();
    for (i, t) in props.resource_types.iter().enumerate() {
        validate_resource_type(&format!("ResourceTypes[{i}]"), t)?;
        resource_types.push(t.trim().to_string());
    }
    resource_types.sort();
    resource_types.dedup();
    let include_global_resource_types = if all_supported {
        if !resource_types.is_empty() {
            return Err(invalid(
                "ResourceTypes",
                "given while AllSupported is true: set AllSupported to false to record only these types, \
                 or remove ResourceTypes",
            ));
        }
        props.include_global_resource_types.unwrap_or(true)
    } else {
        if resource_types.is_empty() {
            return Err(invalid(
                "ResourceTypes",
                "AllSupported is false, so ResourceTypes must list the types to record (e.g. AWS::EC2::Volume)",
            ));
        }
        if props.include_global_resource_types == Some(true) {
            return Err(invalid(
                "IncludeGlobalResourceTypes",
                "true is only allowed with AllSupported true: list global types such as AWS::IAM::User in \
                 ResourceTypes instead",
            ));
        }
        false
    };

    let mut rules = Vec::new();
    let mut names = BTreeSet::new();
    for (index, rule) in props.rules.iter().enumerate() {
        let field = |name: &str| format!("Rules[{index}].{name}");
        validate_name(&field("Name"), &rule.name, 128)?;
        if rule.name.contains(',') {
            return Err(invalid(
                field("Name"),
                format!(
                    "{:?}: a comma is not allowed (the RuleNames output is comma-separated)",
                    rule.name
                ),
            ));
        }
        if !names.insert(rule.name.as_str()) {
            return Err(invalid(
                field("Name"),
                format!("{:?} is listed twice: rule names must be unique", rule.name),
            ));
        }
        let id = rule.source_identifier.trim();
        if id.is_empty()
            || id.len() > 256
            || !id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                field("SourceIdentifier"),
                format!(
                    "{:?} is not an AWS managed rule identifier (upper-case letters, digits and underscores, \
                     e.g. ACCESS_KEYS_ROTATED)",
                    rule.source_identifier
                ),
            ));
        }
        let mut input_parameters = BTreeMap::new();
        for (name, value) in &rule.input_parameters {
            let at = field(&format!("InputParameters.{name}"));
            if name.trim().is_empty() {
                return Err(invalid(field("InputParameters"), "a parameter name is empty"));
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(invalid(
                        at,
                        format!("expected a string, number or boolean; got {other}"),
                    ))
                }
            };
            input_parameters.insert(name.clone(), text);
        }
        let json_len = serde_json::to_string(&input_parameters).map_or(0, |j| j.len());
        if json_len > MAX_INPUT_PARAMETERS {
            return Err(invalid(
                field("InputParameters"),
                format!("{json_len} bytes as JSON; Config takes at most {MAX_INPUT_PARAMETERS}"),
            ));
        }
        let maximum_execution_frequency = match rule.maximum_execution_frequency.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => Some(enum_value(&field("MaximumExecutionFrequency"), f)?),
        };
        let mut scope = Vec::new();
        for (i, t) in rule.resource_types_scope.iter().enumerate() {
            validate_resource_type(&field(&format!("ResourceTypesScope[{i}]")), t)?;
            scope.push(t.trim().to_string());
        }
        scope.sort();
        scope.dedup();
        // A frequency is for periodic rules only; a scope names the resources whose configuration changes
        // trigger an evaluation, so Config refuses it on a periodic rule.
        if maximum_execution_frequency.is_some() && !scope.is_empty() {
            return Err(invalid(
                field("ResourceTypesScope"),
                format!(
                    "given with MaximumExecutionFrequency, which makes {} a periodic rule: Config evaluates a periodic \
                     rule on its schedule, not on configuration changes, and refuses a scope for it; remove \
                     ResourceTypesScope, or MaximumExecutionFrequency if the rule is change-triggered",
                    rule.name
                ),
            ));
        }
        if scope.len() > 100 {
            return Err(invalid(
                field("ResourceTypesScope"),
                "Config takes at most 100 resource types in a rule's scope",
            ));
        }
        rules.push(DesiredRule {
            index,
            name: rule.name.clone(),
            source_identifier: id.to_string(),
            input_parameters,
            maximum_execution_frequency,
            scope,
        });
    }

    Ok(Desired {
        recorder_name,
        role_arn: props.role_arn.trim().to_string(),
        all_supported,
        include_global_resource_types,
        resource_types,
        bucket: props.delivery_bucket_name.trim().to_string(),
        key_prefix: key_prefix.map(str::to_string),
        sns_topic_arn: sns_topic_arn.map(str::to_string),
        frequency,
        rules,
        repair_drift: props.repair_drift,
    })
}

fn enum_value(property: &str, given: &str) -> Result<String, HandlerError> {
    FREQUENCIES
        .iter()
        .find(|f| **f == given)
        .map(|f| f.to_string())
        .ok_or_else(|| invalid(property, format!("{given:?} is not one of {}", FREQUENCIES.join(", "))))
}

fn validate_name(property: &str, name: &str, max: usize) -> Result<(), HandlerError> {
    if name.trim().is_empty() {
        return Err(invalid(property, "empty"));
    }
    if name.trim() != name {
        return Err(invalid(property, format!("{name:?} has leading or trailing spaces")));
    }
    if name.chars().count() > max {
        return Err(invalid(
            property,
            format!("{} characters; at most {max}", name.chars().count()),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(property, format!("{name:?} contains a control character")));
    }
    Ok(())
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn validate_role_arn(role_arn: &str, partition: &str) -> Result<(), HandlerError> {
    let role_arn = role_arn.trim();
    let expected = format!("expected arn:{partition}:iam::<12-digit account>:role/<name>");
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let shaped = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[3].is_empty()
        && is_account_id(parts[4])
        && parts[5].starts_with("role/");
    if !shaped {
        return Err(invalid(
            "RoleArn",
            format!("{role_arn:?} is not an IAM role ARN ({expected})"),
        ));
    }
    if parts[1] != partition {
        return Err(invalid(
            "RoleArn",
            format!(
                "{role_arn:?} is in partition {}, but this function runs in {partition} ({expected})",
                parts[1]
            ),
        ));
    }
    let path_and_name = &parts[5]["role/".len()..];
    let name = path_and_name.rsplit('/').next().unwrap_or_default();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c);
    if name.is_empty() || name.len() > 64 || !path_and_name.chars().all(allowed) {
        return Err(invalid(
            "RoleArn",
            format!("{role_arn:?}: the role name must be 1-64 letters, digits or +=,.@_- ({expected})"),
        ));
    }
    Ok(())
}

fn validate_bucket(bucket: &str) -> Result<(), HandlerError> {
    let bucket = bucket.trim();
    if bucket.starts_with("arn:") || bucket.starts_with("s3://") {
        return Err(invalid(
            "DeliveryBucketName",
            format!("{bucket:?}: give the bucket name only, not an ARN or URL"),
        ));
    }
    let chars_ok = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = bucket.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric());
    let looks_like_ip = bucket.split('.').count() == 4 && bucket.split('.').all(|p| p.parse::<u8>().is_ok());
    if !(3..=63).contains(&bucket.len()) || !chars_ok || !ends_ok || bucket.contains("..") || looks_like_ip {
        return Err(invalid(
            "DeliveryBucketName",
            format!(
                "{bucket:?} is not a valid S3 bucket name (3-63 lower-case letters, digits, dots and hyphens, \
                 starting and ending with a letter or digit)"
            ),
        ));
    }
    Ok(())
}

fn validate_sns_arn(topic: &str, partition: &str) -> Result<(), HandlerError> {
    let parts: Vec<&str> = topic.splitn(6, ':').collect();
    let name_ok = |n: &str| {
        let base = n.strip_suffix(".fifo").unwrap_or(n);
        !base.is_empty()
            && n.len() <= 256
            && base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let shaped = parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && is_account_id(parts[4])
        && name_ok(parts[5]);
    if !shaped || parts[1] != partition {
        return Err(invalid(
            "DeliverySnsTopicArn",
            format!(
                "{topic:?} is not an SNS topic ARN (expected arn:{partition}:sns:<region>:<12-digit account>:<topic>)"
            ),
        ));
    }
    Ok(())
}

/// `AWS::Service::Type`; the list of types Config supports grows every month, so only the shape is checked here
/// and Config itself judges the name.
fn validate_resource_type(property: &str, given: &str) -> Result<(), HandlerError> {
    let parts: Vec<&str> = given.trim().split("::").collect();
    let ok = parts.len() == 3
        && parts[0] == "AWS"
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            property,
            format!("{given:?} is not a resource type (expected AWS::<Service>::<Type>, e.g. AWS::S3::Bucket)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Properties {
        tapguard_shared::props::parse(&v).unwrap()
    }

    fn base() -> Value {
        json!({"RoleArn": "arn:aws:iam::111122223333:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig",
               "DeliveryBucketName": "tap-config-111122223333"})
    }

    fn with(extra: Value) -> Properties {
        let mut v = base();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        parse(v)
    }

    fn problem(extra: Value) -> String {
        validate(&with(extra), "eu-west-1").unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_in() {
        let d = validate(&with(json!({})), "eu-west-1").unwrap();
        assert_eq!(d.recorder_name, "default");
        assert!(d.all_supported && d.include_global_resource_types);
        assert_eq!(d.frequency, "TwentyFour_Hours");
        assert_eq!((d.key_prefix, d.sns_topic_arn), (None, None));
    }

    #[test]
    fn cloudformation_strings_are_accepted() {
        let d = validate(
            &with(json!({"AllSupported": "false", "IncludeGlobalResourceTypes": "false",
            "ResourceTypes": ["AWS::S3::Bucket", "AWS::EC2::Volume"], "DeliverySnsTopicArn": "",
            "Rules": [{"Name": "keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED",
                       "InputParameters": {"maxAccessKeyAge": 90}, "MaximumExecutionFrequency": "One_Hour"}]})),
            "eu-west-1",
        )
        .unwrap();
        assert!(!d.all_supported && !d.include_global_resource_types);
        assert_eq!(d.resource_types, ["AWS::EC2::Volume", "AWS::S3::Bucket"]);
        assert_eq!(
            d.rules[0].input_parameters_json().as_deref(),
            Some(r#"{"maxAccessKeyAge":"90"}"#)
        );
        assert_eq!(d.rules[0].maximum_execution_frequency.as_deref(), Some("One_Hour"));
    }

    #[test]
    fn role_arn_shape_and_partition() {
        assert!(problem(json!({"RoleArn": "config-role"}))
            .starts_with("invalid property RoleArn: \"config-role\" is not an IAM role ARN"));
        assert!(problem(json!({"RoleArn": "arn:aws:iam::1234:role/x"})).contains("not an IAM role ARN"));
        assert!(problem(json!({"RoleArn": "arn:aws:iam::111122223333:user/x"})).contains("not an IAM role ARN"));
        let cn = validate(&with(json!({})), "cn-north-1").unwrap_err().to_string();
        assert!(cn.contains("partition aws, but this function runs in aws-cn"), "{cn}");
        assert!(problem(json!({"RoleArn": "arn:aws:iam::111122223333:role/bad name"})).contains("role name"));
    }

    #[test]
    fn bucket_prefix_topic_and_frequency() {
        assert!(problem(json!({"DeliveryBucketName": "arn:aws:s3:::b"})).contains("bucket name only"));
        assert!(problem(json!({"DeliveryBucketName": "Tap_Config"})).starts_with("invalid property DeliveryBucketName"));
        assert!(problem(json!({"DeliveryBucketName": "192.168.1.10"})).contains("not a valid S3 bucket name"));
        assert!(problem(json!({"DeliveryS3KeyPrefix": "/config"})).starts_with("invalid property DeliveryS3KeyPrefix"));
        assert!(
            problem(json!({"DeliverySnsTopicArn": "arn:aws:sqs:eu-west-1:111122223333:q"}))
                .starts_with("invalid property DeliverySnsTopicArn")
        );
        let f = problem(json!({"DeliveryFrequency": "Daily"}));
        assert!(
            f.starts_with("invalid property DeliveryFrequency: \"Daily\" is not one of One_Hour"),
            "{f}"
        );
    }

    #[test]
    fn recording_group_combinations() {
        assert!(problem(json!({"ResourceTypes": ["AWS::S3::Bucket"]})).contains("given while AllSupported is true"));
        assert!(problem(json!({"AllSupported": false})).contains("must list the types"));
        assert!(problem(
            json!({"AllSupported": false, "ResourceTypes": ["AWS::S3::Bucket"], "IncludeGlobalResourceTypes": true})
        )
        .starts_with("invalid property IncludeGlobalResourceTypes"));
        assert!(problem(json!({"AllSupported": false, "ResourceTypes": ["S3::Bucket"]}))
            .starts_with("invalid property ResourceTypes[0]"));
        assert!(problem(json!({"RecorderName": "AWSConfigurationRecorderForSecurityHub"})).contains("service-linked"));
        assert!(problem(json!({"RecorderName": " x"})).contains("leading or trailing spaces"));
    }

    #[test]
    fn rules_are_checked_field_by_field() {
        let rule = |extra: Value| {
            let mut r = json!({"Name": "keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED"});
            r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            problem(json!({"Rules": [{"Name": "ok", "SourceIdentifier": "ENCRYPTED_VOLUMES"}, r]}))
        };
        assert!(rule(json!({"Name": "ok"})).starts_with("invalid property Rules[1].Name: \"ok\" is listed twice"));
        assert!(rule(json!({"Name": "a,b"})).contains("comma"));
        assert!(rule(json!({"Name": "x".repeat(129)})).starts_with("invalid property Rules[1].Name: 129 characters"));
        assert!(rule(json!({"SourceIdentifier": "access-keys-rotated"}))
            .starts_with("invalid property Rules[1].SourceIdentifier"));
        assert!(rule(json!({"MaximumExecutionFrequency": "Hourly"}))
            .starts_with("invalid property Rules[1].MaximumExecutionFrequency"));
        assert!(rule(json!({"InputParameters": {"maxAccessKeyAge": [90]}}))
            .starts_with("invalid property Rules[1].InputParameters.maxAccessKeyAge"));
        assert!(rule(json!({"ResourceTypesScope": ["AWS::IAM::"]}))
            .starts_with("invalid property Rules[1].ResourceTypesScope[0]"));
        assert!(rule(json!({"InputParameters": {"p": "x".repeat(1100)}})).contains("at most 1024"));
    }

    #[test]
    fn a_periodic_rule_with_a_scope_is_refused_by_name() {
        let err = problem(
            json!({"Rules": [{"Name": "keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED",
            "MaximumExecutionFrequency": "One_Hour", "ResourceTypesScope": ["AWS::IAM::User"]}]}),
        );
        assert!(
            err.starts_with("invalid property Rules[0].ResourceTypesScope: given with MaximumExecutionFrequency"),
            "{err}"
        );
        assert!(err.contains("periodic"), "{err}");
        // Either alone is fine.
        for extra in [
            json!({"MaximumExecutionFrequency": "One_Hour"}),
            json!({"ResourceTypesScope": ["AWS::IAM::User"]}),
        ] {
            let mut r = json!({"Name": "keys", "SourceIdentifier": "ACCESS_KEYS_ROTATED"});
            r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            assert!(validate(&with(json!({"Rules": [r]})), "eu-west-1").is_ok());
        }
    }

    #[test]
    fn unknown_rule_fields_are_named_by_the_parser() {
        let err = tapguard_shared::props::parse::<Properties>(&json!({"RoleArn": "arn:aws:iam::111122223333:role/r",
            "DeliveryBucketName": "b-b-b", "Rules": [{"Name": "n", "SourceIdentifier": "X", "Parameters": {}}]}))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("invalid property Rules[0].Parameters: unknown property"),
            "{err}"
        );
    }
}
