"""`manage.py test` creates, uses and drops its test database through the pool."""

from __future__ import annotations

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
