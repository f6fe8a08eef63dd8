"""The PostgreSQL fixtures work: they connect, isolate, and clean up after themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.postgres import DSN_VARIABLE, PgServer

TESTS_DIR = Path(__file__).parent

INNER_TESTS = """
from pathlib import Path

def test_records_and_checks(pg, fresh_db):
    Path("names.txt").write_text(pg.dbname + " " + fresh_db)
    sql = "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
    assert pg.execute(sql, dbname=fresh_db) == [(0,)]

def test_fails_with_a_fresh_db(fresh_db):
    Path("failed.txt").write_text(fresh_db)
    raise AssertionError("failing on purpose")
"""


def test_connects_with_psycopg(pg: PgServer) -> None:
    import psycopg

    with psycopg.connect(pg.conninfo()) as conn:
        row = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row == (pg.dbname, pg.user)


def test_subprocess_env_reaches_the_same_database(pg: PgServer) -> None:
    code = "import psycopg; print(psycopg.connect('').info.dbname)"
    env = {**os.environ, **pg.env()}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == pg.dbname


def test_execute_returns_rows_only_for_queries(pg: PgServer, fresh_db: str) -> None:
    assert pg.execute("CREATE TABLE t (x int)", dbname=fresh_db) == []
    assert pg.execute("INSERT INTO t VALUES (%s), (%s)", [1, 2], dbname=fresh_db) == []
    assert pg.execute("SELECT x FROM t ORDER BY x", dbname=fresh_db) == [(1,), (2,)]


def test_fresh_db_is_empty_and_dropped_even_after_a_failure(pg: PgServer, tmp_path: Path) -> None:
    # A second pytest run against this server (as an external one) uses the fixtures for real.
    shutil.copy(TESTS_DIR / "conftest.py", tmp_path)
    shutil.copytree(TESTS_DIR / "support", tmp_path / "support")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {**os.environ, DSN_VARIABLE: pg.conninfo("postgres")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "1 failed, 1 passed" in result.stdout, result.stdout + result.stderr

    names = (tmp_path / "names.txt").read_text().split()
    names.append((tmp_path / "failed.txt").read_text())
    assert len(set(names)) == 3
    left = pg.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", [names])
    assert left == []


def test_restart_keeps_the_address_and_drops_connections(pg: PgServer) -> None:
    import psycopg

    with psycopg.connect(pg.conninfo()) as conn:
        pg.restart()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    assert pg.execute("SELECT 1") == [(1,)]
