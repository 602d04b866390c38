"""Read one user YAML file (a recipe, a study, an override value) without trusting it.

PyYAML composes a node graph in which an alias is the *same* node object as its anchor, so
composing and constructing are cheap even for an alias bomb ("billion laughs"); only walking
the graph as a tree expands it. Before anything walks it, the graph is measured with one
memoised pass: its expanded size and depth are capped, recursive aliases and duplicate keys
are rejected, each with file:line. Then the line map (key path -> file:line) is built from the
measured, bounded tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import AblateError, Problem, ProblemsError, RecipeError

# A real recipe has a few hundred nodes; these only stop hostile or broken input.
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_BYTES = 10 * 2**20  # PyYAML parses ~1 MB/s: a bigger file is a mistake, not a recipe

MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"


class YamlShapeError(Exception):
    """The node graph is too big, too deep, recursive or has a repeated key."""

    def __init__(self, message: str, node: yaml.Node, path: tuple = ()):
        super().__init__(message)
        self.node, self.path = node, path


@dataclass
class ParsedYaml:
    data: Any
    origins: dict[tuple, str]


def read_user_text(path: Path, what: str = "recipe", error: type[ProblemsError] = RecipeError) -> str:
    """The file's text as UTF-8 (a BOM is allowed); one clear AblateError otherwise."""
    if path.is_dir():
        raise AblateError(f"{what} {path} is a folder, not a YAML file")
    if not path.is_file():
        raise AblateError(f"{what} not found: {path}")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise AblateError(f"{what} {path} is {path.stat().st_size:,} bytes; a YAML {what} is at most "
                              f"{MAX_BYTES:,} (is this the right file?)")
        raw = path.read_bytes()
    except OSError as exc:
        raise AblateError(f"{what} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(str(path), [Problem("", f"not UTF-8 text (byte {exc.start}: {exc.reason}); "
                                              "save the file as UTF-8", f"{path}:{line}")]) from None


def parse_yaml(text: str, source: str, error: type[ProblemsError] = RecipeError) -> ParsedYaml:
    """Parse `text` (from `source`, a file name or "-s ..."); `error` (a RecipeError, a
    StudyError...) listing the problem otherwise."""
    try:
        node, data = _compose_and_construct(text)
    except yaml.reader.ReaderError as exc:  # a control character: no mark, only a position
        line = text[: exc.position].count("\n") + 1
        raise error(source, [Problem("", f"invalid YAML: character {chr(exc.character)!r} is not allowed "
                                           "in YAML text", f"{source}:{line}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = "; ".join(filter(None, (getattr(exc, "context", None), getattr(exc, "problem", None)))) or str(exc)
        raise error(source, [Problem("", f"invalid YAML: {problem}", _at(source, mark))]) from None
    except YamlShapeError as exc:
        where = ".".join(str(k) for k in exc.path)
        raise error(source, [Problem(where, str(exc), _at(source, exc.node.start_mark))]) from None
    except RecursionError:
        raise error(source, [Problem("", f"nested deeper than {MAX_DEPTH} levels", source)]) from None
    return ParsedYaml(data, node_origins(node, source) if node is not None else {})


def _compose_and_construct(text: str) -> tuple[yaml.Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        measure(node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _at(source: str, mark: Any) -> str:
    return f"{source}:{mark.line + 1}" if mark is not None else source


def measure(root: yaml.Node) -> int:
    """Expanded node count of the graph (aliases counted each time they are used).

    Memoised per node object, so shared (aliased) subtrees are measured once: linear in the
    size of the file however large the expansion. Raises YamlShapeError past the limits.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
    active: set[int] = set()

    def visit(node: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlShapeError("a recursive alias (an anchor used inside itself)", node)
        active.add(key)
        size, depth = 1, 0
        for child in _children(node):
            child_size, child_depth = visit(child)
            size, depth = size + child_size, max(depth, child_depth + 1)
            if size > MAX_NODES:
                raise YamlShapeError(f"expands to more than {MAX_NODES:,} values (an alias bomb?)", node)
        if depth > MAX_DEPTH:
            raise YamlShapeError(f"nested deeper than {MAX_DEPTH} levels", node)
        active.discard(key)
        sizes[key] = (size, depth)
        return sizes[key]

    size = visit(root)[0]
    _check_duplicates_everywhere(root)
    return size


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_duplicates_everywhere(root: yaml.Node) -> None:
    """Every mapping (each node object once) must not repeat an explicit key."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node, path)
            stack.extend((value, (*path, _key_value(key))) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))


def _check_duplicates(node: yaml.MappingNode, path: tuple) -> None:
    first: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
            continue  # `<<: *base` merges are meant to be overridden by explicit keys
        key = (key_node.tag, key_node.value)
        if key in first:
            line = first[key].start_mark.line + 1
            raise YamlShapeError(f"duplicate key {key_node.value!r} (first given on line {line})", key_node,
                                 (*path, key_node.value))
        first[key] = key_node


def node_origins(node: yaml.Node, filename: str, prefix: tuple = ()) -> dict[tuple, str]:
    """key path -> "file:line" for every key and list item (the graph is already measured)."""
    out: dict[tuple, str] = {prefix: f"{filename}:{node.start_mark.line + 1}"}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _key_value(key_node)
            out.update(node_origins(value_node, filename, prefix + (key,)))
            out[prefix + (key,)] = f"{filename}:{key_node.start_mark.line + 1}"
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.update(node_origins(item, filename, prefix + (i,)))
    return out


def _key_value(key_node: yaml.Node) -> Any:
    if isinstance(key_node, yaml.ScalarNode) and key_node.tag in (STR_TAG, MERGE_TAG):
        return key_node.value
    return yaml.safe_load(yaml.serialize(key_node))  # 1: or true: keys are not strings in the data
