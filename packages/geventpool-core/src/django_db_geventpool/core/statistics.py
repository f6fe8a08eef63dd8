"""The pool's statistics, declared once: `ConnectionPool.stats()`, the Prometheus collector
and the README's table all follow this table, so none can drift from another."""

from __future__ import annotations

import enum
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


_G, _C = Kind.GAUGE, Kind.COUNTER

STATISTICS: tuple[Statistic, ...] = (
    Statistic("max", _G, "geventpool_max_connections", "MAX_CONNS: the cap on slots."),
    Statistic(
        "max_idle", _G, "geventpool_max_idle_connections", "REUSE_CONNS: idle connections kept."
    ),
    Statistic(
        "open",
        _G,
        "geventpool_slots_taken",
        "Slots taken: connections being opened, open (idle or in use) or being closed.",
    ),
    Statistic("idle", _G, "geventpool_connections", "Connections idle in the pool.", "idle"),
    Statistic("in_use", _G, "geventpool_connections", "Connections lent.", "in_use"),
    Statistic("opening", _G, "geventpool_connections", "Connections being opened.", "opening"),
    Statistic(
        "closing",
        _G,
        "geventpool_connections",
        "Connections being closed: their slot is freed once the server ended the session.",
        "closing",
    ),
    Statistic("waiting", _G, "geventpool_waiting_clients", "Clients waiting for a connection."),
    Statistic("checkouts", _C, "geventpool_checkouts", "Checkouts: connections lent, in all."),
    Statistic("waits", _C, "geventpool_waits", "Checkouts that had to wait for a connection."),
    Statistic(
        "timeouts",
        _C,
        "geventpool_timeouts",
        "Checkouts that gave up: CHECKOUT_TIMEOUT passed, waiting or connecting.",
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
    Statistic("pings", _C, "geventpool_pings", "Connections pinged before being lent."),
    Statistic(
        "leaks", _C, "geventpool_leaks", "Connections reported held longer than LEAK_TIMEOUT."
    ),
    Statistic(
        "wait_seconds", _C, "geventpool_wait_seconds", "Time checkouts spent waiting, in seconds."
    ),
    Statistic(
        "max_wait_seconds",
        _G,
        "geventpool_max_wait_seconds",
        "The longest a checkout waited, in seconds.",
    ),
)


def markdown_table() -> str:
    """The table as the README shows it."""
    lines = ["| `stats()` key | kind | Prometheus | meaning |", "|---|---|---|---|"]
    for statistic in STATISTICS:
        metric = f"`{statistic.metric}`"
        if statistic.state is not None:
            metric += f' (`state="{statistic.state}"`)'
        lines.append(
            f"| `{statistic.key}` | {statistic.kind.value} | {metric} | {statistic.help} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
