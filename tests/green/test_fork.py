"""Forking while a pooled connection is in a query, in every driver x runtime cell.

At the instant of the fork the driver may hold the busy connection's lock (psycopg2 holds it
for the whole query): the child must let go of the parent's connections without touching
them, start with an empty pool of its own, and leave the parent's session alone. Scripts:
tests/scripts/fork.py.
"""

from __future__ import annotations

import pytest

from support.pools import assert_settled
from support.scenarios import run_in_cell

#: Seconds the busy query runs; the fork happens while it does.
QUERY_SECONDS = 2
#: Seconds a fork may take, a generous bound: a child that deadlocks never ends.
FORK_BOUND = 10


@pytest.fixture
def env(pg, fresh_db):
    return pg.env(fresh_db)


@pytest.mark.parametrize("way", ["subprocess", "os_fork", "multiprocessing"])
def test_a_fork_during_a_query_leaves_both_processes_working(env, way):
    result = run_in_cell(
        "fork.py",
        "fork_during_query",
        env,
        options={"MAX_CONNS": 2},
        way=way,
        seconds=QUERY_SECONDS,
        # Under gevent, subprocess.run waits without a bound for its child to reach exec.
        timeout=60,
    )
    assert result["in_query_at_fork"], "the busy query was not running when the process forked"
    assert not result["stuck"], f"the child of {way} was still running after {FORK_BOUND} s"
    assert result["fork_seconds"] < FORK_BOUND
    if way != "subprocess":
        assert result["status"] == 7, "the child's own query through the pool failed"
        child = result["child"]
        # The child's pool started empty: one connection of its own, a new server session.
        assert child["stats"]["opened"] == 1
        assert child["pid"] != result["busy_pid"]
        assert_settled(child["stats"], 2)
    # The parent's query went on to its end, and its pool is whole: the busy connection came
    # back and is lent again, nothing is left open, and the server agrees.
    assert result["busy_pid"] is not None
    assert result["pid_after"] == result["busy_pid"]
    stats = result["stats"]
    assert_settled(stats, 2)
    assert stats["opened"] == 1
    assert stats["lost"] == 0
    assert result["server_sessions"] == stats["open"] == 1
