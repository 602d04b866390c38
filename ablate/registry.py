"""One generic registry type, one instance per component kind.

Entries are keyed by exact names (no prefix or substring matching) and each carries a
pydantic config model. Builders receive a validated config instance.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from pydantic import ConfigDict

from ablate.config_model import StrictModel
from ablate.errors import RegistryError, did_you_mean

KINDS = ("encoder", "connector", "llm", "data_source", "mixture", "template", "answer_format", "evaluator")


class ComponentConfig(StrictModel):
    """Base of every registered component's config. Unknown keys and non-finite numbers are errors."""

    model_config = ConfigDict(frozen=True)

    type: str = ""


C = TypeVar("C", bound=ComponentConfig)


@dataclass(frozen=True)
class Entry(Generic[C]):
    kind: str
    name: str
    config: type[C]
    builder: Callable[..., Any]
    origin: str  # "module:qualname (plugin)" so double registrations name both places
    description: str = ""

    def make_config(self, values: dict[str, Any] | None = None) -> C:
        return self.config.model_validate({**(values or {}), "type": self.name})

    def build(self, config: C | dict[str, Any] | None = None, **context: Any) -> Any:
        if not isinstance(config, ComponentConfig):
            config = self.make_config(config)
        return self.builder(config, **context)


class Registry:
    """Exact-key registry of one component kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        config: type[ComponentConfig] = ComponentConfig,
        builder: Callable[..., Any] | None = None,
        *,
        description: str = "",
        plugin: str = "ablate",
    ):
        """Register `builder` under `name`; usable directly or as a decorator."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if not (isinstance(config, type) and issubclass(config, ComponentConfig)):
            raise RegistryError(f"{self.kind} {name!r}: config must subclass ablate.registry.ComponentConfig")

        def add(fn: Callable[..., Any]):
            origin = f"{_where(fn)} (plugin {plugin})"
            if name in self._entries:
                raise RegistryError(
                    f"{self.kind} {name!r} is registered twice: first by {self._entries[name].origin}, "
                    f"again by {origin}"
                )
            doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
            self._entries[name] = Entry(self.kind, name, config, fn, origin, doc)
            return fn

        return add(builder) if builder is not None else add

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise RegistryError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} Registered: {known}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)


def _where(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", "?")
    qual = getattr(fn, "__qualname__", repr(fn))
    try:
        line = inspect.getsourcelines(fn)[1]
        return f"{module}:{qual} line {line}"
    except (OSError, TypeError):
        return f"{module}:{qual}"


class Registries:
    """All registries, one attribute per kind. Filled by the plugin manager."""

    def __init__(self) -> None:
        for kind in KINDS:
            setattr(self, kind, Registry(kind))

    def __getitem__(self, kind: str) -> Registry:
        if kind not in KINDS:
            raise RegistryError(f"unknown component kind {kind!r}.{did_you_mean(kind, KINDS)} Kinds: {', '.join(KINDS)}")
        return getattr(self, kind)

    def __iter__(self) -> Iterator[Registry]:
        return (getattr(self, k) for k in KINDS)


_registries: Registries | None = None


def registries() -> Registries:
    """The process-wide registries, with built-ins and plugins loaded on first use."""
    global _registries
    if _registries is None:
        from ablate.plugin_manager import load_all

        regs = Registries()
        _registries = regs
        try:
            load_all(regs)
        except BaseException:
            _registries = None
            raise
    return _registries


def reset_registries() -> None:
    """Forget the loaded registries (tests use this after installing a plugin)."""
    global _registries
    _registries = None
