"""Draw server connections over time for each backend the demo ran, on one chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# A name ("solid", "dashed") or matplotlib's (offset, (on, off, ...)) in line widths.
LineStyle = str | tuple[float, tuple[float, ...]]


@dataclass
class Series:
    label: str
    color: str
    samples: Sequence[tuple[float, int]]  # (seconds since the load started, connections)
    linestyle: LineStyle = "solid"


def plot_connections(
    series: Sequence[Series], cap: int, cap_label: str, clients: int, title: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for line in series:
        times = [t for t, _ in line.samples]
        counts = [c for _, c in line.samples]
        ax.step(
            times,
            counts,
            where="post",
            label=line.label,
            color=line.color,
            linestyle=line.linestyle,
            linewidth=1.8,
        )
    # Beneath the series: those that hold at the cap run along this line.
    ax.axhline(cap, color="0.35", linestyle="--", linewidth=1, zorder=1)
    # Labels at the right end, clear of the lines where the load starts.
    ax.annotate(
        f"{cap_label} = {cap}",
        xy=(1, cap),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 4),
        ha="right",
        textcoords="offset points",
        color="0.25",
        fontsize=9,
    )
    ax.axhline(clients, color="0.75", linestyle=":", linewidth=1, zorder=1)
    ax.annotate(
        f"{clients} concurrent clients",
        xy=(1, clients),
        xycoords=("axes fraction", "data"),
        xytext=(-4, 4),
        ha="right",
        textcoords="offset points",
        color="0.45",
        fontsize=9,
    )
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("server connections (pg_stat_activity)")
    ax.set_ylim(0, max(clients, cap) * 1.15)
    ax.set_title(title, fontsize=10)
    ax.grid(True, color="0.92")
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
