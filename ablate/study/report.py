"""The study report, recomputed from MLflow: per metric, each arm's mean ± std over seeds, a
bootstrap CI over eval items, the change vs the baseline arm, the paper's value and change,
and whether the direction agrees with the paper.

Written under the study folder as report.md, report.json and PNG plots, and logged as
artifacts of the study's parent run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ablate.study.benchmarks import our_benchmark, same_benchmark
from ablate.study.collect import CellRun, collect_runs
from ablate.study.diagnostics.base import DiagnosticResult, DiagnosticRun, diagnostics_markdown
from ablate.study.parent import ParentRun
from ablate.study.schema import StudyFile
from ablate.study.stand_ins import StandIn, describe, stand_ins
from ablate.study.staleness import judge_runs
from ablate.study.stats import agreement, bootstrap_difference, bootstrap_mean, item_scores, mean_std, plateau_epoch

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
BARS_PNG = "report.png"
EPOCHS_PNG = "epochs.png"
STALE_TAG = "ablate.study.stale_cells"  # on the parent run: how many cells the report found stale


@dataclass
class PaperCell:
    benchmark: str  # the paper's benchmark and measure, e.g. "GQA accuracy (%)"
    source: str
    value: float | None
    delta: float | None
    agrees: str  # yes | no | within noise | - | "different benchmark: <ours> vs <theirs>"
    same_benchmark: bool = True


@dataclass
class ArmRow:
    arm: str
    baseline: bool
    seeds: list[int]  # the seeds counted in mean, CI and delta
    values: list[float]
    mean: float | None
    std: float | None
    ci: list[float] | None
    items: int
    delta: float | None
    delta_ci: list[float] | None
    paper: list[PaperCell] = field(default_factory=list)
    delta_items: int | None = None  # items the Δ CI pairs (None: unpaired, or no CI)
    no_value_seeds: list[int] = field(default_factory=list)  # finished, but no finite value for this metric
    missing_seeds: list[int] = field(default_factory=list)  # the study's seeds with no finished run
    stale: bool = False  # some of the arm's finished cells ran another recipe than the study file gives now
    stale_reason: str | None = None  # e.g. "recipe hash 5ee4a1 → 7c21de (seeds 7, 8)"
    stale_seeds: list[int] = field(default_factory=list)


@dataclass
class MetricTable:
    name: str
    key: str
    category: str | None
    objective: bool
    rows: list[ArmRow]
    paper_refs: list[dict[str, Any]]
    item_scale: float = 1.0  # metric units per unit of mean `correct` (100: the evaluator reports %)
    benchmark: str = ""  # what our metric measures, e.g. easy_vqa


@dataclass
class EpochCurves:
    metric: str
    curves: dict[str, dict[int, float]]  # arm -> {epoch: mean over seeds}
    plateau: dict[str, int | None]
    epochs: int
    claim: str
    tolerance: float


@dataclass
class StaleCell:
    cell: str
    arm: str
    seed: int
    run_id: str
    reason: str


@dataclass
class Report:
    study: str
    scale: str
    description: str
    note: str
    direction: str
    baseline: str
    objective: str
    parent_run_id: str
    tracking_uri: str
    runs: int
    metrics: list[MetricTable]
    missing_arms: list[str]
    compute: dict[str, float]
    model: dict[str, dict[str, int]]
    epochs: list[EpochCurves] = field(default_factory=list)
    model_columns: list[str] = field(default_factory=list)
    stale: list[StaleCell] = field(default_factory=list)
    include_stale: bool = False  # stale cells counted in the means (--include-stale)
    stand_ins: list[StandIn] = field(default_factory=list)  # the zoo models the recipes name
    diagnostics: list[DiagnosticResult] = field(default_factory=list)  # the study file's, measured

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def table(self, name: str) -> MetricTable:
        return next(t for t in self.metrics if t.name == name)


# --- computing -------------------------------------------------------------------------------


@dataclass
class _Inputs:
    """What every table of one report is computed from."""

    study: StudyFile
    scale: str
    runs: list[CellRun]  # every finished cell run, stale or not
    by_arm: dict[str, list[CellRun]]  # the runs counted in the means, per arm, by seed
    stale: dict[str, str]  # cell id -> why it is stale
    recipes: dict[str, Any]  # cell id -> its recipe now
    missing: dict[str, list[int]] = field(default_factory=dict)  # arm -> its seeds with no finished run

    @property
    def section(self):
        return self.study.section(self.scale)

    @property
    def options(self):
        return self.study.spec.report

    @property
    def baseline(self) -> str:
        return self.study.baseline_arm()


def build_report(study: StudyFile, scale: str, parent: ParentRun, runs: list[CellRun] | None = None, *,
                 recipes: dict[str, Any] | None = None, include_stale: bool = False,
                 diagnostic_runs: list[DiagnosticRun] | None = None) -> Report:
    """The report of the finished runs (default: read from MLflow). `recipes` (cell id -> Recipe,
    default: resolved from the study file) decide which runs are stale; those are left out of
    the means unless `include_stale`. The diagnostics read the counted runs and their own runs
    (default: read from MLflow)."""
    from ablate.study.diagnostics.run import collect_diagnostic_runs, declared

    runs = collect_runs(parent) if runs is None else runs
    if diagnostic_runs is None:  # MLflow is asked only when the study declares some at this scale
        diagnostic_runs = collect_diagnostic_runs(parent) if declared(study, scale) else []
    recipes = _study_recipes(study, scale) if recipes is None else recipes
    missing = missing_seeds(recipes, runs)
    recipes, stale = judge_runs(study, scale, runs, recipes)
    counted = [r for r in runs if include_stale or r.cell not in stale]
    arms = study.arm_names()
    by_arm = {arm: sorted([r for r in counted if r.arm == arm], key=lambda r: r.seed) for arm in arms}
    inputs = _Inputs(study, scale, runs, by_arm, stale, recipes, missing)
    section = study.section(scale)
    metrics = [_metric_table(inputs, spec) for spec in section.metric_specs()]
    return Report(
        study=study.name, scale=scale, description=study.spec.description.strip(), note=section.note.strip(),
        direction=study.spec.direction, baseline=inputs.baseline, objective=section.objective,
        parent_run_id=parent.run_id, tracking_uri=parent.tracking_uri, runs=len(runs), metrics=metrics,
        missing_arms=[a for a in arms if not by_arm[a]], compute=_compute(runs), model=_model(by_arm),
        epochs=_epoch_curves(inputs), model_columns=list(study.spec.report.model_columns),
        stale=[StaleCell(r.cell, r.arm, r.seed, r.run_id, stale[r.cell]) for r in runs if r.cell in stale and r.arm in arms],
        include_stale=include_stale, stand_ins=stand_ins(recipes.values()),
        diagnostics=_diagnostics(inputs, metrics, diagnostic_runs),
    )


def missing_seeds(recipes: dict[str, Any], runs: list[CellRun]) -> dict[str, list[int]]:
    """{arm: its seeds with no finished run}, over the cells the study has now (`recipes` is keyed
    by cell id, "<arm>|seed=<n>"), so a failed or unrun cell is named, not silently absent."""
    done = {r.cell for r in runs}
    out: dict[str, list[int]] = {}
    for cell in recipes:
        arm, sep, seed = cell.rpartition("|seed=")
        if sep and cell not in done and seed.lstrip("-").isdigit():
            out.setdefault(arm, []).append(int(seed))
    return {arm: sorted(seeds) for arm, seeds in out.items()}


def _diagnostics(inputs: _Inputs, metrics: list[MetricTable], runs: list[DiagnosticRun]) -> list[DiagnosticResult]:
    """Each declared diagnostic's figures, from the counted cell runs and the diagnostics' own runs."""
    from ablate.study.diagnostics.run import context, declared

    scales = {t.name: t.item_scale for t in metrics}
    counted = [r for rs in inputs.by_arm.values() for r in rs]
    ctx = context(inputs.study, inputs.scale, counted, inputs.recipes, runs, lambda m: scales.get(m, 1.0))
    return [diagnostic.result(ctx) for diagnostic in declared(inputs.study, inputs.scale)]


def _study_recipes(study: StudyFile, scale: str) -> dict[str, Any]:
    """{cell id: recipe} for the study's cells as the study file gives them now."""
    from ablate.study.cells import expand_cells, seeds_for, validate_cells

    return validate_cells(study, scale, expand_cells(study, scale, seeds_for(study, scale)))


def _metric_table(inputs: _Inputs, spec) -> MetricTable:
    study, scale, section = inputs.study, inputs.scale, inputs.section
    scale_factor = spec.item_scale or infer_item_scale(inputs.runs, spec)
    per_arm_items = {
        arm: {i: v * scale_factor for i, v in item_scores(
            _seed_items(r, spec.category) for r in runs
            if r.items is not None and _seed_value(r, spec, scale_factor) is not None).items()} if spec.items else {}
        for arm, runs in inputs.by_arm.items()
    }  # the seeds the mean counts, and only those: a run with no value for the metric is in neither
    rows = [_arm_row(inputs, arm, spec, scale_factor, per_arm_items[arm]) for arm in inputs.by_arm]
    diff_cis = _add_deltas(rows, per_arm_items if spec.items else None, inputs.baseline, inputs.options)
    ours = our_benchmark(spec, section, inputs.recipes.values())
    refs = [ref for ref in study.spec.paper if ref.metric_for(scale, section) == spec.name]
    for row in rows:
        row.paper = [_paper_cell(ref, row, inputs.baseline, ours, diff_cis.get(row.arm)) for ref in refs]
    return MetricTable(spec.name, spec.mlflow_key(), spec.category, spec.name == section.objective, rows,
                       [{"benchmark": r.title(), "source": r.source, "same_benchmark": same_benchmark(ours, r.benchmark)}
                        for r in refs], scale_factor, ours)


def _arm_row(inputs: _Inputs, arm: str, spec, scale_factor: float, items: dict[str, float]) -> ArmRow:
    seeds, values, no_value = [], [], []
    for run in inputs.by_arm[arm]:
        value = _seed_value(run, spec, scale_factor)
        if value is not None:
            seeds.append(run.seed)
            values.append(value)
        else:
            no_value.append(run.seed)
    mean, std = mean_std(values)
    options = inputs.options
    ci = bootstrap_mean(items.values(), samples=options.bootstrap_samples, seed=options.bootstrap_seed)
    stale = {r.seed: inputs.stale[r.cell] for r in inputs.runs if r.arm == arm and r.cell in inputs.stale}
    return ArmRow(arm, arm == inputs.baseline, seeds, values, mean, std, ci.as_list() if ci else None, len(items),
                  None, None, stale=bool(stale), stale_reason=_grouped_reasons(stale), stale_seeds=sorted(stale),
                  no_value_seeds=no_value, missing_seeds=inputs.missing.get(arm, []))


def _grouped_reasons(by_seed: dict[int, str]) -> str | None:
    """"recipe hash 5ee4a1 → 7c21de (seeds 7, 8)": each reason once, with the seeds it applies to."""
    groups: dict[str, list[int]] = {}
    for seed in sorted(by_seed):
        groups.setdefault(by_seed[seed], []).append(seed)
    parts = [f"{reason} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})" for reason, s in groups.items()]
    return "; ".join(parts) or None


def _add_deltas(rows: list[ArmRow], per_arm_items: dict[str, dict[str, float]] | None, baseline: str, options) -> dict:
    """Set each row's change vs the baseline row (and its paired bootstrap CI where there are
    items); returns {arm: the CI Interval}."""
    base_row = next((r for r in rows if r.baseline), None)
    cis = {}
    for row in rows:
        if row.baseline or base_row is None or row.mean is None or base_row.mean is None:
            continue
        row.delta = row.mean - base_row.mean
        if per_arm_items is not None:
            arm_items, base_items = per_arm_items[row.arm], per_arm_items[baseline]
            diff = bootstrap_difference(arm_items, base_items, samples=options.bootstrap_samples,
                                        seed=options.bootstrap_seed)
            row.delta_ci, cis[row.arm] = (diff.as_list() if diff else None), diff
            if diff is not None and set(arm_items) == set(base_items):
                row.delta_items = len(arm_items)  # paired, as bootstrap_difference pairs them
    return cis


def _paper_cell(ref, row: ArmRow, baseline: str, ours: str, diff_ci) -> PaperCell:
    value, base_value = ref.values.get(row.arm), ref.values.get(baseline)
    paper_delta = None if (row.baseline or value is None or base_value is None) else value - base_value
    same = same_benchmark(ours, ref.benchmark)
    if row.baseline:
        agrees = "-"
    elif not same:
        agrees = f"different benchmark: {ours} vs {ref.benchmark}"
    else:
        agrees = agreement(row.delta, paper_delta, diff_ci)
    return PaperCell(ref.title(), ref.source, value, paper_delta, agrees, same)


def _epoch_curves(inputs: _Inputs) -> list[EpochCurves]:
    options = inputs.options
    if not options.epoch_curves:
        return []
    out = []
    for spec in inputs.section.metric_specs():
        curves = {}
        for arm, runs in inputs.by_arm.items():
            per_epoch: dict[int, list[float]] = {}
            for run in runs:
                for epoch, value in run.epochs.get(spec.name, {}).items():
                    per_epoch.setdefault(epoch, []).append(value)
            if per_epoch:
                curves[arm] = {e: sum(v) / len(v) for e, v in sorted(per_epoch.items())}
        if curves:
            maximize = inputs.study.spec.direction == "maximize"
            plateau = {arm: plateau_epoch(c, options.plateau_tolerance, maximize) for arm, c in curves.items()}
            n_epochs = max(max(c) for c in curves.values())
            out.append(EpochCurves(spec.name, curves, plateau, n_epochs, options.epoch_claim, options.plateau_tolerance))
    return out


def _seed_items(run: CellRun, category: str | None) -> dict[str, float]:
    """{item id: its `correct`} for the run's scored items (of `category`)."""
    from ablate.eval.evaluators import record_category

    scored = ((r, _score(r.get("correct"))) for r in run.items or [])
    return {str(r["id"]): value for r, value in scored
            if value is not None and (category is None or record_category(r) == category)}


def _score(value: Any) -> float | None:
    """An item's `correct` as a number; None when it was not scored (null, NaN, not a number),
    which counts as no item rather than as a NaN that would spread through every mean and CI."""
    if isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _seed_value(run: CellRun, spec, scale_factor: float) -> float | None:
    """The logged metric; else, for item metrics, the mean `correct` of the run's predictions.
    A logged NaN or infinity is no value (the row names the seed), not a number to average."""
    if spec.mlflow_key() in run.metrics:
        value = float(run.metrics[spec.mlflow_key()])
        return value if math.isfinite(value) else None
    if spec.items and run.items is not None:
        scores = _seed_items(run, spec.category)
        return scale_factor * sum(scores.values()) / len(scores) if scores else None
    return None


def infer_item_scale(runs: list[CellRun], spec) -> float:
    """100 when the logged metric is a percentage of the items' mean `correct`, else 1."""
    ratios = []
    for run in runs:
        scores = _seed_items(run, spec.category) if run.items is not None else {}
        logged = run.metrics.get(spec.mlflow_key())
        if scores and logged is not None and math.isfinite(logged):
            mean = sum(scores.values()) / len(scores)
            if mean > 0:
                ratios.append(logged / mean)
    if not ratios:
        return 1.0
    ratios.sort()
    return 100.0 if ratios[len(ratios) // 2] > 10 else 1.0


def _compute(runs: list[CellRun]) -> dict[str, float]:
    def total(key: str) -> float:
        return float(sum(r.metrics.get(key, 0.0) for r in runs))

    return {
        "runs": len(runs),
        "seconds": total("study/seconds"),
        "stages": total("study/stages"),
        "stages_reused": total("study/stages_reused"),
        "feature_cache_hits": total("study/feature_cache_hits"),
        "feature_cache_misses": total("study/feature_cache_misses"),
    }


def _model(by_arm: dict[str, list[CellRun]]) -> dict[str, dict[str, int]]:
    """{arm: {"visual_tokens": n, "<component>_total": n, "<component>_trainable": n}}."""
    out = {}
    prefix = "study/params/"
    for arm, runs in by_arm.items():
        if runs:
            m = runs[0].metrics
            out[arm] = {"visual_tokens": int(m.get("study/visual_tokens", 0))}
            for key, value in m.items():
                if key.startswith(prefix):
                    component, kind = key[len(prefix):].split("/", 1)
                    out[arm][f"{component}_{kind}"] = int(value)
    return out


# --- rendering -------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:+.{digits}f}"


def _paper_num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def render_markdown(report: Report) -> str:
    lines = _header(report)
    for table in report.metrics:
        lines += _metric_section(report, table)
        if table.objective:
            lines += diagnostics_markdown(report.diagnostics)  # under the verdict they explain
    for curves in report.epochs:
        lines += _epoch_section(curves)
    return "\n".join(lines + _compute_section(report.compute))


def _header(report: Report) -> list[str]:
    lines = [f"# Study `{report.study}` ({report.scale} scale)", "", report.description, ""]
    if report.note:
        lines += [f"> **Note ({report.scale} scale):** {report.note}", ""]
    if report.stand_ins:
        lines += ["**Stand-in models** (what each was trained on):", ""]
        lines += [f"- {describe(entry)}" for entry in report.stand_ins] + [""]
    lines += [
        f"Baseline arm: **{report.baseline}** · objective: `{report.objective}` ({report.direction}) · "
        f"{report.runs} finished run(s), recomputed from MLflow parent run `{report.parent_run_id}` "
        f"in `{report.tracking_uri}`.",
        "",
    ]
    if report.missing_arms:
        lines += [f"Arms with no finished current run yet: {', '.join(report.missing_arms)}.", ""]
    return lines + _stale_section(report)


def _stale_section(report: Report) -> list[str]:
    if not report.stale:
        return []
    counted = ("**included** in the means, CIs and Δs below (--include-stale)" if report.include_stale else
               "**left out** of the means, CIs and Δs below (pass --include-stale to count them)")
    lines = [f"**⚠ {len(report.stale)} stale cell(s)**: they ran another recipe or other stage inputs than the "
             f"study file gives now, so their results are the old recipe's; {counted}. To run the study as it "
             "is now, move the study folder aside (or use another --storage) and run it again.", ""]
    lines += [f"- {c.arm} · seed {c.seed} (run `{c.run_id}`): {c.reason}" for c in report.stale]
    return lines + [""]


def _metric_section(report: Report, table: MetricTable) -> list[str]:
    title = table.name + (" (objective)" if table.objective else "")
    scaled = f" x {table.item_scale:g}" if table.item_scale != 1 else ""
    lines = [f"## {title}", "", f"MLflow key `{table.key}`" + (f", items of category `{table.category}`" if table.category else "")
             + f", benchmark `{table.benchmark}`. CI: 95% seeded bootstrap over eval items (each item's `correct`{scaled}, "
             "averaged over seeds; n: the items it rests on); Δ CI: bootstrap of the difference vs the baseline, "
             "paired over the items when both arms were evaluated on the same ones (n: how many), else "
             "unpaired, each arm's items resampled on their own.", ""]
    head = ["arm", "seeds", "mean ± std", "95% CI (items)", "Δ vs baseline [95% CI]"]
    if report.model_columns:
        head += ["visual tokens"] + [f"{c} params (trainable)" for c in report.model_columns]
    for ref in table.paper_refs:
        head += [f"paper: {ref['benchmark']} (Δ)", "agrees"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_row_cells(report, row)) + " |" for row in table.rows]
    if table.paper_refs:
        lines += ["", "Paper values: " + "; ".join(f"{r['benchmark']}: {r['source']}" for r in table.paper_refs) + "."]
        lines += ["\"agrees\": does our Δ have the paper's sign (\"within noise\": our Δ's CI contains 0); a paper "
                  "value on another benchmark than ours is shown, not judged (\"different benchmark\")."]
    return lines + [""]


def _row_cells(report: Report, row: ArmRow) -> list[str]:
    std = f" ± {row.std:.4f}" if row.std is not None else ""
    stale = ""
    if row.stale:
        stale = f" ⚠ stale, {'included' if report.include_stale else 'left out'}: seed(s) {', '.join(map(str, row.stale_seeds))}"
    cells = [
        row.arm + (" (baseline)" if row.baseline else "") + stale,
        _seeds_cell(row),
        (_num(row.mean) + std) if row.mean is not None else "-",
        f"[{row.ci[0]:.4f}, {row.ci[1]:.4f}] (n={row.items})" if row.ci else "-",
        "-" if row.baseline else _signed(row.delta) + _delta_ci(row),
    ]
    if report.model_columns:
        model = report.model.get(row.arm, {})
        cells.append(str(model.get("visual_tokens", "-")))
        for c in report.model_columns:
            total, trainable = model.get(f"{c}_total"), model.get(f"{c}_trainable")
            cells.append(f"{total:,} ({trainable:,})" if total is not None and trainable is not None else "-")
    for paper in row.paper:
        delta = "" if paper.delta is None else f" ({paper.delta:+g})"
        cells += [_paper_num(paper.value) + delta, paper.agrees]
    return cells


def _seeds_cell(row: ArmRow) -> str:
    """How many seeds the row counts, and which of the study's seeds it lacks and why."""
    notes = [f"seed {s}: no value" for s in row.no_value_seeds]
    notes += [f"seed {s}: no finished run" for s in row.missing_seeds]
    return str(len(row.values)) + (f" ({'; '.join(notes)})" if notes else "")


def _delta_ci(row: ArmRow) -> str:
    if not row.delta_ci:
        return ""
    items = f"paired, n={row.delta_items}" if row.delta_items is not None else "unpaired"
    return f" [{row.delta_ci[0]:+.4f}, {row.delta_ci[1]:+.4f}] ({items})"


def _epoch_section(curves: EpochCurves) -> list[str]:
    arms = list(curves.curves)
    lines = [f"## {curves.metric} per epoch", ""]
    if curves.claim:
        lines += [f"Paper: {curves.claim}", ""]
    lines += ["| epoch | " + " | ".join(arms) + " |", "|" + "---|" * (len(arms) + 1)]
    for epoch in sorted({e for c in curves.curves.values() for e in c}):
        lines.append(f"| {epoch} | " + " | ".join(_num(curves.curves[a].get(epoch)) for a in arms) + " |")
    return lines + ["", "Plateau (first epoch within {:g} of the arm's best): ".format(curves.tolerance)
                    + "; ".join(f"{a}: epoch {p} of {max(curves.curves[a])}" for a, p in curves.plateau.items()) + ".", ""]


def _compute_section(c: dict[str, float]) -> list[str]:
    return [
        "## Compute",
        "",
        f"{int(c['runs'])} run(s), {c['seconds']:.1f} s of compute; {int(c['stages_reused'])} of {int(c['stages'])} "
        f"stage(s) reused from earlier runs; frozen-encoder feature cache: {int(c['feature_cache_hits'])} hit(s), "
        f"{int(c['feature_cache_misses'])} miss(es).",
        "",
    ]


def write_report(report: Report, folder: Path) -> list[Path]:
    """report.md, report.json and the plots, in `folder`; returns the paths written."""
    from ablate.study.plot import plot_bars, plot_epochs

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / REPORT_MD, folder / REPORT_JSON]
    written[0].write_text(render_markdown(report))
    written[1].write_text(report.to_json())
    plots = {BARS_PNG: plot_bars if any(row.mean is not None or row.stale for t in report.metrics for row in t.rows) else None,
             EPOCHS_PNG: plot_epochs if report.epochs else None}
    for name, plot in plots.items():
        if plot is not None:
            written.append(plot(report, folder / name))
        else:
            (folder / name).unlink(missing_ok=True)  # an earlier report's plot would not match this report
    return written


def log_report(parent: ParentRun, report: Report, paths: list[Path]) -> None:
    """The report files as artifacts of the parent run (stale marks included), and the number of
    stale cells as a tag on it, so the MLflow UI shows it too."""
    client = parent.client()
    for path in paths:
        client.log_artifact(parent.run_id, str(path), "report")
    client.set_tag(parent.run_id, STALE_TAG, str(len(report.stale)))


def make_report(study: StudyFile, scale: str, parent: ParentRun, folder: Path, *,
                recipes: dict[str, Any] | None = None, include_stale: bool = False) -> tuple[Report, list[Path]]:
    """Compute the report from MLflow, write it under `folder`, log it to the parent run."""
    report = build_report(study, scale, parent, recipes=recipes, include_stale=include_stale)
    paths = write_report(report, folder)
    log_report(parent, report, paths)
    return report, paths
