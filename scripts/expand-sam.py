#!/usr/bin/env python3
"""template.yml with its SAM transform already expanded, for `tapguard deploy --functions-template`.

A service-managed StackSet cannot take a template with `Transform: AWS::Serverless-2016-10-31`, and
the emulator (moto) does not run the transform either; so the deployer deploys the plain
CloudFormation this writes. Offline: the SAM translator (samtranslator, in .venv-tools or
.venv-package) runs here, not in CloudFormation, and needs no AWS call (no managed policy is named by
the functions: each has its own role).

Each function's code comes from template parameters, so that one expanded template serves every
account and region:

    Code:
      S3Bucket: !Sub "${ArtifactBucketPrefix}-${ArtifactBucketAccount}-${AWS::Region}"
      S3Key: !Ref <Function>CodeKey

(Lambda takes code only from a bucket of the function's own region; the deployer creates one bucket
per region, named so, and uploads each zip under a key made of its sha256, which it passes as
<Function>CodeKey.) The template's Metadata `tapguard::Artifacts` names, for each key parameter, the
binary whose zip (target/lambda/<binary>/bootstrap.zip) it stands for: the deployer reads it there.

    .venv-tools/bin/python scripts/expand-sam.py template.yml target/lambda/functions.json
"""

import json
import os
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

BUCKET_PREFIX = "ArtifactBucketPrefix"
BUCKET_ACCOUNT = "ArtifactBucketAccount"


class NoManagedPolicies:
    """The functions name no AWS managed policy (each has its own role), so none is looked up: the
    translator would otherwise call IAM ListPolicies."""

    def load(self):
        return {}


def main(source: str, target: str) -> int:
    with open(source) as f:
        template = yaml_parse(f.read())
    artifacts = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            print(f"expand-sam: {logical_id} has no Metadata.BuildProperties.Binary", file=sys.stderr)
            return 2
        key_parameter = f"{logical_id}CodeKey"
        resource["Properties"]["CodeUri"] = {
            "Bucket": {"Fn::Sub": "${%s}-${%s}-${AWS::Region}" % (BUCKET_PREFIX, BUCKET_ACCOUNT)},
            "Key": {"Ref": key_parameter},
        }
        template["Parameters"][key_parameter] = {
            "Type": "String",
            "AllowedPattern": "^[A-Za-z0-9/._-]+$",
            "Description": f"S3 key of the {binary} zip (target/lambda/{binary}/bootstrap.zip) in the artifact bucket",
        }
        artifacts.append({"Binary": binary, "KeyParameter": key_parameter, "Function": logical_id})
    if not artifacts:
        print(f"expand-sam: {source} has no AWS::Serverless::Function", file=sys.stderr)
        return 2
    # Globals.Function.CodeUri would be merged under each function's own; it is replaced above.
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    template["Parameters"][BUCKET_PREFIX] = {
        "Type": "String",
        "AllowedPattern": "^[a-z0-9][a-z0-9.-]{0,40}$",
        "Description": "Prefix of the artifact buckets: <prefix>-<account>-<region> holds the functions' zips",
    }
    template["Parameters"][BUCKET_ACCOUNT] = {
        "Type": "String",
        "AllowedPattern": "^[0-9]{12}$",
        "Description": "The account that owns the artifact buckets (a StackSet's administrator, or the target itself)",
    }
    # The translator wants a region for its pseudo-parameter values; the template it writes keeps
    # ${AWS::Region} and ${AWS::Partition} as references (checked below), so which one is irrelevant.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        expanded = transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"expand-sam: {cause.message}", file=sys.stderr)
        return 1
    with open(source) as f:
        source_text = f.read()
    if os.environ["AWS_DEFAULT_REGION"] in json.dumps(expanded) and os.environ["AWS_DEFAULT_REGION"] not in source_text:
        print("expand-sam: the translator wrote a region into the template; it must serve every region", file=sys.stderr)
        return 1
    expanded.setdefault("Metadata", {})["tapguard::Artifacts"] = {
        "BucketPrefixParameter": BUCKET_PREFIX,
        "BucketAccountParameter": BUCKET_ACCOUNT,
        "Functions": artifacts,
    }
    with open(target, "w") as f:
        # Compact: the expanded template is over CloudFormation's 51,200-byte inline limit either way
        # (it goes through the artifact bucket), and smaller is cheaper to upload per region.
        json.dump(expanded, f, separators=(",", ":"), sort_keys=False)
        f.write("\n")
    print(f"expand-sam: {target}: {len(artifacts)} functions, Transform expanded")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: expand-sam.py TEMPLATE.yml OUTPUT.json", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
