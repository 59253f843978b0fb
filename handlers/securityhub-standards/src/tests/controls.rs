//! The DisabledControls entries: their shape and the control ARNs they name.

use crate::controls::*;
use crate::properties::Standard;

#[test]
fn control_arns_name_their_standard_and_control() {
    assert_eq!(
        parse_control_arn(
            "arn:aws:securityhub:eu-west-1:111122223333:control/cis-aws-foundations-benchmark/v/1.2.0/1.1"
        ),
        Some(("cis-aws-foundations-benchmark/v/1.2.0".into(), "1.1".into()))
    );
    assert_eq!(parse_control_arn("arn:aws:securityhub:eu-west-1:1:hub/default"), None);
}

#[test]
fn entries_need_one_name_and_a_reason() {
    let standards = [Standard {
        id: "aws-foundational-security-best-practices/v/1.0.0".into(),
        arn: "arn:aws:securityhub:eu-west-1::standards/aws-foundational-security-best-practices/v/1.0.0".into(),
    }];
    let entry = |arn: Option<&str>, id: Option<&str>, reason: &str| DisabledControl {
        standards_control_arn: arn.map(str::to_string),
        control_id: id.map(str::to_string),
        reason: reason.into(),
    };
    assert!(check(&[entry(None, Some("IAM.1"), "break-glass user")], &standards).is_ok());
    let err = check(&[entry(None, Some("IAM.1"), " ")], &standards)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("invalid property DisabledControls[0]: Reason is required"),
        "{err}"
    );
    let err = check(&[entry(Some("a"), Some("IAM.1"), "r")], &standards)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exactly one of StandardsControlArn and ControlId"),
        "{err}"
    );
    let other = "arn:aws:securityhub:eu-west-1:1:control/pci-dss/v/3.2.1/PCI.IAM.1";
    let err = check(&[entry(Some(other), None, "r")], &standards)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pci-dss/v/3.2.1, which is not in Standards"), "{err}");
}
