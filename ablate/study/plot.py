"""PNG plots of a study report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path


ARM_COLOR, BASELINE_COLOR, STALE_COLOR = "#4C72B0", "#55A868", "#BBBBBB"
MARKERS = ["D", "s", "^", "v", "o"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_bars(report, path: Path) -> Path:
    """`bars_figure` saved as a PNG at `path`."""
    plt = _pyplot()
    fig = bars_figure(report)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bars_figure(report):
    """One panel per metric: arm means with their 95% item-bootstrap CIs (seed std when there is
    no CI), stale arms hatched and grey; the paper's values as markers on a second axis, since
    they are in the paper's units (hollow when on another benchmark than ours)."""
    plt = _pyplot()
    tables = [t for t in report.metrics if any(r.mean is not None or r.stale for r in t.rows)]
    fig, axes = plt.subplots(1, len(tables), figsize=(max(4.5, 1.4 * len(tables[0].rows) + 2) * len(tables), 4.2),
                             squeeze=False)
    for ax, table in zip(axes[0], tables):
        xs = list(range(len(table.rows)))
        handles = _bars(ax, report, table, xs)
        ax.set_xticks(xs, [r.arm + (" (stale)" if r.stale else "") for r in table.rows], rotation=20, ha="right")
        ax.set_ylabel(f"{table.name} (ours, {table.benchmark})")
        ax.set_title(f"{report.study} [{report.scale}]: {table.name}")
        if table.paper_refs:
            handles += _paper_markers(ax, table, xs)
        ax.legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _bars(ax, report, table, xs: list[int]) -> list:
    """Our bars with error bars; returns the legend handles."""
    from matplotlib.patches import Patch

    rows = table.rows
    means = [r.mean if r.mean is not None else 0.0 for r in rows]
    colors = [STALE_COLOR if r.stale else BASELINE_COLOR if r.baseline else ARM_COLOR for r in rows]
    bars = ax.bar(xs, means, color=colors, alpha=0.85)
    _error_bars(ax, rows, xs)
    if all(r.mean is None for r in rows):
        ax.set_ylim(0, 1)  # every arm left out: an empty axis from 0, not one centred on 0
    handles = [Patch(color=ARM_COLOR, label="ours (95% CI)"), Patch(color=BASELINE_COLOR, label="baseline")]
    if any(r.stale for r in rows):
        for bar, row in zip(bars, rows):
            if row.stale:
                bar.set_hatch("//")
                bar.set_edgecolor("black")
        counted = "included" if report.include_stale else "left out of the means"
        for x, row in zip(xs, rows):
            if row.stale and row.mean is None:
                ax.annotate("stale:\nleft out", (x, 0), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
        handles.append(Patch(facecolor=STALE_COLOR, edgecolor="black", hatch="//", label=f"has stale cells ({counted})"))
    return handles


def error_bar_spans(rows) -> list[tuple[float, float] | None]:
    """Each row's error bar as (low, high): the table's CI itself (so a mean outside it, e.g. a
    logged metric that is not its items' mean, is not stretched into it), else mean ± std."""
    spans = []
    for r in rows:
        if r.ci:
            spans.append((r.ci[0], r.ci[1]))
        elif r.mean is not None and r.std is not None:
            spans.append((r.mean - r.std, r.mean + r.std))
        else:
            spans.append(None)  # one seed and no items: no spread to draw
    return spans


def _error_bars(ax, rows, xs: list[int]) -> None:
    for x, span in zip(xs, error_bar_spans(rows)):
        if span is not None:
            low, high = span
            ax.errorbar([x], [(low + high) / 2], yerr=[[(high - low) / 2], [(high - low) / 2]], fmt="none",
                        ecolor="black", capsize=5)


def _paper_markers(ax, table, xs: list[int]) -> list:
    """The paper's values on a twin axis; returns their legend handles."""
    twin = ax.twinx()
    for k, ref in enumerate(table.paper_refs):
        pts = [(x, r.paper[k].value) for x, r in zip(xs, table.rows) if r.paper[k].value is not None]
        if not pts:
            continue
        same = ref.get("same_benchmark", True)
        color = f"C{3 + k}"
        twin.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="none", marker=MARKERS[k % len(MARKERS)],
                  markersize=9, color=color, markerfacecolor=color if same else "none",
                  label=f"paper: {ref['benchmark']}" + ("" if same else " (other benchmark, not judged)"))
        for x, value in pts:
            twin.annotate(f"{value:g}", (x, value), textcoords="offset points", xytext=(8, -3), fontsize=8, color=color)
    twin.set_ylabel("paper value")
    return twin.get_legend_handles_labels()[0]


def plot_epochs(report, path: Path) -> Path:
    """Metric vs epoch per arm (mean over seeds), with each arm's plateau epoch marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(report.epochs), figsize=(6 * len(report.epochs), 4.2), squeeze=False)
    stale = {c.arm for c in report.stale} if report.include_stale else set()  # stale runs are in the curves only then
    for ax, curves in zip(axes[0], report.epochs):
        for k, (arm, curve) in enumerate(curves.curves.items()):
            epochs = sorted(curve)
            label = arm + (" (stale, included)" if arm in stale else "")
            ax.plot(epochs, [curve[e] for e in epochs], marker="o", color=f"C{k}", label=label)
            plateau = curves.plateau.get(arm)
            if plateau is not None:
                ax.axvline(plateau, color=f"C{k}", linestyle=":", alpha=0.7)
        ax.set_xlabel("epoch")
        ax.set_ylabel(curves.metric)
        ax.set_title(f"{report.study} [{report.scale}]: {curves.metric} per epoch (dotted: plateau)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
