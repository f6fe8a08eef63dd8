"""What the scenario scripts share: the registry, Django's setup, the pool seen from the server.

Every script here is run as ``python SCRIPT.py SCENARIO '{"json": "arguments"}'`` and prints
its result as one JSON line (see tests/support/scenarios.py). The connection comes from the
PG* variables, the runtime and the driver from the cell (cell.py).

Importing this module patches nothing and imports no driver: a script patches first, at its
very top, then imports it. The cell's runtime (`cell.green`) is read when a helper runs.
"""

import json
import sys
import time

import cell

SCENARIOS = {}

COUNT_SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"


def scenario(func):
    """Register `func` under its name, for `main()`."""
    SCENARIOS[func.__name__] = func
    return func


def setup_django(args, **settings_):
    """Configure Django with one database, the PG* server, from the scenario's arguments.

    ``engine`` (the cell's by default), ``options`` (OPTIONS beside application_name, which
    is ``app``), ``database`` (more keys of the DATABASES entry), ``apps`` (INSTALLED_APPS,
    testapp by default); `settings_` are more settings.
    """
    import django
    from django.conf import settings

    from support.databases import database_from_env

    options = {"application_name": args["app"]}
    options.update(args.get("options", {}))
    settings.configure(
        DATABASES={
            "default": database_from_env(
                args.get("engine", cell.ENGINE), OPTIONS=options, **args.get("database", {})
            )
        },
        INSTALLED_APPS=args.get("apps", ["testapp"]),
        USE_TZ=True,
        TIME_ZONE="Europe/Paris",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        **settings_,
    )
    django.setup()


def main(setup=setup_django):
    """Run the scenario named on the command line and print its result as one JSON line.

    `setup(args)` configures Django first, and the result gets the seconds the scenario took
    and the cell it ran in. None leaves Django to the scenario and prints what it returns as
    is: for scripts about what happens before Django is set up and while patching.
    """
    name, args = sys.argv[1], json.loads(sys.argv[2])
    if setup is None:
        print(json.dumps(SCENARIOS[name](args)))
        return
    setup(args)
    started = time.monotonic()
    result = SCENARIOS[name](args)
    result["elapsed"] = time.monotonic() - started
    result["cell"] = cell_seen()
    print(json.dumps(result))


def cell_seen():
    """The runtime the pool detected and the driver module Django loaded, as they were."""
    from django.db import connection

    pool = connection.geventpool
    return {
        "runtime": pool.runtime.name if pool is not None else None,
        "driver": connection.Database.__name__,
    }


def pool_stats():
    from django.db import connection

    return connection.geventpool.stats()


def backend_pid():
    """The server process of the current task's connection (checked out if it has none)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def timed_checkout():
    """Take a connection (`backend_pid`): how long it took and, if it failed, why."""
    from django.db import OperationalError

    from django_db_geventpool.core import PoolTimeout

    started = time.monotonic()
    try:
        backend_pid()
    except OperationalError as ex:
        return {
            "error": str(ex),
            "pool_timeout": isinstance(ex.__cause__, PoolTimeout),
            "waited": time.monotonic() - started,
        }
    return {"error": None, "waited": time.monotonic() - started}


def create_tables():
    """testapp's table, created again empty."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection
    from testapp.models import Event

    with close_connection(), connection.schema_editor() as editor:
        editor.execute("DROP TABLE IF EXISTS testapp_event")
        editor.create_model(Event)


def server_connections(app):
    """Count the server's sessions of this scenario, on a connection outside the pool."""
    conn = cell.observer()
    try:
        return cell.query_one(conn, COUNT_SESSIONS, [app])
    finally:
        conn.close()


def settled_connections(app, within=5.0):
    """The server's session count once it agrees with what the pool holds open.

    The pool closes connections in the background; waiting up to `within` seconds for that to
    end keeps the closing out of the counts.
    """
    deadline = time.monotonic() + within
    while True:
        count = server_connections(app)
        stats = pool_stats()
        # Closed in the background: a slot counts as open until the server ended its session.
        busy = stats["opening"] or stats["closing"]
        if (count == stats["open"] and not busy) or time.monotonic() >= deadline:
            return count
        cell.green.sleep(0.01)


class Sampler:
    """Sample the scenario's server sessions every few milliseconds, in a task of the cell."""

    def __init__(self, app, every=0.003):
        self.app = app
        self.every = every
        self.peak = 0
        self.samples = 0
        self._conn = cell.observer()
        self._stopping = False
        self._task = cell.green.spawn(self._run)

    def _run(self):
        while not self._stopping:
            count = cell.query_one(self._conn, COUNT_SESSIONS, [self.app])
            self.peak = max(self.peak, count)
            self.samples += 1
            cell.green.sleep(self.every)

    def stop(self):
        # Not killed mid-query: that would leave the observer connection busy.
        self._stopping = True
        cell.green.result(self._task)
        self._conn.close()
        return {"peak": self.peak, "samples": self.samples}
