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
_pools: dict[str, PoolEntry] = {}


@dataclass
class PoolEntry:
    """A pool and the connection settings it was made for."""

    pool: ConnectionPool[Any]
    #: What the pool was made for: a new pool is made when it changes. It holds the
    #: connection parameters, password included, so it is kept out of the repr.
    key: object = field(repr=False)
    #: Attributes Django sets on its wrapper while opening a connection; restored on the
    #: wrappers that reuse one of this pool's connections.
    wrapper_state: dict[str, Any] = field(default_factory=dict)


def get(alias: str) -> PoolEntry | None:
    """Return the current entry of `!alias`, if any."""
    return _pools.get(alias)


def pools() -> dict[str, ConnectionPool[Any]]:
    """Return the current pool of each alias."""
    return {alias: entry.pool for alias, entry in list(_pools.items())}


def acquire(alias: str, key: object, create: Callable[[], ConnectionPool[Any]]) -> PoolEntry:
    """Return the pool of `!alias` made for `!key` (its settings), creating it if needed.

    A pool made for other settings (Django's test runner switching to the test database,
    a test overriding the time zone) is closed and replaced: its connections would reach
    the wrong database or session.
    """
    entry = _pools.get(alias)
    if _fits(entry, key):
        return entry
    with _lock:
        old = _pools.get(alias)
        if _fits(old, key):
            return old
        entry = _pools[alias] = PoolEntry(create(), key)
    if old is not None:
        old.pool.close()
    return entry


def _fits(entry: PoolEntry | None, key: object) -> TypeGuard[PoolEntry]:
    return entry is not None and entry.key == key and not entry.pool.closed


def discard(alias: str) -> None:
    """Close the pool of `!alias`; the next checkout creates a new one."""
    with _lock:
        entry = _pools.pop(alias, None)
    if entry is not None:
        entry.pool.close()


def discard_all() -> None:
    """Close every pool of the process."""
    with _lock:
        entries = list(_pools.values())
        _pools.clear()
    for entry in entries:
        entry.pool.close()


# Idle connections closed at exit end their server sessions cleanly, instead of being
# dropped by the garbage collector.
atexit.register(discard_all)


def _forget_after_fork() -> None:
    # The child shares the parent's sockets: it must neither use nor close the parent's
    # connections. Its pools start empty.
    global _lock
    _lock = threading.Lock()
    entries = list(_pools.values())
    _pools.clear()
    for entry in entries:
        entry.pool.abandon_after_fork()


os.register_at_fork(after_in_child=_forget_after_fork)
