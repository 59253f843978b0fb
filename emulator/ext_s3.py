"""S3 bucket policies as AWS evaluates them for requests over TLS.

moto evaluates a bucket policy without any request context, and its conditions without the `Bool`
operator, so the usual TLS-only statement (`Deny s3:*` when `aws:SecureTransport` is `false`) denies
every request, and the bucket becomes unusable once it has such a policy. AWS's clients (the SDKs,
the CLI, Lambda fetching a function's code) reach S3 over HTTPS, where that condition never holds
(IAM User Guide, "AWS global condition context keys": `aws:SecureTransport` is `true` for a request
sent over TLS). The emulator is reached over plain HTTP only because it is local, so here a request
counts as sent over TLS: statements whose only condition is `Bool aws:SecureTransport false` do not
apply, and the rest of the policy is evaluated as moto does.
"""

import json

from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import FakeBucket

_original_get_permission = FakeBucket.get_permission


def _insecure_only(statement: dict) -> bool:
    condition = statement.get("Condition") or {}
    return condition == {"Bool": {"aws:SecureTransport": "false"}} or condition == {
        "Bool": {"aws:SecureTransport": ["false"]}
    }


def _get_permission(self: FakeBucket, action: str, resource: str):
    if self.policy is None:
        return PermissionResult.NEUTRAL
    try:
        policy = json.loads(self.policy.decode())
    except ValueError:
        return _original_get_permission(self, action, resource)
    statements = policy.get("Statement")
    if not isinstance(statements, list) or not any(_insecure_only(s) for s in statements):
        return _original_get_permission(self, action, resource)
    kept = [s for s in statements if not _insecure_only(s)]
    if not kept:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**policy, "Statement": kept})).is_action_permitted(action, resource)


def install() -> None:
    FakeBucket.get_permission = _get_permission
