"""Reports on awkward results: unscored items, NaN metrics, failed cells, mismatched CIs in the
plot, large eval sets, and `ablate report` on a folder whose MLflow store cannot give its runs.
Expected figures are computed here with numpy, not with ablate.study.stats."""

import json
import math
import tracemalloc
from pathlib import Path

import mlflow
import numpy as np
import pytest

from ablate.study.collect import CellRun
from ablate.study.parent import ParentRun, saved_parent
from ablate.study.report import build_report, render_markdown
from ablate.study.runner import run_study
from ablate.study.schema import load_study
from study_fakes import fake_run, quiet_console

UNUSED = ParentRun("parent", "sqlite:///unused.db", "0")


def numpy_bootstrap(x, samples=2000, seed=0):
    """Percentile bootstrap of the mean, all resamples drawn in one call."""
    x = np.asarray(x, dtype=float)
    idx = np.random.default_rng(seed).integers(0, x.size, size=(samples, x.size))
    return list(np.percentile(x[idx].mean(axis=1), [2.5, 97.5]))


def numpy_unpaired(a, b, samples=2000, seed=0):
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ma = a[rng.integers(0, a.size, size=(samples, a.size))].mean(axis=1)
    mb = b[rng.integers(0, b.size, size=(samples, b.size))].mean(axis=1)
    return list(np.percentile(ma - mb, [2.5, 97.5]))


def cell_run(arm, seed, correct, metric):
    """A finished cell with no axis labels (so it is not judged stale) and these items."""
    items = [{"id": f"q{i}", "correct": c, "meta": {"category": "color" if i % 2 else "shape"}}
             for i, c in enumerate(correct)]
    return CellRun(f"run-{arm}-{seed}", f"{arm}|seed={seed}", arm, seed, {}, {"eval/accuracy": metric}, items=items)


def demo_study():
    from study_fakes import write_project

    import tempfile

    root = Path(tempfile.mkdtemp())
    return load_study(write_project(root))


def test_bootstrap_draws_in_bounded_blocks_with_the_same_draws(monkeypatch):
    from ablate.study import stats

    rng = np.random.default_rng(5)
    x = (rng.random(20_000) < 0.6).astype(float)
    y = (rng.random(20_000) < 0.5).astype(float)
    monkeypatch.setattr(stats, "RESAMPLE_BLOCK", 1 << 16)
    tracemalloc.start()
    ci = stats.bootstrap_mean(x, samples=400, seed=3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4_000_000  # drawn at once, the 400 x 20,000 indices alone are 64 MB
    assert ci.as_list() == pytest.approx(numpy_bootstrap(x, 400, 3), abs=1e-12)
    paired = stats.bootstrap_difference(dict(enumerate(x)), dict(enumerate(y)), samples=300, seed=1)
    assert paired.as_list() == pytest.approx(numpy_bootstrap(x - y, 300, 1), abs=1e-12)
    unpaired = stats.bootstrap_difference(dict(enumerate(x[:999])), {-k: v for k, v in enumerate(y)}, samples=300)
    assert unpaired.as_list() == pytest.approx(numpy_unpaired(x[:999], y, 300), abs=1e-12)


def test_unscored_items_and_nan_metrics_are_left_out_and_named():
    study = demo_study()
    rng = np.random.default_rng(11)
    a = [float(v) for v in rng.random(40) < 0.5]
    b = [float(v) for v in rng.random(40) < 0.8]
    a_marked = a[:38] + [None, float("nan")]  # two items the evaluator did not score
    runs = [cell_run("linear", 1, a_marked, float(np.mean(a[:38]))),
            cell_run("linear", 2, b, float("nan")),  # a metric that came out NaN: no value
            cell_run("mlp2", 1, b, float(np.mean(b))), cell_run("mlp2", 2, b, float(np.mean(b)))]
    report = build_report(study, "tiny", UNUSED, runs, recipes={})
    base, arm = report.table("accuracy").rows
    assert base.values == pytest.approx([np.mean(a[:38])]) and base.std is None and base.no_value_seeds == [2]
    assert base.items == 38  # seed 2 has no value, so its items are not in the CI either
    assert base.ci == pytest.approx(numpy_bootstrap(a[:38]))
    assert arm.delta == pytest.approx(np.mean(b) - np.mean(a[:38]))
    assert arm.delta_ci == pytest.approx(numpy_unpaired(b, a[:38])) and arm.delta_items is None
    assert all(math.isfinite(v) for v in [arm.delta, *arm.delta_ci, *base.ci])
    md = render_markdown(report)
    assert "| linear (baseline) | 1 (seed 2: no value) | " in md and "nan" not in md
    assert "unpaired, each arm's items resampled on their own" in md


def test_plot_error_bars_are_the_tables_cis():
    """A logged metric that is not its items' mean lies outside their CI: the plot draws the CI."""
    from ablate.study.plot import bars_figure, error_bar_spans

    study = demo_study()
    half = [1.0, 0.0] * 20
    runs = [cell_run("linear", 1, half, 0.9), cell_run("mlp2", 1, half, 0.5)]
    report = build_report(study, "tiny", UNUSED, runs, recipes={})
    rows = report.table("accuracy").rows
    assert rows[0].mean == 0.9 and rows[0].ci == pytest.approx(numpy_bootstrap(half))
    assert error_bar_spans(rows) == [tuple(rows[0].ci), tuple(rows[1].ci)]
    fig = bars_figure(report)
    ax = fig.axes[0]
    spans = sorted((round(min(s[:, 1]), 9), round(max(s[:, 1]), 9)) for c in ax.collections for s in c.get_segments())
    assert spans == sorted([(round(rows[0].ci[0], 9), round(rows[0].ci[1], 9)), (round(rows[1].ci[0], 9), round(rows[1].ci[1], 9))])


def run_demo(**env):
    return run_study("demo", scale="tiny", run_fn=fake_run, console=quiet_console())


def test_a_failed_cell_is_named_in_its_row(project, monkeypatch):
    monkeypatch.setenv("FAKE_RUN_FAIL", "mlp2-s8")
    outcome = run_demo()
    md = (outcome.prepared.folder / "report.md").read_text()
    row = outcome.report.table("accuracy").rows[1]
    assert row.arm == "mlp2" and row.seeds == [7] and row.missing_seeds == [8]
    assert "| mlp2 | 1 (seed 8: no finished run) |" in md
    assert outcome.report.table("accuracy").rows[0].missing_seeds == []


def report_cli(capsys, *extra):
    from ablate.cli import main

    capsys.readouterr()
    rc = main(["report", "demo", "--scale", "tiny", *extra])
    return rc, capsys.readouterr().err


def test_report_refuses_a_store_that_lacks_the_study_runs(project, capsys, tmp_path_factory, empty_mlflow_db):
    import shutil

    outcome = run_demo()
    folder = outcome.prepared.folder
    good = {name: (folder / name).read_bytes() for name in ("report.md", "report.json", "report.png")}
    parent = saved_parent(folder)
    other = tmp_path_factory.mktemp("other")

    rc, err = report_cli(capsys, "--tracking-uri", f"sqlite:///{other / 'missing.db'}")
    assert rc == 2 and "no MLflow store at" in err and "Traceback" not in err
    assert not (other / "missing.db").exists()  # not created by asking

    shutil.copy(empty_mlflow_db, other / "empty.db")
    rc, err = report_cli(capsys, "--tracking-uri", f"sqlite:///{other / 'empty.db'}")
    assert rc == 2 and f"parent run {parent.run_id} is not in the tracking store" in err
    assert parent.tracking_uri in err  # where the folder says its runs are

    client = mlflow.MlflowClient(parent.tracking_uri)
    [cell] = [r for r in client.search_runs([parent.experiment_id], f"tags.mlflow.parentRunId = '{parent.run_id}'")
              if r.data.tags["ablate.study.cell"] == "mlp2|seed=8"]
    client.delete_run(cell.info.run_id)
    rc, err = report_cli(capsys)
    assert rc == 2 and f"deleted in MLflow: mlp2|seed=8 (run {cell.info.run_id})" in err
    client.restore_run(cell.info.run_id)

    client.delete_run(parent.run_id)
    rc, err = report_cli(capsys)
    assert rc == 2 and f"parent run {parent.run_id} was deleted" in err
    client.restore_run(parent.run_id)

    saved = (folder / "mlflow.json").read_text()
    (folder / "mlflow.json").write_text('{"run_id": ')
    rc, err = report_cli(capsys)
    assert rc == 2 and "mlflow.json cannot be read" in err
    (folder / "mlflow.json").write_text(saved)

    assert {name: (folder / name).read_bytes() for name in good} == good  # no error rewrote the report
    (folder / "report.json").write_text("not json")  # the report is recomputed from MLflow, not read back
    rc, _ = report_cli(capsys)
    assert rc == 0 and json.loads((folder / "report.json").read_text())["runs"] == 4
