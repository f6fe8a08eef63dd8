"""psycopg 3 waits for the server through the runtime's hub, with psycopg's own contract kept;
a way of waiting that would block every greenlet is refused, with the fix.

The scripts run under the cell's runtime (GEVENTPOOL_RUNTIME): gevent, or eventlet, whose
patching psycopg doesn't recognise.
"""

from __future__ import annotations

import os

import psycopg
import psycopg.waiting
import pytest

from support.scenarios import run_scenario

RUNTIME = os.environ.get("GEVENTPOOL_RUNTIME", "gevent")
BACKEND = "django_db_geventpool.backends.postgresql_psycopg3"
# The function, or its variant for the psycopg release installed (wait_gevent_3_2, ...).
OURS = {
    "gevent": f"{BACKEND}.waits_gevent.wait_gevent",
    "eventlet": f"{BACKEND}.waits_eventlet.wait_eventlet",
}[RUNTIME]
PSYCOPG_RELEASE = tuple(int(part) for part in psycopg.__version__.split(".")[:2])
# What psycopg picks on import: under gevent, from 3.2 on, through gevent's patched select
# module; otherwise (3.1 under gevent, any release under eventlet, neither of which it
# recognises) its C function, which would block the whole process.
PSYCOPG_PICKS = ".wait_poll" if RUNTIME == "gevent" and PSYCOPG_RELEASE >= (3, 2) else ".wait_c"
PATCH = {"gevent": "gevent's monkey.patch_all()", "eventlet": "eventlet.monkey_patch()"}[RUNTIME]


@pytest.fixture
def no_user_choice(monkeypatch):
    monkeypatch.delenv("PSYCOPG_WAIT_FUNC", raising=False)


def test_the_pool_gives_psycopg_the_runtime_wait_function(pg, fresh_db, no_user_choice):
    result = run_scenario("green_wait.py", "chosen", pg.env(fresh_db))
    assert result["before"].endswith(PSYCOPG_PICKS)
    assert result["after"].startswith(OURS)


@pytest.mark.parametrize("choice", [None, "wait_select"])
def test_psycopg_imported_before_patching_is_refused(pg, fresh_db, monkeypatch, choice):
    # Even with a wait function that the runtime patches for queries: connecting goes through
    # the selector psycopg took when imported, which blocks.
    if choice is None:
        monkeypatch.delenv("PSYCOPG_WAIT_FUNC", raising=False)
    else:
        monkeypatch.setenv("PSYCOPG_WAIT_FUNC", choice)
    result = run_scenario("late_patch.py", "-", pg.env(fresh_db))
    assert result["error"].endswith(
        f"psycopg would block every {RUNTIME} greenlet while it connects: psycopg was imported"
        f" before {PATCH}. Patch first, before anything imports Django's database backends"
        " (gunicorn's gevent worker and `celery worker -P gevent` do)"
    )


@pytest.mark.skipif(
    not hasattr(psycopg.waiting, "wait_c"), reason="psycopg has no C wait function here"
)
def test_psycopg_wait_func_naming_the_blocking_function_is_refused(pg, fresh_db):
    env = {**pg.env(fresh_db), "PSYCOPG_WAIT_FUNC": "wait_c"}
    result = run_scenario("green_wait.py", "first_connection", env)
    assert result["error"].endswith(
        f"PSYCOPG_WAIT_FUNC=wait_c blocks every {RUNTIME} greenlet while one waits for the"
        " server: unset PSYCOPG_WAIT_FUNC to let the backend choose, or set it to wait_select"
    )


def test_a_wait_function_chosen_with_psycopg_wait_func_is_kept(pg, fresh_db):
    env = {**pg.env(fresh_db), "PSYCOPG_WAIT_FUNC": "wait_select"}
    result = run_scenario("green_wait.py", "chosen", env)
    assert result["after"] == "psycopg.waiting.wait_select"


def test_queries_wait_side_by_side_while_the_hub_runs(pg, fresh_db, no_user_choice):
    result = run_scenario(
        "green_wait.py",
        "overlap",
        pg.env(fresh_db),
        greenlets=8,
        sleep=0.5,
        options={"MAX_CONNS": 8},
    )
    assert result["wait"].startswith(OURS)
    # Eight half-second queries in one go, not one after the other (4 s).
    assert result["queries_elapsed"] < 2.0
    # A greenlet sleeping 10 ms at a time kept running meanwhile.
    assert result["ticks"] >= 20


def test_transfers_larger_than_the_socket_buffers(pg, fresh_db, no_user_choice):
    size = 8 * 1024 * 1024
    result = run_scenario("green_wait.py", "large_transfers", pg.env(fresh_db), size=size)
    assert result["wait"].startswith(OURS)
    assert result["sent"] == size
    assert result["received"] == size
    assert result["copied_out"] == 4 * size
    assert result["stats"]["in_use"] == 0


@pytest.mark.skipif(
    PSYCOPG_RELEASE < (3, 2), reason="Connection.notifies() takes a timeout from psycopg 3.2 on"
)
def test_psycopg_timeouts_still_expire_and_data_still_wakes(pg, fresh_db, no_user_choice):
    result = run_scenario(
        "green_wait.py", "notifies", pg.env(fresh_db), quiet_for=0.3, notify_after=0.2
    )
    assert result["wait"].startswith(OURS)
    # Nothing came: notifies() returned when its timeout expired, not before, not much later.
    assert result["nothing"] == []
    assert 0.25 <= result["quiet"] < 2.0
    # A notification sent 0.2 s later ended the wait long before its 10 s timeout.
    assert result["received"] == ["hello"]
    assert result["awaited"] < 5.0
