"""Which benchmark a metric measures, so that a paper's number is judged only against ours on
the same benchmark.

A paper value names its benchmark in the study file (`benchmark: GQA`). Ours is the metric's
`benchmark`, else the scale's, else the eval data sources the scale's recipes read (easy_vqa,
scienceqa, ...: the innermost registered data sources of `eval.data`; `scienceqa (embedded)`
for the generated ScienceQA-format set, which is not ScienceQA). A generic format such
as `llava_json` says nothing about which benchmark its file holds: declare the benchmark in
the study file (`scales.paper.benchmark: GQA`), or the comparison shows "different benchmark".
"""

from __future__ import annotations

import re
from typing import Any, Iterable

NO_EVAL = "no eval"


def canonical(name: str) -> str:
    """Compare names case- and punctuation-blind: 'MM-Vet' is 'mm_vet', 'GQA' is 'gqa'."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def same_benchmark(ours: str, theirs: str) -> bool:
    return bool(canonical(ours)) and canonical(ours) == canonical(theirs)


def our_benchmark(spec, section, recipes: Iterable[Any]) -> str:
    """The benchmark a metric (a schema.MetricSpec) of a scale section measures."""
    declared = spec.benchmark or section.benchmark
    if declared:
        return declared
    found: list[str] = []
    for recipe in recipes:
        data = recipe.eval.data.model_dump(mode="json") if recipe.eval is not None else None
        for name in eval_sources(data):
            if name not in found:
                found.append(name)
    return " + ".join(found) or NO_EVAL


def _source_benchmark(block: dict[str, Any], config) -> str:
    """A source's type; "<type> (embedded)" when it has a `root` left unset, i.e. it reads the
    package's embedded stand-in set (the generated ScienceQA-format problems), not the benchmark."""
    if "root" in config.model_fields and block.get("root") is None:
        return f"{block['type']} (embedded)"
    return block["type"]


def eval_sources(block: Any) -> list[str]:
    """The innermost registered data-source types in a data block (a mixture's parts, not the mixture)."""
    from ablate.registry import registries

    names = registries().data_source.names()
    found: list[str] = []

    def walk(node: Any) -> bool:
        """Collect the sources under `node`; True when it holds one."""
        if isinstance(node, list):
            return any([walk(v) for v in node])
        if not isinstance(node, dict):
            return False
        inner = any([walk(v) for v in node.values()])
        if not inner and node.get("type") in names:
            found.append(_source_benchmark(node, registries().data_source.get(node["type"]).config))
            return True
        return inner

    walk(block)
    return found
