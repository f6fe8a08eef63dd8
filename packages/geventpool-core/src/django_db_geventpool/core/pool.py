"""A connection pool whose size is a hard cap, for greenlets and threads alike."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic
from typing import Generic, TypeVar

from django_db_geventpool.core import errors
from django_db_geventpool.core.connection import Connection, TransactionStatus, transaction_status
from django_db_geventpool.core.runtime import Event, Runtime, detect

logger = logging.getLogger("django_db_geventpool")

ConnT = TypeVar("ConnT", bound=Connection)

#: Default seconds `ConnectionPool.getconn` waits for a connection.
DEFAULT_TIMEOUT = 30.0


class _Waiter(Generic[ConnT]):
    """A client queued for a connection, served in arrival order."""

    __slots__ = ("conn", "event", "served")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.served = False
        # None when served with a free slot: the waiter opens a connection in it.
        self.conn: ConnT | None = None


class ConnectionPool(Generic[ConnT]):
    """Hand out at most `!max_size` connections, keeping up to `!max_idle` of them open.

    Every connection holds a slot from the moment the pool decides to open it until it is
    closed, so a herd of clients arriving together while connections are being opened can
    never push the number of server connections over `!max_size`. A client that finds no
    idle connection and no free slot waits in a queue; a connection given back, or a slot
    freed by a connection discarded, goes straight to the client at the head of the queue.
    """

    def __init__(
        self,
        connect: Callable[[], ConnT] | None = None,
        *,
        name: str = "default",
        max_size: int = 4,
        max_idle: int | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        error_base: type[Exception] = Exception,
        runtime: Runtime | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_idle is None:
            max_idle = max_size
        if not 0 <= max_idle <= max_size:
            raise ValueError(
                f"max_idle must be between 0 and max_size ({max_size}), got {max_idle}"
            )
        self.name = name
        self.max_size = max_size
        self.max_idle = max_idle
        self.timeout = timeout
        self.runtime = runtime or detect()
        self._connect = connect
        self._timeout_error = errors.bind(errors.PoolTimeout, error_base)
        self._closed_error = errors.bind(errors.PoolClosed, error_base)

        self._lock = self.runtime.lock()
        self._idle: deque[ConnT] = deque()
        self._waiting: deque[_Waiter[ConnT]] = deque()
        # Slots taken: connections open, in use or idle, and connections being opened.
        self._size = 0
        self._closed = False

        self._checkouts = 0
        self._timeouts = 0
        self._opened = 0
        self._closed_count = 0
        self._lost = 0
        self._wait_time = 0.0

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} ({self.runtime.name})"
            f" size={self._size}/{self.max_size} idle={len(self._idle)}"
            f" waiting={len(self._waiting)}{' closed' if self._closed else ''}>"
        )

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def connection(self, timeout: float | None = DEFAULT_TIMEOUT) -> Iterator[ConnT]:
        """Lend a connection for the duration of a ``with`` block."""
        conn = self.getconn(timeout)
        try:
            yield conn
        finally:
            self.putconn(conn)

    def getconn(
        self,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect: Callable[[], ConnT] | None = None,
    ) -> ConnT:
        """Return a connection, opening one if there is a free slot, else waiting for one.

        `!connect` replaces the pool's own connection factory, if this call has to open a
        connection. Raise `PoolTimeout` after `!timeout` seconds (`!None`: wait forever).
        """
        with self._lock:
            if self._closed:
                raise self._closed_error(f"the pool {self.name!r} is closed")
            conn: ConnT | None
            if self._idle:
                conn = self._idle.pop()
                self._checkouts += 1
            elif self._size < self.max_size:
                # Critical section: the slot is taken before connecting, which yields to
                # other clients; they must see it taken.
                self._size += 1
                self._checkouts += 1
                conn = None
            else:
                waiter: _Waiter[ConnT] = _Waiter(self.runtime.event())
                self._waiting.append(waiter)
                conn = self._wait(waiter, timeout)
        # Outside the lock from here on: opening, checking and closing connections yield.
        if conn is not None:
            if transaction_status(conn) == TransactionStatus.IDLE:
                return conn
            # Known broken while idle (the driver noticed the server went away): open a
            # new connection in its slot instead.
            self._close_quietly(conn, lost=True)
        return self._open(connect or self._connect)

    def _wait(self, waiter: _Waiter[ConnT], timeout: float | None) -> ConnT | None:
        """Wait, with the lock held on entry and exit, until `!waiter` is served."""
        self._lock.release()
        start = monotonic()
        try:
            waiter.event.wait(timeout)
        except BaseException:
            # Killed or timed out from outside (greenlet.kill, gevent.Timeout): whatever
            # the waiter was handed in the meantime goes back, so nothing is lost.
            self._lock.acquire()
            self._abandon(waiter)
            raise
        finally:
            elapsed = monotonic() - start
        self._lock.acquire()
        self._wait_time += elapsed
        if waiter.served:
            self._checkouts += 1
            return waiter.conn
        if self._closed:
            raise self._closed_error(f"the pool {self.name!r} was closed while waiting")
        self._waiting.remove(waiter)
        self._timeouts += 1
        raise self._timeout_error(
            f"couldn't get a connection for {self.name!r} after {elapsed:.2f} s:"
            f" all {self.max_size} in use, {len(self._waiting)} more waiting;"
            " raise MAX_CONNS or find the code that holds connections"
        )

    def _abandon(self, waiter: _Waiter[ConnT]) -> None:
        """Take `!waiter` out of the queue, giving back what it was served (lock held)."""
        if not waiter.served:
            if not self._closed:
                self._waiting.remove(waiter)
        elif waiter.conn is not None:
            self._give(waiter.conn)
        else:
            self._free_slot()

    def _open(self, connect: Callable[[], ConnT] | None) -> ConnT:
        """Open a connection in a slot already taken; free the slot if that fails."""
        try:
            if connect is None:
                raise TypeError(
                    f"the pool {self.name!r} has no connect function: pass one to getconn()"
                )
            conn = connect()
        except BaseException:
            with self._lock:
                self._free_slot()
            raise
        with self._lock:
            self._opened += 1
        logger.debug(
            "pool %r: opened a connection (%d of %d)", self.name, self._size, self.max_size
        )
        return conn

    def putconn(self, conn: ConnT) -> None:
        """Give back a connection taken with `getconn`.

        A connection left in a transaction is rolled back; one that is closed, broken, or
        was cut in the middle of a query is closed and its slot handed on.
        """
        if not self._reset(conn):
            self._close_quietly(conn, lost=True)
            with self._lock:
                self._free_slot()
            return
        with self._lock:
            to_close = self._give(conn)
        if to_close is not None:
            self._close_quietly(to_close)

    def _reset(self, conn: ConnT) -> bool:
        """Bring `!conn` back to an idle session; return False if it can't be reused."""
        status = transaction_status(conn)
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            try:
                conn.rollback()
            except Exception as ex:
                logger.warning(
                    "pool %r: rollback of a returned connection failed: %s", self.name, ex
                )
                return False
            status = transaction_status(conn)
        elif status == TransactionStatus.ACTIVE:
            # A query is still running (the client was cut off by a timeout): only closing
            # the connection stops it from reaching the next user.
            logger.warning(
                "pool %r: connection returned in the middle of a query; closing it", self.name
            )
        return status == TransactionStatus.IDLE

    def _give(self, conn: ConnT) -> ConnT | None:
        """Hand `!conn` to the next waiter, or keep it idle (lock held).

        Return it if it should be closed instead (outside the lock: closing may yield).
        """
        if self._waiting:
            self._serve(conn)
            return None
        if not self._closed and len(self._idle) < self.max_idle:
            self._idle.append(conn)
            return None
        self._size -= 1
        return conn

    def _free_slot(self) -> None:
        """Hand a slot to the next waiter, which opens a connection in it (lock held)."""
        if self._waiting and not self._closed:
            self._serve(None)
        else:
            self._size -= 1

    def _serve(self, conn: ConnT | None) -> None:
        waiter = self._waiting.popleft()
        waiter.conn = conn
        waiter.served = True
        waiter.event.set()

    def _close_quietly(self, conn: ConnT, lost: bool = False) -> None:
        try:
            conn.close()
        except Exception as ex:
            logger.warning("pool %r: error closing a connection: %s", self.name, ex)
        with self._lock:
            self._closed_count += 1
            if lost:
                self._lost += 1

    def close(self) -> None:
        """Close the idle connections and refuse new checkouts.

        Connections in use are closed when they are given back; waiting clients get
        `PoolClosed`.
        """
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._size -= len(idle)
            waiting = list(self._waiting)
            self._waiting.clear()
        for waiter in waiting:
            # Woken but not served: the waiter raises PoolClosed.
            waiter.event.set()
        for conn in idle:
            self._close_quietly(conn)
        if idle or waiting:
            logger.info("pool %r closed: %d idle connections closed", self.name, len(idle))

    def stats(self) -> dict[str, int | float]:
        """Return the pool's gauges and counters."""
        with self._lock:
            idle = len(self._idle)
            return {
                "max": self.max_size,
                "max_idle": self.max_idle,
                "open": self._size,
                "idle": idle,
                "in_use": self._size - idle,
                "waiting": len(self._waiting),
                "checkouts": self._checkouts,
                "timeouts": self._timeouts,
                "opened": self._opened,
                "closed": self._closed_count,
                "lost": self._lost,
                "wait_seconds": self._wait_time,
            }
