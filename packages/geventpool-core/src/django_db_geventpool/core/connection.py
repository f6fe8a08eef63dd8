"""What the pool needs to know about a DB-API connection from a libpq-based driver."""

from __future__ import annotations

import enum
from typing import Any, Protocol


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
