"""A run's evaluation: the held-out samples, template and evaluator, scored by generation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import AblateError


@dataclass
class EvalPlan:
    samples: list[dict[str, Any]]
    template: Any
    evaluator: Any
    batch_size: int
    max_new_tokens: int
    image_aspect_ratio: str = "square"
    option_scoring: bool = False


def eval_template(recipe):
    """The conversation template evaluation prompts with: eval.template, else the last stage's."""
    from ablate.registry import registries

    template_cfg = (recipe.eval.template if recipe.eval is not None else None) or (
        recipe.stages[-1].template if recipe.stages else None)
    if template_cfg is None:
        raise AblateError("eval.template is required when the recipe has no stages")
    return registries().template.get(template_cfg.type).build(template_cfg)


def eval_plan(recipe) -> EvalPlan:
    from ablate.registry import registries

    regs, ev = registries(), recipe.eval
    template = eval_template(recipe)
    source = regs.data_source.get(ev.data.type).build(ev.data, answer_format=recipe.answer_format,
                                                        on_bad_sample=recipe.data.on_bad_sample)
    from ablate.data.sources.base import check_unique_ids
    from ablate.eval.contracts import evaluator_problem

    evaluator = regs.evaluator.get(ev.evaluator.type).build(ev.evaluator)
    if problem := evaluator_problem(evaluator, ev.evaluator.type):
        raise AblateError(f"eval.evaluator: {problem}")
    samples = source.samples()
    if ev.limit:
        samples = samples[: ev.limit]
    check_unique_ids(samples, source, f"eval.data {ev.data.type}")
    if ev.option_scoring:
        from ablate.eval.options import check_options

        check_options(evaluator, samples, f"eval.option_scoring (data {ev.data.type})")
    return EvalPlan(samples, template, evaluator, ev.batch_size, ev.max_new_tokens, recipe.eval_aspect_ratio(),
                    ev.option_scoring)


def evaluate(vlm, plan: EvalPlan, *, progress, out: Path | None, label: str = "eval", features=None):
    """Generate for every sample, judge and score; `features` is the frozen encoder's cache.

    Under torchrun every rank generates for every N-th sample and rank 0 gathers, restores the
    order, scores and writes: N processes evaluate N times faster, with the records (and so the
    metrics) of a one-process evaluation. Every rank must call this; the others get None.
    """
    from ablate.data.collate import EvalCollator
    from ablate.eval.generation import finish, generate_records
    from ablate.ranks import ranks

    state = ranks()
    rank, world = state.process_index, state.num_processes
    collator = EvalCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor,
                            image_aspect_ratio=plan.image_aspect_ratio,
                            batch_feature_lookup=features.batch_lookup if features is not None else None)
    records = generate_records(
        vlm, plan.samples[rank::world], template=plan.template, evaluator=plan.evaluator, collator=collator,
        tokenizer=vlm.tokenizer, batch_size=plan.batch_size, max_new_tokens=plan.max_new_tokens,
        progress=progress if state.is_main_process else None, label=label, option_scoring=plan.option_scoring,
    )
    if world > 1:
        records = _gathered_in_order(records, rank, world)
    return finish(records, plan.evaluator, out) if state.is_main_process else None


def _gathered_in_order(records: list[dict[str, Any]], rank: int, world: int) -> list[dict[str, Any]]:
    """Every rank's strided share of the records, back in sample order (on every rank)."""
    from accelerate.utils import gather_object

    indexed = gather_object([(rank + world * i, record) for i, record in enumerate(records)])
    return [record for _, record in sorted(indexed, key=lambda item: item[0])]


def logged_metrics(evaluator, metrics: dict[str, float]) -> dict[str, float]:
    """The evaluator's metrics under its prefix (eval/*, what studies compare), and under the
    benchmark's own names too when it has them (scienceqa/NAT, ...)."""
    logged = {f"{evaluator.metric_prefix}/{k}": v for k, v in metrics.items()}
    if benchmark := evaluator.benchmark_prefix:
        logged.update({f"{benchmark}/{k}": v for k, v in metrics.items()})
    return logged
