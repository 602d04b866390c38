"""A recipe's plan, stage by stage: parameters, visual tokens, data, FLOPs, memory, hours.

    hours of a stage = FLOPs per sample x samples trained / (gpus x peak FLOP/s x MFU) / 3600

the wall-clock hours on `gpus` GPUs (the unit LLaVA reports: "5.5 h on 8 x A100"); GPU-hours
billed are that times `gpus`. Samples trained: records x epochs, or max_steps x the global batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.plan.data import Measure, StageData, stage_data
from ablate.plan.flops import Shapes, mean_sample_flops, model_shapes
from ablate.plan.gpus import Gpu
from ablate.plan.memory import GIB, Memory, stage_memory
from ablate.plan.mfu import Mfu, choose_mfu
from ablate.plan.params import Params, backward_through, stage_params
from ablate.plan.published import Published, published_for
from ablate.registry import checkpoint_or_type


@dataclass(frozen=True)
class Settings:
    gpu: Gpu
    gpus: int
    mfu: float | None  # --mfu
    recorded: list[dict] = field(default_factory=list)  # benchmarks/train_step.py's recorded steps


@dataclass
class StageEstimate:
    name: str
    key: str  # equal for stages that compute the same thing (a study trains them once)
    stage: Any  # the recipe Stage
    zero: int | None
    params: dict[str, Params]
    visual_tokens: int
    data: StageData
    flops_per_sample: float | None
    samples: float | None  # trained in the whole stage
    memory: Memory
    mfu: Mfu
    peak_flops: float
    hours: float | None  # wall clock on `gpus` GPUs
    published: Published | None

    @property
    def flops_per_epoch(self) -> float | None:
        if self.flops_per_sample is None or self.data.records is None:
            return None
        return self.flops_per_sample * self.data.records

    @property
    def sequence(self) -> int:
        return longest_batch(self.stage, self.data)

    @property
    def memory_gib(self) -> float:
        return self.memory.peak(self.stage.gradient_checkpointing) / GIB


@dataclass
class RecipePlan:
    name: str
    settings: Settings
    model_line: str
    notes: list[str]
    stages: list[StageEstimate]

    @property
    def hours_total(self) -> float | None:
        hours = [s.hours for s in self.stages]
        return None if None in hours else sum(hours)


class Planner:
    """Plans recipes with `settings`, keeping what several recipes (a study's cells) share."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._models: dict[str, Any] = {}
        self._data: dict[str, StageData] = {}
        self._tokenizers: dict[str, tuple[Any, str]] = {}

    def plan(self, recipe, base_dir: Path | None = None) -> RecipePlan:
        from ablate.model.trainable import TrainableError, apply_trainable
        from ablate.plan.models import model_on_meta

        key = _key(recipe.model.model_dump(mode="json"))
        if key not in self._models:
            self._models[key] = model_on_meta(recipe.model)
        meta = self._models[key]
        vlm = copy.deepcopy(meta.vlm)  # each recipe applies its stages' trainable sets from the start
        shapes = model_shapes(vlm)
        stages = []
        for index, stage in enumerate(recipe.stages):
            try:
                apply_trainable(vlm, stage.trainable)
            except TrainableError as error:
                raise AblateError(f"stages.{stage.name}.{error}") from None
            stages.append(self._stage(recipe, index, stage_params(vlm), shapes, base_dir, vlm))
        return RecipePlan(recipe.name, self.settings, _model_line(recipe, shapes), list(meta.notes), stages)

    def _stage(self, recipe, index: int, params: dict[str, Params], shapes: Shapes, base_dir, vlm) -> StageEstimate:
        from ablate.model.loss import materialises_logits
        from ablate.recipe.deepspeed import zero_stage
        from ablate.train.stage import deepspeed_settings

        stage, settings = recipe.stages[index], self.settings
        through = backward_through(params)
        if not any(p.trainable for p in params.values()):
            raise AblateError(f"stages.{stage.name}.trainable: trains nothing (every component is frozen)")
        data = self._stage_data(recipe, stage, shapes.visual_tokens)
        per_sample = mean_sample_flops(shapes, params, through, data.lengths) if data.lengths else None
        samples = _samples(stage, data.records, settings.gpus)
        zero = zero_stage(deepspeed_settings(stage, base_dir))
        full_logits = materialises_logits(stage.loss, vlm.llm, partitioned=zero == 3,
                                          where=f"stages.{stage.name}.loss")
        each_epoch = recipe.eval is not None and recipe.eval.each_epoch and index == len(recipe.stages) - 1
        memory = stage_memory(params, shapes, zero=zero, gpus=settings.gpus, precision=stage.precision,
                              batch=stage.batch_size, seq=longest_batch(stage, data), full_logits=full_logits,
                              evaluates_each_epoch=each_epoch)
        mfu = choose_mfu(settings.mfu, settings.gpu, params["llm"].trainable > 0, settings.recorded)
        peak = settings.gpu.peak_flops(stage.precision, stage.tf32)
        hours = None if per_sample is None or samples is None else (
            per_sample * samples / (settings.gpus * peak * mfu.value) / 3600)
        published = published_for(checkpoint_or_type(recipe.model.llm), _named_files(stage), settings.gpu.key, settings.gpus)
        return StageEstimate(stage.name, _stage_key(recipe, index), stage, zero, params, shapes.visual_tokens, data,
                             per_sample, samples, memory, mfu, peak, hours, published)

    def _stage_data(self, recipe, stage, visual_tokens: int) -> StageData:
        from ablate.registry import registries

        llm = recipe.model.llm
        key = _key([stage.data.model_dump(mode="json"), stage.template.model_dump(mode="json"), stage.max_length,
                    visual_tokens, llm.model_dump(mode="json"), _dump(recipe.answer_format)])
        if key not in self._data:
            template = registries().template.get(stage.template.type).build(stage.template)
            measure = Measure(template, visual_tokens, stage.max_length)
            self._data[key] = stage_data(recipe, stage, measure, lambda: self._tokenizer(llm))
        return self._data[key]

    def _tokenizer(self, llm) -> tuple[Any, str]:
        key = _key(llm.model_dump(mode="json"))
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer_if_present(llm)
        return self._tokenizers[key]


def longest_batch(stage, data: StageData) -> int:
    """Positions per sequence in the stage's longest batch: max_length, or less when the data's
    longest record (measured, or the longest typical part) is shorter."""
    return min(stage.max_length, max(length for length, _, _ in data.lengths)) if data.lengths else stage.max_length


def load_tokenizer_if_present(llm) -> tuple[Any, str]:
    """(the LLM's tokenizer, "tokenized with ...") or (None, why lengths are estimated from words)."""
    from ablate.plan.data import TOKENS_PER_WORD
    from ablate.zoo import ZOO_PREFIX, is_built

    words = f"estimated as words x {TOKENS_PER_WORD}"
    if llm.type != "hf_causal_lm":
        return None, f"{words} (ablate plan loads tokenizers of hf_causal_lm LLMs only)"
    name = getattr(llm, "tokenizer", None) or llm.name_or_path
    if name.startswith(ZOO_PREFIX) and not is_built(name[len(ZOO_PREFIX):]):
        return None, f"{words} (zoo entry {name} is not built)"
    from ablate.components.llms.hf_causal_lm import load_tokenizer

    try:
        return load_tokenizer(llm), f"tokenized with {name}'s tokenizer"
    except AblateError:
        return None, f"{words} (the tokenizer of {name} is not on this machine)"


def _samples(stage, records: int | None, gpus: int) -> float | None:
    if stage.max_steps > 0:
        return float(stage.max_steps * stage.batch_size * stage.grad_accum * gpus)
    return None if records is None else records * stage.epochs


def _named_files(stage) -> list[str]:
    from ablate.study.named_files import named_paths

    return [value for _, value, _ in named_paths(stage.data.model_dump(mode="json"), ())]


def _stage_key(recipe, index: int) -> str:
    """Equal for stages the stage store would train once: the run's configuration hash of each stage
    up to this one (model, stage, seeds, the answer format where the data reads it)."""
    from ablate.run.stage_inputs import config_hash

    return _key([config_hash(recipe, stage, first=n == 0) for n, stage in enumerate(recipe.stages[:index + 1])])


def _model_line(recipe, shapes: Shapes) -> str:
    model = recipe.model
    return (f"{checkpoint_or_type(model.encoder)} ({shapes.encoder_positions} positions per image) -> "
            f"{model.connector.type} -> {checkpoint_or_type(model.llm)}: {shapes.visual_tokens} visual tokens per image")


def _dump(value) -> Any:
    return value.model_dump(mode="json") if value is not None else None


def _key(payload: Any) -> str:
    from ablate.fingerprint import content_hash

    return content_hash(payload, length=20)
