"""Cancel requests that never stop the process, sent through the driver's own libpq.

A cancel request is a new connection to the server. When the network is frozen it never gets
an answer, and libpq's blocking `PQcancel` waits for one without a timeout. psycopg2's
``cancel()`` and psycopg 3's C ``cancel()`` call it holding the GIL, so an OS thread is no
way out: the hub's thread waits for the GIL, and every greenlet stops. Here libpq is called
through ctypes, which lets go of the GIL during each call, with the same library the driver
is linked to (a PGconn only means something to its own libpq):

- libpq 17 and later cancel without blocking (`PQcancelCreate`, `PQcancelPoll`): the socket
  is waited for with `select`, which gevent and eventlet patch, so only the calling greenlet
  waits, at most the given time, and no thread is involved;
- older libpq can only block: `PQcancel` runs in an OS thread, without the GIL, waited for
  at most the given time; past that the thread is left to end whenever the network lets it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import select
from time import monotonic

from django_db_geventpool.core.runtime import detect

logger = logging.getLogger("django_db_geventpool")

# libpq's PostgresPollingStatusType.
_POLLING_FAILED = 0
_POLLING_READING = 1
_POLLING_WRITING = 2
_POLLING_OK = 3


def cancel_query(pgconn_ptr: int | None, libpq_version: int, timeout: float) -> bool:
    """Ask the server to stop what the libpq connection at `!pgconn_ptr` is running.

    `!libpq_version` is the version of the libpq the driver uses (``PQlibVersion()``), to
    find that very library among those the process loaded. Return whether the request was
    delivered within `!timeout` seconds; never block the process, and never raise for a
    request that failed (it is logged).
    """
    if not pgconn_ptr:
        return False
    libpq = loaded_libpq(libpq_version)
    if libpq is None:
        logger.warning(
            "couldn't cancel a query: the process has no libpq %d loaded that ctypes can"
            " reach, and the driver's own cancel could stop every greenlet",
            libpq_version,
        )
        return False
    if hasattr(libpq, "PQcancelCreate"):
        return _cancel_without_blocking(libpq, pgconn_ptr, timeout)
    return _cancel_in_thread(libpq, pgconn_ptr, timeout)


def _cancel_without_blocking(libpq: ctypes.CDLL, pgconn_ptr: int, timeout: float) -> bool:
    deadline = monotonic() + timeout
    cancel_conn = libpq.PQcancelCreate(ctypes.c_void_p(pgconn_ptr))
    if not cancel_conn:
        return False
    try:
        status = _POLLING_WRITING if libpq.PQcancelStart(cancel_conn) else _POLLING_FAILED
        while status in (_POLLING_READING, _POLLING_WRITING):
            remaining = deadline - monotonic()
            if remaining <= 0:
                logger.warning(
                    "couldn't cancel a query within %.1f s: the server didn't answer", timeout
                )
                return False
            fd = libpq.PQcancelSocket(cancel_conn)
            if status == _POLLING_READING:
                select.select([fd], [], [], remaining)
            else:
                select.select([], [fd], [], remaining)
            status = libpq.PQcancelPoll(cancel_conn)
        if status != _POLLING_OK:
            message = libpq.PQcancelErrorMessage(cancel_conn) or b""
            logger.warning("couldn't cancel a query: %s", message.decode(errors="replace").strip())
            return False
        return True
    finally:
        libpq.PQcancelFinish(cancel_conn)


def _cancel_in_thread(libpq: ctypes.CDLL, pgconn_ptr: int, timeout: float) -> bool:
    # The PGcancel is a copy, independent of the connection, which may be closed meanwhile;
    # the thread frees it once PQcancel returns, whenever that is.
    cancel = libpq.PQgetCancel(ctypes.c_void_p(pgconn_ptr))
    if not cancel:
        return False
    failure: list[str] = []

    def run() -> None:
        errbuf = ctypes.create_string_buffer(256)
        try:
            if not libpq.PQcancel(cancel, errbuf, len(errbuf)):
                failure.append(errbuf.value.decode(errors="replace").strip())
        finally:
            libpq.PQfreeCancel(cancel)

    if not detect().offload(run, timeout):
        logger.warning("couldn't cancel a query within %.1f s: the server didn't answer", timeout)
        return False
    if failure:
        logger.warning("couldn't cancel a query: %s", failure[0])
        return False
    return True


@functools.cache
def loaded_libpq(version: int) -> ctypes.CDLL | None:
    """The libpq of version `!version` (``PQlibVersion()``) that the process loaded, if any.

    Wheels such as psycopg2-binary and psycopg-binary bring libpq builds of their own,
    loaded beside any other: the one whose version is the driver's is the driver's.
    """
    for path in [*_mapped_libpqs(), ctypes.util.find_library("pq")]:
        if path is None:
            continue
        try:
            libpq = ctypes.CDLL(path)
        except OSError:
            continue
        if libpq.PQlibVersion() == version:
            _declare(libpq)
            return libpq
    return None


def _mapped_libpqs() -> list[str]:
    """The libpq files mapped into the process, as Linux lists them (none elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/maps") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        name = os.path.basename(path)
        if name.startswith("libpq") and ".so" in name and path not in paths:
            paths.append(path)
    return paths


def _declare(libpq: ctypes.CDLL) -> None:
    pointer = ctypes.c_void_p
    libpq.PQlibVersion.restype = ctypes.c_int
    libpq.PQgetCancel.argtypes = [pointer]
    libpq.PQgetCancel.restype = pointer
    libpq.PQcancel.argtypes = [pointer, ctypes.c_char_p, ctypes.c_int]
    libpq.PQcancel.restype = ctypes.c_int
    libpq.PQfreeCancel.argtypes = [pointer]
    libpq.PQfreeCancel.restype = None
    if not hasattr(libpq, "PQcancelCreate"):
        return
    libpq.PQcancelCreate.argtypes = [pointer]
    libpq.PQcancelCreate.restype = pointer
    for name in ("PQcancelStart", "PQcancelPoll", "PQcancelSocket"):
        getattr(libpq, name).argtypes = [pointer]
        getattr(libpq, name).restype = ctypes.c_int
    libpq.PQcancelErrorMessage.argtypes = [pointer]
    libpq.PQcancelErrorMessage.restype = ctypes.c_char_p
    libpq.PQcancelFinish.argtypes = [pointer]
    libpq.PQcancelFinish.restype = None
