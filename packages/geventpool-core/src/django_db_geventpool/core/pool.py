"""A connection pool whose size is a hard cap, for greenlets and threads alike."""

from __future__ import annotations

import enum
import logging
import os
import random
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from time import monotonic
from types import FrameType
from typing import Any, Generic, TypeVar

from django_db_geventpool.core import errors
from django_db_geventpool.core.connection import (
    Connection,
    TransactionStatus,
    ping,
    run_reset_query,
    transaction_status,
)
from django_db_geventpool.core.runtime import Event, Runtime, detect

logger = logging.getLogger("django_db_geventpool")

ConnT = TypeVar("ConnT", bound=Connection)

#: Default seconds `ConnectionPool.getconn` waits for a connection.
DEFAULT_TIMEOUT = 30.0
#: Default seconds after which an idle connection is pinged before it is handed out.
DEFAULT_PING_AFTER = 10.0
#: Default seconds a connection lives, give or take `LIFETIME_JITTER`.
DEFAULT_MAX_LIFETIME = 3600.0
#: Default seconds a connection may stay idle before it is closed.
DEFAULT_MAX_IDLE_TIME = 600.0
#: Lifetimes are shortened by up to this fraction, so connections opened together (at start,
#: or after a restart) are not all retired at the same moment.
LIFETIME_JITTER = 0.1


_NOTHING_STALE: tuple[Any, ...] = ()

# filename, line number, function, source line (looked up only when formatted).
_FrameTuple = tuple[str, int, str, None]


def _caller_stack(limit: int = 32) -> list[_FrameTuple]:
    """The stack of the pool's caller, cheaply: traceback.extract_stack() costs ten times more."""
    # Skipping this function, _lend() and getconn().
    frame: FrameType | None = sys._getframe(3)
    stack: list[_FrameTuple] = []
    while frame is not None and len(stack) < limit:
        code = frame.f_code
        stack.append((code.co_filename, frame.f_lineno, code.co_name, None))
        frame = frame.f_back
    stack.reverse()
    return stack


class _Unset(enum.Enum):
    """The type of `UNSET`: no value given, as opposed to None."""

    UNSET = "unset"


#: A `getconn` timeout left to the pool's own.
UNSET = _Unset.UNSET


class _Entry(Generic[ConnT]):
    """A connection of the pool and what the pool knows about it."""

    __slots__ = ("conn", "expires_at", "idle_since", "lent_at", "reported", "stack", "suspect")

    def __init__(self, conn: ConnT, expires_at: float) -> None:
        self.conn = conn
        self.expires_at = expires_at
        self.idle_since = 0.0
        self.lent_at = 0.0
        # Where the connection was taken, kept only when leak detection is on.
        self.stack: list[_FrameTuple] | None = None
        self.reported = False
        # Set when a sibling was found dead: this one is pinged before its next use.
        self.suspect = False


class _Waiter(Generic[ConnT]):
    """A client queued for a connection, served in arrival order."""

    __slots__ = ("entry", "event", "served")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.served = False
        # None when served with a free slot: the waiter opens a connection in it.
        self.entry: _Entry[ConnT] | None = None


class ConnectionPool(Generic[ConnT]):
    """Hand out at most `!max_size` connections, keeping up to `!max_idle` of them open.

    Every connection holds a slot from the moment the pool decides to open it until it is
    closed, so a herd of clients arriving together while connections are being opened can
    never push the number of server connections over `!max_size`. A client that finds no
    idle connection and no free slot waits in a queue; a connection given back, or a slot
    freed by a connection discarded, goes straight to the client at the head of the queue.

    Connections are checked on the way out without a round trip (their local state), and
    pinged only when they have been idle for `!ping_after` seconds or a sibling was found
    dead. They are retired, never while lent, after `!max_lifetime` seconds (shortened by a
    random jitter) or `!max_idle_time` seconds idle, the latter also in the background.
    """

    def __init__(
        self,
        connect: Callable[[], ConnT] | None = None,
        *,
        name: str = "default",
        max_size: int = 4,
        max_idle: int | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        ping_after: float | None = DEFAULT_PING_AFTER,
        max_lifetime: float | None = DEFAULT_MAX_LIFETIME,
        max_idle_time: float | None = DEFAULT_MAX_IDLE_TIME,
        reset_query: str | None = None,
        leak_timeout: float | None = None,
        transaction_status: Callable[[ConnT], int] = transaction_status,
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
        self.ping_after = ping_after
        self.max_lifetime = max_lifetime
        self.max_idle_time = max_idle_time
        self.reset_query = reset_query
        self.leak_timeout = leak_timeout
        self.runtime = runtime or detect()
        self._connect = connect
        self._status = transaction_status
        self._timeout_error = errors.bind(errors.PoolTimeout, error_base)
        self._closed_error = errors.bind(errors.PoolClosed, error_base)
        self._pid = os.getpid()

        self._lock = self.runtime.lock()
        self._idle: deque[_Entry[ConnT]] = deque()
        self._waiting: deque[_Waiter[ConnT]] = deque()
        # Every connection open, idle or lent, by id(): retired, found and forgotten here.
        self._entries: dict[int, _Entry[ConnT]] = {}
        # Slots taken: connections open, in use or idle, and connections being opened.
        self._size = 0
        self._closed = False
        self._watching = False
        # Whether idle connections are swept in the background, and how to stop it.
        self._sweeping = False
        self._stop_sweeping: Callable[[], None] | None = None

        self._checkouts = 0
        self._waits = 0
        self._timeouts = 0
        self._opened = 0
        self._closed_count = 0
        self._lost = 0
        self._retired = 0
        self._pings = 0
        self._leaks = 0
        self._wait_time = 0.0
        self._max_wait = 0.0

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
    def connection(self, timeout: float | _Unset | None = UNSET) -> Iterator[ConnT]:
        """Lend a connection for the duration of a ``with`` block."""
        conn = self.getconn(timeout)
        try:
            yield conn
        finally:
            self.putconn(conn)

    def getconn(
        self,
        timeout: float | _Unset | None = UNSET,
        connect: Callable[[], ConnT] | None = None,
    ) -> ConnT:
        """Return a connection, opening one if there is a free slot, else waiting for one.

        `!connect` replaces the pool's own connection factory, if this call has to open a
        connection. Raise `PoolTimeout` after `!timeout` seconds (`!None`: wait forever;
        by default the pool's `!timeout`).
        """
        if timeout is UNSET:
            timeout = self.timeout
        now = monotonic()
        with self._lock:
            if self._closed:
                raise self._closed_error(f"the pool {self.name!r} is closed")
            stale = self._take_stale(now)
            entry: _Entry[ConnT] | None
            if self._idle:
                entry = self._idle.pop()
                self._checkouts += 1
            elif self._size < self.max_size:
                # Critical section: the slot is taken before connecting, which yields to
                # other clients; they must see it taken.
                self._size += 1
                self._checkouts += 1
                entry = None
            else:
                waiter: _Waiter[ConnT] = _Waiter(self.runtime.event())
                self._waiting.append(waiter)
                entry = self._wait(waiter, timeout, now)
                now = monotonic()
        # Outside the lock from here on: opening, checking and closing connections yield.
        for old in stale:
            self._close(old, retired=True)
        if entry is not None:
            if self._usable(entry, now):
                return self._lend(entry, now)
            # Its slot stays taken: a new connection is opened in it.
            expired = self._expired(entry, now)
            self._close(entry, lost=not expired, retired=expired)
        entry = self._open(connect or self._connect)
        return self._lend(entry, monotonic())

    def _usable(self, entry: _Entry[ConnT], now: float) -> bool:
        """Check a connection about to be lent: locally, and with a round trip if needed."""
        if self._status(entry.conn) != TransactionStatus.IDLE:
            self._suspect_idle()
            return False
        if self._expired(entry, now):
            return False
        if not entry.suspect and (
            self.ping_after is None or now - entry.idle_since < self.ping_after
        ):
            return True
        self._pings += 1
        try:
            ping(entry.conn)
        except Exception as ex:
            logger.warning("pool %r: discarding a connection that failed a ping: %s", self.name, ex)
            self._suspect_idle()
            return False
        entry.suspect = False
        return True

    def _expired(self, entry: _Entry[ConnT], now: float) -> bool:
        return now >= entry.expires_at

    def _lend(self, entry: _Entry[ConnT], now: float) -> ConnT:
        entry.lent_at = now
        if self.leak_timeout is not None:
            entry.stack = _caller_stack()
            entry.reported = False
            if not self._watching:
                self._watch_leaks()
        return entry.conn

    def _wait(
        self, waiter: _Waiter[ConnT], timeout: float | None, start: float
    ) -> _Entry[ConnT] | None:
        """Wait, with the lock held on entry and exit, until `!waiter` is served."""
        self._waits += 1
        self._lock.release()
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
        self._max_wait = max(self._max_wait, elapsed)
        if waiter.served:
            self._checkouts += 1
            return waiter.entry
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
        elif waiter.entry is not None:
            # Never lent: it goes back as it came, without a new idle time.
            if self._waiting:
                self._serve(waiter.entry)
            else:
                self._idle.append(waiter.entry)
        else:
            self._free_slot()

    def _open(self, connect: Callable[[], ConnT] | None) -> _Entry[ConnT]:
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
        lifetime = self.max_lifetime
        if lifetime is None:
            expires_at = float("inf")
        else:
            expires_at = monotonic() + lifetime * (1 - LIFETIME_JITTER * random.random())
        entry = _Entry(conn, expires_at)
        with self._lock:
            self._entries[id(conn)] = entry
            self._opened += 1
        logger.debug(
            "pool %r: opened a connection (%d of %d)", self.name, self._size, self.max_size
        )
        return entry

    def putconn(self, conn: ConnT) -> None:
        """Give back a connection taken with `getconn`.

        A connection left in a transaction is rolled back; one that is closed, broken, or
        was cut in the middle of a query is closed and its slot handed on; one past its
        lifetime is closed and replaced on demand.
        """
        entry = self._entries.get(id(conn))
        if entry is None or entry.conn is not conn:
            if self._pid != os.getpid():
                # Lent before a fork and already detached by abandon_after_fork().
                return
            raise ValueError(f"the connection {conn!r} doesn't belong to the pool {self.name!r}")
        now = monotonic()
        if entry.reported:
            logger.warning(
                "pool %r: a connection reported as leaked came back after %.1f s",
                self.name,
                now - entry.lent_at,
            )
        entry.stack = None
        if not self._reset(entry.conn):
            if entry.conn.closed:
                # Broken, not just cut off: the server may have restarted.
                self._suspect_idle()
            self._close(entry, lost=True)
            self._release_slot()
            return
        if self._expired(entry, now):
            self._close(entry, retired=True)
            self._release_slot()
            return
        entry.idle_since = now
        with self._lock:
            stale = self._take_stale(now)
            keep = self._give(entry)
        for old in stale:
            self._close(old, retired=True)
        if not keep:
            self._close(entry)
        elif not self._sweeping and self.max_idle_time is not None:
            self._start_sweeping(self.max_idle_time)

    def _reset(self, conn: ConnT) -> bool:
        """Bring `!conn` back to an idle session; return False if it can't be reused."""
        status = self._status(conn)
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            try:
                conn.rollback()
            except Exception as ex:
                logger.warning(
                    "pool %r: rollback of a returned connection failed: %s", self.name, ex
                )
                return False
            status = self._status(conn)
        elif status == TransactionStatus.ACTIVE:
            # A query is still running (the client was cut off by a timeout): only closing
            # the connection stops it from reaching the next user.
            logger.warning(
                "pool %r: connection returned in the middle of a query; closing it", self.name
            )
        if status != TransactionStatus.IDLE:
            return False
        if self.reset_query is not None:
            try:
                run_reset_query(conn, self.reset_query)
            except Exception as ex:
                logger.warning("pool %r: reset query failed: %s", self.name, ex)
                return False
        return True

    def _give(self, entry: _Entry[ConnT]) -> bool:
        """Hand `!entry` to the next waiter, or keep it idle (lock held).

        Return False if it should be closed instead (outside the lock: closing may yield);
        its slot is then already freed.
        """
        if self._waiting:
            self._serve(entry)
            return True
        if not self._closed and len(self._idle) < self.max_idle:
            self._idle.append(entry)
            return True
        self._size -= 1
        return False

    def _release_slot(self) -> None:
        with self._lock:
            self._free_slot()

    def _free_slot(self) -> None:
        """Hand a slot to the next waiter, which opens a connection in it (lock held)."""
        if self._waiting and not self._closed:
            self._serve(None)
        else:
            self._size -= 1

    def _serve(self, entry: _Entry[ConnT] | None) -> None:
        waiter = self._waiting.popleft()
        waiter.entry = entry
        waiter.served = True
        waiter.event.set()

    def _take_stale(self, now: float) -> Sequence[_Entry[ConnT]]:
        """Remove the connections idle for too long, freeing their slots (lock held).

        The idle queue is ordered by return time, so only its oldest end needs looking at.
        """
        limit = self.max_idle_time
        if limit is None or not self._idle or now - self._idle[0].idle_since < limit:
            # Nearly every call: nothing to allocate.
            return _NOTHING_STALE
        stale: list[_Entry[ConnT]] = []
        while self._idle and now - self._idle[0].idle_since >= limit:
            stale.append(self._idle.popleft())
            self._free_slot()
        return stale

    def _start_sweeping(self, max_idle_time: float) -> None:
        """Close connections idle for too long even when no checkout or return comes."""
        with self._lock:
            if self._sweeping or self._closed:
                return
            self._sweeping = True
        ref = weakref.ref(self)

        def sweep() -> bool:
            pool = ref()
            if pool is None or pool._closed or pool._pid != os.getpid():
                return False
            pool._sweep()
            return True

        # Idle connections are closed between MAX_IDLE_TIME and a quarter more (or a
        # minute more, for long ones).
        interval = min(max(max_idle_time / 4, 0.05), 60.0)
        self._stop_sweeping = self.runtime.repeat(interval, sweep, f"geventpool-sweep-{self.name}")

    def _sweep(self) -> None:
        with self._lock:
            stale = self._take_stale(monotonic())
        for entry in stale:
            self._close(entry, retired=True)
        if stale:
            logger.debug("pool %r: closed %d idle connections", self.name, len(stale))

    def _suspect_idle(self) -> None:
        """A connection was found dead: the server may have restarted, killing its siblings."""
        with self._lock:
            for entry in self._idle:
                entry.suspect = True

    def _close(self, entry: _Entry[ConnT], lost: bool = False, retired: bool = False) -> None:
        """Close `!entry`'s connection (its slot is the caller's business)."""
        try:
            entry.conn.close()
        except Exception as ex:
            logger.warning("pool %r: error closing a connection: %s", self.name, ex)
        with self._lock:
            self._entries.pop(id(entry.conn), None)
            self._closed_count += 1
            self._lost += lost
            self._retired += retired

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
        for entry in idle:
            self._close(entry)
        if self._stop_sweeping is not None:
            self._stop_sweeping()
        if idle or waiting:
            logger.info("pool %r closed: %d idle connections closed", self.name, len(idle))

    def abandon_after_fork(self) -> None:
        """In a forked child: let go of the parent's connections without touching them.

        The child shares the parent's sockets. Closing a connection normally would end the
        parent's session too, and so would letting the garbage collector close it, so each
        socket is first swapped for /dev/null in this process only.
        """
        self._closed = True
        self._lock = self.runtime.lock()
        entries = list(self._entries.values())
        self._entries.clear()
        self._idle.clear()
        self._waiting.clear()
        self._size = 0
        with open(os.devnull, "wb") as devnull:
            for entry in entries:
                try:
                    os.dup2(devnull.fileno(), entry.conn.fileno())
                    entry.conn.close()
                except Exception as ex:
                    logger.debug(
                        "pool %r: after fork, couldn't detach a connection: %s", self.name, ex
                    )

    def _watch_leaks(self) -> None:
        """Start the watcher that reports connections held longer than `!leak_timeout`."""
        self._watching = True
        ref = weakref.ref(self)
        assert self.leak_timeout is not None
        interval = min(max(self.leak_timeout / 4, 0.05), 5.0)

        def watch() -> None:
            while True:
                # time.sleep is gevent's or eventlet's when patched: this is a greenlet there.
                time.sleep(interval)
                pool = ref()
                if pool is None or pool.closed or pool._pid != os.getpid():
                    return
                pool.report_leaks()
                del pool

        threading.Thread(target=watch, name=f"geventpool-leaks-{self.name}", daemon=True).start()

    def report_leaks(self) -> int:
        """Log, once each, the connections held longer than `!leak_timeout`; count them."""
        if self.leak_timeout is None:
            return 0
        now = monotonic()
        leaked: list[tuple[float, list[_FrameTuple]]] = []
        with self._lock:
            for entry in self._entries.values():
                # Read once: putconn() may clear it meanwhile, outside the lock.
                stack = entry.stack
                if (
                    stack is not None
                    and not entry.reported
                    and now - entry.lent_at >= self.leak_timeout
                ):
                    entry.reported = True
                    leaked.append((now - entry.lent_at, stack))
        for held, stack in leaked:
            logger.warning(
                "pool %r: a connection has been held for %.1f s (LEAK_TIMEOUT is %s s);"
                " it was taken at:\n%s",
                self.name,
                held,
                self.leak_timeout,
                "".join(traceback.StackSummary.from_list(stack).format()).rstrip(),
            )
        # Counted once logged: whoever sees the count can find the report.
        with self._lock:
            self._leaks += len(leaked)
        return len(leaked)

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
                "waits": self._waits,
                "timeouts": self._timeouts,
                "opened": self._opened,
                "closed": self._closed_count,
                "lost": self._lost,
                "retired": self._retired,
                "pings": self._pings,
                "leaks": self._leaks,
                "wait_seconds": self._wait_time,
                "max_wait_seconds": self._max_wait,
            }
