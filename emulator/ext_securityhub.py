"""Security Hub operations moto 5.2 lacks or gets wrong: standards and their subscriptions, the hub's
configuration, and central management by a delegated administrator.

State lives on moto's own per-account, per-region Security Hub backend object, so `POST /moto-api/reset`
clears it with everything else.

Behaviour follows AWS:
- EnableSecurityHub on an enabled hub answers ResourceConflictException; `EnableDefaultStandards`
  (true unless given false, as in AWS) subscribes FSBP v1.0.0 and CIS v1.2.0; `ControlFindingGenerator`
  is kept. DescribeHub reports it and AutoEnableControls; UpdateSecurityHubConfiguration changes both.
- DescribeStandards answers the real catalog with the real ARNs: CIS v1.2.0 is a global ruleset
  (`arn:<partition>:securityhub:::ruleset/...`), the others regional (`arn:<p>:securityhub:<region>::standards/...`).
- BatchEnableStandards needs the hub; a subscription
  (`arn:<p>:securityhub:<region>:<account>:subscription/<id>`) starts PENDING and reaches its outcome
  (READY unless a test chose otherwise) after a few GetEnabledStandards reads. BatchDisableStandards
  makes it DELETING; it is gone after the next read. DisableSecurityHub drops every subscription.
- A centrally managed account (a configuration policy of a delegated administrator) cannot change its
  own hub or standards: EnableSecurityHub, DisableSecurityHub, UpdateSecurityHubConfiguration,
  BatchEnableStandards and BatchDisableStandards answer AccessDeniedException, and
  GetAdministratorAccount names the administrator.

Test controls (JSON bodies; `region` defaults to us-east-1):
- `POST /tapguard/securityhub/standard-outcome` `{"account", "region", "standard": short id or ARN,
  "status": "READY|INCOMPLETE|FAILED|PENDING|REJECTED", "reason": "NO_AVAILABLE_CONFIGURATION_RECORDER",
  "reads": 2}`: how that standard's subscriptions end. PENDING never leaves PENDING; REJECTED makes
  BatchEnableStandards refuse it with InvalidInputException. Applies to a PENDING subscription already there.
- `POST /tapguard/securityhub/central-configuration` `{"account", "region", "administrator": "111122223333",
  "policy": true, "enable": true}`: the account becomes a member of `administrator` (GetAdministratorAccount),
  governed by a configuration policy when `policy` (default true); `enable` (default true) turns the hub
  on as the policy would. `{"administrator": null}` ends it.
"""

import datetime
import json

from moto.securityhub import urls as securityhub_urls
from moto.securityhub.models import securityhub_backends
from moto.securityhub.responses import SecurityHubResponse
from moto.utilities.utils import get_partition

import faults

DEFAULT_REGION = "us-east-1"
READS_UNTIL_SETTLED = 2
AWS_MANAGED = {"Company": "AWS", "Product": "Security Hub"}

# (resource part of the ARN, name, description, enabled by default)
CATALOG = [
    (
        "standards/aws-foundational-security-best-practices/v/1.0.0",
        "AWS Foundational Security Best Practices v1.0.0",
        "The AWS Foundational Security Best Practices standard is a set of automated security checks that "
        "detect when AWS accounts and deployed resources do not align to security best practices.",
        True,
    ),
    (
        "ruleset/cis-aws-foundations-benchmark/v/1.2.0",
        "CIS AWS Foundations Benchmark v1.2.0",
        "The Center for Internet Security (CIS) AWS Foundations Benchmark v1.2.0 is a set of security "
        "configuration best practices for AWS.",
        True,
    ),
    (
        "standards/cis-aws-foundations-benchmark/v/1.4.0",
        "CIS AWS Foundations Benchmark v1.4.0",
        "The Center for Internet Security (CIS) AWS Foundations Benchmark v1.4.0 is a set of security "
        "configuration best practices for AWS.",
        False,
    ),
    (
        "standards/cis-aws-foundations-benchmark/v/3.0.0",
        "CIS AWS Foundations Benchmark v3.0.0",
        "The Center for Internet Security (CIS) AWS Foundations Benchmark v3.0.0 is a set of security "
        "configuration best practices for AWS.",
        False,
    ),
    (
        "standards/pci-dss/v/3.2.1",
        "PCI DSS v3.2.1",
        "The Payment Card Industry Data Security Standard (PCI DSS) v3.2.1 is an information security "
        "standard for entities that store, process, and/or transmit cardholder data.",
        False,
    ),
    (
        "standards/pci-dss/v/4.0.1",
        "PCI DSS v4.0.1",
        "The Payment Card Industry Data Security Standard (PCI DSS) v4.0.1 is an information security "
        "standard for entities that store, process, and/or transmit cardholder data.",
        False,
    ),
    (
        "standards/nist-800-53/v/5.0.0",
        "NIST Special Publication 800-53 Revision 5",
        "NIST SP 800-53 Rev. 5 is a cybersecurity and compliance framework developed by the National "
        "Institute of Standards and Technology (NIST).",
        False,
    ),
    (
        "standards/nist-800-171/v/2.0.0",
        "NIST SP 800-171 Revision 2",
        "NIST SP 800-171 Rev. 2 is a cybersecurity and compliance framework for protecting controlled "
        "unclassified information in nonfederal systems.",
        False,
    ),
    (
        "standards/aws-resource-tagging-standard/v/1.0.0",
        "AWS Resource Tagging Standard v1.0.0",
        "The AWS Resource Tagging Standard helps identify AWS resources that lack the tags you require.",
        False,
    ),
]
DEFAULT_STANDARDS = [resource for resource, _, _, by_default in CATALOG if by_default]


def standards_arn(region: str, resource: str) -> str:
    partition = get_partition(region)
    if resource.startswith("ruleset/"):
        return f"arn:{partition}:securityhub:::{resource}"
    return f"arn:{partition}:securityhub:{region}::{resource}"


def _standard_id(arn: str) -> str:
    """`cis-aws-foundations-benchmark/v/1.2.0` from either ARN form."""
    resource = arn.split(":", 5)[-1]
    return resource.split("/", 1)[1] if "/" in resource else resource


def _catalog(region: str) -> dict:
    return {standards_arn(region, resource): entry for entry in CATALOG for resource in [entry[0]]}


def _state(backend) -> dict:
    if not hasattr(backend, "tapguard"):
        backend.tapguard = {
            "control_finding_generator": "SECURITY_CONTROL",
            "auto_enable_controls": True,
            "subscriptions": {},  # subscription ARN -> subscription
            "outcomes": {},  # standards ARN -> {"status", "reason", "reads"}
            "administrator": None,
            "policy": False,
        }
    return backend.tapguard


def _error(code: str, message: str, status: int = 400):
    body = json.dumps({"__type": code, "message": message, "Message": message})
    return status, {"status": status, "Content-Type": "application/json", "x-amzn-ErrorType": code}, body


def _ok(payload: dict):
    return 200, {"status": 200, "Content-Type": "application/json"}, json.dumps(payload)


def _not_subscribed(self):
    return _error(
        "InvalidAccessException",
        f"Account {self.current_account} is not subscribed to AWS Security Hub",
        401,
    )


def _policy_denied(self, state: dict):
    return _error(
        "AccessDeniedException",
        f"Account {self.current_account} is managed by a configuration policy of the delegated administrator "
        f"{state['administrator']}: change the policy in that account instead",
        403,
    )


def _params(self) -> dict:
    body = self.body
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return json.loads(body) if body else {}


def _hub_arn(backend) -> str:
    return f"arn:{get_partition(backend.region_name)}:securityhub:{backend.region_name}:{backend.account_id}:hub/default"


def _subscribe(backend, standards: str) -> dict:
    state = _state(backend)
    partition = get_partition(backend.region_name)
    arn = (
        f"arn:{partition}:securityhub:{backend.region_name}:{backend.account_id}:"
        f"subscription/{_standard_id(standards)}"
    )
    existing = state["subscriptions"].get(arn)
    if existing and existing["status"] != "DELETING":
        return existing
    outcome = state["outcomes"].get(standards, {})
    subscription = {
        "arn": arn,
        "standards_arn": standards,
        "status": "PENDING",
        "reads": outcome.get("reads", READS_UNTIL_SETTLED),
        "final": outcome.get("status", "READY"),
        "reason": outcome.get("reason"),
    }
    state["subscriptions"][arn] = subscription
    return subscription


def _advance(state: dict, subscription: dict) -> None:
    """One read brings a PENDING or DELETING subscription closer to where it ends."""
    if subscription["status"] not in ("PENDING", "DELETING"):
        return
    if subscription["status"] == "PENDING" and subscription["final"] == "PENDING":
        return
    if subscription["reads"] > 0:
        subscription["reads"] -= 1
        return
    if subscription["status"] == "DELETING":
        state["subscriptions"].pop(subscription["arn"], None)
    else:
        subscription["status"] = subscription["final"]


def _render(subscription: dict) -> dict:
    out = {
        "StandardsSubscriptionArn": subscription["arn"],
        "StandardsArn": subscription["standards_arn"],
        "StandardsInput": {},
        "StandardsStatus": subscription["status"],
        "StandardsControlsUpdatable": "READY_FOR_UPDATES"
        if subscription["status"] == "READY"
        else "NOT_READY_FOR_UPDATES",
    }
    if subscription["status"] in ("INCOMPLETE", "FAILED") and subscription.get("reason"):
        out["StandardsStatusReason"] = {"StatusReasonCode": subscription["reason"]}
    return out


def _paginate(items: list, params: dict, key: str) -> dict:
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or 100)
    page = items[start : start + size]
    out = {key: page}
    if start + size < len(items):
        out["NextToken"] = str(start + size)
    return out


def _enable_security_hub(self):
    backend = self.securityhub_backend
    state = _state(backend)
    params = _params(self)
    if state["policy"]:
        return _policy_denied(self, state)
    if backend.enabled:
        return _error("ResourceConflictException", "Account is already subscribed to Security Hub", 409)
    generator = params.get("ControlFindingGenerator") or "SECURITY_CONTROL"
    if generator not in ("SECURITY_CONTROL", "STANDARD_CONTROL"):
        return _error("InvalidInputException", f"Invalid ControlFindingGenerator {generator}")
    backend.enable_security_hub(enable_default_standards=False, tags=params.get("Tags") or {})
    state["control_finding_generator"] = generator
    state["auto_enable_controls"] = True
    if params.get("EnableDefaultStandards", True):
        for resource in DEFAULT_STANDARDS:
            _subscribe(backend, standards_arn(backend.region_name, resource))
    return _ok({})


def _disable_security_hub(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if state["policy"]:
        return _policy_denied(self, state)
    if not backend.enabled:
        return _not_subscribed(self)
    backend.disable_security_hub()
    state["subscriptions"].clear()
    return _ok({})


def _describe_hub(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if not backend.enabled:
        return _not_subscribed(self)
    hub_arn = self.querystring.get("HubArn", [None])[0]
    if hub_arn and hub_arn != _hub_arn(backend):
        return _error("ResourceNotFoundException", f"No hub was found with ARN {hub_arn}", 404)
    return _ok(
        {
            "HubArn": _hub_arn(backend),
            "SubscribedAt": backend.enabled_at,
            "AutoEnableControls": state["auto_enable_controls"],
            "ControlFindingGenerator": state["control_finding_generator"],
        }
    )


def _update_security_hub_configuration(self):
    backend = self.securityhub_backend
    state = _state(backend)
    params = _params(self)
    if state["policy"]:
        return _policy_denied(self, state)
    if not backend.enabled:
        return _not_subscribed(self)
    generator = params.get("ControlFindingGenerator")
    if generator is not None:
        if generator not in ("SECURITY_CONTROL", "STANDARD_CONTROL"):
            return _error("InvalidInputException", f"Invalid ControlFindingGenerator {generator}")
        if state["administrator"] and generator != state["control_finding_generator"]:
            return _error(
                "AccessDeniedException",
                "ControlFindingGenerator can only be updated in the administrator account "
                f"{state['administrator']}",
                403,
            )
        state["control_finding_generator"] = generator
    if params.get("AutoEnableControls") is not None:
        state["auto_enable_controls"] = bool(params["AutoEnableControls"])
    return _ok({})


def _get_administrator_account(self):
    state = _state(self.securityhub_backend)
    if state["administrator"]:
        return _ok(
            {
                "Administrator": {
                    "AccountId": state["administrator"],
                    "InvitationId": f"tapguard-{state['administrator']}",
                    "InvitedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "MemberStatus": "Enabled",
                }
            }
        )
    return _ok(self.securityhub_backend.get_administrator_account())


def _describe_standards(self):
    region = self.securityhub_backend.region_name
    standards = [
        {
            "StandardsArn": standards_arn(region, resource),
            "Name": name,
            "Description": description,
            "EnabledByDefault": by_default,
            "StandardsManagedBy": AWS_MANAGED,
        }
        for resource, name, description, by_default in CATALOG
    ]
    params = {k: v[0] for k, v in self.querystring.items()}
    return _ok(_paginate(standards, params, "Standards"))


def _batch_enable_standards(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if state["policy"]:
        return _policy_denied(self, state)
    if not backend.enabled:
        return _not_subscribed(self)
    requests = _params(self).get("StandardsSubscriptionRequests") or []
    if not requests:
        return _error("InvalidInputException", "StandardsSubscriptionRequests must not be empty")
    catalog = _catalog(backend.region_name)
    # The whole batch is checked before anything changes: AWS enables all of it or none.
    for request in requests:
        arn = request.get("StandardsArn", "")
        if arn not in catalog:
            return _error("InvalidInputException", f"Invalid StandardsArn {arn}: no such standard in {backend.region_name}")
        if state["outcomes"].get(arn, {}).get("status") == "REJECTED":
            return _error(
                "InvalidInputException",
                f"The standard {arn} cannot be enabled in account {backend.account_id} in {backend.region_name}",
            )
    subscriptions = [_subscribe(backend, request["StandardsArn"]) for request in requests]
    return _ok({"StandardsSubscriptions": [_render(s) for s in subscriptions]})


def _batch_disable_standards(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if state["policy"]:
        return _policy_denied(self, state)
    if not backend.enabled:
        return _not_subscribed(self)
    arns = _params(self).get("StandardsSubscriptionArns") or []
    if not arns:
        return _error("InvalidInputException", "StandardsSubscriptionArns must not be empty")
    for arn in arns:
        if arn not in state["subscriptions"]:
            return _error("InvalidInputException", f"Invalid StandardsSubscriptionArn {arn}: not subscribed")
    disabled = []
    for arn in arns:
        subscription = state["subscriptions"][arn]
        if subscription["status"] != "DELETING":
            subscription.update(status="DELETING", reads=1)
        disabled.append(_render(subscription))
    return _ok({"StandardsSubscriptions": disabled})


def _get_enabled_standards(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if not backend.enabled:
        return _not_subscribed(self)
    params = _params(self)
    wanted = params.get("StandardsSubscriptionArns")
    for subscription in list(state["subscriptions"].values()):
        if not wanted or subscription["arn"] in wanted:
            _advance(state, subscription)
    current = [
        _render(s) for s in state["subscriptions"].values() if not wanted or s["arn"] in wanted
    ]
    return _ok(_paginate(current, params, "StandardsSubscriptions"))


def _backend(body: dict):
    account = body.get("account")
    if not account:
        raise ValueError("'account' is required")
    return securityhub_backends[account][body.get("region") or DEFAULT_REGION]


def _resolve_standard(region: str, given: str) -> str:
    if given.startswith("arn:"):
        return given
    for resource, _, _, _ in CATALOG:
        if resource.split("/", 1)[1] == given:
            return standards_arn(region, resource)
    raise ValueError(f"unknown standard {given}")


def _control_standard_outcome(body: dict) -> dict:
    backend = _backend(body)
    status = body.get("status", "READY")
    if status not in ("READY", "INCOMPLETE", "FAILED", "PENDING", "REJECTED"):
        raise ValueError(f"status must be READY, INCOMPLETE, FAILED, PENDING or REJECTED, not {status}")
    arn = _resolve_standard(backend.region_name, body.get("standard") or "")
    outcome = {"status": status, "reason": body.get("reason"), "reads": int(body.get("reads", READS_UNTIL_SETTLED))}
    state = _state(backend)
    state["outcomes"][arn] = outcome
    for subscription in state["subscriptions"].values():
        if subscription["standards_arn"] == arn and subscription["status"] == "PENDING" and status != "REJECTED":
            subscription.update(final=status, reason=outcome["reason"], reads=outcome["reads"])
    return {"standard": arn, **outcome}


def _control_central_configuration(body: dict) -> dict:
    backend = _backend(body)
    state = _state(backend)
    administrator = body.get("administrator")
    state["administrator"] = administrator
    state["policy"] = bool(administrator) and bool(body.get("policy", True))
    if administrator and body.get("enable", True) and not backend.enabled:
        backend.enable_security_hub(enable_default_standards=False, tags={})
    return {"administrator": administrator, "policy": state["policy"], "enabled": backend.enabled}


def install() -> None:
    for path in ("standards", "standards/register", "standards/deregister", "standards/get"):
        securityhub_urls.url_paths["{0}/" + path + "$"] = SecurityHubResponse.dispatch
    SecurityHubResponse.enable_security_hub = _enable_security_hub
    SecurityHubResponse.disable_security_hub = _disable_security_hub
    SecurityHubResponse.describe_hub = _describe_hub
    SecurityHubResponse.update_security_hub_configuration = _update_security_hub_configuration
    SecurityHubResponse.get_administrator_account = _get_administrator_account
    SecurityHubResponse.describe_standards = _describe_standards
    SecurityHubResponse.batch_enable_standards = _batch_enable_standards
    SecurityHubResponse.batch_disable_standards = _batch_disable_standards
    SecurityHubResponse.get_enabled_standards = _get_enabled_standards
    faults.CONTROLS[("POST", "/tapguard/securityhub/standard-outcome")] = _control_standard_outcome
    faults.CONTROLS[("POST", "/tapguard/securityhub/central-configuration")] = _control_central_configuration
