"""`mixture` (registry `data_source`): a mixture block where a data source is expected.

A recipe's `eval.data` is a data source; studies that score each data type separately (the
tiny scale of `data_types`) evaluate a mixture of held-out sets instead:

    eval:
      data:
        type: mixture
        mixture: {type: inline, sources: [{source: {type: easy_vqa, split: test, style: detail}, count: 100}, ...]}

Each sample's `data_type` is copied into its meta (unless the meta already has one), so the
evaluators' per-category metrics (`accuracy/<data_type>`) and the study report can split the
items by type.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ablate.recipe.component import Component
from ablate.registry import ComponentConfig


class MixtureSourceConfig(ComponentConfig):
    mixture: Component("mixture") = Field(description="any mixture block, e.g. {type: inline, sources: [...]}")
    tag_data_type: bool = Field(True, description="copy each sample's data_type into its meta")


def build_mixture_source(config: MixtureSourceConfig, *, answer_format: Any = None, on_bad_sample: str = "error"):
    """A mixture as one data source (eval on several held-out sets); tags meta.data_type."""
    from dataclasses import replace

    from ablate.registry import registries

    inner = registries().mixture.get(config.mixture.type).build(
        config.mixture, answer_format=answer_format, on_bad_sample=on_bad_sample,
    )
    if not config.tag_data_type:
        return inner

    def samples():
        for sample in inner.iter_samples():
            meta = dict(sample.get("meta") or {})
            if sample.get("data_type") and "data_type" not in meta:
                meta["data_type"] = sample["data_type"]
            yield {**sample, "meta": meta}

    return replace(inner, name=f"mixture:{inner.name}", fingerprint=f"{inner.fingerprint}+data_type", iter_samples=samples)

