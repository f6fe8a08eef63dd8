"""Cancelling a psycopg2 query without stopping the process.

psycopg2's own ``cancel()`` keeps the GIL while libpq waits for the server's answer, which a
frozen network never sends: every greenlet would stop, even with the call in an OS thread.
The request goes through the same libpq by ctypes instead (see `core.cancel`).
"""

from __future__ import annotations

from typing import Any

from django_db_geventpool.backends.postgresql_psycopg2 import driver
from django_db_geventpool.core.cancel import cancel_query
from django_db_geventpool.core.connection import cancel_in_thread


def cancel(conn: Any, timeout: float) -> bool:
    """Ask the server to stop `!conn`'s query, at most `!timeout` seconds, never blocking the
    process; return whether the request was delivered."""
    if conn.closed:
        return False
    pgconn_ptr = getattr(conn, "pgconn_ptr", None)
    if pgconn_ptr is None and not hasattr(type(conn), "pgconn_ptr"):
        # psycopg2cffi (PyPy): cffi lets go of the GIL during libpq's calls, so its own
        # cancel can wait in an OS thread without stopping the others.
        return cancel_in_thread(conn, timeout)
    return cancel_query(pgconn_ptr, driver.load().extensions.libpq_version(), timeout)
