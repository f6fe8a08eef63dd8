"""What the pool needs to know about a DB-API connection from a libpq-based driver."""

from __future__ import annotations

import _socket
import enum
import logging
import os
import select
from collections.abc import Callable
from time import monotonic
from typing import Any, Protocol

from django_db_geventpool.core.runtime import detect

logger = logging.getLogger("django_db_geventpool")


class TransactionStatus(enum.IntEnum):
    """libpq's transaction status, as both psycopg 2 and psycopg 3 report it."""

    IDLE = 0
    ACTIVE = 1
    INTRANS = 2
    INERROR = 3
    UNKNOWN = 4


class Connection(Protocol):
    """The part of a psycopg 2 or psycopg 3 connection the pool uses."""

    @property
    def closed(self) -> Any: ...

    @property
    def info(self) -> Any: ...

    @property
    def autocommit(self) -> bool: ...

    @autocommit.setter
    def autocommit(self, value: bool) -> None: ...

    def cursor(self) -> Any: ...

    def rollback(self) -> None: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...

    def fileno(self) -> int: ...


def transaction_status(conn: Connection) -> int:
    """Return the connection's `TransactionStatus`, read locally (no round trip).

    A plain int: it is read twice per checkout, and building an enum costs more than the
    rest of the read. Drivers may give the pool a faster function of their own.
    """
    if conn.closed:
        return TransactionStatus.UNKNOWN
    return int(conn.info.transaction_status)


def server_timezone(conn: Connection) -> str | None:
    """Return the session's TimeZone as the server last reported it (no round trip).

    Read on every checkout of a reused connection; drivers may give a faster function.
    """
    timezone: str | None = conn.info.parameter_status("TimeZone")
    return timezone


def ping(conn: Connection) -> None:
    """Check that the server still answers on `!conn`; raise if it doesn't."""
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT 1")
    finally:
        cursor.close()
    if transaction_status(conn) == TransactionStatus.INTRANS:
        # Outside autocommit the ping opened a transaction; it must not outlive it.
        conn.rollback()


def run_reset_query(conn: Connection, query: str) -> None:
    """Run `!query` (such as ``DISCARD ALL``) outside any transaction block."""
    # Statements like DISCARD ALL refuse to run inside a transaction block.
    conn.autocommit = True
    cursor = conn.cursor()
    try:
        cursor.execute(query)
    finally:
        cursor.close()


def cancel_in_thread(conn: Connection, timeout: float) -> bool:
    """Run the driver's ``conn.cancel()`` in an OS thread, waiting at most `!timeout` seconds.

    libpq's cancel request blocks while it connects to the server and waits for its answer.
    Only a driver whose ``cancel()`` lets go of the GIL meanwhile (psycopg2cffi, psycopg's
    Python implementation) leaves the other greenlets running: the backends give the pool
    their own cancel. Return whether the request was delivered in time.
    """
    failure: list[Exception] = []

    def run() -> None:
        try:
            conn.cancel()
        except Exception as ex:
            failure.append(ex)

    if not detect().offload(run, timeout):
        logger.warning("couldn't cancel a query within %.1f s: the server didn't answer", timeout)
        return False
    if failure:
        logger.warning("couldn't cancel a query: %s", failure[0])
        return False
    return True


def close_and_wait(
    conn: Connection, timeout: float, close: Callable[[], None] | None = None
) -> bool:
    """Close `!conn` and wait, at most `!timeout` seconds, until its server session has ended.

    `!close` closes the connection, if not just ``conn.close()``. Return False if the
    server did not hang up in time. A backend keeps its end of the socket open until its
    process exits, after it has left ``pg_stat_activity``, so that clients can close
    synchronously: end-of-file on a copy of the socket means the session is gone. The wait
    is on `select`, which gevent and eventlet patch.
    """
    deadline = monotonic() + timeout
    if conn.closed:
        return True
    try:
        fd = os.dup(conn.fileno())
    except Exception:
        # Broken already: there is no session to wait for.
        conn.close()
        return True
    try:
        (close or conn.close)()
        _half_close(fd)
        return _hung_up(fd, deadline)
    finally:
        os.close(fd)


def _half_close(fd: int) -> None:
    # The end of what this client sends: the server hears that it is gone even where the
    # Terminate message is stuck behind unread bytes. The C socket, not one gevent or
    # eventlet patched: it only makes a system call.
    sock = _socket.socket(fileno=fd)
    try:
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.detach()


def _hung_up(fd: int, deadline: float) -> bool:
    while True:
        remaining = deadline - monotonic()
        if remaining <= 0:
            return False
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            return False
        try:
            # What a cancelled query still had to say, then end-of-file.
            if not os.read(fd, 65536):
                return True
        except BlockingIOError:
            continue
        except OSError:
            # Reset by the server: gone too.
            return True
