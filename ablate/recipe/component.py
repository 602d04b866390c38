"""`Component("connector")`: a recipe field holding `{type: <registry key>, ...config}`.

The block is validated against the config model of the registry entry it names, at
validation time, so plugins' components validate exactly like built-ins.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable

from pydantic import BeforeValidator, SerializeAsAny, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from ablate.errors import did_you_mean
from ablate.registry import ComponentConfig, Registry, registries


def _error(loc: tuple, kind: str, message: str, value: Any) -> ValidationError:
    detail = InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)
    return ValidationError.from_exception_data("component", [detail])


def _validator(kind: str, registry_of: Callable[[], Registry] | None = None):
    def validate(value: Any) -> Any:
        if isinstance(value, ComponentConfig):
            return value
        if isinstance(value, str):  # shorthand: `template: vicuna_v1`
            value = {"type": value}
        if not isinstance(value, dict):
            raise _error((), "component_block", f"expected a {kind} block like {{type: <name>, ...}}", value)
        registry = registry_of() if registry_of is not None else registries()[kind]
        name = value.get("type")
        if name is None:
            raise _error(("type",), "missing", f"missing 'type': one of {', '.join(registry.names())}", value)
        if name not in registry:
            hint = did_you_mean(str(name), registry.names())
            raise _error(
                ("type",), "unknown_component",
                f"unknown {kind} {name!r}.{hint} Registered: {', '.join(registry.names())}{registry.load_notes_text()}",
                name,
            )
        return registry.get(name).make_config(value)

    validate.component_kind = kind
    validate.component_registry = registry_of or (lambda: registries()[kind])  # for error messages' field lists
    return validate


def Component(kind: str, registry_of: Callable[[], Registry] | None = None):  # noqa: N802 - reads like a type
    """A `{type: ...}` block of registry `kind` (of `registries()`, or of the registry `registry_of`
    returns: the study layer's diagnostics live in their own)."""
    return Annotated[SerializeAsAny[ComponentConfig], BeforeValidator(_validator(kind, registry_of))]
