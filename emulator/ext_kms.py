"""KMS as AWS answers it where moto 5.2 gets it wrong: the AWS managed keys (`alias/aws/<service>`).

moto creates the key of a predefined AWS alias on first use (as AWS does: DescribeKey of a predefined
alias associates it with an AWS managed key and answers it), but as a customer managed key with the
default key policy. AWS managed keys have `KeyManager` `AWS` and a key policy AWS writes, which lets
every principal of the account use the key only through the service that created it (`kms:ViaService`
`<service>.<region>.amazonaws.com` with `kms:CallerAccount`): "AWS managed keys in your account, such as
aws/s3, are always restricted to the AWS service that created them" (AWS KMS Developer Guide,
kms:ViaService; the statement is the one that guide shows for the AWS managed key of Amazon EBS).

State stays on moto's own KMS key objects, so `POST /moto-api/reset` clears it with everything else.
Always on: no test creates AWS managed keys other than through these aliases, and a key of KeyManager
CUSTOMER behind `alias/aws/...` is a key AWS never has.
"""

import json

from moto.kms.models import KmsBackend
from moto.utilities.utils import get_partition

# The service whose kms:ViaService name an AWS managed key's policy names, by alias.
VIA_SERVICE = {
    "alias/aws/ebs": "ec2",
    "alias/aws/elasticfilesystem": "elasticfilesystem",
    "alias/aws/kinesisvideo": "kinesisvideo",
}

_moto_generate_default_keys = KmsBackend._generate_default_keys


def _policy(account: str, region: str, service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": f"auto-{service}-1",
            "Statement": [
                {
                    "Sid": f"Allow access through {service} for all principals in the account that are authorized to use it",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:CreateGrant",
                        "kms:DescribeKey",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            "kms:CallerAccount": account,
                            "kms:ViaService": f"{service}.{region}.amazonaws.com",
                        }
                    },
                },
                {
                    "Sid": "Allow direct access to key metadata to the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:{get_partition(region)}:iam::{account}:root"},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                    "Resource": "*",
                },
            ],
        }
    )


def _generate_default_keys(self: KmsBackend, alias_name: str):
    key_id = _moto_generate_default_keys(self, alias_name)
    if key_id is not None:
        key = self.keys[key_id]
        service = VIA_SERVICE.get(alias_name, alias_name.rsplit("/", 1)[-1])
        key.key_manager = "AWS"
        key.description = f"Default key that protects my {service} data when no other key is defined"
        key.policy = _policy(self.account_id, self.region_name, service)
    return key_id


def install() -> None:
    KmsBackend._generate_default_keys = _generate_default_keys
