"""The study file: a pydantic model, unknown keys rejected, every problem reported with its path.

    description: Does the CLIP layer matter?
    scales:                         # one section per scale; `paper` and/or `tiny`
      paper:
        base: ../recipes/llava_v1_13b_scienceqa.yaml    # relative to this file
        seeds: 1                    # a count (base recipe seed, +1, ...) or a list
        benchmark: ScienceQA        # what our eval measures (default: the eval data source's type)
      tiny:
        base: ../recipes/tiny_scienceqa.yaml
        seeds: 3
        overrides: {eval.each_epoch: true}              # recipe paths -> values, this scale only
        note: shown in the report for this scale
    direction: maximize
    axes:
      - name: feature_layer
        path: model.encoder.feature_layer               # or {paper: ..., tiny: ...}
        arms:
          - {label: penultimate, value: -2}             # the same value at every scale
          - {label: last, value: -1}
          - label: 13B                                  # a value per scale
            per_scale: {paper: lmsys/vicuna-13b-v1.3, tiny: "zoo:tiny-llama-large"}
          - label: no alignment
            value: null                                 # at a list-item path: remove that stage
            set: {eval.template: vicuna_v1}             # more edits for this arm, every scale
            scale_set: {tiny: {eval.limit: 100}}        # more edits for this arm, one scale
    baseline: penultimate           # an arm label; with several axes {axis: label, ...}
    paper:
      - source: LLaVA (Liu et al., NeurIPS 2023), Table 8
        benchmark: ScienceQA        # judged only against our metric on the same benchmark
        measure: test accuracy (%)
        values: {penultimate: 90.92, last: 89.96}
    report: {epoch_curves: false, model_columns: [connector]}
    diagnostics:                    # measurements that explain the verdict (ablate.study.diagnostics)
      - {type: layer_probe, question: does the last layer keep less shape than the penultimate?}
    slurm: {partition: gpu, nodes: 4, gpus_per_node: 8, time_limit: "2-00:00:00"}   # for --launcher slurm

An arm with neither `value` nor `per_scale` keeps the base recipe's value at the axis path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from ablate.config_model import StrictModel, repeated
from ablate.errors import AblateError, Problem, ProblemsError, closest
from ablate.recipe.component import Component
from ablate.recipe.loading import pydantic_problems
from ablate.recipe.schema import SAFE_NAME
from ablate.study.diagnostics.registry import diagnostics as diagnostic_registry
from ablate.study.slurm import SlurmOptions

Scale = Literal["paper", "tiny", "small"]
SCALES: tuple[str, ...] = ("paper", "tiny", "small")
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.,%+()-]*$"
SEED_LIMIT = 2**32  # numpy and torch take seeds in [0, 2**32)
# Past these a study is a typo, not a plan: listing its cells alone would run for hours.
MAX_SEEDS = 1000
MAX_CELLS = 10_000
# Combined arm name when a study has several axes: labels joined in axis order.
ARM_JOIN = " / "


class Strict(StrictModel):
    """Study files reject what recipes reject (unknown keys, non-finite numbers, bools for numbers)."""


PerScaleStr = Union[str, dict[Scale, str]]


def for_scale(value: Any, scale: str) -> Any:
    """`value` itself, or its entry for `scale` when it is a {paper: ..., tiny: ...} mapping."""
    return value.get(scale) if isinstance(value, dict) else value


class Arm(Strict):
    label: str = Field(pattern=LABEL_PATTERN, description="readable arm name used in reports and tags")
    value: Any = Field(None, description="value at the axis path, the same at every scale (null removes a list item)")
    per_scale: dict[Scale, Any] | None = Field(None, description="value at the axis path for each scale")
    set: dict[str, Any] = Field({}, description="more recipe edits for this arm, every scale: path -> value")
    scale_set: dict[Scale, dict[str, Any]] = Field({}, description="more recipe edits for this arm, per scale")
    description: str = ""

    @model_validator(mode="after")
    def _one_value_form(self) -> "Arm":
        if "value" in self.model_fields_set and self.per_scale is not None:
            raise ValueError("give either `value` (every scale) or `per_scale`, not both")
        return self

    def value_for(self, scale: str) -> tuple[bool, Any]:
        """(whether this arm sets the axis path at `scale`, the value)."""
        if self.per_scale is not None:
            return scale in self.per_scale, self.per_scale.get(scale)
        return "value" in self.model_fields_set, self.value

    def edits_for(self, scale: str) -> dict[str, Any]:
        return {**self.set, **self.scale_set.get(scale, {})}


class Axis(Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Optuna parameter name of this axis")
    path: PerScaleStr = Field(description="recipe path the arms set, e.g. model.connector; or one per scale")
    arms: list[Arm] = Field(min_length=1)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _not_seed(cls, name: str) -> str:
        if name == "seed":
            raise ValueError("'seed' is reserved for the seed parameter")
        return name

    @model_validator(mode="after")
    def _unique_labels(self) -> "Axis":
        if dupes := repeated(a.label for a in self.arms):
            raise ValueError(f"arm labels must be unique within an axis; repeated: {', '.join(dupes)}")
        return self

    def path_for(self, scale: str) -> str | None:
        return for_scale(self.path, scale)

    def labels(self) -> list[str]:
        return [a.label for a in self.arms]

    def arm(self, label: str) -> Arm:
        return next(a for a in self.arms if a.label == label)


class MetricSpec(Strict):
    name: str = Field(description="name in the report; the evaluator's metric name, e.g. accuracy")
    key: str | None = Field(None, description="MLflow metric key (default eval/<name>, or eval/accuracy/<category>)")
    category: str | None = Field(
        None, description="only eval items of this category (record meta's category or data_type)",
    )
    items: bool = Field(
        True, description="the metric is the mean of the items' `correct` field, so the predictions "
        "give a bootstrap CI; false for scores that are not (e.g. a judge's relative score)",
    )
    item_scale: float | None = Field(
        None, gt=0, description="metric units per unit of mean `correct`: 1 for a fraction, 100 for a "
        "percentage (default: inferred from the logged metric and the predictions)",
    )
    benchmark: str | None = Field(
        None, description="the benchmark this metric measures (default: the scale's benchmark)",
    )
    description: str = ""

    def mlflow_key(self) -> str:
        if self.key:
            return self.key
        return f"eval/accuracy/{self.category}" if self.category else f"eval/{self.name}"


class ScaleSection(Strict):
    base: str = Field(description="base recipe, relative to the study file")
    seeds: Union[int, list[int]] = Field(
        1, description="a count (seeds base.seed, base.seed+1, ...) or an explicit list",
    )
    objective: str = Field("accuracy", description="metric the Optuna trials report (a name in `metrics`)")
    metrics: list[Union[MetricSpec, str]] = Field(
        [], description="metrics the report tabulates (the objective is always included)",
    )
    overrides: dict[str, Any] = Field({}, description="recipe edits at this scale: path -> value")
    note: str = Field("", description="printed with this scale's report, e.g. how its metric differs")
    benchmark: str | None = Field(
        None, description="the benchmark this scale's eval measures, e.g. GQA (default: the eval data "
        "source's type, e.g. easy_vqa or scienceqa); paper values on another benchmark are not judged",
    )

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds_are_integers(cls, seeds: Any) -> Any:
        # pydantic would take YAML's `yes` as 1 and "3" as 3
        items = seeds if isinstance(seeds, list) else [seeds]
        if any(isinstance(s, bool) for s in items):
            raise ValueError(f"seeds must be a count or a list of integers, not a boolean (got {seeds!r})")
        if isinstance(seeds, str):
            raise ValueError(f"seeds must be a count or a list of integers (got {seeds!r})")
        return seeds

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int) and seeds < 1:
            raise ValueError("seeds must be >= 1")
        if isinstance(seeds, list) and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        count = seeds if isinstance(seeds, int) else len(seeds)
        if count > MAX_SEEDS:
            raise ValueError(f"seeds must be at most {MAX_SEEDS} per arm (got {count})")
        if isinstance(seeds, list) and (bad := [s for s in seeds if not 0 <= s < SEED_LIMIT]):
            raise ValueError(f"each seed must be an integer in [0, 2**32) (got {bad[0]})")
        return seeds

    def metric_specs(self) -> list[MetricSpec]:
        specs = [MetricSpec(name=m) if isinstance(m, str) else m for m in self.metrics]
        if self.objective not in {s.name for s in specs}:
            specs.insert(0, MetricSpec(name=self.objective))
        return specs

    def metric(self, name: str) -> MetricSpec:
        return next(s for s in self.metric_specs() if s.name == name)


class PaperResult(Strict):
    source: str = Field(description="paper and table, e.g. 'LLaVA (Liu et al., NeurIPS 2023), Table 8'")
    benchmark: str = Field(
        pattern=r"[A-Za-z0-9]", description="the benchmark the paper measured, e.g. GQA, MME, ScienceQA: the "
        "value is judged only against our metric on the same benchmark (case and punctuation aside)",
    )
    measure: str = Field("", description="what the paper reports on it, with its unit, e.g. 'test accuracy (%)'")
    metric: PerScaleStr | None = Field(None, description="our metric it is compared with (default: the objective)")
    values: dict[str, float] = Field(min_length=1, description="arm -> the paper's number")

    def metric_for(self, scale: str, section: ScaleSection) -> str:
        return for_scale(self.metric, scale) or section.objective

    def title(self) -> str:
        return f"{self.benchmark} {self.measure}".strip()


class ReportOptions(Strict):
    epoch_curves: bool = Field(False, description="plot metrics per epoch (needs eval.each_epoch in the recipe)")
    epoch_claim: str = Field("", description="the paper's claim about convergence, quoted beside the curves")
    plateau_tolerance: float = Field(0.01, ge=0, description="an arm plateaus at the first epoch within this of its best")
    model_columns: list[Literal["encoder", "connector", "llm"]] = Field(
        [], description="show visual tokens and these components' parameter counts beside each arm",
    )
    bootstrap_samples: int = Field(2000, ge=100, le=1_000_000,
                                   description="resamples per CI; each one costs a pass over the items")
    bootstrap_seed: int = 0


DiagnosticBlock = Component("diagnostic", diagnostic_registry)  # {type: <registered diagnostic>, ...config}


class Study(Strict):
    description: str
    scales: dict[Scale, ScaleSection] = Field(min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    axes: list[Axis] = Field(min_length=1)
    baseline: Union[str, dict[str, str]]
    paper: list[PaperResult] = []
    report: ReportOptions = ReportOptions()
    slurm: SlurmOptions | None = Field(None, description="each cell's SLURM job with --launcher slurm (CLI flags win)")
    diagnostics: list[DiagnosticBlock] = Field(
        [], description="measurements that explain the verdict, run after the cells and printed under it: "
        "{type: plateau | stage_length | layer_probe, ...}")


# --- the loaded file ------------------------------------------------------------------------


@dataclass
class StudyFile:
    name: str
    path: Path
    spec: Study
    origins: dict[tuple, str] = field(default_factory=dict)
    # With a Rehearsal (ablate.study.rehearsal), every cell recipe is its rehearsal on the kit
    # and the study files its results under its own label (`scale_label`).
    rehearsal: Any = None

    @property
    def scales(self) -> list[str]:
        return [s for s in SCALES if s in self.spec.scales]

    def section(self, scale: str) -> ScaleSection:
        if scale not in self.spec.scales:
            raise AblateError(
                f"study {self.name!r} has no {scale!r} scale; it defines: {', '.join(self.scales)}"
            )
        return self.spec.scales[scale]

    def scale_label(self, scale: str) -> str:
        """The scale as the study's folder, Optuna study and tags name it: `paper`, or
        `paper-rehearsal` for a rehearsal, whose results never mix with the real ones."""
        return self.rehearsal.label(scale) if self.rehearsal is not None else scale

    def base_path(self, scale: str) -> Path:
        return (self.path.parent / self.section(scale).base).resolve()

    def arms(self) -> list[tuple[tuple[str, str], ...]]:
        """Every combination of arm labels, as ((axis, label), ...) in axis order."""
        combos: list[tuple[tuple[str, str], ...]] = [()]
        for axis in self.spec.axes:
            combos = [c + ((axis.name, label),) for c in combos for label in axis.labels()]
        return combos

    def arm_names(self) -> list[str]:
        return [arm_name(c) for c in self.arms()]

    def baseline_arm(self) -> str:
        base = self.spec.baseline
        if isinstance(base, str):
            return base
        return ARM_JOIN.join(base[a.name] for a in self.spec.axes)

    def where(self, path: tuple) -> str | None:
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in self.origins:
                return self.origins[tuple(path[:n])]
        return None


def arm_name(labels: tuple[tuple[str, str], ...]) -> str:
    return ARM_JOIN.join(label for _, label in labels)


class StudyError(ProblemsError):
    """Every problem found in a study file, reported together."""

    what = "study"


def load_study(path: str | Path) -> StudyFile:
    """Read and validate a study file; StudyError lists every problem with its path and line."""
    from ablate.recipe.yaml_source import load_yaml_file

    path = Path(path)
    if not path.is_file():
        raise AblateError(f"study file {path} is a folder" if path.is_dir() else f"study file not found: {path}")
    if not re.match(SAFE_NAME, path.stem):
        # the stem names every cell's run and folder: say so here, not at the base recipe's `name`
        raise StudyError(str(path), [Problem("", f"the file name {path.stem!r} names the study's runs and folders: "
                                                 "use letters, digits, '_', '.' and '-', not starting with '.' or "
                                                 "'-' (rename the file)", f"{path}:1")])
    src = load_yaml_file(path, "study", StudyError)
    try:
        spec = Study.model_validate(src.data)
    except ValidationError as exc:
        raise StudyError(str(path), pydantic_problems(exc.errors(), src, Study)) from None
    study = StudyFile(path.stem, path.resolve(), spec, src.origins)
    problems = cross_check(study)
    if problems:
        raise StudyError(str(path), problems)
    return study


def cross_check(study: StudyFile) -> list[Problem]:
    """Checks that span fields: baseline and paper arms exist, per-scale mappings are complete."""
    spec, problems = study.spec, []

    def add(path: tuple, message: str) -> None:
        problems.append(Problem(".".join(str(p) for p in path), message, study.where(path)))

    if size_problems := _size_problems(study):
        return size_problems  # the other checks would list every arm
    names = [a.name for a in spec.axes]
    for dupe in sorted({n for n in names if names.count(n) > 1}):
        add(("axes",), f"axis names must be unique; repeated: {dupe}")
    scales = study.scales
    for i, axis in enumerate(spec.axes):
        if isinstance(axis.path, dict) and (missing := [s for s in scales if s not in axis.path]):
            add(("axes", i, "path"), f"no path for scale {', '.join(missing)} (the study defines {', '.join(scales)})")
        for j, arm in enumerate(axis.arms):
            if arm.per_scale is not None and (missing := [s for s in scales if s not in arm.per_scale]):
                add(("axes", i, "arms", j, "per_scale"), f"no value for scale {', '.join(missing)}")
    arms = study.arm_names()
    base = spec.baseline
    if isinstance(base, dict):
        for axis in spec.axes:
            if axis.name not in base:
                add(("baseline",), f"no baseline label for axis {axis.name!r}")
            elif base[axis.name] not in axis.labels():
                add(("baseline", axis.name), _unknown("arm", base[axis.name], axis.labels()))
        for extra in sorted(set(base) - set(names)):
            add(("baseline", extra), _unknown("axis", extra, names))
    elif len(spec.axes) > 1:
        add(("baseline",), "with several axes give the baseline as {axis: label, ...}")
    elif base not in arms:
        add(("baseline",), _unknown("arm", base, arms))
    for scale in scales:
        section = spec.scales[scale]
        metric_names = [m.name for m in section.metric_specs()]
        dupes = sorted({n for n in metric_names if metric_names.count(n) > 1})
        if dupes:
            add(("scales", scale, "metrics"), f"metric names must be unique; repeated: {', '.join(dupes)}")
        for i, ref in enumerate(spec.paper):
            metric = ref.metric_for(scale, section)
            if metric not in metric_names:
                add(("paper", i, "metric"), f"scale {scale}: {_unknown('metric', metric, metric_names)}")
    problems += _diagnostic_problems(study, arms) + _reserved_edit_problems(study)
    for i, ref in enumerate(spec.paper):
        for arm in ref.values:
            if arm not in arms:
                add(("paper", i, "values", arm), _unknown("arm", arm, arms))
        if isinstance(ref.metric, dict) and (missing := [s for s in scales if s not in ref.metric]):
            add(("paper", i, "metric"), f"no metric for scale {', '.join(missing)}")
    return problems


# Recipe paths the study sets itself for every cell (cells.cell_source), so an edit there would
# be dropped without a word.
RESERVED = {
    "seed": "the study sets each cell's seed from scales.<scale>.seeds",
    "name": "the study names each cell's run",
    "tracking.run_name": "the study names each cell's run",
}
ARM_RESERVED = {**RESERVED, "tracking.experiment": "every cell logs into the study's experiment "
                                                   "(set it in scales.<scale>.overrides)"}


def _reserved_edit_problems(study: StudyFile) -> list[Problem]:
    """Edits (scale overrides, axis paths, arm `set`s) of a path the study overwrites per cell."""
    edits: list[tuple[tuple, str, dict[str, str]]] = []
    for scale, section in study.spec.scales.items():
        edits += [(("scales", scale, "overrides", p), p, RESERVED) for p in section.overrides]
    for i, axis in enumerate(study.spec.axes):
        paths = axis.path if isinstance(axis.path, dict) else {"": axis.path}
        edits += [(("axes", i, "path"), p, ARM_RESERVED) for p in paths.values()]
        for j, arm in enumerate(axis.arms):
            edits += [(("axes", i, "arms", j, "set", p), p, ARM_RESERVED) for p in arm.set]
            edits += [(("axes", i, "arms", j, "scale_set", sc, p), p, ARM_RESERVED)
                      for sc, paths in arm.scale_set.items() for p in paths]
    problems = []
    for where, path, reserved in edits:
        for prefix, why in reserved.items():
            if path.strip() == prefix or path.strip().startswith(prefix + "."):
                problems.append(Problem(".".join(map(str, where)), f"cannot set {path!r}: {why}", study.where(where)))
    return problems


def arm_count(study: StudyFile) -> int:
    """How many arms the axes make (every combination of their labels), without listing them."""
    return math.prod(len(axis.arms) for axis in study.spec.axes)


def _size_problems(study: StudyFile) -> list[Problem]:
    """A study whose cells number past MAX_CELLS: named before anything lists them."""
    arms = arm_count(study)
    if arms > MAX_CELLS:
        return [Problem("axes", f"the axes make {arms:,} arms (every combination of their arms); "
                                f"a study runs at most {MAX_CELLS:,} cells", study.where(("axes",)))]
    problems = []
    for scale in study.scales:
        seeds = study.spec.scales[scale].seeds
        count = seeds if isinstance(seeds, int) else len(seeds)
        if arms * count > MAX_CELLS:
            path = ("scales", scale, "seeds")
            problems.append(Problem(".".join(path), f"{arms:,} arms x {count:,} seeds are {arms * count:,} cells; "
                                                    f"a study runs at most {MAX_CELLS:,}", study.where(path)))
    return problems


def _diagnostic_problems(study: StudyFile, arms: list[str]) -> list[Problem]:
    """Each diagnostic type once (the report names them by type); arms they name exist."""
    problems, seen = [], set()
    for i, config in enumerate(study.spec.diagnostics):
        path = ("diagnostics", i)
        if config.type in seen:
            problems.append(Problem(f"diagnostics.{i}.type", f"diagnostic {config.type!r} is declared twice",
                                    study.where(path)))
        seen.add(config.type)
        arm = getattr(config, "arm", None)
        if arm is not None and arm not in arms:
            problems.append(Problem(f"diagnostics.{i}.arm", _unknown("arm", arm, arms), study.where(path + ("arm",))))
    return problems


def _unknown(what: str, name: str, known: list[str]) -> str:
    hint = closest(str(name), known)
    return f"unknown {what} {name!r}." + (f" Did you mean {hint!r}?" if hint else "") + f" Known: {', '.join(known)}"
