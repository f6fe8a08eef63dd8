"""psycopg2 cooperating with gevent or eventlet, through psycogreen's wait callbacks.

psycopg2 waits for the server inside libpq, blocking the whole process, unless a wait
callback is installed: then it hands each wait to the callback, which yields to the hub.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool.backends.postgresql_psycopg2 import driver
from django_db_geventpool.backends.postgresql_psycopg2.cancel import cancel
from django_db_geventpool.core import afterfork
from django_db_geventpool.core.pool import DISCARD_TIMEOUT
from django_db_geventpool.core.runtime import Runtime, RuntimeKind, detect

#: The Django setting that chooses what a missing wait callback does: "error" or "warn".
CHECK_SETTING = "GEVENTPOOL_MISSING_WAIT_CALLBACK"
CHECK_CHOICES = ("error", "warn")

_FIX = (
    "call django_db_geventpool.backends.postgresql_psycopg2.wait_callback.patch_psycopg2() right"
    " after monkey-patching (in gunicorn, from the post_fork hook; in a Celery worker, from a"
    " worker_init signal handler)"
)


class MissingWaitCallbackWarning(UserWarning):
    """The process is monkey-patched, but psycopg2 blocks the hub on every query."""


def patch_psycopg2() -> str:
    """Install psycogreen's wait callback for the runtime that patched the process.

    Call it after ``gevent.monkey.patch_all()`` or ``eventlet.monkey_patch()``; return the
    name of the runtime ("gevent" or "eventlet"). Raise `RuntimeError` if neither patched
    the process: a callback that yields to a hub nobody runs would break every query.
    """
    driver.load()
    runtime = detect()
    if runtime.kind is RuntimeKind.GEVENT:
        from psycogreen.gevent import patch_psycopg
    elif runtime.kind is RuntimeKind.EVENTLET:
        from psycogreen.eventlet import patch_psycopg
    else:
        raise RuntimeError(
            "patch_psycopg2() found neither gevent nor eventlet patching the process:"
            " call gevent.monkey.patch_all() or eventlet.monkey_patch() first"
        )
    patch_psycopg()
    _cancel_when_cut(driver.load())
    return runtime.name


def cancelling(wait: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a wait callback so that a wait cut short cancels the query on the server first.

    When a wait callback raises (a `gevent.Timeout`, a kill), psycopg2 closes the
    connection at once, without cancelling: the server would run the query to its end,
    holding its locks and a session beyond MAX_CONNS. The cancel request is sent before
    psycopg2 gets the exception, in the same greenlet, waiting at most `DISCARD_TIMEOUT`
    seconds without stopping the others (see `.cancel`). Only a cut cancels: psycopg2's own
    errors (a failed connect, a failed query) mean the server already stopped.
    """
    driver_error = driver.load().Error

    @functools.wraps(wait)
    def wait_callback(conn: Any) -> None:
        try:
            wait(conn)
        except driver_error:
            raise
        except BaseException as cut:
            if afterfork.abandoned(conn):
                # A forked child's copy of a task of the parent: the query is the parent's.
                raise
            raise _cancelled(conn, cut) from None

    wait_callback.geventpool_cancels = True  # type: ignore[attr-defined]
    return wait_callback


def _cancelled(conn: Any, cut: BaseException) -> BaseException:
    """Cancel `!conn`'s query; return what to raise: `!cut`, or what came after it."""
    extensions = driver.load().extensions
    if conn.status not in (extensions.STATUS_READY, extensions.STATUS_BEGIN):
        # Cut while connecting (psycopg2's own statuses, past the exported ones): there is
        # no query to cancel, and a cancel request would go to a server that isn't answering.
        return cut
    try:
        cancel(conn, DISCARD_TIMEOUT)
    except BaseException as again:
        # Cut again (killed while timed out): libpq's cancel objects are the cancel's own,
        # freed on its way out, whatever psycopg2 does with the connection next.
        return again
    return cut


def _cancel_when_cut(psycopg2: Any) -> None:
    """Make the installed wait callback cancel on the server when a wait is cut."""
    callback = psycopg2.extensions.get_wait_callback()
    if callback is not None and not getattr(callback, "geventpool_cancels", False):
        psycopg2.extensions.set_wait_callback(cancelling(callback))


def check_wait_callback(alias: str, runtime: Runtime, action: str = "error") -> None:
    """Raise `ImproperlyConfigured` (or warn) if `!runtime` is green and psycopg2 would block.

    `!action` is the value of the ``GEVENTPOOL_MISSING_WAIT_CALLBACK`` setting.
    """
    if action not in CHECK_CHOICES:
        raise ImproperlyConfigured(
            f"settings.{CHECK_SETTING} is {action!r}: it must be 'error' (the default) or 'warn'"
        )
    if runtime.kind is RuntimeKind.THREADS:
        return
    psycopg2 = driver.load()
    if psycopg2.extensions.get_wait_callback() is not None:
        _cancel_when_cut(psycopg2)
        return
    message = (
        f"DATABASES[{alias!r}]: the process is patched by {runtime.name}, but psycopg2 has"
        f" no wait callback, so every query would block all greenlets: {_FIX}"
    )
    if action == "error":
        raise ImproperlyConfigured(
            f"{message}; settings.{CHECK_SETTING} = 'warn' lets it run anyway"
        )
    warnings.warn(message, MissingWaitCallbackWarning, stacklevel=2)
