"""Conversation templates: LLaVA conversations -> text, input_ids and labels.

Each template equals LLaVA's own preprocessing (see the module docstrings); the contract is in
ablate.data.contracts. `tokenize_with_image` is LLaVA's tokenizer_image_token with offsets.
"""

from __future__ import annotations

from ablate.templates.base import ConversationTemplate, tokenize_with_image
from ablate.templates.plain import PlainConfig, PlainTemplate, build_plain
from ablate.templates.vicuna_v1 import VICUNA_V1_SYSTEM, VicunaV1Config, VicunaV1Template, build_vicuna_v1


def register(registries) -> None:
    from ablate.data.contracts import template_problem

    registries.template.contract = template_problem  # what a plugin's template builder must return
    registries.template.register("plain", PlainConfig, build_plain)
    registries.template.register("vicuna_v1", VicunaV1Config, build_vicuna_v1)


__all__ = [
    "ConversationTemplate",
    "PlainConfig",
    "PlainTemplate",
    "VICUNA_V1_SYSTEM",
    "VicunaV1Config",
    "VicunaV1Template",
    "build_plain",
    "build_vicuna_v1",
    "register",
    "tokenize_with_image",
]
