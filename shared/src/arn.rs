//! Partition-aware ARNs: the same code runs in every AWS partition.
//!
//! The partition is best taken from an ARN AWS handed over (the event's StackId, the function's own ARN):
//! [`stack_location`], [`partition_of_arn`]. [`partition_for_region`] is the fallback, following the
//! `regionRegex` of each partition in the AWS SDKs' `partitions.json`.

/// Every partition, with the region prefix that marks it (the SDKs' `regionRegex`); `aws` is the rest.
pub const PARTITIONS: &[(&str, &str)] = &[
    ("cn-", "aws-cn"),
    ("us-gov-", "aws-us-gov"),
    ("us-isob-", "aws-iso-b"),
    ("us-isof-", "aws-iso-f"),
    ("us-iso-", "aws-iso"),
    ("eu-isoe-", "aws-iso-e"),
    ("eusc-", "aws-eusc"),
];

/// The partition a region belongs to (the longer prefixes are tried first, so `us-isob-` is not `us-iso-`).
pub fn partition_for_region(region: &str) -> &'static str {
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// The partition of an ARN (`arn:<partition>:…`), when it is one.
pub fn partition_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some("arn"), Some(partition)) if partition.starts_with("aws") => Some(partition),
        _ => None,
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

/// Builds `arn:<partition>:<service>:<region>:<account>:<resource>` for the region's partition (prefer
/// [`build_in`] with the partition of the event's StackId).
pub fn build(service: &str, region: &str, account: &str, resource: &str) -> String {
    format!(
        "arn:{}:{service}:{region}:{account}:{resource}",
        partition_for_region(region)
    )
}

/// Builds `arn:<partition>:<service>:<region>:<account>:<resource>` in a known partition.
pub fn build_in(partition: &str, service: &str, region: &str, account: &str, resource: &str) -> String {
    format!("arn:{partition}:{service}:{region}:{account}:{resource}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions() {
        assert_eq!(partition_for_region("eu-west-1"), "aws");
        assert_eq!(partition_for_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_for_region("us-gov-west-1"), "aws-us-gov");
        // Every partition of the SDKs' partitions.json, by a region of each.
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("il-central-1", "aws"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-east-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-iso-west-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("us-isof-south-1", "aws-iso-f"),
            ("us-isof-east-1", "aws-iso-f"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(partition_for_region(region), partition, "{region}");
        }
        assert_eq!(
            build("kms", "cn-northwest-1", "1", "alias/aws/ebs"),
            "arn:aws-cn:kms:cn-northwest-1:1:alias/aws/ebs"
        );
    }

    #[test]
    fn the_partition_of_an_arn_wins_over_the_region_table() {
        for partition in [
            "aws",
            "aws-cn",
            "aws-us-gov",
            "aws-iso",
            "aws-iso-b",
            "aws-iso-e",
            "aws-iso-f",
            "aws-eusc",
        ] {
            let stack = format!("arn:{partition}:cloudformation:r-1:123456789012:stack/s/g");
            assert_eq!(partition_of_arn(&stack), Some(partition));
            assert_eq!(stack_location(&stack).0, partition);
            assert_eq!(
                build_in(partition, "iam", "", "1", "role/x"),
                format!("arn:{partition}:iam::1:role/x")
            );
        }
        assert_eq!(partition_of_arn("not:an:arn"), None);
        assert_eq!(partition_of_arn(""), None);
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
