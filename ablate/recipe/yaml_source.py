"""YAML loading that remembers where each key came from (file:line).

`base: other.yaml` inherits from another recipe by deep merge; `-s path=value`
overrides are applied on top and remembered as their own source.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import AblateError, Problem, RecipeError

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


def _node_origins(node: yaml.Node, filename: str, prefix: Path_ = ()) -> dict[Path_, str]:
    out: dict[Path_, str] = {prefix: f"{filename}:{node.start_mark.line + 1}"}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node)) if not isinstance(key_node, yaml.ScalarNode) else key_node.value
            out[prefix + (key,)] = f"{filename}:{key_node.start_mark.line + 1}"
            for sub, where in _node_origins(value_node, filename, prefix + (key,)).items():
                if sub != prefix + (key,):
                    out[sub] = where
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(_node_origins(item, filename, prefix + (i,)))
    return out


def load_yaml_file(path: str | Path) -> Sourced:
    path = Path(path)
    if not path.is_file():
        raise AblateError(f"recipe not found: {path}")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecipeError(str(path), [Problem("", f"invalid YAML: {getattr(exc, 'problem', exc)}", loc)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(str(path), [Problem("", "a recipe must be a mapping at the top level", f"{path}:1")])
    origins = _node_origins(node, str(path)) if node is not None else {}
    return Sourced(data, origins, str(path))


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
    """Load a recipe file, resolving its `base:` chain (relative to the file)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise AblateError(f"recipe base cycle: {chain}")
    here = load_yaml_file(path)
    base_ref = here.data.pop("base", None)
    if base_ref is None:
        return here
    if not isinstance(base_ref, str):
        raise RecipeError(str(path), [Problem("base", "must be a path to another recipe", here.where(("base",)))])
    base_path = (path.parent / base_ref).resolve()
    if not base_path.is_file():
        raise RecipeError(str(path), [Problem("base", f"base recipe not found: {base_path}", here.where(("base",)))])
    parent = load_with_bases(base_path, (*_seen, path))
    merged = deep_merge(parent.data, here.data)
    origins = dict(parent.origins)
    origins.update({k: v for k, v in here.origins.items() if k != ("base",)})
    return Sourced(merged, origins, str(path))


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


def resolve_path(data: dict[str, Any], dotted: str) -> tuple[Any, ...]:
    """Concrete key path (list names turned into indices) for a dotted path."""
    node: Any = data
    out: list[Any] = []
    for key in parse_path(dotted):
        k, node = _step(node, key, dotted, create=False)
        out.append(k)
    return tuple(out)


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
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise AblateError(f"bad override {text!r}: value is not valid YAML ({exc})") from None
    return path.strip(), value


def apply_overrides(src: Sourced, overrides: list[str] | tuple[str, ...]) -> Sourced:
    data = copy.deepcopy(src.data)
    origins = dict(src.origins)
    for text in overrides:
        path, value = parse_override(text)
        concrete = set_path(data, path, value)
        for k in [k for k in origins if k[: len(concrete)] == concrete]:
            del origins[k]
        origins[concrete] = f"-s {text}"
    return Sourced(data, origins, src.source)
