"""Frozen-encoder feature cache: encode each image once, read its features from disk after.

    from ablate.features.cache import FeatureCache
    cache = FeatureCache(None, vlm.encoder)          # $ABLATE_HOME/features/<cache_key>/float32
    collator = VLMCollator(tokenizer, batch_feature_lookup=cache.batch_lookup)

Modules: `store` (the multi-process on-disk row table), `cache` (FeatureCache: encoder + store),
`plan` (which stages of a recipe may use it). Importing this package stays light (no torch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FeatureCache", "feature_cache_plan"]


def __getattr__(name: str) -> Any:
    if name == "FeatureCache":
        from ablate.features.cache import FeatureCache

        return FeatureCache
    if name == "feature_cache_plan":
        from ablate.features.plan import feature_cache_plan

        return feature_cache_plan
    raise AttributeError(name)
