"""The pool on greenlets, observed from the server (pg_stat_activity), for one driver x runtime.

The same tests run in every cell of the matrix: GEVENTPOOL_DRIVER (psycopg3, psycopg2) and
GEVENTPOOL_RUNTIME (gevent, eventlet) choose it, gevent with psycopg 3 by default. Each
scenario reports the runtime the pool detected and the driver Django loaded, and the tests
check them, so a cell can't pass by running something else.
"""

from __future__ import annotations

import pytest

from support.scenarios import DRIVER, RUNTIME, run_in_cell

# IsolationLevel.SERIALIZABLE of the driver, as Django's isolation_level option takes it.
SERIALIZABLE = {"psycopg3": 4, "psycopg2": 3}[DRIVER]


@pytest.fixture
def env(pg, fresh_db):
    return pg.env(fresh_db)


run_scenario = run_in_cell


def test_herd_never_exceeds_max_conns(env):
    # 200 greenlets arrive at once while the first connections are still being opened:
    # the case where the old pool opened one connection per greenlet.
    result = run_scenario(
        "greenlets.py", "herd", env, options={"MAX_CONNS": 20}, greenlets=200, hold=0.05
    )
    assert result["samples"] > 10
    assert 0 < result["sampled_peak"] <= 20
    # Every connection opened stays open (REUSE_CONNS defaults to MAX_CONNS), so the
    # distinct backends that served the herd are all the connections ever opened.
    assert result["backend_pids"] <= 20
    assert result["stats"]["opened"] <= 20
    assert result["stats"]["checkouts"] == 200


def test_idle_connections_settle_at_reuse_conns(env):
    result = run_scenario(
        "greenlets.py",
        "herd",
        env,
        options={"MAX_CONNS": 10, "REUSE_CONNS": 3},
        greenlets=100,
        hold=0.02,
    )
    assert result["sampled_peak"] <= 10
    assert result["after"] == 3
    stats = result["stats"]
    assert (stats["open"], stats["idle"], stats["in_use"], stats["waiting"]) == (3, 3, 0, 0)
    assert stats["opened"] - stats["closed"] == 3


EVERY_OPTION = {
    "PING_AFTER": 0,
    "MAX_LIFETIME": 60,
    "RESET_QUERY": "DISCARD ALL",
    "LEAK_TIMEOUT": 0.2,
    "CHECKOUT_TIMEOUT": 5,
    "connect_timeout": 5,
}


@pytest.mark.parametrize("more", [{}, EVERY_OPTION], ids=["idle-time", "every-option"])
def test_idle_connections_are_closed_without_traffic(env, more):
    # With every option on too: the pool's background work (sweep, leak reports, reclaim)
    # must not keep gevent's loop running once the application's greenlets are done.
    result = run_scenario(
        "greenlets.py",
        "idle_sweep",
        env,
        options={"MAX_CONNS": 5, "MAX_IDLE_TIME": 0.3, **more},
        greenlets=5,
        quiet=1.0,
    )
    assert result["opened"] == 5
    assert result["after"] == 0
    stats = result["stats"]
    assert (stats["open"], stats["idle"], stats["retired"]) == (0, 0, 5)
    if RUNTIME == "gevent":
        assert result["loop_finished"] is True


def test_waiters_are_served_first_come_first_served(env):
    result = run_scenario("greenlets.py", "fifo", env, options={"MAX_CONNS": 1}, waiters=10)
    assert result["waiting_before_release"] == 10
    assert result["served"] == list(range(10))
    assert result["stats"]["opened"] == 1


def test_killed_connections_free_their_slots_for_waiters(env):
    result = run_scenario(
        "greenlets.py", "killed", env, options={"MAX_CONNS": 2}, max_conns=2, waiters=5
    )
    assert result["waiting_before_kill"] == 5
    outcomes = result["outcomes"]
    assert outcomes["holder0"] == outcomes["holder1"] == "lost"
    served_by = {outcomes[f"waiter{i}"] for i in range(5)}
    assert not served_by & set(result["killed_pids"])
    assert result["after"] <= 2
    stats = result["stats"]
    assert stats["lost"] == 2
    assert (stats["in_use"], stats["waiting"]) == (0, 0)
    assert stats["open"] == stats["opened"] - stats["closed"] <= 2


def test_connection_returned_in_transaction_comes_back_clean(env):
    result = run_scenario("greenlets.py", "returned_in_transaction", env, options={"MAX_CONNS": 1})
    idle_autocommit = {"autocommit": True, "status": 0, "rows": 0}
    # The same server session is reused (MAX_CONNS=1), rolled back rather than replaced.
    assert result["after_open"] == {"pid": result["open_pid"], **idle_autocommit}
    assert result["after_failed"] == {"pid": result["failed_pid"], **idle_autocommit}
    assert result["stats"]["opened"] == 1
    assert result["stats"]["lost"] == 0


def test_orm_round_trips_from_many_greenlets(env):
    result = run_scenario("greenlets.py", "orm", env, options={"MAX_CONNS": 5}, greenlets=50)
    assert result["total"] == 50
    assert all(
        r == {"payload_ok": True, "when_ok": True, "aware": True, "found": 1}
        for r in result["results"]
    )
    assert result["stats"]["opened"] <= 5


def test_killed_or_timed_out_waiters_leave_the_pool_whole(env):
    result = run_scenario("greenlets.py", "abandoned_waiters", env, options={"MAX_CONNS": 1})
    assert result["queued_before_kill"] == 1
    assert result["queued_after_kill"] == 0
    assert result["runtime_timeout"] is True
    assert result["queued_after_timeout"] == 0
    after = result["after_served_kill"]
    assert (after["open"], after["idle"], after["waiting"]) == (1, 1, 0)
    assert result["works"] is True
    assert result["stats"]["opened"] == 1


@pytest.fixture
def role(pg):
    return pg.ensure_role("geventpool_app")


def test_django_session_setup_holds_on_new_and_reused_connections(env, role):
    result = run_scenario(
        "greenlets.py",
        "session_setup",
        env,
        options={"MAX_CONNS": 1, "assume_role": role, "isolation_level": SERIALIZABLE},
    )
    expected = {"tz": "UTC", "user": role, "isolation": "serializable"}
    first, second = result["first"], result["second"]
    assert second.pop("pid") == first.pop("pid")  # the second one reused the connection
    assert first == second == expected
    assert result["stats"]["opened"] == 1


def test_close_connection_as_decorator_and_context_manager(env):
    result = run_scenario("greenlets.py", "close_connection_forms", env, options={"MAX_CONNS": 2})
    assert result["returned"] == 42
    assert result["raised"] == "raised inside"
    assert result["block"] == [42, 1]
    assert result["in_use_after_decorator"] == 0
    assert result["in_use_after_error"] == 0
    assert result["in_use_after_block"] == 0
    assert result["checkouts"] == 3
