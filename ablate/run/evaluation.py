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


def eval_plan(recipe) -> EvalPlan:
    from ablate.registry import registries

    regs, ev = registries(), recipe.eval
    template_cfg = ev.template or (recipe.stages[-1].template if recipe.stages else None)
    if template_cfg is None:
        raise AblateError("eval.template is required when the recipe has no stages")
    source = regs.data_source.get(ev.data.type).build(ev.data, answer_format=recipe.answer_format,
                                                        on_bad_sample=recipe.data.on_bad_sample)
    from ablate.eval.contracts import evaluator_problem

    evaluator = regs.evaluator.get(ev.evaluator.type).build(ev.evaluator)
    if problem := evaluator_problem(evaluator, ev.evaluator.type):
        raise AblateError(f"eval.evaluator: {problem}")
    samples = source.samples()
    if ev.limit:
        samples = samples[: ev.limit]
    return EvalPlan(samples, regs.template.get(template_cfg.type).build(template_cfg), evaluator,
                    ev.batch_size, ev.max_new_tokens)


def evaluate(vlm, plan: EvalPlan, *, progress, out: Path | None, label: str = "eval", features=None):
    """Generate for every sample, judge and score; `features` is the frozen encoder's cache."""
    from ablate.data.collate import EvalCollator
    from ablate.eval.generation import evaluate as generate_and_score

    collator = EvalCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor,
                            batch_feature_lookup=features.batch_lookup if features is not None else None)
    return generate_and_score(
        vlm, plan.samples, template=plan.template, evaluator=plan.evaluator, collator=collator,
        tokenizer=vlm.tokenizer, batch_size=plan.batch_size, max_new_tokens=plan.max_new_tokens,
        out_path=out, progress=progress, label=label,
    )


def logged_metrics(evaluator, metrics: dict[str, float]) -> dict[str, float]:
    """The evaluator's metrics under its prefix (eval/*, what studies compare), and under the
    benchmark's own names too when it has them (scienceqa/NAT, ...)."""
    logged = {f"{evaluator.metric_prefix}/{k}": v for k, v in metrics.items()}
    if benchmark := evaluator.benchmark_prefix:
        logged.update({f"{benchmark}/{k}": v for k, v in metrics.items()})
    return logged
