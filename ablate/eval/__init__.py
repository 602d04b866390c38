"""Evaluation: judging generated answers and scoring them.

    contracts.py    the Evaluator and AnswerFormat protocols and the evaluators' base class
    evaluators.py   `exact_match` (VQA-normalised; per-category accuracy)
    judges.py       `gpt4_relative_score` (LLaVA-Bench: a judge model behind an OpenAI-compatible API)
    judge_cache.py  the judge's replies on disk, keyed by the whole request (re-runs never re-bill)
    generation.py   greedy generation over a held-out set, judging, a predictions JSONL
    options.py      optional log-likelihood scoring of multiple-choice options (`<metric>_loglik`)

ScienceQA's evaluator lives with the rest of ScienceQA (`ablate.scienceqa.evaluator`).
Importing this package is light (no torch); `register` adds its evaluators to the registry.
"""

from __future__ import annotations

from ablate.eval.contracts import AnswerFormat, Evaluator, EvaluatorBase, evaluator_problem

__all__ = ["AnswerFormat", "Evaluator", "EvaluatorBase", "evaluator_problem", "register"]


def register(registries) -> None:
    from ablate.eval.contracts import answer_format_problem, evaluator_members_problem

    # what plugins' builders must return (checked when they build)
    registries.evaluator.contract = evaluator_members_problem
    registries.answer_format.contract = answer_format_problem
    from ablate.eval.evaluators import ExactMatchConfig, ExactMatchEvaluator
    from ablate.eval.judges import GPT4RelativeScoreConfig, build_gpt4_relative_score

    # descriptions (`ablate list`) are the first lines of the builders' docstrings
    registries.evaluator.register("exact_match", ExactMatchConfig, ExactMatchEvaluator)
    registries.evaluator.register("gpt4_relative_score", GPT4RelativeScoreConfig, build_gpt4_relative_score)
