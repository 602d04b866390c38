"""PNG plots of a study report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_bars(report, path: Path) -> Path:
    """One panel per metric: arm means with their 95% item-bootstrap CIs (seed std when there is
    no CI); the paper's values as markers on a second axis, since they are in the paper's units."""
    plt = _pyplot()
    tables = [t for t in report.metrics if any(r.mean is not None for r in t.rows)]
    fig, axes = plt.subplots(1, len(tables), figsize=(max(4.5, 1.4 * len(tables[0].rows) + 2) * len(tables), 4.2),
                             squeeze=False)
    for ax, table in zip(axes[0], tables):
        rows = table.rows
        xs = list(range(len(rows)))
        means = [r.mean if r.mean is not None else 0.0 for r in rows]
        low, high = [], []
        for r, m in zip(rows, means):
            if r.ci:
                low.append(max(m - r.ci[0], 0.0))
                high.append(max(r.ci[1] - m, 0.0))
            else:
                low.append(r.std or 0.0)
                high.append(r.std or 0.0)
        colors = ["#4C72B0" if not r.baseline else "#55A868" for r in rows]
        ax.bar(xs, means, yerr=[low, high], capsize=5, color=colors, alpha=0.85, label="ours (95% CI)")
        ax.set_xticks(xs, [r.arm for r in rows], rotation=20, ha="right")
        ax.set_ylabel(f"{table.name} (ours)")
        ax.set_title(f"{report.study} [{report.scale}]: {table.name}")
        markers = ["D", "s", "^", "v", "o"]
        if table.paper_refs:
            twin = ax.twinx()
            for k, ref in enumerate(table.paper_refs):
                pts = [(x, r.paper[k].value) for x, r in zip(xs, rows) if r.paper[k].value is not None]
                if pts:
                    twin.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="none", marker=markers[k % len(markers)],
                              markersize=9, color=f"C{3 + k}", label=f"paper: {ref['benchmark']}")
                    for x, value in pts:
                        twin.annotate(f"{value:g}", (x, value), textcoords="offset points", xytext=(8, -3),
                                      fontsize=8, color=f"C{3 + k}")
            twin.set_ylabel("paper value")
            handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
            labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
            ax.legend(handles, labels, fontsize=8, loc="lower right")
        else:
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_epochs(report, path: Path) -> Path:
    """Metric vs epoch per arm (mean over seeds), with each arm's plateau epoch marked."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(report.epochs), figsize=(6 * len(report.epochs), 4.2), squeeze=False)
    for ax, curves in zip(axes[0], report.epochs):
        for k, (arm, curve) in enumerate(curves.curves.items()):
            epochs = sorted(curve)
            ax.plot(epochs, [curve[e] for e in epochs], marker="o", color=f"C{k}", label=arm)
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
