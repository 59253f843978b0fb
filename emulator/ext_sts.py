"""STS as a long deployment meets it: assumed-role credentials that expire, and are refused after.

moto issues assumed-role credentials with the expiration asked for but accepts them for ever. With
`POST /tapguard/sts/lifetime` `{"account": "<target account>", "seconds": 2}`, credentials from an
AssumeRole into that account expire after that many seconds (the Expiration the caller is told says
so too), and any request signed with them after that is refused with `ExpiredToken` (HTTP 400, the
query protocol's error shape), as AWS refuses it. `POST /tapguard/sts/assumed` `{"account": "..."}`
gives the AssumeRole calls into that account: `[{"session_name", "duration_seconds", "expired_uses"}]`
(`duration_seconds` as the caller asked; `expired_uses` how often its credentials were refused).

State sits on moto's STS backend of the target account (the lifetimes) and on the assumed roles
themselves, so `POST /moto-api/reset` clears it.
"""

import datetime
import re
import threading

from moto.core.exceptions import _RESTError
from moto.core.responses import BaseResponse
from moto.core.utils import utcnow
from moto.sts.models import STSBackend, sts_backends

import faults

_original_assume_role = STSBackend.assume_role
_original_setup_class = BaseResponse.setup_class

_lock = threading.Lock()
# access key id -> the AssumedRole it belongs to, for the credentials given a lifetime.
_expiring: dict = {}
_ACCESS_KEY = re.compile(r"Credential=([^/,\s]+)/")


class ExpiredTokenError(_RESTError):
    code = 400

    def __init__(self) -> None:
        super().__init__("ExpiredToken", "The security token included in the request is expired")


def _assume_role(self: STSBackend, *args, **kwargs):
    role = _original_assume_role(self, *args, **kwargs)
    role.tapguard_duration_seconds = kwargs.get("duration")
    role.tapguard_expired_uses = 0
    target = sts_backends[role.account_id]["aws"]
    seconds = getattr(target, "tapguard_lifetime_seconds", None)
    if seconds is not None:
        role.expiration = utcnow() + datetime.timedelta(seconds=seconds)
        with _lock:
            _expiring[role.access_key_id] = role
    with _lock:
        if not hasattr(target, "tapguard_assumed"):
            target.tapguard_assumed = []
        target.tapguard_assumed.append(role)
    return role


def _setup_class(self: BaseResponse, request, full_url, headers, *args, **kwargs):
    result = _original_setup_class(self, request, full_url, headers, *args, **kwargs)
    match = _ACCESS_KEY.search((headers or {}).get("Authorization", "") or "")
    if match:
        with _lock:
            role = _expiring.get(match.group(1))
        if role is not None and utcnow() > role.expiration:
            role.tapguard_expired_uses += 1
            raise ExpiredTokenError()
    return result


def _control_lifetime(body: dict) -> dict:
    if not body.get("account") or not isinstance(body.get("seconds"), int):
        raise ValueError("a lifetime needs 'account' and 'seconds' (an integer)")
    sts_backends[body["account"]]["aws"].tapguard_lifetime_seconds = body["seconds"]
    return {"account": body["account"], "seconds": body["seconds"]}


def _control_assumed(body: dict) -> list:
    if not body.get("account"):
        raise ValueError("'account' is required")
    target = sts_backends[body["account"]]["aws"]
    with _lock:
        return [
            {
                "session_name": r.session_name,
                "duration_seconds": r.tapguard_duration_seconds,
                "expired_uses": r.tapguard_expired_uses,
            }
            for r in getattr(target, "tapguard_assumed", [])
        ]


def install() -> None:
    STSBackend.assume_role = _assume_role
    BaseResponse.setup_class = _setup_class
    faults.CONTROLS[("POST", "/tapguard/sts/lifetime")] = _control_lifetime
    faults.CONTROLS[("POST", "/tapguard/sts/assumed")] = _control_assumed
