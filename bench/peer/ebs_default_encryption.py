"""Custom::EbsDefaultEncryption the usual Python way (boto3 + crhelper), the yardstick of `make bench`.

The same EC2 (and KMS) calls and read-back as the Rust handler's Create: read the region's default,
set the key if another one is set, turn encryption on, read both back. Like most such functions it
keeps no ownership ledger, so its Delete has nothing to restore from: it turns encryption off.
"""

import boto3
from crhelper import CfnResource

import loopback  # noqa: F401  (make bench's plain-HTTP ResponseURL)

helper = CfnResource(json_logging=True, log_level="INFO", boto_level="CRITICAL", sleep_on_delete=0)
ec2 = boto3.client("ec2")
kms = boto3.client("kms")

AWS_MANAGED = ("", "alias/aws/ebs")


def wanted_key(props):
    key = (props.get("KmsKeyId") or "").strip()
    if key in AWS_MANAGED or key.endswith(":alias/aws/ebs"):
        return None
    meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    if meta["KeyState"] != "Enabled":
        raise ValueError(f"KmsKeyId {key}: the key is {meta['KeyState']}, not Enabled")
    return meta["Arn"]


def is_met(wanted, current):
    return current.endswith(":alias/aws/ebs") if wanted is None else current == wanted


@helper.create
@helper.update
def converge(event, _context):
    wanted = wanted_key(event["ResourceProperties"])
    enabled = ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"]
    current = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    if not is_met(wanted, current):
        if wanted is None:
            ec2.reset_ebs_default_kms_key_id()
        else:
            ec2.modify_ebs_default_kms_key_id(KmsKeyId=wanted)
    if not enabled:
        ec2.enable_ebs_encryption_by_default()
    # Read back before answering SUCCESS.
    enabled = ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"]
    current = ec2.get_ebs_default_kms_key_id()["KmsKeyId"]
    if not enabled or not is_met(wanted, current):
        raise RuntimeError(f"EBS default encryption reads back enabled={enabled}, key {current}")
    helper.Data.update({"Enabled": "true", "KmsKeyId": current})
    return f"ebs-default-encryption:{ec2.meta.region_name}"


@helper.delete
def delete(_event, _context):
    ec2.disable_ebs_encryption_by_default()


def handler(event, context):
    helper(event, context)
