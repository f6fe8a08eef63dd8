"""`manage.py test` creates, uses and drops its test database through the pool."""

from __future__ import annotations

import json

import pytest

from support.testproject import django_admin


@pytest.mark.smoke
@pytest.mark.parametrize("engine", ["postgresql_psycopg3", "postgresql_psycopg"])
def test_manage_py_test_creates_and_destroys_the_test_database(pg, fresh_db, engine):
    test_db = f"test_{fresh_db}"
    env = {
        **pg.env(fresh_db),
        "GEVENTPOOL_ENGINE": f"django_db_geventpool.backends.{engine}",
        "GEVENTPOOL_TEST_DB": test_db,
    }
    proc = django_admin("test", "testapp", "--noinput", "-v", "2", env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Ran 3 tests" in output
    assert f"Destroying test database for alias 'default' ('{test_db}')" in output
    assert pg.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [test_db]) == [(0,)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"MAX_CONNS": "20"}, "['MAX_CONNS'] is '20': it must be an integer"),
        ({"MAX_CONN": 20}, "unknown key 'MAX_CONN': did you mean 'MAX_CONNS'?"),
        ({"REUSE_CONNS": 9}, "['REUSE_CONNS'] is 9: it must be between 0 and MAX_CONNS (3)"),
        ({"pool": True}, "Django's own connection pool"),
        ({"MAX_IDLE_TIME": float("nan")}, "['MAX_IDLE_TIME'] is nan: it must be a number"),
        ({"CHECKOUT_TIMEOUT": 10**400}, "it must be a number of seconds (0 or more, and finite)"),
        ({"max_conns": 20}, "unknown key 'max_conns': did you mean 'MAX_CONNS'?"),
    ],
)
def test_manage_py_check_reports_bad_pool_settings(pg, options, message):
    env = {**pg.env(), "GEVENTPOOL_OPTIONS": json.dumps(options)}
    proc = django_admin("check", "--database", "default", env=env, timeout=60)
    assert proc.returncode == 1
    assert "(geventpool.E001)" in proc.stderr
    assert message in proc.stderr
