"""Run one training stage on transformers' Trainer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from ablate.recipe.schema import Stage


@dataclass
class StageResult:
    name: str
    steps: int
    seconds: float
    metrics: dict[str, float]
    skipped_ids: list[str] = field(default_factory=list)  # samples the collator left out (on_bad_sample: skip)


def deepspeed_config(stage: Stage, base_dir: Path | None) -> str | dict | None:
    """Inline dicts pass through; relative paths resolve against the recipe's folder, then
    against ablate's shipped configs (so `deepspeed: zero2.json` works anywhere)."""
    ds = stage.deepspeed
    if ds is None or isinstance(ds, dict):
        return ds
    from ablate.errors import AblateError

    candidates = [Path(ds).expanduser()]
    if base_dir is not None:
        candidates.append(base_dir / ds)
    candidates.append(Path(__file__).resolve().parent.parent / "configs" / "deepspeed" / Path(ds).name)
    for path in candidates:
        if path.is_file():
            return str(path)
    raise AblateError(f"stages.{stage.name}.deepspeed: config file {ds!r} not found (looked in {', '.join(map(str, candidates))})")


def deepspeed_settings(stage: Stage, base_dir: Path | None) -> dict | None:
    """The stage's DeepSpeed config as a dict, its gradient clipping left to the stage's
    `max_grad_norm` (`ablate.recipe.deepspeed`); an AblateError naming the file when it is unusable."""
    from ablate.errors import AblateError
    from ablate.recipe.deepspeed import clipping_from_stage, clipping_problem

    source = deepspeed_config(stage, base_dir)
    if source is None:
        return None
    where = f"stages.{stage.name}.deepspeed" + ("" if isinstance(source, dict) else f" ({source})")
    config = source
    if not isinstance(source, dict):
        try:
            config = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise AblateError(f"{where}: not a readable JSON file ({err})") from None
    if not isinstance(config, dict):
        raise AblateError(f"{where}: a DeepSpeed config is a JSON object, got {type(config).__name__}")
    if problem := clipping_problem(config, stage.max_grad_norm):
        raise AblateError(f"{where}: {problem}")
    return clipping_from_stage(config)


def tf32_available() -> bool:
    """Whether this machine has TF32 matmuls (CUDA on an Ampere or newer GPU), as transformers checks."""
    from transformers.utils import is_torch_tf32_available

    return is_torch_tf32_available()


def stage_notes(stage: Stage) -> list[str]:
    """What of the stage's settings this machine ignores, for the run summary."""
    if stage.tf32 and not tf32_available():
        return ["tf32 ignored: no TF32 here (it needs CUDA on an Ampere or newer GPU)"]
    return []


def training_arguments(stage: Stage, seed: int, output_dir: Path, deepspeed: str | dict | None):
    import os

    import torch
    from transformers import TrainingArguments

    from ablate.ranks import collective_timeout

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=stage.batch_size,
        gradient_accumulation_steps=stage.grad_accum,
        learning_rate=stage.lr,
        weight_decay=stage.weight_decay,
        warmup_steps=stage.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=stage.scheduler,
        optim=stage.optimizer,
        num_train_epochs=stage.epochs,
        max_steps=stage.max_steps,
        bf16=stage.precision == "bf16",
        fp16=stage.precision == "fp16",
        # The Trainer raises on tf32 without a TF32 GPU; there it is left alone (see stage_notes).
        tf32=True if stage.tf32 and tf32_available() else None,
        max_grad_norm=stage.max_grad_norm or 0.0,  # 0: the Trainer and DeepSpeed do not clip
        **_checkpointing_arg(stage.gradient_checkpointing),
        seed=seed,
        data_seed=seed,
        logging_steps=stage.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if stage.save_steps else "epoch",
        save_steps=stage.save_steps or 500,
        save_total_limit=stage.save_total_limit,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=stage.dataloader_workers,
        train_sampling_strategy="group_by_length" if stage.group_by_length else "random",
        deepspeed=deepspeed,
        ddp_timeout=int(collective_timeout().total_seconds()),
        use_cpu=not torch.cuda.is_available(),
        # gloo for multi-process CPU runs (torchrun on a machine without GPUs)
        ddp_backend="gloo" if distributed and not torch.cuda.is_available() else None,
    )


def set_training_forward(vlm, stage: Stage, deepspeed: dict | None) -> None:
    """How `vlm`'s training forward runs the stage: packed or padded batches, and the loss path
    this machine can take for the stage's `loss`; an AblateError naming the field when the LLM
    cannot be packed, or an explicit loss cannot run here."""
    import torch

    from ablate.errors import AblateError
    from ablate.model.loss import resolve_loss_mode
    from ablate.model.packing import packing_problem
    from ablate.recipe.deepspeed import zero_stage

    if stage.packing and (problem := packing_problem(vlm.llm)):
        raise AblateError(f"stages.{stage.name}.packing: {problem}; set packing: false")
    vlm.packing = stage.packing
    vlm.loss_mode = resolve_loss_mode(stage.loss, vlm.llm, cuda=torch.cuda.is_available(),
                                      partitioned=zero_stage(deepspeed) == 3, where=f"stages.{stage.name}.loss")


def _checkpointing_arg(enabled: bool) -> dict[str, bool]:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": enabled}


def run_stage(
    *,
    vlm,
    stage: Stage,
    seed: int,
    dataset,
    collator,
    workdir: Path,
    tracker,
    progress,
    resume_from: Path | None = None,
    base_dir: Path | None = None,
    epoch_end: Callable[[int], None] | None = None,
    epoch_evaluated: Callable[[int], bool] | None = None,
) -> StageResult:
    """Train `vlm` in place for one stage; checkpoints go to `workdir/checkpoints`.

    With `resume_from` (a checkpoint there, see `last_complete_checkpoint`), training continues
    from it (model, optimizer, scheduler, RNG and data position), so the result equals an
    uninterrupted run's. `epoch_end(epoch)` runs after each epoch on every rank; with
    `epoch_evaluated`, a resumed stage also runs it for the epoch its checkpoint ends, unless
    that says it is done.
    """
    from transformers.trainer_callback import PrinterCallback

    from ablate.train.callbacks import (EpochEndCallback, LogAtSaveCallback, MetricsCallback, RichProgressCallback,
                                        ThroughputMeter, stage_losses)
    from ablate.train.trainer import VLMTrainer, release_deepspeed

    ckpt_dir = workdir / "checkpoints"
    last = resume_from
    if last is not None:
        tracker.set_tags({f"ablate.stage.{stage.name}.resumed_from": last.name})
    if last is not None and _is_final(last):
        result = _finish_from_checkpoint(vlm, stage, last, workdir)
        if epoch_end is not None and epoch_evaluated is not None:
            _evaluate_final_epoch_if_missing(last, epoch_end, epoch_evaluated)
        return result

    deepspeed = deepspeed_settings(stage, base_dir)
    args = training_arguments(stage, seed, ckpt_dir, deepspeed)
    set_training_forward(vlm, stage, deepspeed)
    global_batch = stage.batch_size * stage.grad_accum * max(args.world_size, 1)
    metrics = MetricsCallback(stage.name, tracker, ThroughputMeter(vlm, global_batch))
    callbacks = [LogAtSaveCallback(), metrics]
    if progress is not None:
        callbacks.append(RichProgressCallback(f"stage {stage.name}", progress, metrics))
    trainer = VLMTrainer(
        model=vlm, args=args, train_dataset=dataset, data_collator=collator,
        callbacks=callbacks, connector_lr=stage.connector_lr, group_by_modality_length=stage.group_by_modality_length,
    )
    trainer.remove_callback(PrinterCallback)
    if epoch_end is not None:
        trainer.add_callback(EpochEndCallback(partial(_on_whole_weights, trainer, epoch_end), epoch_evaluated))
    output = trainer.train(resume_from_checkpoint=str(last) if last is not None else None)
    release_deepspeed(trainer)
    result = StageResult(stage.name, output.global_step, float(output.metrics.get("train_runtime", 0.0)),
                         {**metrics.last, **stage_losses(trainer.state.log_history)}, trainer.skipped_samples.gather())
    _write_state(workdir, output.global_step, output.metrics)
    return result


def _evaluate_final_epoch_if_missing(checkpoint: Path, epoch_end: Callable[[int], None],
                                     epoch_evaluated: Callable[[int], bool]) -> None:
    """Killed before the last epoch's evaluation ended: its weights are the final checkpoint's, loaded."""
    final_epoch = round(read_trainer_state(checkpoint).get("epoch") or 0)
    if not epoch_evaluated(final_epoch):
        epoch_end(final_epoch)


def _on_whole_weights(trainer, fn: Callable[[int], None], epoch: int) -> None:
    from ablate.train.trainer import whole_weights

    with whole_weights(trainer):
        fn(epoch)


def last_complete_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest `checkpoint-N` holding trainer_state.json, which Trainer writes last: a run
    killed while writing a checkpoint resumes from the one before, not from a partial one."""
    if not ckpt_dir.is_dir():
        return None
    steps = []
    for path in ckpt_dir.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / TRAINER_STATE).is_file():
            steps.append((int(suffix), path))
    return max(steps)[1] if steps else None


TRAINER_STATE = "trainer_state.json"
CHECKPOINT_WEIGHTS = "model.safetensors"


def check_checkpoint(checkpoint: Path) -> None:
    """An AblateError naming the file, before any training, when the checkpoint's files are not
    the ones its save wrote (the manifest: truncated, flipped bytes, missing), or when its weights
    do not open as safetensors (safetensors checks the header covers the file)."""
    from safetensors import SafetensorError, safe_open

    from ablate.errors import AblateError
    from ablate.manifest import manifest_problem

    if problem := manifest_problem(checkpoint):
        raise AblateError(f"checkpoint {checkpoint} is damaged: {problem}; delete it to resume from the "
                          f"checkpoint before it")
    path = checkpoint / CHECKPOINT_WEIGHTS
    if not path.is_file() and any(checkpoint.glob("global_step*")):
        return  # ZeRO-3 without gathered weights: the checkpoint is DeepSpeed's own files
    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as err:
        raise AblateError(f"checkpoint {path} cannot be read ({err}); delete {checkpoint} to resume from "
                          f"the checkpoint before it") from None


def read_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's trainer_state.json; an AblateError naming it when it is unreadable."""
    from ablate.errors import AblateError

    path = checkpoint / TRAINER_STATE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise AblateError(f"checkpoint {path} cannot be read ({err}); delete {checkpoint} to resume from "
                          f"the checkpoint before it") from None
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        raise AblateError(f"checkpoint {path} has no global_step; delete {checkpoint} to resume from the one before")
    return state


def _is_final(checkpoint: Path) -> bool:
    state = read_trainer_state(checkpoint)
    return state.get("max_steps", 0) > 0 and state["global_step"] >= state["max_steps"]


def _finish_from_checkpoint(vlm, stage: Stage, checkpoint: Path, workdir: Path) -> StageResult:
    """The run was killed after the stage's last checkpoint, before the stage was stored.

    Resuming Trainer from its final checkpoint would train one extra step (transformers runs a
    step before checking max_steps), so load that checkpoint's weights and report its logs.
    """
    from ablate.train.callbacks import stage_losses, stored_skipped_ids
    from ablate.train.trainer import load_checkpoint_weights

    load_checkpoint_weights(vlm, checkpoint)
    state = read_trainer_state(checkpoint)
    history = state.get("log_history", [])
    last = {}
    for entry in history:
        last.update({k: float(v) for k, v in entry.items() if isinstance(v, (int, float)) and k not in ("epoch", "step")})
    last = {{"learning_rate": "lr"}.get(k, k): v for k, v in last.items() if k != "train_loss"}
    _write_state(workdir, state["global_step"], {"resumed_from": str(checkpoint)})
    return StageResult(stage.name, state["global_step"], 0.0, {**last, **stage_losses(history)},
                       stored_skipped_ids(state.get("stateful_callbacks")))


def _write_state(workdir: Path, global_step: int, metrics: dict[str, Any]) -> None:
    from ablate.ranks import ranks

    if not ranks().is_main_process:
        return
    (workdir / "trainer_state.json").write_text(json.dumps({"global_step": global_step, **metrics}, indent=2))
