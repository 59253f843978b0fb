//! Whether a customer managed key's key policy lets EBS use the key, as AWS documents it.
//!
//! - Amazon EBS User Guide, *Requirements for Amazon EBS encryption*: the principals that create
//!   encrypted volumes need `kms:CreateGrant`, `kms:Decrypt`, `kms:DescribeKey`,
//!   `kms:GenerateDataKeyWithoutPlaintext` and `kms:ReEncrypt*`; EBS calls KMS for them, so the request
//!   reaches KMS through EC2 (`kms:ViaService` `ec2.<region>.amazonaws.com`, AWS KMS Developer Guide,
//!   *kms:ViaService*). The default key policy (the account as principal, `kms:*`) lets the account's
//!   IAM policies grant that; a statement for every principal of the account (`"AWS": "*"` with
//!   `kms:CallerAccount`) limited to `kms:ViaService` EC2 does it too (the AWS managed key `aws/ebs`
//!   has that statement).
//! - Amazon EC2 Auto Scaling User Guide, *Required AWS KMS key policy for use with encrypted volumes*:
//!   the service-linked role `AWSServiceRoleForAutoScaling` has no access to customer managed keys
//!   from its own policy, so the key policy must name it: `kms:Encrypt`, `kms:Decrypt`,
//!   `kms:ReEncrypt*`, `kms:GenerateDataKey*`, `kms:DescribeKey`, and `kms:CreateGrant` (with
//!   `kms:GrantIsForAWSResource`). Without it every Auto Scaling launch with the default key fails.
//!
//! A statement is counted only when this check can tell it applies: conditions other than
//! `kms:ViaService`, `kms:CallerAccount` / `aws:PrincipalAccount` and `kms:GrantIsForAWSResource` make an
//! Allow not count (the key is refused, with the reason) and a Deny not count (it may still block).

use serde_json::Value;

/// What EBS needs of the account's principals, through EC2.
const EC2_ACTIONS: &[&str] = &[
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// What the Auto Scaling service-linked role needs.
const AUTOSCALING_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:DescribeKey",
    "kms:CreateGrant",
];

pub(crate) const AUTOSCALING_ROLE: &str = "AWSServiceRoleForAutoScaling";

/// Who uses the key: a principal of the account, through EC2 in the region.
struct Caller<'a> {
    /// Principal ARNs (or account ids) that name this caller in a key policy.
    names: Vec<String>,
    account: &'a str,
    via_service: String,
}

pub(crate) fn autoscaling_role_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/{AUTOSCALING_ROLE}")
}

/// `None` when the policy lets EC2 and the Auto Scaling service-linked role use the key; otherwise
/// what it lacks, phrased for a person.
pub(crate) fn problems(policy: &str, partition: &str, account: &str, region: &str) -> Option<String> {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return Some("GetKeyPolicy answered a key policy that is not JSON".to_string());
    };
    let statements: Vec<&Value> = match &doc["Statement"] {
        Value::Array(list) => list.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    };
    let via_service = format!("ec2.{region}.amazonaws.com");
    let root = format!("arn:{partition}:iam::{account}:root");
    let role = autoscaling_role_arn(partition, account);
    let ec2 = Caller {
        names: vec![root, account.to_string()],
        account,
        via_service: via_service.clone(),
    };
    let autoscaling = Caller {
        names: vec![role.clone()],
        account,
        via_service: via_service.clone(),
    };
    let mut out = Vec::new();
    let missing = not_allowed(&statements, &ec2, EC2_ACTIONS);
    if !missing.is_empty() {
        out.push(format!(
            "it does not let the account's principals use the key through EC2 (kms:ViaService {via_service}) \
             for {} (Amazon EBS User Guide, Requirements for Amazon EBS encryption)",
            missing.join(", ")
        ));
    }
    let missing = not_allowed(&statements, &autoscaling, AUTOSCALING_ACTIONS);
    if !missing.is_empty() {
        out.push(format!(
            "it does not let the Auto Scaling service-linked role {role} use the key for {} (EC2 Auto Scaling \
             User Guide, Required AWS KMS key policy for use with encrypted volumes: add its two statements \
             for that role, the second for kms:CreateGrant with kms:GrantIsForAWSResource)",
            missing.join(", ")
        ));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// The actions of `wanted` that no Allow statement grants `caller`, or that a Deny takes away.
fn not_allowed(statements: &[&Value], caller: &Caller, wanted: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for action in wanted {
        let mut allowed = false;
        let mut denied_by = None;
        for statement in statements {
            match applies(statement, caller, action) {
                Some(true) if is_deny(statement) => {
                    denied_by = Some(statement["Sid"].as_str().unwrap_or("a Deny statement").to_string());
                }
                Some(true) => allowed = true,
                _ => {}
            }
        }
        match denied_by {
            Some(sid) => out.push(format!("{action} (denied by {sid})")),
            None if !allowed => out.push(action.to_string()),
            None => {}
        }
    }
    out
}

fn is_deny(statement: &Value) -> bool {
    statement["Effect"]
        .as_str()
        .is_some_and(|e| e.eq_ignore_ascii_case("deny"))
}

/// Whether `statement` covers `caller` doing `action` on this key: `Some(false)` when it surely does
/// not, `None` when this check cannot tell (a condition or element it does not evaluate).
fn applies(statement: &Value, caller: &Caller, action: &str) -> Option<bool> {
    if statement.get("NotPrincipal").is_some() {
        return None;
    }
    if !names_caller(&statement["Principal"], caller) {
        return Some(false);
    }
    let action_listed = match (statement.get("Action"), statement.get("NotAction")) {
        (Some(actions), _) => strings(actions).iter().any(|a| glob(a, action)),
        (None, Some(excluded)) => !strings(excluded).iter().any(|a| glob(a, action)),
        (None, None) => false,
    };
    if !action_listed {
        return Some(false);
    }
    let resource_ok = match statement.get("Resource") {
        None => true,
        Some(r) => strings(r).iter().any(|r| r == "*" || r.contains(":key/")),
    };
    if !resource_ok {
        return Some(false);
    }
    conditions_hold(&statement["Condition"], caller, action)
}

fn names_caller(principal: &Value, caller: &Caller) -> bool {
    match principal {
        Value::String(s) => s == "*",
        Value::Object(map) => map
            .get("AWS")
            .map(strings)
            .unwrap_or_default()
            .iter()
            .any(|p| p == "*" || caller.names.iter().any(|n| n == p)),
        _ => false,
    }
}

fn conditions_hold(conditions: &Value, caller: &Caller, action: &str) -> Option<bool> {
    let Value::Object(operators) = conditions else {
        return Some(true);
    };
    let mut all = Some(true);
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else {
            return None;
        };
        for (key, values) in keys {
            let held = condition(operator, &key.to_ascii_lowercase(), &strings(values), caller, action);
            all = match (all, held) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (None, _) | (_, None) => None,
                _ => Some(true),
            };
        }
    }
    all
}

/// One condition key of the request EC2 makes for the caller.
fn condition(operator: &str, key: &str, values: &[String], caller: &Caller, action: &str) -> Option<bool> {
    let operator = operator.strip_prefix("ForAnyValue:").unwrap_or(operator);
    let context = match key {
        "kms:viaservice" => caller.via_service.clone(),
        "kms:calleraccount" | "aws:principalaccount" => caller.account.to_string(),
        "kms:grantisforawsresource" => {
            // Present only in CreateGrant requests: a Bool condition on it fails for any other action.
            if action != "kms:CreateGrant" {
                return Some(false);
            }
            "true".to_string()
        }
        _ => return None,
    };
    match operator {
        "StringEquals" | "Bool" => Some(values.contains(&context)),
        "StringEqualsIgnoreCase" => Some(values.iter().any(|v| v.eq_ignore_ascii_case(&context))),
        "StringLike" => Some(values.iter().any(|v| glob(v, &context))),
        "StringNotEquals" => Some(!values.contains(&context)),
        "StringNotLike" => Some(!values.iter().any(|v| glob(v, &context))),
        _ => None,
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcard match (`*` any run, `?` one character), case-insensitive as action names are.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "eu-west-1";

    fn check(statements: Value) -> Option<String> {
        problems(
            &json!({"Version": "2012-10-17", "Statement": statements}).to_string(),
            "aws",
            ACCOUNT,
            REGION,
        )
    }

    fn root_statement() -> Value {
        json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "kms:*", "Resource": "*"})
    }

    /// The two statements of the EC2 Auto Scaling User Guide's example 1.
    fn autoscaling_statements() -> Vec<Value> {
        let role = autoscaling_role_arn("aws", ACCOUNT);
        vec![
            json!({"Sid": "Allow service-linked role use of the customer managed key", "Effect": "Allow",
                "Principal": {"AWS": [role]},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*"}),
            json!({"Sid": "Allow attachment of persistent resources", "Effect": "Allow",
                "Principal": {"AWS": [role]}, "Action": ["kms:CreateGrant"], "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": true}}}),
        ]
    }

    #[test]
    fn the_default_policy_plus_the_autoscaling_statements_is_enough() {
        let mut statements = vec![root_statement()];
        statements.extend(autoscaling_statements());
        assert_eq!(check(json!(statements)), None);
    }

    #[test]
    fn the_default_policy_alone_lacks_the_autoscaling_role() {
        let problem = check(json!([root_statement()])).expect("refused");
        assert!(
            problem.contains("AWSServiceRoleForAutoScaling use the key for kms:Encrypt"),
            "{problem}"
        );
        assert!(!problem.contains("through EC2"), "the account may use it: {problem}");
    }

    #[test]
    fn the_aws_ebs_style_statement_covers_both_callers_through_ec2_only() {
        let via = |service: &str| {
            json!([{"Effect": "Allow", "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": service}}}])
        };
        assert_eq!(check(via("ec2.eu-west-1.amazonaws.com")), None);
        let s3 = check(via("s3.eu-west-1.amazonaws.com")).expect("refused");
        assert!(
            s3.contains("through EC2 (kms:ViaService ec2.eu-west-1.amazonaws.com) for kms:CreateGrant"),
            "{s3}"
        );
        assert!(
            check(via("ec2.us-east-1.amazonaws.com")).is_some(),
            "another region's EC2"
        );
    }

    #[test]
    fn grant_is_for_aws_resource_allows_create_grant_only() {
        let role = autoscaling_role_arn("aws", ACCOUNT);
        let problem = check(json!([root_statement(), {"Effect": "Allow", "Principal": {"AWS": role},
            "Action": "kms:*", "Resource": "*", "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}]))
        .expect("refused");
        assert!(
            problem.contains(
                "use the key for kms:Encrypt, kms:Decrypt, kms:ReEncryptFrom, kms:ReEncryptTo, kms:GenerateDataKey, \
                 kms:GenerateDataKeyWithoutPlaintext, kms:DescribeKey (EC2 Auto Scaling"
            ),
            "everything but kms:CreateGrant: {problem}"
        );
    }

    #[test]
    fn a_deny_through_ec2_takes_it_away_and_names_its_statement() {
        let mut statements = vec![root_statement()];
        statements.extend(autoscaling_statements());
        statements.push(
            json!({"Sid": "NoEbs", "Effect": "Deny", "Principal": "*", "Action": "kms:CreateGrant",
            "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": "ec2.eu-west-1.amazonaws.com"}}}),
        );
        let problem = check(json!(statements)).expect("refused");
        assert!(problem.contains("kms:CreateGrant (denied by NoEbs)"), "{problem}");
        // A Deny for another service leaves EC2 alone.
        let mut statements = vec![root_statement()];
        statements.extend(autoscaling_statements());
        statements.push(
            json!({"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "lambda.eu-west-1.amazonaws.com"}}}),
        );
        assert_eq!(check(json!(statements)), None);
    }

    #[test]
    fn unknown_conditions_and_other_principals_do_not_count() {
        let problem = check(json!([{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "kms:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}]))
        .expect("refused");
        assert!(problem.contains("through EC2"), "{problem}");
        assert!(problem.contains("AWSServiceRoleForAutoScaling"), "{problem}");
        assert!(check(json!("not a list")).is_some());
        assert_eq!(
            problems("{not json", "aws", ACCOUNT, REGION).as_deref(),
            Some("GetKeyPolicy answered a key policy that is not JSON")
        );
    }

    #[test]
    fn globs_match_as_iam_does() {
        assert!(glob("kms:ReEncrypt*", "kms:ReEncryptFrom"));
        assert!(glob("kms:*", "kms:CreateGrant"));
        assert!(glob("KMS:generatedatakey*", "kms:GenerateDataKeyWithoutPlaintext"));
        assert!(glob("ec2.*.amazonaws.com", "ec2.eu-west-1.amazonaws.com"));
        assert!(!glob("kms:Encrypt", "kms:EncryptX"));
        assert!(glob("kms:Describe?ey", "kms:DescribeKey"));
    }
}
