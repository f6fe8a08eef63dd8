"""The PostgreSQL server the tests talk to, with a database of their own on it.

It is the server named by ``GEVENTPOOL_TEST_DSN`` (a libpq conninfo string or a postgresql:// URI),
else the one named by ``PGHOST`` and the other ``PG*`` variables, else a throwaway cluster
(cluster.py) that lives in a temporary directory for one test session.

psycopg is imported only inside the functions that use it: its first import fixes how it waits on
sockets, so code that monkey-patches must get the chance to run before it.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .cluster import DSN_VARIABLE, SERVER_USER, Cluster, ServerUnavailable, postgres_binaries

SESSION_DBNAME = "geventpool_test"

if TYPE_CHECKING:
    # Only in annotations: the tests also run on PyPy 3.9, where `|` between types fails.
    Params = Sequence[Any] | Mapping[str, Any]


def quote(value: str) -> str:
    """Quote a value for a libpq key=value string, if it needs it."""
    if re.fullmatch(r"[^\s'\\=]+", value):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


@dataclass
class PgServer:
    """Where the tests' server is, with helpers to reach it."""

    host: str
    port: int
    user: str
    password: str | None
    dbname: str
    cluster: Cluster | None = None
    # Where CREATE/DROP DATABASE run: a database that is not created or dropped by the tests.
    admin_dbname: str = "postgres"

    @property
    def managed(self) -> bool:
        """True when the server is a throwaway cluster of this test session."""
        return self.cluster is not None

    def conninfo(self, dbname: str | None = None) -> str:
        params = {"host": self.host, "port": str(self.port), "user": self.user}
        if self.password is not None:
            params["password"] = self.password
        params["dbname"] = dbname or self.dbname
        return " ".join(f"{key}={quote(value)}" for key, value in params.items())

    def env(self, dbname: str | None = None) -> dict[str, str]:
        """libpq variables to merge into a subprocess environment."""
        env = {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": dbname or self.dbname,
        }
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def django_settings(self, dbname: str | None = None) -> dict[str, str]:
        """The connection keys of a Django DATABASES entry."""
        return {
            "NAME": dbname or self.dbname,
            "USER": self.user,
            "PASSWORD": self.password or "",
            "HOST": self.host,
            "PORT": str(self.port),
        }

    def execute(
        self, sql: str, params: Params | None = None, dbname: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit on a new connection; return its rows, if any."""
        try:
            import psycopg
        except ImportError:
            # PyPy, where psycopg 3 has no binary build: psycopg2cffi stands in.
            return _execute_psycopg2(self.conninfo(dbname), sql, params)

        with psycopg.connect(self.conninfo(dbname), autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def sessions(
        self, application_name: str, settles_at: int | None = None, within: float = 5.0
    ) -> int:
        """Count the server's sessions named `!application_name`.

        With `!settles_at`, wait up to `!within` seconds for the count to reach it first: a
        backend leaves pg_stat_activity only when its process has exited, a moment after the
        client closed the connection.
        """
        deadline = time.monotonic() + within
        while True:
            count = self.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                [application_name],
            )[0][0]
            if settles_at is None or count == settles_at or time.monotonic() >= deadline:
                return int(count)
            time.sleep(0.01)

    def ensure_role(self, name: str) -> str:
        """Create the role `!name` unless it exists (roles are shared by the whole server)."""
        self.execute(
            "DO $$ BEGIN EXECUTE format('CREATE ROLE %I', "
            + _literal(name)
            + "); EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        return name

    def create_database(self, name: str) -> None:
        # template0: a fresh database is empty even if the server's template1 is not.
        self.execute(
            f"CREATE DATABASE {_identifier(name)} TEMPLATE template0", dbname=self.admin_dbname
        )

    def drop_database(self, name: str) -> None:
        self.execute(
            f"DROP DATABASE IF EXISTS {_identifier(name)} WITH (FORCE)", dbname=self.admin_dbname
        )

    def stop(self) -> None:
        """Stop the throwaway cluster (fast mode); a test that calls this must `start()` it."""
        self._own_cluster().stop()

    def start(self) -> None:
        self._own_cluster().start()

    def restart(self) -> None:
        cluster = self._own_cluster()
        cluster.stop()
        cluster.start()

    def ensure_running(self) -> None:
        """Start the throwaway cluster again if a test left it stopped."""
        if self.cluster is not None and not self.cluster.running:
            self.cluster.start()

    def close(self) -> None:
        """Remove what the session created: its database, or the whole throwaway cluster."""
        if self.cluster is None:
            self.drop_database(self.dbname)
        else:
            self.cluster.destroy()

    def _own_cluster(self) -> Cluster:
        if self.cluster is None:
            import pytest  # here: examples use this module outside pytest

            pytest.skip(
                "needs the throwaway cluster: the server given by "
                f"{DSN_VARIABLE}/PGHOST is not the tests' to stop; "
                f"unset {DSN_VARIABLE}/PGHOST to run this test"
            )
        return self.cluster


def _execute_psycopg2(conninfo: str, sql: str, params: Params | None) -> list[tuple[Any, ...]]:
    # psycopg2cffi first: where it is installed, `import psycopg2` may find tests/psycopg2.
    try:
        import psycopg2cffi as psycopg2
    except ImportError:
        import psycopg2

    conn = psycopg2.connect(f"{conninfo} connect_timeout=10")
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []
    finally:
        conn.close()


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(name: str) -> str:
    return '"{}"'.format(name.replace('"', '""'))


def unique_dbname(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def open_server() -> PgServer:
    """Return the server the environment names, or a throwaway cluster, with a session database."""
    dsn = os.environ.get(DSN_VARIABLE)
    if dsn:
        return _external_server(dsn, DSN_VARIABLE)
    if os.environ.get("PGHOST"):
        return _external_server("", "PGHOST")
    return _throwaway_server()


def _external_server(dsn: str, source: str) -> PgServer:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)  # a malformed value fails here, before any connection attempt
        # libpq fills in what the string leaves out (PG* variables, defaults, the socket
        # directory); connecting once reads back what it settled on.
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            info = conn.info
            # A shared server may serve several test runs at once: each gets its own database.
            dbname = unique_dbname(SESSION_DBNAME)
            password = info.password or None
            server = PgServer(info.host, info.port, info.user, password, dbname, None, info.dbname)
        server.create_database(server.dbname)
    except psycopg.Error as exc:
        raise ServerUnavailable(
            f"cannot use the server given by {source} (the tests connect to it and create "
            f"databases): {exc}"
        ) from exc
    return server


def _throwaway_server() -> PgServer:
    cluster = Cluster(*postgres_binaries())
    try:
        cluster.init()
        cluster.start()
        server = PgServer("127.0.0.1", cluster.port, SERVER_USER, None, SESSION_DBNAME, cluster)
        server.create_database(server.dbname)
    except BaseException:
        cluster.destroy()
        raise
    return server
