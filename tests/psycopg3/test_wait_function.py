"""psycopg 3 waiting in a way that would block every greenlet is refused, with the fix."""

from __future__ import annotations

import os

import pytest
from psycopg import waiting

from support.scenarios import run_scenario

RUNTIME = os.environ.get("GEVENTPOOL_RUNTIME", "gevent")
PATCH = {"gevent": "gevent's monkey.patch_all()", "eventlet": "eventlet.monkey_patch()"}[RUNTIME]


@pytest.fixture
def no_user_choice(monkeypatch):
    monkeypatch.delenv("PSYCOPG_WAIT_FUNC", raising=False)


def test_psycopg_imported_before_patching_is_refused(pg, fresh_db, no_user_choice):
    result = run_scenario("late_patch.py", "-", pg.env(fresh_db))
    assert f"would block every {RUNTIME} greenlet" in result["error"]
    assert f"psycopg was imported before {PATCH}: patch first" in result["error"]
    if RUNTIME == "gevent":
        # The other way out: psycopg's select()-based wait, which gevent patches.
        assert "PSYCOPG_WAIT_FUNC=wait_select" in result["error"]


@pytest.mark.skipif(not hasattr(waiting, "wait_c"), reason="psycopg has no C wait function here")
def test_psycopg_wait_func_naming_the_blocking_function_is_refused(pg, fresh_db):
    env = {**pg.env(fresh_db), "PSYCOPG_WAIT_FUNC": "wait_c"}
    result = run_scenario("psycopg_wait.py", "first_connection", env)
    assert result["error"].endswith(
        f"PSYCOPG_WAIT_FUNC=wait_c blocks every {RUNTIME} greenlet while one waits for the"
        " server: unset PSYCOPG_WAIT_FUNC to let the backend choose, or set it to wait_select"
    )
