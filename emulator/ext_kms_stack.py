"""`AWS::KMS::Key` in a stack as CloudFormation creates it: its `Tags` and its `KeyPolicy`.

moto 5.2 hands the resource's `Tags` to KMS's CreateKey as they are written in the template
(`[{"Key", "Value"}]`, CloudFormation's form), while CreateKey takes `[{"TagKey", "TagValue"}]`: the
stack fails with `KeyError: 'TagKey'`. It also keeps `KeyPolicy` as the template's object, so
`GetKeyPolicy` answers a Python dict's text instead of the JSON policy. Here the tags are translated
and the policy becomes its JSON document, as CloudFormation passes both to KMS. Always on: a stack
with a tagged key failed before, and no test relies on the broken policy text.

AWS documentation: CloudFormation User Guide, AWS::KMS::Key (`Tags`: a list of `Tag`, each `Key` and
`Value`; `KeyPolicy`: "a JSON object or a string") and AWS KMS API Reference, CreateKey (`Tags`: a
list of `Tag`, each `TagKey` and `TagValue`; `Policy`: a JSON string).
"""

import json

from moto.kms.models import Key

_original_create = Key.create_from_cloudformation_json.__func__


def _create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = dict(cloudformation_json.get("Properties") or {})
    properties["Tags"] = [
        {"TagKey": t["Key"], "TagValue": t["Value"]} if "Key" in t else t for t in properties.get("Tags") or []
    ]
    if not isinstance(properties.get("KeyPolicy"), str) and properties.get("KeyPolicy") is not None:
        properties["KeyPolicy"] = json.dumps(properties["KeyPolicy"])
    return _original_create(
        cls, resource_name, {**cloudformation_json, "Properties": properties}, account_id, region_name, **kwargs
    )


def install() -> None:
    Key.create_from_cloudformation_json = classmethod(_create_from_cloudformation_json)
