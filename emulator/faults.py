"""Fault injection and a call log, in front of moto, per account, service and operation.

Faults answer in each service's own wire protocol, so the SDK sees the real error code:
- EC2: `<Response><Errors><Error><Code>`;
- the query protocol (IAM, STS, SNS, CloudFormation): `<ErrorResponse><Error><Code>`;
- the JSON protocols (Config, Security Hub, KMS, Secrets Manager, ...): `{"__type": ...}` with `x-amzn-ErrorType`.

Control endpoints (JSON bodies):
- `POST /tapguard/faults` `{"service": "ec2", "operation": "EnableEbsEncryptionByDefault",
   "code": "ThrottlingException", "message": "...", "status": 400, "count": 2, "delay_ms": 0, "account": "123456789012"}`
   `code` absent means no error (with `delay_ms`, a slow answer). `count` absent means every matching call;
   `body_excludes` (optional): only calls whose request body does not contain that text;
   `account` absent means every account.
- `GET /tapguard/faults`: the rules with what is left of their counts and how often each fired.
- `DELETE /tapguard/faults`: remove every rule (`?account=A`: only that account's rules).
- `GET /tapguard/calls?account=A&service=S`: the calls seen, in order: account, region, service, operation, status.
- `DELETE /tapguard/calls`: forget them.
`POST /moto-api/reset` clears both as well as moto's state.
"""

import io
import json
import re
import threading
import time
import uuid
from urllib.parse import parse_qs

EC2_PROTOCOL = {"ec2"}
QUERY_PROTOCOL = {"iam", "sts", "sns", "cloudformation", "ses", "autoscaling", "elasticloadbalancing", "rds"}
CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")

# REST-JSON operations the tests may target, by method and path (Security Hub).
REST_OPERATIONS = [
    ("GET", re.compile(r"^/accounts$"), "DescribeHub"),
    ("POST", re.compile(r"^/accounts$"), "EnableSecurityHub"),
    ("DELETE", re.compile(r"^/accounts$"), "DisableSecurityHub"),
    ("PATCH", re.compile(r"^/accounts$"), "UpdateSecurityHubConfiguration"),
    ("GET", re.compile(r"^/standards$"), "DescribeStandards"),
    ("POST", re.compile(r"^/standards/register$"), "BatchEnableStandards"),
    ("POST", re.compile(r"^/standards/deregister$"), "BatchDisableStandards"),
    ("POST", re.compile(r"^/standards/get$"), "GetEnabledStandards"),
    ("GET", re.compile(r"^/administrator$"), "GetAdministratorAccount"),
    ("GET", re.compile(r"^/standards/controls/.+$"), "DescribeStandardsControls"),
    ("PATCH", re.compile(r"^/standards/control/.+$"), "UpdateStandardsControl"),
    ("POST", re.compile(r"^/associations/batchGet$"), "BatchGetStandardsControlAssociations"),
    ("PATCH", re.compile(r"^/associations$"), "BatchUpdateStandardsControlAssociations"),
    ("GET", re.compile(r"^/tags/.+$"), "ListTagsForResource"),
    ("POST", re.compile(r"^/tags/.+$"), "TagResource"),
    ("DELETE", re.compile(r"^/tags/.+$"), "UntagResource"),
    # The verify pass's drift findings (moto's own).
    ("POST", re.compile(r"^/findings$"), "GetFindings"),
    ("POST", re.compile(r"^/findings/import$"), "BatchImportFindings"),
]


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        self.calls: list[dict] = []

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.calls.clear()

    def add(self, rule: dict) -> dict:
        for field in ("service", "operation"):
            if not rule.get(field):
                raise ValueError(f"a fault needs '{field}'")
        rule = dict(rule)
        rule.setdefault("status", 500 if rule.get("code") in ("InternalFailure", "InternalError", "ServiceUnavailable") else 400)
        rule["fired"] = 0
        with self.lock:
            self.rules.append(rule)
        return rule

    def take(self, account: str, service: str, operation: str, body: bytes = b"") -> dict | None:
        with self.lock:
            for rule in self.rules:
                if rule["service"] != service or rule["operation"] != operation:
                    continue
                # `body_excludes`: the rule is for calls whose request body does not hold this text (say,
                # the ledger's own SSM writes but not the runtime's answer book under `/answers/`).
                if rule.get("body_excludes") and rule["body_excludes"].encode() in body:
                    continue
                if rule.get("account") and rule["account"] != account:
                    continue
                count = rule.get("count")
                if count is not None and rule["fired"] >= count:
                    continue
                rule["fired"] += 1
                return dict(rule)
        return None

    def record(self, call: dict) -> None:
        with self.lock:
            self.calls.append(call)

    def list_calls(self, account: str | None, service: str | None) -> list[dict]:
        with self.lock:
            return [
                c
                for c in self.calls
                if (not account or c["account"] == account) and (not service or c["service"] == service)
            ]


def _operation(environ: dict, body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if body and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        form = parse_qs(body.decode("utf-8", "replace"))
        if "Action" in form:
            return form["Action"][0]
    method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
    for m, pattern, name in REST_OPERATIONS:
        if m == method and pattern.match(path):
            return name
    return f"{method} {path}"


def _error_response(service: str, rule: dict, start_response):
    code = rule["code"]
    message = rule.get("message") or f"injected by the tapguard emulator: {code}"
    request_id = str(uuid.uuid4())
    status = f"{rule['status']} Injected"
    if service in EC2_PROTOCOL:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        headers = [("Content-Type", "text/xml")]
    elif service in QUERY_PROTOCOL:
        body = (
            f'<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>'
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers = [("Content-Type", "text/xml")]
    else:
        body = json.dumps({"__type": code, "message": message, "Message": message})
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    headers.append(("x-amzn-RequestId", request_id))
    data = body.encode()
    headers.append(("Content-Length", str(len(data))))
    start_response(status, headers)
    return [data]


def _json_response(start_response, payload, status="200 OK"):
    data = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class FaultMiddleware:
    """WSGI middleware: control endpoints, the call log and fault injection, then moto."""

    def __init__(self, app, faults: Faults, account_of) -> None:
        self.app = app
        self.faults = faults
        self.account_of = account_of

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)

        if path.startswith("/tapguard/"):
            return self.control(method, path, environ, body, start_response)
        if path == "/moto-api/reset" and method == "POST":
            self.faults.clear()
        if path.startswith("/moto-api"):
            return self.app(environ, start_response)

        scope = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if not scope:
            return self.app(environ, start_response)
        access_key, region, service = scope.groups()
        account = self.account_of(access_key)
        operation = _operation(environ, body)
        call = {"account": account, "region": region, "service": service, "operation": operation}

        rule = None if environ.get("HTTP_X_TAPGUARD_HARNESS") else self.faults.take(account, service, operation, body)
        if rule and rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000)
        if rule and rule.get("code"):
            self.faults.record({**call, "status": rule["status"], "injected": rule["code"]})
            return _error_response(service, rule, start_response)

        seen = {}

        def recording_start_response(status, headers, exc_info=None):
            seen["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        result = self.app(environ, recording_start_response)
        # The test harness inspects state with marked calls; they are not the handlers' calls.
        if not environ.get("HTTP_X_TAPGUARD_HARNESS"):
            self.faults.record({**call, "status": seen.get("status", 0)})
        return result

    def control(self, method, path, environ, body, start_response):
        try:
            if path == "/tapguard/faults":
                if method == "POST":
                    return _json_response(start_response, self.faults.add(json.loads(body or b"{}")))
                if method == "DELETE":
                    only = parse_qs(environ.get("QUERY_STRING", "")).get("account", [None])[0]
                    with self.faults.lock:
                        if only:
                            self.faults.rules[:] = [r for r in self.faults.rules if r.get("account") != only]
                        else:
                            self.faults.rules.clear()
                    return _json_response(start_response, {"cleared": True})
                with self.faults.lock:
                    return _json_response(start_response, list(self.faults.rules))
            if path == "/tapguard/calls":
                if method == "DELETE":
                    with self.faults.lock:
                        self.faults.calls.clear()
                    return _json_response(start_response, {"cleared": True})
                query = parse_qs(environ.get("QUERY_STRING", ""))
                account = query.get("account", [None])[0]
                service = query.get("service", [None])[0]
                return _json_response(start_response, self.faults.list_calls(account, service))
            handler = CONTROLS.get((method, path))
            if handler:
                return _json_response(start_response, handler(json.loads(body or b"{}")))
            return _json_response(start_response, {"error": f"no control {method} {path}"}, "404 Not Found")
        except (ValueError, KeyError) as err:
            return _json_response(start_response, {"error": str(err)}, "400 Bad Request")


# Other extension modules register their test controls here: (method, path) -> callable(json) -> json.
CONTROLS: dict = {}
