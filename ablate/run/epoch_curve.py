"""The per-epoch evaluation curve of a stage in training, kept beside its checkpoints.

A stage evaluated after every epoch (`eval.each_epoch`) that is interrupted and resumed
(`--resume`, a requeued SLURM job) goes on from its last checkpoint, and the Trainer calls the
epoch-end evaluation only for the epochs still to come. So every evaluation is written to
`<stage folder>/epoch_eval.json` as it ends (rank 0), and a resumed stage starts from what the
file holds: the stored stage and the run's summary get the whole curve. A checkpoint taken at
the end of an epoch whose evaluation had not finished is evaluated before training goes on
(the checkpoint holds that epoch's final weights).
"""

from __future__ import annotations

from pathlib import Path

from ablate.errors import AblateError
from ablate.run.stage_store import read_json, write_json

CURVE_FILE = "epoch_eval.json"


def kept_curve(stage_dir: Path, curve_key: str) -> tuple[dict[int, dict[str, float]], str | None]:
    """({epoch: metrics}, the MLflow run that logged them) from an interrupted stage's folder;
    empty for another eval section's curve (another key) or none. A damaged file is named."""
    path = stage_dir / CURVE_FILE
    if not path.is_file():
        return {}, None
    kept = read_json(path, what="the per-epoch evaluations of an interrupted stage")
    if kept.get("curve_key") != curve_key:
        return {}, None
    try:
        epochs = {int(epoch): {str(k): float(v) for k, v in metrics.items()} for epoch, metrics in kept["epochs"].items()}
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise AblateError(f"{path}: the per-epoch evaluations of an interrupted stage are damaged ({error}). "
                          f"Delete the file to evaluate those epochs again, or the stage's folder to retrain it.") \
            from None
    return epochs, kept.get("run_id")


def forget_curve(stage_dir: Path) -> None:
    """A stage trained from its start: an earlier attempt's evaluations are not its own (rank 0)."""
    (stage_dir / CURVE_FILE).unlink(missing_ok=True)


def keep_curve(stage_dir: Path, curve_key: str, epochs: dict[int, dict[str, float]], run_id: str | None) -> None:
    """Write the curve so far (rank 0), whole or not at all."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json(stage_dir / CURVE_FILE, {"curve_key": curve_key, "run_id": run_id,
                                        "epochs": {str(epoch): metrics for epoch, metrics in sorted(epochs.items())}})
