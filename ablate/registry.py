"""One generic registry type, one instance per component kind.

Entries are keyed by exact names (no prefix or substring matching) and each carries a
pydantic config model. Builders receive a validated config instance.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from pydantic import ConfigDict

from ablate.config_model import StrictModel
from ablate.errors import AblateError, PluginError, RegistryError, did_you_mean

KINDS = ("encoder", "connector", "llm", "data_source", "mixture", "template", "answer_format", "evaluator")
BUILTIN_PLUGIN = "ablate"

# What a kind's builder must return, checked on every build of a plugin's entry: (built object,
# its entry) -> why it is not what the kind promises, or None. Each kind's own layer installs
# its check when it registers its built-ins.
ContractCheck = Callable[[Any, "Entry"], "str | None"]


class ComponentConfig(StrictModel):
    """Base of every registered component's config. Unknown keys and non-finite numbers are errors."""

    model_config = ConfigDict(frozen=True)

    type: str = ""


C = TypeVar("C", bound=ComponentConfig)


def checkpoint_or_type(config: Any) -> str:
    """How messages name a model block: its `name_or_path`, or its type for a plugin's block
    that reads no checkpoint (its config need not have that field)."""
    return getattr(config, "name_or_path", None) or config.type


@dataclass(frozen=True)
class Entry(Generic[C]):
    kind: str
    name: str
    config: type[C]
    builder: Callable[..., Any]
    origin: str  # "module:qualname (plugin)" so double registrations name both places
    description: str = ""
    plugin: str = BUILTIN_PLUGIN
    registry: Registry | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """How errors name it: `connector 'perceiver' (plugin ablate-perceiver)`."""
        return f"{self.kind} {self.name!r}" + ("" if self.plugin == BUILTIN_PLUGIN else f" (plugin {self.plugin})")

    def make_config(self, values: dict[str, Any] | None = None) -> C:
        return self.config.model_validate({**(values or {}), "type": self.name})

    def build(self, config: C | dict[str, Any] | None = None, **context: Any) -> Any:
        """The builder's result, checked against the kind's contract. A plugin builder's own
        exception becomes one PluginError naming it (a built-in's stays a bug with a traceback)."""
        if not isinstance(config, ComponentConfig):
            config = self.make_config(config)
        try:
            built = self.builder(config, **context)
        except AblateError:
            raise
        except Exception as exc:
            if self.plugin == BUILTIN_PLUGIN:
                raise
            raise PluginError(f"{self.label} failed to build: {type(exc).__name__}: {exc}") from exc
        check = self.registry.contract if self.registry is not None else None
        # Built-ins are held to their contracts by their tests; plugins are checked here, where
        # a violation is still theirs, not a confusing error deep inside training.
        problem = check(built, self) if check is not None and self.plugin != BUILTIN_PLUGIN else None
        if problem:
            raise PluginError(f"{self.label} built {_short_repr(built)}, which breaks the {self.kind} contract: {problem}")
        return built


class Registry:
    """Exact-key registry of one component kind."""

    def __init__(self, kind: str, load_notes: list[str] | None = None):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self.contract: ContractCheck | None = None
        # Who registers when `register` is given no `plugin=`: the plugin manager sets the
        # loading plugin's distribution here, so its entries are never mistaken for built-ins.
        self.default_plugin = BUILTIN_PLUGIN
        # Plugins that failed to load or are disabled, named when a name is unknown.
        self.load_notes = load_notes if load_notes is not None else []

    def register(
        self,
        name: str,
        config: type[ComponentConfig] = ComponentConfig,
        builder: Callable[..., Any] | None = None,
        *,
        description: str = "",
        plugin: str | None = None,
    ):
        """Register `builder` under `name`; usable directly or as a decorator. `plugin` defaults
        to the distribution of the plugin being loaded ("ablate" for built-ins)."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if not (isinstance(config, type) and issubclass(config, ComponentConfig)):
            raise RegistryError(f"{self.kind} {name!r}: config must subclass ablate.registry.ComponentConfig")

        plugin = plugin or self.default_plugin

        def add(fn: Callable[..., Any]):
            origin = f"{_where(fn)} (plugin {plugin})"
            if name in self._entries:
                raise RegistryError(
                    f"{self.kind} {name!r} is registered twice: first by {self._entries[name].origin}, "
                    f"again by {origin}"
                )
            doc = description or (inspect.getdoc(fn) or "").split("\n")[0]
            self._entries[name] = Entry(self.kind, name, config, fn, origin, doc, plugin, self)
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
                f"{self.load_notes_text()}"
            ) from None

    def load_notes_text(self) -> str:
        """What to add to an unknown-name error: the plugins that did not load (it may be theirs)."""
        return "".join(f". {note}" for note in self.load_notes)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)


def _short_repr(value: Any) -> str:
    if value is None:
        return "None"
    return f"a {type(value).__module__}.{type(value).__qualname__}"


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
        self.load_notes: list[str] = []  # shared by every registry: see Registry.load_notes
        for kind in KINDS:
            setattr(self, kind, Registry(kind, self.load_notes))

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
