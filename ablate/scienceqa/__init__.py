"""ScienceQA as a first-class workload.

    formats.py     answer formats: LLaVA's `INPUT-OUTPUT` prompt codes and LLaVA-1.5 prompts
    problems.py    the on-disk layout, record checks, the official categories
    source.py      the `scienceqa` data source
    evaluator.py   the `scienceqa` evaluator (LLaVA's extraction, ScienceQA's score columns)
    generator.py   the embedded ScienceQA-format dataset (`make_scienceqa`, `ensure_scienceqa`)
                   and the majority-letter baseline

Importing this package is light (no torch); `register` adds the answer formats, the data
source and the evaluator to the registries.
"""

from __future__ import annotations


def register(registries) -> None:
    from ablate.scienceqa import formats
    from ablate.scienceqa.evaluator import ScienceQAEvaluatorConfig, build_scienceqa_evaluator
    from ablate.scienceqa.source import ScienceQASourceConfig, build_scienceqa_source

    formats.register(registries)
    # descriptions (`ablate list`) are the first lines of the builders' docstrings
    registries.data_source.register("scienceqa", ScienceQASourceConfig, build_scienceqa_source)
    registries.evaluator.register("scienceqa", ScienceQAEvaluatorConfig, build_scienceqa_evaluator)
