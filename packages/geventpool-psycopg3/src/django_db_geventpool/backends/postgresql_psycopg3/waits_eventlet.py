"""A psycopg 3 wait function that waits on eventlet's hub.

psycopg recognises gevent's monkey-patching, not eventlet's: under eventlet it picks its C
wait function, which blocks the whole process while one greenlet waits for the server.
The backend installs this one when the first pool is created under eventlet.

Import it only in a process eventlet has patched.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from eventlet.hubs import get_hub
from greenlet import getcurrent

from django_db_geventpool.backends.postgresql_psycopg3 import waits
from django_db_geventpool.backends.postgresql_psycopg3.waits import READ, WRITE, consume


def wait_eventlet(
    gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None
) -> Any:
    """Consume the psycopg generator `!gen`, waiting on `!fileno` through eventlet's hub.

    psycopg 3.3's contract: raise `!psycopg.errors._WaitTimeout` if `!gen` hasn't finished
    after `!timeout` seconds. `!interval` is accepted and not used: psycopg wakes its
    blocking waits to let Ctrl-C through, and eventlet's hub delivers signals while this
    greenlet waits.
    """
    deadline = None if timeout is None else monotonic() + timeout
    return consume(gen, fileno, deadline, None, _ready_within)


def wait_eventlet_3_2(gen: Any, fileno: int, interval: float | None = None) -> Any:
    """`wait_eventlet` for psycopg 3.2, where a wait ends after `!interval` seconds anyway,
    telling the generator nothing is ready (``notifies(timeout=...)`` relies on it)."""
    return consume(gen, fileno, None, interval or None, _ready_within)


def wait_eventlet_3_1(gen: Any, fileno: int, timeout: float | None = None) -> Any:
    """`wait_eventlet` for psycopg 3.1, whose `!timeout` only let Ctrl-C through."""
    return consume(gen, fileno, None, None, _ready_within)


def _ready_within(fileno: int, events: int, limit: float | None) -> int:
    # eventlet's own trampoline() waits to read or to write, never for either: psycopg
    # asks for both while it sends a query larger than the socket buffer.
    hub = get_hub()
    current = getcurrent()
    listeners = []
    timer = None
    try:
        if events & READ:
            listeners.append(
                hub.add(hub.READ, fileno, lambda _: current.switch(READ), current.throw, None)
            )
        if events & WRITE:
            listeners.append(
                hub.add(hub.WRITE, fileno, lambda _: current.switch(WRITE), current.throw, None)
            )
        if limit is not None:
            timer = hub.schedule_call_global(limit, current.switch, 0)
        return hub.switch()  # type: ignore[no-any-return]
    finally:
        for listener in listeners:
            hub.remove(listener)
        if timer is not None:
            timer.cancel()


# By psycopg contract (see `waits.contract`).
VARIANTS: dict[str, Callable[..., Any]] = {
    "3.3": wait_eventlet,
    "3.2": wait_eventlet_3_2,
    "3.1": wait_eventlet_3_1,
}


def install() -> bool:
    """Make psycopg wait through eventlet's hub, unless PSYCOPG_WAIT_FUNC names another wait
    function; return whether it does. Call it in an eventlet-patched process."""
    return waits.install(VARIANTS)
