"""Stale cells in the report: marked in report.md, report.json, the plot and the parent run's
copies, left out of the means unless --include-stale, found by `ablate report` too."""

import json
import tempfile

import mlflow
import numpy as np
import pytest

from ablate.cli import main
from ablate.study.parent import nested_runs
from ablate.study.report import REPORT_JSON, STALE_TAG
from ablate.study.runner import report_study, run_study
from ablate.study.staleness import Expected, stale_reason
from study_fakes import BASE_RECIPE, fake_run, quiet_console, write_project


def rows(report_json: dict, metric: str = "accuracy") -> dict[str, dict]:
    return {r["arm"]: r for r in next(t for t in report_json["metrics"] if t["name"] == metric)["rows"]}


def logged_report(parent) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=parent.run_id, artifact_path=f"report/{REPORT_JSON}",
                                                   dst_path=tmp, tracking_uri=parent.tracking_uri)
        return json.loads(open(path).read())


@pytest.fixture
def finished(project):
    """The demo study run once (4 fake cells); {cell: its nested MLflow run}."""
    outcome = run_study("demo", scale="tiny", run_fn=fake_run, console=quiet_console())
    runs = {r.data.tags["ablate.study.cell"]: r for r in nested_runs(outcome.parent, status="FINISHED")}
    return outcome, runs


def test_a_cell_whose_stage_key_changed_is_left_out_of_the_means(finished):
    outcome, runs = finished
    first = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())
    assert first["stale"] == [] and not any(r["stale"] for r in rows(first).values())
    # the cell ran with other inputs to its align stage than the study gives now (e.g. a data file edited since)
    outcome.parent.client().set_tag(runs["mlp2|seed=8"].info.run_id, "ablate.stage.align.key", "0123456789abcdef")

    report, _ = report_study("demo", scale="tiny")
    saved = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())
    table = rows(saved)
    assert table["mlp2"]["stale"] and table["mlp2"]["stale_reason"] == "stage align key changed (seed 8)"
    assert table["mlp2"]["stale_seeds"] == [8] and not table["linear"]["stale"]
    seed7 = runs["mlp2|seed=7"].data.metrics["eval/accuracy"]
    assert table["mlp2"]["seeds"] == [7] and table["mlp2"]["mean"] == pytest.approx(seed7)
    linear = np.mean([runs[f"linear|seed={s}"].data.metrics["eval/accuracy"] for s in (7, 8)])
    assert table["mlp2"]["delta"] == pytest.approx(seed7 - linear)
    [cell] = saved["stale"]
    assert cell == {"cell": "mlp2|seed=8", "arm": "mlp2", "seed": 8, "run_id": runs["mlp2|seed=8"].info.run_id,
                    "reason": "stage align key changed"}
    md = (outcome.prepared.folder / "report.md").read_text()
    assert "**⚠ 1 stale cell(s)**" in md and "**left out** of the means" in md
    assert "| mlp2 ⚠ stale, left out: seed(s) 8 | 1 |" in md
    assert f"- mlp2 · seed 8 (run `{runs['mlp2|seed=8'].info.run_id}`): stage align key changed" in md

    _assert_plot_marks_stale(report, "mlp2")

    included, _ = report_study("demo", scale="tiny", include_stale=True)
    mlp2 = included.table("accuracy").rows[1]
    assert mlp2.stale and mlp2.seeds == [7, 8]
    assert mlp2.mean == pytest.approx(np.mean([runs[f"mlp2|seed={s}"].data.metrics["eval/accuracy"] for s in (7, 8)]))


def test_editing_the_base_recipe_marks_every_row_stale_in_every_copy(finished, project, capsys):
    outcome, runs = finished
    folder = outcome.prepared.folder
    changed = json.loads(json.dumps(BASE_RECIPE))
    changed["stages"][1]["lr"] = 5e-4  # the base recipe changes after the cells finished
    write_project(project, base=changed)
    capsys.readouterr()
    assert main(["report", "demo", "--scale", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "**⚠ 4 stale cell(s)**" in out
    saved = json.loads((folder / REPORT_JSON).read_text())
    for arm, row in rows(saved).items():
        assert row["stale"] and row["stale_seeds"] == [7, 8] and row["seeds"] == [] and row["mean"] is None
        assert "; stage instruct key changed (seed 7); recipe hash " in row["stale_reason"]
    assert len(saved["stale"]) == 4
    for cell in saved["stale"]:  # the seed is part of the recipe: each cell has its own hash
        old_hash = runs[cell["cell"]].data.tags["ablate.recipe_hash"]
        assert cell["reason"].startswith(f"recipe hash {old_hash[:6]} → ")
        assert cell["reason"].endswith("; stage instruct key changed") and old_hash[:6] not in cell["reason"][20:]
    assert saved["missing_arms"] == ["linear", "mlp2"]
    assert (folder / "report.png").is_file()  # redrawn: the stale arms hatched, not the old bars
    # the parent run's copies say the same
    parent = outcome.parent
    assert rows(logged_report(parent))["mlp2"]["stale"]
    assert parent.client().get_run(parent.run_id).data.tags[STALE_TAG] == "4"

    assert main(["report", "demo", "--scale", "tiny", "--include-stale"]) == 0
    saved = json.loads((folder / REPORT_JSON).read_text())
    assert saved["include_stale"] and rows(saved)["linear"]["seeds"] == [7, 8]
    assert rows(saved)["linear"]["mean"] == pytest.approx(
        np.mean([runs[f"linear|seed={s}"].data.metrics["eval/accuracy"] for s in (7, 8)]))
    assert "**included** in the means" in (folder / "report.md").read_text()


def test_stale_reasons():
    now = Expected("7c21de000000", {"align": "a1", "instruct": "i2"})
    assert stale_reason("7c21de000000", {"align": "a1", "instruct": "i2"}, now) is None
    assert stale_reason("5ee4a1000000", {"align": "a1", "instruct": "i1"}, now) == \
        "recipe hash 5ee4a1 → 7c21de; stage instruct key changed"
    assert stale_reason(None, {"instruct": "i2"}, now) == "stages instruct → align, instruct"
    assert stale_reason(None, {}, now) is None  # a run that recorded nothing is not judged


def _assert_plot_marks_stale(report, arm: str) -> None:
    """report.png's bars: the stale arm is labelled, grey and hatched; the others are not."""
    import matplotlib.pyplot as plt

    from ablate.study.plot import STALE_COLOR, bars_figure

    fig = bars_figure(report)
    try:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert f"{arm} (stale)" in labels and sum("(stale)" in label for label in labels) == 1
        bars = [p for p in ax.patches if p.get_height() > 0 or p.get_hatch()]
        hatched = [p for p in bars if p.get_hatch() == "//"]
        assert len(hatched) == 1
        from matplotlib.colors import to_hex

        assert to_hex(hatched[0].get_facecolor()) == STALE_COLOR.lower()
    finally:
        plt.close(fig)
