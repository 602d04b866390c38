"""Frozen-encoder feature cache: encode each image once, read its features from disk after.

    from ablate.features.cache import FeatureCache
    cache = FeatureCache(None, vlm.encoder)          # $ABLATE_HOME/features/<cache_key>/float32-square
    collator = VLMCollator(tokenizer, batch_feature_lookup=cache.batch_lookup)

Modules: `store` (the multi-process on-disk row table), `cache` (FeatureCache: encoder + store).
Which stages of a recipe may use it is the run's decision (`ablate.run.feature_plan`).
Importing this package stays light (no torch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FeatureCache"]


def __getattr__(name: str) -> Any:
    if name == "FeatureCache":
        from ablate.features.cache import FeatureCache

        return FeatureCache
    raise AttributeError(name)
