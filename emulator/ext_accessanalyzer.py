"""IAM Access Analyzer: the analyzers `tapguard plan` reads, and the stack resource that creates one.

moto 5.2 has no Access Analyzer at all. This module answers its REST-JSON API (signing name
`access-analyzer`) for what the project needs, per account and region:

- `CreateAnalyzer` (`PUT /analyzer` `{"analyzerName", "type"}`) answers `{"arn"}`. A name already used
  answers `ConflictException` (409); a second analyzer of an account-level type (`ACCOUNT`,
  `ACCOUNT_UNUSED_ACCESS`) in the same account and region answers `ServiceQuotaExceededException`
  (402), as AWS's quota of one account-level analyzer per type, account and region does.
- `ListAnalyzers` (`GET /analyzer?type=ACCOUNT`) answers `{"analyzers": [AnalyzerSummary]}`, every
  analyzer of the type (all types without it), each `ACTIVE`.
- `GetAnalyzer` (`GET /analyzer/{name}`) and `DeleteAnalyzer` (`DELETE /analyzer/{name}`);
  `ResourceNotFoundException` (404) for an unknown name.
- CloudFormation: `AWS::AccessAnalyzer::Analyzer` is a real resource of moto's stacks (physical id: its
  ARN; deleted with the stack). A creation refused as above fails the resource with AWS's error, and the
  stack rolls back (emulator/ext_cloudformation.py, `ResourceRefused`).

Always on: nothing else in the emulator has analyzers, so no existing test meets these rules.
State lives in this module; `POST /moto-api/reset` clears it.
"""

import json
import re
import threading
import time
from urllib.parse import parse_qs, unquote

from moto.core.common_models import CloudFormationModel
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

import faults

_lock = threading.Lock()
# (account, region) -> {name: analyzer}
_analyzers: dict = {}
ACCOUNT_LEVEL = ("ACCOUNT", "ACCOUNT_UNUSED_ACCESS")
_original_call = DomainDispatcherApplication.__call__


class AnalyzerError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def create_analyzer(account: str, region: str, name: str, analyzer_type: str, tags: dict | None = None) -> dict:
    with _lock:
        mine = _analyzers.setdefault((account, region), {})
        if name in mine:
            raise AnalyzerError(409, "ConflictException", f"Analyzer {name} already exists")
        if analyzer_type in ACCOUNT_LEVEL and any(a["type"] == analyzer_type for a in mine.values()):
            raise AnalyzerError(
                402,
                "ServiceQuotaExceededException",
                f"You have reached the maximum number of analyzers of type {analyzer_type} for this account in this Region.",
            )
        analyzer = {
            "arn": f"arn:aws:access-analyzer:{region}:{account}:analyzer/{name}",
            "name": name,
            "type": analyzer_type,
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "status": "ACTIVE",
            "tags": tags or {},
        }
        mine[name] = analyzer
        return dict(analyzer)


def delete_analyzer(account: str, region: str, name: str) -> None:
    with _lock:
        if _analyzers.get((account, region), {}).pop(name, None) is None:
            raise AnalyzerError(404, "ResourceNotFoundException", f"Analyzer {name} not found")


def _answer(start_response, status: int, payload: dict):
    data = json.dumps(payload).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    if status >= 400:
        headers.append(("x-amzn-ErrorType", payload.get("__type", "")))
    start_response(f"{status} {'OK' if status < 400 else 'Error'}", headers)
    return [data]


def _serve(environ, start_response, account: str, region: str):
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "/")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
    try:
        if path == "/analyzer" and method == "PUT":
            created = create_analyzer(account, region, body["analyzerName"], body.get("type", "ACCOUNT"), body.get("tags"))
            return _answer(start_response, 200, {"arn": created["arn"]})
        if path == "/analyzer" and method == "GET":
            wanted = parse_qs(environ.get("QUERY_STRING", "")).get("type", [None])[0]
            with _lock:
                found = [dict(a) for a in _analyzers.get((account, region), {}).values() if not wanted or a["type"] == wanted]
            return _answer(start_response, 200, {"analyzers": found})
        match = re.match(r"^/analyzer/([^/]+)$", path)
        if match and method == "GET":
            name = unquote(match.group(1))
            with _lock:
                analyzer = _analyzers.get((account, region), {}).get(name)
            if analyzer is None:
                raise AnalyzerError(404, "ResourceNotFoundException", f"Analyzer {name} not found")
            return _answer(start_response, 200, {"analyzer": dict(analyzer)})
        if match and method == "DELETE":
            delete_analyzer(account, region, unquote(match.group(1)))
            return _answer(start_response, 200, {})
    except AnalyzerError as err:
        return _answer(start_response, err.status, {"__type": err.code, "message": err.message})
    except KeyError as err:
        return _answer(start_response, 400, {"__type": "ValidationException", "message": f"missing {err}"})
    return _answer(start_response, 404, {"__type": "UnknownOperationException", "message": f"{method} {path}"})


def _call(self, environ, start_response):
    scope = faults.CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope and scope.group(3) == "access-analyzer":
        from moto.iam.models import get_account_id_from

        return _serve(environ, start_response, get_account_id_from(scope.group(1)), scope.group(2))
    if environ.get("PATH_INFO") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
        with _lock:
            _analyzers.clear()
    return _original_call(self, environ, start_response)


class CfnAnalyzer(CloudFormationModel):
    """`AWS::AccessAnalyzer::Analyzer` in moto's stacks."""

    # moto's model registry files models under the second part of their module name.
    __module__ = "tapguard_emulator.accessanalyzer"

    def __init__(self, analyzer: dict, account: str, region: str):
        self.analyzer, self.account, self.region = analyzer, account, region

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AnalyzerName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::AccessAnalyzer::Analyzer"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name: str):
        return self.analyzer["arn"]

    @property
    def physical_resource_id(self) -> str:
        return self.analyzer["arn"]

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from ext_cloudformation import ResourceRefused

        props = cloudformation_json.get("Properties", {}) or {}
        name = props.get("AnalyzerName") or resource_name
        try:
            analyzer = create_analyzer(account_id, region_name, name, props.get("Type", "ACCOUNT"))
        except AnalyzerError as err:
            raise ResourceRefused(kwargs.get("LogicalId", name), f"{err.message} (Service: AccessAnalyzer, Status Code: {err.status}, Error Code: {err.code})") from err
        return cls(analyzer, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass

    def delete(self, account_id: str, region_name: str) -> None:
        try:
            delete_analyzer(self.account, self.region, self.analyzer["name"])
        except AnalyzerError:
            pass


def install() -> None:
    DomainDispatcherApplication.__call__ = _call
    faults.REST_OPERATIONS.extend(
        [
            ("PUT", re.compile(r"^/analyzer$"), "CreateAnalyzer"),
            ("GET", re.compile(r"^/analyzer$"), "ListAnalyzers"),
            ("GET", re.compile(r"^/analyzer/[^/]+$"), "GetAnalyzer"),
            ("DELETE", re.compile(r"^/analyzer/[^/]+$"), "DeleteAnalyzer"),
        ]
    )
    from moto.cloudformation import parsing

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
