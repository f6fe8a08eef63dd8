"""`manage.py test` on the psycopg2 backend: test database creation, reuse and teardown."""

from __future__ import annotations

import pytest

from support.testproject import django_admin


@pytest.mark.smoke
def test_manage_py_test_replaces_a_leftover_test_database(pg, fresh_db):
    # A test database left by an interrupted run: Django recognises PostgreSQL's
    # DuplicateDatabase error (psycopg2.errors, which psycopg2cffi lacks), drops it and
    # creates it again.
    test_db = f"test_{fresh_db}"
    pg.create_database(test_db)
    env = {
        **pg.env(fresh_db),
        "GEVENTPOOL_ENGINE": "django_db_geventpool.backends.postgresql_psycopg2",
        "GEVENTPOOL_TEST_DB": test_db,
    }
    try:
        proc = django_admin("test", "testapp", "--noinput", "-v", "2", env=env)
    finally:
        pg.drop_database(test_db)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert f"Destroying old test database for alias 'default' ('{test_db}')" in output
    assert "Ran 3 tests" in output
    assert f"Destroying test database for alias 'default' ('{test_db}')" in output
