"""What the pool lends, and the protocols of those it deals with."""

from __future__ import annotations

import sys
import traceback
import weakref
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from django_db_geventpool.core.afterfork import SocketId
from django_db_geventpool.core.connection import Connection

if TYPE_CHECKING:
    from django_db_geventpool.core.pool import ConnectionPool

ConnT = TypeVar("ConnT", bound=Connection)

# Frames of these files are the pool's own, not its caller's.
_POOL_FILES = {__file__, str(Path(__file__).with_name("pool.py"))}

# filename, line number, function, source line (looked up only when formatted).
FrameTuple = tuple[str, int, str, None]


def caller_stack(limit: int = 32) -> list[FrameTuple]:
    """The stack of the pool's caller, cheaply: traceback.extract_stack() costs ten times more."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in _POOL_FILES:
        frame = frame.f_back
    stack: list[FrameTuple] = []
    while frame is not None and len(stack) < limit:
        code = frame.f_code
        stack.append((code.co_filename, frame.f_lineno, code.co_name, None))
        frame = frame.f_back
    stack.reverse()
    return stack


def format_stack(stack: list[FrameTuple]) -> str:
    return "".join(traceback.StackSummary.from_list(stack).format()).rstrip()


class Holder(Protocol):
    """What a connection is lent to, when it is more than the task that took it.

    A Django wrapper is one: it may be shared with other threads or greenlets, and it has
    to forget a connection the pool took back from it.
    """

    def geventpool_is_shared(self) -> bool:
        """Whether tasks other than the borrower may still use the connection."""
        ...

    def geventpool_forget(self) -> None:
        """Drop the connection: the pool took it back after its borrower ended."""
        ...


class Listener(Protocol):
    """Told each duration a pool records, as it records it (an exporter's histograms)."""

    def record(self, pool: ConnectionPool[Any], key: str, seconds: float) -> None:
        """`!key` is a `statistics.DISTRIBUTIONS` key: wait_time, use_time, create_time."""
        ...


class PooledConnection(Generic[ConnT]):
    """A connection of the pool and what the pool knows about it; `checkout` lends these."""

    __slots__ = (
        "borrower",
        "check_at",
        "conn",
        "expires_at",
        "holder",
        "idle_since",
        "initialized",
        "lent",
        "lent_at",
        "reported",
        "socket",
        "stack",
        "suspect",
    )

    def __init__(self, conn: ConnT, expires_at: float) -> None:
        #: The driver's connection.
        self.conn = conn
        #: Its socket, as it was when opened: a forked child swaps it without a driver call.
        self.socket: SocketId | None = None
        #: Whether a borrower set the session up (Django's ``init_connection_state``): False
        #: until one says so, which the first borrower of a new connection has to do.
        self.initialized = False
        self.expires_at = expires_at
        self.idle_since = 0.0
        self.lent = False
        self.lent_at = 0.0
        # The task that took it, and what it was lent to (a weak reference), while lent.
        self.borrower: object = None
        self.holder: weakref.ref[Any] | None = None
        # Where the connection was taken, kept only when leak detection is on.
        self.stack: list[FrameTuple] | None = None
        self.reported = False
        # Set when a sibling was found dead: this one is pinged before its next use.
        self.suspect = False
        #: Until when it can be lent as it is, without a look: the earliest of its end of
        #: life and its next ping (`suspect` is looked at besides). Set on every return.
        self.check_at = float("-inf")

    def __repr__(self) -> str:
        state = "lent" if self.lent else "idle"
        return f"<{type(self).__name__} {state} {self.conn!r}>"
