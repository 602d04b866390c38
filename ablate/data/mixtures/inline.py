"""`inline` and `single` mixtures: a stage's data as a seeded selection from data sources.

Each item picks its samples in two steps, both seeded and reproducible:
  1. `data_types` (optional) keeps that fraction of each listed data_type and drops the
     types it does not list: `{conversation: 1.0, detail: 0.05, reasoning: 0.10}` is
     "conversation + 5% detail + 10% reasoning";
  2. at most one of `count` (exactly that many, without repetition), `fraction` (that share,
     without repetition) or `weight` (`weight` x the samples: whole copies plus a random
     share of the rest; 1.0 keeps all, 2.0 repeats each twice, 0.5 keeps half).
Counts are rounded half up; kept samples stay in source order until the final shuffle.
Sample ids become "<item name>/<source id>" (repeats add "#<copy>") so they stay unique.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any, Iterator

from pydantic import ConfigDict, Field, model_validator

from ablate.config_model import StrictModel
from ablate.data.contracts import DataSource
from ablate.data.sources.base import OnBadSample, check_on_bad_sample, fingerprint
from ablate.errors import DataError
from ablate.recipe.component import Component
from ablate.registry import ComponentConfig


# A weight repeats a source's samples that many times, in one list of indices: 10**12 copies are
# a MemoryError, not a plan. LLaVA mixes its sources at weight 1.
MAX_WEIGHT = 1000


class MixtureItem(StrictModel):
    model_config = ConfigDict(frozen=True)

    source: Component("data_source")
    name: str | None = Field(None, description="prefix of this item's sample ids (default: the source's name)")
    weight: float | None = Field(None, gt=0, le=MAX_WEIGHT,
                                 description="relative sampling: weight x the samples (default 1.0)")
    count: int | None = Field(None, gt=0, description="exactly this many samples")
    fraction: float | None = Field(None, gt=0, le=1, description="this share of the samples")
    data_types: dict[str, float] | None = Field(
        None, description="per data_type fraction to keep; unlisted types are dropped",
    )

    @model_validator(mode="after")
    def _one_amount(self) -> "MixtureItem":
        given = [k for k in ("weight", "count", "fraction") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of weight, count, fraction (got {', '.join(given)})")
        for kind, share in (self.data_types or {}).items():
            if not 0 <= share <= 1:
                raise ValueError(f"data_types.{kind} must be a fraction in [0, 1], got {share}")
        return self


class InlineMixtureConfig(ComponentConfig):
    sources: list[MixtureItem] = Field(min_length=1)
    seed: int = 0
    shuffle: bool = True


class SingleConfig(ComponentConfig):
    source: Component("data_source")


def build_source(block: ComponentConfig, *, answer_format: Any, on_bad_sample: OnBadSample) -> DataSource:
    from ablate.registry import registries

    return registries().data_source.get(block.type).build(block, answer_format=answer_format, on_bad_sample=on_bad_sample)


def build_single(config: SingleConfig, *, answer_format: Any = None, on_bad_sample: OnBadSample = "error") -> DataSource:
    """One data source as it is."""
    return build_source(config.source, answer_format=answer_format, on_bad_sample=check_on_bad_sample(on_bad_sample))


def build_inline(
    config: InlineMixtureConfig, *, answer_format: Any = None, on_bad_sample: OnBadSample = "error"
) -> DataSource:
    """Seeded selection from several data sources (counts, fractions, weights, data-type shares)."""
    check_on_bad_sample(on_bad_sample)
    children = [build_source(item.source, answer_format=answer_format, on_bad_sample=on_bad_sample)
                for item in config.sources]
    labels = _labels(config.sources, children)
    fp = fingerprint("inline", config.model_dump(mode="json"), [c.fingerprint for c in children])
    files = {path: fp for child in children for path, fp in child.files.items()}
    mixture = DataSource(name="+".join(labels), fingerprint=fp, iter_samples=lambda: iter(()), files=files)

    def iter_samples() -> Iterator[dict[str, Any]]:
        mixture.skipped.clear()
        chosen: list[dict[str, Any]] = []
        for index, (item, child, label) in enumerate(zip(config.sources, children, labels)):
            samples = child.samples()
            mixture.skipped.extend((f"{label}/{sid}", reason) for sid, reason in child.skipped)
            rng = random.Random(f"{config.seed}/{index}")
            picked = select(samples, item, rng, label)
            chosen.extend(_relabel(samples, picked, label))
        if config.shuffle:
            random.Random(f"{config.seed}/shuffle").shuffle(chosen)
        yield from chosen

    mixture.iter_samples = iter_samples
    return mixture


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def select(samples: list[dict[str, Any]], item: MixtureItem, rng: random.Random, label: str) -> list[int]:
    """Indices into `samples` (repeats allowed for weight > 1) chosen by `item`'s rules."""
    pool = list(range(len(samples)))
    if item.data_types is not None:
        by_type: dict[str | None, list[int]] = defaultdict(list)
        for i in pool:
            by_type[samples[i].get("data_type")].append(i)
        missing = [t for t in item.data_types if not by_type.get(t)]
        if missing:
            present = ", ".join(sorted(str(t) for t in by_type)) or "(no samples)"
            raise DataError(f"mixture item {label!r}: data_types lists {', '.join(missing)} but the source has "
                            f"no samples of that type (types present: {present})")
        pool = sorted(i for kind, share in item.data_types.items()
                      for i in _subset(by_type[kind], round_half_up(share * len(by_type[kind])), rng))
    n = len(pool)
    if item.count is not None:
        if item.count > n:
            raise DataError(f"mixture item {label!r}: count {item.count} is more than the {n} samples available")
        return _subset(pool, item.count, rng)
    if item.fraction is not None:
        return _subset(pool, round_half_up(item.fraction * n), rng)
    weight = 1.0 if item.weight is None else item.weight
    copies = math.floor(weight)
    return pool * copies + _subset(pool, round_half_up((weight - copies) * n), rng)


def _subset(pool: list[int], k: int, rng: random.Random) -> list[int]:
    """k members of pool, in pool order."""
    if k >= len(pool):
        return list(pool)
    keep = set(rng.sample(range(len(pool)), k))
    return [p for j, p in enumerate(pool) if j in keep]


def _relabel(samples: list[dict[str, Any]], picked: list[int], label: str) -> Iterator[dict[str, Any]]:
    seen: dict[int, int] = defaultdict(int)
    for i in picked:
        copy = seen[i]
        seen[i] += 1
        suffix = f"#{copy}" if copy else ""
        yield {**samples[i], "id": f"{label}/{samples[i]['id']}{suffix}"}


def _labels(items: list[MixtureItem], children: list[DataSource]) -> list[str]:
    labels = [item.name or child.name for item, child in zip(items, children)]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{label}.{i}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
