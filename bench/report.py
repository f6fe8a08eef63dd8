"""The benchmark's tables, in Markdown so that they can go into the docs and README as is.

Every figure is the median over the rounds, with the lowest and highest beside it; a ratio
is computed within each round first (both runs then met the same machine), then its median
and range are taken over the rounds. Nothing is a best case, but the checkout figures: each
of those is a run's fastest repeat (see bench/worker.py), and then their median over rounds.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.workloads import WORKLOADS

TIMES = "\N{MULTIPLICATION SIGN}"
DASH = "\N{EN DASH}"
NONE = "\N{EM DASH}"

REFERENCE = "geventpool"
PSYCOPG2 = "geventpool-psycopg2"

_LABELS = {
    "geventpool": "ours, psycopg 3",
    "geventpool-psycopg2": "ours, psycopg2 + psycogreen",
    "geventpool-discard-all": "ours, `RESET_QUERY` `DISCARD ALL`",
    "geventpool-discard-all-etc-utc": "ours, `DISCARD ALL`, session time zone 'Etc/UTC'",
    "geventpool-reset-in-parts": "ours, `RESET_QUERY` `DISCARD ALL` in parts",
    "geventpool-reset-in-parts-etc-utc": "ours, in parts, session time zone 'Etc/UTC'",
    "geventpool-reset-round-trip": "ours, `RESET_QUERY` `SELECT 1` (the round trip alone)",
    "django-ceiling": "Django, {conns} persistent connections (the stock ceiling)",
    "django-ceiling-gevent-wait": "the same ceiling with our gevent wait function (equal terms)",
    "django-pool": "Django's own pool (psycopg_pool)",
    "django-db-geventpool-4.0.8": "django-db-geventpool 4.0.8",
    "pgbouncer-conn-max-age-0": "PgBouncer + Django CONN_MAX_AGE=0",
    "pgbouncer-persistent": "PgBouncer + Django persistent connections",
    "raw-psycopg": "psycopg 3 without Django (the driver's limit)",
}

#: Rows of the checkout table, whose setups the labels above name otherwise.
_CHECKOUT_LABELS = {
    "django-ceiling": "Django, persistent connection (ensure_connection is a no-op)",
}


def label(setup: str, conns: int) -> str:
    return _LABELS.get(setup, setup).format(conns=conns)


def spread(values: Iterable[float]) -> tuple[float, float, float]:
    """The median, the lowest and the highest."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[0], ordered[-1]


def format_spread(values: list[float], spec: str, unit: str = "") -> str:
    """The median, then the lowest and the highest in brackets; or the one value there is."""
    if not values:
        return NONE
    middle, low, high = spread(values)
    if len(values) == 1:
        return f"{middle:{spec}}{unit}"
    return f"{middle:{spec}}{unit} ({low:{spec}}{DASH}{high:{spec}})"


@dataclass
class Results:
    """Every run's result by (setup, workload) and round, and the peak connections seen."""

    conns: int
    runs: dict[tuple[str, str], dict[int, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    peaks: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(
        self, round_number: int, setup: str, workload: str, result: dict[str, Any], peak: int
    ) -> None:
        self.runs[setup, workload][round_number] = result
        # The highest of every round: a cap must hold in all of them.
        self.peaks[setup, workload] = max(self.peaks.get((setup, workload), 0), peak)

    def values(self, setup: str, workload: str, key: str) -> dict[int, float]:
        """`!key` of each round's result, where it was measured."""
        found = {}
        for round_number, result in self.runs.get((setup, workload), {}).items():
            if result.get(key) is not None:
                found[round_number] = float(result[key])
        return found

    def cpu_us(self, setup: str, workload: str, process: str) -> list[float]:
        """CPU µs per request of `!process` (client, server, pgbouncer), round by round."""
        found = []
        for result in self.runs.get((setup, workload), {}).values():
            seconds = result["cpu_seconds"].get(process)
            if seconds is not None:
                found.append(seconds / result["requests"] * 1e6)
        return found

    def ratios(self, setup: str, over: str, workload: str) -> list[float]:
        """`!setup`'s requests per second over `!over`'s, within each round both ran."""
        mine = self.values(setup, workload, "requests_per_second")
        theirs = self.values(over, workload, "requests_per_second")
        return [mine[r] / theirs[r] for r in sorted(mine.keys() & theirs.keys())]


def markdown_table(header: list[str], align: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_ratio_table(results: Results, setups: list[str], workloads: list[str]) -> str:
    """Ours ÷ every other row, per workload; then psycopg2 ÷ psycopg 3, both ours."""
    header = ["requests per second, ratio", *(WORKLOADS[name].title for name in workloads)]
    rows = []
    for setup in setups:
        if setup in (REFERENCE, PSYCOPG2):
            continue
        cells = [f"ours (psycopg 3) ÷ {label(setup, results.conns)}"]
        for workload in workloads:
            cells.append(format_spread(results.ratios(REFERENCE, setup, workload), ".2f", TIMES))
        rows.append(cells)
    if PSYCOPG2 in setups:
        cells = ["ours (psycopg2) ÷ ours (psycopg 3)"]
        for workload in workloads:
            cells.append(format_spread(results.ratios(PSYCOPG2, REFERENCE, workload), ".2f", TIMES))
        rows.append(cells)
    return markdown_table(header, ["---", *("--:" for _ in workloads)], rows)


def format_workload_table(results: Results, setups: list[str], workload: str) -> str:
    """Requests per second and CPU µs per request of every row, on one workload."""
    header = [
        "setup",
        "greenlets",
        "requests/s",
        "CPU µs/request: client",
        "server",
        "PgBouncer",
        "total",
        "peak server connections",
    ]
    rows = []
    for setup in setups:
        runs = results.runs.get((setup, workload))
        if not runs:
            continue
        cpu = {
            process: results.cpu_us(setup, workload, process)
            for process in ("client", "server", "pgbouncer")
        }
        totals = _totals(results, setup, workload)
        rows.append(
            [
                label(setup, results.conns),
                str(max(int(result["greenlets"]) for result in runs.values())),
                format_spread(
                    list(results.values(setup, workload, "requests_per_second").values()), ",.0f"
                ),
                *(_median(cpu[process], ".0f") for process in ("client", "server", "pgbouncer")),
                _median(totals, ".0f"),
                str(results.peaks[setup, workload]),
            ]
        )
    return markdown_table(header, ["---", *("--:" for _ in header[1:])], rows)


def _totals(results: Results, setup: str, workload: str) -> list[float]:
    totals = []
    for result in results.runs[setup, workload].values():
        measured = [seconds for seconds in result["cpu_seconds"].values() if seconds is not None]
        totals.append(sum(measured) / result["requests"] * 1e6)
    return totals


def _median(values: list[float], spec: str) -> str:
    return f"{statistics.median(values):{spec}}" if values else NONE


def format_checkout_table(results: Results, setups: list[str], workload: str) -> str:
    header = [
        "setup",
        "through Django, µs CPU",
        "µs clock",
        "the pool alone, µs CPU",
        "µs clock",
    ]
    rows = []
    for setup in setups:
        if not results.runs.get((setup, workload)):
            continue
        cells = [_CHECKOUT_LABELS.get(setup) or label(setup, results.conns)]
        for key in ("django_cpu_us", "django_us", "pool_cpu_us", "pool_us"):
            cells.append(format_spread(list(results.values(setup, workload, key).values()), ".2f"))
        rows.append(cells)
    return markdown_table(header, ["---", *("--:" for _ in header[1:])], rows)


#: The wait-function comparison: (runtime, "psycopg" or "ours"), in the order of its table.
WAITS = [("gevent", "psycopg"), ("gevent", "ours"), ("eventlet", "psycopg"), ("eventlet", "ours")]


def format_waits_table(waits: dict[tuple[str, str], dict[int, dict[str, Any]]]) -> str:
    header = [
        "runtime",
        "psycopg 3 wait function",
        "`SELECT 1`/s",
        "CPU µs per query",
        "CPU ÷ ours",
    ]
    rows = []
    for runtime, wait in WAITS:
        runs = waits.get((runtime, wait))
        if not runs:
            continue
        ours = waits.get((runtime, "ours"), {})
        name = next(iter(runs.values()))["wait"]
        owner = "ours" if wait == "ours" else "psycopg's"
        if wait == "ours":
            ratio = f"1{TIMES}"
        else:
            common = sorted(runs.keys() & ours.keys())
            ratios = [runs[r]["cpu_us"] / ours[r]["cpu_us"] for r in common]
            ratio = format_spread(ratios, ".2f", TIMES)
        rows.append(
            [
                runtime,
                f"{owner} `{name}`",
                format_spread([run["queries_per_second"] for run in runs.values()], ",.0f"),
                format_spread([run["cpu_us"] for run in runs.values()], ".1f"),
                ratio,
            ]
        )
    return markdown_table(header, ["---", "---", "--:", "--:", "--:"], rows)
