//! Setting names round-trip: what a record lists is enough to find and restore each setting.

use tapguard_shared::Invocation;

use crate::claims::{self, Claimed};
use crate::controls::Target;
use crate::properties::{standards_arn, Standard};

#[test]
fn setting_names_read_back_as_what_they_name() {
    let inv = Invocation::detached("eu-west-1", "111122223333");
    let fsbp = "aws-foundational-security-best-practices/v/1.0.0";
    let cis = "cis-aws-foundations-benchmark/v/1.2.0";
    for standard in [fsbp, cis] {
        let s = Standard {
            id: standard.into(),
            arn: standards_arn("aws", "eu-west-1", standard),
        };
        let name = claims::standard(&s);
        assert!(
            name.starts_with("securityhub-standards/standard/arn_3Aaws_3Asecurityhub"),
            "{name}"
        );
        assert_eq!(claims::parse(&inv, &name), Some(Claimed::Standard(s)));
    }
    let by_arn = Target::Arn {
        standard_id: cis.into(),
        arn: format!("arn:aws:securityhub:eu-west-1:111122223333:control/{cis}/1.1"),
        control: "1.1".into(),
    };
    assert_eq!(
        claims::parse(&inv, &claims::control(&by_arn)),
        Some(Claimed::Control(by_arn))
    );
    let by_id = Target::Association {
        standard_id: cis.into(),
        standards_arn: standards_arn("aws", "eu-west-1", cis),
        security_control_id: "IAM.4".into(),
    };
    let name = claims::control(&by_id);
    assert_eq!(name.split('/').count(), 4, "{name}");
    assert_eq!(claims::parse(&inv, &name), Some(Claimed::Control(by_id)));
    assert_eq!(claims::parse(&inv, "securityhub-standards/other/x"), None);
    assert_eq!(claims::parse(&inv, "securityhub-standards/standard/_Z"), None);
}
