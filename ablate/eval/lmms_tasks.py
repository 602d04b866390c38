"""lmms-eval task folders on local documents: a task YAML beside the JSON file it reads.

    write_local_task(folder, "gqa", "gqa/gqa.yaml", docs)

writes `folder/gqa/gqa.yaml`, which `include`s lmms-eval's own gqa.yaml (so its prompt,
generation_kwargs, process_results, metrics and aggregation are lmms-eval's) and reads its
documents from `folder/gqa/gqa.json` (the `docs`, in the hub data set's fields, `image` a
file path). The rehearsal kit's stand-ins of the paper's lmms-eval tasks and ablate's tests are
written so; with `include_path: folder` (ablate's harness) they take the real tasks' names.
`write_task` is the writer underneath, also for tasks scored by ablate (`ablate.eval.lmms_eval_task`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import AblateError
from ablate.paths import write_text_whole

SPLIT = "test"
IMAGES_FROM_PATHS = "ablate.eval.lmms_docs.images_from_paths"


class Function(str):
    """A task YAML value written `!function module.name`: lmms-eval imports the function."""


class _TaskDumper(yaml.SafeDumper):
    pass


_TaskDumper.add_representer(Function, lambda dumper, ref: dumper.represent_scalar("!function", str(ref)))


def lmms_tasks_dir() -> Path:
    """The installed lmms-eval's task folder (found without importing lmms-eval)."""
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None or not spec.submodule_search_locations:
        raise AblateError("lmms-eval is not installed: pip install 'ablate[lmms]'")
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


def write_local_task(folder: Path, name: str, base: str, docs: list[dict[str, Any]], *,
                     overrides: dict[str, Any] | None = None, functions: dict[str, str] | None = None) -> Path:
    """Task `name`: lmms-eval's `base` YAML (relative to its task folder) on `docs`. `overrides`
    replace top-level keys; `functions` set keys to `!function <module.function>`. Returns the YAML."""
    base_file = lmms_tasks_dir() / base
    if not base_file.is_file():
        raise AblateError(f"lmms-eval has no task file {base} (looked in {base_file.parent})")
    tagged = {"process_docs": IMAGES_FROM_PATHS, **(functions or {})}
    config = {"include": str(base_file), **(overrides or {}), **{key: Function(fn) for key, fn in tagged.items()}}
    return write_task(folder, name, config, docs)


def write_task(folder: Path, name: str, config: dict[str, Any], docs: list[dict[str, Any]]) -> Path:
    """`folder/name/name.json` (the documents, lmms-eval's test split) and `folder/name/name.yaml`
    (`config` after the keys that read them; `Function` values as `!function`). Returns the YAML."""
    task_dir = folder / name
    task_dir.mkdir(parents=True, exist_ok=True)
    _write(task_dir / f"{name}.json", json.dumps(docs, indent=1))
    head = {"task": name, "dataset_path": "json", "dataset_name": None,
            "dataset_kwargs": {"data_files": {SPLIT: f"{name}.json"}}, "test_split": SPLIT}
    path = task_dir / f"{name}.yaml"
    _write(path, yaml.dump({**head, **config}, Dumper=_TaskDumper, sort_keys=False))
    return path


def _write(path: Path, text: str) -> None:
    """Written whole or not at all: another process may be reading the task (a study's workers)."""
    write_text_whole(path, text)
