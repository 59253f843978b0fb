"""CloudFormation as the deployer sees it: per-resource events and scripted resource failures.

moto 5.2 records only stack-level events and never fails a resource. This module makes a change set's
execution and a stack's deletion emit the events CloudFormation sends for each resource, and lets a
test script a resource's fate:

- `POST /tapguard/cloudformation/fate` `{"account": "...", "region": "...", "stack": "name",
   "logical_id": "Bucket", "operation": "CREATE" | "UPDATE", "reason": "...",
   "rollback_fails": false, "count": 1}`: the next execution of that kind (CREATE: the stack's
   creation; UPDATE: an update that touches the resource) fails that resource with that reason.
   CREATE ends in ROLLBACK_COMPLETE (created resources deleted in reverse order); UPDATE in
   UPDATE_ROLLBACK_COMPLETE, or UPDATE_ROLLBACK_FAILED with `rollback_fails`. `stack`, `region` and
   `count` are optional (any stack, every time).
- `POST /tapguard/cloudformation/pace` `{"account": "...", "region": "...", "event_interval_ms": 200}`:
   executions in that account and region play out over time, one event per interval, with the stack
   IN_PROGRESS meanwhile (as CloudFormation does), so a watcher sees events arrive while it polls.
   0 (the default) plays everything at once.

- `POST /tapguard/cloudformation/stack-instance-fate` `{"account": admin, "region": home region,
   "stack_set": "name", "instance_account": "...", "instance_region": "...", "reason": "..."}`:
   that StackSet instance fails when CreateStackInstances reaches it: it is listed OUTDATED with
   DetailedStatus FAILED and the reason, and the operation ends FAILED (the operation preferences'
   failure tolerance is not modelled: any failed instance fails the operation).
- A service-managed StackSet's instance is a stack named `StackSet-<name>-<uuid>` in the member's
   account and region, listed by DescribeStacks there, with the StackSet's parameters; it resolves
   `Fn::ImportValue` against that region's exports and exports its Outputs, as AWS's instance stacks
   do (moto keeps a hidden stack named as the StackSet, with neither). So a StackSet of
   template.yml's functions (its `ExportPrefix` set) serves a StackSet of TapStack.yml.
- Stack instances created through OUs are listed with their `OrganizationalUnitId`, as AWS lists them,
   and `DeleteStackInstances` of a service-managed StackSet takes OUs (`DeploymentTargets`) as AWS does:
   the instances deployed through them in the regions given are deleted (moto reads only `Accounts`).

- `POST /tapguard/cloudformation/sent` `{"account": "...", "region": "..."}`: what clients sent there,
   as sent: `{"change_sets": [...], "executions": [...]}`, each CreateChangeSet as `{"stack",
   "change_set", "type", "parameters": [{"ParameterKey", "ParameterValue" | "UsePreviousValue"}],
   "capabilities", "template_url", "template_bytes", "role_arn", "notification_arns",
   "on_stack_failure"}` and each ExecuteChangeSet as `{"change_set", "stack", "disable_rollback"}`. moto itself keeps a parameter's previous
   value when an update omits it (AWS uses the template default), so a test of carry-over must look
   at what was sent, not at the stack afterwards.

- ExecuteChangeSet answers at once, as CloudFormation does ("After the call successfully completes,
   CloudFormation starts updating the stack. Use the DescribeStacks action to view the status", API
   Reference): the stack is `CREATE_IN_PROGRESS` / `UPDATE_IN_PROGRESS` with its "User Initiated" event,
   and the execution (moto's resources, custom resources answered by their functions, the events)
   goes on in a thread of its own until the stack settles. moto did it all inside the call, so a
   deployer's ExecuteChangeSet waited for every custom resource's handler of the stack in turn. An
   error the emulator does not expect rolls the stack back with the error as the reason.
- A change set whose execution status is not `AVAILABLE` (being executed, or executed) is refused
   with `InvalidChangeSetStatus`, as CloudFormation refuses it ("The specified change set can't be
   used to update the stack", API Reference), instead of being executed a second time.
- ListStackResources, DescribeStackResources and DescribeStackResource read the resources created so
   far and create none. moto's resource map creates a resource that is not created yet when it is read,
   so a ListStackResources during an execution (the deployer surveying the home region's stack from
   another region's target) created every remaining resource a second time, beside the execution, and
   ran each custom resource's handler twice.
- A creation's change set and events hold only the resources whose `Condition` holds, as in
   CloudFormation (moto lists every resource of the template).
- A resource that another extension models for real (`AWS::GuardDuty::Detector`, `AWS::AccessAnalyzer::Analyzer`)
   and whose service refuses it (`ResourceRefused`: a second detector, a second account analyzer) fails
   with the service's error as its reason, and the stack rolls back as for a scripted fate.

- A delegated administrator (a member account registered with `RegisterDelegatedAdministrator` for
   `member.org.stacksets.cloudformation.amazonaws.com`) acts on service-managed StackSets with
   `CallAs DELEGATED_ADMIN`, and they deploy to the organization's OUs. A member account that is not
   registered is refused with AWS's ValidationError "Account used is not a delegated administrator"; one
   that calls as `SELF` with a ValidationError in the emulator's wording. AWS documentation: the
   CloudFormation API Reference's `CallAs` ("If you are signed in to a delegated administrator account,
   specify DELEGATED_ADMIN. Your AWS account must be registered as a delegated administrator in the
   management account"). Not modelled: AWS keeps a delegated administrator's StackSets in the management
   account; the emulator keeps them in the caller's.

Also as CloudFormation does: a change set for a stack whose operation is in progress, or for a stack in
ROLLBACK_COMPLETE, is refused with a ValidationError naming the state.

- A stack created or updated by a change set exports its Outputs' `Export` names once the change set
   has run (moto registers exports only in CreateStack), and a change set's stack resolves
   `Fn::ImportValue` against the region's exports (moto gave it none), so a stack that imports
   another's exports can be deployed with change sets, as `tapguard deploy --functions-template`
   does. Not modelled: AWS fails an execution whose export name another stack has; the emulator
   leaves that name to the other stack.
- An update change set whose template comes from S3 (`TemplateURL`) with the same template and
   parameter values as the stack is refused "No updates are to be performed.", as one with a
   `TemplateBody` is (moto compared only the latter).

State lives on moto's per-account, per-region CloudFormation backend, so `POST /moto-api/reset` clears it.
"""

import threading
import time

from moto.cloudformation.exceptions import CloudFormationError, ValidationError
from moto.cloudformation.models import (
    CloudFormationBackend,
    Event,
    Stack,
    StackInstance,
    StackInstances,
    cloudformation_backends,
)
from moto.cloudformation.responses import CloudFormationResponse

import faults

_original_execute = CloudFormationBackend.execute_change_set
_original_create_change_set = CloudFormationBackend.create_change_set
_original_delete_stack = CloudFormationBackend.delete_stack
_original_create_stack_instances = CloudFormationBackend.create_stack_instances
_original_instance_to_dict = StackInstance.to_dict
_original_instance_init = StackInstance.__init__
_original_instance_delete = StackInstance.delete
_original_create_change_set_response = CloudFormationResponse.create_change_set
_original_execute_change_set_response = CloudFormationResponse.execute_change_set
_original_delete_stack_instances_response = CloudFormationResponse.delete_stack_instances

_lock = threading.Lock()


class InvalidChangeSetStatus(CloudFormationError):
    code = "InvalidChangeSetStatus"


class ResourceRefused(Exception):
    """Raised by a resource model of another extension (ext_guardduty.py, ext_accessanalyzer.py) when
    its service refuses the creation: the execution fails that resource with `reason`."""

    def __init__(self, logical_id: str, reason: str):
        super().__init__(reason)
        self.logical_id, self.reason = logical_id, reason


def _fates(backend: CloudFormationBackend) -> list:
    if not hasattr(backend, "tapguard_fates"):
        backend.tapguard_fates = []
    return backend.tapguard_fates


def _take_fate(backend, stack_name: str, operation: str, logical_ids: list) -> dict | None:
    with _lock:
        for fate in _fates(backend):
            if fate["operation"] != operation or fate["logical_id"] not in logical_ids:
                continue
            if fate.get("stack") and fate["stack"] != stack_name:
                continue
            if fate.get("count") is not None and fate["fired"] >= fate["count"]:
                continue
            fate["fired"] += 1
            return dict(fate)
    return None


def _event(stack, logical_id: str, resource_type: str, status: str, reason: str | None = None, physical_id: str = ""):
    return Event(
        stack_id=stack.stack_id,
        stack_name=stack.name,
        logical_resource_id=logical_id,
        physical_resource_id=physical_id,
        resource_type=resource_type,
        resource_status=status,
        resource_status_reason=reason,
        resource_properties=None,
    )


def _physical_id(stack, logical_id: str) -> str:
    return f"{stack.name}-{logical_id}-{abs(hash((stack.stack_id, logical_id))) % 10**12:012d}"


def _resources(template_dict: dict) -> list:
    """(logical id, type) in template order: the fixtures are written in dependency order."""
    return [(name, body.get("Type", "")) for name, body in (template_dict.get("Resources") or {}).items()]


STACK = "AWS::CloudFormation::Stack"


def _creation_script(stack, resources: list, fate: dict | None) -> tuple[list, str]:
    """The events of a stack creation after its first CREATE_IN_PROGRESS, and the final status."""
    script = []
    created = []
    for logical_id, resource_type in resources:
        script.append(("res", logical_id, resource_type, "CREATE_IN_PROGRESS", None))
        if fate and fate["logical_id"] == logical_id:
            script.append(("res", logical_id, resource_type, "CREATE_FAILED", fate["reason"]))
            script.append(
                (
                    "stack",
                    stack.name,
                    STACK,
                    "ROLLBACK_IN_PROGRESS",
                    f"The following resource(s) failed to create: [{logical_id}]. Rollback requested by user.",
                )
            )
            script.append(("res", logical_id, resource_type, "DELETE_COMPLETE", None))
            for done_id, done_type in reversed(created):
                script.append(("res", done_id, done_type, "DELETE_IN_PROGRESS", None))
                script.append(("res", done_id, done_type, "DELETE_COMPLETE", None))
            script.append(("stack", stack.name, STACK, "ROLLBACK_COMPLETE", None))
            return script, "ROLLBACK_COMPLETE"
        script.append(("res", logical_id, resource_type, "CREATE_IN_PROGRESS", "Resource creation Initiated"))
        script.append(("res", logical_id, resource_type, "CREATE_COMPLETE", None))
        created.append((logical_id, resource_type))
    script.append(("stack", stack.name, STACK, "CREATE_COMPLETE", None))
    return script, "CREATE_COMPLETE"


def _update_script(stack, changes: list, fate: dict | None, rollback_fails: bool) -> tuple[list, str]:
    """The events of an update after its UPDATE_IN_PROGRESS, and the final status."""
    script = []
    done = []
    verbs = {"Add": "CREATE", "Modify": "UPDATE"}
    for action, logical_id, resource_type in changes:
        if action not in verbs:
            continue
        verb = verbs[action]
        script.append(("res", logical_id, resource_type, f"{verb}_IN_PROGRESS", None))
        if fate and fate["logical_id"] == logical_id:
            script.append(("res", logical_id, resource_type, f"{verb}_FAILED", fate["reason"]))
            script.append(
                (
                    "stack",
                    stack.name,
                    STACK,
                    "UPDATE_ROLLBACK_IN_PROGRESS",
                    f"The following resource(s) failed to {verb.lower()}: [{logical_id}]. ",
                )
            )
            if rollback_fails:
                script.append(
                    (
                        "res",
                        logical_id,
                        resource_type,
                        "UPDATE_FAILED",
                        "Resource handler returned message: rollback could not restore the previous state",
                    )
                )
                script.append(
                    (
                        "stack",
                        stack.name,
                        STACK,
                        "UPDATE_ROLLBACK_FAILED",
                        f"The following resource(s) failed to update: [{logical_id}]. ",
                    )
                )
                return script, "UPDATE_ROLLBACK_FAILED"
            for done_id, done_type, done_verb in reversed(done + [(logical_id, resource_type, verb)]):
                if done_verb == "CREATE":
                    script.append(("res", done_id, done_type, "DELETE_COMPLETE", None))
                else:
                    script.append(("res", done_id, done_type, "UPDATE_IN_PROGRESS", None))
                    script.append(("res", done_id, done_type, "UPDATE_COMPLETE", None))
            script.append(("stack", stack.name, STACK, "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", None))
            script.append(("stack", stack.name, STACK, "UPDATE_ROLLBACK_COMPLETE", None))
            return script, "UPDATE_ROLLBACK_COMPLETE"
        script.append(("res", logical_id, resource_type, f"{verb}_COMPLETE", None))
        done.append((logical_id, resource_type, verb))
    script.append(("stack", stack.name, STACK, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", None))
    for action, logical_id, resource_type in changes:
        if action == "Remove":
            script.append(("res", logical_id, resource_type, "DELETE_IN_PROGRESS", None))
            script.append(("res", logical_id, resource_type, "DELETE_COMPLETE", None))
    script.append(("stack", stack.name, STACK, "UPDATE_COMPLETE", None))
    return script, "UPDATE_COMPLETE"


def _play(backend, stack, script: list, final_status: str, in_progress: str) -> None:
    """Appends the scripted events, at once or paced, and sets the final status at the end."""

    def emit(kind, logical_id, resource_type, status, reason):
        physical = stack.stack_id if kind == "stack" else _physical_id(stack, logical_id)
        stack.events.append(_event(stack, logical_id, resource_type, status, reason, physical))

    interval = getattr(backend, "tapguard_event_interval_ms", 0) / 1000.0
    if interval <= 0:
        for step in script:
            emit(*step)
        stack.status = final_status
        return

    stack.status = in_progress

    def run():
        for step in script:
            time.sleep(interval)
            emit(*step)
            if step[0] == "stack":
                # The stack's own status follows its events (ROLLBACK_IN_PROGRESS and so on).
                stack.status = step[3]
        stack.status = final_status

    threading.Thread(target=run, daemon=True).start()


def _find_change_set(backend, change_set_name: str):
    if change_set_name in backend.change_sets:
        return backend.change_sets[change_set_name]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == change_set_name:
            return change_set
    return None


def _execute_change_set(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
    """ExecuteChangeSet as CloudFormation answers it: at once, the stack `<TYPE>_IN_PROGRESS`, the
    execution going on in the background until the stack settles (its resources, custom resources
    included, are created there: a handler that takes a minute does not hold the call)."""
    change_set = _find_change_set(self, change_set_name)
    if change_set is None:
        return _original_execute(self, change_set_name, stack_name)
    if change_set.execution_status != "AVAILABLE":
        raise InvalidChangeSetStatus(
            f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current execution status of "
            f"[{change_set.execution_status}]"
        )
    stack = self.stacks[change_set.stack_id]
    kind = change_set.change_set_type
    stack._add_stack_event(f"{kind}_IN_PROGRESS", resource_status_reason="User Initiated")
    stack.status = f"{kind}_IN_PROGRESS"
    change_set.execution_status = "EXECUTE_IN_PROGRESS"
    threading.Thread(
        target=_execution, args=(self, change_set, stack), name=f"execute {stack.stack_id}", daemon=True
    ).start()
    return None


def _execution(backend: CloudFormationBackend, change_set, stack) -> None:
    """The execution of `change_set` on `stack`, after ExecuteChangeSet answered; an error the emulator
    did not expect rolls the stack back with that error as the reason, instead of leaving it in progress."""
    kind = change_set.change_set_type
    try:
        _execute(backend, change_set, stack)
    except Exception as err:  # noqa: BLE001 - a thread's exception would otherwise only be printed
        import traceback

        traceback.print_exc()
        reason = f"the emulator failed to execute the change set: {type(err).__name__}: {err}"
        change_set.execution_status = "EXECUTE_FAILED"
        if kind == "CREATE":
            steps = [("ROLLBACK_IN_PROGRESS", reason), ("ROLLBACK_COMPLETE", None)]
        else:
            steps = [("UPDATE_ROLLBACK_IN_PROGRESS", reason), ("UPDATE_ROLLBACK_COMPLETE", None)]
        for status, why in steps:
            stack.events.append(_event(stack, stack.name, STACK, status, why, stack.stack_id))
        stack.status = steps[-1][0]


def _execute(self: CloudFormationBackend, change_set, stack) -> None:
    kind = change_set.change_set_type
    changes = [(c.action, c.logical_resource_id, c.resource_type) for c in change_set.changes]
    if kind == "CREATE":
        template_resources = (change_set.template_dict or {}).get("Resources") or {}
        holds = _conditions(self, change_set)
        resources = [
            r
            for r in _resources(change_set.template_dict)
            if holds.get((template_resources.get(r[0]) or {}).get("Condition"), True)
        ]
        fate = _take_fate(self, stack.name, "CREATE", [r[0] for r in resources])
    else:
        touched = [c[1] for c in changes if c[0] in ("Add", "Modify")]
        fate = _take_fate(self, stack.name, "UPDATE", touched)
    if fate:
        # The execution is rolled back: moto's resources and the stack's template stay as they were
        # (for a creation, no resources), so the next change set sees the real difference again.
        change_set.execution_status = "EXECUTE_COMPLETE"
        if kind == "CREATE":
            stack.template = change_set.template
            stack.template_dict = change_set.template_dict
            script, final = _creation_script(stack, resources, fate)
            _play(self, stack, script, final, "CREATE_IN_PROGRESS")
        else:
            script, final = _update_script(stack, changes, fate, bool(fate.get("rollback_fails")))
            _play(self, stack, script, final, "UPDATE_IN_PROGRESS")
        return
    seen = len(stack.events)
    try:
        # moto's execute_change_set, less its events and final status (the script below has them).
        change_set.apply()
    except ResourceRefused as refused:
        # A resource the service refused (a second GuardDuty detector, a second account analyzer):
        # played as that resource's failure, as CloudFormation reports it, and rolled back.
        del stack.events[seen:]
        fate = {"logical_id": refused.logical_id, "reason": refused.reason, "rollback_fails": False}
        change_set.execution_status = "EXECUTE_COMPLETE"
        if kind == "CREATE":
            stack.template = change_set.template
            stack.template_dict = change_set.template_dict
            script, final = _creation_script(stack, resources, fate)
            _play(self, stack, script, final, "CREATE_IN_PROGRESS")
        else:
            if refused.logical_id not in [c[1] for c in changes]:
                changes.append(("Add", refused.logical_id, ""))
            script, final = _update_script(stack, changes, fate, False)
            _play(self, stack, script, final, "UPDATE_IN_PROGRESS")
        return
    # Events are scripted: none that moto may have added while applying.
    del stack.events[seen:]
    change_set.execution_status = "EXECUTE_COMPLETE"
    stack.template = change_set.template
    # moto keeps the template and Outputs the stack had before the change set (none, for a creation).
    stack.template_dict = change_set.template_dict
    stack.description = change_set.template_dict.get("Description")
    stack.output_map = stack._create_output_map()
    _register_exports(self, stack)
    if kind == "CREATE":
        script, final = _creation_script(stack, resources, None)
        _play(self, stack, script, final, "CREATE_IN_PROGRESS")
    else:
        script, final = _update_script(stack, changes, None, False)
        _play(self, stack, script, final, "UPDATE_IN_PROGRESS")


def _created_resources(self: Stack) -> list:
    """The stack's resources created so far, in template order: moto's `stack_resources` is its resource
    map's values(), which creates any resource not created yet (see the module's docstring)."""
    resource_map = self.resource_map
    created = resource_map._parsed_resources
    return [created[name] for name in list(resource_map.resources) if created.get(name) is not None]


def _register_exports(backend: CloudFormationBackend, stack) -> None:
    """The stack's exports, as its Outputs now have them, become the region's (replacing its earlier
    ones). A name another stack exports stays that stack's (AWS fails the execution instead: "Export
    names must be unique across a given region"; not modelled)."""
    with _lock:
        taken = {name for name, e in backend.exports.items() if e.exporting_stack_id != stack.stack_id}
        for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
            del backend.exports[name]
        for export in stack.exports:
            if export.name not in taken:
                backend.exports[export.name] = export


def _create_change_set(self: CloudFormationBackend, stack_name: str, change_set_name: str, *args, **kwargs):
    for stack in self.stacks.values():
        if stack.name != stack_name:
            continue
        if stack.status.endswith("_IN_PROGRESS") and stack.status != "REVIEW_IN_PROGRESS":
            raise ValidationError(
                stack_name, message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
            )
        if stack.status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "UPDATE_ROLLBACK_FAILED"):
            raise ValidationError(
                stack_name, message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated."
            )
    change_set_id, stack_id = _original_create_change_set(self, stack_name, change_set_name, *args, **kwargs)
    change_set = self.change_sets.get(change_set_id)
    stack = self.stacks.get(stack_id)
    if stack is not None:
        # Fn::ImportValue resolves against the region's exports when the change set runs.
        stack.cross_stack_resources = self.exports
        stack.resource_map.cross_stack_resources = self.exports
    if change_set is not None and change_set.change_set_type == "CREATE":
        # As CloudFormation: a creation adds only the resources whose condition holds (moto lists all).
        holds = _conditions(self, change_set)
        resources = (change_set.template_dict or {}).get("Resources") or {}
        change_set.changes = [
            c
            for c in change_set.changes
            if holds.get((resources.get(c.logical_resource_id) or {}).get("Condition"), True)
        ]
    return change_set_id, stack_id


def _conditions(backend: CloudFormationBackend, change_set) -> dict:
    """The change set's conditions, evaluated with its parameters: {name: bool}, {} if they cannot be."""
    from moto.cloudformation.parsing import ResourceMap

    template = change_set.template_dict or {}
    if not template.get("Conditions"):
        return {}
    try:
        resource_map = ResourceMap(
            change_set.stack_id,
            change_set.stack_name,
            change_set.parameters,
            {},
            backend.region_name,
            backend.account_id,
            template,
            None,
        )
        resource_map.load_mapping()
        resource_map.load_parameters()
        resource_map.load_conditions()
        return {name: bool(resource_map.lazy_condition_map[name]) for name in template["Conditions"]}
    except Exception:  # an unusual template: no filtering rather than a broken change set
        return {}


def _delete_stack(self: CloudFormationBackend, name_or_stack_id: str) -> None:
    stack = None
    for candidate in self.stacks.values():
        if name_or_stack_id in (candidate.name, candidate.stack_id):
            stack = candidate
    if stack is None:
        return _original_delete_stack(self, name_or_stack_id)
    resources = _resources(getattr(stack, "template_dict", {}) or {})
    rolled_back = stack.status == "ROLLBACK_COMPLETE"
    seen = len(stack.events)
    _original_delete_stack(self, stack.stack_id)
    # moto appended DELETE_IN_PROGRESS and DELETE_COMPLETE: put the resources' deletions between them.
    final = stack.events[seen + 1 :]
    del stack.events[seen + 1 :]
    if not rolled_back:
        for logical_id, resource_type in reversed(resources):
            for status in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE"):
                stack.events.append(_event(stack, logical_id, resource_type, status, None, _physical_id(stack, logical_id)))
    stack.events.extend(final)


def _create_stack_instances(self: CloudFormationBackend, stackset_name: str, *args, **kwargs) -> str:
    operation_id = _original_create_stack_instances(self, stackset_name, *args, **kwargs)
    stack_set = self.describe_stack_set(stackset_name)
    # AWS lists a service-managed instance with the OU it was deployed through; moto does not keep it.
    targets = kwargs.get("deployment_targets") or (args[3] if len(args) > 3 else None) or {}
    ous = targets.get("OrganizationalUnitIds") or []
    for instance in stack_set.instances.stack_instances:
        if getattr(instance, "tapguard_ou", None) or not ous:
            continue
        instance.tapguard_ou = ous[0] if len(ous) == 1 else _parent_ou(self.account_id, instance.account_id, ous)
    failed = 0
    with _lock:
        fates = [f for f in getattr(self, "tapguard_instance_fates", []) if f["stack_set"] == stackset_name]
    for instance in stack_set.instances.stack_instances:
        for fate in fates:
            if (instance.account_id, instance.region_name) == (fate["instance_account"], fate["instance_region"]):
                instance.tapguard_failure = fate["reason"]
                failed += 1
    if failed:
        stack_set.update_operation(operation_id, "FAILED")
    return operation_id


def _instance_init(
    self: StackInstance,
    account_id: str,
    region_name: str,
    stackset_id: str,
    stack_name: str,
    name: str,
    template: str,
    parameters,
    permission_model: str,
) -> None:
    """A service-managed instance's stack as CloudFormation makes it: `StackSet-<name>-<uuid>` in the
    member's account and region, listed there, importing the region's exports and exporting its own
    (moto keeps a hidden stack named as the StackSet, with no exports either way)."""
    if permission_model != "SERVICE_MANAGED":
        return _original_instance_init(
            self, account_id, region_name, stackset_id, stack_name, name, template, parameters, permission_model
        )
    import uuid

    self.account_id, self.region_name, self.stackset_id = account_id, region_name, stackset_id
    self.stack_name, self.name, self.template = stack_name, name, template
    self.parameters = parameters or []
    self.permission_model = permission_model
    if isinstance(parameters, dict):
        params = parameters
    else:
        params = {p["ParameterKey"]: p["ParameterValue"] for p in parameters or []}
    backend = cloudformation_backends[account_id][region_name]
    self.stack = backend.create_stack(name=f"StackSet-{name}-{uuid.uuid4()}", template=template, parameters=params)


def _instance_delete(self: StackInstance) -> None:
    if self.permission_model != "SERVICE_MANAGED":
        return _original_instance_delete(self)
    cloudformation_backends[self.account_id][self.region_name].delete_stack(self.stack.stack_id)


def _delete_stack_instances_response(self: CloudFormationResponse):
    """DeleteStackInstances of a service-managed StackSet names OUs (DeploymentTargets), not accounts:
    the instances deployed through those OUs in the regions given are deleted."""
    deployment_targets = self._get_params().get("DeploymentTargets") or {}
    ous = deployment_targets.get("OrganizationalUnitIds") or []
    if ous and not self._get_param("Accounts", []):
        stack_set = self.cloudformation_backend.describe_stack_set(self._get_param("StackSetName"))
        accounts = sorted(
            {i.account_id for i in stack_set.instances.stack_instances if getattr(i, "tapguard_ou", None) in ous}
        )
        regions = self._get_param("Regions", [])
        stack_set = self.cloudformation_backend.delete_stack_instances(stack_set.name, accounts, regions)
        from moto.core.responses import ActionResult

        return ActionResult({"OperationId": stack_set.operations[-1]["OperationId"]})
    return _original_delete_stack_instances_response(self)


STACKSETS_PRINCIPAL = "member.org.stacksets.cloudformation.amazonaws.com"
STACK_SET_OPERATIONS = [
    "create_stack_set",
    "describe_stack_set",
    "update_stack_set",
    "delete_stack_set",
    "create_stack_instances",
    "list_stack_instances",
    "delete_stack_instances",
    "describe_stack_set_operation",
]


def _management_of(account: str):
    """(management account, partition) of the organization `account` is a member of; None for the
    management account itself or an account in no organization."""
    from moto.organizations.models import organizations_backends

    entry = organizations_backends.master_accounts.get(account)
    return entry if entry and entry[0] != account else None


def _org_backend(self: StackInstances):
    # A delegated administrator's service-managed StackSet deploys to the organization's OUs, which
    # moto keeps in the management account's backend.
    from moto.organizations.models import organizations_backends

    entry = _management_of(self.account_id)
    if entry:
        return organizations_backends[entry[0]][entry[1]]
    return organizations_backends[self.account_id][self.partition]


def _checking_call_as(original):
    """A member account acts on a service-managed StackSet only as a registered delegated
    administrator, saying so with CallAs DELEGATED_ADMIN."""

    def respond(self: CloudFormationResponse):
        account = self.current_account
        entry = _management_of(account)
        if entry:
            name = self._get_param("StackSetName")
            model = self._get_param("PermissionModel")
            if model is None:
                found = [st for st in self.cloudformation_backend.stacksets.values() if name in (st.name, st.id)]
                model = found[0].permission_model if found else None
            if model == "SERVICE_MANAGED":
                from moto.organizations.models import organizations_backends

                admins = organizations_backends[entry[0]][entry[1]].list_delegated_administrators(
                    ServicePrincipal=STACKSETS_PRINCIPAL
                )["DelegatedAdministrators"]
                if account not in [a["Id"] for a in admins]:
                    raise ValidationError(
                        name,
                        message="Account used is not a delegated administrator",
                    )
                if (self._get_param("CallAs") or "SELF") != "DELEGATED_ADMIN":
                    raise ValidationError(
                        name,
                        message=f"Account {account} is not the management account of its organization: a delegated administrator must call with CallAs DELEGATED_ADMIN",
                    )
        return original(self)

    return respond


def _parent_ou(management: str, account: str, ous: list) -> str | None:
    from moto.organizations.models import organizations_backends

    try:
        parents = organizations_backends[management]["aws"].list_parents(ChildId=account)["Parents"]
    except Exception:  # noqa: BLE001 - no organization: the OU stays unknown, as moto has it
        return None
    return next((p["Id"] for p in parents if p["Id"] in ous), None)


def _instance_to_dict(self: StackInstance) -> dict:
    summary = _original_instance_to_dict(self)
    if getattr(self, "tapguard_ou", None):
        summary["OrganizationalUnitId"] = self.tapguard_ou
    reason = getattr(self, "tapguard_failure", None)
    if reason:
        summary["Status"] = "OUTDATED"
        summary["StatusReason"] = reason
        summary["StackInstanceStatus"] = {"DetailedStatus": "FAILED"}
    return summary


def _create_change_set_response(self: CloudFormationResponse):
    """Records the request as the client sent it, before moto interprets it."""
    body = self._get_param("TemplateBody")
    sent = {
        "stack": self._get_param("StackName"),
        "change_set": self._get_param("ChangeSetName"),
        "type": self._get_param("ChangeSetType", "CREATE"),
        "parameters": self._get_param("Parameters", []),
        "capabilities": self._get_param("Capabilities", []),
        "template_url": self._get_param("TemplateURL"),
        "template_bytes": len(body.encode()) if body else None,
        "role_arn": self._get_param("RoleARN"),
        "notification_arns": self._get_param("NotificationARNs", []),
        "on_stack_failure": self._get_param("OnStackFailure"),
    }
    backend = self.cloudformation_backend
    with _lock:
        if not hasattr(backend, "tapguard_sent"):
            backend.tapguard_sent = []
        backend.tapguard_sent.append(sent)
    template_url = self._get_param("TemplateURL")
    if template_url and self._get_param("ChangeSetType", "CREATE") == "UPDATE":
        # moto compares an update with the stack only for a TemplateBody; CloudFormation does so for
        # a template read from S3 as well: the same template and parameters are no changes.
        stack = backend.get_stack(self._get_param("StackName"))
        self._validate_different_update(
            self._get_param("Parameters", []), self._get_stack_from_s3_url(template_url), stack
        )
    return _original_create_change_set_response(self)


def _execute_change_set_response(self: CloudFormationResponse):
    sent = {
        "change_set": self._get_param("ChangeSetName"),
        "stack": self._get_param("StackName"),
        "disable_rollback": self._get_bool_param("DisableRollback", False),
    }
    backend = self.cloudformation_backend
    with _lock:
        if not hasattr(backend, "tapguard_executed"):
            backend.tapguard_executed = []
        backend.tapguard_executed.append(sent)
    return _original_execute_change_set_response(self)


def _control_sent(body: dict) -> dict:
    backend = _backend(body)
    with _lock:
        return {
            "change_sets": list(getattr(backend, "tapguard_sent", [])),
            "executions": list(getattr(backend, "tapguard_executed", [])),
        }


def _backend(body: dict) -> CloudFormationBackend:
    for field in ("account", "region"):
        if not body.get(field):
            raise ValueError(f"'{field}' is required")
    return cloudformation_backends[body["account"]][body["region"]]


def _control_fate(body: dict) -> dict:
    for field in ("logical_id", "reason"):
        if not body.get(field):
            raise ValueError(f"a fate needs '{field}'")
    operation = body.get("operation", "CREATE")
    if operation not in ("CREATE", "UPDATE"):
        raise ValueError("operation is CREATE or UPDATE")
    fate = {
        "stack": body.get("stack"),
        "logical_id": body["logical_id"],
        "operation": operation,
        "reason": body["reason"],
        "rollback_fails": bool(body.get("rollback_fails")),
        "count": body.get("count"),
        "fired": 0,
    }
    backend = _backend(body)
    with _lock:
        _fates(backend).append(fate)
    return {"fate": fate}


def _control_stack_instance_fate(body: dict) -> dict:
    for field in ("stack_set", "instance_account", "instance_region", "reason"):
        if not body.get(field):
            raise ValueError(f"a stack instance fate needs '{field}'")
    backend = _backend(body)
    fate = {k: body[k] for k in ("stack_set", "instance_account", "instance_region", "reason")}
    with _lock:
        if not hasattr(backend, "tapguard_instance_fates"):
            backend.tapguard_instance_fates = []
        backend.tapguard_instance_fates.append(fate)
    return {"fate": fate}


def _control_pace(body: dict) -> dict:
    backend = _backend(body)
    backend.tapguard_event_interval_ms = int(body.get("event_interval_ms", 0))
    return {"event_interval_ms": backend.tapguard_event_interval_ms}


def install() -> None:
    CloudFormationBackend.execute_change_set = _execute_change_set
    Stack.stack_resources = property(_created_resources)
    CloudFormationBackend.create_change_set = _create_change_set
    CloudFormationBackend.delete_stack = _delete_stack
    CloudFormationBackend.create_stack_instances = _create_stack_instances
    StackInstance.to_dict = _instance_to_dict
    StackInstance.__init__ = _instance_init
    StackInstance.delete = _instance_delete
    CloudFormationResponse.create_change_set = _create_change_set_response
    CloudFormationResponse.execute_change_set = _execute_change_set_response
    CloudFormationResponse.delete_stack_instances = _delete_stack_instances_response
    StackInstances.org_backend = property(_org_backend)
    # AWS Organizations lets CloudFormation StackSets have a delegated administrator; moto's list lacks it.
    from moto.organizations.models import FakeDelegatedAdministrator

    if STACKSETS_PRINCIPAL not in FakeDelegatedAdministrator.SUPPORTED_SERVICES:
        FakeDelegatedAdministrator.SUPPORTED_SERVICES.append(STACKSETS_PRINCIPAL)
    for operation in STACK_SET_OPERATIONS:
        setattr(CloudFormationResponse, operation, _checking_call_as(getattr(CloudFormationResponse, operation)))
    faults.CONTROLS[("POST", "/tapguard/cloudformation/sent")] = _control_sent
    faults.CONTROLS[("POST", "/tapguard/cloudformation/stack-instance-fate")] = _control_stack_instance_fate
    faults.CONTROLS[("POST", "/tapguard/cloudformation/fate")] = _control_fate
    faults.CONTROLS[("POST", "/tapguard/cloudformation/pace")] = _control_pace
