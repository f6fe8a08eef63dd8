"""Cancelling a psycopg 3 query without stopping the process.

`Connection.cancel_safe` (psycopg 3.2 with libpq 17 or later) sends the request without
blocking, through psycopg's `wait_conn`, whose selector the runtime patched: only the calling
greenlet waits, at most the timeout. Elsewhere it falls back to the blocking ``cancel()``,
which psycopg's C implementation runs holding the GIL; the request then goes through the same
libpq by ctypes instead (see `core.cancel`).
"""

from __future__ import annotations

import logging
from typing import Any

from django_db_geventpool.core.cancel import cancel_query

logger = logging.getLogger("django_db_geventpool")


def cancel(conn: Any, timeout: float) -> bool:
    """Ask the server to stop `!conn`'s query, at most `!timeout` seconds, never blocking the
    process; return whether the request was delivered."""
    from psycopg import Error, errors, pq

    if conn.closed:
        return False
    if not _has_cancel_safe():
        return cancel_query(conn.pgconn.pgconn_ptr, pq.version(), timeout)
    try:
        conn.cancel_safe(timeout=timeout)
    except errors.CancellationTimeout:
        logger.warning("couldn't cancel a query within %.1f s: the server didn't answer", timeout)
        return False
    except Error as ex:
        logger.warning("couldn't cancel a query: %s", ex)
        return False
    return True


def _has_cancel_safe() -> bool:
    try:
        from psycopg import capabilities
    except ImportError:
        # psycopg 3.1: no cancel_safe().
        return False
    return bool(capabilities.has_cancel_safe())
