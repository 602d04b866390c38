"""The pydantic base of every user-written config block (recipe sections, components, mixtures).

What it rejects, for every field of every subclass (plugins' component configs included):
- unknown keys;
- non-finite numbers (`.inf`, `.nan`, `1e400`): no learning rate, epoch count or share means
  anything as infinity, and NaN compares false with every bound;
- a boolean where a number is expected: YAML reads `yes`/`true` as a bool, and pydantic would
  quietly take it as 1;
- integers beyond 64 bits, which fail deep inside torch or numpy;
- a quoted string where an integer or a boolean is expected (`seed: "1"`, `packing: "yes"`):
  pydantic's lax mode would convert it, so the recipe's hash and meaning would hang on quoting
  the YAML did not ask for. Float fields still take strings: YAML 1.1 reads `1e-4` (no dot) as
  one, and `lr: 1e-4` is how recipes are written;
- a number where a boolean is expected (`packing: 1`).
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

_NUMBERS = (int, float)

# Caps shared by recipe sections and component configs, far above any published setting: past
# them a value is a typo, and `ablate plan` would print absurd figures (or `ablate run` allocate
# until it dies) instead of saying so.
MAX_TOKENS = 131_072  # a sequence length: LLaVA's model_max_length is 2048 (v1.5: 2048, NeXT: 4096)
MAX_WIDTH = 65_536  # a layer width or LoRA rank: the widest released LLMs are ~16-25K wide (FFN ~53K)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name)
        if field is None or value is None:
            return value
        numeric = is_number_annotation(field.annotation) or is_integer_annotation(field.annotation)
        if isinstance(value, bool) and numeric:
            raise ValueError(f"expected a number, not a boolean (got {value!r})")
        if isinstance(value, int) and abs(value) >= 2**63 and is_number_annotation(field.annotation):
            raise ValueError(f"{value} is too large (torch and numpy count in 64-bit integers)")
        if _is_quoted_number(value) and is_integer_annotation(field.annotation):
            raise ValueError(f"expected an integer, got the string {value!r} (write the number without quotes)")
        if not isinstance(value, bool) and _only(field.annotation, (bool,)):
            raise ValueError(f"expected a boolean (true or false), got {value!r}")
        return value


def _is_quoted_number(value: Any) -> bool:
    """A string pydantic's lax mode would read as a number ('8', ' 8 ', '8.0'); other strings
    get pydantic's own "not a valid integer"."""
    try:
        return isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        return False


def _members(annotation: Any) -> list[Any]:
    """The types an annotation allows, None aside: [int] for `int | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _only(annotation: Any, allowed: tuple) -> bool:
    members = _members(annotation)
    return bool(members) and all(m in allowed for m in members)


def is_integer_annotation(annotation: Any) -> bool:
    """An int field (`int`, `int | None`, `int | list[int]`): no member would take a string."""
    members = _members(annotation)
    return int in members and not any(m in (str, float) or m is Any for m in members)


def is_number_annotation(annotation: Any) -> bool:
    """int, float, or an optional/union of only those."""
    return _only(annotation, _NUMBERS)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError(f"must not be empty or only spaces (got {value!r})")
    return value


# A path or a name: "" or "  " would silently mean the working directory (a path), the default
# (a tokenizer), or fail far from the recipe with no YAML path (a checkpoint, an lmms-eval task).
NonBlank = Annotated[str, AfterValidator(_not_blank)]


def repeated(values) -> list:
    """The values that occur more than once, sorted (for "names must be unique" checks)."""
    values = list(values)
    return sorted({v for v in values if values.count(v) > 1})
