"""Statistics for study reports: seeded bootstrap CIs over eval items, and agreement with the paper.

Items are eval records (one per question) scored in their `correct` field: 0/1, or a fraction in
[0, 1] where the evaluator gives partial credit (`exact_match` with `sentence_credit`). An arm run
with several seeds scores each item by its mean over the seeds, so the CI describes how much
the arm's seed-averaged accuracy depends on which items the eval set happens to hold. A
difference between two arms is bootstrapped over the items both were evaluated on (paired),
or, when their eval sets differ, over each arm's items independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np

LEVEL = 0.95
RESAMPLE_BLOCK = 1 << 22  # item draws held in memory at once (32 MiB of indices), however many items


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def straddles_zero(self) -> bool:
        return self.low <= 0.0 <= self.high

    def as_list(self) -> list[float]:
        return [self.low, self.high]


def item_scores(per_seed: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """{item id: mean score over the seeds that evaluated it}."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for scores in per_seed:
        for item, value in scores.items():
            sums[item] = sums.get(item, 0.0) + float(value)
            counts[item] = counts.get(item, 0) + 1
    return {item: sums[item] / counts[item] for item in sums}


def _percentiles(samples: np.ndarray, level: float) -> Interval:
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return Interval(float(low), float(high))


def resampled_means(x: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """The means of `samples` resamples of `x` with replacement, drawn a block of rows at a time
    so memory stays bounded for large eval sets (the draws are the same as in one call)."""
    rows = max(1, RESAMPLE_BLOCK // max(x.size, 1))
    means = np.empty(samples)
    for start in range(0, samples, rows):
        stop = min(samples, start + rows)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    return means


def bootstrap_mean(values: Iterable[float], *, samples: int = 2000, seed: int = 0, level: float = LEVEL) -> Interval | None:
    """Percentile bootstrap CI of the mean; None for no items."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        return None
    return _percentiles(resampled_means(x, samples, np.random.default_rng(seed)), level)


def bootstrap_difference(
    arm: Mapping[str, float], base: Mapping[str, float], *, samples: int = 2000, seed: int = 0, level: float = LEVEL,
) -> Interval | None:
    """CI of mean(arm) - mean(base); paired over shared items when both saw the same eval set."""
    if not arm or not base:
        return None
    rng = np.random.default_rng(seed)
    shared = sorted(set(arm) & set(base))
    if shared and len(shared) == len(arm) == len(base):
        diff = np.array([arm[i] - base[i] for i in shared], dtype=float)
        return _percentiles(resampled_means(diff, samples, rng), level)
    a = np.fromiter(arm.values(), dtype=float)
    b = np.fromiter(base.values(), dtype=float)
    a_means = resampled_means(a, samples, rng)  # all of a's resamples first, then b's
    return _percentiles(a_means - resampled_means(b, samples, rng), level)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    if not values:
        return None, None
    x = np.asarray(values, dtype=float)
    return float(x.mean()), (float(x.std(ddof=1)) if x.size > 1 else None)


def agreement(our_delta: float | None, paper_delta: float | None, our_ci: Interval | None) -> str:
    """Does our change vs the baseline go the paper's way?

    "within noise" when the bootstrap CI of our difference straddles 0 (or, without a CI, when
    the difference is exactly 0); otherwise "yes"/"no" by sign. "-" when either side is unknown
    or the paper reports no change.
    """
    if our_delta is None or paper_delta is None or paper_delta == 0:
        return "-"
    if our_ci is not None and our_ci.straddles_zero():
        return "within noise"
    if our_ci is None and our_delta == 0:
        return "within noise"
    return "yes" if (our_delta > 0) == (paper_delta > 0) else "no"


def plateau_epoch(curve: Mapping[int, float], tolerance: float, maximize: bool = True) -> int | None:
    """First epoch whose value is within `tolerance` of the curve's best."""
    if not curve:
        return None
    best = max(curve.values()) if maximize else min(curve.values())
    for epoch in sorted(curve):
        if abs(curve[epoch] - best) <= tolerance:
            return epoch
    return None
