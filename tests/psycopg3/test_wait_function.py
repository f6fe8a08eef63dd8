"""psycopg 3 waiting in a way that would block every greenlet is refused, with the fix."""

from __future__ import annotations

import os

import pytest

from support.scenarios import run_scenario

RUNTIME = os.environ.get("GEVENTPOOL_RUNTIME", "gevent")


@pytest.mark.skipif(RUNTIME != "gevent", reason="runs in the gevent cells")
def test_psycopg_imported_before_patching_is_refused(pg, fresh_db):
    result = run_scenario("late_patch.py", "-", pg.env(fresh_db))
    assert "psycopg was imported before gevent's monkey.patch_all()" in result["error"]
    assert "PSYCOPG_WAIT_FUNC=wait_select" in result["error"]


@pytest.mark.skipif(RUNTIME != "eventlet", reason="runs in the eventlet cells")
def test_eventlet_without_psycopg_wait_func_is_refused(pg, fresh_db):
    result = run_scenario("eventlet_wait.py", "-", pg.env(fresh_db))
    assert "blocks every eventlet greenlet" in result["error"]
    assert "set PSYCOPG_WAIT_FUNC=wait_select in the environment" in result["error"]
