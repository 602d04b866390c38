"""Reports: numbers recomputed from MLflow, bootstrap CIs, agreement with the paper, plots."""

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from ablate.study.parent import saved_parent
from ablate.study.report import REPORT_JSON, build_report, render_markdown
from ablate.study.runner import report_study, run_study
from ablate.study.schema import load_study
from ablate.study.stats import Interval, agreement, bootstrap_difference, bootstrap_mean, item_scores, plateau_epoch
from study_fakes import STUDY, fake_run, quiet_console, write_project


def run(**kwargs):
    return run_study("demo", scale="tiny", run_fn=fake_run, console=quiet_console(), **kwargs)


def recompute_from_mlflow(parent_run_id: str, uri: str):
    """Independently of ablate.study: each arm's logged accuracies and its predictions' items."""
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    arms: dict[str, dict] = {}
    for r in runs:
        if r.info.status != "FINISHED":
            continue
        arm = arms.setdefault(r.data.tags["ablate.study.arm"], {"acc": [], "color": [], "items": []})
        arm["acc"].append(r.data.metrics["eval/accuracy"])
        arm["color"].append(r.data.metrics["eval/accuracy/color"])
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(r.info.run_id, "predictions.jsonl", tmp)
            arm["items"].append({json.loads(line)["id"]: float(json.loads(line)["correct"]) for line in open(path)})
    return arms


def test_report_numbers_equal_recomputation_from_mlflow(project):
    outcome = run()
    # the local prediction files are not what the report reads: remove them
    for path in Path("runs").glob("demo-*/predictions.jsonl"):
        path.unlink()
    report, paths = report_study("demo", scale="tiny")
    assert {p.name for p in paths} == {"report.md", "report.json", "report.png"}
    saved = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())
    parent = saved_parent(outcome.prepared.folder)
    arms = recompute_from_mlflow(parent.run_id, parent.tracking_uri)
    assert set(arms) == {"linear", "mlp2"}
    table = {row["arm"]: row for row in next(t for t in saved["metrics"] if t["name"] == "accuracy")["rows"]}
    color = {row["arm"]: row for row in next(t for t in saved["metrics"] if t["name"] == "color")["rows"]}
    for arm, data in arms.items():
        assert table[arm]["mean"] == pytest.approx(np.mean(data["acc"]))
        assert table[arm]["std"] == pytest.approx(np.std(data["acc"], ddof=1))
        assert sorted(table[arm]["values"]) == pytest.approx(sorted(data["acc"]))
        assert color[arm]["mean"] == pytest.approx(np.mean(data["color"]))
        # the CI is a bootstrap of the seed-averaged item scores, whose mean is the arm's accuracy
        items = item_scores(data["items"])
        assert np.mean(list(items.values())) == pytest.approx(table[arm]["mean"])
        lo, hi = table[arm]["ci"]
        assert lo < table[arm]["mean"] < hi
        assert table[arm]["items"] == 120
    delta = np.mean(arms["mlp2"]["acc"]) - np.mean(arms["linear"]["acc"])
    assert table["mlp2"]["delta"] == pytest.approx(delta)
    assert table["linear"]["delta"] is None and table["linear"]["baseline"]
    gqa, easy_vqa = table["mlp2"]["paper"]
    assert gqa["value"] == 47.3 and gqa["delta"] == pytest.approx(0.5)
    ci = Interval(*table["mlp2"]["delta_ci"])
    assert easy_vqa["agrees"] == agreement(delta, 0.7 - 0.6, ci) and easy_vqa["same_benchmark"]
    # GQA is not what we measured: the paper's number is shown, not judged against our easy-VQA change
    assert gqa["agrees"] == "different benchmark: easy_vqa vs GQA" and not gqa["same_benchmark"]
    assert table["linear"]["paper"][0]["agrees"] == "-"
    assert saved["compute"] == {"runs": 4, "seconds": 6.0, "stages": 8, "stages_reused": 4,
                                "feature_cache_hits": 12, "feature_cache_misses": 4}
    assert saved["model"]["mlp2"] == {"visual_tokens": 64, "connector_total": 3000, "connector_trainable": 3000}
    # artifacts of the parent run
    names = {a.path for a in parent.client().list_artifacts(parent.run_id, "report")}
    assert names == {"report/report.md", "report/report.json", "report/report.png"}
    md = (outcome.prepared.folder / "report.md").read_text()
    assert "| mlp2 | 2 |" in md and "paper: GQA (%) (Δ)" in md and "47.3 (+0.5)" in md
    assert "LLaVA-1.5 (Liu et al., 2024), Table 2" in md and "stage(s) reused" in md
    assert "| 47.3 (+0.5) | different benchmark: easy_vqa vs GQA |" in md
    # every CI says how many eval items it rests on; a Δ CI whether and over how many they pair
    lo, hi = table["mlp2"]["ci"]
    assert f"[{lo:.4f}, {hi:.4f}] (n=120)" in md
    dlo, dhi = table["mlp2"]["delta_ci"]
    assert f"[{dlo:+.4f}, {dhi:+.4f}] (paired, n=120)" in md and table["mlp2"]["delta_items"] == 120
    # the header says what the stand-in models are
    assert "- `zoo:tiny-llama` (model.llm.name_or_path): Llama, 4 layers x 256, zoo tokenizer " \
           "(seeded random weights, not pretrained)" in md
    assert [s["checkpoint"] for s in saved["stand_ins"]] == ["zoo:tiny-clip", "zoo:tiny-llama"]


def test_report_is_the_same_when_rebuilt(project):
    outcome = run()
    first = json.loads((outcome.prepared.folder / REPORT_JSON).read_text())
    report, _ = report_study("demo", scale="tiny")
    assert json.loads(report.to_json()) == first  # seeded bootstrap: identical


def test_agreement_rules():
    assert agreement(0.02, 0.5, Interval(0.01, 0.03)) == "yes"
    assert agreement(-0.02, 0.5, Interval(-0.03, -0.01)) == "no"
    assert agreement(-0.02, -1.1, Interval(-0.03, -0.01)) == "yes"
    assert agreement(0.02, 0.5, Interval(-0.01, 0.05)) == "within noise"
    assert agreement(-0.02, 0.5, Interval(-0.05, 0.0)) == "within noise"  # touching 0 is not a difference
    assert agreement(0.02, 0.5, None) == "yes"  # no items: by sign
    assert agreement(0.0, 0.5, None) == "within noise"
    assert agreement(None, 0.5, None) == "-" and agreement(0.1, None, None) == "-" and agreement(0.1, 0.0, None) == "-"


def test_bootstrap_cis_are_seeded_and_sized_by_the_items():
    rng = np.random.default_rng(0)
    same = {f"q{i}": float(rng.random() < 0.6) for i in range(400)}
    other = {k: v for k, v in same.items()}
    assert bootstrap_difference(other, same).as_list() == [0.0, 0.0]  # paired: identical arms differ by exactly 0
    noisy = {k: float(rng.random() < 0.6) for k in same}
    ci = bootstrap_difference(noisy, same, seed=3)
    assert ci.straddles_zero() and ci == bootstrap_difference(noisy, same, seed=3)
    better = {k: 1.0 for k in same}
    assert not bootstrap_difference(better, same).straddles_zero()
    small = bootstrap_mean([1.0, 0.0] * 10)
    large = bootstrap_mean([1.0, 0.0] * 1000)
    assert small.low < 0.5 < small.high and (large.high - large.low) < (small.high - small.low) / 5
    assert bootstrap_mean([]) is None
    # unpaired when the eval sets differ
    assert bootstrap_difference({"a": 1.0, "b": 1.0}, {"c": 0.0, "d": 0.0}).as_list() == [1.0, 1.0]
    assert item_scores([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.0}]) == {"a": 0.5, "b": 0.0}


def test_plateau_epoch():
    assert plateau_epoch({1: 0.5, 2: 0.8, 3: 0.895, 4: 0.9}, 0.01) == 3
    assert plateau_epoch({1: 2.0, 2: 1.0, 3: 1.0}, 0.0, maximize=False) == 2
    assert plateau_epoch({}, 0.01) is None


def test_epoch_curves_and_percent_metrics(project):
    data = yaml.safe_load(yaml.safe_dump(STUDY))
    data["scales"]["tiny"]["overrides"] = {"eval.each_epoch": True}
    data["scales"]["tiny"]["seeds"] = 1
    data["report"] = {"epoch_curves": True, "epoch_claim": "the MLP plateaus sooner"}
    write_project(project, data)
    outcome = run()
    report = outcome.report
    [curves] = [c for c in report.epochs if c.metric == "accuracy"]
    assert set(curves.curves) == {"linear", "mlp2"} and curves.epochs == 4
    assert all(set(c) == {1, 2, 3, 4} for c in curves.curves.values())
    assert all(p is not None and 1 <= p <= 4 for p in curves.plateau.values())
    folder = outcome.prepared.folder
    assert (folder / "epochs.png").stat().st_size > 10_000 and (folder / "report.png").stat().st_size > 10_000
    md = (folder / "report.md").read_text()
    assert "## accuracy per epoch" in md and "Paper: the MLP plateaus sooner" in md and "Plateau" in md
    assert report.table("accuracy").item_scale == 1.0
    assert report.table("accuracy").rows[0].std is None  # one seed: no std


def test_percent_metrics_scale_the_item_cis(project):
    """An evaluator reporting % (like scienceqa): the item CI is scaled to match."""
    outcome = run()
    study = load_study(project / "studies" / "demo.yaml")
    from ablate.study.collect import collect_runs

    runs = collect_runs(outcome.parent)
    for r in runs:
        r.metrics = {k: (v * 100 if k.startswith("eval/") else v) for k, v in r.metrics.items()}
    report = build_report(study, "tiny", outcome.parent, runs)
    table = report.table("accuracy")
    assert table.item_scale == 100.0
    for row in table.rows:
        assert row.ci[0] < row.mean < row.ci[1] and row.mean > 1
    assert "x 100" in render_markdown(report)


def test_report_before_the_study_ran_says_so(project):
    from ablate.errors import AblateError

    with pytest.raises(AblateError, match="has not run here"):
        report_study("demo", scale="tiny")


def test_the_connector_study_judges_each_paper_value_against_its_own_benchmark():
    """Paper scale: MME, GQA and MM-Vet each come from their lmms-eval task's metric."""
    from ablate.study.collect import CellRun
    from ablate.study.parent import ParentRun

    study = load_study(Path(__file__).resolve().parents[2] / "studies" / "connector.yaml")
    scores = {"linear": (1300.0, 0.47, 30.0), "mlp2": (1290.0, 0.48, 31.0), "qformer": (1100.0, 0.40, 20.0)}
    # no axis labels: these runs are not judged stale (that reads the paper's data files)
    runs = [CellRun(f"run-{arm}", f"{arm}-42", arm, 42, {},
                    {"lmms_eval/mme/mme_perception_score": mme, "lmms_eval/gqa/exact_match": gqa,
                     "lmms_eval/mmvet/gpt_eval_score": mmvet, "lmms_eval/mme/mme_cognition_score": 300.0})
            for arm, (mme, gqa, mmvet) in scores.items()]
    report = build_report(study, "paper", ParentRun("parent", "sqlite:///unused.db", "0"), runs, recipes={})
    verdicts = {table.name: (table.benchmark, [(c.benchmark, c.agrees) for c in table.rows[1].paper])
                for table in report.metrics}
    assert report.table("mme").rows[1].arm == "mlp2"
    assert verdicts == {
        "mme": ("MME", [("MME perception score", "no")]),  # ours fell, the paper's rose
        "gqa": ("GQA", [("GQA accuracy (%)", "yes")]),
        "mmvet": ("MM-Vet", [("MM-Vet GPT-4-judged score", "yes")]),
    }
    assert report.objective == "gqa" and report.table("gqa").rows[1].mean == 0.48
