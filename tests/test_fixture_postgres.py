"""The PostgreSQL fixtures work: they connect, isolate, and clean up after themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import support.cluster
from support.cluster import (
    DSN_VARIABLE,
    PIP_POSTGRES,
    Cluster,
    bundled_postgres,
    copy_postgres,
    postgres_binaries,
)
from support.server import PgServer, open_server

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


@pytest.fixture
def pip_postgres(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bin directory of the PostgreSQL pip installs, with PATH left without one."""
    bindir = bundled_postgres()
    if bindir is None:
        reason = f"{PIP_POSTGRES} is not installed: pip install {PIP_POSTGRES}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (the nox tests sessions install it)", pytrace=False)
        pytest.skip(reason)
    path = os.environ["PATH"].split(os.pathsep)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in path if not Path(d, "initdb").exists()))
    for variable in (DSN_VARIABLE, "PGHOST"):
        monkeypatch.delenv(variable, raising=False)
    return bindir


def test_without_postgresql_on_path_the_pip_installed_one_runs(pip_postgres: Path) -> None:
    assert postgres_binaries() == (str(pip_postgres / "initdb"), str(pip_postgres / "pg_ctl"))
    server = open_server()
    assert server.cluster is not None
    try:
        (version,) = server.execute("SHOW server_version_num")[0]
        assert int(version) >= 160000
        # The server running is that installation's, not one PATH had after all.
        (data_directory,) = server.execute("SHOW data_directory")[0]
        assert Path(data_directory) == server.cluster.datadir
    finally:
        server.close()
    assert not server.cluster.base.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
@pytest.mark.parametrize("user", ["postgres", "nobody"])
def test_an_installation_the_server_user_cannot_reach_is_copied(
    pip_postgres: Path, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nobody: a machine with no postgres OS user, which has never had PostgreSQL installed.
    monkeypatch.setattr(support.cluster, "UNPRIVILEGED_USERS", (user,))
    # Like a virtualenv under /root: a directory only root may enter.
    hidden = Path(tempfile.mkdtemp(prefix="geventpool-root-only-", dir="/tmp"))
    try:
        hidden.chmod(0o700)
        bindir = copy_postgres(pip_postgres, hidden)
        cluster = Cluster(str(bindir / "initdb"), str(bindir / "pg_ctl"))
        try:
            assert cluster.run_as[-2:] == [user, "--"]
            assert Path(cluster.initdb).is_relative_to(cluster.base)
            cluster.init()
            cluster.start()
            assert cluster.running
        finally:
            cluster.destroy()
        assert not cluster.base.exists()
    finally:
        shutil.rmtree(hidden)
