"""A psycopg 3 wait function that waits on gevent's hub directly.

Under gevent psycopg picks one of its own wait functions (`wait_poll` on a patched
process), which goes through gevent's emulation of ``select.poll``: a poll object, a result
object and a timer for every wait. This one waits on a single I/O watcher, kept for all
the waits of a query: a short query costs the process about a third less CPU (``nox -s
bench``, second table).

Import it only in a process gevent has patched.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from gevent.hub import Waiter, get_hub

from django_db_geventpool.backends.postgresql_psycopg3 import waits
from django_db_geventpool.backends.postgresql_psycopg3.waits import (
    EVENTS,
    READ,
    READY,
    WRITE,
    consume,
)


def wait_gevent(gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None) -> Any:
    """Consume the psycopg generator `!gen`, waiting on `!fileno` through gevent's hub.

    psycopg 3.3's contract: raise `!psycopg.errors._WaitTimeout` if `!gen` hasn't finished
    after `!timeout` seconds. `!interval` is accepted and not used: psycopg wakes its
    blocking waits to let Ctrl-C through, and under gevent the hub delivers signals while
    this greenlet waits.
    """
    if timeout is None:
        return _consume_untimed(gen, fileno)
    return consume(gen, fileno, monotonic() + timeout, None, _ready_within)


def wait_gevent_3_2(gen: Any, fileno: int, interval: float | None = None) -> Any:
    """`wait_gevent` for psycopg 3.2, where a wait ends after `!interval` seconds anyway,
    telling the generator nothing is ready (``notifies(timeout=...)`` relies on it)."""
    return consume(gen, fileno, None, interval or None, _ready_within)


def wait_gevent_3_1(gen: Any, fileno: int, timeout: float | None = None) -> Any:
    """`wait_gevent` for psycopg 3.1, whose `!timeout` only let Ctrl-C through."""
    return _consume_untimed(gen, fileno)


def _consume_untimed(gen: Any, fileno: int) -> Any:
    """`waits.consume` with neither deadline nor interval: what every query, fetch and
    commit asks for, so kept to the fewest calls.

    One watcher serves every wait of the generator, restarted rather than made anew: a
    result larger than the socket buffer takes a wait per buffer, and each new watcher
    would cost its allocation and, in libev, an fcntl() and an epoll_ctl().
    """
    try:
        wait = next(gen)
    except StopIteration as ex:
        return ex.value
    hub = get_hub()
    events = EVENTS[wait]
    watcher = hub.loop.io(fileno, events)
    try:
        while True:
            waiter = Waiter(hub)
            watcher.start(waiter.switch, pass_events=True)
            try:
                ready = waiter.get()
            finally:
                watcher.stop()
            wait = gen.send(READY[ready & (READ | WRITE)])
            if EVENTS[wait] != events:
                # Say a query too large for the socket buffer is sent and its result is
                # awaited now. Every gevent loop lets a stopped watcher change its events.
                events = watcher.events = EVENTS[wait]
    except StopIteration as ex:
        return ex.value
    finally:
        watcher.close()


def _ready_within(fileno: int, events: int, limit: float | None) -> int:
    hub = get_hub()
    loop = hub.loop
    waiter = Waiter(hub)
    # libev's and libuv's event bits are psycopg's: 1 to read, 2 to write.
    watcher = loop.io(fileno, events)
    timer = None
    try:
        watcher.start(waiter.switch, pass_events=True)
        if limit is not None:
            timer = loop.timer(limit)
            timer.start(waiter.switch, 0)
        return waiter.get()  # type: ignore[no-any-return]
    finally:
        watcher.close()
        if timer is not None:
            timer.close()


# By psycopg contract (see `waits.contract`).
VARIANTS: dict[str, Callable[..., Any]] = {
    "3.3": wait_gevent,
    "3.2": wait_gevent_3_2,
    "3.1": wait_gevent_3_1,
}


def install() -> bool:
    """Make psycopg wait through gevent's hub, unless PSYCOPG_WAIT_FUNC names another wait
    function; return whether it does. Call it in a gevent-patched process."""
    return waits.install(VARIANTS)
