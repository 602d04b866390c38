"""YAML loading that remembers where each key came from (file:line).

`base: other.yaml` inherits from another recipe by deep merge; `-s path=value`
overrides are applied on top and remembered as their own source.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, Problem, ProblemsError, RecipeError
from ablate.recipe.yaml_reader import parse_yaml, read_user_text

Path_ = tuple  # a key path such as ("model", "connector", "depth") or ("stages", 0, "lr")


@dataclass
class Sourced:
    """A raw recipe dict plus the origin of every key path in it."""

    data: dict[str, Any]
    origins: dict[Path_, str] = field(default_factory=dict)
    source: str = "<recipe>"

    def where(self, path: Path_) -> str | None:
        """Origin of the deepest known prefix of `path`."""
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in self.origins:
                return self.origins[tuple(path[:n])]
        return None


def load_yaml_file(path: str | Path, what: str = "recipe", error: type[ProblemsError] = RecipeError) -> Sourced:
    """A YAML mapping file as a Sourced; `error` (naming the file and line) otherwise."""
    path = Path(path)
    parsed = parse_yaml(read_user_text(path, what, error), str(path), error)
    data = {} if parsed.data is None else parsed.data
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} ({_short(data)})"
        raise error(str(path), [Problem("", f"a {what} must be a mapping of keys at the top level, "
                                              f"but this file holds {kind}", f"{path}:1")])
    return Sourced(data, parsed.origins, str(path))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def deep_merge(base: Any, over: Any) -> Any:
    """Mappings merge key by key; anything else in `over` replaces `base`.

    A component block that names a different `type` replaces the base block whole: the old
    component's options mean nothing to the new one.
    """
    if isinstance(base, dict) and isinstance(over, dict) and not _switches_type(base, over):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def _switches_type(base: dict, over: dict) -> bool:
    return "type" in over and "type" in base and over["type"] != base["type"]


def load_with_bases(path: str | Path, _seen: tuple[Path, ...] = ()) -> Sourced:
    """Load a recipe file, resolving its `base:` chain (relative to the file).

    A base that cannot be used (missing, not a mapping, not UTF-8, part of a cycle) is
    reported as a problem at the `base:` key of the recipe that names it."""
    path = Path(path).resolve()
    here = load_yaml_file(path)
    base_ref = here.data.pop("base", None)
    if base_ref is None:
        return here

    def problem(message: str) -> RecipeError:
        return RecipeError(str(path), [Problem("base", message, here.where(("base",)))])

    if not isinstance(base_ref, str) or not base_ref.strip():
        raise problem(f"must be the path of another recipe file, got {base_ref!r}")
    base_path = (path.parent / base_ref).resolve()
    if base_path == path or base_path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path, base_path))
        raise problem(f"base recipes form a cycle: {chain}")
    try:
        parent = load_with_bases(base_path, (*_seen, path))
    except AblateError as exc:
        raise problem(f"base recipe {base_ref!r} ({base_path}) cannot be used:\n    {_indent(str(exc))}") from None
    merged = deep_merge(parent.data, here.data)
    origins = dict(parent.origins)
    origins.update({k: v for k, v in here.origins.items() if k != ("base",)})
    return Sourced(merged, origins, str(path))


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")


def parse_path(dotted: str) -> list[str]:
    parts = [p for p in dotted.strip().split(".")]
    if not dotted.strip() or any(not p for p in parts):
        raise AblateError(f"bad override path {dotted!r}: use dotted keys such as model.connector.depth")
    return parts


def _step(node: Any, key: str, dotted: str, create: bool) -> tuple[Any, Any]:
    """Resolve one path element; list items may be addressed by index or by their `name`."""
    if isinstance(node, list):
        if key.lstrip("-").isdigit():
            i = int(key)
            if not -len(node) <= i < len(node):
                raise AblateError(f"override {dotted!r}: index {i} out of range (list has {len(node)} items)")
            return i % len(node), node[i]
        for i, item in enumerate(node):
            if isinstance(item, dict) and item.get("name") == key:
                return i, item
        names = [str(it.get("name")) for it in node if isinstance(it, dict) and "name" in it]
        raise AblateError(f"override {dotted!r}: no list item named {key!r} (items: {', '.join(names) or 'unnamed'})")
    if isinstance(node, dict):
        if key not in node and create:
            node[key] = {}
        return key, node.get(key)
    raise AblateError(f"override {dotted!r}: cannot descend into {type(node).__name__} at {key!r}")


def set_path(data: dict[str, Any], dotted: str, value: Any) -> tuple[Any, ...]:
    """Set `value` at a dotted path, creating mappings as needed. Returns the concrete path."""
    keys = parse_path(dotted)
    node: Any = data
    concrete: list[Any] = []
    for key in keys[:-1]:
        k, child = _step(node, key, dotted, create=True)
        if child is None:
            node[k] = child = {}
        concrete.append(k)
        node = child
    k, _ = _step(node, keys[-1], dotted, create=True) if isinstance(node, list) else (keys[-1], None)
    if isinstance(node, dict) or isinstance(node, list):
        node[k] = value
    else:
        raise AblateError(f"override {dotted!r}: cannot set a key inside {type(node).__name__}")
    concrete.append(k)
    return tuple(concrete)


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=VALUE`, VALUE parsed as YAML (so `{type: qformer, num_queries: 32}` is a mapping)."""
    if "=" not in text:
        raise AblateError(f"bad override {text!r}: expected PATH=VALUE, e.g. model.connector.depth=3")
    path, raw = text.split("=", 1)
    parse_path(path)  # a bad path is the mistake to name, whatever the value
    if not raw.strip():
        return path.strip(), None
    try:
        value = parse_yaml(raw, f"-s {text}").data
    except RecipeError as exc:
        reason = exc.problems[0].message if exc.problems else str(exc)
        raise AblateError(f"bad override {text!r}: the value is not valid YAML ({reason})") from None
    return path.strip(), value


def apply_overrides(src: Sourced, overrides: list[str] | tuple[str, ...]) -> Sourced:
    data = copy.deepcopy(src.data)
    origins = dict(src.origins)
    for text in overrides:
        path, value = parse_override(text)
        concrete = set_path(data, path, value)
        for k in [k for k in origins if k[: len(concrete)] == concrete]:
            del origins[k]
        record_origin(origins, concrete, f"-s {text}")
    return Sourced(data, origins, src.source)


def record_origin(origins: dict[Path_, str], concrete: Path_, origin: str) -> None:
    """`origin` for an edited path and for each key above it that the edit created, so a problem
    reported at a new key (`unknown key 'x'` for `-s x.y=1`) names the edit, not the file."""
    for n in range(1, len(concrete)):
        origins.setdefault(tuple(concrete[:n]), origin)
    origins[tuple(concrete)] = origin
