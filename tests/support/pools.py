"""Waiting for a pool's background work, in tests that look at it right after."""

from __future__ import annotations

import time
from typing import Any


def settled(pool: Any, within: float = 5.0) -> dict[str, Any]:
    """The pool's stats once no connection is being opened or closed in the background.

    A discarded connection is closed in the background, and its slot freed only once the
    server has ended the session: right after `putconn` it still counts as closing.
    """
    deadline = time.monotonic() + within
    while True:
        stats: dict[str, Any] = pool.stats()
        if (stats["opening"], stats["closing"]) == (0, 0) or time.monotonic() >= deadline:
            return stats
        time.sleep(0.005)


def assert_settled(stats: dict[str, Any], max_conns: int) -> None:
    """After the load: nothing lent, opened, closed or waited for, and the counters add up."""
    assert (stats["in_use"], stats["opening"], stats["closing"], stats["waiting"]) == (0, 0, 0, 0)
    assert stats["open"] == stats["idle"] <= max_conns
    assert_counters_agree(stats)


def assert_counters_agree(stats: dict[str, Any]) -> None:
    """What holds by the definitions in docs/observability.md, whatever faults came before,
    once nothing is being opened or closed."""
    # `waits` counts checkouts that lent a connection after queueing: a subset of `checkouts`.
    assert stats["waits"] <= stats["checkouts"], f"more waits than checkouts: {stats}"
    # Every connection opened is still open (idle, lent or being closed), or closed.
    assert stats["opened"] - stats["closed"] == stats["open"] - stats["opening"], stats
    # Lost and retired are reasons a connection was closed, one at most each.
    assert stats["lost"] + stats["retired"] <= stats["closed"], stats
