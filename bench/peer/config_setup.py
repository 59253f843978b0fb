"""Custom::ConfigSetup the usual Python way (boto3 + crhelper), the yardstick of `make bench`.

The same AWS Config calls and read-back as the Rust handler's Create: the recorder, the delivery
channel, recording started, each managed rule put, then all of it described again before SUCCESS.
Like most such functions it keeps no ownership ledger (the Rust handler's SSM calls): its Delete
removes what the properties name.
"""

import json

import boto3
from crhelper import CfnResource

import loopback  # noqa: F401  (make bench's plain-HTTP ResponseURL)

helper = CfnResource(json_logging=True, log_level="INFO", boto_level="CRITICAL", sleep_on_delete=0)
config = boto3.client("config")


def truthy(value, default):
    return default if value is None else str(value).lower() == "true"


def rule_of(rule):
    body = {
        "ConfigRuleName": rule["Name"],
        "Source": {"Owner": "AWS", "SourceIdentifier": rule["SourceIdentifier"]},
    }
    if rule.get("InputParameters"):
        body["InputParameters"] = json.dumps({k: str(v) for k, v in rule["InputParameters"].items()})
    if rule.get("MaximumExecutionFrequency"):
        body["MaximumExecutionFrequency"] = rule["MaximumExecutionFrequency"]
    if rule.get("ResourceTypesScope"):
        body["Scope"] = {"ComplianceResourceTypes": rule["ResourceTypesScope"]}
    return body


@helper.create
@helper.update
def converge(event, _context):
    props = event["ResourceProperties"]
    recorders = config.describe_configuration_recorders()["ConfigurationRecorders"]
    name = recorders[0]["name"] if recorders else props.get("RecorderName") or "default"
    all_supported = truthy(props.get("AllSupported"), True)
    group = {
        "allSupported": all_supported,
        "includeGlobalResourceTypes": truthy(props.get("IncludeGlobalResourceTypes"), True),
    }
    if not all_supported:
        group["resourceTypes"] = props.get("ResourceTypes", [])
    config.put_configuration_recorder(
        ConfigurationRecorder={"name": name, "roleARN": props["RoleArn"], "recordingGroup": group}
    )
    channels = config.describe_delivery_channels()["DeliveryChannels"]
    channel = {
        "name": channels[0]["name"] if channels else "default",
        "s3BucketName": props["DeliveryBucketName"],
        "configSnapshotDeliveryProperties": {
            "deliveryFrequency": props.get("DeliveryFrequency") or "TwentyFour_Hours"
        },
    }
    if props.get("DeliveryS3KeyPrefix"):
        channel["s3KeyPrefix"] = props["DeliveryS3KeyPrefix"]
    if props.get("DeliverySnsTopicArn"):
        channel["snsTopicARN"] = props["DeliverySnsTopicArn"]
    config.put_delivery_channel(DeliveryChannel=channel)
    config.start_configuration_recorder(ConfigurationRecorderName=name)
    rules = props.get("Rules", [])
    for rule in rules:
        config.put_config_rule(ConfigRule=rule_of(rule))

    # Read back before answering SUCCESS.
    recorder = config.describe_configuration_recorders(ConfigurationRecorderNames=[name])["ConfigurationRecorders"]
    status = config.describe_configuration_recorder_status(ConfigurationRecorderNames=[name])
    recording = status["ConfigurationRecordersStatus"][0]["recording"]
    delivered = config.describe_delivery_channels()["DeliveryChannels"]
    names = [r["Name"] for r in rules]
    found = []
    if names:
        found = [r["ConfigRuleName"] for r in config.describe_config_rules(ConfigRuleNames=names)["ConfigRules"]]
    if not recorder or not recording or not delivered or sorted(found) != sorted(names):
        raise RuntimeError(f"AWS Config reads back recording={recording}, rules {found} of {names}")
    helper.Data.update({"RecorderName": name, "DeliveryChannelName": delivered[0]["name"], "Rules": ",".join(names)})
    return f"config-setup:{config.meta.region_name}"


@helper.delete
def delete(event, _context):
    props = event["ResourceProperties"]
    names = [r["Name"] for r in props.get("Rules", [])]
    for name in names:
        config.delete_config_rule(ConfigRuleName=name)
    for recorder in config.describe_configuration_recorders()["ConfigurationRecorders"]:
        config.stop_configuration_recorder(ConfigurationRecorderName=recorder["name"])
    for channel in config.describe_delivery_channels()["DeliveryChannels"]:
        config.delete_delivery_channel(DeliveryChannelName=channel["name"])
    for recorder in config.describe_configuration_recorders()["ConfigurationRecorders"]:
        config.delete_configuration_recorder(ConfigurationRecorderName=recorder["name"])


def handler(event, context):
    helper(event, context)
