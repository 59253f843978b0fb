//! Partition-aware ARNs: the same code runs in aws, aws-cn and aws-us-gov.

/// The partition a region belongs to.
pub fn partition_for_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

/// Partition, region and account of a stack, from its StackId ARN
/// (`arn:aws:cloudformation:us-east-1:123456789012:stack/name/guid`); empty parts when it is not one.
pub fn stack_location(stack_id: &str) -> (String, String, String) {
    let parts: Vec<&str> = stack_id.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" {
        (parts[1].to_string(), parts[3].to_string(), parts[4].to_string())
    } else {
        (String::new(), String::new(), String::new())
    }
}

/// Builds `arn:<partition>:<service>:<region>:<account>:<resource>` for the region's partition.
pub fn build(service: &str, region: &str, account: &str, resource: &str) -> String {
    format!(
        "arn:{}:{service}:{region}:{account}:{resource}",
        partition_for_region(region)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions() {
        assert_eq!(partition_for_region("eu-west-1"), "aws");
        assert_eq!(partition_for_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_for_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(
            build("kms", "cn-northwest-1", "1", "alias/aws/ebs"),
            "arn:aws-cn:kms:cn-northwest-1:1:alias/aws/ebs"
        );
    }

    #[test]
    fn stack_location_reads_the_stack_arn() {
        let (p, r, a) = stack_location("arn:aws-us-gov:cloudformation:us-gov-west-1:123456789012:stack/s/guid");
        assert_eq!(
            (p.as_str(), r.as_str(), a.as_str()),
            ("aws-us-gov", "us-gov-west-1", "123456789012")
        );
        assert_eq!(
            stack_location("not-an-arn"),
            (String::new(), String::new(), String::new())
        );
    }
}
