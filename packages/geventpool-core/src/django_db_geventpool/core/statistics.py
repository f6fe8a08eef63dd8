"""The pool's statistics, declared once: `ConnectionPool.stats()` and `histograms()`, the
Prometheus collector, the OpenTelemetry instruments and the README's tables all follow these
tables, so none can drift from another."""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass


class Kind(enum.Enum):
    #: A value that goes up and down.
    GAUGE = "gauge"
    #: A total since the pool was made; Prometheus adds ``_total`` to its name.
    COUNTER = "counter"


@dataclass(frozen=True)
class Statistic:
    #: The key in `ConnectionPool.stats()`.
    key: str
    kind: Kind
    #: The Prometheus metric, and the ``state`` label for the connection gauges.
    metric: str
    help: str
    state: str | None = None
    #: The OpenTelemetry instrument, as the semantic conventions for database client
    #: connection pools name it, and its ``db.client.connection.state``; None where the
    #: conventions have none (exported as ``geventpool.<key>``).
    otel: str | None = None
    otel_state: str | None = None


_G, _C = Kind.GAUGE, Kind.COUNTER

STATISTICS: tuple[Statistic, ...] = (
    Statistic(
        "max",
        _G,
        "geventpool_max_connections",
        "MAX_CONNS: the cap on slots.",
        otel="db.client.connection.max",
    ),
    Statistic(
        "max_idle",
        _G,
        "geventpool_max_idle_connections",
        "REUSE_CONNS: idle connections kept.",
        otel="db.client.connection.idle.max",
    ),
    Statistic(
        "open",
        _G,
        "geventpool_slots_taken",
        "Slots taken: connections being opened, open (idle or in use) or being closed.",
    ),
    Statistic(
        "idle",
        _G,
        "geventpool_connections",
        "Connections idle in the pool.",
        "idle",
        otel="db.client.connection.count",
        otel_state="idle",
    ),
    Statistic(
        "in_use",
        _G,
        "geventpool_connections",
        "Connections lent, or being checked before they are.",
        "in_use",
        otel="db.client.connection.count",
        otel_state="used",
    ),
    Statistic("opening", _G, "geventpool_connections", "Connections being opened.", "opening"),
    Statistic(
        "closing",
        _G,
        "geventpool_connections",
        "Connections being closed: their slot is freed once the server ended the session.",
        "closing",
    ),
    Statistic(
        "waiting",
        _G,
        "geventpool_waiting_clients",
        "Clients waiting for a connection.",
        otel="db.client.connection.pending_requests",
    ),
    Statistic(
        "checkouts",
        _C,
        "geventpool_checkouts",
        "Checkouts that lent a connection, once each however many connections they found"
        " dead first. A checkout that failed (a timeout, a failed connect) or was cut is not"
        " counted.",
    ),
    Statistic(
        "waits",
        _C,
        "geventpool_waits",
        "Of `checkouts`, those that queued for a connection (at most `checkouts`).",
    ),
    Statistic(
        "timeouts",
        _C,
        "geventpool_timeouts",
        "Checkouts that gave up: CHECKOUT_TIMEOUT passed, waiting or connecting. Not in"
        " `checkouts`.",
        otel="db.client.connection.timeouts",
    ),
    Statistic("opened", _C, "geventpool_connections_opened", "Connections opened."),
    Statistic("closed", _C, "geventpool_connections_closed", "Connections closed, for any reason."),
    Statistic(
        "lost",
        _C,
        "geventpool_connections_lost",
        "Connections discarded as broken, cut in the middle of a round trip, or unusable.",
    ),
    Statistic(
        "retired",
        _C,
        "geventpool_connections_retired",
        "Connections closed for age (MAX_LIFETIME) or idleness (MAX_IDLE_TIME).",
    ),
    Statistic(
        "reclaimed",
        _C,
        "geventpool_connections_reclaimed",
        "Connections taken back from a greenlet or thread that ended holding them.",
    ),
    Statistic(
        "pings",
        _C,
        "geventpool_pings",
        "Round trips to check a connection before lending it: one idle longer than PING_AFTER,"
        " or one that was open when another was found dead.",
    ),
    Statistic(
        "leaks", _C, "geventpool_leaks", "Connections reported held longer than LEAK_TIMEOUT."
    ),
    Statistic(
        "wait_seconds",
        _C,
        "geventpool_wait_seconds",
        "Time clients spent queued for a connection, in seconds, whether or not one came.",
    ),
    Statistic(
        "max_wait_seconds",
        _G,
        "geventpool_max_wait_seconds",
        "The longest a client had been checking out when it left the queue, in seconds.",
    ),
)


#: Bucket bounds of the duration histograms, in seconds: the OpenTelemetry conventions'
#: advice for connection pools, with a few more below a millisecond, where a pool lives.
BUCKETS: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
)  # fmt: skip


@dataclass(frozen=True)
class Distribution:
    """A histogram of durations the pool records (see `ConnectionPool.histograms()`)."""

    key: str
    #: The Prometheus histogram and the OpenTelemetry instrument.
    metric: str
    otel: str
    help: str


DISTRIBUTIONS: tuple[Distribution, ...] = (
    Distribution(
        "wait_time",
        "geventpool_wait_time_seconds",
        "db.client.connection.wait_time",
        "How long checkouts took to get a connection, waiting or opening one, in seconds.",
    ),
    Distribution(
        "use_time",
        "geventpool_use_time_seconds",
        "db.client.connection.use_time",
        "How long connections were held, from checkout to return, in seconds.",
    ),
    Distribution(
        "create_time",
        "geventpool_create_time_seconds",
        "db.client.connection.create_time",
        "How long opening a connection took, in seconds.",
    ),
)


class Histogram:
    """Counts of durations in `BUCKETS` (the last count is for longer ones), and their sum.

    Recorded by the pool under its lock: a lookup and two additions.
    """

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def snapshot(self, zeros: int = 0) -> HistogramSnapshot:
        """A copy, with `!zeros` more durations of 0 (known only as a count)."""
        counts = list(self.counts)
        counts[0] += zeros
        return HistogramSnapshot(BUCKETS, tuple(counts), self.sum)


@dataclass(frozen=True)
class HistogramSnapshot:
    bounds: Sequence[float]
    #: Per bucket, not cumulative: ``counts[i]`` durations were at most ``bounds[i]`` and more
    #: than ``bounds[i - 1]``; the last one, more than every bound.
    counts: Sequence[int]
    sum: float

    @property
    def count(self) -> int:
        return sum(self.counts)


def markdown_table() -> str:
    """The tables as the README shows them."""
    lines = [
        "| `stats()` key | kind | Prometheus | OpenTelemetry | meaning |",
        "|---|---|---|---|---|",
    ]
    for statistic in STATISTICS:
        metric = f"`{statistic.metric}`"
        if statistic.state is not None:
            metric += f' (`state="{statistic.state}"`)'
        otel = f"`{statistic.otel or 'geventpool.' + statistic.key}`"
        if statistic.otel_state is not None:
            otel += f" (`{statistic.otel_state}`)"
        kind = statistic.kind.value
        lines.append(f"| `{statistic.key}` | {kind} | {metric} | {otel} | {statistic.help} |")
    lines += [
        "",
        "| `histograms()` key | Prometheus histogram | OpenTelemetry histogram | meaning |",
        "|---|---|---|---|",
    ]
    for distribution in DISTRIBUTIONS:
        lines.append(
            f"| `{distribution.key}` | `{distribution.metric}` | `{distribution.otel}`"
            f" | {distribution.help} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
