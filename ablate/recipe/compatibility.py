"""Checks across recipe sections that only the registered components can answer.

A recipe's `answer_format` goes to every data source, but only sources whose config has an
`answer_format` field (e.g. `scienceqa`) read it; a format no source reads would change
nothing, silently. And the evaluator decides whether it can score answers in the format the
eval data is rendered in (`ablate.eval.contracts.Evaluator.check_answer_format`). Both are
asked through the registries, so plugins' sources and evaluators take part like built-ins.
"""

from __future__ import annotations

from typing import Any

from ablate.errors import AblateError, PluginError
from ablate.eval.contracts import evaluator_problem  # the contract alone: no evaluator is imported
from ablate.registry import registries


def reads_answer_format(block: Any) -> bool:
    """Whether a data block (a dumped config) holds a source that reads an answer format."""
    sources = registries().data_source
    if isinstance(block, dict):
        name = block.get("type")
        if isinstance(name, str) and name in sources and "answer_format" in sources.get(name).config.model_fields:
            return True
        return any(reads_answer_format(v) for v in block.values())
    if isinstance(block, list):
        return any(reads_answer_format(v) for v in block)
    return False


def answer_format_problem(recipe) -> str | None:
    """A message (starting with its YAML path) when the recipe's answer format cannot work."""
    blocks = {f"stages.{i}.data": s.data for i, s in enumerate(recipe.stages)}
    if recipe.eval is not None and recipe.eval.harness == "ablate":  # lmms-eval's tasks bring their own prompts
        blocks["eval.data"] = recipe.eval.data
    dumped = {path: block.model_dump(mode="json") for path, block in blocks.items()}
    return _unread(recipe, dumped) or _unscorable(recipe, dumped)


def _unread(recipe, dumped: dict[str, Any]) -> str | None:
    """A recipe-level answer format that no data source reads would change nothing."""
    if recipe.answer_format is None or any(reads_answer_format(b) for b in dumped.values()):
        return None
    readers = [e.name for e in registries().data_source if "answer_format" in e.config.model_fields]
    used = ", ".join(f"{path}: {b.get('type')}" for path, b in dumped.items()) or "no data"
    return (f"answer_format: {recipe.answer_format.type} is set, but no data source of this recipe "
            f"reads an answer format ({used}); sources that do: {', '.join(readers) or 'none'}. "
            "Remove answer_format or use such a source")


def _unscorable(recipe, dumped: dict[str, Any]) -> str | None:
    """The evaluator's verdict on the answer format the eval data is rendered in."""
    if "eval.data" not in dumped or not reads_answer_format(dumped["eval.data"]):
        return None
    configured = getattr(recipe.eval.data, "answer_format", None) or recipe.answer_format
    if configured is None:  # the source's own default
        return None
    try:
        fmt = registries().answer_format.get(configured.type).build(configured)
        evaluator = registries().evaluator.get(recipe.eval.evaluator.type).build(recipe.eval.evaluator)
    except PluginError as exc:  # a plugin's builder broke its contract: a problem of this recipe's block
        return f"eval.evaluator: {exc}"
    except AblateError:  # e.g. a judge with no endpoint here; the run builds it before training
        return None
    problem = evaluator_problem(evaluator, recipe.eval.evaluator.type) or evaluator.check_answer_format(fmt)
    return f"eval.evaluator: {problem}" if problem else None
