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
- Each subscription carries a subset of its standard's real controls, ENABLED at first:
  DescribeStandardsControls and UpdateStandardsControl work on them by standards control ARN
  (`arn:<p>:securityhub:<region>:<account>:control/<standard id>/<control id>`),
  BatchGetStandardsControlAssociations and BatchUpdateStandardsControlAssociations by security control id.
  Disabling needs a reason, as in AWS.
- TagResource, UntagResource and ListTagsForResource work on the hub's tags (those EnableSecurityHub took).
- A centrally managed account (a configuration policy of a delegated administrator) cannot change its
  own hub or standards: EnableSecurityHub, DisableSecurityHub, UpdateSecurityHubConfiguration,
  BatchEnableStandards and BatchDisableStandards answer AccessDeniedException, and
  GetAdministratorAccount names the administrator.

- Controls not ready (switched on per account): a subscription that reaches READY keeps
  `StandardsControlsUpdatable: NOT_READY_FOR_UPDATES` for a few more GetEnabledStandards reads, and
  meanwhile BatchGetStandardsControlAssociations answers its controls in `UnprocessedAssociations`
  (RESOURCE_NOT_FOUND) and BatchUpdateStandardsControlAssociations in `UnprocessedAssociationUpdates`, as
  AWS does while a subscription's controls are being set up (Security Hub CSPM API Reference,
  StandardsSubscription.StandardsControlsUpdatable: "NOT_READY_FOR_UPDATES - Controls are not ready to
  be updated", and BatchGetStandardsControlAssociations.UnprocessedAssociations).
- GetFindings applies its `Filters` (moto ignores them and answers every finding of the account and
  region): the string filters `Id`, `GeneratorId`, `ProductArn`, `AwsAccountId`, `Title`, `RecordState`
  and `ComplianceStatus` with the comparisons EQUALS, PREFIX, NOT_EQUALS and PREFIX_NOT_EQUALS; filters
  of one field are ORed, different fields ANDed, negated ones ANDed (Security Hub CSPM API Reference,
  AwsSecurityFindingFilters and StringFilter). Other filter fields are refused with InvalidInputException
  rather than silently ignored. Without the hub: InvalidAccessException, as AWS answers.

Test controls (JSON bodies; `region` defaults to us-east-1):
- `POST /tapguard/securityhub/standard-outcome` `{"account", "region", "standard": short id or ARN,
  "status": "READY|INCOMPLETE|FAILED|PENDING|REJECTED", "reason": "NO_AVAILABLE_CONFIGURATION_RECORDER",
  "reads": 2}`: how that standard's subscriptions end. PENDING never leaves PENDING; REJECTED makes
  BatchEnableStandards refuse it with InvalidInputException. Applies to a PENDING subscription already there.
  `"disable": "FAILED"` makes a later BatchDisableStandards of that standard end FAILED (with `reason`)
  instead of gone: in AWS's model FAILED is "the standard could not be disabled" (Security Hub CSPM API
  Reference, StandardsSubscription.StandardsStatus; INCOMPLETE is the enable that did not complete).
- `POST /tapguard/securityhub/controls-not-ready` `{"account", "region", "reads": 3}`: subscriptions that
  reach READY from now on stay NOT_READY_FOR_UPDATES for that many reads (0, the default, turns it off).
- `POST /tapguard/securityhub/central-configuration` `{"account", "region", "administrator": "111122223333",
  "policy": true, "enable": true}`: the account becomes a member of `administrator` (GetAdministratorAccount),
  governed by a configuration policy when `policy` (default true); `enable` (default true) turns the hub
  on as the policy would. `{"administrator": null}` ends it. `"member_status"` (default `Enabled`) is the
  MemberStatus GetAdministratorAccount answers; the administrator governs ControlFindingGenerator only while
  it is `Enabled` (Security Hub CSPM API Reference, Member.MemberStatus: Created and Invited are not yet
  associated; Removed, Resigned, Deleted and AccountSuspended no longer are).
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

# A subset of each standard's controls: control id within the standard -> security control id (the
# consolidated id). Older standards number their controls; newer ones use the security control ids.
_CONSOLIDATED = {c: c for c in ("IAM.1", "IAM.2", "IAM.3", "IAM.4", "EC2.7", "S3.1", "CloudTrail.1", "Config.1")}
CONTROLS = {
    "aws-foundational-security-best-practices/v/1.0.0": _CONSOLIDATED,
    "cis-aws-foundations-benchmark/v/1.2.0": {
        "1.1": "CloudWatch.1", "1.2": "IAM.5", "1.4": "IAM.3", "1.12": "IAM.4", "2.1": "CloudTrail.1", "2.5": "Config.1",
    },
    "cis-aws-foundations-benchmark/v/1.4.0": {"1.4": "IAM.4", "1.10": "IAM.5", "1.14": "IAM.3", "3.1": "CloudTrail.1", "3.5": "Config.1"},
    "cis-aws-foundations-benchmark/v/3.0.0": {"1.4": "IAM.4", "1.14": "IAM.3", "3.1": "CloudTrail.1", "3.3": "Config.1"},
    "pci-dss/v/3.2.1": {"PCI.IAM.1": "IAM.4", "PCI.IAM.2": "IAM.2", "PCI.CloudTrail.1": "CloudTrail.2", "PCI.Config.1": "Config.1"},
}


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
            "member_status": "Enabled",
            "controls_not_ready_reads": 0,
            "policy": False,
        }
    return backend.tapguard


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _refuse_change(self, state: dict):
    """The answer to a change under a configuration policy, or without a hub; None when it may go on."""
    if state["policy"]:
        return _policy_denied(self, state)
    if not self.securityhub_backend.enabled:
        return _not_subscribed(self)
    return None


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
        "controls": {
            control: {"security_control_id": security, "status": "ENABLED", "reason": None, "updated": _now()}
            for control, security in CONTROLS.get(_standard_id(standards), _CONSOLIDATED).items()
        },
    }
    state["subscriptions"][arn] = subscription
    return subscription


def _advance(state: dict, subscription: dict) -> None:
    """One read brings a PENDING or DELETING subscription closer to where it ends."""
    if subscription["status"] == "READY" and subscription.get("not_updatable", 0) > 0:
        subscription["not_updatable"] -= 1
        return
    if subscription["status"] not in ("PENDING", "DELETING"):
        return
    if subscription["status"] == "PENDING" and subscription["final"] == "PENDING":
        return
    if subscription["reads"] > 0:
        subscription["reads"] -= 1
        return
    if subscription["status"] == "DELETING" and subscription.get("disable") == "FAILED":
        subscription["status"] = "FAILED"
    elif subscription["status"] == "DELETING":
        state["subscriptions"].pop(subscription["arn"], None)
    else:
        subscription["status"] = subscription["final"]
        if subscription["status"] == "READY":
            subscription["not_updatable"] = state.get("controls_not_ready_reads", 0)


def _render(subscription: dict) -> dict:
    out = {
        "StandardsSubscriptionArn": subscription["arn"],
        "StandardsArn": subscription["standards_arn"],
        "StandardsInput": {},
        "StandardsStatus": subscription["status"],
        "StandardsControlsUpdatable": "READY_FOR_UPDATES"
        if subscription["status"] == "READY" and not subscription.get("not_updatable")
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
    if refusal := _refuse_change(self, state):
        return refusal
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
    if refusal := _refuse_change(self, state):
        return refusal
    generator = params.get("ControlFindingGenerator")
    if generator is not None:
        if generator not in ("SECURITY_CONTROL", "STANDARD_CONTROL"):
            return _error("InvalidInputException", f"Invalid ControlFindingGenerator {generator}")
        if _governed(state) and generator != state["control_finding_generator"]:
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


def _governed(state: dict) -> bool:
    """An administrator governs the account only while the membership is Enabled (AWS Member.MemberStatus)."""
    return bool(state["administrator"]) and state["member_status"] == "Enabled"


def _get_administrator_account(self):
    state = _state(self.securityhub_backend)
    if state["administrator"]:
        return _ok(
            {
                "Administrator": {
                    "AccountId": state["administrator"],
                    "InvitationId": f"tapguard-{state['administrator']}",
                    "InvitedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "MemberStatus": state["member_status"],
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
    if refusal := _refuse_change(self, state):
        return refusal
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
    if refusal := _refuse_change(self, state):
        return refusal
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
            outcome = state["outcomes"].get(subscription["standards_arn"], {})
            subscription.update(status="DELETING", reads=1, disable=outcome.get("disable"))
            if outcome.get("disable") == "FAILED":
                subscription["reason"] = outcome.get("reason")
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


def _control_arn(backend, standard_id: str, control: str) -> str:
    return (
        f"arn:{get_partition(backend.region_name)}:securityhub:{backend.region_name}:{backend.account_id}:"
        f"control/{standard_id}/{control}"
    )


def _path_arn(self, marker: str) -> str:
    """The ARN in a greedy URI label: everything after `marker` in the path, URL-decoded."""
    from urllib.parse import unquote

    path = unquote(self.path.split("?", 1)[0])
    return path.split(marker, 1)[1] if marker in path else ""


def _describe_standards_controls(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if not backend.enabled:
        return _not_subscribed(self)
    arn = _path_arn(self, "/standards/controls/")
    subscription = state["subscriptions"].get(arn)
    if not subscription or subscription["status"] == "DELETING":
        return _error("ResourceNotFoundException", f"Standards subscription {arn} not found", 404)
    standard_id = _standard_id(subscription["standards_arn"])
    controls = []
    for control, entry in subscription["controls"].items():
        item = {
            "StandardsControlArn": _control_arn(backend, standard_id, control),
            "ControlStatus": entry["status"],
            "ControlStatusUpdatedAt": entry["updated"],
            "ControlId": control,
            "Title": f"{control} ({entry['security_control_id']})",
            "SeverityRating": "MEDIUM",
            "RelatedRequirements": [],
        }
        if entry["reason"]:
            item["DisabledReason"] = entry["reason"]
        controls.append(item)
    params = {k: v[0] for k, v in self.querystring.items()}
    return _ok(_paginate(controls, params, "Controls"))


def _find_control(state: dict, control_arn: str):
    for subscription in state["subscriptions"].values():
        standard_id = _standard_id(subscription["standards_arn"])
        prefix = f":control/{standard_id}/"
        if prefix in control_arn and subscription["status"] != "DELETING":
            return subscription["controls"].get(control_arn.split(prefix, 1)[1])
    return None


def _update_standards_control(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if refusal := _refuse_change(self, state):
        return refusal
    arn = _path_arn(self, "/standards/control/")
    params = _params(self)
    control = _find_control(state, arn)
    if control is None:
        return _error("ResourceNotFoundException", f"Standards control {arn} not found", 404)
    status = params.get("ControlStatus")
    if status not in ("ENABLED", "DISABLED"):
        return _error("InvalidInputException", f"Invalid ControlStatus {status}")
    if status == "DISABLED" and not params.get("DisabledReason"):
        return _error("InvalidInputException", "DisabledReason is required when ControlStatus is DISABLED")
    control.update(status=status, reason=params.get("DisabledReason") if status == "DISABLED" else None, updated=_now())
    return _ok({})


def _association(state: dict, standards_arn: str, security_control_id: str):
    """The controls of a subscribed standard that check `security_control_id`."""
    for subscription in state["subscriptions"].values():
        if subscription["standards_arn"] == standards_arn and subscription.get("not_updatable"):
            return []  # controls NOT_READY_FOR_UPDATES: not found yet, as AWS answers meanwhile
        if subscription["standards_arn"] == standards_arn and subscription["status"] != "DELETING":
            return [
                (control, entry)
                for control, entry in subscription["controls"].items()
                if entry["security_control_id"] == security_control_id
            ]
    return []


def _batch_get_standards_control_associations(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if not backend.enabled:
        return _not_subscribed(self)
    details, unprocessed = [], []
    for wanted in _params(self).get("StandardsControlAssociationIds") or []:
        standards_arn, security_id = wanted.get("StandardsArn", ""), wanted.get("SecurityControlId", "")
        found = _association(state, standards_arn, security_id)
        if not found:
            unprocessed.append(
                {
                    "StandardsControlAssociationId": wanted,
                    "ErrorCode": "RESOURCE_NOT_FOUND",
                    "ErrorReason": f"{security_id} is not a control of an enabled standard {standards_arn}",
                }
            )
            continue
        disabled = [entry for _, entry in found if entry["status"] == "DISABLED"]
        detail = {
            "StandardsArn": standards_arn,
            "SecurityControlId": security_id,
            "SecurityControlArn": f"arn:{get_partition(backend.region_name)}:securityhub:{backend.region_name}:"
            f"{backend.account_id}:security-control/{security_id}",
            "AssociationStatus": "DISABLED" if disabled else "ENABLED",
            "UpdatedAt": max(entry["updated"] for _, entry in found),
            "StandardsControlArns": [
                _control_arn(backend, _standard_id(standards_arn), control) for control, _ in found
            ],
        }
        if disabled and disabled[0]["reason"]:
            detail["UpdatedReason"] = disabled[0]["reason"]
        details.append(detail)
    return _ok({"StandardsControlAssociationDetails": details, "UnprocessedAssociations": unprocessed})


def _batch_update_standards_control_associations(self):
    backend = self.securityhub_backend
    state = _state(backend)
    if refusal := _refuse_change(self, state):
        return refusal
    unprocessed = []
    for update in _params(self).get("StandardsControlAssociationUpdates") or []:
        status = update.get("AssociationStatus")
        found = _association(state, update.get("StandardsArn", ""), update.get("SecurityControlId", ""))
        problem = None
        if status not in ("ENABLED", "DISABLED"):
            problem = ("INVALID_INPUT", f"Invalid AssociationStatus {status}")
        elif status == "DISABLED" and not update.get("UpdatedReason"):
            problem = ("INVALID_INPUT", "UpdatedReason is required to disable a control")
        elif not found:
            problem = ("RESOURCE_NOT_FOUND", "the control is not part of an enabled standard")
        if problem:
            unprocessed.append({"StandardsControlAssociationUpdate": update, "ErrorCode": problem[0], "ErrorReason": problem[1]})
            continue
        for _, entry in found:
            entry.update(status=status, reason=update.get("UpdatedReason") if status == "DISABLED" else None, updated=_now())
    return _ok({"UnprocessedAssociationUpdates": unprocessed})


_TAG_OPERATIONS = {"POST": "TagResource", "DELETE": "UntagResource", "GET": "ListTagsForResource"}
_original_get_action = SecurityHubResponse._get_action


def _get_action(self) -> str:
    # The hub ARN in /tags/{ResourceArn} holds a '/' once the path is decoded, which moto's router does not
    # match to the one-segment label: name the operation from the method instead.
    if self.path.split("?", 1)[0].startswith("/tags/"):
        return _TAG_OPERATIONS.get(self.method, "")
    return _original_get_action(self)


def _tagged_hub(self):
    backend = self.securityhub_backend
    if not backend.enabled:
        return None, _not_subscribed(self)
    arn = _path_arn(self, "/tags/")
    if arn != _hub_arn(backend):
        return None, _error("ResourceNotFoundException", f"No resource was found with ARN {arn}", 404)
    if not isinstance(getattr(backend, "tags", None), dict):
        backend.tags = {}
    return backend, None


def _tag_resource(self):
    backend, error = _tagged_hub(self)
    if error:
        return error
    backend.tags.update(_params(self).get("Tags") or {})
    return _ok({})


def _untag_resource(self):
    backend, error = _tagged_hub(self)
    if error:
        return error
    for key in self.querystring.get("tagKeys", []):
        backend.tags.pop(key, None)
    return _ok({})


def _list_tags_for_resource(self):
    backend, error = _tagged_hub(self)
    if error:
        return error
    return _ok({"Tags": dict(backend.tags)})


# GetFindings string filters the emulator applies: filter name -> the finding's value.
FINDING_FIELDS = {
    "Id": lambda f: f.get("Id"),
    "GeneratorId": lambda f: f.get("GeneratorId"),
    "ProductArn": lambda f: f.get("ProductArn"),
    "AwsAccountId": lambda f: f.get("AwsAccountId"),
    "Title": lambda f: f.get("Title"),
    "RecordState": lambda f: f.get("RecordState"),
    "ComplianceStatus": lambda f: (f.get("Compliance") or {}).get("Status"),
}


def _string_filter_matches(value, filters: list) -> bool:
    positive = [f for f in filters if f.get("Comparison") in ("EQUALS", "PREFIX")]
    negative = [f for f in filters if f.get("Comparison") in ("NOT_EQUALS", "PREFIX_NOT_EQUALS")]
    value = value or ""

    def hit(f) -> bool:
        if f["Comparison"] in ("EQUALS", "NOT_EQUALS"):
            return value == f.get("Value")
        return value.startswith(f.get("Value") or "")

    return (not positive or any(hit(f) for f in positive)) and not any(hit(f) for f in negative)


def _get_findings(self):
    backend = self.securityhub_backend
    if not backend.enabled:
        return _not_subscribed(self)
    filters = _params(self).get("Filters") or {}
    for name, given in filters.items():
        if name not in FINDING_FIELDS:
            return _error("InvalidInputException", f"the emulator does not apply the GetFindings filter {name}")
        for f in given:
            if f.get("Comparison") not in ("EQUALS", "PREFIX", "NOT_EQUALS", "PREFIX_NOT_EQUALS"):
                return _error("InvalidInputException", f"unsupported Comparison {f.get('Comparison')} for {name}")
    findings = [f.as_dict() for f in backend.findings]
    findings = [
        f for f in findings if all(_string_filter_matches(FINDING_FIELDS[n](f), g) for n, g in filters.items())
    ]
    return _ok({"Findings": findings})


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
    outcome = {"status": status, "reason": body.get("reason"), "reads": int(body.get("reads", READS_UNTIL_SETTLED)),
               "disable": body.get("disable")}
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
    state["member_status"] = body.get("member_status") or "Enabled"
    state["policy"] = bool(administrator) and bool(body.get("policy", True))
    if administrator and body.get("enable", True) and not backend.enabled:
        backend.enable_security_hub(enable_default_standards=False, tags={})
    return {"administrator": administrator, "policy": state["policy"], "enabled": backend.enabled}


def _control_controls_not_ready(body: dict) -> dict:
    state = _state(_backend(body))
    state["controls_not_ready_reads"] = int(body.get("reads", 0))
    return {"reads": state["controls_not_ready_reads"]}


def install() -> None:
    for path in (
        "standards",
        "standards/register",
        "standards/deregister",
        "standards/get",
        "standards/control/(?P<StandardsControlArn>.+)",
        "standards/controls/(?P<StandardsSubscriptionArn>.+)",
        "associations",
        "associations/batchGet",
        "tags/(?P<ResourceArn>.+)",
    ):
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
    SecurityHubResponse.get_findings = _get_findings
    SecurityHubResponse._get_action = _get_action
    SecurityHubResponse.tag_resource = _tag_resource
    SecurityHubResponse.untag_resource = _untag_resource
    SecurityHubResponse.list_tags_for_resource = _list_tags_for_resource
    SecurityHubResponse.describe_standards_controls = _describe_standards_controls
    SecurityHubResponse.update_standards_control = _update_standards_control
    SecurityHubResponse.batch_get_standards_control_associations = _batch_get_standards_control_associations
    SecurityHubResponse.batch_update_standards_control_associations = _batch_update_standards_control_associations
    faults.CONTROLS[("POST", "/tapguard/securityhub/standard-outcome")] = _control_standard_outcome
    faults.CONTROLS[("POST", "/tapguard/securityhub/central-configuration")] = _control_central_configuration
    faults.CONTROLS[("POST", "/tapguard/securityhub/controls-not-ready")] = _control_controls_not_ready
