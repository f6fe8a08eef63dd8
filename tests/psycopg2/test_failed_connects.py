"""psycopg2's wait callback cancels only what was cut: a connect that fails is no cut.

Run in the psycopg2 cells of the `green` session (gevent and eventlet). Scripts:
tests/scripts/cancels.py.
"""

from __future__ import annotations

import pytest

from support.scenarios import run_in_cell


@pytest.fixture
def env(pg, fresh_db):
    return pg.env(fresh_db)


def test_failed_connects_send_no_cancel_request_and_log_nothing(env):
    result = run_in_cell("cancels.py", "failed_psycopg2_connects", env, connects=20)
    assert result["failed"] == 20
    assert result["pid"] > 0
    assert result["cancel_attempts"] == 0
    assert result["messages"] == []
