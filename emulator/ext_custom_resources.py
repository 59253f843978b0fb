"""Custom resources answered by the project's own handler binaries, without Docker.

moto 5.2 creates a `Custom::...` resource by invoking its ServiceToken's Lambda function in Docker and
waiting for the function to PUT its answer to a response URL; without Docker the function never runs,
the resource never answers and its attributes (`!GetAtt ConfigSetup.RecorderName`) are empty. Here a
test names the binary that is the code of each function of an account:

- `POST /tapguard/lambda/binaries` `{"account", "binaries": {"ConfigSetupFunction": "/path/to/config-setup",
  ...}, "timeout_seconds": 120}`: a function of that account whose name is a key, or contains `-<key>-`
  (CloudFormation names a stack's function `<stack>-<LogicalId>-<suffix>`), runs that binary. Answers
  `{"binaries"}`. `POST /tapguard/lambda/invocations` `{"account"}` answers the invocations so far:
  `[{"function", "region", "request_type", "logical_id", "status", "reason", "exit"}]`.

A stack's creation then sends the resource's Create request (RequestType, ResponseURL, StackId,
RequestId, ResourceType, LogicalResourceId, ResourceProperties with every scalar as a string and no
`AWS::NoValue` list element, as CloudFormation sends them) to a fresh process of the binary through a minimal Lambda Runtime API
(`/2018-06-01/runtime/invocation/next`, `.../response`, `.../error`) served on loopback for that one
invocation, with the function's environment variables, `AWS_ENDPOINT_URL` the emulator and credentials
of the function's role in its account (moto's AssumeRole). The handler PUTs its answer to the ResponseURL,
which the same loopback server takes. `SUCCESS`: the resource's physical id and `Data` are the answer's
(`Fn::GetAtt` reads Data). `FAILED`, or no answer within the timeout (the process is then killed): the
resource fails with the answer's `Reason` and the stack rolls back (ext_cloudformation.py plays it). A
function with no binary named keeps moto's behaviour (Docker). Not modelled: Update and Delete requests
(moto sends none either); a deleted stack leaves what its custom resources set.

State: the binaries named and the invocations are kept per account in this module (a `POST /moto-api/reset`
does not clear them; accounts are not reused across tests).

AWS documentation: CloudFormation User Guide, "Custom resources" and "Custom resource request objects"
(the request's fields), "Custom resource response objects"
(Status, Reason, PhysicalResourceId, Data; the function PUTs it to the pre-signed ResponseURL), and AWS
Lambda Developer Guide, "Using the Lambda runtime API for custom runtimes" (`invocation/next` and its
`Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms` and `Lambda-Runtime-Invoked-Function-Arn`
headers, `invocation/<id>/response`, `invocation/<id>/error`).
"""

import json
import os
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto.cloudformation.custom_model import CustomModel

import faults

_original_create = CustomModel.create_from_cloudformation_json.__func__
_lock = threading.Lock()
# account -> {"binaries": {key: path}, "timeout": seconds}
_registry: dict = {}
# account -> [invocation summaries]
_invocations: dict = {}


class _HandledCustomModel(CustomModel):
    """A custom resource whose physical id is the one its function answered."""

    # moto's model metaclass files a model under the service its module is in.
    __module__ = "moto.cloudformation.custom_model"

    def __init__(self, region_name, request_id, logical_id, resource_name, physical_id):
        super().__init__(region_name, request_id, logical_id, resource_name)
        self._physical_id = physical_id

    @property
    def physical_resource_id(self) -> str:
        return self._physical_id


def _binary_for(account: str, function_name: str):
    with _lock:
        entry = _registry.get(account)
        if not entry:
            return None, None
        for key, path in entry["binaries"].items():
            if function_name == key or f"-{key}-" in function_name:
                return path, entry["timeout"]
    return None, None


def _strings(value):
    """Property values as CloudFormation sends them to a custom resource: every scalar a string, and
    no list element that was `AWS::NoValue` (moto leaves None there)."""
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strings(v) for v in value if v is not None]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


class _Invocation:
    """One invocation: a loopback Runtime API plus the response URL, for one process of the binary."""

    def __init__(self, event: dict, function_arn: str, timeout: float):
        self.event, self.function_arn, self.timeout = event, function_arn, timeout
        self.request_id = str(uuid.uuid4())
        self.token = uuid.uuid4().hex
        self.answer = None  # the custom resource response the handler PUT
        self.error = None  # an invocation or init error the runtime posted
        self.done = threading.Event()
        self.handed = False
        invocation = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, code: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.endswith("/runtime/invocation/next"):
                    with _lock:
                        first = not invocation.handed
                        invocation.handed = True
                    if not first:
                        # One event per process: the next poll waits until the process is stopped.
                        invocation.done.wait(invocation.timeout + 5)
                        return self._reply(500, b"{}")
                    deadline = int((time.time() + invocation.timeout) * 1000)
                    return self._reply(
                        200,
                        json.dumps(invocation.event).encode(),
                        {
                            "Content-Type": "application/json",
                            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                            "Lambda-Runtime-Deadline-Ms": str(deadline),
                            "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                            "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                        },
                    )
                return self._reply(404)

            def do_POST(self):
                body = self._body()
                if self.path.endswith("/response"):
                    return self._reply(202, b'{"status":"OK"}')
                if self.path.endswith("/error"):
                    invocation.error = body.decode(errors="replace")[:2000]
                    invocation.done.set()
                    return self._reply(202, b'{"status":"OK"}')
                return self._reply(404)

            def do_PUT(self):
                body = self._body()
                if self.path == f"/cfn-response/{invocation.token}":
                    try:
                        invocation.answer = json.loads(body or b"{}")
                    except ValueError:
                        invocation.answer = {"Status": "FAILED", "Reason": "the response was not JSON"}
                    invocation.done.set()
                    return self._reply(200)
                return self._reply(403)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # the process was stopped while its next poll waited: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address[:2]
        self.runtime_api = f"{host}:{port}"
        self.response_url = f"http://{host}:{port}/cfn-response/{self.token}"

    def close(self):
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


def _credentials(account: str, role_arn: str, session: str):
    from moto.sts.models import sts_backends

    role = sts_backends[account]["global"].assume_role(
        region_name="us-east-1",
        role_session_name=session[:64],
        role_arn=role_arn,
        policy=None,
        duration=3600,
        external_id=None,
    )
    return role.access_key_id, role.secret_access_key, role.session_token


def _run(account: str, region: str, fn, binary: str, timeout: float, event: dict) -> tuple[dict | None, str, int | None]:
    """Runs one invocation; (the answer PUT, or None; what went wrong otherwise; the exit status)."""
    invocation = _Invocation(event, fn.function_arn, timeout)
    event["ResponseURL"] = invocation.response_url
    key, secret, token = _credentials(account, fn.role, fn.function_name)
    endpoint = os.environ.get("TAPGUARD_EMULATOR_SELF_URL", "http://127.0.0.1:5000")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **{k: str(v) for k, v in (fn.environment_vars or {}).items()},
        "AWS_LAMBDA_RUNTIME_API": invocation.runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(getattr(fn, "memory_size", 256) or 256),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"$LATEST/{invocation.request_id}",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_SESSION_TOKEN": token,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    process = subprocess.Popen(
        [binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        until = time.time() + timeout
        while time.time() < until and not invocation.done.is_set():
            if process.poll() is not None:
                # A last PUT may still be on its way.
                invocation.done.wait(0.5)
                break
            invocation.done.wait(0.05)
        if invocation.answer is not None:
            return invocation.answer, "", process.poll()
        if invocation.error is not None:
            return None, f"the function failed without answering CloudFormation: {invocation.error}", process.poll()
        if process.poll() is not None:
            return None, f"the function exited with status {process.poll()} without answering CloudFormation", process.poll()
        return None, f"the function did not answer within {int(timeout)} seconds", None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        invocation.close()


def _create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    from moto.awslambda.utils import get_backend as get_lambda_backend
    from moto.cloudformation import cloudformation_backends

    from ext_cloudformation import ResourceRefused

    properties = cloudformation_json["Properties"]
    service_token = properties["ServiceToken"]
    fn = get_lambda_backend(account_id, region_name).get_function(service_token)
    binary, timeout = _binary_for(account_id, fn.function_name)
    if binary is None:
        return _original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    logical_id, stack_id = kwargs["LogicalId"], kwargs["StackId"]
    request_id = str(uuid.uuid4())
    event = {
        "RequestType": "Create",
        "ServiceToken": service_token,
        "StackId": stack_id,
        "RequestId": request_id,
        "LogicalResourceId": logical_id,
        "ResourceType": kwargs["ResourceType"],
        "ResourceProperties": _strings(properties),
    }
    answer, problem, exit_status = _run(account_id, region_name, fn, binary, timeout, event)
    status = (answer or {}).get("Status", "FAILED")
    reason = (answer or {}).get("Reason") or problem
    with _lock:
        _invocations.setdefault(account_id, []).append(
            {
                "function": fn.function_name,
                "region": region_name,
                "request_type": "Create",
                "logical_id": logical_id,
                "status": status,
                "reason": reason if status != "SUCCESS" else None,
                "exit": exit_status,
            }
        )
    if status != "SUCCESS":
        raise ResourceRefused(logical_id, reason or "the function answered FAILED")
    resource = _HandledCustomModel(
        region_name, request_id, logical_id, resource_name, answer.get("PhysicalResourceId") or resource_name
    )
    resource.set_data(answer.get("Data") or {})
    stack = cloudformation_backends[account_id][region_name].get_stack(stack_id)
    stack.add_custom_resource(resource)
    return resource


def _control_binaries(body: dict) -> dict:
    account = body.get("account")
    binaries = body.get("binaries")
    if not account or not isinstance(binaries, dict) or not binaries:
        raise ValueError("'account' and 'binaries' ({function: path}) are required")
    for key, path in binaries.items():
        if not os.access(path, os.X_OK):
            raise ValueError(f"{key}: {path} is not an executable file")
    with _lock:
        _registry[account] = {"binaries": dict(binaries), "timeout": float(body.get("timeout_seconds", 120))}
    return {"binaries": binaries}


def _control_invocations(body: dict) -> dict:
    if not body.get("account"):
        raise ValueError("'account' is required")
    with _lock:
        return {"invocations": list(_invocations.get(body["account"], []))}


def install() -> None:
    CustomModel.create_from_cloudformation_json = classmethod(_create_from_cloudformation_json)
    faults.CONTROLS[("POST", "/tapguard/lambda/binaries")] = _control_binaries
    faults.CONTROLS[("POST", "/tapguard/lambda/invocations")] = _control_invocations
