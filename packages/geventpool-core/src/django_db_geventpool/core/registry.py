"""The process's pools, one per database alias."""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django_db_geventpool.core.pool import ConnectionPool

if TYPE_CHECKING:
    # Only for the type checker: typing.TypeGuard is new in 3.10, and PyPy 3.9 runs the core.
    from typing import TypeGuard

# Held only while looking up or replacing an entry, never across a switch, so it needs
# no green version even when created before monkey-patching.
_lock = threading.Lock()
_pools: dict[str, _Registered] = {}
# Told of every pool made (exporters that must hook into each, such as OpenTelemetry's).
_watchers: list[Callable[[str, ConnectionPool[Any]], None]] = []


@dataclass
class _Registered:
    pool: ConnectionPool[Any]
    #: What the pool was made for: a new pool is made when it changes. It holds the
    #: connection parameters, password included, so it is kept out of the repr.
    key: object = field(repr=False)


def get(alias: str) -> ConnectionPool[Any] | None:
    """Return the current pool of `!alias`, if any."""
    registered = _pools.get(alias)
    return registered.pool if registered is not None else None


def pools() -> dict[str, ConnectionPool[Any]]:
    """Return the current pool of each alias."""
    return {alias: registered.pool for alias, registered in list(_pools.items())}


def acquire(
    alias: str, key: object, create: Callable[[], ConnectionPool[Any]]
) -> ConnectionPool[Any]:
    """Return the pool of `!alias` made for `!key` (its settings), creating it if needed.

    A pool made for other settings (Django's test runner switching to the test database,
    a test overriding the time zone) is closed and replaced: its connections would reach
    the wrong database or session.
    """
    registered = _pools.get(alias)
    if _fits(registered, key):
        return registered.pool
    with _lock:
        old = _pools.get(alias)
        if _fits(old, key):
            return old.pool
        registered = _pools[alias] = _Registered(create(), key)
        watchers = list(_watchers)
    if old is not None:
        old.pool.close()
    for watcher in watchers:
        watcher(alias, registered.pool)
    return registered.pool


def watch(watcher: Callable[[str, ConnectionPool[Any]], None]) -> Callable[[], None]:
    """Call `!watcher(alias, pool)` for every pool, those there now and those made later.

    Return a function that stops it.
    """
    with _lock:
        _watchers.append(watcher)
        current = [(alias, registered.pool) for alias, registered in _pools.items()]
    for alias, pool in current:
        watcher(alias, pool)

    def unwatch() -> None:
        with _lock:
            _watchers.remove(watcher)

    return unwatch


def _fits(registered: _Registered | None, key: object) -> TypeGuard[_Registered]:
    return registered is not None and registered.key == key and not registered.pool.closed


def discard(alias: str) -> None:
    """Close the pool of `!alias`; the next checkout creates a new one."""
    with _lock:
        registered = _pools.pop(alias, None)
    if registered is not None:
        registered.pool.close()


def discard_all() -> None:
    """Close every pool of the process."""
    with _lock:
        registered = list(_pools.values())
        _pools.clear()
    for each in registered:
        each.pool.close()


# Idle connections closed at exit end their server sessions cleanly, instead of being
# dropped by the garbage collector.
atexit.register(discard_all)


def _forget_after_fork() -> None:
    # The child shares the parent's sockets: it must neither use nor close the parent's
    # connections. Its pools start empty.
    global _lock
    _lock = threading.Lock()
    registered = list(_pools.values())
    _pools.clear()
    for each in registered:
        each.pool.abandon_after_fork()


os.register_at_fork(after_in_child=_forget_after_fork)
