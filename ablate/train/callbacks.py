"""Trainer callbacks: a rich progress bar per stage, per-step metrics into MLflow, and the
samples the collator left out."""

from __future__ import annotations

import time
from typing import Any, Callable

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState


class ThroughputMeter:
    """Samples/s and tokens/s of the whole job between two log events. Each rank's model counts
    its own tokens; `measure` sums them over the ranks (a collective: every rank calls it), as
    the samples count the global batch."""

    def __init__(self, model, global_batch: int):
        self.model = model
        self.global_batch = global_batch
        self.reset(0)

    def reset(self, step: int) -> None:
        self.t0, self.step0, self.tokens0 = time.perf_counter(), step, self._tokens()

    def _tokens(self) -> int:
        return int(getattr(self.model, "tokens_processed", 0))

    def measure(self, step: int) -> dict[str, float]:
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        samples = (step - self.step0) * self.global_batch
        tokens = summed_over_ranks(self._tokens() - self.tokens0)
        self.reset(step)
        return {"samples_per_s": samples / elapsed, "tokens_per_s": tokens / elapsed}


def summed_over_ranks(count: int) -> int:
    """`count` summed over the job's ranks (every rank calls this); itself in a one-process run."""
    from ablate.ranks import ranks

    if ranks().num_processes == 1:
        return count
    from accelerate.utils import gather_object

    return sum(gather_object([count]))


class SkippedSamplesCallback(TrainerCallback, ExportableState):
    """The ids of the samples the collator left out of their batches (`on_bad_sample: skip`, a
    sample only tokenizing shows the template cannot encode), over the whole stage.

    The collator runs in the DataLoader's workers, so the ids travel in the batch (`skipped_ids`)
    and VLMTrainer hands them here. A sample read again in a later epoch counts once. The ids are
    part of each checkpoint's trainer state (ExportableState), after every rank's are gathered, so
    a resumed stage, which does not read the batches before its checkpoint again, still counts them."""

    def __init__(self, ids: list[str] | None = None):
        self.ids = sorted(set(ids or []))

    def add(self, ids: list[str]) -> None:
        if ids:  # most batches leave nothing out
            self.ids = sorted(set(self.ids).union(ids))

    def gather(self) -> list[str]:
        """Every rank's ids, on every rank (a collective: every rank calls it)."""
        from ablate.ranks import ranks

        if ranks().num_processes > 1:
            from accelerate.utils import gather_object

            self.ids = sorted({sample for ids in gather_object([self.ids]) for sample in ids})
        return self.ids

    def state(self) -> dict[str, Any]:
        return {"args": {"ids": self.ids}, "attributes": {}}

    def on_train_begin(self, args, state, control, **kwargs):
        self.add(stored_skipped_ids(state.stateful_callbacks))  # those of a resumed checkpoint


def stored_skipped_ids(stateful_callbacks: Any) -> list[str]:
    """The skipped ids a checkpoint's trainer state keeps (`stateful_callbacks`); [] when none."""
    stored = stateful_callbacks.get(SkippedSamplesCallback.__name__) if isinstance(stateful_callbacks, dict) else None
    ids = (stored.get("args") or {}).get("ids") if isinstance(stored, dict) else None
    return [str(sample) for sample in ids] if isinstance(ids, list) else []


class MetricsCallback(TrainerCallback):
    """Logs loss, learning rate, grad norm and throughput per logging step as `<stage>/<metric>`."""

    def __init__(self, stage: str, tracker, meter: ThroughputMeter, on_update: Callable[[dict], None] | None = None):
        self.stage, self.tracker, self.meter, self.on_update = stage, tracker, meter, on_update
        self.last: dict[str, float] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.meter.reset(state.global_step)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not logs:
            return
        # every rank measures: the tokens are summed over them (the Trainer logs on every rank)
        throughput = self.meter.measure(state.global_step) if "loss" in logs else {}
        if not state.is_world_process_zero:
            return
        metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k != "epoch"}
        metrics.update(throughput)
        if "train_loss" in metrics:
            # Trainer's train_loss covers only this train() call: after --resume, just the resumed part.
            metrics.update(stage_losses(state.log_history))
            metrics.pop("train_loss")
        renamed = {_metric_name(k): v for k, v in metrics.items()}
        self.last.update(renamed)
        self.tracker.log_metrics({f"{self.stage}/{k}": v for k, v in renamed.items()}, step=state.global_step)
        if self.on_update:
            self.on_update(self.last)


def _metric_name(key: str) -> str:
    return {"learning_rate": "lr", "train_runtime": "runtime_s"}.get(key, key)


def stage_losses(log_history: list[dict[str, Any]]) -> dict[str, float]:
    """`final_loss` (the last logged loss) and `mean_loss` (over every step of the stage).

    Computed from the logged losses, which survive a resume in the checkpoint's trainer state
    (Trainer's own train_loss does not). Each logged loss is the mean over the steps since the
    previous log; LogAtSaveCallback logs at every checkpoint and at the last step, so the logs
    cover every step, before and after a resume.
    """
    total, covered, last, final = 0.0, 0, 0, None
    for entry in log_history:
        if "loss" not in entry or "step" not in entry:
            continue
        span = entry["step"] - last
        if span <= 0:  # a repeated step (a log written again after a resume)
            continue
        total += float(entry["loss"]) * span
        covered, last, final = covered + span, entry["step"], float(entry["loss"])
    if final is None:
        return {}
    return {"final_loss": final, "mean_loss": total / covered}


class LogAtSaveCallback(TrainerCallback):
    """Log the loss at every checkpoint and at the last step.

    A checkpoint then holds the losses of every step before it, so the stage's mean loss after
    `--resume` equals an uninterrupted run's, and `final_loss` is always the last step's window.
    Runs after DefaultFlowCallback, which decides `should_save` / `should_training_stop`.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or control.should_training_stop or state.global_step >= state.max_steps:
            control.should_log = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True


class RichProgressCallback(TrainerCallback):
    """One progress bar per training run (a stage, a zoo pretraining), with loss and throughput
    when a MetricsCallback feeds it."""

    def __init__(self, description: str, progress, metrics: MetricsCallback | None = None):
        self.description, self.progress, self.metrics = description, progress, metrics
        self.task = None
        if metrics is not None:
            metrics.on_update = self._refresh

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.task = self.progress.add_task(self.description, total=state.max_steps, completed=state.global_step, info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.task is not None:
            self.progress.update(self.task, completed=state.global_step)

    def _refresh(self, last: dict[str, float]) -> None:
        if self.task is None:
            return
        parts = []
        if "loss" in last:
            parts.append(f"loss {last['loss']:.4f}")
        if "samples_per_s" in last:
            parts.append(f"{last['samples_per_s']:.1f} samples/s")
        if "tokens_per_s" in last:
            parts.append(f"{last['tokens_per_s']:.0f} tok/s")
        self.progress.update(self.task, info=" · ".join(parts))

    def on_train_end(self, args, state, control, **kwargs):
        if self.task is not None:
            self.progress.update(self.task, completed=state.max_steps)


class EpochEndCallback(TrainerCallback):
    """Calls `fn(epoch)` after each epoch on every rank (evaluation every epoch, for plateau
    studies): the evaluation is sharded, each rank generating for its share and rank 0 gathering,
    so a rank left out would leave the others waiting in the gather (or, as gloo reports, meet
    them in the next training collective with the wrong message)."""

    def __init__(self, fn: Callable[[int], None], evaluated: Callable[[int], bool] | None = None):
        self.fn = fn
        self.evaluated = evaluated  # epochs a resumed stage holds already (the same answer on every rank)

    def on_train_begin(self, args, state, control, **kwargs):
        # Resumed from a checkpoint taken at the end of an epoch: the Trainer goes on with the
        # next epoch, so an evaluation the interruption cut short is made now, on that epoch's weights.
        epoch = state.epoch or 0
        if self.evaluated is not None and epoch >= 1 and epoch == int(epoch) and not self.evaluated(int(epoch)):
            self.fn(int(epoch))

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.fn(round(state.epoch or 0))
