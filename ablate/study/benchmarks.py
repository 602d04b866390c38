"""Which benchmark a metric measures, so that a paper's number is judged only against ours on
the same benchmark.

A paper value names its benchmark in the study file (`benchmark: GQA`). Ours is the metric's
`benchmark`; else, for an lmms-eval metric (`lmms_eval/<task>/<metric>`), its task's benchmark
(LMMS_BENCHMARKS: `mme` is MME, `mmvet` MM-Vet, ...; an unlisted task is named by itself); else
the scale's; else what the scale's recipes evaluate: the eval data sources they read (easy_vqa,
scienceqa, ...: the innermost registered data sources of `eval.data`; `scienceqa (embedded)`
for the generated ScienceQA-format set, which is not ScienceQA), or their lmms-eval tasks'
benchmarks. A generic format such as `llava_json` says nothing about which benchmark its file
holds: declare the benchmark in the study file (`scales.paper.benchmark: GQA`), or the
comparison shows "different benchmark".

lmms-eval's `scienceqa_img` is not LLaVA's ScienceQA-IMG score: its scorer reads answers by other
rules (`ablate.scienceqa.lmms`), so a paper's ScienceQA-IMG value is shown beside it, not judged.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

NO_EVAL = "no eval"
LMMS_PREFIX = "lmms_eval/"
# lmms-eval task -> the benchmark the papers name
LMMS_BENCHMARKS = {
    "mme": "MME", "gqa": "GQA", "mmvet": "MM-Vet", "pope": "POPE", "textvqa_val": "TextVQA",
    "mmbench_en_dev": "MMBench", "mmbench_en_test": "MMBench", "mmbench_cn_dev": "MMBench-CN",
    "llava_in_the_wild": "LLaVA-Bench (in the wild)", "vqav2_val": "VQAv2", "vqav2_test": "VQAv2",
    "vizwiz_vqa_val": "VizWiz", "seedbench": "SEED-Bench", "mmmu_val": "MMMU",
    "scienceqa_img": "ScienceQA-IMG (lmms-eval's scorer)",
}


def canonical(name: str) -> str:
    """Compare names case- and punctuation-blind: 'MM-Vet' is 'mm_vet', 'GQA' is 'gqa'."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def same_benchmark(ours: str, theirs: str) -> bool:
    return bool(canonical(ours)) and canonical(ours) == canonical(theirs)


def our_benchmark(spec, section, recipes: Iterable[Any]) -> str:
    """The benchmark a metric (a schema.MetricSpec) of a scale section measures."""
    declared = spec.benchmark or lmms_benchmark(spec.mlflow_key()) or section.benchmark
    if declared:
        return declared
    found: list[str] = []
    for recipe in recipes:
        for name in evaluated(recipe.eval):
            if name not in found:
                found.append(name)
    return " + ".join(found) or NO_EVAL


def lmms_benchmark(key: str) -> str | None:
    """The benchmark of an `lmms_eval/<task>/<metric>` key, None for another key."""
    if not key.startswith(LMMS_PREFIX):
        return None
    task = key[len(LMMS_PREFIX):].split("/", 1)[0]
    return LMMS_BENCHMARKS.get(task, task)


def evaluated(ev) -> list[str]:
    """What an eval section measures: its data sources, or its lmms-eval tasks' benchmarks."""
    if ev is None:
        return []
    if ev.harness == "lmms_eval":
        return [LMMS_BENCHMARKS.get(task, task) for task in ev.tasks]
    return eval_sources(ev.data.model_dump(mode="json"))


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
