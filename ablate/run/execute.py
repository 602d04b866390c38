"""Carry out a stage plan: load each reused stage, train (or resume) each other one, in order.

The plan said what to expect; the loop asks the store again under each stage's lock, so a
stage that another study worker finished in the meantime is loaded instead of trained twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ablate.run.plan import PlannedStage, Resume, StagePlan, has_curve
from ablate.run.stage_store import StageStore


@dataclass
class StageOutcome:
    name: str
    key: str
    reused_from: str | None  # MLflow run id that trained it, when reused
    seconds: float
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    why: str = ""  # the plan's reason: why it was reused, resumed or trained
    # records whose opening gpt turn the template dropped / whose closing human turn it masked
    turn_edges: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # settings this machine ignored, and the like


@dataclass
class RunContext:
    """What every stage of one run shares."""

    recipe: Any
    vlm: Any
    store: StageStore
    tracker: Any
    progress: Any
    base_dir: Path | None
    reuse: bool
    stage_features: list[Any]  # per stage: its FeatureCache, or None to encode every batch
    evaluate_epoch: Callable[[int], None] | None  # set when the last stage records an eval curve
    epoch_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    skipped: int = 0
    last_epoch_eval: Any = None  # the latest EpochEvaluation this process ran (ablate.run.epoch_eval)


def carry_out(plan: StagePlan, ctx: RunContext) -> list[StageOutcome]:
    outcomes = []
    for index, entry in enumerate(plan.stages):
        last = index == len(plan.stages) - 1
        curve_key = plan.curve_key if last and ctx.evaluate_epoch is not None else None
        with ctx.store.claim(entry.key, usable=lambda meta: ctx.reuse and has_curve(meta, curve_key)) as meta:
            if meta is not None:
                outcomes.append(_reuse(entry, meta, ctx, curve_key))
            else:
                outcomes.append(_train(entry, ctx, index, curve_key))
    return outcomes


def _reuse(entry: PlannedStage, meta: dict[str, Any], ctx: RunContext, curve_key: str | None) -> StageOutcome:
    from ablate.model.trainable import mark_reused

    ctx.store.load_into(entry.key, ctx.vlm)
    mark_reused(ctx.vlm, entry.stage.trainable)
    trained_by = meta.get("run_id") or "?"
    ctx.tracker.set_tags({f"ablate.stage.{entry.stage.name}.reused_from": trained_by,
                          f"ablate.stage.{entry.stage.name}.key": entry.key})
    curve = (meta.get("epoch_eval") or {}).get(curve_key) or {} if curve_key else {}
    for epoch, metrics in sorted((int(e), m) for e, m in curve.items()):
        log_epoch(ctx, epoch, metrics)
    edges = meta.get("turn_edges") or {}
    _log_turn_edges(ctx, entry.stage.name, edges)
    if ctx.tracker.run_id is not None and meta.get("run_id") == ctx.tracker.run_id:
        # Stored by this very run before it was stopped (--resume): its bad samples are the run's.
        ctx.skipped += meta.get("skipped_samples", 0)
    return StageOutcome(entry.stage.name, entry.key, trained_by, 0.0, meta.get("steps", 0), meta.get("metrics", {}),
                        why=f"identical stage trained by run {trained_by}", turn_edges=edges)


def _train(entry: PlannedStage, ctx: RunContext, index: int, curve_key: str | None) -> StageOutcome:
    from ablate.ranks import ranks

    from ablate.data.pipeline import turn_edge_counts
    from ablate.model.trainable import apply_trainable, merge_lora
    from ablate.train.stage import run_stage, stage_notes
    from ablate.train.trainer import stage_state_dict

    stage, vlm, started, skipped_before = entry.stage, ctx.vlm, time.perf_counter(), ctx.skipped
    dataset = _tokenized(entry, ctx)
    edges = turn_edge_counts(dataset)
    _log_turn_edges(ctx, stage.name, edges)
    vlm.max_length = stage.max_length
    apply_trainable(vlm, stage.trainable)
    notes = stage_notes(stage)
    _announce_notes(stage.name, notes, ctx)
    # The collator is made (and a ZeRO-3 stage's features stored) before run_stage builds the
    # stage's Trainer and DeepSpeed engine: until then the encoder is whole on every rank.
    collator = _collator(ctx, index, dataset)
    epoch_end = _epoch_end(ctx, entry, curve_key)
    result = run_stage(
        vlm=vlm, stage=stage, seed=ctx.recipe.stage_seed(stage), dataset=dataset, collator=collator,
        workdir=ctx.store.dir(entry.key), tracker=ctx.tracker, progress=ctx.progress, base_dir=ctx.base_dir,
        resume_from=entry.action.checkpoint if isinstance(entry.action, Resume) else None,
        epoch_end=epoch_end, epoch_evaluated=(lambda epoch: epoch in ctx.epoch_metrics) if epoch_end else None,
    )
    merge_lora(vlm)
    ctx.skipped += len(result.skipped_ids)  # those the collator left out; the source's were counted before
    if ranks().is_main_process:
        meta = {"stage": stage.name, "run_id": ctx.tracker.run_id, "steps": result.steps, "seconds": result.seconds,
                "metrics": result.metrics, "inputs": entry.inputs.to_json(), "turn_edges": edges,
                "skipped_when_read": result.skipped_ids, "skipped_samples": ctx.skipped - skipped_before}
        if curve_key is not None:
            meta["epoch_eval"] = {curve_key: ctx.epoch_metrics}
        ctx.store.save(entry.key, stage_state_dict(vlm, stage.trainable), meta)
    ctx.tracker.set_tags({f"ablate.stage.{stage.name}.key": entry.key,
                          f"ablate.stage.{stage.name}.why": entry.action.why[:5000]})
    return StageOutcome(stage.name, entry.key, None, time.perf_counter() - started, result.steps, result.metrics,
                        why=entry.action.why, turn_edges=edges, notes=notes)


def log_epoch(ctx: RunContext, epoch: int, metrics: dict[str, float]) -> None:
    """One point of the run's per-epoch curve (rank 0 evaluates; the others' trackers write nothing)."""
    ctx.epoch_metrics[epoch] = metrics
    ctx.tracker.log_metrics({f"epoch_eval/{k}": v for k, v in metrics.items()}, step=epoch)


def _epoch_end(ctx: RunContext, entry: PlannedStage, curve_key: str | None) -> Callable[[int], None] | None:
    """The evaluation after each epoch of the last stage, each kept in the stage's folder as it
    ends; a resumed stage starts from the epochs kept there (logged again only when another
    MLflow run logged them)."""
    if curve_key is None:
        return None
    from ablate.ranks import ranks
    from ablate.run.epoch_curve import forget_curve, keep_curve, kept_curve

    stage_dir = ctx.store.dir(entry.key)
    if not isinstance(entry.action, Resume):
        if ranks().is_main_process:
            forget_curve(stage_dir)
    else:  # every rank reads it: they decide together what to evaluate
        kept, logged_by = kept_curve(stage_dir, curve_key)
        for epoch, metrics in sorted(kept.items()):
            if logged_by == ctx.tracker.run_id:
                ctx.epoch_metrics[epoch] = metrics
            else:
                log_epoch(ctx, epoch, metrics)

    def evaluate_and_keep(epoch: int) -> None:
        ctx.evaluate_epoch(epoch)
        if ranks().is_main_process:
            keep_curve(stage_dir, curve_key, ctx.epoch_metrics, ctx.tracker.run_id)

    return evaluate_and_keep


def _log_turn_edges(ctx: RunContext, stage: str, edges: dict[str, int]) -> None:
    if edges:
        ctx.tracker.log_metrics({f"data/{stage}/{name}": count for name, count in edges.items()})


def _announce_notes(stage_name: str, notes: list[str], ctx: RunContext) -> None:
    if not notes:
        return
    ctx.tracker.set_tags({f"ablate.stage.{stage_name}.notes": "; ".join(notes)[:5000]})
    if ctx.progress is not None:
        for note in notes:
            ctx.progress.console.print(f"stage {stage_name}: {note}", highlight=False, markup=False)


def _tokenized(entry: PlannedStage, ctx: RunContext):
    """The stage's data, tokenized with its template as training reads it (ablate.data.pipeline).

    Under torchrun rank 0 writes the samples to Arrow while the others wait; then every rank
    memory-maps that file and tokenizes only the batches it trains on."""
    from ablate.ranks import ranks
    from ablate.registry import registries

    recipe, stage = ctx.recipe, entry.stage
    template = registries().template.get(stage.template.type).build(stage.template)
    with ranks().main_process_first():
        dataset = tokenize(entry.data, template, ctx.vlm.tokenizer, recipe, stage)
    ctx.skipped += len(entry.data.skipped)
    return dataset


def _collator(ctx: RunContext, index: int, dataset):
    from ablate.data.collate import VLMCollator

    stage = ctx.recipe.stages[index]
    return VLMCollator(tokenizer=ctx.vlm.tokenizer, image_processor=ctx.vlm.image_processor,
                       image_aspect_ratio=stage.image_aspect_ratio, batch_feature_lookup=_feature_lookup(ctx, index, dataset))


def _feature_lookup(ctx: RunContext, index: int, dataset):
    """The stage's `batch_feature_lookup`: its cache's, or None to encode every batch."""
    from ablate.ranks import ranks
    from ablate.recipe.deepspeed import zero_stage
    from ablate.train.stage import deepspeed_settings

    cache, stage, state = ctx.stage_features[index], ctx.recipe.stages[index], ranks()
    if cache is None:
        return None
    zero3 = zero_stage(deepspeed_settings(stage, ctx.base_dir)) == 3
    if zero3 or stage.dataloader_workers > 0 or state.num_processes > 1:
        # DataLoader workers cannot run a GPU encoder, only rank 0 writes the cache, and ZeRO-3
        # partitions the encoder once the stage starts: rank 0 encodes every image first, from
        # the whole encoder, while the other ranks wait; then they all read.
        with state.main_process_first():
            if state.is_main_process:
                cache.prefill(dataset["image"])
    return cache.stored_lookup if zero3 else cache.batch_lookup


def tokenize(source, template, tokenizer, recipe, stage):
    from ablate.data.pipeline import build_dataset

    return build_dataset(source, template, tokenizer, cache_dir=recipe.data.cache_dir,
                         max_length=stage.max_length, on_bad_sample=recipe.data.on_bad_sample)
