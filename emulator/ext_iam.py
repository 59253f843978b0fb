"""IAM for the access-key rotation tests and benchmark: key ages, many users at once, ListUsers pages.

moto's server has no clock control, so a key can never be old; and creating thousands of users with
keys through the API takes minutes. State stays on moto's own per-account IAM backend objects (the
keys' CreateDate, the users, their tags), so `POST /moto-api/reset` clears it with everything else.

Test controls (JSON bodies, JSON answers):
- `POST /tapguard/iam/age-key` `{"account": "123456789012", "user": "alice", "access_key_id": "AKIA...",
   "days": 120, "last_used_days": 30}`: sets the key's CreateDate to `days` days ago, as ListAccessKeys
   and the credential report (which moto builds from the live keys on every GetCredentialReport) show it.
   Without `access_key_id`, every key of the user. `last_used_days` (optional) sets when the key was last
   used, as GetAccessKeyLastUsed and the report show it. Answers `{"aged": [{"access_key_id", "create_date"}]}`.
- `POST /tapguard/iam/key-used` `{"account": "123456789012", "access_key_id": "AKIA...", "days_ago": 0}`: records a
   use of the key `days_ago` days ago (default: now), as GetAccessKeyLastUsed shows it; `{"never": true}` instead
   clears it (a key never used has no LastUsedDate). Answers `{"access_key_id", "last_used"}` (null when never).
- `POST /tapguard/iam/days-pass` `{"account": "123456789012", "days": 8, "user": "alice"}`: as if `days` days
   had passed since everything IAM recorded about the user (without `user`, every user of the account):
   its CreateDate, each key's CreateDate and last use, and every ISO-8601 UTC time (`2026-05-07T13:07:53Z`)
   in the user's tag values (where a tool such as the rotation records its steps) move `days` into the
   past. Answers `{"users": N, "keys": M, "tag_times": K}`.
- `POST /tapguard/iam/bulk-users` `{"account": "123456789012", "prefix": "user-", "count": 2000, "start": 0,
   "path": "/", "tags": {"k": "v"}, "keys": [{"age_days": 120, "status": "Active", "last_used_days": 3}]}`:
   creates users `<prefix><start>` .. `<prefix><start+count-1>`, each with the listed keys (at most 2, the
   IAM limit); answers `{"users": N, "keys": M, "access_key_ids": {"user": ["AKIA..", ..]}}`.

Credential report fixed: a user name holding a comma (IAM allows it) is quoted in the CSV, with its ARN,
as a CSV writer does; moto writes it bare and shifts every later column.

Concurrency fixed: IAM actions run one at a time. moto's server is threaded and its IAM backend iterates
its users and keys (the credential report, ListUsers, the key lookups) while another request adds to them,
which failed at a few hundred users with "dictionary changed size during iteration". IAM is one global
service per account; one lock per emulator keeps it consistent. (Secrets Manager: ext_secretsmanager.py.)

Switched on per account (`POST /tapguard/consistency/behave`, consistency.py): IAM is eventually
consistent, so GetAccountPasswordPolicy answers what it answered before (the old policy, or NoSuchEntity)
for N reads after UpdateAccountPasswordPolicy / DeleteAccountPasswordPolicy. The wrap runs inside the
lock above, like every IAM action.

Operation fixed: ListUsers pages with MaxItems (default 100, as AWS) and Marker, answering IsTruncated,
where moto answers every user at once.
"""

import re
import threading
from datetime import datetime, timedelta, timezone

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.iam.models import LIMIT_KEYS_PER_USER, AccessKeyLastUsed, User, iam_backends
from moto.iam.responses import IamResponse
from moto.utilities.utils import PARTITION_NAMES

import consistency
import faults

DEFAULT_PAGE = 100


def _backend(body: dict):
    account = str(body.get("account") or "")
    if len(account) != 12 or not account.isdigit():
        raise ValueError("'account' must be a 12-digit account id")
    partition = body.get("partition") or "aws"
    if partition not in PARTITION_NAMES:
        raise ValueError(f"unknown partition {partition!r}")
    return iam_backends[account][partition]


def _days(body: dict, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    value = float(value)
    if value < 0:
        raise ValueError(f"'{name}' must be >= 0")
    return value


def _age(key, days: float | None, last_used_days: float | None) -> None:
    now = utcnow()
    if days is not None:
        key.create_date = now - timedelta(days=days)
    if last_used_days is not None:
        key.last_used = AccessKeyLastUsed(now - timedelta(days=last_used_days), "iam", "us-east-1")


def age_key(body: dict) -> dict:
    backend = _backend(body)
    user_name = body.get("user")
    if not user_name:
        raise ValueError("'user' is required")
    user = backend.users.get(user_name)
    if user is None:
        raise KeyError(f"no user {user_name!r} in account {body['account']}")
    days, last_used = _days(body, "days"), _days(body, "last_used_days")
    if days is None and last_used is None:
        raise ValueError("give 'days' and/or 'last_used_days'")
    wanted = body.get("access_key_id")
    keys = [k for k in user.access_keys if not wanted or k.access_key_id == wanted]
    if wanted and not keys:
        raise KeyError(f"user {user_name!r} has no access key {wanted!r}")
    for key in keys:
        _age(key, days, last_used)
    return {"aged": [{"access_key_id": k.access_key_id, "create_date": k.create_date.isoformat()} for k in keys]}


def key_used(body: dict) -> dict:
    backend = _backend(body)
    wanted = body.get("access_key_id")
    if not wanted:
        raise ValueError("'access_key_id' is required")
    key = next((k for u in backend.users.values() for k in u.access_keys if k.access_key_id == wanted), None)
    if key is None:
        raise KeyError(f"no access key {wanted!r} in account {body['account']}")
    if body.get("never"):
        key.last_used = None
        return {"access_key_id": wanted, "last_used": None}
    days_ago = _days(body, "days_ago") or 0.0
    key.last_used = AccessKeyLastUsed(utcnow() - timedelta(days=days_ago), "iam", "us-east-1")
    return {"access_key_id": wanted, "last_used": key.last_used.timestamp.isoformat()}


# An ISO-8601 UTC time as tools write it in tag values: `2026-05-07T13:07:53Z`, with optional fractions
# or an explicit `+00:00`.
_TIME = re.compile(r"\b(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|\+00:00)")


def _earlier(value: str, delta: timedelta) -> tuple[str, int]:
    def moved(match: re.Match) -> str:
        when = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc) - delta
        return when.strftime("%Y-%m-%dT%H:%M:%S") + (match.group(2) or "") + match.group(3)

    return _TIME.subn(moved, value)


def days_pass(body: dict) -> dict:
    backend = _backend(body)
    days = _days(body, "days")
    if not days:
        raise ValueError("'days' (> 0) is required")
    delta = timedelta(days=days)
    wanted = body.get("user")
    if wanted and wanted not in backend.users:
        raise KeyError(f"no user {wanted!r} in account {body['account']}")
    users = [backend.users[wanted]] if wanted else list(backend.users.values())
    moved_keys = moved_times = 0
    for user in users:
        user.create_date = user.create_date - delta
        for key in user.access_keys:
            key.create_date = key.create_date - delta
            if key.last_used is not None:
                used = key.last_used
                key.last_used = AccessKeyLastUsed(used.timestamp - delta, used.service, used.region)
            moved_keys += 1
        tags = backend.tagger.list_tags_for_resource(user.arn)["Tags"]
        rewritten = []
        for tag in tags:
            value, count = _earlier(tag["Value"], delta)
            if count:
                rewritten.append({"Key": tag["Key"], "Value": value})
                moved_times += count
        if rewritten:
            backend.tagger.tag_resource(user.arn, rewritten)
    return {"users": len(users), "keys": moved_keys, "tag_times": moved_times}


def bulk_users(body: dict) -> dict:
    backend = _backend(body)
    prefix = body.get("prefix") or "user-"
    count, start = int(body.get("count", 0)), int(body.get("start", 0))
    if count < 0 or count > 20000:
        raise ValueError("'count' must be between 0 and 20000")
    key_specs = body.get("keys") or []
    if len(key_specs) > LIMIT_KEYS_PER_USER:
        raise ValueError(f"an IAM user holds at most {LIMIT_KEYS_PER_USER} access keys")
    for spec in key_specs:
        if spec.get("status", "Active") not in ("Active", "Inactive"):
            raise ValueError("a key's status is Active or Inactive")
    tags = [{"Key": k, "Value": str(v)} for k, v in (body.get("tags") or {}).items()]
    path = body.get("path") or "/"
    key_ids: dict = {}
    created_keys = 0
    for n in range(start, start + count):
        name = f"{prefix}{n}"
        backend.create_user("us-east-1", name, path=path, tags=tags)
        ids = []
        for spec in key_specs:
            key = backend.create_access_key(name, status=spec.get("status", "Active"))
            _age(key, _days(spec, "age_days"), _days(spec, "last_used_days"))
            ids.append(key.access_key_id)
            created_keys += 1
        key_ids[name] = ids
    return {"users": count, "keys": created_keys, "access_key_ids": key_ids}


def _list_users(self: IamResponse) -> ActionResult:
    path_prefix = self._get_param("PathPrefix")
    marker = self._get_param("Marker")
    max_items = int(self._get_param("MaxItems") or DEFAULT_PAGE)
    users = list(self.backend.list_users(path_prefix, None, None))
    # The marker is the offset of the next user: opaque to callers, as AWS's is.
    start = int(marker) if marker and marker.isdigit() else 0
    page = users[start : start + max_items]
    result = {"Users": page, "IsTruncated": start + max_items < len(users)}
    if result["IsTruncated"]:
        result["Marker"] = str(start + max_items)
    return ActionResult(result)


_user_to_csv = User.to_csv
_IAM_LOCK = threading.RLock()
_call_action = IamResponse.call_action


def _one_at_a_time(self: IamResponse):
    with _IAM_LOCK:
        return _call_action(self)


def _locked(control):
    def run(body: dict) -> dict:
        with _IAM_LOCK:
            return control(body)

    return run


def _quoted_csv(self: User) -> str:
    line = _user_to_csv(self)
    bare = f"{self.name},{self.arn},"
    if "," in self.name and line.startswith(bare):
        return f'"{self.name}","{self.arn}",' + line[len(bare) :]
    return line


def install() -> None:
    IamResponse.list_users = _list_users
    IamResponse.call_action = _one_at_a_time
    consistency.wrap(
        IamResponse,
        lambda response: response.backend,
        lambda account, _region: iam_backends[account]["aws"],
        {
            "UpdateAccountPasswordPolicy": ["GetAccountPasswordPolicy"],
            "DeleteAccountPasswordPolicy": ["GetAccountPasswordPolicy"],
        },
    )
    User.to_csv = _quoted_csv
    faults.CONTROLS[("POST", "/tapguard/iam/age-key")] = _locked(age_key)
    faults.CONTROLS[("POST", "/tapguard/iam/bulk-users")] = _locked(bulk_users)
    faults.CONTROLS[("POST", "/tapguard/iam/key-used")] = _locked(key_used)
    faults.CONTROLS[("POST", "/tapguard/iam/days-pass")] = _locked(days_pass)
