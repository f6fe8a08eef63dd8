"""What the pool needs to know about psycopg 3, as a mixin for any Django wrapper on it.

The plain PostgreSQL backend and the PostGIS one both put `Psycopg3Mixin` before their
Django wrapper class, so the psycopg 3 specifics live here once.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool.backends.postgresql_psycopg3 import cancel, driver
from django_db_geventpool.core.runtime import Runtime, RuntimeKind
from django_db_geventpool.core.wrapper import DatabaseWrapperMixin

# Before Django's PostgreSQL modules, which base.py imports next: they would report a
# psycopg that can't load as "Error loading psycopg2 or psycopg module".
driver.load()


def _transaction_status(conn: Any) -> int:
    # The libpq value as a plain int (UNKNOWN once closed): 0.1 us, against 1.4 us for
    # conn.info.transaction_status, which builds an enum on every read.
    return conn.pgconn.transaction_status  # type: ignore[no-any-return]


def _server_timezone(conn: Any) -> str | None:
    # Straight from libpq, without building a ConnectionInfo and looking up the encoding.
    value: bytes | None = conn.pgconn.parameter_status(b"TimeZone")
    return value.decode() if value is not None else None


_PATCHES = {
    RuntimeKind.GEVENT: "gevent's monkey.patch_all()",
    RuntimeKind.EVENTLET: "eventlet.monkey_patch()",
}


class Psycopg3Mixin(DatabaseWrapperMixin):
    """The pool mixin, plus the checks that psycopg 3 cooperates with the greenlet runtime."""

    pool_transaction_status = staticmethod(_transaction_status)
    pool_server_timezone = staticmethod(_server_timezone)
    pool_cancel = staticmethod(cancel.cancel)

    def check_pool_runtime(self, runtime: Runtime) -> None:
        import selectors

        from psycopg import waiting

        if runtime.kind is RuntimeKind.THREADS:
            return
        # psycopg connects through the selector it took from `selectors` when imported: one
        # the runtime had not patched yet blocks the whole process, whatever the wait
        # function for queries.
        if getattr(waiting, "DefaultSelector", None) is not selectors.DefaultSelector:
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]: psycopg would block every {runtime.name} greenlet"
                f" while it connects: psycopg was imported before {_PATCHES[runtime.kind]}."
                " Patch first, before anything imports Django's database backends (gunicorn's"
                " gevent worker and `celery worker -P gevent` do)"
            )
        if runtime.kind is RuntimeKind.GEVENT:
            from django_db_geventpool.backends.postgresql_psycopg3 import waits_gevent

            waits_gevent.install()
        else:
            from django_db_geventpool.backends.postgresql_psycopg3 import waits_eventlet

            waits_eventlet.install()
        # Only a user's choice is left to psycopg.
        if waiting.wait is getattr(waiting, "wait_c", None):
            raise ImproperlyConfigured(
                f"DATABASES[{self.alias!r}]: PSYCOPG_WAIT_FUNC=wait_c blocks every"
                f" {runtime.name} greenlet while one waits for the server: unset"
                " PSYCOPG_WAIT_FUNC to let the backend choose, or set it to wait_select"
            )
