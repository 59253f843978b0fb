"""Secrets Manager actions one at a time, as ext_iam.py does for IAM.

moto's server is threaded, and its secrets store looks a secret up by name or ARN by iterating over every
secret (`SecretsStore.__contains__`, `get`, ...). A CreateSecret that adds a secret while another request
iterates failed with "dictionary changed size during iteration" (HTTP 500) once the rotation benchmark ran
hand-overs for a few hundred users at once; the SDK's retries hid it, at the cost of its retry quota. One
lock per emulator makes the store consistent; Secrets Manager's own behaviour is unchanged.
"""

import threading

from moto.secretsmanager.responses import SecretsManagerResponse

_LOCK = threading.RLock()
_call_action = SecretsManagerResponse.call_action


def _one_at_a_time(self: SecretsManagerResponse):
    with _LOCK:
        return _call_action(self)


def install() -> None:
    SecretsManagerResponse.call_action = _one_at_a_time
