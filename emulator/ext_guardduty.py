"""GuardDuty as AWS has it: one detector per account and region, and the stack resource that creates it.

- `CreateDetector` where the account already has a detector in the region answers
  `BadRequestException` "The request is rejected because a detector already exists for the current
  account." (moto 5.2 creates a second one). Always on: no other test of the project uses GuardDuty.
- CloudFormation: `AWS::GuardDuty::Detector` is a real resource of moto's stacks (moto has none): its
  physical id is the detector id and it is deleted with the stack. Refused as above, the resource fails
  with that error and the stack rolls back (emulator/ext_cloudformation.py, `ResourceRefused`).
- The call log names GuardDuty's REST operations (`ListDetectors`, `CreateDetector`, `GetDetector`,
  `DeleteDetector`) and Security Hub's `DescribeOrganizationConfiguration`.

AWS documentation: GuardDuty API Reference, CreateDetector ("Creates a single GuardDuty detector. A
detector is a resource that represents the GuardDuty service. To start using GuardDuty, you must create
a detector in each Region where you enable the service. You can have only one detector per account per
Region.").
"""

import re

from moto.core.common_models import CloudFormationModel
from moto.guardduty.exceptions import GuardDutyException
from moto.guardduty.models import GuardDutyBackend, guardduty_backends

import faults

_original_create_detector = GuardDutyBackend.create_detector


class DetectorExists(GuardDutyException):
    code = 400

    def __init__(self) -> None:
        super().__init__(
            "BadRequestException",
            "The request is rejected because a detector already exists for the current account.",
        )


def _create_detector(self: GuardDutyBackend, *args, **kwargs) -> str:
    if self.detectors:
        raise DetectorExists()
    return _original_create_detector(self, *args, **kwargs)


class CfnDetector(CloudFormationModel):
    """`AWS::GuardDuty::Detector` in moto's stacks."""

    # moto's model registry files models under the second part of their module name.
    __module__ = "tapguard_emulator.guardduty"

    def __init__(self, detector_id: str, account: str, region: str):
        self.detector_id, self.account, self.region = detector_id, account, region

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::GuardDuty::Detector"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name: str):
        return self.detector_id

    @property
    def physical_resource_id(self) -> str:
        return self.detector_id

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from ext_cloudformation import ResourceRefused

        props = cloudformation_json.get("Properties", {}) or {}
        enable = str(props.get("Enable", True)).lower() == "true"
        backend = guardduty_backends[account_id][region_name]
        try:
            detector_id = backend.create_detector(enable, props.get("FindingPublishingFrequency", "SIX_HOURS"), {}, {}, [])
        except DetectorExists as err:
            raise ResourceRefused(
                kwargs.get("LogicalId", resource_name),
                f"{err.message} (Service: GuardDuty, Status Code: 400, Error Code: BadRequestException)",
            ) from err
        return cls(detector_id, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass

    def delete(self, account_id: str, region_name: str) -> None:
        guardduty_backends[self.account][self.region].delete_detector(self.detector_id)


def install() -> None:
    GuardDutyBackend.create_detector = _create_detector
    faults.REST_OPERATIONS.extend(
        [
            ("GET", re.compile(r"^/detector$"), "ListDetectors"),
            ("POST", re.compile(r"^/detector$"), "CreateDetector"),
            ("GET", re.compile(r"^/detector/[^/]+$"), "GetDetector"),
            ("DELETE", re.compile(r"^/detector/[^/]+$"), "DeleteDetector"),
            ("GET", re.compile(r"^/organization/configuration$"), "DescribeOrganizationConfiguration"),
        ]
    )
    from moto.cloudformation import parsing

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
