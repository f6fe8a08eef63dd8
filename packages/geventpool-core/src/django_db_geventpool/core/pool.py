"""A connection pool whose size is a hard cap on server sessions, for greenlets and threads.

Anything can be cut: a `gevent.Timeout`, `greenlet.kill()` or a worker's shutdown raises a
`BaseException` at any point where the pool waits for the server. Every path here therefore
gives back what it holds whatever arrives, and a connection that may still be busy on the
server is cancelled there and waited for before its slot counts as free.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import random
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from time import monotonic
from typing import Any, Generic

from django_db_geventpool.core import afterfork, errors
from django_db_geventpool.core.connection import (
    TransactionStatus,
    cancel_in_thread,
    close_and_wait,
    ping,
    run_reset_query,
    transaction_status,
)
from django_db_geventpool.core.pooled import (
    ConnT,
    FrameTuple,
    Holder,
    Listener,
    PooledConnection,
    caller_stack,
    format_stack,
)
from django_db_geventpool.core.runtime import Event, Runtime, detect
from django_db_geventpool.core.statistics import BUCKETS, Histogram, HistogramSnapshot

logger = logging.getLogger("django_db_geventpool")


#: Default seconds `ConnectionPool.getconn` waits for a connection, opening one included.
DEFAULT_TIMEOUT = 30.0
#: Default seconds after which an idle connection is pinged before it is handed out.
DEFAULT_PING_AFTER = 10.0
#: Default seconds a connection lives, give or take `LIFETIME_JITTER`.
DEFAULT_MAX_LIFETIME = 3600.0
#: Default seconds a connection may stay idle before it is closed.
DEFAULT_MAX_IDLE_TIME = 600.0
#: Default number of connections the pool may hold open.
DEFAULT_MAX_SIZE = 4
#: Lifetimes are shortened by up to this fraction, so connections opened together (at start,
#: or after a restart) are not all retired at the same moment.
LIFETIME_JITTER = 0.1
#: Seconds a discarded connection's slot stays taken, at most, while its query is cancelled
#: and its server session ends. Past that the server is not answering, and the slot is freed.
DISCARD_TIMEOUT = 2.0
#: Seconds between two looks for connections whose borrower ended without giving them back.
RECLAIM_INTERVAL = 0.5


_NOTHING: tuple[Any, ...] = ()


class _Unset(enum.Enum):
    """The type of `UNSET`: no value given, as opposed to None."""

    UNSET = "unset"


#: A `getconn` timeout left to the pool's own.
UNSET = _Unset.UNSET


class _Waiter(Generic[ConnT]):
    """A client queued for a connection, served in arrival order."""

    __slots__ = ("entry", "event", "served")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.served = False
        # None when served with a free slot: the waiter opens a connection in it.
        self.entry: PooledConnection[ConnT] | None = None

    def rearm(self) -> None:
        """Make a waiter that was served and woken ready to queue again."""
        self.event.clear()
        self.served = False
        self.entry = None


class _Opening(Generic[ConnT]):
    """A connection being opened in the background for a client (lock held to change)."""

    __slots__ = ("abandoned", "done", "entry", "error", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
        self.done = False
        # The client gave up (timed out, or was cut): the connection goes to the pool.
        self.abandoned = False
        self.entry: PooledConnection[ConnT] | None = None
        self.error: BaseException | None = None


class _ConnectTimedOut(Exception):
    """Raised by the runtime's deadline into a connect that took too long."""


class ConnectionPool(Generic[ConnT]):
    """Hand out at most `!max_size` connections, keeping up to `!max_idle_conns` of them idle.

    Every connection holds a slot from the moment the pool decides to open it until its
    server session has ended, so neither a herd of clients arriving while connections are
    being opened nor clients cut in the middle of a query can push the number of server
    sessions over `!max_size`. A client that finds no idle connection and no free slot
    waits in a queue; a connection given back, or a slot freed, goes straight to the client
    at the head of the queue. `!timeout` bounds the whole checkout, opening a connection
    included; `!connect_timeout` also bounds each connect on its own. `!cancel(conn,
    timeout)` asks the server to stop a discarded connection's query: the driver's backend
    supplies one that waits at most `!timeout` seconds without stopping the process.

    Connections are checked on the way out without a round trip (their local state), and
    pinged only when they have been idle for `!ping_after` seconds or a sibling was found
    dead. They are retired, never while lent, after `!max_lifetime` seconds (shortened by a
    random jitter) or `!max_idle_time` seconds idle. A connection whose borrower (greenlet
    or thread) ended without giving it back is taken back within about a second.
    """

    def __init__(
        self,
        connect: Callable[[], ConnT] | None = None,
        *,
        name: str = "default",
        max_size: int = DEFAULT_MAX_SIZE,
        max_idle_conns: int | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = None,
        ping_after: float | None = DEFAULT_PING_AFTER,
        max_lifetime: float | None = DEFAULT_MAX_LIFETIME,
        max_idle_time: float | None = DEFAULT_MAX_IDLE_TIME,
        reset_query: str | None = None,
        leak_timeout: float | None = None,
        server: str = "",
        transaction_status: Callable[[ConnT], int] = transaction_status,
        cancel: Callable[[ConnT, float], bool] = cancel_in_thread,
        error_base: type[Exception] = Exception,
        runtime: Runtime | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_idle_conns is None:
            max_idle_conns = max_size
        if not 0 <= max_idle_conns <= max_size:
            raise ValueError(
                f"max_idle_conns must be between 0 and max_size ({max_size}), got {max_idle_conns}"
            )
        self.name = name
        self.max_size = max_size
        self.max_idle_conns = max_idle_conns
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ping_after = ping_after
        self.max_lifetime = max_lifetime
        self.max_idle_time = max_idle_time
        self.reset_query = reset_query
        self.leak_timeout = leak_timeout
        #: Where connections go, for error messages ("host:port"); never a password.
        self.server = server
        self.runtime = runtime or detect()
        self._connect = connect
        self._status = transaction_status
        self._cancel = cancel
        self._current = self.runtime.current
        self._alive = self.runtime.alive
        self._timeout_error = errors.bind(errors.PoolTimeout, error_base)
        self._closed_error = errors.bind(errors.PoolClosed, error_base)
        self._pid = os.getpid()

        self._lock = self.runtime.lock()
        self._idle: deque[PooledConnection[ConnT]] = deque()
        self._waiting: deque[_Waiter[ConnT]] = deque()
        self._spare_waiters: list[_Waiter[ConnT]] = []
        # Every connection open, idle or lent, by id(): retired, found and forgotten here.
        self._entries: dict[int, PooledConnection[ConnT]] = {}
        # Slots taken: connections being opened, open (idle or lent) and being closed.
        self._size = 0
        self._opening = 0
        self._closing = 0
        self._closed = False
        # The background task that sweeps, reports leaks and reclaims, and how to stop it.
        self._caretaking = False
        self._stop_caretaking: Callable[[], None] | None = None
        self._reset_query_worked = False

        self._checkouts = 0
        self._waits = 0
        self._timeouts = 0
        self._opened = 0
        self._closed_count = 0
        self._lost = 0
        self._retired = 0
        self._reclaimed = 0
        self._pings = 0
        self._leaks = 0
        self._waited_seconds = 0.0
        self._max_wait = 0.0
        # Durations, as statistics.DISTRIBUTIONS declares them; a checkout that found an
        # idle connection at once is not recorded in `_wait_times`, only counted (0 s).
        self._wait_times = Histogram()
        self._use_times = Histogram()
        self._create_times = Histogram()
        self._listeners: list[Listener] = []

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
        """Return a connection; `checkout` says more. Give it back with `putconn`."""
        return self.checkout(timeout, connect).conn

    # Lending

    def checkout(
        self,
        timeout: float | _Unset | None = UNSET,
        connect: Callable[[], ConnT] | None = None,
        holder: Holder | None = None,
    ) -> PooledConnection[ConnT]:
        """Lend a connection: an idle one, else a new one in a free slot, else the next one
        given back. Give it back with `checkin`.

        `!connect` replaces the pool's own connection factory, if this call has to open a
        connection. `!holder` is what the connection is lent to, if more than the calling
        task (see `Holder`). Raise `PoolTimeout` after `!timeout` seconds (`!None`: wait
        forever; by default the pool's `!timeout`).
        """
        if timeout is UNSET:
            timeout = self.timeout
        start = now = monotonic()
        deadline = None if timeout is None else start + timeout
        # An idle connection at the first try: no wait worth a clock read.
        immediate = True
        # Queued for a connection, on this try or an earlier one.
        waited = False
        while True:
            with self._lock:
                if self._closed:
                    raise self._closed_error(f"the pool {self.name!r} is closed")
                stale = self._take_stale(now)
                entry: PooledConnection[ConnT] | None
                if self._idle:
                    entry = self._idle.pop()
                elif self._size < self.max_size:
                    # Critical section: the slot is taken before connecting, which yields
                    # to other clients; they must see it taken.
                    self._size += 1
                    entry = None
                    immediate = False
                else:
                    if self._spare_waiters:
                        waiter = self._spare_waiters.pop()
                        waiter.rearm()
                    else:
                        waiter = _Waiter(self.runtime.event())
                    self._waiting.append(waiter)
                    # An idle connection given back, or a free slot (None).
                    entry = self._wait(waiter, start, deadline)
                    immediate = False
                    waited = True
                # Counted here, under the lock held anyway, and taken back with its wait
                # on every path that ends up lending nothing: a try that finds a dead
                # connection, a failed connect, a cut.
                self._checkouts += 1
                self._waits += waited
            # Outside the lock from here on: opening, checking and closing connections yield.
            for old in stale:
                self._discard(old, retired=True)
            if entry is None:
                try:
                    entry = self._open(connect or self._connect, start, deadline)
                except BaseException:
                    with self._lock:
                        self._checkouts -= 1
                        self._waits -= waited
                    raise
            elif (
                now >= entry.check_at
                or entry.suspect
                or self._status(entry.conn) != TransactionStatus.IDLE
            ) and not self._usable(entry, now, waited):
                # Discarded: its slot is freed once it is closed. Another try.
                now = monotonic()
                immediate = False
                continue
            if not immediate:
                now = monotonic()
                self._record(self._wait_times, "wait_time", now - start)
            elif self._listeners:
                self._notify("wait_time", 0.0)
            entry.lent = True
            entry.lent_at = now
            entry.borrower = self._current()
            entry.holder = None if holder is None else weakref.ref(holder)
            if self.leak_timeout is not None:
                entry.stack = caller_stack()
                entry.reported = False
            if not self._caretaking:
                self._start_caretaking()
            return entry

    def _usable(self, entry: PooledConnection[ConnT], now: float, waited: bool) -> bool:
        """Check a connection about to be lent: locally, and with a round trip if needed.

        A connection found unusable is discarded, and its slot freed once it is closed; the
        checkout, and its wait if it `!waited`, are taken back.
        """
        if self._status(entry.conn) != TransactionStatus.IDLE:
            self._suspect_all()
            self._discard(entry, lost=True, uncount=True, unwait=waited)
            return False
        if now >= entry.expires_at:
            self._discard(entry, retired=True, uncount=True, unwait=waited)
            return False
        if not entry.suspect and (
            self.ping_after is None or now - entry.idle_since < self.ping_after
        ):
            return True
        with self._lock:
            self._pings += 1
        try:
            ping(entry.conn)
        except Exception as ex:
            logger.warning("pool %r: discarding a connection that failed a ping: %s", self.name, ex)
            self._suspect_all()
            self._discard(entry, lost=True, uncount=True, unwait=waited)
            return False
        except BaseException:
            # Cut in the middle of the ping: the server may still be answering it.
            self._discard(entry, lost=True, cancel=True, uncount=True, unwait=waited)
            raise
        entry.suspect = False
        return True

    def _wait(
        self, waiter: _Waiter[ConnT], start: float, deadline: float | None
    ) -> PooledConnection[ConnT] | None:
        """Wait, with the lock held on entry and exit, until `!waiter` is served."""
        queued_at = monotonic()
        self._lock.release()
        try:
            woken = waiter.event.wait(None if deadline is None else max(deadline - queued_at, 0.0))
        except BaseException:
            # Killed or timed out from outside (greenlet.kill, gevent.Timeout): whatever
            # the waiter was handed in the meantime goes back, so nothing is lost.
            self._lock.acquire()
            self._count_wait(queued_at, start)
            self._abandon(waiter)
            raise
        self._lock.acquire()
        elapsed = self._count_wait(queued_at, start)
        if waiter.served:
            if woken and len(self._spare_waiters) < self.max_size:
                # Woken by the one set() it was due: nothing can reach it any more, so the
                # next client to wait can have it (and spare making an event).
                self._spare_waiters.append(waiter)
            return waiter.entry
        if self._closed:
            raise self._closed_error(f"the pool {self.name!r} was closed while waiting")
        self._waiting.remove(waiter)
        self._timeouts += 1
        raise self._timeout_error(
            f"couldn't get a connection for {self.name!r} after {elapsed:.2f} s:"
            f" {self._describe_slots()}"
        )

    def _count_wait(self, queued_at: float, start: float) -> float:
        """Add a wait that began at `!queued_at` (lock held); return how long the checkout
        begun at `!start` has taken so far.

        A checkout that finds a dead connection may queue again: each wait is added to
        the total once, and the longest counts from the checkout's start.
        """
        now = monotonic()
        self._waited_seconds += now - queued_at
        elapsed = now - start
        self._max_wait = max(self._max_wait, elapsed)
        return elapsed

    def _describe_slots(self) -> str:
        """Why there is no connection to lend (lock held)."""
        busy = f"all {self.max_size} in use"
        if self._opening:
            busy += f" ({self._opening} being opened)"
        if self._closing:
            busy += f" ({self._closing} being closed)"
        busy += f", {len(self._waiting)} more waiting"
        if self._opening == self.max_size:
            return f"{busy}; {self._server()} is slow to accept connections"
        return f"{busy}; raise MAX_CONNS or find the code that holds connections"

    def _server(self) -> str:
        return f"the server at {self.server}" if self.server else "the server"

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

    # Opening

    def _open(
        self, connect: Callable[[], ConnT] | None, start: float, deadline: float | None
    ) -> PooledConnection[ConnT]:
        """Open a connection in a slot already taken, and wait for it until `!deadline`.

        It is opened in the background: a client cut while it waits can't take the
        half-open connection down with it (its server session would outlive the slot), and
        a connect that outlives the client's patience ends in the pool, where the next
        client gets it.
        """
        if connect is None:
            with self._lock:
                self._free_slot()
            raise TypeError(
                f"the pool {self.name!r} has no connect function: pass one to getconn()"
            )
        opening: _Opening[ConnT] = _Opening(self.runtime.event())
        with self._lock:
            self._opening += 1
        try:
            self.runtime.spawn(
                functools.partial(self._connect_for, opening, connect),
                f"geventpool-connect-{self.name}",
            )
        except BaseException:
            with self._lock:
                self._opening -= 1
                self._free_slot()
            raise
        try:
            opening.event.wait(None if deadline is None else max(deadline - monotonic(), 0.0))
        except BaseException:
            self._abandon_opening(opening)
            raise
        with self._lock:
            if not opening.done:
                opening.abandoned = True
                self._timeouts += 1
        if opening.error is not None:
            raise opening.error
        if opening.entry is None:
            raise self._timeout_error(
                f"couldn't get a connection for {self.name!r} after"
                f" {monotonic() - start:.2f} s: {self._server()} didn't answer a connect"
                " in time; check that it is up and reachable"
            )
        return opening.entry

    def _abandon_opening(self, opening: _Opening[ConnT]) -> None:
        with self._lock:
            opening.abandoned = True
            entry = opening.entry if opening.done else None
            keep = entry is None or self._give(entry)
        if not keep:
            assert entry is not None
            self._discard(entry)

    def _connect_for(self, opening: _Opening[ConnT], connect: Callable[[], ConnT]) -> None:
        """Open a connection for `!opening`, in the background; hand it on when done."""
        bound = self.connect_bound
        expired = _ConnectTimedOut()
        started = monotonic()
        try:
            if bound is None:
                conn = connect()
            else:
                with self.runtime.deadline(bound, expired):
                    conn = connect()
        except BaseException as ex:
            error: BaseException = ex
            if ex is expired:
                error = self._timeout_error(
                    f"couldn't get a connection for {self.name!r}: {self._server()} didn't"
                    f" answer a connect within {bound:.2f} s; check that it is up and reachable"
                )
            with self._lock:
                self._opening -= 1
                self._free_slot()
                opening.done = True
                opening.error = error
                abandoned = opening.abandoned
            if abandoned:
                logger.warning(
                    "pool %r: opening a connection failed after its client gave up: %s",
                    self.name,
                    # psycopg2's messages end with a newline.
                    str(error).rstrip(),
                )
            else:
                opening.event.set()
            if not isinstance(ex, Exception):
                raise
            return
        lifetime = self.max_lifetime
        if lifetime is None:
            expires_at = float("inf")
        else:
            expires_at = monotonic() + lifetime * (1 - LIFETIME_JITTER * random.random())
        entry = PooledConnection(conn, expires_at)
        entry.socket = afterfork.identify(conn)
        created = monotonic() - started
        with self._lock:
            self._create_times.record(created)
            self._opening -= 1
            self._entries[id(conn)] = entry
            self._opened += 1
            opening.done = True
            opening.entry = entry
            abandoned = opening.abandoned
            keep = not abandoned or self._give(entry)
        logger.debug(
            "pool %r: opened a connection (%d of %d)", self.name, self._size, self.max_size
        )
        if self._listeners:
            self._notify("create_time", created)
        if not keep:
            self._discard(entry)
        elif not abandoned:
            opening.event.set()

    @property
    def connect_bound(self) -> float | None:
        """Seconds a connect may take: `!connect_timeout`, and never more than `!timeout`."""
        bounds = [t for t in (self.connect_timeout, self.timeout) if t is not None]
        return min(bounds) if bounds else None

    # Returning

    def putconn(self, conn: ConnT) -> None:
        """Give back a connection taken with `getconn`; `checkin` says more."""
        entry = self._entries.get(id(conn))
        if entry is None or entry.conn is not conn:
            if self._pid != os.getpid():
                # Lent before a fork and already detached by abandon_after_fork().
                return
            raise ValueError(f"the connection {conn!r} doesn't belong to the pool {self.name!r}")
        self.checkin(entry)

    def checkin(self, entry: PooledConnection[ConnT]) -> None:
        """Give back a connection lent by `checkout`.

        A connection left in a transaction is rolled back; one that is closed, broken, or
        was cut in the middle of a query is cancelled, closed and its slot handed on; one
        past its lifetime is closed and replaced on demand.
        """
        if not entry.lent:
            if self._pid != os.getpid():
                return
            raise ValueError(
                f"the connection {entry.conn!r} is not lent by the pool {self.name!r}:"
                " was it given back twice?"
            )
        entry.lent = False
        entry.borrower = entry.holder = entry.stack = None
        now = monotonic()
        if entry.reported:
            logger.warning(
                "pool %r: a connection reported as leaked came back after %.1f s",
                self.name,
                now - entry.lent_at,
            )
        self._return(entry, now)

    def _return(self, entry: PooledConnection[ConnT], now: float) -> None:
        """Reset a connection given back, or taken back, at `!now`; keep it or discard it."""
        used = now - entry.lent_at
        # Nearly always idle, with no reset query: nothing to do on the way back.
        if self.reset_query is not None or self._status(entry.conn) != TransactionStatus.IDLE:
            try:
                reusable = self._reset(entry)
            except BaseException:
                # Cut in the middle of a rollback or the reset query, or the reset query
                # is broken: the session's state is unknown.
                self._record(self._use_times, "use_time", used)
                self._discard(entry, lost=True, cancel=True)
                raise
            now = monotonic()
        else:
            reusable = True
        if not reusable or now >= entry.expires_at:
            self._record(self._use_times, "use_time", used)
            if not reusable and entry.conn.closed:
                # Broken, not just cut off: the server may have restarted.
                self._suspect_all()
            self._discard(entry, lost=not reusable, retired=reusable)
            return
        entry.idle_since = now
        if self.ping_after is not None:
            entry.check_at = min(now + self.ping_after, entry.expires_at)
        else:
            entry.check_at = entry.expires_at
        use_times = self._use_times
        # Stale idle connections are left to the next checkout and to the caretaker.
        with self._lock:
            # Histogram.record(), inlined: this is every return's path.
            use_times.counts[bisect_left(BUCKETS, used)] += 1
            use_times.sum += used
            keep = self._give(entry)
        if self._listeners:
            self._notify("use_time", used)
        if not keep:
            self._discard(entry)

    def _reset(self, entry: PooledConnection[ConnT]) -> bool:
        """Bring a connection back to an idle session; return False if it can't be reused."""
        conn = entry.conn
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
            # A query is still running (the client was cut off by a timeout): it is
            # cancelled on the server, and the connection closed.
            logger.warning(
                "pool %r: connection returned in the middle of a query; cancelling it",
                self.name,
            )
        if status != TransactionStatus.IDLE:
            return False
        if self.reset_query is not None:
            return self._run_reset_query(conn)
        return True

    def _run_reset_query(self, conn: ConnT) -> bool:
        query = self.reset_query
        assert query is not None
        try:
            run_reset_query(conn, query)
        except Exception as ex:
            if conn.closed or self._status(conn) == TransactionStatus.UNKNOWN:
                logger.warning("pool %r: connection broken in the reset query: %s", self.name, ex)
                return False
            if self._reset_query_worked:
                logger.warning("pool %r: reset query failed: %s", self.name, ex)
                return False
            raise errors.ResetQueryError(
                f"the reset query of the pool {self.name!r}, {query!r}, failed: {ex}; fix"
                " RESET_QUERY (e.g. 'DISCARD ALL') or set it to None"
            ) from ex
        if self._status(conn) != TransactionStatus.IDLE:
            raise errors.ResetQueryError(
                f"the reset query of the pool {self.name!r}, {query!r}, left the session"
                " in a transaction: RESET_QUERY must leave it idle, as 'DISCARD ALL' does"
            )
        self._reset_query_worked = True
        return True

    def _give(self, entry: PooledConnection[ConnT]) -> bool:
        """Hand `!entry` to the next waiter, or keep it idle (lock held).

        Return False if it should be discarded instead; its slot stays taken until then.
        """
        if self._waiting:
            self._serve(entry)
            return True
        if not self._closed and len(self._idle) < self.max_idle_conns:
            self._idle.append(entry)
            return True
        return False

    def _free_slot(self) -> None:
        """Hand a slot to the next waiter, which opens a connection in it (lock held)."""
        if self._waiting and not self._closed:
            self._serve(None)
        else:
            self._size -= 1

    def _serve(self, entry: PooledConnection[ConnT] | None) -> None:
        waiter = self._waiting.popleft()
        waiter.entry = entry
        waiter.served = True
        waiter.event.set()

    def _take_stale(self, now: float) -> Sequence[PooledConnection[ConnT]]:
        """Remove the connections idle for too long (lock held); their slots stay taken.

        The idle queue is ordered by return time, so only its oldest end needs looking at.
        """
        limit = self.max_idle_time
        if limit is None or not self._idle or now - self._idle[0].idle_since < limit:
            # Nearly every call: nothing to allocate.
            return _NOTHING
        stale: list[PooledConnection[ConnT]] = []
        while self._idle and now - self._idle[0].idle_since >= limit:
            stale.append(self._idle.popleft())
        return stale

    def _suspect_all(self) -> None:
        """A connection was found dead: the server may have restarted, killing its siblings.

        Lent ones too: their borrower may give them back without another round trip, and
        under load they go straight to the next client, never idle.
        """
        with self._lock:
            for entry in self._entries.values():
                entry.suspect = True

    # Closing

    def _discard(
        self,
        entry: PooledConnection[ConnT],
        *,
        lost: bool = False,
        retired: bool = False,
        cancel: bool = False,
        uncount: bool = False,
        unwait: bool = False,
    ) -> None:
        """Close a connection whose slot is taken, in the background, then free the slot.

        `!cancel` asks the server to stop whatever it may still be running for it; a
        connection in the middle of a query is cancelled anyway. `!uncount` takes back a
        checkout that ended up not lending it, and `!unwait` that checkout's wait.
        """
        with self._lock:
            self._entries.pop(id(entry.conn), None)
            self._closing += 1
            self._checkouts -= uncount
            self._waits -= unwait
        close = functools.partial(self._close_in_slot, entry, lost, retired, cancel)
        try:
            self.runtime.spawn(close, f"geventpool-close-{self.name}")
        except Exception:
            # No background task to be had (the interpreter is shutting down): here, then.
            close()

    def _close_in_slot(
        self, entry: PooledConnection[ConnT], lost: bool, retired: bool, cancel: bool
    ) -> None:
        conn = entry.conn

        def cancel_and_close() -> None:
            # The driver's cancel waits at most this long and never stops the process: the
            # network may be frozen, and the cancel request is a new connection through it.
            try:
                self._cancel(conn, DISCARD_TIMEOUT)
            finally:
                conn.close()

        ended = False
        try:
            busy = cancel or self._status(conn) == TransactionStatus.ACTIVE
            ended = close_and_wait(conn, DISCARD_TIMEOUT, cancel_and_close if busy else None)
        except Exception as ex:
            logger.warning("pool %r: error closing a connection: %s", self.name, ex)
        finally:
            if not conn.closed:
                # Cut while closing, or the driver failed: never leave the socket open.
                try:
                    conn.close()
                except Exception as ex:
                    logger.warning("pool %r: error closing a connection: %s", self.name, ex)
            with self._lock:
                self._closing -= 1
                self._closed_count += 1
                self._lost += lost
                self._retired += retired
                self._free_slot()
        if not ended:
            logger.warning(
                "pool %r: the server didn't end a closed connection's session within %.1f s;"
                " its slot is reused all the same",
                self.name,
                DISCARD_TIMEOUT,
            )

    def close(self) -> None:
        """Close the idle connections and refuse new checkouts.

        Connections in use are closed when they are given back; waiting clients get
        `PoolClosed`.
        """
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            waiting = list(self._waiting)
            self._waiting.clear()
            for entry in idle:
                self._entries.pop(id(entry.conn), None)
            self._size -= len(idle)
            self._closed_count += len(idle)
        for waiter in waiting:
            # Woken but not served: the waiter raises PoolClosed.
            waiter.event.set()
        # Here and now, not in the background: this may be the interpreter's exit, and no
        # slot will be reused.
        for entry in idle:
            try:
                entry.conn.close()
            except Exception as ex:
                logger.warning("pool %r: error closing a connection: %s", self.name, ex)
        if self._stop_caretaking is not None:
            self._stop_caretaking()
        if idle or waiting:
            logger.info("pool %r closed: %d idle connections closed", self.name, len(idle))

    def abandon_after_fork(self) -> None:
        """In a forked child: let go of the parent's connections without touching them.

        The child shares the parent's sockets, and the driver may hold the lock of a
        connection that was in a query at the fork: no driver call is made (see
        `afterfork`). The pool is closed; the registry gives the child new, empty pools.
        """
        self._closed = True
        self._lock = self.runtime.lock()
        entries = list(self._entries.values())
        self._entries.clear()
        self._idle.clear()
        self._waiting.clear()
        self._size = 0
        for entry in entries:
            # The child's copies of the parent's tasks may still give these back: they are
            # no longer lent, so `checkin` lets them go without a rollback or a cancel,
            # which would reach the parent's server session.
            entry.lent = False
        afterfork.abandon((entry.conn, entry.socket) for entry in entries)

    # Caretaking in the background

    def _start_caretaking(self) -> None:
        """Start the background task that sweeps idle connections, reports leaks and takes
        back what ended borrowers held."""
        with self._lock:
            if self._caretaking or self._closed:
                return
            self._caretaking = True
        ref = weakref.ref(self)

        def tick() -> bool:
            pool = ref()
            if pool is None or pool._closed or pool._pid != os.getpid():
                return False
            try:
                pool.take_care()
            except Exception:
                logger.exception("pool %r: caretaking failed", pool.name)
            return True

        intervals = [RECLAIM_INTERVAL]
        if self.max_idle_time is not None:
            # Idle connections are closed between MAX_IDLE_TIME and a quarter more.
            intervals.append(self.max_idle_time / 4)
        if self.leak_timeout is not None:
            intervals.append(self.leak_timeout / 4)
        interval = max(min(intervals), 0.05)
        self._stop_caretaking = self.runtime.repeat(interval, tick, f"geventpool-{self.name}")

    def take_care(self) -> None:
        """Close connections idle too long, take back what ended borrowers held, report
        leaks: what the background task does every few tenths of a second."""
        now = monotonic()
        with self._lock:
            stale = self._take_stale(now)
            orphans = self._take_orphans()
        for entry in stale:
            self._discard(entry, retired=True)
        if stale:
            logger.debug("pool %r: closing %d idle connections", self.name, len(stale))
        for entry, holder in orphans:
            self._reclaim(entry, holder)
        if self.leak_timeout is not None:
            self.report_leaks()

    def _take_orphans(self) -> list[tuple[PooledConnection[ConnT], Holder | None]]:
        """The lent connections whose borrower ended, marked as no longer lent (lock held).

        A connection lent to a holder that other tasks may still use (a Django wrapper
        shared between threads) stays lent while the holder lives.
        """
        orphans: list[tuple[PooledConnection[ConnT], Holder | None]] = []
        for entry in self._entries.values():
            if not entry.lent:
                continue
            holder = entry.holder() if entry.holder is not None else None
            if entry.holder is not None and holder is None:
                # The holder was garbage-collected: nobody can give the connection back.
                pass
            elif self._alive(entry.borrower) or (
                holder is not None and holder.geventpool_is_shared()
            ):
                continue
            entry.lent = False
            orphans.append((entry, holder))
        return orphans

    def _reclaim(self, entry: PooledConnection[ConnT], holder: Holder | None) -> None:
        """Take back a connection whose borrower ended without giving it back.

        Lent to a holder, it is rolled back and lent again: the holder forgets it, or is
        gone. Lent bare, whoever has the connection object could still give it back, so it
        is closed instead.
        """
        task = self.runtime.kind.task
        stack = entry.stack
        held = entry.holder is not None
        in_transaction = self._status(entry.conn) in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        )
        if holder is not None:
            holder.geventpool_forget()
        entry.borrower = entry.holder = entry.stack = None
        with self._lock:
            self._reclaimed += 1
        logger.warning(
            "pool %r: took back a connection from a %s that ended without giving it back%s;"
            " wrap work outside requests in django_db_geventpool.utils.close_connection%s",
            self.name,
            task,
            " (its open transaction is rolled back)" if in_transaction else "",
            "; it was taken at:\n" + format_stack(stack)
            if stack is not None
            else " (LEAK_TIMEOUT shows where it was taken)",
        )
        if held:
            self._return(entry, monotonic())
        else:
            self._record(self._use_times, "use_time", monotonic() - entry.lent_at)
            self._discard(entry, lost=True)

    def report_leaks(self) -> int:
        """Log, once each, the connections held longer than `!leak_timeout`; count them."""
        if self.leak_timeout is None:
            return 0
        now = monotonic()
        leaked: list[tuple[float, list[FrameTuple]]] = []
        with self._lock:
            for entry in self._entries.values():
                # Read once: checkin() may clear it meanwhile, outside the lock.
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
                format_stack(stack),
            )
        # Counted once logged: whoever sees the count can find the report.
        with self._lock:
            self._leaks += len(leaked)
        return len(leaked)

    def add_listener(self, listener: Listener) -> None:
        """Have `!listener` told every duration the pool records (see `Listener`)."""
        with self._lock:
            # Replaced, not changed: the pool iterates it outside the lock.
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = [each for each in self._listeners if each is not listener]

    def _record(self, histogram: Histogram, key: str, seconds: float) -> None:
        with self._lock:
            histogram.record(seconds)
        if self._listeners:
            self._notify(key, seconds)

    def _notify(self, key: str, seconds: float) -> None:
        for listener in self._listeners:
            try:
                listener.record(self, key, seconds)
            except Exception:
                logger.exception("pool %r: a listener failed", self.name)

    def histograms(self) -> dict[str, HistogramSnapshot]:
        """Return the durations the pool recorded, by `statistics.DISTRIBUTIONS` key."""
        with self._lock:
            waited = self._wait_times.snapshot()
            return {
                # Checkouts that found an idle connection at once waited 0 s.
                "wait_time": self._wait_times.snapshot(zeros=self._checkouts - waited.count),
                "use_time": self._use_times.snapshot(),
                "create_time": self._create_times.snapshot(),
            }

    def stats(self) -> dict[str, int | float]:
        """Return the pool's gauges and counters."""
        with self._lock:
            idle = len(self._idle)
            return {
                "max": self.max_size,
                "max_idle": self.max_idle_conns,
                "open": self._size,
                "idle": idle,
                "in_use": self._size - idle - self._opening - self._closing,
                "opening": self._opening,
                "closing": self._closing,
                "waiting": len(self._waiting),
                "checkouts": self._checkouts,
                "waits": self._waits,
                "timeouts": self._timeouts,
                "opened": self._opened,
                "closed": self._closed_count,
                "lost": self._lost,
                "retired": self._retired,
                "reclaimed": self._reclaimed,
                "pings": self._pings,
                "leaks": self._leaks,
                "wait_seconds": self._waited_seconds,
                "max_wait_seconds": self._max_wait,
            }
