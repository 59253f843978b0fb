//! Typed resource properties.
//!
//! CloudFormation sends every scalar as a string, so the `flex` deserializers accept `"true"` as well
//! as `true` and `"90"` as well as `90`. Unknown property names are errors (use
//! `#[serde(deny_unknown_fields)]` on the properties struct): a typo must not be silently ignored.
//!
//! A property is never removed from a handler: it is **retired** ([`parse_retiring`], the handler's
//! `CustomResource::RETIRED_PROPERTIES`): accepted and ignored with a warning in the log. The rollback
//! of a stack sends the old template's properties to the new code, and refusing one of them would leave
//! the stack in UPDATE_ROLLBACK_FAILED. The rule is in `shared/PROPERTIES.md`.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::HandlerError;

/// Properties CloudFormation adds itself; they are not the resource's.
const PROTOCOL_PROPERTIES: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

/// Parses `ResourceProperties` like [`parse`], after taking out the retired properties (top-level names
/// with what to do instead): each one present is logged as a warning and otherwise ignored.
pub fn parse_retiring<P: DeserializeOwned>(properties: &Value, retired: &[(&str, &str)]) -> Result<P, HandlerError> {
    let found: Vec<&(&str, &str)> = retired
        .iter()
        .filter(|(name, _)| properties.get(name).is_some())
        .collect();
    if found.is_empty() {
        return parse(properties);
    }
    let mut kept = properties.clone();
    if let Value::Object(map) = &mut kept {
        for (name, instead) in found {
            map.remove(*name);
            tracing::warn!(
                property = *name,
                instead = *instead,
                "retired property ignored: it no longer does anything; remove it from the template"
            );
        }
    }
    parse(&kept)
}

/// Parses `ResourceProperties` into the handler's type, naming the property at fault on error.
pub fn parse<P: DeserializeOwned>(properties: &Value) -> Result<P, HandlerError> {
    let mut properties = match properties {
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    };
    let Value::Object(map) = &mut properties else {
        return Err(HandlerError::InvalidProperty {
            property: "ResourceProperties".into(),
            problem: format!("expected an object, got {}", describe(&properties)),
        });
    };
    for name in PROTOCOL_PROPERTIES {
        map.remove(name);
    }
    serde_path_to_error::deserialize(&properties).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        explain(&path, &inner, &properties)
    })
}

fn explain(path: &str, serde_message: &str, properties: &Value) -> HandlerError {
    let parent = if path == "." { String::new() } else { format!("{path}.") };
    if let Some(rest) = serde_message.strip_prefix("unknown field `") {
        // The path already ends with the unknown name.
        let (_, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .replace("` or `", ", ")
            .replace('`', "");
        return HandlerError::InvalidProperty {
            property: path.to_string(),
            problem: format!("unknown property (supported: {expected})"),
        };
    }
    if let Some(rest) = serde_message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return HandlerError::InvalidProperty {
            property: format!("{parent}{name}"),
            problem: "required but missing".into(),
        };
    }
    let given = pointer(properties, path)
        .map(|v| format!("got {}", describe(v)))
        .unwrap_or_default();
    HandlerError::InvalidProperty {
        property: path.to_string(),
        problem: if given.is_empty() {
            serde_message.to_string()
        } else {
            format!("{serde_message}; {given}")
        },
    }
}

/// Finds the value at a serde_path_to_error path such as `Rules[0].Name`.
fn pointer<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = root;
    for part in path.split('.') {
        let (name, indexes) = part.split_once('[').map_or((part, ""), |(n, i)| (n, i));
        if !name.is_empty() {
            current = current.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            current = current.get(index.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(current)
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        let mut cut = 80;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

/// Deserializers that accept CloudFormation's strings for scalars.
pub mod flex {
    use serde::de::{self, Deserializer, Unexpected};
    use serde::Deserialize;
    use serde_json::Value;

    fn to_bool<E: de::Error>(value: Value) -> Result<bool, E> {
        match value {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            Value::String(s) => Err(E::invalid_value(Unexpected::Str(&s), &"true or false")),
            other => Err(E::invalid_type(unexpected(&other), &"true or false")),
        }
    }

    fn to_u64<E: de::Error>(value: Value) -> Result<u64, E> {
        match value {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| E::invalid_value(Unexpected::Other(&n.to_string()), &"a whole number ≥ 0")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| E::invalid_value(Unexpected::Str(&s), &"a whole number ≥ 0")),
            other => Err(E::invalid_type(unexpected(&other), &"a whole number ≥ 0")),
        }
    }

    fn unexpected(value: &Value) -> Unexpected<'_> {
        match value {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(_) => Unexpected::Other("a number"),
            Value::String(s) => Unexpected::Str(s),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        to_bool(Value::deserialize(d)?)
    }

    pub fn option_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            v => to_bool(v).map(Some),
        }
    }

    pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = to_u64(Value::deserialize(d)?)?;
        u32::try_from(n).map_err(|_| de::Error::invalid_value(Unexpected::Unsigned(n), &"a number below 2^32"))
    }

    pub fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            v => {
                let n = to_u64(v)?;
                u32::try_from(n)
                    .map(Some)
                    .map_err(|_| de::Error::invalid_value(Unexpected::Unsigned(n), &"a number below 2^32"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(default, deserialize_with = "flex::option_bool")]
        enabled: Option<bool>,
        #[serde(default, deserialize_with = "flex::option_u32")]
        max_age_days: Option<u32>,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Rule {
        #[serde(deserialize_with = "flex::u32")]
        age: u32,
    }

    #[test]
    fn accepts_cloudformation_strings_and_native_scalars() {
        let from_strings: Sample = parse(&json!({"ServiceToken": "arn:x", "ServiceTimeout": "300",
            "Name": "a", "Enabled": "true", "MaxAgeDays": "90", "Rules": [{"Age": "7"}]}))
        .unwrap();
        let native: Sample =
            parse(&json!({"Name": "a", "Enabled": true, "MaxAgeDays": 90, "Rules": [{"Age": 7}]})).unwrap();
        assert_eq!(from_strings, native);
        assert_eq!(native.enabled, Some(true));
        assert_eq!(native.max_age_days, Some(90));
    }

    #[test]
    fn unknown_property_is_named_with_the_supported_ones() {
        let err = parse::<Sample>(&json!({"Name": "a", "Enabeld": "true"})).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("invalid property Enabeld: unknown property"), "{text}");
        assert!(text.contains("Enabled"), "{text}");
    }

    #[test]
    fn missing_property_is_named() {
        let err = parse::<Sample>(&json!({"Enabled": "false"})).unwrap_err();
        assert_eq!(err.to_string(), "invalid property Name: required but missing");
    }

    #[test]
    fn malformed_values_name_property_given_and_expected() {
        let err = parse::<Sample>(&json!({"Name": "a", "Enabled": "yes"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Enabled") && err.contains("\"yes\"") && err.contains("true or false"),
            "{err}"
        );
        let err = parse::<Sample>(&json!({"Name": "a", "Rules": [{"Age": "-3"}]}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid property Rules[0].Age"), "{err}");
        assert!(err.contains("\"-3\"") && err.contains("whole number"), "{err}");
    }

    #[test]
    fn retired_properties_are_accepted_and_ignored_while_unknown_ones_are_still_refused() {
        const RETIRED: &[(&str, &str)] = &[("OldName", "use Name"), ("Legacy", "nothing: it was always on")];
        // The old template of a rollback, with properties the new code no longer has.
        let old: Sample = parse_retiring(
            &json!({"ServiceToken": "arn:x", "Name": "a", "OldName": "b", "Legacy": {"deep": [1]}}),
            RETIRED,
        )
        .unwrap();
        assert_eq!(old.name, "a");
        assert_eq!(old.enabled, None);
        // Without the retirement list the same properties are refused, naming the property.
        let err = parse::<Sample>(&json!({"Name": "a", "OldName": "b"}))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid property OldName: unknown property"), "{err}");
        // A typo is still a typo.
        let err = parse_retiring::<Sample>(&json!({"Name": "a", "Nmae": "b"}), RETIRED)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid property Nmae"), "{err}");
        // The rest of the validation still applies.
        let err = parse_retiring::<Sample>(&json!({"OldName": "b"}), RETIRED)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "invalid property Name: required but missing");
    }

    #[test]
    fn properties_must_be_an_object() {
        let err = parse::<Sample>(&json!(["x"])).unwrap_err().to_string();
        assert!(
            err.contains("ResourceProperties") && err.contains("expected an object"),
            "{err}"
        );
    }
}
