"""The setups the benchmark compares: what one request cycle and one checkout mean for each.

A request cycle is what a Django view that runs one query costs the database layer: take a
connection, run the query, and give the connection back the way Django does at the end of
a request (`close_old_connections`). Imports happen inside the setups, after the worker has
monkey-patched, and only for the setup being measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

# Where each setup's `checkout()` reports None: there is no pool to check out from.
NO_POOL = None


class Target(Protocol):
    """What the worker measures, the same for every setup."""

    def greenlets(self, requested: int, conns: int) -> int: ...

    def cycle(self, query: str) -> None: ...

    def checkout(self, iterations: int) -> float | None: ...

    def close(self) -> None: ...


def django_database(engine: str, app_name: str, **extra: Any) -> dict[str, Any]:
    """A DATABASES entry for the server in the PG* variables, named `!app_name` there."""
    # The tests' DATABASES helper: plain Python, so it loads in django-db-geventpool's venv too.
    from tests.support.databases import database_from_env

    options = {"application_name": app_name, **extra.pop("OPTIONS", {})}
    return database_from_env(engine, OPTIONS=options, **extra)


def configure_django(database: dict[str, Any]) -> None:
    import django
    from django.conf import settings

    settings.configure(DATABASES={"default": database}, USE_TZ=True, INSTALLED_APPS=[])
    django.setup()


def time_per_call(iterations: int, call: Any) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        call()
    return (time.perf_counter() - started) / iterations


class Setup:
    """Django with a pool behind it: a cycle ends by giving the connection back."""

    def __init__(self, conns: int, app_name: str) -> None:
        self.conns = conns
        configure_django(self.database(conns, app_name))
        from django.db import close_old_connections, connection

        self.connection = connection
        self.release = close_old_connections

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        raise NotImplementedError

    def greenlets(self, requested: int, conns: int) -> int:
        return requested

    def cycle(self, query: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(query)
            cursor.fetchone()
        self.release()

    def checkout(self, iterations: int) -> float | None:
        return NO_POOL

    def close(self) -> None:
        self.release()


class Ours(Setup):
    """geventpool, psycopg 3."""

    engine = "django_db_geventpool.backends.postgresql_psycopg3"

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        return django_database(self.engine, app_name, CONN_MAX_AGE=0, OPTIONS={"MAX_CONNS": conns})

    def checkout(self, iterations: int) -> float | None:
        # The pool exists once a connection was taken from it.
        self.cycle("SELECT 1")
        pool = self.connection.geventpool

        def once() -> None:
            pool.putconn(pool.getconn())

        return time_per_call(iterations, once)


class OursPsycopg2(Ours):
    """geventpool, psycopg2 and psycogreen."""

    engine = "django_db_geventpool.backends.postgresql_psycopg2"

    def __init__(self, conns: int, app_name: str) -> None:
        from psycogreen.gevent import patch_psycopg

        # Repeating what the backend may already do is harmless: it sets one callback.
        patch_psycopg()
        super().__init__(conns, app_name)


class DjangoCeiling(Setup):
    """Django without a pool: one persistent connection per greenlet, as many greenlets
    as connections. No pool can beat this; it is the Django-level ceiling."""

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        return django_database("django.db.backends.postgresql", app_name, CONN_MAX_AGE=None)

    def greenlets(self, requested: int, conns: int) -> int:
        return conns


class DjangoCeilingGeventWait(DjangoCeiling):
    """The ceiling again, with the wait function our psycopg 3 backend gives psycopg: what
    separates our row from this one is the cost of the pool and of Django's connect/close."""

    def __init__(self, conns: int, app_name: str) -> None:
        from django_db_geventpool.backends.postgresql_psycopg3 import waits_gevent

        if not waits_gevent.install():
            raise SystemExit("the gevent wait function was not installed (PSYCOPG_WAIT_FUNC?)")
        super().__init__(conns, app_name)


class DjangoNativePool(Setup):
    """Django's own "pool" option (psycopg_pool), imported after monkey-patching."""

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        pool = {"min_size": conns, "max_size": conns, "timeout": 30}
        return django_database(
            "django.db.backends.postgresql", app_name, CONN_MAX_AGE=0, OPTIONS={"pool": pool}
        )

    def checkout(self, iterations: int) -> float | None:
        # Django opens its pool with the first connection.
        self.cycle("SELECT 1")
        pool = self.connection.pool

        def once() -> None:
            pool.putconn(pool.getconn())

        return time_per_call(iterations, once)


class OldGeventpool(Setup):
    """django-db-geventpool 4.0.8 from PyPI, psycopg 3 (runs in a virtualenv of its own)."""

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        return django_database(
            "django_db_geventpool.backends.postgresql_psycopg3",
            app_name,
            CONN_MAX_AGE=0,
            OPTIONS={"MAX_CONNS": conns},
        )

    def checkout(self, iterations: int) -> float | None:
        self.cycle("SELECT 1")
        # Its pool lives on the wrapper, under the name that Django >= 5.1 also uses.
        pool = self.connection.pool

        def once() -> None:
            pool.put(pool.get())

        return time_per_call(iterations, once)


class RawPsycopg:
    """psycopg 3 without Django: the connections in a gevent queue. The driver's limit."""

    def __init__(self, conns: int, app_name: str) -> None:
        import psycopg
        from gevent.queue import Queue

        self.queue: Queue[Any] = Queue()
        for _ in range(conns):
            self.queue.put(psycopg.connect(autocommit=True, application_name=app_name))

    def greenlets(self, requested: int, conns: int) -> int:
        return requested

    def cycle(self, query: str) -> None:
        conn = self.queue.get()
        try:
            conn.execute(query).fetchone()
        finally:
            self.queue.put(conn)

    def checkout(self, iterations: int) -> float | None:
        return NO_POOL

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get().close()


SETUPS: dict[str, Callable[..., Target]] = {
    "geventpool": Ours,
    "geventpool-psycopg2": OursPsycopg2,
    "django-ceiling": DjangoCeiling,
    "django-ceiling-gevent-wait": DjangoCeilingGeventWait,
    "django-pool": DjangoNativePool,
    "django-db-geventpool-4.0.8": OldGeventpool,
    "raw-psycopg": RawPsycopg,
}
