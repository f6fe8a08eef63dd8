"""Draw server connections over time, one panel for each backend the demo ran.

One panel each, on shared axes, rather than every line on one chart: geventpool and
PgBouncer both hold at the cap, and on one chart each line hid the other, and the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass
class Series:
    title: str
    color: str
    samples: Sequence[tuple[float, int]]  # (seconds since the load started, connections)
    cap_label: str  # what the cap line means for this backend


def plot_connections(
    series: Sequence[Series], cap: int, clients: int, title: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1,
        len(series),
        # Shared scales, so that heights compare from one panel to the next.
        sharex=True,
        sharey=True,
        squeeze=False,
        figsize=(3.4 * len(series), 3.7),
        dpi=110,
        # Unlike tight_layout(), leaves the titles above the panels and the label below them
        # no more room than they take.
        layout="constrained",
    )
    for ax, line in zip(axes[0], series, strict=True):
        times = [t for t, _ in line.samples]
        counts = [c for _, c in line.samples]
        ax.fill_between(times, counts, step="post", color=line.color, alpha=0.2, linewidth=0)
        ax.step(times, counts, where="post", color=line.color, linewidth=1.8)
        # Thin and above the series: a series that holds at the cap runs along it, and both
        # stay visible.
        ax.axhline(cap, color="0.15", linestyle=(0, (4, 3)), linewidth=0.9, zorder=3)
        _label(ax, cap, f"{line.cap_label} = {cap}", "0.15")
        ax.axhline(clients, color="0.6", linestyle=":", linewidth=1, zorder=3)
        _label(ax, clients, f"{clients} concurrent clients", "0.45")
        ax.set_title(line.title, fontsize=9)
        ax.grid(True, color="0.92")
        ax.tick_params(labelsize=8)
    axes[0][0].set_ylabel("server connections (pg_stat_activity)", fontsize=9)
    fig.supxlabel("seconds since the load started", fontsize=9)
    axes[0][0].set_ylim(0, max(clients, cap) * 1.15)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _label(ax: Axes, y: float, text: str, color: str) -> None:
    """`text` just above the horizontal line at `y`, at the panel's right edge."""
    ax.annotate(
        text,
        xy=(1, y),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 5),
        textcoords="offset points",
        ha="right",
        color=color,
        fontsize=8,
        # Legible where a series runs behind it.
        bbox={
            "boxstyle": "square,pad=0.1",
            "facecolor": "white",
            "edgecolor": "none",
            "alpha": 0.8,
        },
        zorder=4,
    )
