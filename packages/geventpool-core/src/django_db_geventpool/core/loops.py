"""asyncio's running loop, kept per greenlet, so that async views work under gevent.

asyncio records the loop that runs in the OS thread's state, and Django and asgiref read
it to tell async code from sync code: `SynchronousOnlyOperation` guards the ORM, and
``async_to_sync`` refuses to run where a loop runs. On a WSGI server with gevent workers,
Django runs an ``async def`` view with ``async_to_sync``, whose loop runs in a "thread" that
gevent made a greenlet of the worker's one OS thread. While that loop is started, every
greenlet of the thread seemed to run inside it: the view's own queries, sent back to the
request's greenlet by ``sync_to_async``, and every sync view served meanwhile, failed with
`SynchronousOnlyOperation`.

`install()` makes the running loop a property of the greenlet that started it: on every
switch, the greenlet left keeps the loop it was running, and the one entered gets its own
back. asyncio's C functions, asgiref and Django all read the thread's state, which now
holds the entered greenlet's loop, so none of them needs patching. A process that never
starts a loop pays one Python call per switch, and no attribute lookup.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

# On the greenlet that left while its loop was running.
_ATTRIBUTE = "_geventpool_running_loop"

# How many greenlets hold a loop: while none does and none runs, a switch has nothing to
# move. A greenlet that died holding one (asyncio clears it in a `finally`, so only a
# greenlet killed with nothing left to run it) only costs the shortcut.
_holding = 0
_installed = False


def install() -> bool:
    """Keep asyncio's running loop per greenlet in this OS thread, if gevent patched it.

    Idempotent; return whether it is in place. It is for gevent's worker thread, where
    every request runs: greenlets of another OS thread keep asyncio's own behaviour.
    """
    global _installed
    if _installed:
        return True
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return False
    import greenlet

    previous = greenlet.gettrace()
    get_running_loop = asyncio._get_running_loop
    set_running_loop = asyncio._set_running_loop
    # A loop already running (a backend first imported inside an async view) belongs to the
    # greenlet that started it, which asyncio names by gevent's `get_ident()`: the id of a
    # greenlet. It gets the loop back when it next runs.
    running = get_running_loop()
    if not _shared_between_greenlets(running):
        # Already per greenlet (pure-Python asyncio imported after patching, as on PyPy,
        # keeps it in a `threading.local` that gevent made greenlet-local): leave it.
        _installed = True
        return True
    pending: list[tuple[int, asyncio.AbstractEventLoop]] = []
    if running is not None:
        owner = getattr(running, "_thread_id", None)
        if owner is None:
            return False  # a loop of unknown owner: the next call tries again
        if owner != id(greenlet.getcurrent()):
            pending.append((owner, running))
            set_running_loop(None)

    def trace(event: str, args: Any) -> None:
        global _holding
        if event == "switch" or event == "throw":
            loop = get_running_loop()
            if pending and id(args[1]) == pending[0][0]:
                setattr(args[1], _ATTRIBUTE, pending.pop()[1])
                _holding += 1
            if loop is not None or _holding:
                origin, target = args
                held = getattr(origin, _ATTRIBUTE, None)
                if held is not loop:
                    setattr(origin, _ATTRIBUTE, loop)
                    _holding += (loop is not None) - (held is not None)
                theirs = getattr(target, _ATTRIBUTE, None)
                if theirs is not loop:
                    set_running_loop(theirs)
        if previous is not None:
            # gevent's own tracer (the monitor thread's blocking report) chains the same way.
            previous(event, args)

    greenlet.settrace(trace)
    _installed = True
    return True


def _shared_between_greenlets(running: asyncio.AbstractEventLoop | None) -> bool:
    """Whether another greenlet of this thread sees the running loop this one set."""
    import greenlet

    # Any object does for the question; a real loop would open a selector.
    marker = running if running is not None else object()
    if running is None:
        asyncio._set_running_loop(marker)  # type: ignore[arg-type]
    try:
        seen = greenlet.greenlet(asyncio._get_running_loop).switch()
    finally:
        if running is None:
            asyncio._set_running_loop(None)
    return seen is marker
