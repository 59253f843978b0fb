"""`AWS::CloudTrail::Trail` as a real resource of the emulator's stacks.

moto 5.2 has CloudTrail's API but no CloudFormation model of a trail: a stack's trail was skipped
("No Moto CloudFormation support"), and an output `!GetAtt Trail.Arn` failed the stack's outputs
("Fn::GetAtt references undefined resource Trail"). Here the resource creates the trail with
CloudTrail's own CreateTrail (name: `TrailName`, or `<stack>-<LogicalId>-<suffix>` as CloudFormation
names it; bucket, key prefix, multi-region, global events, log file validation, KMS key, CloudWatch
Logs group and role, tags) and starts logging when `IsLogging` is true; `Ref` is the trail's name and
`Fn::GetAtt Trail.Arn` its ARN. Deleting the stack deletes the trail. Always on: nothing else created
trails in stacks.

AWS documentation: CloudFormation User Guide, AWS::CloudTrail::Trail (properties; "Ref returns the
trail name", `Fn::GetAtt` `Arn`; `IsLogging` "Whether the CloudTrail trail is currently logging AWS
API calls", required) and CloudTrail API Reference, CreateTrail and StartLogging.
"""

from moto.cloudtrail.models import cloudtrail_backends
from moto.core.common_models import CloudFormationModel


def _true(value) -> bool:
    return str(value).lower() == "true"


class CfnTrail(CloudFormationModel):
    """`AWS::CloudTrail::Trail` in moto's stacks."""

    # moto's model registry files models under the second part of their module name.
    __module__ = "tapguard_emulator.cloudtrail"

    def __init__(self, trail, account: str, region: str):
        self.trail, self.account, self.region = trail, account, region

    @staticmethod
    def cloudformation_name_type() -> str:
        return "TrailName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudTrail::Trail"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Arn", "SnsTopicArn")

    def get_cfn_attribute(self, attribute_name: str):
        if attribute_name == "Arn":
            return self.trail.arn
        return self.trail.topic_arn

    @property
    def physical_resource_id(self) -> str:
        return self.trail.trail_name

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        props = cloudformation_json.get("Properties", {}) or {}
        backend = cloudtrail_backends[account_id][region_name]
        trail = backend.create_trail(
            props.get("TrailName") or resource_name,
            props.get("S3BucketName"),
            props.get("S3KeyPrefix"),
            props.get("SnsTopicName"),
            _true(props.get("IncludeGlobalServiceEvents", True)),
            _true(props.get("IsMultiRegionTrail", False)),
            _true(props.get("EnableLogFileValidation", False)),
            _true(props.get("IsOrganizationTrail", False)),
            props.get("CloudWatchLogsLogGroupArn"),
            props.get("CloudWatchLogsRoleArn"),
            props.get("KMSKeyId"),
            props.get("Tags") or [],
        )
        if _true(props.get("IsLogging", False)):
            backend.start_logging(trail.trail_name)
        return cls(trail, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass

    def delete(self, account_id: str, region_name: str) -> None:
        cloudtrail_backends[self.account][self.region].delete_trail(self.trail.trail_name)


def install() -> None:
    from moto.cloudformation import parsing

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
