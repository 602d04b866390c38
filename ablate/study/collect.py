"""Read a study's results back from MLflow: its finished nested runs, their metrics, per-epoch
histories and predictions artifacts. The report is computed from these alone."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.study.parent import TAG, ParentRun, nested_runs

PREDICTIONS = "predictions.jsonl"
EPOCH_PREFIX = "epoch_eval/"
RECIPE_HASH_TAG = "ablate.recipe_hash"
STAGE_TAG, KEY_SUFFIX = "ablate.stage.", ".key"


@dataclass
class CellRun:
    run_id: str
    cell: str
    arm: str
    seed: int
    labels: dict[str, str]
    metrics: dict[str, float]
    epochs: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> {epoch: value}
    items: list[dict[str, Any]] | None = None  # the predictions JSONL records
    end_time: int = 0
    recipe_hash: str | None = None  # the run's `ablate.recipe_hash` tag
    stage_keys: dict[str, str] = field(default_factory=dict)  # stage -> its `ablate.stage.<stage>.key` tag
    world_size: int = 1  # the run's `ablate.world_size` tag: stage keys cover the global batch


def collect_runs(parent: ParentRun, *, predictions: bool = True) -> list[CellRun]:
    """One CellRun per cell: its latest FINISHED nested run (runs of dead workers are ignored)."""
    client = parent.client()
    latest: dict[str, Any] = {}
    for run in nested_runs(parent, status="FINISHED"):
        cell = run.data.tags.get(f"{TAG}.cell")
        if cell is None:
            continue
        if cell not in latest or (run.info.end_time or 0) > (latest[cell].info.end_time or 0):
            latest[cell] = run
    out = []
    for cell, run in latest.items():
        tags = run.data.tags
        labels = {k[len(f"{TAG}.axis."):]: v for k, v in tags.items() if k.startswith(f"{TAG}.axis.")}
        record = CellRun(
            run_id=run.info.run_id, cell=cell, arm=tags.get(f"{TAG}.arm", cell), seed=int(tags.get(f"{TAG}.seed", 0)),
            labels=labels, metrics=dict(run.data.metrics), end_time=run.info.end_time or 0,
            recipe_hash=tags.get(RECIPE_HASH_TAG), stage_keys=recorded_stage_keys(tags),
            world_size=int(tags.get("ablate.world_size", "1") or 1),
        )
        for key in run.data.metrics:
            if key.startswith(EPOCH_PREFIX):
                history = client.get_metric_history(run.info.run_id, key)
                record.epochs[key[len(EPOCH_PREFIX):]] = {int(m.step): float(m.value) for m in history}
        if predictions:
            record.items = load_predictions(parent, run.info.run_id)
        out.append(record)
    return sorted(out, key=lambda r: (r.arm, r.seed))


def recorded_stage_keys(tags: dict[str, str]) -> dict[str, str]:
    """{stage: key} from a run's `ablate.stage.<stage>.key` tags."""
    return {k[len(STAGE_TAG):-len(KEY_SUFFIX)]: v for k, v in tags.items()
            if k.startswith(STAGE_TAG) and k.endswith(KEY_SUFFIX)}


def load_predictions(parent: ParentRun, run_id: str) -> list[dict[str, Any]] | None:
    """The run's predictions.jsonl artifact as records, or None when it has none."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file per run
    names = {a.path for a in parent.client().list_artifacts(run_id)}
    if PREDICTIONS not in names:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=PREDICTIONS, dst_path=tmp, tracking_uri=parent.tracking_uri,
        )
        with Path(local).open() as fh:
            return [json.loads(line) for line in fh if line.strip()]
