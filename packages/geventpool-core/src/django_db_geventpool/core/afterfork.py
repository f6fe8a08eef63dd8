"""Letting go of the parent's connections in a forked child without touching them.

At the instant of a fork another task may be in a query, and the driver may hold the
connection's lock (psycopg2 holds it for the whole query): in the child nothing can release
it, so any driver call that takes it (`close()`, a finaliser) never returns. The child
therefore makes no driver call at all: each connection's socket number, recorded when it
was opened, is pointed at a socket of the child's own that nobody ever answers, and the
connection objects are kept for good, so that no finaliser ever runs.
"""

from __future__ import annotations

import _socket
import os
from collections.abc import Iterable
from typing import NamedTuple


class SocketId(NamedTuple):
    """A connection's socket: its number, and what it is, to tell it from a later reuse."""

    fd: int
    device: int
    inode: int


# Never emptied: a driver finaliser could block on a lock held by a task of the parent, or
# end the parent's server session.
_kept: list[object] = []


def identify(conn: object) -> SocketId | None:
    """The socket of `!conn`, a connection just opened (its driver's `fileno()`)."""
    try:
        fd = conn.fileno()  # type: ignore[attr-defined]
        info = os.fstat(fd)
    except Exception:
        return None
    return SocketId(fd, info.st_dev, info.st_ino)


def abandon(connections: Iterable[tuple[object, SocketId | None]]) -> None:
    """In a forked child: make the parent's `!connections` inert here, without a driver call.

    The child's copies of the parent's tasks may still be waiting on these sockets: on a
    socket that never answers they wait for good, quietly, instead of reading the parent's
    replies or failing on a closed connection. Nothing is sent to the parent's server.
    """
    quiet: _socket.socket | None = None
    for conn, socket in connections:
        _kept.append(conn)
        if socket is None or not _still(socket):
            # Its socket was closed (the connection broke) and the number maybe reused.
            continue
        if quiet is None:
            # The C module's: the child's runtime may not be ready to run green code yet.
            quiet, other_end = _socket.socketpair()
            _kept.extend((quiet, other_end))
        os.dup2(quiet.fileno(), socket.fd, inheritable=False)


def abandoned(conn: object) -> bool:
    """Whether `!conn` is a connection of the parent, let go of in this forked child."""
    return any(kept is conn for kept in _kept)


def _still(socket: SocketId) -> bool:
    try:
        info = os.fstat(socket.fd)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == (socket.device, socket.inode)
