"""A stand-in for `ablate.run.runner.run_recipe` and a small study project for the study tests.

`fake_run` has run_recipe's signature and records exactly what the real one does in MLflow
(a nested run with the tags, eval metrics, per-epoch metrics and a predictions.jsonl
artifact), but its predictions are synthetic: each arm (the recipe without its seed and
names) has its own accuracy, each seed draws its own items. Environment knobs:

  FAKE_RUN_LOG=path         append {"event": "start"|"done", "name": ...} lines
  FAKE_RUN_HANG=substring   a recipe whose name contains it writes FAKE_RUN_HANG_MARKER, then sleeps
  FAKE_RUN_FAIL=substring   a recipe whose name contains it raises
  FAKE_RUN_MISSING=substring   ... raises MissingCheckpointError (an error with its own __init__)
  FAKE_RUN_SLEEP=seconds    sleep this long in every run (to make workers overlap)
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import yaml

ITEMS = 120
EPOCHS = 4


def _log(event: str, name: str) -> None:
    path = os.environ.get("FAKE_RUN_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"event": event, "name": name, "pid": os.getpid(),
                                 "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")


def arm_accuracy(recipe) -> float:
    """A fixed accuracy per arm: a hash of what the recipe computes, seed excluded."""
    from ablate.fingerprint import content_hash

    payload = recipe.model_dump(mode="json", exclude={"seed", "name", "description", "tracking", "output_dir"})
    return 0.35 + (int(content_hash(payload), 16) % 50) / 100


def _fake_records(p: float, rng: random.Random) -> tuple[list[dict], dict[str, float]]:
    """ITEMS judged records, each correct with probability `p`, and their accuracy (overall, per category)."""
    records = []
    for i in range(ITEMS):
        category = "color" if i % 2 else "shape"
        correct = rng.random() < p
        records.append({"id": f"q{i}", "prompt": f"question {i}", "prediction": "x" if correct else "y",
                        "answer": "x", "meta": {"category": category}, "correct": correct})
    metrics = {"accuracy": sum(r["correct"] for r in records) / ITEMS}
    for category in ("color", "shape"):
        group = [r["correct"] for r in records if r["meta"]["category"] == category]
        metrics[f"accuracy/{category}"] = sum(group) / len(group)
    return records, metrics


def fake_run(recipe, *, recipe_path=None, resume=False, reuse_stages=True, tracking_uri=None, parent_run_id=None,
             tags=None, progress=None):
    from ablate.recipe.loading import recipe_hash
    from ablate.run.runner import RunResult, StageOutcome, run_dir_for
    from ablate.run.plan import current_stage_keys
    from ablate.tracking import Tracker

    _log("start", recipe.name)
    if (fail := os.environ.get("FAKE_RUN_FAIL")) and fail in recipe.name:
        raise RuntimeError(f"synthetic failure in {recipe.name}")
    if (missing := os.environ.get("FAKE_RUN_MISSING")) and missing in recipe.name:
        from ablate.errors import MissingCheckpointError

        raise MissingCheckpointError("llm", "lmsys/vicuna-13b-v1.5", f"synthetic, in {recipe.name}")
    rhash = recipe_hash(recipe)
    run_dir = run_dir_for(recipe)
    run_dir.mkdir(parents=True, exist_ok=True)
    keys = current_stage_keys(recipe)
    stage_tags = {f"ablate.stage.{s.name}.key": key for s, key in zip(recipe.stages, keys)}
    tracker = Tracker(tracking_uri, recipe.tracking.experiment)
    with tracker.run(recipe.tracking.run_name or recipe.name, parent_run_id=parent_run_id,
                     tags={"ablate.recipe_hash": rhash, **stage_tags, **(tags or {})}):
        if (hang := os.environ.get("FAKE_RUN_HANG")) and hang in recipe.name:
            Path(os.environ["FAKE_RUN_HANG_MARKER"]).write_text(str(os.getpid()))
            time.sleep(600)
        time.sleep(float(os.environ.get("FAKE_RUN_SLEEP", "0")))
        p = arm_accuracy(recipe)
        records, metrics = _fake_records(p, random.Random(f"{rhash}/{recipe.seed}"))
        epoch_metrics = {}
        if recipe.eval is not None and recipe.eval.each_epoch:
            for epoch in range(1, EPOCHS + 1):
                # converges to the final accuracy, faster for higher-accuracy arms
                value = metrics["accuracy"] * (1 - (1 - p) ** (2 * epoch))
                epoch_metrics[epoch] = {"accuracy": value}
                tracker.log_metrics({"epoch_eval/accuracy": value}, step=epoch)
        predictions = run_dir / "predictions.jsonl"
        predictions.write_text("".join(json.dumps(r) + "\n" for r in records))
        tracker.log_metrics({f"eval/{k}": v for k, v in metrics.items()})
        tracker.log_artifact(predictions)
        run_id = tracker.run_id
    _log("done", recipe.name)
    connector = recipe.model.connector
    connector_params = 1000 if connector.type == "linear" else 3000
    # 10 steps an epoch; the final loss falls with the epochs and with the arm's accuracy
    stages = [StageOutcome(s.name, keys[i], "r0" if i == 0 else None, 0.5, 10 * s.epochs,
                           {"final_loss": round(2.0 / (1 + s.epochs) + 1 - p, 4)}) for i, s in enumerate(recipe.stages)]
    return RunResult(
        run_dir=run_dir, run_id=run_id, tracking_uri=tracker.uri, recipe_hash=rhash, stages=stages,
        eval_metrics=metrics, epoch_metrics=epoch_metrics, predictions_path=predictions, seconds=1.5,
        parameter_counts={"connector": {"total": connector_params, "trainable": connector_params}},
        visual_tokens=64 if connector.type != "qformer" else 8, feature_cache={"hits": 3, "misses": 1},
    )


# --- a small study project ------------------------------------------------------------------

BASE_RECIPE = {
    "name": "base",
    "seed": 7,
    "output_dir": "runs",
    "model": {
        "encoder": {"type": "hf_clip", "name_or_path": "zoo:tiny-clip", "feature_layer": -2},
        "connector": {"type": "mlp", "depth": 2},
        "llm": {"type": "hf_causal_lm", "name_or_path": "zoo:tiny-llama"},
    },
    "stages": [
        {"name": "align", "data": {"type": "inline", "sources": [{"source": {"type": "easy_vqa", "style": "caption"}}]},
         "template": "plain", "lr": 1e-3},
        {"name": "instruct", "data": {"type": "inline", "sources": [{"source": {"type": "easy_vqa", "style": "conversation"}}]},
         "template": "vicuna_v1", "lr": 1e-3},
    ],
    "eval": {"data": {"type": "easy_vqa", "split": "test", "style": "qa"}, "evaluator": "exact_match"},
    "tracking": {"experiment": "study-tests"},
}

STUDY = {
    "description": "Linear vs MLP connector (test study).",
    "scales": {
        "tiny": {"base": "../recipes/base.yaml", "seeds": 2, "metrics": [{"name": "accuracy"}, {"name": "color", "category": "color"}]},
        "paper": {"base": "../recipes/paper.yaml", "seeds": 1},
    },
    "axes": [{
        "name": "connector",
        "path": "model.connector",
        "arms": [
            {"label": "linear", "value": {"type": "linear"}},
            {"label": "mlp2", "value": {"type": "mlp", "depth": 2}},
        ],
    }],
    "baseline": "linear",
    "paper": [
        {"source": "LLaVA-1.5 (Liu et al., 2024), Table 2", "benchmark": "GQA", "measure": "(%)",
         "values": {"linear": 46.8, "mlp2": 47.3}},
        {"source": "a result made up for the tests", "benchmark": "easy-VQA", "measure": "accuracy",
         "values": {"linear": 0.6, "mlp2": 0.7}},
    ],
    "report": {"model_columns": ["connector"]},
}


def write_project(root: Path, study: dict | None = None, name: str = "demo", base: dict | None = None) -> Path:
    """recipes/base.yaml, recipes/paper.yaml and studies/<name>.yaml under `root`; returns the study path."""
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "studies").mkdir(exist_ok=True)
    base = base or BASE_RECIPE
    (root / "recipes" / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    paper = json.loads(json.dumps(base))
    paper["model"]["llm"]["name_or_path"] = "lmsys/vicuna-13b-v1.3"
    paper["model"]["encoder"]["name_or_path"] = "openai/clip-vit-large-patch14"
    (root / "recipes" / "paper.yaml").write_text(yaml.safe_dump(paper, sort_keys=False))
    path = root / "studies" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study or STUDY, sort_keys=False))
    return path


# --- helpers for the tests (fixtures are in conftest.py) ----------------------------------

def run_log(root: Path) -> list[dict]:
    path = root / "runs.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def quiet_console():
    from rich.console import Console

    return Console(file=open(os.devnull, "w"), width=200)
