"""The benchmark's table: one row per setup, Markdown so it can go into the README as is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LABELS = {
    "geventpool": "geventpool, psycopg 3",
    "geventpool-psycopg2": "geventpool, psycopg2 + psycogreen",
    "django-ceiling": "Django, 1 persistent connection per greenlet (ceiling)",
    "django-ceiling-gevent-wait": "the ceiling, with our psycopg 3 wait function",
    "django-pool": "Django's own pool (psycopg_pool)",
    "django-db-geventpool-4.0.8": "django-db-geventpool 4.0.8, psycopg 3",
    "raw-psycopg": "psycopg 3 without Django (driver limit)",
}


@dataclass
class Row:
    setup: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    peak: int = 0
    greenlets: int = 0

    def add(self, workload: str, result: dict[str, Any], peak: int) -> None:
        """Record one run; of several runs of a workload, the fastest is kept."""
        kept = self.results.get(workload)
        if kept is None or _better(result, kept):
            self.results[workload] = result
        # The peak is the highest of every run: the cap must hold in all of them.
        self.peak = max(self.peak, peak)
        if workload != "checkout":
            self.greenlets = max(self.greenlets, int(result["greenlets"]))

    def rate(self, workload: str) -> float:
        return float(self.results[workload]["requests_per_second"])

    def checkout_us(self) -> float | None:
        value = self.results["checkout"].get("checkout_us")
        return None if value is None else float(value)


def _better(result: dict[str, Any], than: dict[str, Any]) -> bool:
    if "requests_per_second" in result:
        return bool(result["requests_per_second"] > than["requests_per_second"])
    if result.get("checkout_us") is None:
        return False
    return than.get("checkout_us") is None or bool(result["checkout_us"] < than["checkout_us"])


def format_table(rows: list[Row], reference: str) -> str:
    ours = next(row for row in rows if row.setup == reference)
    lines = [
        "| setup | greenlets | `SELECT 1` cycles/s | vs ours | `pg_sleep(0.001)` cycles/s "
        "| vs ours | checkout + return µs | peak server connections |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        cells = [LABELS.get(row.setup, row.setup), str(row.greenlets)]
        for workload in ("select1", "sleep1ms"):
            cells.append(f"{row.rate(workload):,.0f}")
            ratio = row.rate(workload) / ours.rate(workload)
            cells.append(f"{ratio:.2f}\N{MULTIPLICATION SIGN}")
        checkout = row.checkout_us()
        cells.append("—" if checkout is None else f"{checkout:.1f}")
        cells.append(str(row.peak))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The wait-function comparison: (runtime, "psycopg" or "ours"), in the order of its table.
WAITS = [("gevent", "psycopg"), ("gevent", "ours"), ("eventlet", "psycopg"), ("eventlet", "ours")]


def keep_best_wait(kept: dict[Any, dict[str, Any]], key: Any, result: dict[str, Any]) -> None:
    """Of several runs of one wait function, keep the one that cost the least CPU."""
    if key not in kept or result["cpu_us"] < kept[key]["cpu_us"]:
        kept[key] = result


def format_waits_table(results: dict[Any, dict[str, Any]]) -> str:
    lines = [
        "| runtime | psycopg 3 wait function | `SELECT 1`/s | CPU µs per query | CPU vs ours |",
        "|---|---|--:|--:|--:|",
    ]
    for runtime, wait in WAITS:
        result = results[runtime, wait]
        ours = results[runtime, "ours"]
        owner = "ours" if wait == "ours" else "psycopg's"
        lines.append(
            f"| {runtime} | {owner} `{result['wait']}` | {result['queries_per_second']:,.0f}"
            f" | {result['cpu_us']:.1f}"
            f" | {result['cpu_us'] / ours['cpu_us']:.2f}\N{MULTIPLICATION SIGN} |"
        )
    return "\n".join(lines)
