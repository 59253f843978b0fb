"""CloudFormation's YAML short forms as CloudFormation reads them: over a mapping, and `!Condition`.

moto 5.2 reads a short-form intrinsic function (`!ImportValue`, `!Sub`, `!If`, ...) written over a
mapping node as the node's raw pairs, so TapStack.yml's

    ServiceToken: !ImportValue
      Fn::Sub: "${FunctionsStackName}-ConfigSetupFunctionArn"

became an export named after a list of YAML nodes ("No export named [(ScalarNode(...)...)] found").
Here a mapping under a tag is read as the mapping it is, as CloudFormation does: the short form
`!ImportValue {Fn::Sub: ...}` means `{"Fn::ImportValue": {"Fn::Sub": ...}}`. Always on: moto's reading
was never what a template means.

moto also reads `!Condition Name` (inside `!And`, `!Or`, `!Not`) as `{"Fn::Condition": "Name"}`, which its
condition evaluation does not know (it looks for `{"Condition": "Name"}`), so TapStack.yml's
`CreateTrail: !And [!Equals [!Ref ExistingCloudTrail, "false"], !Condition IsHomeRegion]` was false
in every region. Here `!Condition` is the `Condition` key, as in the long form.

AWS documentation: CloudFormation User Guide, Fn::ImportValue (YAML short form `!ImportValue`; its value
may be an `Fn::Sub`, which a template then writes in the long, mapping form inside the short one) and
"Intrinsic function reference" (each short form is the `Fn::` key over the same value).
"""

import yaml

import moto.cloudformation.models as cfn_models
import moto.cloudformation.responses as cfn_responses
import moto.cloudformation.utils as cfn_utils

_original = cfn_utils.yaml_tag_constructor


def yaml_tag_constructor(loader, tag, node):
    if tag == "!Condition" and isinstance(node, yaml.ScalarNode):
        return {"Condition": node.value}
    if isinstance(node, yaml.MappingNode):
        key = "Ref" if tag == "!Ref" else f"Fn::{tag[1:]}"
        return {key: loader.construct_mapping(node, deep=True)}
    return _original(loader, tag, node)


def install() -> None:
    for module in (cfn_utils, cfn_models, cfn_responses):
        module.yaml_tag_constructor = yaml_tag_constructor
