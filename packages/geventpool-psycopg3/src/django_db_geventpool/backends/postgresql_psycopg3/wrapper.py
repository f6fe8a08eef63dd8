"""What the pool needs to know about psycopg 3, as a mixin for any Django wrapper on it.

The plain PostgreSQL backend and the PostGIS one both put `Psycopg3Mixin` before their
Django wrapper class, so the psycopg 3 specifics live here once.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool.core.runtime import Runtime
from django_db_geventpool.core.wrapper import DatabaseWrapperMixin


def _transaction_status(conn: Any) -> int:
    # The libpq value as a plain int (UNKNOWN once closed): 0.1 us, against 1.4 us for
    # conn.info.transaction_status, which builds an enum on every read.
    return conn.pgconn.transaction_status  # type: ignore[no-any-return]


def _server_timezone(conn: Any) -> str | None:
    # Straight from libpq, without building a ConnectionInfo and looking up the encoding.
    value: bytes | None = conn.pgconn.parameter_status(b"TimeZone")
    return value.decode() if value is not None else None


_PATCH_FIRST = {
    "gevent": (
        "psycopg was imported before gevent's monkey.patch_all(): patch first, before"
        " anything imports Django's database backends (gunicorn's gevent worker does),"
        " or set PSYCOPG_WAIT_FUNC=wait_select in the environment"
    ),
    "eventlet": (
        "psycopg was imported before eventlet.monkey_patch(): patch first, before anything"
        " imports Django's database backends"
    ),
}


class Psycopg3Mixin(DatabaseWrapperMixin):
    """The pool mixin, plus the checks that psycopg 3 cooperates with the greenlet runtime."""

    pool_transaction_status = staticmethod(_transaction_status)
    pool_server_timezone = staticmethod(_server_timezone)

    def check_pool_runtime(self, runtime: Runtime) -> None:
        from psycopg import waiting

        from django_db_geventpool.backends.postgresql_psycopg3 import waits

        if runtime.name == "threads":
            return
        if runtime.name == "gevent":
            # psycopg picks its wait function once, when imported: its C one, which blocks
            # the whole process, unless gevent had patched `select` by then.
            if waiting.wait is getattr(waiting, "wait_c", None) and waits.user_choice() is None:
                raise ImproperlyConfigured(
                    f"DATABASES[{self.alias!r}]: psycopg would block every gevent greenlet"
                    f" while it waits for the server; {_PATCH_FIRST['gevent']}"
                )
            from django_db_geventpool.backends.postgresql_psycopg3 import green

            green.install()
        else:
            # Connecting waits with a selector psycopg took from `selectors` when imported.
            from eventlet.green import selectors

            if getattr(waiting, "DefaultSelector", None) is not selectors.DefaultSelector:
                raise ImproperlyConfigured(
                    f"DATABASES[{self.alias!r}]: psycopg would block every eventlet greenlet"
                    f" while it connects; {_PATCH_FIRST['eventlet']}"
                )
            from django_db_geventpool.backends.postgresql_psycopg3 import green_eventlet

            green_eventlet.install()
        if waiting.wait is getattr(waiting, "wait_c", None):
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]: PSYCOPG_WAIT_FUNC=wait_c blocks every"
                f" {runtime.name} greenlet while one waits for the server: unset"
                " PSYCOPG_WAIT_FUNC to let the backend choose, or set it to wait_select"
            )
