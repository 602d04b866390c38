"""A plan as text lines and as JSON.

JSON schema (stable; more keys may come, these stay):
    recipe: {"stages": [{"name", "params_total", "params_trainable", "visual_tokens",
              "flops_per_sample", "memory_per_gpu_gib", "gpu_hours", ...}], "gpu_hours_total", ...}
    study:  {"cells": [{"name", "stages": [...as above], "gpu_hours_total"}], "gpu_hours_total", ...}
`gpu_hours` is hours on the planned GPUs (wall clock, as LLaVA reports "5.5 h on 8 x A100");
`device_hours` is that times the GPU count. Unknown figures (no data size) are null.
"""

from __future__ import annotations

from typing import Any

from ablate.plan.estimate import RecipePlan, StageEstimate
from ablate.plan.memory import GIB
from ablate.plan.params import COMPONENTS
from ablate.plan.study import StudyPlan


def recipe_json(plan: RecipePlan) -> dict[str, Any]:
    settings = plan.settings
    return {"recipe": plan.name, "gpu": settings.gpu.key, "gpus": settings.gpus, "notes": plan.notes,
            "stages": [stage_json(stage, settings.gpus) for stage in plan.stages],
            "gpu_hours_total": plan.hours_total}


def study_json(plan: StudyPlan) -> dict[str, Any]:
    cells = []
    for index, cell in enumerate(plan.cells):
        body = recipe_json(cell.plan)
        for stage_body, stage in zip(body["stages"], cell.plan.stages):
            stage_body["shared_with"] = plan.shared_with(index, stage.key)  # counted once, in that cell
        cells.append({"name": cell.name, "stages": body["stages"], "gpu_hours_total": body["gpu_hours_total"],
                      "notes": body["notes"]})
    first = plan.cells[0].plan.settings if plan.cells else None
    return {"study": plan.name, "scale": plan.scale, "gpu": first and first.gpu.key, "gpus": first and first.gpus,
            "cells": cells, "gpu_hours_total": plan.hours_total,
            "gpu_hours_without_reuse": plan.hours_without_reuse}


def stage_json(stage: StageEstimate, gpus: int) -> dict[str, Any]:
    memory = stage.memory
    body = {
        "name": stage.name,
        "params_total": sum(p.total for p in stage.params.values()),
        "params_trainable": sum(p.trainable for p in stage.params.values()),
        "visual_tokens": stage.visual_tokens,
        "flops_per_sample": stage.flops_per_sample,
        "memory_per_gpu_gib": stage.memory_gib,
        "gpu_hours": stage.hours,
        "params": {name: {"total": p.total, "trainable": p.trainable} for name, p in stage.params.items()},
        "records": stage.data.records, "samples": stage.samples, "data": stage.data.how,
        "length_distribution": stage.data.distribution, "flops_per_epoch": stage.flops_per_epoch,
        "zero_stage": stage.zero, "sequence_for_memory": stage.sequence,
        "memory_gib": {"weights": memory.weights / GIB, "gradients": memory.gradients / GIB,
                       "optimizer": memory.optimizer / GIB, "activations": memory.activations / GIB,
                       "activations_checkpointed": memory.activations_checkpointed / GIB,
                       "gradient_checkpointing": stage.stage.gradient_checkpointing,
                       "gathered_for_eval": memory.gathered_for_eval / GIB,
                       "logits": "full" if memory.full_logits else "chunked"},
        "mfu": stage.mfu.value, "mfu_source": stage.mfu.source, "peak_tflops": stage.peak_flops / 1e12,
        "device_hours": None if stage.hours is None else stage.hours * gpus,
    }
    if stage.published is not None:
        body["published"] = {"what": stage.published.what, "hours": stage.published.hours,
                             "source": stage.published.source, "ratio": stage.hours / stage.published.hours}
    return body


def recipe_lines(plan: RecipePlan, shared: dict[str, str] | None = None) -> list[str]:
    """The plan's text; `shared` names, per stage, an earlier study cell that trains the same stage."""
    gpu, gpus = plan.settings.gpu, plan.settings.gpus
    lines = [f"plan: {plan.name} on {gpus} x {gpu.key} ({gpu.name}: {gpu.bf16_tflops:g} TFLOP/s bf16 dense, "
             f"{gpu.memory_gib:g} GiB each)", f"model: {plan.model_line}"]
    lines += [f"  note: {note}" for note in plan.notes]
    lines += [f"MFU {value:g}: {source}" for value, source in dict.fromkeys((s.mfu.value, s.mfu.source)
                                                                           for s in plan.stages)]
    for stage in plan.stages:
        block = stage_lines(stage, gpus, gpu.key, gpu.memory_gib)
        if (other := (shared or {}).get(stage.name)) is not None:
            block[0] += f"; the same stage as in cell {other}: trained once, counted there"
        lines += ["", *block]
    lines += ["", f"total: {_hours(plan.hours_total, gpus, gpu.key)}"]
    return lines


def study_lines(plan: StudyPlan) -> list[str]:
    lines = [f"study {plan.name} ({plan.scale} scale): {len(plan.cells)} cells"]
    for index, cell in enumerate(plan.cells):
        lines += ["", f"=== cell {cell.name}"]
        shared = {stage.name: other for stage in cell.plan.stages
                  if (other := plan.shared_with(index, stage.key)) is not None}
        lines += ["  " + line if line else line for line in recipe_lines(cell.plan, shared)]
    settings = plan.cells[0].plan.settings if plan.cells else None
    gpus, key = (settings.gpus, settings.gpu.key) if settings else (0, "")
    lines += ["", f"study total: {_hours(plan.hours_total, gpus, key)}, each stage shared by cells counted once "
                  f"({_hours(plan.hours_without_reuse, gpus, key)} without that reuse)"]
    return lines


def stage_lines(stage: StageEstimate, gpus: int, gpu_key: str, memory_gib: float) -> list[str]:
    s = stage.stage
    zero = "no DeepSpeed (DDP)" if stage.zero is None else f"ZeRO-{stage.zero}"
    ckpt = "gradient checkpointing" if s.gradient_checkpointing else "no gradient checkpointing"
    lines = [f"stage {stage.name}: {zero}, {s.precision}, batch {s.batch_size} per GPU x {gpus} GPUs x "
             f"{s.grad_accum} accumulation, max length {s.max_length}, {ckpt}",
             "  parameters  " + " · ".join(f"{name} {_count(stage.params[name].total)} "
                                           f"(trainable {_count(stage.params[name].trainable)})" for name in COMPONENTS),
             f"  visual      {stage.visual_tokens} tokens per image",
             f"  data        {stage.data.how}"]
    if stage.data.distribution:
        d = stage.data.distribution
        lines.append(f"  lengths     LLM positions (text + visual): min {d['min']}, median {d['median']}, "
                     f"p95 {d['p95']}, max {d['max']}, mean {stage.data.mean_positions:.0f}")
    elif stage.data.lengths:
        lines.append(f"  lengths     typical records (not measured): mean {stage.data.mean_positions:.0f} LLM positions "
                     f"(text + visual), longest part {stage.sequence}")
    lines.append("  FLOPs       " + _flops_line(stage))
    lines.append("  memory/GPU  " + _memory_line(stage, memory_gib))
    lines.append(f"  time        {_hours(stage.hours, gpus, gpu_key)} at MFU {stage.mfu.value:g} of "
                 f"{stage.peak_flops / 1e12:g} TFLOP/s per GPU ({s.precision}{', tf32' if s.tf32 else ''})")
    if stage.published is not None and stage.hours is not None:
        p = stage.published
        lines.append(f"  published   {p.hours:g} h ({p.what}; {p.source}): estimate/published "
                     f"{stage.hours / p.hours:.2f}")
    return lines


def _flops_line(stage: StageEstimate) -> str:
    if stage.flops_per_sample is None:
        return "unknown: the stage's data size is not known"
    epochs = f"{stage.samples / stage.data.records:g} epoch(s)" if stage.data.records else "its max_steps"
    per_epoch = "" if stage.flops_per_epoch is None else f", {_flops(stage.flops_per_epoch)} per epoch"
    return f"{_flops(stage.flops_per_sample)} per sample{per_epoch}, x {epochs}"


def _memory_line(stage: StageEstimate, memory_gib: float) -> str:
    m = stage.memory
    states = (f"weights {_gib(m.weights)} + gradients {_gib(m.gradients)} + optimizer {_gib(m.optimizer)} GiB")
    fits = "fits" if stage.memory_gib <= memory_gib else "does NOT fit"
    return (f"{states}; activations {_gib(m.activations_checkpointed)} GiB checkpointed, {_gib(m.activations)} "
            f"without (batches of {stage.stage.batch_size} x {stage.sequence} positions, "
            f"{'full logits' if m.full_logits else 'logits a chunk at a time'}): "
            f"{_gib(m.total(True))} GiB with checkpointing, {_gib(m.total(False))} without"
            f"{_eval_clause(m)}; as the stage runs, it {fits} in {memory_gib:g} GiB")


def _eval_clause(m) -> str:
    if not m.gathered_for_eval:
        return ""
    return (f"; evaluating after each epoch, ZeRO-3's weights are gathered whole: +{_gib(m.gathered_for_eval)} GiB, "
            f"{_gib(m.states + m.gathered_for_eval)} GiB")


def _hours(hours: float | None, gpus: int, gpu_key: str) -> str:
    if hours is None:
        return "unknown (a stage's data size is not known)"
    return f"{_duration(hours)} on {gpus} x {gpu_key} ({hours * gpus:.3g} GPU-hours)"


def _duration(hours: float) -> str:
    if hours >= 1:
        return f"{hours:.2f} h"
    return f"{hours * 60:.3g} min" if hours * 60 >= 1 else f"{hours * 3600:.3g} s"


def _gib(size: float) -> str:
    return f"{size / GIB:.3g}"


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _flops(value: float) -> str:
    for unit, size in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.3g} FLOP"
