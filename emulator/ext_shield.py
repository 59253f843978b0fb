"""Shield Advanced operations moto 5.2 lacks or gets wrong, for Custom::ShieldAdvanced.

State stays on moto's own per-account, per-partition Shield backend (its `subscription` object and an
attribute for the SRT role), so `POST /moto-api/reset` clears it with everything else.

Behaviour follows the Shield API reference:
- DescribeSubscription answers StartTime and EndTime as timestamps (moto answers a formatted string the
  SDKs cannot read), and no ProactiveEngagementStatus until proactive engagement was set up (moto
  answers ENABLED for every new subscription).
- CreateSubscription on an account that has one answers ResourceAlreadyExistsException (moto replaces it,
  which in AWS would be a second commitment).
- UpdateSubscription sets AutoRenew (ENABLED or DISABLED); without a subscription,
  ResourceNotFoundException.
- AssociateDRTRole / DescribeDRTAccess / DisassociateDRTRole: one SRT role per subscription, replaced by a
  new association; without a subscription, ResourceNotFoundException.

Test control (no AWS call can move a commitment's end): `POST /tapguard/shield/commitment-end`
`{"account": A, "in_seconds": -60, "auto_renew": "DISABLED"}` moves the subscription's EndTime to now plus
`in_seconds` (negative: a commitment that ran out, as one with auto-renew off does at its end) and
optionally sets AutoRenew; a renewal is `in_seconds` a year ahead.
"""

import datetime
import json

from moto.shield.exceptions import (
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from moto.shield.models import ShieldBackend, Subscription, shield_backends
from moto.shield.responses import ShieldResponse

import faults


def _subscription_dict(self: Subscription) -> dict:
    answer = {
        "StartTime": self.start_time.timestamp(),
        "EndTime": self.end_time.timestamp(),
        "TimeCommitmentInSeconds": self.time_commitment_in_seconds,
        "AutoRenew": self.auto_renew,
        "Limits": [limit.to_dict() for limit in self.limits],
        "SubscriptionLimits": self.subscription_limits.to_dict(),
        "SubscriptionArn": self.subscription_arn,
    }
    status = getattr(self, "tapguard_proactive_engagement", None)
    if status:
        answer["ProactiveEngagementStatus"] = status
    return answer


def _create_subscription(self: ShieldBackend) -> None:
    if self.subscription is not None:
        raise ResourceAlreadyExistsException("The subscription already exists.")
    self.subscription = Subscription(account_id=self.account_id)


def _require(backend: ShieldBackend) -> Subscription:
    if backend.subscription is None:
        raise ResourceNotFoundException("The subscription does not exist.")
    return backend.subscription


def _update_subscription(self: ShieldResponse) -> str:
    params = json.loads(self.body or "{}")
    subscription = _require(self.shield_backend)
    auto_renew = params.get("AutoRenew")
    if auto_renew is not None:
        if auto_renew not in ("ENABLED", "DISABLED"):
            raise InvalidParameterException("AutoRenew must be ENABLED or DISABLED.")
        subscription.auto_renew = auto_renew
    return "{}"


def _associate_drt_role(self: ShieldResponse) -> str:
    params = json.loads(self.body or "{}")
    _require(self.shield_backend)
    role = params.get("RoleArn") or ""
    if not role.startswith("arn:") or ":role/" not in role:
        raise InvalidParameterException("Invalid parameter: RoleArn must be an IAM role ARN.")
    self.shield_backend.tapguard_drt_role = role
    return "{}"


def _describe_drt_access(self: ShieldResponse) -> str:
    role = getattr(self.shield_backend, "tapguard_drt_role", None)
    answer = {"LogBucketList": []}
    if role:
        answer["RoleArn"] = role
    return json.dumps(answer)


def _disassociate_drt_role(self: ShieldResponse) -> str:
    _require(self.shield_backend)
    self.shield_backend.tapguard_drt_role = None
    return "{}"


def _control_commitment_end(body: dict) -> dict:
    account = body.get("account")
    if not account:
        raise ValueError("'account' is required")
    subscription = shield_backends[account][body.get("partition") or "aws"].subscription
    if subscription is None:
        raise ValueError("the account has no Shield Advanced subscription")
    seconds = int(body.get("in_seconds", 0))
    # Naive local time, as moto's own Subscription keeps it.
    subscription.end_time = datetime.datetime.now() + datetime.timedelta(seconds=seconds)
    if body.get("auto_renew"):
        subscription.auto_renew = body["auto_renew"]
    return {"EndTime": subscription.end_time.timestamp(), "AutoRenew": subscription.auto_renew}


def install() -> None:
    Subscription.to_dict = _subscription_dict
    ShieldBackend.create_subscription = _create_subscription
    ShieldResponse.update_subscription = _update_subscription
    ShieldResponse.associate_drt_role = _associate_drt_role
    ShieldResponse.describe_drt_access = _describe_drt_access
    ShieldResponse.disassociate_drt_role = _disassociate_drt_role
    faults.CONTROLS[("POST", "/tapguard/shield/commitment-end")] = _control_commitment_end
