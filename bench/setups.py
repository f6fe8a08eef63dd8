"""The setups the benchmark compares: what a request cycle and a checkout mean for each.

A request cycle is what a Django view costs the database layer: take a connection, run
the workload's statements (in `transaction.atomic()` where the workload is a transaction),
and give the connection back the way Django does at the end of a request
(`close_old_connections`). Imports happen inside the setups, after the worker has
monkey-patched, and only for the setup being measured. The PgBouncer setups don't know
PgBouncer is there: the harness points the worker's PG* variables at it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from bench.workloads import WORKLOADS, Workload

# What a checkout method returns where there is nothing of the kind to measure.
NOT_MEASURED = None


class Target(Protocol):
    """What the worker measures, the same for every setup."""

    def greenlets(self, requested: int, conns: int) -> int: ...

    def cycle(self, workload: Workload) -> None: ...

    def checkout_django(self, iterations: int) -> tuple[float, float] | None: ...

    def checkout_pool(self, iterations: int) -> tuple[float, float] | None: ...

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


def time_per_call(iterations: int, call: Callable[[], object]) -> tuple[float, float]:
    """Seconds per call, on the clock and on the CPU.

    Where nothing waits, the two are equal on a quiet machine; on a busy one the CPU time
    still is the cost, while the clock also counts the moments the process was not running.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall / iterations, cpu / iterations


class Setup:
    """Django, with whatever the subclass's DATABASES entry puts behind it."""

    def __init__(self, conns: int, app_name: str) -> None:
        configure_django(self.database(conns, app_name))
        from django.db import close_old_connections, connection, transaction

        self.connection = connection
        self.release = close_old_connections
        self.atomic = transaction.atomic

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        raise NotImplementedError

    def greenlets(self, requested: int, conns: int) -> int:
        return requested

    def cycle(self, workload: Workload) -> None:
        begin = self.atomic() if workload.atomic else contextlib.nullcontext()
        with begin, self.connection.cursor() as cursor:
            workload.run(cursor)
        self.release()

    def checkout_django(self, iterations: int) -> tuple[float, float] | None:
        """Seconds (clock, CPU) per connection taken and given back through Django, nothing
        run on it.

        What every request pays before and after its queries: `ensure_connection()` is
        what the first query calls, `close_old_connections()` what runs when the request
        ends. With persistent connections the first is a no-op and the second keeps the
        connection; with a pool they check it out and back in.
        """
        connection, release = self.connection, self.release

        def once() -> None:
            connection.ensure_connection()
            release()

        return time_per_call(iterations, once)

    def checkout_pool(self, iterations: int) -> tuple[float, float] | None:
        """Seconds (clock, CPU) per connection taken from the pool itself and given back."""
        return NOT_MEASURED

    def close(self) -> None:
        self.release()


class Ours(Setup):
    """geventpool, psycopg 3."""

    engine = "django_db_geventpool.backends.postgresql_psycopg3"

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        return django_database(self.engine, app_name, CONN_MAX_AGE=0, OPTIONS={"MAX_CONNS": conns})

    def checkout_pool(self, iterations: int) -> tuple[float, float] | None:
        # The pool exists once a connection was taken from it.
        self.cycle(WORKLOADS["select1"])
        pool = self.connection.geventpool

        def once() -> None:
            pool.putconn(pool.getconn())

        return time_per_call(iterations, once)


#: RESET_QUERY's choices: DISCARD ALL, and the same in parts as one string (DISCARD ALL must
#: be sent alone), which keeps the server's cached plans (docs/settings.md#reset_query).
DISCARD_ALL = "DISCARD ALL"
DISCARD_ALL_IN_PARTS = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *;"
    " SELECT pg_advisory_unlock_all(); DEALLOCATE ALL; DISCARD TEMP; DISCARD SEQUENCES"
)
#: A session whose default time zone is not literally 'UTC', as on a server left as initdb set
#: it up: after RESET ALL, Django sets its time zone again on every checkout.
ETC_UTC = "-c TimeZone=Etc/UTC"


class OursReset(Ours):
    """geventpool, psycopg 3, with a RESET_QUERY (and maybe a session time zone default)."""

    reset_query = DISCARD_ALL
    libpq_options: str | None = None

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        options: dict[str, Any] = {"MAX_CONNS": conns, "RESET_QUERY": self.reset_query}
        if self.libpq_options:
            options["options"] = self.libpq_options
        return django_database(self.engine, app_name, CONN_MAX_AGE=0, OPTIONS=options)


class OursDiscardAllEtcUtc(OursReset):
    libpq_options = ETC_UTC


class OursResetInParts(OursReset):
    reset_query = DISCARD_ALL_IN_PARTS


class OursResetInPartsEtcUtc(OursResetInParts):
    libpq_options = ETC_UTC


class OursResetRoundTrip(OursReset):
    """A reset that asks the server nothing: what the round trip alone costs."""

    reset_query = "SELECT 1"


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

    def checkout_pool(self, iterations: int) -> tuple[float, float] | None:
        # Django opens its pool with the first connection.
        self.cycle(WORKLOADS["select1"])
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

    def checkout_pool(self, iterations: int) -> tuple[float, float] | None:
        self.cycle(WORKLOADS["select1"])
        # Its pool lives on the wrapper, under the name that Django >= 5.1 also uses.
        pool = self.connection.pool

        def once() -> None:
            pool.put(pool.get())

        return time_per_call(iterations, once)


class PgBouncerConnMaxAge0(Setup):
    """Django's own backend with a new connection per request (CONN_MAX_AGE=0), to a
    PgBouncer in transaction mode that holds the server connections.

    Server-side cursors don't survive transaction pooling; Django's backend doesn't
    prepare statements unless OPTIONS asks, so that needs nothing.
    """

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        return django_database(
            "django.db.backends.postgresql",
            app_name,
            CONN_MAX_AGE=0,
            DISABLE_SERVER_SIDE_CURSORS=True,
        )


class PgBouncerPersistent(Setup):
    """Django's own backend keeping its connection (CONN_MAX_AGE=None): every greenlet has
    a client connection to PgBouncer of its own, and PgBouncer shares the server's."""

    def database(self, conns: int, app_name: str) -> dict[str, Any]:
        return django_database(
            "django.db.backends.postgresql",
            app_name,
            CONN_MAX_AGE=None,
            DISABLE_SERVER_SIDE_CURSORS=True,
        )


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

    def cycle(self, workload: Workload) -> None:
        conn = self.queue.get()
        try:
            begin = conn.transaction() if workload.atomic else contextlib.nullcontext()
            with begin, conn.cursor() as cursor:
                workload.run(cursor)
        finally:
            self.queue.put(conn)

    def checkout_django(self, iterations: int) -> tuple[float, float] | None:
        return NOT_MEASURED

    def checkout_pool(self, iterations: int) -> tuple[float, float] | None:
        return NOT_MEASURED

    def close(self) -> None:
        while not self.queue.empty():
            self.queue.get().close()


SETUPS: dict[str, Callable[..., Target]] = {
    "geventpool": Ours,
    "geventpool-psycopg2": OursPsycopg2,
    "geventpool-discard-all": OursReset,
    "geventpool-discard-all-etc-utc": OursDiscardAllEtcUtc,
    "geventpool-reset-in-parts": OursResetInParts,
    "geventpool-reset-in-parts-etc-utc": OursResetInPartsEtcUtc,
    "geventpool-reset-round-trip": OursResetRoundTrip,
    "django-ceiling": DjangoCeiling,
    "django-ceiling-gevent-wait": DjangoCeilingGeventWait,
    "django-pool": DjangoNativePool,
    "django-db-geventpool-4.0.8": OldGeventpool,
    "pgbouncer-conn-max-age-0": PgBouncerConnMaxAge0,
    "pgbouncer-persistent": PgBouncerPersistent,
    "raw-psycopg": RawPsycopg,
}
