"""Built-in data sources (registry `data_source`); each yields Sample dicts (ablate.data.contracts)."""

from __future__ import annotations


def register(registries) -> None:
    from ablate.data.contracts import source_problem
    from ablate.data.sources.easyvqa import EasyVQAConfig, build_easy_vqa
    from ablate.data.sources.llava_bench import LlavaBenchConfig, build_llava_bench
    from ablate.data.sources.llava_json import LlavaJsonConfig, build_llava_json
    from ablate.data.sources.mixture_source import MixtureSourceConfig, build_mixture_source

    registries.data_source.contract = source_problem  # what a plugin's builder must return

    registries.data_source.register(
        "llava_json", LlavaJsonConfig, build_llava_json,
        description="LLaVA conversation JSON/JSONL (LLaVA-Instruct-158K, CC-595K chat.json, mix665k) + image folder",
    )
    registries.data_source.register(
        "llava_bench", LlavaBenchConfig, build_llava_bench,
        description="LLaVA-Bench (COCO or In-the-Wild) from its released files and your copy of LLaVA's rule.json",
    )
    registries.data_source.register(
        "easy_vqa", EasyVQAConfig, build_easy_vqa,
        description="easy-VQA from the easy-vqa package: qa, conversation, caption, detail or reasoning style",
    )
    registries.data_source.register("mixture", MixtureSourceConfig, build_mixture_source)  # its docstring describes it
