"""EC2 operations moto 5.2 lacks or gets wrong: the default KMS key for EBS encryption by default.

State lives on moto's own per-account, per-region EC2 backend object, so `POST /moto-api/reset`
clears it with everything else.

Behaviour follows AWS:
- GetEbsDefaultKmsKeyId answers the alias ARN of the AWS managed key (`alias/aws/ebs`) until a key is set.
- ModifyEbsDefaultKmsKeyId takes a key id, key ARN, alias name or alias ARN and answers its ARN form.
  AWS checks the key asynchronously ("the action can appear to complete, but eventually fails"),
  so an unknown key is accepted here too: callers that want certainty must check the key themselves.
- ResetEbsDefaultKmsKeyId goes back to the AWS managed key.

Switched on per account and region (`POST /tapguard/consistency/behave`, consistency.py): the EC2 API is
eventually consistent, so GetEbsEncryptionByDefault answers its previous value for N reads after
EnableEbsEncryptionByDefault / DisableEbsEncryptionByDefault, and GetEbsDefaultKmsKeyId after
ModifyEbsDefaultKmsKeyId / ResetEbsDefaultKmsKeyId.
"""

from moto.core.responses import ActionResult
from moto.ec2.models import EC2Backend, ec2_backends
from moto.ec2.responses import EC2Response
from moto.utilities.utils import get_partition

import consistency

AWS_MANAGED_EBS_ALIAS = "alias/aws/ebs"


def _arn_form(backend: EC2Backend, key: str) -> str:
    if key.startswith("arn:"):
        return key
    prefix = f"arn:{get_partition(backend.region_name)}:kms:{backend.region_name}:{backend.account_id}"
    if key.startswith("alias/"):
        return f"{prefix}:{key}"
    return f"{prefix}:key/{key}"


def _current(backend: EC2Backend) -> str:
    return getattr(backend, "tapguard_ebs_default_kms_key", None) or _arn_form(backend, AWS_MANAGED_EBS_ALIAS)


def _get_ebs_default_kms_key_id(self: EC2Response) -> ActionResult:
    self.error_on_dryrun()
    return ActionResult({"KmsKeyId": _current(self.ec2_backend)})


def _modify_ebs_default_kms_key_id(self: EC2Response) -> ActionResult:
    self.error_on_dryrun()
    key = self._get_param("KmsKeyId")
    if not key:
        from moto.ec2.exceptions import MissingParameterError

        raise MissingParameterError("KmsKeyId")
    arn = _arn_form(self.ec2_backend, key)
    self.ec2_backend.tapguard_ebs_default_kms_key = arn
    # Volumes created with Encrypted=true and no key pick this up, as in AWS.
    self.ec2_backend.default_kms_key_id = arn
    return ActionResult({"KmsKeyId": arn})


def _reset_ebs_default_kms_key_id(self: EC2Response) -> ActionResult:
    self.error_on_dryrun()
    self.ec2_backend.tapguard_ebs_default_kms_key = None
    self.ec2_backend.default_kms_key_id = ""
    return ActionResult({"KmsKeyId": _current(self.ec2_backend)})


def install() -> None:
    EC2Response.get_ebs_default_kms_key_id = _get_ebs_default_kms_key_id
    EC2Response.modify_ebs_default_kms_key_id = _modify_ebs_default_kms_key_id
    EC2Response.reset_ebs_default_kms_key_id = _reset_ebs_default_kms_key_id
    consistency.wrap(
        EC2Response,
        lambda response: response.ec2_backend,
        lambda account, region: ec2_backends[account][region],
        {
            "EnableEbsEncryptionByDefault": ["GetEbsEncryptionByDefault"],
            "DisableEbsEncryptionByDefault": ["GetEbsEncryptionByDefault"],
            "ModifyEbsDefaultKmsKeyId": ["GetEbsDefaultKmsKeyId"],
            "ResetEbsDefaultKmsKeyId": ["GetEbsDefaultKmsKeyId"],
        },
    )
