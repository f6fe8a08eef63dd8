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

    def rollback(self) -> None: ...

    def close(self) -> None: ...


def transaction_status(conn: Connection) -> TransactionStatus:
    """Return the connection's transaction status, read locally (no round trip)."""
    if conn.closed:
        return TransactionStatus.UNKNOWN
    return TransactionStatus(conn.info.transaction_status)
