"""AWS Config operations moto 5.2 lacks or gets wrong, for Custom::ConfigSetup and its verify pass.

State lives on moto's own per-account, per-region Config backend object (an attribute `tapguard_config`
and moto's recorder statuses), so `POST /moto-api/reset` clears it with everything else. What each
behaviour follows in AWS's documentation is in emulator/README.md.

Behaviour, always on:
- DescribeDeliveryChannelStatus (moto: not implemented): one DeliveryChannelStatus per channel, named or
  all; an unknown name answers NoSuchDeliveryChannelException. Configuration history and snapshot
  deliveries answer `Success` (attempted when the channel was put), the SNS stream `Not_Applicable`
  unless the channel has a topic, until a test makes a delivery fail.

Test controls (JSON bodies; `region` defaults to us-east-1):
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

from moto.config.exceptions import NoSuchDeliveryChannelException
from moto.config.models import config_backends
from moto.config.responses import ConfigResponse

import faults

DEFAULT_REGION = "us-east-1"


def _state(backend) -> dict:
    state = getattr(backend, "tapguard_config", None)
    if state is None:
        state = {"delivery": None, "channel_put_at": {}}
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


def install() -> None:
    ConfigResponse.describe_delivery_channel_status = _describe_delivery_channel_status
    ConfigResponse.put_delivery_channel = _put_delivery_channel
    faults.CONTROLS[("POST", "/tapguard/config/delivery-status")] = _control_delivery_status
    faults.CONTROLS[("POST", "/tapguard/config/recorder-status")] = _control_recorder_status
