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

- Proactive engagement (moto has none of it): `AssociateProactiveEngagementDetails` initializes it once,
  with a contact list that must hold at least one phone number, setting the contacts and turning it
  `ENABLED`; called again once initialized, InvalidOperationException (the emulator's choice among the
  documented errors: the API reference says later changes go through Enable/DisableProactiveEngagement
  and UpdateEmergencyContactSettings). `EnableProactiveEngagement` / `DisableProactiveEngagement` before
  initialization answer InvalidOperationException too, and so do they when the status already is the
  one asked for ("the operation would not cause any change to occur"). `UpdateEmergencyContactSettings`
  replaces the list; while proactive engagement is on, a list without a phone number is an
  InvalidParameterException ("If you have proactive engagement enabled, the contact list must include at
  least one phone number"). Email addresses and phone numbers are checked against the API's patterns.
  Every one of these, `DescribeEmergencyContactSettings` included, answers ResourceNotFoundException
  without a subscription; the contacts and the status live on the subscription, so a reset clears them.

Test control (no AWS call can move a commitment's end): `POST /tapguard/shield/commitment-end`
`{"account": A, "in_seconds": -60, "auto_renew": "DISABLED"}` moves the subscription's EndTime to now plus
`in_seconds` (negative: a commitment that ran out, as one with auto-renew off does at its end) and
optionally sets AutoRenew; a renewal is `in_seconds` a year ahead.
"""

import datetime
import json
import re

from moto.core.exceptions import JsonRESTError
from moto.shield.exceptions import (
    InvalidParameterException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from moto.shield.models import ShieldBackend, Subscription, shield_backends
from moto.shield.responses import ShieldResponse

import faults


class InvalidOperationException(JsonRESTError):
    """Shield's "the operation would not cause any change to occur" (moto has no such class)."""

    code = 400

    def __init__(self, message: str):
        super().__init__("InvalidOperationException", message)


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


_EMAIL = re.compile(r"^\S+@\S+\.\S+$")
_PHONE = re.compile(r"^\+[1-9]\d{1,14}$")


def _contact_list(params: dict) -> list:
    contacts = params.get("EmergencyContactList") or []
    if len(contacts) > 10:
        raise InvalidParameterException("EmergencyContactList: at most 10 contacts.")
    answer = []
    for contact in contacts:
        email = contact.get("EmailAddress") or ""
        if not _EMAIL.match(email):
            raise InvalidParameterException(f"Invalid parameter: EmailAddress {email!r}.")
        entry = {"EmailAddress": email}
        phone = contact.get("PhoneNumber")
        if phone is not None:
            if not _PHONE.match(phone):
                raise InvalidParameterException(f"Invalid parameter: PhoneNumber {phone!r}.")
            entry["PhoneNumber"] = phone
        if contact.get("ContactNotes") is not None:
            entry["ContactNotes"] = contact["ContactNotes"]
        answer.append(entry)
    return answer


def _has_phone(contacts: list) -> bool:
    return any(c.get("PhoneNumber") for c in contacts)


def _engagement_on(subscription: Subscription) -> bool:
    return getattr(subscription, "tapguard_proactive_engagement", None) in ("ENABLED", "PENDING")


def _describe_emergency_contact_settings(self: ShieldResponse) -> str:
    subscription = _require(self.shield_backend)
    return json.dumps({"EmergencyContactList": getattr(subscription, "tapguard_contacts", [])})


def _update_emergency_contact_settings(self: ShieldResponse) -> str:
    params = json.loads(self.body or "{}")
    subscription = _require(self.shield_backend)
    contacts = _contact_list(params)
    if _engagement_on(subscription) and not _has_phone(contacts):
        raise InvalidParameterException(
            "Invalid parameter: while proactive engagement is enabled the contact list must include at least one "
            "phone number."
        )
    subscription.tapguard_contacts = contacts
    return "{}"


def _associate_proactive_engagement_details(self: ShieldResponse) -> str:
    params = json.loads(self.body or "{}")
    subscription = _require(self.shield_backend)
    if getattr(subscription, "tapguard_proactive_engagement", None):
        raise InvalidOperationException(
            "Proactive engagement is already initialized: use EnableProactiveEngagement, "
            "DisableProactiveEngagement and UpdateEmergencyContactSettings."
        )
    contacts = _contact_list(params)
    if not _has_phone(contacts):
        raise InvalidParameterException(
            "Invalid parameter: the emergency contact list must include at least one phone number."
        )
    subscription.tapguard_contacts = contacts
    subscription.tapguard_proactive_engagement = "ENABLED"
    return "{}"


def _set_engagement(self: ShieldResponse, status: str) -> str:
    subscription = _require(self.shield_backend)
    current = getattr(subscription, "tapguard_proactive_engagement", None)
    if not current:
        raise InvalidOperationException(
            "Proactive engagement is not initialized: call AssociateProactiveEngagementDetails first."
        )
    if current == status:
        raise InvalidOperationException("The operation would not cause any change to occur.")
    if status == "ENABLED" and not _has_phone(getattr(subscription, "tapguard_contacts", [])):
        raise InvalidParameterException(
            "Invalid parameter: the emergency contact list must include at least one phone number."
        )
    subscription.tapguard_proactive_engagement = status
    return "{}"


def _enable_proactive_engagement(self: ShieldResponse) -> str:
    return _set_engagement(self, "ENABLED")


def _disable_proactive_engagement(self: ShieldResponse) -> str:
    return _set_engagement(self, "DISABLED")


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
    ShieldResponse.describe_emergency_contact_settings = _describe_emergency_contact_settings
    ShieldResponse.update_emergency_contact_settings = _update_emergency_contact_settings
    ShieldResponse.associate_proactive_engagement_details = _associate_proactive_engagement_details
    ShieldResponse.enable_proactive_engagement = _enable_proactive_engagement
    ShieldResponse.disable_proactive_engagement = _disable_proactive_engagement
    faults.CONTROLS[("POST", "/tapguard/shield/commitment-end")] = _control_commitment_end
