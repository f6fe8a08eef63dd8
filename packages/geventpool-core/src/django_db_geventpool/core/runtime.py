"""Which concurrency runtime the process runs on, and its waiting primitives.

The pool must block a greenlet, not the hub, when gevent or eventlet has patched the
process, and must block an OS thread when nothing is patched (Django's runserver, a
management command with a thread pool). The runtime is read from what is already loaded:
importing gevent or eventlet here would be wrong for a process that uses neither.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Event(Protocol):
    """What the pool needs of an event: `threading.Event`'s `set` and `wait`."""

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Runtime:
    """The primitives the pool waits with."""

    name: str
    #: A mutual exclusion lock; never held across a switch, so greenlets don't contend on it.
    lock: Callable[[], threading.Lock]
    #: A one-shot event a waiting client blocks on until it is served.
    event: Callable[[], Event]


def detect() -> Runtime:
    """Return the runtime of the current process, as patched at this moment."""
    if _gevent_patched():
        from gevent.event import Event as GeventEvent

        # threading.Lock is gevent's own lock once the thread module is patched.
        return Runtime("gevent", threading.Lock, GeventEvent)
    if _eventlet_patched():
        # eventlet's patched threading module provides green Lock and Event.
        return Runtime("eventlet", threading.Lock, threading.Event)
    return Runtime("threads", threading.Lock, threading.Event)


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _eventlet_patched() -> bool:
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and bool(patcher.is_monkey_patched("thread"))
