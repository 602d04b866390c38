"""The study report, recomputed from MLflow: per metric, each arm's mean ± std over seeds, a
bootstrap CI over eval items, the change vs the baseline arm, the paper's value and change,
and whether the direction agrees with the paper.

Written under the study folder as report.md, report.json and PNG plots, and logged as
artifacts of the study's parent run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ablate.study.collect import CellRun, collect_runs
from ablate.study.parent import ParentRun
from ablate.study.schema import StudyFile
from ablate.study.stats import agreement, bootstrap_difference, bootstrap_mean, item_scores, mean_std, plateau_epoch

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
BARS_PNG = "report.png"
EPOCHS_PNG = "epochs.png"


@dataclass
class PaperCell:
    benchmark: str
    source: str
    value: float | None
    delta: float | None
    agrees: str


@dataclass
class ArmRow:
    arm: str
    baseline: bool
    seeds: list[int]
    values: list[float]
    mean: float | None
    std: float | None
    ci: list[float] | None
    items: int
    delta: float | None
    delta_ci: list[float] | None
    paper: list[PaperCell] = field(default_factory=list)


@dataclass
class MetricTable:
    name: str
    key: str
    category: str | None
    objective: bool
    rows: list[ArmRow]
    paper_refs: list[dict[str, str]]
    item_scale: float = 1.0  # metric units per unit of mean `correct` (100: the evaluator reports %)


@dataclass
class EpochCurves:
    metric: str
    curves: dict[str, dict[int, float]]  # arm -> {epoch: mean over seeds}
    plateau: dict[str, int | None]
    epochs: int
    claim: str
    tolerance: float


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def table(self, name: str) -> MetricTable:
        return next(t for t in self.metrics if t.name == name)


# --- computing -------------------------------------------------------------------------------


def build_report(study: StudyFile, scale: str, parent: ParentRun, runs: list[CellRun] | None = None) -> Report:
    runs = collect_runs(parent) if runs is None else runs
    section = study.section(scale)
    options = study.spec.report
    arms = study.arm_names()
    baseline = study.baseline_arm()
    by_arm: dict[str, list[CellRun]] = {arm: sorted([r for r in runs if r.arm == arm], key=lambda r: r.seed) for arm in arms}

    tables = []
    for spec in section.metric_specs():
        refs = [ref for ref in study.spec.paper if ref.metric_for(scale, section) == spec.name]
        scale_factor = spec.item_scale or infer_item_scale(runs, spec)
        per_arm_items = {
            arm: {i: v * scale_factor for i, v in item_scores(
                _seed_items(r, spec.category) for r in by_arm[arm] if r.items is not None).items()}
            for arm in arms
        }
        rows: list[ArmRow] = []
        for arm in arms:
            seeds, values = [], []
            for run in by_arm[arm]:
                value = _seed_value(run, spec, scale_factor)
                if value is not None:
                    seeds.append(run.seed)
                    values.append(value)
            mean, std = mean_std(values)
            items = per_arm_items[arm] if spec.items else {}
            ci = bootstrap_mean(items.values(), samples=options.bootstrap_samples, seed=options.bootstrap_seed)
            rows.append(ArmRow(arm, arm == baseline, seeds, values, mean, std, ci.as_list() if ci else None,
                               len(items), None, None))
        base_row = next((r for r in rows if r.baseline), None)
        for row in rows:
            if row.baseline or base_row is None or row.mean is None or base_row.mean is None:
                diff_ci = None
            else:
                row.delta = row.mean - base_row.mean
                diff = bootstrap_difference(per_arm_items[row.arm], per_arm_items[baseline],
                                            samples=options.bootstrap_samples, seed=options.bootstrap_seed) if spec.items else None
                diff_ci = diff
                row.delta_ci = diff.as_list() if diff else None
            for ref in refs:
                value, base_value = ref.values.get(row.arm), ref.values.get(baseline)
                paper_delta = None if (row.baseline or value is None or base_value is None) else value - base_value
                agrees = "-" if row.baseline else agreement(row.delta, paper_delta, diff_ci)
                row.paper.append(PaperCell(ref.benchmark, ref.source, value, paper_delta, agrees))
        tables.append(MetricTable(spec.name, spec.mlflow_key(), spec.category, spec.name == section.objective, rows,
                                  [{"benchmark": r.benchmark, "source": r.source} for r in refs], scale_factor))

    epochs = []
    if options.epoch_curves:
        for spec in section.metric_specs():
            curves = {}
            for arm in arms:
                per_epoch: dict[int, list[float]] = {}
                for run in by_arm[arm]:
                    for epoch, value in run.epochs.get(spec.name, {}).items():
                        per_epoch.setdefault(epoch, []).append(value)
                if per_epoch:
                    curves[arm] = {e: sum(v) / len(v) for e, v in sorted(per_epoch.items())}
            if curves:
                plateau = {arm: plateau_epoch(c, options.plateau_tolerance, study.spec.direction == "maximize")
                           for arm, c in curves.items()}
                n_epochs = max(max(c) for c in curves.values())
                epochs.append(EpochCurves(spec.name, curves, plateau, n_epochs, options.epoch_claim, options.plateau_tolerance))

    return Report(
        study=study.name, scale=scale, description=study.spec.description.strip(), note=section.note.strip(),
        direction=study.spec.direction, baseline=baseline, objective=section.objective,
        parent_run_id=parent.run_id, tracking_uri=parent.tracking_uri, runs=len(runs), metrics=tables,
        missing_arms=[a for a in arms if not by_arm[a]], compute=_compute(runs), model=_model(by_arm),
        epochs=epochs, model_columns=list(options.model_columns),
    )


def _seed_items(run: CellRun, category: str | None) -> dict[str, float]:
    from ablate.eval.evaluators import record_category

    return {str(r["id"]): float(r.get("correct")) for r in run.items or []
            if "correct" in r and (category is None or record_category(r) == category)}


def _seed_value(run: CellRun, spec, scale_factor: float) -> float | None:
    """The logged metric; else, for item metrics, the mean `correct` of the run's predictions."""
    if spec.mlflow_key() in run.metrics:
        return float(run.metrics[spec.mlflow_key()])
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
        if scores and logged is not None:
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
    lines = [f"# Study `{report.study}` ({report.scale} scale)", "", report.description, ""]
    if report.note:
        lines += [f"> **Note ({report.scale} scale):** {report.note}", ""]
    lines += [
        f"Baseline arm: **{report.baseline}** · objective: `{report.objective}` ({report.direction}) · "
        f"{report.runs} finished run(s), recomputed from MLflow parent run `{report.parent_run_id}` "
        f"in `{report.tracking_uri}`.",
        "",
    ]
    if report.missing_arms:
        lines += [f"Arms with no finished run yet: {', '.join(report.missing_arms)}.", ""]
    for table in report.metrics:
        title = table.name + (" (objective)" if table.objective else "")
        scaled = f" x {table.item_scale:g}" if table.item_scale != 1 else ""
        lines += [f"## {title}", "", f"MLflow key `{table.key}`" + (f", items of category `{table.category}`" if table.category else "")
                  + f". CI: 95% seeded bootstrap over eval items (each item's `correct`{scaled}, averaged over seeds); "
                  "Δ CI: bootstrap of the difference vs the baseline, paired over shared items.", ""]
        head = ["arm", "seeds", "mean ± std", "95% CI (items)", "Δ vs baseline [95% CI]"]
        if report.model_columns:
            head += ["visual tokens"] + [f"{c} params (trainable)" for c in report.model_columns]
        for ref in table.paper_refs:
            head += [f"paper: {ref['benchmark']} (Δ)", "agrees"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in table.rows:
            std = f" ± {row.std:.4f}" if row.std is not None else ""
            cells = [
                row.arm + (" (baseline)" if row.baseline else ""),
                str(len(row.values)),
                (_num(row.mean) + std) if row.mean is not None else "-",
                f"[{row.ci[0]:.4f}, {row.ci[1]:.4f}]" if row.ci else "-",
                "-" if row.baseline else _signed(row.delta) + (f" [{row.delta_ci[0]:+.4f}, {row.delta_ci[1]:+.4f}]" if row.delta_ci else ""),
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
            lines.append("| " + " | ".join(cells) + " |")
        if table.paper_refs:
            lines += ["", "Paper values: " + "; ".join(f"{r['benchmark']}: {r['source']}" for r in table.paper_refs) + "."]
            lines += ["\"agrees\": does our Δ have the paper's sign (\"within noise\": our Δ's CI contains 0)."]
        lines.append("")
    for curves in report.epochs:
        arms = list(curves.curves)
        lines += [f"## {curves.metric} per epoch", ""]
        if curves.claim:
            lines += [f"Paper: {curves.claim}", ""]
        lines += ["| epoch | " + " | ".join(arms) + " |", "|" + "---|" * (len(arms) + 1)]
        for epoch in sorted({e for c in curves.curves.values() for e in c}):
            lines.append(f"| {epoch} | " + " | ".join(_num(curves.curves[a].get(epoch)) for a in arms) + " |")
        lines += ["", "Plateau (first epoch within {:g} of the arm's best): ".format(curves.tolerance)
                  + "; ".join(f"{a}: epoch {p} of {max(curves.curves[a])}" for a, p in curves.plateau.items()) + ".", ""]
    c = report.compute
    lines += [
        "## Compute",
        "",
        f"{int(c['runs'])} run(s), {c['seconds']:.1f} s of compute; {int(c['stages_reused'])} of {int(c['stages'])} "
        f"stage(s) reused from earlier runs; frozen-encoder feature cache: {int(c['feature_cache_hits'])} hit(s), "
        f"{int(c['feature_cache_misses'])} miss(es).",
        "",
    ]
    return "\n".join(lines)


def write_report(report: Report, folder: Path) -> list[Path]:
    """report.md, report.json and the plots, in `folder`; returns the paths written."""
    from ablate.study.plot import plot_bars, plot_epochs

    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / REPORT_MD, folder / REPORT_JSON]
    written[0].write_text(render_markdown(report))
    written[1].write_text(report.to_json())
    if any(row.mean is not None for t in report.metrics for row in t.rows):
        written.append(plot_bars(report, folder / BARS_PNG))
    if report.epochs:
        written.append(plot_epochs(report, folder / EPOCHS_PNG))
    return written


def log_report(parent: ParentRun, paths: list[Path]) -> None:
    client = parent.client()
    for path in paths:
        client.log_artifact(parent.run_id, str(path), "report")


def make_report(study: StudyFile, scale: str, parent: ParentRun, folder: Path) -> tuple[Report, list[Path]]:
    """Compute the report from MLflow, write it under `folder`, log it to the parent run."""
    report = build_report(study, scale, parent)
    paths = write_report(report, folder)
    log_report(parent, paths)
    return report, paths


def load_report_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
