"""The files and folders a recipe names, checked to exist before a study trains (no data is read).

Data blocks are walked through the registries' config models. Their fields declare no path type,
so a string field whose description speaks of a path, a file or a folder names one (every
built-in source's and mixture's does, plugins' are read the same way); the first of "file" or
"folder" in the description says which it must be. Relative paths are read from the working
directory, as the data sources read them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from ablate.errors import AblateError

Found = list[tuple[tuple, str]]  # (YAML path in the recipe, what is wrong there)
_PATH_WORDS = re.compile(r"\b(path|file|folder|directory)\b")
_KINDS = {"file": "file", "folder": "folder", "directory": "folder"}


def named_file_problems(recipe, base_dir: Path | None) -> Found:
    """Every data file, image root and DeepSpeed config of `recipe` that is not there."""
    from ablate.train.stage import deepspeed_config

    problems: Found = []
    for index, stage in enumerate(recipe.stages):
        problems += data_block_problems(stage.data.model_dump(mode="json"), ("stages", index, "data"))
        if stage.deepspeed is not None:
            try:
                deepspeed_config(stage, base_dir)
            except AblateError as error:
                problems.append((("stages", index, "deepspeed"), str(error).split(": ", 1)[-1]))
    if recipe.eval is not None and recipe.eval.harness == "ablate":
        problems += data_block_problems(recipe.eval.data.model_dump(mode="json"), ("eval", "data"))
    if recipe.eval is not None and recipe.eval.harness == "lmms_eval":
        problems += [(("eval", "include_path", n), problem) for n, folder in enumerate(recipe.eval.include_path or [])
                     if (problem := path_problem(folder, "folder")) is not None]
    return problems


def data_block_problems(block: Any, at: tuple) -> Found:
    return [(path, problem) for path, value, kind in named_paths(block, at)
            if (problem := path_problem(value, kind)) is not None]


def named_paths(block: Any, at: tuple) -> Iterator[tuple[tuple, str, str | None]]:
    """(YAML path, the path named there, "file" | "folder" | None) for each path in a dumped data block."""
    if isinstance(block, list):
        for index, item in enumerate(block):
            yield from named_paths(item, at + (index,))
        return
    if not isinstance(block, dict):
        return
    fields = _config_fields(block.get("type"))
    for key, value in block.items():
        kind = _path_kind(fields[key].description) if key in fields and isinstance(value, str) else False
        if kind is not False:
            yield at + (key,), value, kind
        elif isinstance(value, (dict, list)):
            yield from named_paths(value, at + (key,))


def path_problem(value: str, kind: str | None) -> str | None:
    path = Path(value).expanduser()
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative to the working directory {Path.cwd()})"
        return f"{value!r} does not exist{where}"
    if kind == "folder" and not path.is_dir():
        return f"{value!r} is a file, not a folder"
    if kind == "file" and path.is_dir():
        return f"{value!r} is a folder, not a file"
    return None


def _config_fields(type_name: Any) -> dict[str, Any]:
    """The config fields of the data source or mixture registered as `type_name` ({} if none)."""
    from ablate.registry import registries

    regs = registries()
    for registry in (regs.data_source, regs.mixture):
        if isinstance(type_name, str) and type_name in registry:
            return registry.get(type_name).config.model_fields
    return {}


def _path_kind(description: str | None) -> str | None | bool:
    """False: not a path field; otherwise the kind its description names first (None: either)."""
    words = _PATH_WORDS.findall((description or "").lower())
    if not words:
        return False
    return next((_KINDS[w] for w in words if w in _KINDS), None)
