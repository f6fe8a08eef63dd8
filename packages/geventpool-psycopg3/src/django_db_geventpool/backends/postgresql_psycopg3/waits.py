"""What the psycopg 3 wait functions of each greenlet runtime share.

psycopg runs every query as a generator that yields when the socket would block, and a
wait function (``psycopg.waiting.wait``, looked up on every query) waits for the socket
and resumes it. The runtime modules (`.waits_gevent`, `.waits_eventlet`) only say how
one greenlet waits for one socket on their hub; driving the generator, keeping each psycopg
release's contract and installing the function are done here. gevent's module drives the
waits that have no deadline itself, the path of every query, to keep one watcher for all
of them.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any

from psycopg import errors, waiting
from psycopg.waiting import READY_R, READY_RW, READY_W, WAIT_R, WAIT_RW, WAIT_W

#: The environment variable with which users choose one of psycopg's own wait functions.
PSYCOPG_CHOICE = "PSYCOPG_WAIT_FUNC"

#: Event bits: what a runtime is asked to wait for, and reports ready.
READ = 1
WRITE = 2
EVENTS = {WAIT_R: READ, WAIT_W: WRITE, WAIT_RW: READ | WRITE}
#: What the generator is told, by event bits: a lookup costs less than combining flags.
#: Nothing ready (the limit passed) is psycopg's Ready.NONE, new in 3.2; 3.1 never gets it.
READY = (getattr(waiting, "READY_NONE", 0), READY_R, READY_W, READY_RW)

#: How a runtime waits: ``ready_within(fileno, events, limit)`` suspends the calling greenlet
#: until the socket is ready for some of `!events` (returning those bits) or, when `!limit`
#: isn't None, until `!limit` seconds have passed (returning 0).
ReadyWithin = Callable[[int, int, "float | None"], int]


def consume(
    gen: Any,
    fileno: int,
    deadline: float | None,
    interval: float | None,
    ready_within: ReadyWithin,
) -> Any:
    """Drive the psycopg generator `!gen` to its end and return its value.

    Raise psycopg's `!_WaitTimeout` once `!deadline` (a `monotonic()` time) has passed; wake
    the generator with nothing ready every `!interval` seconds.
    """
    try:
        wait = next(gen)
        while True:
            limit = interval
            if deadline is not None:
                remaining = max(deadline - monotonic(), 0.0)
                limit = remaining if limit is None else min(limit, remaining)
            events = ready_within(fileno, EVENTS[wait], limit)
            wait = gen.send(READY[events & (READ | WRITE)])
            # After resuming the generator, like psycopg: data already there is processed,
            # and a timeout of 0 polls once.
            if deadline is not None and monotonic() >= deadline:
                raise errors._WaitTimeout("wait timeout expired")
    except StopIteration as ex:
        return ex.value


def contract() -> str:
    """Which wait signature the installed psycopg calls: "3.1", "3.2" or "3.3" (and later).

    3.1 passes a `!timeout` that only lets Ctrl-C through; 3.2 an `!interval` after which
    the generator is told nothing is ready (``notifies(timeout=...)`` relies on it); 3.3
    an `!interval` and a `!timeout` after which the wait raises `!_WaitTimeout`.
    """
    parameters = inspect.signature(waiting.wait_select).parameters
    if "interval" not in parameters:
        return "3.1"
    if "timeout" not in parameters:
        return "3.2"
    return "3.3"


def install(variants: Mapping[str, Callable[..., Any]]) -> bool:
    """Make psycopg wait with the variant of `!variants` for its contract; return whether
    it does. A choice the user made with PSYCOPG_WAIT_FUNC is left alone."""
    if waiting.wait in variants.values():
        return True
    if PSYCOPG_CHOICE in os.environ:
        return False
    waiting.wait = variants[contract()]
    return True
