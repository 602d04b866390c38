"""One study cell as a process of a launched job: `python -m ablate.study.cell SPEC.json`.

The worker that claimed the cell writes, under `<study folder>/cells/<cell id>/trial-<n>/`:
    recipe.yaml   the cell's resolved recipe
    spec.json     a `CellSpec`: the recipe file and its hash, tags, parent run, tracking URI
and launches this module on every rank. Each rank runs the recipe (`run_recipe`, which joins
the process group and lets rank 0 alone write files and MLflow); rank 0 then writes
    result.json   a `CellResult`: the nested run's id, eval metrics and cost figures
and the first rank to fail writes `error.json` (its error and traceback). The worker reads
them to record the Optuna trial; the cell's processes never touch the queue.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.paths import write_text_whole
from ablate.threads import apply_threads

DEFAULT_RUN_FN = "ablate.run.runner:run_recipe"


def import_run_fn(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    if not attr:
        raise AblateError(f"run function {ref!r}: expected 'module:function'")
    fn: Any = importlib.import_module(module)
    for part in attr.split("."):
        fn = getattr(fn, part)
    return fn


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_whole(path, json.dumps(data, indent=2))  # readers never see half a file


@dataclass
class CellSpec:
    """Everything a cell process needs, as JSON."""

    recipe_file: str
    recipe_hash: str
    tracking_uri: str
    parent_run_id: str
    tags: dict[str, str]
    result_file: str
    error_file: str
    recipe_path: str | None = None  # the study's base recipe: relative paths and git tags resolve from it
    run_fn: str = DEFAULT_RUN_FN
    run_kwargs: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        _write_json(path, asdict(self))
        return path

    @classmethod
    def load(cls, path: str | Path) -> CellSpec:
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class CellResult:
    """What the study records of a finished cell run (from a RunResult, or read back from result.json)."""

    run_id: str | None
    tracking_uri: str
    seconds: float
    eval_metrics: dict[str, float]
    stages: int = 0
    stages_reused: int = 0
    feature_cache: dict[str, int] = field(default_factory=dict)
    visual_tokens: int = 0
    parameter_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # per stage: its steps and final training loss (trained here or reused from the stage store)
    stage_figures: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_run(cls, result) -> CellResult:
        return cls(
            run_id=result.run_id, tracking_uri=result.tracking_uri, seconds=float(result.seconds or 0.0),
            eval_metrics={k: float(v) for k, v in (result.eval_metrics or {}).items()},
            stages=len(result.stages), stages_reused=sum(s.reused_from is not None for s in result.stages),
            feature_cache=dict(result.feature_cache or {}), visual_tokens=int(result.visual_tokens),
            parameter_counts=dict(result.parameter_counts or {}),
            stage_figures={s.name: _stage_figures(s) for s in result.stages},
        )

    def save(self, path: Path) -> None:
        _write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Path) -> CellResult:
        return cls(**json.loads(path.read_text()))


def _stage_figures(stage) -> dict[str, float]:
    figures = {"steps": float(stage.steps)}
    if "final_loss" in (stage.metrics or {}):
        figures["final_loss"] = float(stage.metrics["final_loss"])
    return figures


def write_cell(folder: Path, recipe, spec_fields: dict[str, Any]) -> tuple[Path, CellSpec]:
    """recipe.yaml and spec.json in `folder` (one attempt of one cell); (spec path, spec)."""
    import yaml

    from ablate.recipe.loading import recipe_hash

    folder.mkdir(parents=True, exist_ok=True)
    recipe_file = folder / "recipe.yaml"
    recipe_file.write_text(yaml.safe_dump(recipe.resolved(), sort_keys=False))
    spec = CellSpec(recipe_file=str(recipe_file.resolve()), recipe_hash=recipe_hash(recipe),
                    result_file=str((folder / "result.json").resolve()),
                    error_file=str((folder / "error.json").resolve()), **spec_fields)
    return spec.save(folder / "spec.json"), spec


def load_cell_recipe(spec: CellSpec):
    """The recipe the worker wrote, checked against the hash it meant."""
    import yaml

    from ablate.recipe.loading import recipe_from_dict, recipe_hash

    recipe = recipe_from_dict(yaml.safe_load(Path(spec.recipe_file).read_text()), source=spec.recipe_file)
    if recipe_hash(recipe) != spec.recipe_hash:
        raise AblateError(f"{spec.recipe_file}: recipe hash {recipe_hash(recipe)} is not the {spec.recipe_hash} "
                          "the study worker wrote; was the file edited?")
    return recipe


def run_cell(spec: CellSpec) -> None:
    from ablate.ranks import leave_process_group, ranks

    recipe = load_cell_recipe(spec)
    main_process = ranks().is_main_process
    progress = _progress() if main_process else None
    with progress if progress is not None else contextlib.nullcontext():
        result = import_run_fn(spec.run_fn)(
            recipe, recipe_path=spec.recipe_path, tracking_uri=spec.tracking_uri, parent_run_id=spec.parent_run_id,
            tags=spec.tags, progress=progress, **spec.run_kwargs,
        )
    if main_process:
        CellResult.from_run(result).save(Path(spec.result_file))
    leave_process_group()


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def record_error(spec: CellSpec, exc: BaseException) -> None:
    """error.json, written by the first rank that fails (later ranks mostly fail because of it)."""
    from ablate.ranks import ranks

    try:
        rank = ranks().process_index
    except Exception:  # noqa: BLE001 - the process group itself may be what failed
        rank = None
    data = {"error": f"{type(exc).__name__}: {exc}"[:4000], "rank": rank,
            "traceback": None if isinstance(exc, AblateError) else traceback.format_exc()[-8000:]}
    try:
        with open(spec.error_file, "x") as fh:
            json.dump(data, fh, indent=2)
    except FileExistsError:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ablate.study.cell SPEC.json", file=sys.stderr)
        return 2
    spec = CellSpec.load(argv[0])
    try:
        print(apply_threads().line(), flush=True)
        run_cell(spec)
    except AblateError as exc:
        record_error(spec, exc)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - recorded for the worker, and shown in the job's log
        record_error(spec, exc)
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
