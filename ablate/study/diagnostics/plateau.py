"""`plateau`: the epoch at which each arm's per-epoch curve levels off, per seed.

For scienceqa_format: LLaVA says reasoning-first reaches its plateau in about half the epochs
of answer-first. The cells evaluate every epoch (`eval.each_epoch`), so this reads their
curves: nothing runs. An arm's plateau, per seed, is the first epoch whose score is within
`tolerance` of that seed's best (a fraction of full marks: 0.02 is 2 points of a % score).
An arm that levels off earlier but more than `tolerance` below the other arm's best does not
count as converging faster: the claim is the same accuracy in fewer epochs. A seed still rising
at its last epoch has only a lower bound for its plateau, so the verdict counts it as open
where it could reverse that seed's order, and supports or refutes only with a majority of seeds
that no open seed can change.
"""

from __future__ import annotations

from pydantic import Field

from ablate.study.diagnostics.base import Diagnostic, DiagnosticConfig, DiagnosticContext, DiagnosticResult, fmt
from ablate.study.stats import mean_std, plateau_epoch


class PlateauConfig(DiagnosticConfig):
    arm: str | None = Field(None, description="the arm said to converge faster (default: the baseline)")
    metric: str | None = Field(None, description="the metric whose curves are read (default: the objective)")
    tolerance: float = Field(0.02, ge=0, le=1, description="plateau: first epoch within this of the seed's best, "
                             "as a fraction of full marks (0.02: 2 points of a % score)")


class Plateau(Diagnostic):
    title = "Plateau epoch per arm, from the per-epoch curves"

    def result(self, ctx: DiagnosticContext) -> DiagnosticResult:
        metric = self.config.metric or ctx.section.objective
        tolerance = self.config.tolerance * ctx.item_scale(metric)
        data = {arm: _arm_plateaus(runs, metric, tolerance) for arm, runs in ctx.by_arm.items()}
        rows = [[arm, ", ".join(f"{e}" for _, e in sorted(d["by_seed"].items())) or "-",
                 _mean_std(d["mean"], d["std"]), "-" if d["best"] is None else f"{d['best']:.4g}",
                 str(d["epochs"] or "-"), ", ".join(map(str, d["rising"])) or "none"] for arm, d in data.items()]
        columns = ["arm", "plateau epoch per seed", "mean ± std", f"best {metric} (mean over seeds)", "epochs",
                   "seeds still rising at the last epoch"]
        finding = _finding(self.config.arm or ctx.baseline, data, tolerance, metric)
        return self._result(columns, rows, finding, {"metric": metric, "tolerance": tolerance, "arms": data})


def _arm_plateaus(runs, metric: str, tolerance: float) -> dict:
    curves = {r.seed: r.epochs[metric] for r in runs if r.epochs.get(metric)}
    by_seed = {seed: plateau_epoch(curve, tolerance) for seed, curve in curves.items()}
    mean, std = mean_std([float(e) for e in by_seed.values()])
    best, _ = mean_std([max(c.values()) for c in curves.values()])
    return {"by_seed": by_seed, "mean": mean, "std": std, "best": best,
            "epochs": max((max(c) for c in curves.values()), default=None),
            "rising": sorted(seed for seed, curve in curves.items() if _still_rising(curve, tolerance))}


def _still_rising(curve: dict[int, float], tolerance: float) -> bool:
    """The last epoch gained more than `tolerance` on the one before: no plateau within the epochs run."""
    epochs = sorted(curve)
    return len(epochs) > 1 and curve[epochs[-1]] - curve[epochs[-2]] > tolerance


def _mean_std(mean: float | None, std: float | None) -> str:
    return "-" if mean is None else fmt(mean, 2) + (f" ± {std:.2f}" if std is not None else "")


def _finding(claimed: str, data: dict, tolerance: float, metric: str) -> str:
    own = data.get(claimed)
    if own is None or own["mean"] is None:
        return f"no per-epoch {metric} curves for {claimed!r} (the cells need eval.each_epoch: true)"
    parts = [_compared(claimed, own, arm, other, tolerance)
             for arm, other in data.items() if arm != claimed and other["mean"] is not None]
    rising = [f"{arm} in {len(d['rising'])} of {len(d['by_seed'])} seed(s)" for arm, d in data.items() if d["rising"]]
    if rising:
        parts.append("still rising at the last epoch (no plateau within the epochs run, so those plateau epochs are "
                     "lower bounds and the comparison is open): " + ", ".join(rising))
    return "; ".join(parts) + f". Plateau: first epoch within {tolerance:g} of the seed's best {metric}."


def _compared(claimed: str, own: dict, arm: str, other: dict, tolerance: float) -> str:
    """One arm against the one said to converge faster. Levelling off earlier at a lower score
    is not converging faster (the claim is the same accuracy in fewer epochs), so a claimed arm
    whose best is more than `tolerance` below the other's does not support it. The verdict
    counts seeds, and a seed whose order a still-rising curve could reverse is open."""
    gap = other["mean"] - own["mean"]
    orders = [_seed_order(own, other, seed) for seed in sorted(set(own["by_seed"]) & set(other["by_seed"]))]
    earlier, later, still_open = (orders.count(o) for o in ("earlier", "later", "open"))
    when = f"{abs(gap):.2f} epoch(s) {'earlier' if gap > 0 else 'later'} than" if gap else "at the same epoch as"
    text = (f"{claimed} plateaus {when} {arm} (mean plateau epoch {own['mean']:.2f} vs {other['mean']:.2f}; "
            f"earlier in {earlier} of {len(orders)} seed(s)" + (f", open in {still_open}" if still_open else "") + ")")
    claim = f"\"{claimed} converges faster\""
    if gap > 0 and own["best"] is not None and other["best"] is not None and own["best"] < other["best"] - tolerance:
        return (f"{text}, but at a lower {own['best']:.4g} against {other['best']:.4g}: it levels off sooner without "
                f"reaching {arm}'s accuracy, which does not support {claim}")
    half = len(orders) / 2
    if earlier > half:
        return f"{text}: supports {claim}"
    if later > half:
        return f"{text}: refutes {claim}"
    if earlier + still_open <= half:  # even if every open seed went its way, the claim holds in no majority
        return f"{text}: does not support {claim}"
    return f"{text}: open, {claim} turns on the {still_open} seed(s) still rising"


def _seed_order(own: dict, other: dict, seed: int) -> str:
    """The claimed arm's plateau against the other's at one seed: "earlier", "later", "same", or
    "open" where a still-rising curve, whose plateau epoch is only a lower bound, could make
    the claimed arm earlier or not."""
    mine, theirs = own["by_seed"][seed], other["by_seed"][seed]
    if mine < theirs:
        return "open" if seed in own["rising"] else "earlier"
    if seed in other["rising"]:  # the other's plateau may lie past the claimed arm's
        return "open"
    return "later" if mine > theirs else "same"


def register(registry) -> None:
    registry.register("plateau", PlateauConfig, Plateau,
                      description="the epoch each arm's per-epoch curve levels off, per seed (reads the cells)")
