"""Cells: one (arm x seed) of a study at one scale, and the recipe it runs.

A cell's recipe is the scale's base recipe, then the scale's `overrides`, then each axis's
arm value and the arm's own edits, then the seed. A null value at a list-item path such as
`stages.align` removes that item (a stage skipped). The recipe's name and run name say which
cell it is; they are cosmetic, so the recipe hash (and the stages it can share with other
runs) depends only on what the cell computes.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, Problem, RecipeError
from ablate.recipe.yaml_source import Sourced, load_with_bases, record_origin, set_path
from ablate.study.schema import MAX_CELLS, MAX_SEEDS, SEED_LIMIT, StudyError, StudyFile, arm_count, arm_name


@dataclass(frozen=True)
class Cell:
    labels: tuple[tuple[str, str], ...]  # ((axis, label), ...) in axis order
    seed: int

    @property
    def arm(self) -> str:
        return arm_name(self.labels)

    @property
    def id(self) -> str:
        """Stable across runs of the study: the Optuna trials and MLflow runs carry it."""
        return f"{self.arm}|seed={self.seed}"

    @property
    def params(self) -> dict[str, Any]:
        """The Optuna parameters of this cell: one categorical per axis, and the seed."""
        return {**dict(self.labels), "seed": self.seed}


def seeds_for(study: StudyFile, scale: str, count: int | None = None) -> list[int]:
    """The scale's seeds; `count` (from --seeds) takes that many, continuing past a short list."""
    section = study.section(scale)
    if count is not None and not 1 <= count <= MAX_SEEDS:
        raise AblateError(f"--seeds must be >= 1 and at most {MAX_SEEDS}, got {count}")
    if isinstance(section.seeds, list):
        seeds = list(section.seeds)
    else:
        start = _base_seed(study, scale)
        seeds = [start + i for i in range(section.seeds)]
    if count is not None:
        while len(seeds) < count:
            seeds.append(max(seeds) + 1)
        seeds = seeds[:count]
    return seeds


def _base_seed(study: StudyFile, scale: str) -> int:
    """The base recipe's seed, the first of a seed count: named when it cannot be counted from."""
    base = base_source(study, scale)
    seed = base.data.get("seed", 42)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        problem = Problem(f"scales.{scale}.seeds", f"counts seeds from the base recipe's seed, which must be an "
                                                   f"integer in [0, 2**32); got {seed!r}", base.where(("seed",)))
        raise StudyError(str(study.path), [problem])
    return seed


def expand_cells(study: StudyFile, scale: str, seeds: list[int]) -> list[Cell]:
    """Every (arm x seed) cell, arms in file order, seeds inner."""
    if (cells := arm_count(study) * len(seeds)) > MAX_CELLS:  # --seeds can pass the file's check
        raise AblateError(f"study {study.name!r}: {arm_count(study):,} arms x {len(seeds):,} seeds are {cells:,} "
                          f"cells; a study runs at most {MAX_CELLS:,}")
    return [Cell(labels, seed) for labels in study.arms() for seed in seeds]


def base_source(study: StudyFile, scale: str) -> Sourced:
    path = study.base_path(scale)
    if not path.is_file():
        where = study.where(("scales", scale, "base"))
        why = f"base recipe {path} is a folder, not a recipe file" if path.is_dir() else f"base recipe not found: {path}"
        raise StudyError(str(study.path), [Problem(f"scales.{scale}.base", why, where)])
    return load_with_bases(path)


def apply_edit(data: dict[str, Any], dotted: str, value: Any) -> tuple:
    """Set `value` at `dotted`; a None value at a list item removes the item. Returns the concrete path."""
    concrete = set_path(data, dotted, copy.deepcopy(value))
    if value is None:
        parent: Any = data
        for key in concrete[:-1]:
            parent = parent[key]
        if isinstance(parent, list):
            del parent[concrete[-1]]
    return concrete


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-").lower() or "arm"


def study_experiment(study: StudyFile, scale: str) -> str:
    """MLflow experiment of the study's parent run and every cell: the base recipe's."""
    data = copy.deepcopy(base_source(study, scale).data)
    for path, value in study.section(scale).overrides.items():
        apply_edit(data, path, value)
    experiment = _experiment(data)
    return study.rehearsal.experiment(experiment) if study.rehearsal is not None else experiment


def cell_source(study: StudyFile, scale: str, cell: Cell, base: Sourced | None = None) -> Sourced:
    """The raw recipe of `cell`, with where each edited key came from."""
    base = base or base_source(study, scale)
    data = copy.deepcopy(base.data)
    origins = dict(base.origins)

    def edit(path: str, value: Any, origin: tuple) -> None:
        try:
            concrete = apply_edit(data, path, value)
        except AblateError as exc:
            problem = Problem(".".join(map(str, origin)), f"arm {cell.arm!r}: {exc}", study.where(origin))
            raise StudyError(str(study.path), [problem]) from None
        prefix = concrete[:-1] if value is None else concrete
        for key in [k for k in origins if k[: len(prefix)] == prefix]:
            del origins[key]
        record_origin(origins, concrete, study.where(origin) or str(study.path))

    for path, value in study.section(scale).overrides.items():
        edit(path, value, ("scales", scale, "overrides", path))
    experiment = _experiment(data)  # arms may not move a cell out of the parent run's experiment
    for axis_index, (_, label) in enumerate(cell.labels):
        axis = study.spec.axes[axis_index]
        arm_index = axis.labels().index(label)
        arm = axis.arm(label)
        has_value, value = arm.value_for(scale)
        if has_value:
            edit(axis.path_for(scale), value, ("axes", axis_index, "arms", arm_index))
        for path, value in arm.edits_for(scale).items():
            edit(path, value, ("axes", axis_index, "arms", arm_index, "set", path))
    data["seed"] = cell.seed
    data["name"] = f"{study.name}-{slug(cell.arm)}-s{cell.seed}"
    tracking = data.get("tracking") or {}
    data["tracking"] = {**tracking, "experiment": experiment, "run_name": f"{study.name} · {cell.arm} · seed {cell.seed}"}
    return Sourced(data, origins, f"{study.path} [{scale}] arm {cell.arm!r} seed {cell.seed}")


def _experiment(data: dict[str, Any]) -> str:
    """Every cell logs into the experiment of the study's parent run (base + scale overrides)."""
    return str((data.get("tracking") or {}).get("experiment") or "ablate")


def cell_recipe(study: StudyFile, scale: str, cell: Cell, base: Sourced | None = None):
    from ablate.recipe.loading import validate_sourced

    recipe = validate_sourced(cell_source(study, scale, cell, base))
    return study.rehearsal.recipe(recipe) if study.rehearsal is not None else recipe


def validate_cells(study: StudyFile, scale: str, cells: list[Cell]) -> dict[str, Any]:
    """{cell id: Recipe} for every cell; StudyError listing every arm whose recipe is invalid."""
    base = base_source(study, scale)
    recipes: dict[str, Any] = {}
    problems: list[Problem] = []
    by_arm: dict[str, Any] = {}
    for cell in cells:
        if cell.arm in by_arm and by_arm[cell.arm] is None:
            continue  # this arm's recipe is already reported as invalid
        try:
            recipes[cell.id] = cell_recipe(study, scale, cell, base)
            by_arm[cell.arm] = recipes[cell.id]
        except RecipeError as exc:
            by_arm[cell.arm] = None
            problems += [Problem(f"[{scale}] arm {cell.arm!r}: {p.path}", p.message, p.location) for p in exc.problems]
        except StudyError as exc:
            by_arm[cell.arm] = None
            problems += exc.problems
    if problems:
        raise StudyError(str(study.path), problems)
    return recipes


# --- checkpoints ----------------------------------------------------------------------------


def missing_checkpoints(recipes) -> list[tuple[str, str, str]]:
    """(component, name, reason) for each encoder/LLM checkpoint this machine cannot load offline.

    Fine: a local folder, a `zoo:` name (built offline on first use), a Hub id already in the
    Hugging Face cache. Anything else would need the Hub.
    """
    seen: dict[tuple[str, str], str | None] = {}
    for recipe in recipes:
        for component in ("encoder", "llm"):
            name = getattr(getattr(recipe.model, component), "name_or_path", None)
            if isinstance(name, str) and (component, name) not in seen:
                seen[(component, name)] = _why_unavailable(name)
    return [(c, n, why) for (c, n), why in seen.items() if why]


def _why_unavailable(name: str) -> str | None:
    from ablate.zoo import ZOO, ZOO_PREFIX

    if name.startswith(ZOO_PREFIX):
        return None if name[len(ZOO_PREFIX):] in ZOO else f"no zoo model of that name (zoo: {', '.join(sorted(ZOO))})"
    local = Path(name).expanduser()
    if local.is_dir():
        return None
    if name.startswith(("/", ".", "~")) or local.exists():
        return "no such folder"
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - a malformed repo id is simply not cached
        cached = None
    return None if isinstance(cached, str) else "not a local folder, not a zoo: name, and not in the Hugging Face cache"


class StudyCheckpointError(AblateError):
    """The study's checkpoints are not on this machine; names them and suggests --scale tiny."""

    def __init__(self, study: str, scale: str, missing: list[tuple[str, str, str]]):
        from ablate.errors import MissingCheckpointError

        self.missing = missing
        lines = [f"study {study!r} at scale {scale!r} needs {len(missing)} checkpoint(s) this machine does not have:"]
        for component, name, reason in missing:
            first = str(MissingCheckpointError(component, name, reason)).splitlines()[0]
            lines.append(f"  - {first}")
        lines += [
            "  This machine may have no access to the Hugging Face Hub. Download the checkpoints elsewhere",
            "  and point the base recipe (or the study's overrides) at the local folders,",
            f"  or run the small version of this study: ablate study {study} --scale tiny",
        ]
        super().__init__("\n".join(lines))
