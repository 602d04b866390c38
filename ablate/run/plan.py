"""The stage plan: for each stage, before anything trains, whether it is reused, resumed or
trained, and why. `ablate validate --plan` prints it; `ablate run` prints it and carries it out.

    Reuse(why)               an identical stage is stored: load its weights
    Resume(checkpoint, why)  --resume and this stage left a checkpoint: continue from it
    Train(why)               train it ("data changed: <file>", "not trained before", ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from ablate.fingerprint import content_hash
from ablate.run.stage_inputs import StageInputs, checkpoint_inputs, config_hash, samples_digest, why_retrained
from ablate.run.stage_store import StageStore


@dataclass(frozen=True)
class Reuse:
    why: str


@dataclass(frozen=True)
class Resume:
    checkpoint: Path
    why: str


@dataclass(frozen=True)
class Train:
    why: str


Action = Union[Reuse, Resume, Train]


@dataclass
class PlannedStage:
    stage: Any  # recipe Stage
    inputs: StageInputs
    action: Action
    data: Any  # the stage's built mixture (a DataSource), reused by the loop

    @property
    def key(self) -> str:
        return self.inputs.key


@dataclass
class StagePlan:
    stages: list[PlannedStage]
    curve_key: str | None  # per-epoch eval curve the last stage stores, when the recipe asks for one

    def keys(self) -> list[str]:
        return [entry.key for entry in self.stages]

    def lines(self) -> list[str]:
        out = []
        for entry in self.stages:
            action = type(entry.action).__name__
            where = f" from {entry.action.checkpoint.name}" if isinstance(entry.action, Resume) else ""
            out.append(f"{entry.stage.name}: {action}{where} [{entry.key}] {entry.action.why}")
        return out


def stage_inputs(recipe, world_size: int) -> list[tuple[Any, StageInputs, Any]]:
    """(stage, its inputs, its built data) for every stage: reads data and checkpoint files only."""
    checkpoints, tokenizer = checkpoint_inputs(recipe.model)
    out, previous = [], None
    for index, stage in enumerate(recipe.stages):
        data = build_stage_data(recipe, stage)
        inputs = StageInputs(
            config=config_hash(recipe, stage, first=index == 0),
            samples=samples_digest(data),
            data_files=dict(data.files),
            checkpoints=checkpoints,
            tokenizer=tokenizer,
            global_batch=stage.batch_size * stage.grad_accum * world_size,
            world_size=world_size,
            previous=previous,
        )
        out.append((stage, inputs, data))
        previous = inputs.key
    return out


def plan_stages(recipe, *, store: StageStore, world_size: int, resume: bool = False,
                reuse: bool = True) -> StagePlan:
    """The plan for `recipe` against `store`: nothing is trained or loaded."""
    curve_key = epoch_curve_key(recipe)
    entries: list[PlannedStage] = []
    for index, (stage, inputs, data) in enumerate(stage_inputs(recipe, world_size)):
        last = index == len(recipe.stages) - 1
        action = _action(store, inputs, resume=resume, reuse=reuse, curve_key=curve_key if last else None,
                         previous_name=recipe.stages[index - 1].name if index else None)
        entries.append(PlannedStage(stage, inputs, action, data))
    return StagePlan(entries, curve_key)


def _action(store: StageStore, inputs: StageInputs, *, resume: bool, reuse: bool, curve_key: str | None,
            previous_name: str | None) -> Action:
    from ablate.train.stage import check_checkpoint, last_complete_checkpoint

    key = inputs.key
    if store.is_done(key):
        if not reuse:
            return Train("--no-reuse: an identical stage is stored but retrained")
        meta = store.meta(key)  # checks the weights: a corrupted copy is named, never loaded
        if not has_curve(meta, curve_key):
            return Train("the stored stage has no per-epoch eval curve for this eval section")
        return Reuse(f"identical stage trained by run {meta.get('run_id') or '?'}")
    if resume and (checkpoint := last_complete_checkpoint(store.dir(key) / "checkpoints")) is not None:
        check_checkpoint(checkpoint)  # a damaged checkpoint is named now, not mid-stage
        return Resume(checkpoint, "--resume: an interrupted run of this stage left a checkpoint")
    return Train(why_retrained(inputs, store.replaced(inputs.config), previous_name))


def has_curve(meta: dict[str, Any], curve_key: str | None) -> bool:
    return curve_key is None or curve_key in (meta.get("epoch_eval") or {})


def build_stage_data(recipe, stage):
    """The stage's mixture, built through the registry (its samples are read by the digest)."""
    from ablate.registry import registries

    mixture = registries().mixture.get(stage.data.type)
    return mixture.build(stage.data, answer_format=recipe.answer_format, on_bad_sample=recipe.data.on_bad_sample)


def epoch_curve_key(recipe) -> str | None:
    """What per-epoch scores depend on besides the stage itself (the eval section and answer
    format), when the recipe asks for them; None otherwise."""
    if recipe.eval is None or not recipe.eval.each_epoch or not recipe.stages:
        return None
    return content_hash({"eval": recipe.eval.model_dump(mode="json"),
                         "answer_format": recipe.answer_format.model_dump(mode="json") if recipe.answer_format else None})


def current_stage_keys(recipe, world_size: int | None = None) -> list[str]:
    """Each stage's content key as the recipe and its files stand now (for staleness checks)."""
    return [inputs.key for _, inputs, _ in stage_inputs(recipe, world_size or default_world_size())]


def default_world_size() -> int:
    """The number of processes this job trains with (accelerate's view of torchrun's env)."""
    from ablate.ranks import ranks

    return ranks().num_processes
