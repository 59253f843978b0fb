"""AWS Config operations moto 5.2 lacks or gets wrong, for Custom::ConfigSetup and its verify pass.

State lives on moto's own per-account, per-region Config backend object (an attribute `tapguard_config`
and moto's recorder statuses), so `POST /moto-api/reset` clears it with everything else. What each
behaviour follows in AWS's documentation is in emulator/README.md.

Behaviour, always on:
- DescribeDeliveryChannelStatus (moto: not implemented): one DeliveryChannelStatus per channel, named or
  all; an unknown name answers NoSuchDeliveryChannelException. Configuration history and snapshot
  deliveries answer `Success` (attempted when the channel was put), the SNS stream `Not_Applicable`
  unless the channel has a topic, until a test makes a delivery fail.

Behaviour switched on per account and region (`POST /tapguard/config/behave`, below), as AWS does it:
- `periodic_scope`: PutConfigRule refuses a Scope on an AWS managed rule whose trigger type is periodic
  only (moto's catalog of managed rules says which) with InvalidParameterValueException.
- `deleting_reads: N`: a deleted rule stays in DescribeConfigRules with ConfigRuleState `DELETING` for N
  calls that touch it (DescribeConfigRules showing it, PutConfigRule or DeleteConfigRule of it), and
  PutConfigRule / DeleteConfigRule of it answer ResourceInUseException meanwhile; then it is gone.
- `new_role_uses: N`: the first N PutConfigurationRecorder calls naming a role ARN not used before in the
  account and region answer InsufficientPermissionsException, as a role created a moment ago does while
  IAM propagates it.
- `pass_role_prefix: "arn:aws:iam::<account>:role/tapguard/"`: PutConfigurationRecorder naming a role
  outside that prefix answers AccessDeniedException (iam:PassRole), as for a function whose policy allows
  passing only the roles under a path (template.yml's ConfigRolePath). `""` turns it off.
The harness's own (marked) calls are exempt from these switches: they set a test's scene.

Test controls (JSON bodies; `region` defaults to us-east-1):
- `POST /tapguard/config/behave` `{"account", "region", "periodic_scope": true, "deleting_reads": 3,
  "new_role_uses": 2}`: switches the behaviours above on for that account and region (an absent field
  leaves that one as it is; `false` or 0 turns it off).
- `POST /tapguard/config/delivery-status` `{"account", "region", "status": "Failure", "code": "NoSuchBucket",
  "message": "..."}`: the channel's next reads show its history and snapshot deliveries as last attempted
  now with that status and error. A later PutDeliveryChannel does not change it: in AWS the status is that
  of the last delivery attempt, which only the next delivery replaces. `"status": "Success"` is a
  successful delivery now.
- `POST /tapguard/config/recorder-status` `{"account", "region", "last_status": "Failure", "code", "message"}`:
  the recorder's DescribeConfigurationRecorderStatus answers that lastStatus (its last recording event).
"""

import json
import time

from moto.config.exceptions import (
    InsufficientPermissionsException,
    InvalidParameterValueException,
    NoSuchDeliveryChannelException,
    ResourceInUseException,
)
from moto.config.models import MANAGED_RULES, config_backends
from moto.config.responses import ConfigResponse

from moto.core.exceptions import JsonRESTError

import faults

DEFAULT_REGION = "us-east-1"


def _state(backend) -> dict:
    state = getattr(backend, "tapguard_config", None)
    if state is None:
        state = {"delivery": None, "channel_put_at": {}, "behave": {}, "service_linked": {}, "deleting": {},
                 "role_uses": {}}
        backend.tapguard_config = state
    return state


def _backend(body: dict):
    account = str(body.get("account") or "")
    if len(account) != 12 or not account.isdigit():
        raise ValueError("'account' must be a 12-digit account id")
    return config_backends[account][body.get("region") or DEFAULT_REGION]


# --- DescribeDeliveryChannelStatus ------------------------------------------------------------------


def _delivery_info(state: dict, channel_name: str) -> dict:
    delivery = state["delivery"]
    if delivery:
        info = {"lastStatus": delivery["status"], "lastAttemptTime": delivery["at"]}
        if delivery["status"] == "Failure":
            info["lastErrorCode"] = delivery["code"]
            info["lastErrorMessage"] = delivery["message"]
            if delivery.get("last_success"):
                info["lastSuccessfulTime"] = delivery["last_success"]
        else:
            info["lastSuccessfulTime"] = delivery["at"]
        return info
    at = state["channel_put_at"].get(channel_name, time.time())
    return {"lastStatus": "Success", "lastAttemptTime": at, "lastSuccessfulTime": at}


def _describe_delivery_channel_status(self: ConfigResponse) -> str:
    backend = self.config_backend
    state = _state(backend)
    names = self._get_param("DeliveryChannelNames") or list(backend.delivery_channels)
    statuses = []
    for name in names:
        channel = backend.delivery_channels.get(name)
        if channel is None:
            raise NoSuchDeliveryChannelException(name)
        info = _delivery_info(state, name)
        stream = {"lastStatus": "Not_Applicable"}
        if channel.sns_topic_arn:
            stream = {"lastStatus": "Success", "lastStatusChangeTime": info["lastAttemptTime"]}
        statuses.append(
            {
                "name": name,
                "configHistoryDeliveryInfo": dict(info),
                "configSnapshotDeliveryInfo": dict(info),
                "configStreamDeliveryInfo": stream,
            }
        )
    return json.dumps({"DeliveryChannelsStatus": statuses})


_moto_put_delivery_channel = ConfigResponse.put_delivery_channel


def _put_delivery_channel(self: ConfigResponse) -> str:
    answer = _moto_put_delivery_channel(self)
    name = (self._get_param("DeliveryChannel") or {}).get("name")
    if name:
        _state(self.config_backend)["channel_put_at"][name] = time.time()
    return answer


def _control_delivery_status(body: dict) -> dict:
    backend = _backend(body)
    status = body.get("status", "Failure")
    if status not in ("Success", "Failure"):
        raise ValueError("'status' is Success or Failure")
    state = _state(backend)
    previous = state["delivery"]
    last_success = previous["at"] if previous and previous["status"] == "Success" else None
    state["delivery"] = {
        "status": status,
        "code": body.get("code") or "NoSuchBucket",
        "message": body.get("message") or "The specified bucket does not exist",
        "at": time.time(),
        "last_success": last_success,
    }
    return {"delivery": state["delivery"]}


def _control_recorder_status(body: dict) -> dict:
    backend = _backend(body)
    if not backend.recorders:
        raise KeyError("no configuration recorder in this account and region")
    last = body.get("last_status", "Failure")
    if last not in ("Pending", "Success", "Failure"):
        raise ValueError("'last_status' is Pending, Success or Failure")
    for recorder in backend.recorders.values():
        recorder.status.last_status = last
        recorder.status.last_error_code = body.get("code") if last == "Failure" else None
        recorder.status.last_error_message = body.get("message") if last == "Failure" else None
        recorder.status.last_status_change_time = int(time.time())
    return {"last_status": last}


# --- Service-linked recorders -----------------------------------------------------------------------


def _recorder_arn(backend, name: str) -> str:
    partition = "aws-cn" if backend.region_name.startswith("cn-") else "aws"
    return f"arn:{partition}:config:{backend.region_name}:{backend.account_id}:configuration-recorder/{name}/tapguard"


def _put_service_linked_configuration_recorder(self: ConfigResponse) -> str:
    backend = self.config_backend
    principal = self._get_param("ServicePrincipal") or ""
    if not principal.endswith(".amazonaws.com"):
        from moto.config.exceptions import ValidationException

        raise ValidationException(f"Invalid service principal {principal!r}")
    linked = _state(backend)["service_linked"]
    if principal not in linked:
        service = "".join(part.capitalize() for part in principal.split(".")[0].split("-"))
        name = f"AWSConfigurationRecorderFor{service}"
        linked[principal] = {
            "arn": _recorder_arn(backend, name),
            "name": name,
            "servicePrincipal": principal,
            "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": False},
            "recordingScope": "INTERNAL",
        }
    recorder = linked[principal]
    return json.dumps({"Arn": recorder["arn"], "Name": recorder["name"]})


def _list_configuration_recorders(self: ConfigResponse) -> str:
    backend = self.config_backend
    summaries = [
        {"arn": _recorder_arn(backend, name), "name": name, "recordingScope": "PAID"}
        for name in backend.recorders
    ]
    summaries += [
        {key: r[key] for key in ("arn", "name", "servicePrincipal", "recordingScope")}
        for r in _state(backend)["service_linked"].values()
    ]
    return json.dumps({"ConfigurationRecorderSummaries": summaries})


_moto_describe_configuration_recorders = ConfigResponse.describe_configuration_recorders


def _describe_configuration_recorders(self: ConfigResponse) -> str:
    linked = _state(self.config_backend)["service_linked"]
    principal = self._get_param("ServicePrincipal")
    names = self._get_param("ConfigurationRecorderNames") or []
    if principal:
        found = [linked[principal]] if principal in linked else []
        return json.dumps({"ConfigurationRecorders": found})
    by_name = {r["name"]: r for r in linked.values()}
    if names and all(n in by_name for n in names):
        return json.dumps({"ConfigurationRecorders": [by_name[n] for n in names]})
    return _moto_describe_configuration_recorders(self)


# --- Switched behaviours ----------------------------------------------------------------------------

BEHAVIOURS = {"periodic_scope": bool, "deleting_reads": int, "new_role_uses": int, "pass_role_prefix": str}


class AccessDeniedException(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("AccessDeniedException", message)


def _from_harness(response: ConfigResponse) -> bool:
    """The test harness sets up and inspects state with marked calls: the switches are for handlers."""
    headers = response.headers or {}
    return bool(headers.get("x-tapguard-harness") or headers.get("X-Tapguard-Harness"))


def _behaves(backend, name: str):
    return _state(backend)["behave"].get(name)


def _control_behave(body: dict) -> dict:
    state = _state(_backend(body))
    for name, kind in BEHAVIOURS.items():
        if name in body:
            state["behave"][name] = kind(body[name])
    unknown = set(body) - set(BEHAVIOURS) - {"account", "region"}
    if unknown:
        raise ValueError(f"unknown behaviours {sorted(unknown)}; known: {sorted(BEHAVIOURS)}")
    return dict(state["behave"])


def _is_periodic_only(rule: dict) -> bool:
    source = rule.get("Source") or {}
    if source.get("Owner") != "AWS":
        return False
    entry = MANAGED_RULES.get("ManagedRules", {}).get(source.get("SourceIdentifier") or "")
    return bool(entry) and entry.get("Trigger type") == "Periodic"


def _has_scope(rule: dict) -> bool:
    scope = rule.get("Scope") or {}
    return bool(scope.get("ComplianceResourceTypes") or scope.get("TagKey") or scope.get("ComplianceResourceId"))


def _tick_deleting(backend, name: str) -> bool:
    """One call touching a rule being deleted: True while it is still DELETING, after which it is gone."""
    deleting = _state(backend)["deleting"]
    if name not in deleting:
        return False
    deleting[name] -= 1
    if deleting[name] <= 0:
        del deleting[name]
        backend.config_rules.pop(name, None)
        return False
    return True


_moto_delete_config_rule = ConfigResponse.delete_config_rule


def _delete_config_rule(self: ConfigResponse) -> str:
    backend = self.config_backend
    name = self._get_param("ConfigRuleName")
    reads = _behaves(backend, "deleting_reads") or 0
    if _tick_deleting(backend, name):
        raise ResourceInUseException(f"The rule {name} is currently being deleted.  Please retry after some time")
    rule = backend.config_rules.get(name)
    answer = _moto_delete_config_rule(self)
    if rule is not None and reads > 0:
        rule.config_rule_state = "DELETING"
        backend.config_rules[name] = rule
        _state(backend)["deleting"][name] = reads
    return answer


_moto_describe_config_rules = ConfigResponse.describe_config_rules


def _describe_config_rules(self: ConfigResponse) -> str:
    backend = self.config_backend
    for name in list(_state(backend)["deleting"]):
        _tick_deleting(backend, name)
    return _moto_describe_config_rules(self)


_moto_put_configuration_recorder = ConfigResponse.put_configuration_recorder


def _put_configuration_recorder(self: ConfigResponse) -> str:
    backend = self.config_backend
    uses = _behaves(backend, "new_role_uses") or 0
    role = (self._get_param("ConfigurationRecorder") or {}).get("roleARN") or ""
    if _from_harness(self):
        return _moto_put_configuration_recorder(self)
    prefix = _behaves(backend, "pass_role_prefix")
    if prefix and not role.startswith(prefix):
        raise AccessDeniedException(
            f"User: arn:aws:sts::{backend.account_id}:assumed-role/tapguard-function is not authorized to perform: "
            f"iam:PassRole on resource: {role} because no identity-based policy allows the iam:PassRole action"
        )
    if uses > 0 and role:
        seen = _state(backend)["role_uses"]
        seen[role] = seen.get(role, 0) + 1
        if seen[role] <= uses:
            raise InsufficientPermissionsException(
                f"The role {role} does not grant AWS Config the permissions it needs (or cannot be assumed yet)."
            )
    return _moto_put_configuration_recorder(self)


_moto_put_config_rule = ConfigResponse.put_config_rule


def _put_config_rule(self: ConfigResponse) -> str:
    backend = self.config_backend
    rule = self._get_param("ConfigRule") or {}
    if _tick_deleting(backend, rule.get("ConfigRuleName") or ""):
        raise ResourceInUseException(
            f"The rule {rule.get('ConfigRuleName')} is currently being deleted.  Please retry after some time"
        )
    if _behaves(backend, "periodic_scope") and _is_periodic_only(rule) and _has_scope(rule) and not _from_harness(self):
        raise InvalidParameterValueException(
            f"The rule {rule.get('ConfigRuleName')} is a periodic rule: a periodic rule cannot have a scope "
            "(a scope selects the resources whose configuration changes trigger an evaluation)."
        )
    return _moto_put_config_rule(self)


def install() -> None:
    ConfigResponse.put_service_linked_configuration_recorder = _put_service_linked_configuration_recorder
    ConfigResponse.list_configuration_recorders = _list_configuration_recorders
    ConfigResponse.describe_configuration_recorders = _describe_configuration_recorders
    ConfigResponse.put_config_rule = _put_config_rule
    ConfigResponse.delete_config_rule = _delete_config_rule
    ConfigResponse.describe_config_rules = _describe_config_rules
    ConfigResponse.put_configuration_recorder = _put_configuration_recorder
    faults.CONTROLS[("POST", "/tapguard/config/behave")] = _control_behave
    ConfigResponse.describe_delivery_channel_status = _describe_delivery_channel_status
    ConfigResponse.put_delivery_channel = _put_delivery_channel
    faults.CONTROLS[("POST", "/tapguard/config/delivery-status")] = _control_delivery_status
    faults.CONTROLS[("POST", "/tapguard/config/recorder-status")] = _control_recorder_status
