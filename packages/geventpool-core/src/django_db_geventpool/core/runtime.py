"""Which concurrency runtime the process runs on, and its waiting primitives.

The pool must block a greenlet, not the hub, when gevent or eventlet has patched the
process, and must block an OS thread when nothing is patched (Django's runserver, a
management command with a thread pool). The runtime is read from what is already loaded:
importing gevent or eventlet here would be wrong for a process that uses neither.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from time import monotonic
from typing import Any, Protocol

logger = logging.getLogger("django_db_geventpool")


class Event(Protocol):
    """What the pool needs of an event: `threading.Event`'s `set`, `wait` and `clear`."""

    def set(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...

    def clear(self) -> None: ...


class RuntimeKind(enum.Enum):
    """What runs the process's concurrent tasks."""

    GEVENT = "gevent"
    EVENTLET = "eventlet"
    #: Nothing patched: OS threads.
    THREADS = "threads"

    @property
    def task(self) -> str:
        """What a task is called on this runtime."""
        return "thread" if self is RuntimeKind.THREADS else "greenlet"


@dataclass(frozen=True)
class Runtime:
    """The primitives the pool waits with, and the ones its background work runs on."""

    kind: RuntimeKind
    #: A mutual exclusion lock. The pool never holds it across a switch (no I/O, no logging,
    #: no waiting while it is held), so greenlets of one thread never contend on it.
    lock: Callable[[], threading.Lock]
    #: An event a waiting client blocks on until it is served; cleared, it serves again
    #: (the pool reuses the events of waits that ended with their set()).
    event: Callable[[], Event]
    #: ``repeat(interval, func, name)`` calls `!func` every `!interval` seconds in the
    #: background, where it may do I/O, until it returns False; it returns a function that
    #: stops it. It never keeps the process (or gevent's loop) alive on its own.
    repeat: Callable[[float, Callable[[], bool], str], Callable[[], None]]
    #: ``spawn(func, name)`` runs `!func` once in the background (a greenlet, or a daemon
    #: thread), where it may do I/O; nobody waits for it.
    spawn: Callable[[Callable[[], None], str], None]
    #: The task running now: the greenlet, or the thread. It is what borrows a connection.
    current: Callable[[], object]
    #: Whether a task returned by `!current` is still running.
    alive: Callable[[Any], bool]
    #: ``offload(func, timeout)`` runs a call that blocks the OS thread (libpq's cancel
    #: request) in another OS thread and waits for it, at most `!timeout` seconds, without
    #: blocking other greenlets; it returns whether the call ended in time. Only a call that
    #: lets go of the GIL while it blocks (ctypes, cffi) leaves the hub running meanwhile.
    offload: Callable[[Callable[[], None], float], bool]
    #: ``deadline(seconds, error)`` bounds the blocking calls of its ``with`` block: past
    #: `!seconds`, `!error` is raised in them. Plain threads can't be interrupted, so there it
    #: bounds nothing and the driver's own ``connect_timeout`` has to.
    deadline: Callable[[float, BaseException], AbstractContextManager[object]]

    @property
    def name(self) -> str:
        """The kind's name, for messages: "gevent", "eventlet" or "threads"."""
        return self.kind.value


def detect() -> Runtime:
    """Return the runtime of the current process, as patched at this moment."""
    if _gevent_patched():
        import gevent
        from gevent.monkey import get_original
        from greenlet import getcurrent

        # The OS thread's own lock, not gevent's: it is never held across a switch, so a
        # greenlet never finds it taken by another greenlet of its thread, and it costs a
        # tenth of gevent's. Between OS threads it blocks as a lock must.
        native_lock: Callable[[], threading.Lock] = get_original("_thread", "allocate_lock")
        return Runtime(
            RuntimeKind.GEVENT,
            native_lock,
            GreenWakeup,
            _repeat_on_gevent,
            _spawn_on_gevent,
            getcurrent,
            _greenlet_alive,
            _offload_on_gevent,
            gevent.Timeout,
        )
    if _eventlet_patched():
        import eventlet
        from greenlet import getcurrent

        # eventlet's patched threading module provides green Lock and Event, and its
        # Thread is a green thread.
        return Runtime(
            RuntimeKind.EVENTLET,
            threading.Lock,
            threading.Event,
            _repeat_in_thread,
            _spawn_on_eventlet,
            getcurrent,
            _greenlet_alive,
            _offload_on_eventlet,
            eventlet.Timeout,
        )
    return Runtime(
        RuntimeKind.THREADS,
        threading.Lock,
        threading.Event,
        _repeat_in_thread,
        _spawn_thread,
        threading.current_thread,
        _thread_alive,
        _offload_to_thread,
        _no_deadline,
    )


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _eventlet_patched() -> bool:
    patcher = sys.modules.get("eventlet.patcher")
    return patcher is not None and bool(patcher.is_monkey_patched("thread"))


class GreenWakeup:
    """An event for gevent, set once per wait, at the cost of a greenlet switch and no more.

    Every client that waits for a connection waits on one of these, so it is cheaper than
    `gevent.event.Event`: a hub `Waiter` (links and notifier callbacks are not needed for
    a single waiter) and, for a timeout, a bare loop timer (`gevent.Timeout` costs more
    than the wait itself). Waking from another OS thread goes through the hub's thread-safe
    callback queue.
    """

    __slots__ = ("_hub", "_ident", "_thread", "_waiter")

    def __init__(self) -> None:
        from gevent.hub import Waiter, get_hub

        self._hub = get_hub()
        self._ident = _native_get_ident()
        self._thread = self._ident()
        self._waiter = Waiter(self._hub)

    def set(self) -> None:
        # The hub does the switch, and a Waiter whose wait already ended (timed out,
        # killed) only stores it: a late wake-up never reaches the greenlet.
        if self._ident() == self._thread:
            self._hub.loop.run_callback(self._waiter.switch, True)
        else:
            self._hub.loop.run_callback_threadsafe(self._waiter.switch, True)

    def clear(self) -> None:
        # Only ever called once a wait ended with the set() it was due, so the hub's Waiter
        # is clean: what is left to do is to follow a task of another OS thread to its hub.
        if self._ident() != self._thread:
            self.__init__()  # type: ignore[misc]

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None:
            return bool(self._waiter.get())
        timer = self._hub.loop.timer(max(timeout, 0.0))
        timer.start(self._waiter.switch, False)
        try:
            return bool(self._waiter.get())
        finally:
            timer.close()


@functools.cache
def _native_get_ident() -> Callable[[], int]:
    """The OS thread's identity: gevent patches threading.get_ident to the greenlet's."""
    from gevent.monkey import get_original

    get_ident: Callable[[], int] = get_original("_thread", "get_ident")
    return get_ident


def _repeat_in_thread(interval: float, func: Callable[[], bool], name: str) -> Callable[[], None]:
    # A daemon thread: it doesn't hold up the interpreter's exit.
    stopped = threading.Event()

    def run() -> None:
        while not stopped.wait(interval):
            if not func():
                return

    threading.Thread(target=run, name=name, daemon=True).start()
    return stopped.set


def _repeat_on_gevent(interval: float, func: Callable[[], bool], name: str) -> Callable[[], None]:
    # A timer that doesn't count as work for the loop, so that gevent.wait() and a hub with
    # nothing else to do still return; each tick runs `func` in a greenlet of its own,
    # since the hub itself must never wait for I/O. (`name` only names threads.)
    from gevent import get_hub, spawn

    timer = get_hub().loop.timer(interval, interval, ref=False)

    def run() -> None:
        if not func():
            timer.close()

    timer.start(spawn, run)
    return timer.close  # type: ignore[no-any-return]


def _logged(func: Callable[[], None], name: str) -> Callable[[], None]:
    # Background work has nobody to raise to: what it can't handle is logged, not lost.
    def run() -> None:
        try:
            func()
        except Exception:
            logger.exception("%s failed", name)

    return run


def _spawn_on_gevent(func: Callable[[], None], name: str) -> None:
    from gevent import spawn

    spawn(_logged(func, name))


def _spawn_on_eventlet(func: Callable[[], None], name: str) -> None:
    from eventlet import spawn

    spawn(_logged(func, name))


def _spawn_thread(func: Callable[[], None], name: str) -> None:
    threading.Thread(target=_logged(func, name), name=name, daemon=True).start()


def _greenlet_alive(task: Any) -> bool:
    return not task.dead


def _thread_alive(task: Any) -> bool:
    return bool(task.is_alive())


def _offload_on_gevent(func: Callable[[], None], timeout: float) -> bool:
    from gevent import get_hub

    result = get_hub().threadpool.spawn(_logged(func, "a blocking call"))
    result.wait(timeout)
    return bool(result.ready())


def _offload_on_eventlet(func: Callable[[], None], timeout: float) -> bool:
    # An unpatched OS thread, and the greenlet looking every few milliseconds whether it is
    # done: simpler than eventlet's tpool, whose hand-off through a pipe can stall on PyPy.
    import eventlet
    from eventlet import patcher

    threading_ = patcher.original("threading")
    thread = threading_.Thread(target=_logged(func, "a blocking call"), daemon=True)
    thread.start()
    deadline = monotonic() + timeout
    while thread.is_alive() and monotonic() < deadline:
        eventlet.sleep(0.002)
    return not thread.is_alive()


def _offload_to_thread(func: Callable[[], None], timeout: float) -> bool:
    thread = threading.Thread(target=_logged(func, "a blocking call"), daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def _no_deadline(seconds: float, error: BaseException) -> AbstractContextManager[object]:
    return contextlib.nullcontext()
