"""Mixtures (registry `mixture`): what a stage's `data:` block builds. See `inline.py`, `llava.py`."""

from __future__ import annotations


def register(registries) -> None:
    from ablate.data.contracts import source_problem
    from ablate.data.mixtures.inline import InlineMixtureConfig, SingleConfig, build_inline, build_single
    from ablate.data.mixtures.llava import ARMS, Mix665kConfig, build_llava_instruct, build_mix665k

    registries.mixture.contract = source_problem  # a mixture builds a DataSource too

    registries.mixture.register(
        "inline", InlineMixtureConfig, build_inline,
        description="seeded mix of data sources: per-item count, fraction or weight and data-type shares",
    )
    registries.mixture.register("single", SingleConfig, build_single, description="one data source as it is")
    descriptions = {
        "llava_instruct_full": "LLaVA Table 4: conversation + detail + complex reasoning (LLaVA-Instruct-158K)",
        "llava_instruct_detail_complex": "LLaVA Table 4: detail + complex reasoning",
        "llava_instruct_conv_5d_10c": "LLaVA Table 4: conversation + 5% detail + 10% complex reasoning",
        "llava_instruct_conv_only": "LLaVA Table 4: conversation only",
    }
    for name, config in ARMS.items():
        registries.mixture.register(name, config, build_llava_instruct, description=descriptions[name])
    registries.mixture.register(
        "llava_v1_5_mix665k", Mix665kConfig, build_mix665k, description="LLaVA-1.5's 665K instruction mixture",
    )
