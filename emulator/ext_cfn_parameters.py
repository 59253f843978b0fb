"""A list parameter's default is a list, as a list parameter's given value is.

moto 5.2 splits a `CommaDelimitedList` (or `List<...>`) parameter at its commas when a value is given,
but leaves its `Default` one string. `!Ref` of it then is a string where CloudFormation gives a list:
`!Join [",", !Ref ConfigRules]` joined the string's characters, so each of TapStack.yml's
`Rule...` conditions was false and `Standards: !Ref StandardIds` reached the custom resource as a
string. Here a default of a list type is split the same way. Always on: a default that differs from
the same value given was never CloudFormation's behaviour.

AWS documentation: CloudFormation User Guide, "Parameters" (`CommaDelimitedList`: "An array of literal
strings that are separated by commas ... `Ref` returns a list"; `Default`: "A value of the appropriate
type for the template to use if no value is specified").
"""

from moto.cloudformation.parsing import ResourceMap

_original_load_parameters = ResourceMap.load_parameters


def _load_parameters(self: ResourceMap) -> None:
    _original_load_parameters(self)
    for name, slot in (self._template.get("Parameters") or {}).items():
        value_type = slot.get("Type", "String")
        is_list = value_type == "CommaDelimitedList" or (value_type.startswith("List<") and "Number" not in value_type)
        value = self.resolved_parameters.get(name)
        if is_list and isinstance(value, str):
            self.resolved_parameters[name] = value.split(",")
            self._parsed_resources[name] = self.resolved_parameters[name]


def install() -> None:
    ResourceMap.load_parameters = _load_parameters
