"""Scenarios on the cell's tasks (greenlets, or OS threads), for tests/green/test_greenlets.py.

python greenlets.py SCENARIO '{"json": "arguments"}' prints one JSON line (harness.py); the
runtime and the driver come from GEVENTPOOL_RUNTIME and GEVENTPOOL_DRIVER (cell.py).
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

green = cell.patch()

import contextlib  # noqa: E402
import threading  # noqa: E402

from cell import observer, query_one  # noqa: E402
from harness import (  # noqa: E402
    Sampler,
    create_tables,
    main,
    pool_stats,
    scenario,
    server_connections,
    settled_connections,
)


@scenario
def herd(args):
    """Many greenlets at once, each holding a connection for a while."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    @close_connection
    def request():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_sleep(%s)", [args["hold"]])
            return cursor.fetchone()[0]

    sampler = Sampler(args["app"])
    greenlets = [green.spawn(request) for _ in range(args["greenlets"])]
    green.joinall(greenlets)
    sampled = sampler.stop()
    return {
        "sampled_peak": sampled["peak"],
        "samples": sampled["samples"],
        "backend_pids": len({green.result(g) for g in greenlets}),
        "after": settled_connections(args["app"]),
        "stats": pool_stats(),
    }


@scenario
def idle_sweep(args):
    """Connections left idle are closed after MAX_IDLE_TIME with no traffic at all."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    @close_connection
    def request():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.05)")

    green.joinall([green.spawn(request) for _ in range(args["greenlets"])])
    opened = server_connections(args["app"])
    # No checkout, no return from here on: only the background sweep can close them.
    green.sleep(args["quiet"])
    report = {"opened": opened, "after": settled_connections(args["app"]), "stats": pool_stats()}
    if cell.RUNTIME == "gevent":
        import gevent

        # The sweep's timer doesn't count as work: a process whose greenlets are done
        # still sees its loop finish (gevent.wait() returns True), pool or not.
        report["loop_finished"] = gevent.wait(timeout=5)
    return report


@scenario
def fifo(args):
    """Waiters queued one after another get the single connection in arrival order."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    served = []
    release = threading.Event()

    @close_connection
    def holder():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        release.wait()

    @close_connection
    def waiter(i):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            served.append(i)
        green.sleep(0.005)

    first = green.spawn(holder)
    green.sleep(0.05)
    waiters = []
    for i in range(args["waiters"]):
        waiters.append(green.spawn(waiter, i))
        green.sleep(0.002)
    waiting = pool_stats()["waiting"]
    release.set()
    green.joinall([first, *waiters])
    return {"served": served, "waiting_before_release": waiting, "stats": pool_stats()}


@scenario
def killed(args):
    """Connections killed on the server free their slots for the clients queued behind."""
    from django.db import OperationalError, connection

    from django_db_geventpool.utils import close_connection

    holders_ready = threading.Event()
    go_on = threading.Event()
    pids = []
    outcomes = {}

    @close_connection
    def holder(i):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
            if len(pids) == args["max_conns"]:
                holders_ready.set()
            go_on.wait()
            try:
                cursor.execute("SELECT 1")
                outcomes[f"holder{i}"] = "ok"
            except OperationalError:
                outcomes[f"holder{i}"] = "lost"

    @close_connection
    def waiter(i):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            outcomes[f"waiter{i}"] = cursor.fetchone()[0]

    holders = [green.spawn(holder, i) for i in range(args["max_conns"])]
    holders_ready.wait(timeout=10)
    waiters = [green.spawn(waiter, i) for i in range(args["waiters"])]
    green.sleep(0.05)
    waiting = pool_stats()["waiting"]
    admin = observer()
    try:
        for pid in pids:
            query_one(admin, "SELECT pg_terminate_backend(%s)", [pid])
    finally:
        admin.close()
    go_on.set()
    green.joinall([*holders, *waiters], timeout=20)
    return {
        "killed_pids": pids,
        "waiting_before_kill": waiting,
        "outcomes": outcomes,
        "after": settled_connections(args["app"]),
        "stats": pool_stats(),
    }


@scenario
def returned_in_transaction(args):
    """A connection given back inside a transaction, or a failed one, comes back clean."""
    from django.db import DatabaseError, connection, transaction

    from django_db_geventpool.utils import close_connection
    from testapp.models import Event

    create_tables()
    report = {}

    @close_connection
    def abandon_open_transaction():
        transaction.set_autocommit(False)
        Event.objects.create(name="uncommitted", happened_at=now())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    @close_connection
    def abandon_failed_transaction():
        transaction.set_autocommit(False)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
            with contextlib.suppress(DatabaseError):
                cursor.execute("SELECT * FROM no_such_table")
        return pid

    @close_connection
    def next_user():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        return {
            "pid": pid,
            "autocommit": connection.get_autocommit(),
            "status": int(connection.connection.info.transaction_status),
            "rows": Event.objects.filter(name="uncommitted").count(),
        }

    report["open_pid"] = green.result(green.spawn(abandon_open_transaction))
    report["after_open"] = green.result(green.spawn(next_user))
    report["failed_pid"] = green.result(green.spawn(abandon_failed_transaction))
    report["after_failed"] = green.result(green.spawn(next_user))
    report["stats"] = pool_stats()
    return report


@scenario
def orm(args):
    """ORM round trips with JSON and time zone aware values, from many greenlets."""
    import datetime
    import zoneinfo

    from django_db_geventpool.utils import close_connection
    from testapp.models import Event

    create_tables()
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    base = datetime.datetime(2026, 3, 29, 1, 30, tzinfo=datetime.timezone.utc)

    @close_connection
    def round_trip(i):
        when = base + datetime.timedelta(minutes=17 * i)
        payload = {"i": i, "tags": ["a", "b"], "nested": {"ok": True, "x": [i, None]}}
        created = Event.objects.create(
            name=f"e{i}", payload=payload, happened_at=when.astimezone(paris)
        )
        loaded = Event.objects.get(pk=created.pk)
        found = Event.objects.filter(payload__nested__ok=True, payload__i=i).count()
        return {
            "payload_ok": loaded.payload == payload,
            "when_ok": loaded.happened_at == when,
            "aware": loaded.happened_at.tzinfo is not None,
            "found": found,
        }

    greenlets = [green.spawn(round_trip, i) for i in range(args["greenlets"])]
    green.joinall(greenlets)
    return {
        "results": [green.result(g) for g in greenlets],
        "total": Event.objects.count(),
        "stats": pool_stats(),
    }


@scenario
def abandoned_waiters(args):
    """Waiters killed or timed out, before or after being served, leave the pool whole."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    with close_connection():
        connection.ensure_connection()
    pool = connection.geventpool
    conn = pool.getconn()

    def wait_for_it():
        pool.putconn(pool.getconn(timeout=10))

    report = {}
    # Killed while queued.
    killed = green.spawn(wait_for_it)
    green.sleep(0.01)
    report["queued_before_kill"] = pool.stats()["waiting"]
    green.kill(killed)
    report["queued_after_kill"] = pool.stats()["waiting"]
    # Timed out by the runtime's Timeout while queued.
    try:
        with green.Timeout(0.05):
            pool.getconn(timeout=10)
    except green.Timeout:
        report["runtime_timeout"] = True
    report["queued_after_timeout"] = pool.stats()["waiting"]
    # Served, then killed before it could run: the connection it was handed goes back.
    served_then_killed = green.spawn(wait_for_it)
    green.sleep(0.01)
    pool.putconn(conn)
    green.kill(served_then_killed)
    report["after_served_kill"] = pool.stats()
    # And the pool still works.
    with pool.connection() as again:
        report["works"] = query_one(again, "SELECT 1") == 1
    report["stats"] = pool.stats()
    return report


@scenario
def session_setup(args):
    """Django's connection setup (time zone, role, isolation level) on new and reused ones."""
    from django.db import connection, transaction

    from django_db_geventpool.utils import close_connection

    @close_connection
    def settings_seen():
        # The isolation level applies to transactions, not to autocommit statements.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_backend_pid(), current_setting('TimeZone'), current_user,"
                " current_setting('transaction_isolation')"
            )
            pid, tz, user, isolation = cursor.fetchone()
        return {"pid": pid, "tz": tz, "user": user, "isolation": isolation}

    first = green.result(green.spawn(settings_seen))
    second = green.result(green.spawn(settings_seen))
    return {"first": first, "second": second, "stats": pool_stats()}


@scenario
def close_connection_forms(args):
    """The decorator and the context manager both give connections back, errors or not."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    def query():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 41 + 1")
            return cursor.fetchone()[0]

    @close_connection
    def decorated():
        return query()

    @close_connection
    def failing():
        query()
        raise LookupError("raised inside")

    report = {"returned": green.result(green.spawn(decorated))}
    report["in_use_after_decorator"] = pool_stats()["in_use"]

    def call_failing():
        try:
            failing()
        except LookupError as ex:
            return str(ex)

    report["raised"] = green.result(green.spawn(call_failing))
    report["in_use_after_error"] = pool_stats()["in_use"]

    def in_block():
        with close_connection():
            value = query()
            in_use = pool_stats()["in_use"]
        return value, in_use

    report["block"] = green.result(green.spawn(in_block))
    report["in_use_after_block"] = pool_stats()["in_use"]
    report["checkouts"] = pool_stats()["checkouts"]
    return report


def now():
    from django.utils import timezone

    return timezone.now()


if __name__ == "__main__":
    main()
