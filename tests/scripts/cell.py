"""The test cell a scenario script runs in: the runtime that patches it and the driver it uses.

``GEVENTPOOL_RUNTIME`` is ``gevent`` (the default) or ``eventlet``; ``GEVENTPOOL_DRIVER`` is
``psycopg3`` (the default) or ``psycopg2``. A script calls `patch()` before it imports anything
else, then spawns, joins and kills greenlets through `green`, whichever runtime it is.
"""

import contextlib
import os
import warnings

RUNTIME = os.environ.get("GEVENTPOOL_RUNTIME", "gevent")
DRIVER = os.environ.get("GEVENTPOOL_DRIVER", "psycopg3")
ENGINES = {
    "psycopg3": "django_db_geventpool.backends.postgresql_psycopg3",
    "psycopg2": "django_db_geventpool.backends.postgresql_psycopg2",
}
ENGINE = ENGINES[DRIVER]

green = None


def patch():
    """Monkey-patch with the cell's runtime and make its driver cooperate, as an app must."""
    global green
    if RUNTIME == "gevent":
        from gevent import monkey

        monkey.patch_all()
        green = _Gevent()
    elif RUNTIME == "eventlet":
        # eventlet warns on import that it is deprecated. Only that warning is let through:
        # the scripts run with -W error, and any other warning still fails the test.
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
        import eventlet

        eventlet.monkey_patch()
        green = _Eventlet()
    else:
        raise SystemExit(f"GEVENTPOOL_RUNTIME is {RUNTIME!r}: use 'gevent' or 'eventlet'")

    if DRIVER == "psycopg2":
        from django_db_geventpool.backends.postgresql_psycopg2.green import patch_psycopg2

        patch_psycopg2()


def observer():
    """A connection outside the pool, in autocommit, on the cell's driver (PG* variables)."""
    if DRIVER == "psycopg3":
        import psycopg

        return psycopg.connect(autocommit=True, application_name="observer")
    import psycopg2

    conn = psycopg2.connect("application_name=observer")
    conn.autocommit = True
    return conn


def query_one(conn, sql, params=()):
    """The first column of the first row of `sql`, on a driver connection."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]
    finally:
        cursor.close()


class _Gevent:
    name = "gevent"

    def __init__(self):
        import gevent

        self._gevent = gevent
        self.Timeout = gevent.Timeout
        self.sleep = gevent.sleep

    def spawn(self, func, *args):
        return self._gevent.spawn(func, *args)

    def result(self, task):
        return task.get()

    def joinall(self, tasks, timeout=None):
        self._gevent.joinall(tasks, raise_error=True, timeout=timeout)

    def kill(self, task):
        task.kill(block=True)


class _Eventlet:
    name = "eventlet"

    def __init__(self):
        import eventlet

        self._eventlet = eventlet
        self.Timeout = eventlet.Timeout
        self.sleep = eventlet.sleep

    def spawn(self, func, *args):
        return self._eventlet.spawn(func, *args)

    def result(self, task):
        return task.wait()

    def joinall(self, tasks, timeout=None):
        with self._eventlet.Timeout(timeout):
            for task in tasks:
                task.wait()

    def kill(self, task):
        from greenlet import GreenletExit

        task.kill()
        with contextlib.suppress(GreenletExit):
            task.wait()
