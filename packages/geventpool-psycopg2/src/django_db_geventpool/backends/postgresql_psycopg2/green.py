"""psycopg2 cooperating with gevent or eventlet, through psycogreen's wait callbacks.

psycopg2 waits for the server inside libpq, blocking the whole process, unless a wait
callback is installed: then it hands each wait to the callback, which yields to the hub.
"""

from __future__ import annotations

import warnings

from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool.backends.postgresql_psycopg2 import driver
from django_db_geventpool.core.runtime import Runtime, detect

#: The Django setting that chooses what a missing wait callback does: "error" or "warn".
CHECK_SETTING = "GEVENTPOOL_MISSING_WAIT_CALLBACK"
CHECK_CHOICES = ("error", "warn")

_FIX = (
    "call django_db_geventpool.backends.postgresql_psycopg2.green.patch_psycopg2() right"
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
    if runtime.name == "gevent":
        from psycogreen.gevent import patch_psycopg
    elif runtime.name == "eventlet":
        from psycogreen.eventlet import patch_psycopg
    else:
        raise RuntimeError(
            "patch_psycopg2() found neither gevent nor eventlet patching the process:"
            " call gevent.monkey.patch_all() or eventlet.monkey_patch() first"
        )
    patch_psycopg()
    return runtime.name


def check_wait_callback(alias: str, runtime: Runtime, action: str = "error") -> None:
    """Raise `ImproperlyConfigured` (or warn) if `!runtime` is green and psycopg2 would block.

    `!action` is the value of the ``GEVENTPOOL_MISSING_WAIT_CALLBACK`` setting.
    """
    if action not in CHECK_CHOICES:
        raise ImproperlyConfigured(
            f"settings.{CHECK_SETTING} is {action!r}: it must be 'error' (the default) or 'warn'"
        )
    if runtime.name == "threads":
        return
    psycopg2 = driver.load()
    if psycopg2.extensions.get_wait_callback() is not None:
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
