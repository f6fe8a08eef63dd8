"""ENGINE ``django_db_geventpool.backends.postgresql_psycopg3``."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as postgresql

from django_db_geventpool.core.runtime import Runtime
from django_db_geventpool.core.wrapper import DatabaseWrapperMixin

if not postgresql.is_psycopg3:
    raise ImproperlyConfigured(
        "django_db_geventpool.backends.postgresql_psycopg3 needs psycopg 3, but Django"
        " loaded psycopg2: install it with `pip install geventpool-psycopg3`, or use"
        " the django_db_geventpool.backends.postgresql_psycopg2 ENGINE"
    )


class DatabaseWrapper(DatabaseWrapperMixin, postgresql.DatabaseWrapper):
    def check_pool_runtime(self, runtime: Runtime) -> None:
        from psycopg import waiting

        # psycopg picks its wait function once, when imported. Its C one polls the socket
        # directly, blocking the whole process, not just the greenlet.
        if runtime.name == "threads" or waiting.wait is not getattr(waiting, "wait_c", None):
            return
        if runtime.name == "gevent":
            fix = (
                "psycopg was imported before gevent's monkey.patch_all(): patch first, before"
                " anything imports Django's database backends (gunicorn's gevent worker does),"
                " or set PSYCOPG_WAIT_FUNC=wait_select in the environment"
            )
        else:
            fix = (
                "psycopg doesn't detect eventlet:"
                " set PSYCOPG_WAIT_FUNC=wait_select in the environment"
            )
        raise ImproperlyConfigured(
            f"DATABASES[{self.alias!r}]: psycopg waits with a call that blocks every"
            f" {runtime.name} greenlet; {fix}"
        )
