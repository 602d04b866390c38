"""The pydantic base of every user-written config block (recipe sections, components, mixtures).

What it rejects, for every field of every subclass (plugins' component configs included):
- unknown keys;
- non-finite numbers (`.inf`, `.nan`, `1e400`): no learning rate, epoch count or share means
  anything as infinity, and NaN compares false with every bound;
- a boolean where a number is expected: YAML reads `yes`/`true` as a bool, and pydantic would
  quietly take it as 1;
- integers beyond 64 bits, which fail deep inside torch or numpy.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

_NUMBERS = (int, float)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _plain_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, int) or info.field_name not in cls.model_fields \
                or not is_number_annotation(cls.model_fields[info.field_name].annotation):
            return value
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        if abs(value) >= 2**63:
            raise ValueError(f"{value} is too large (torch and numpy count in 64-bit integers)")
        return value


def is_number_annotation(annotation: Any) -> bool:
    """int, float, or an optional/union of only those."""
    if annotation in _NUMBERS:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(a in _NUMBERS for a in args)
    return False


def repeated(values) -> list:
    """The values that occur more than once, sorted (for "names must be unique" checks)."""
    values = list(values)
    return sorted({v for v in values if values.count(v) > 1})
