"""Scenarios about how psycopg 3 waits for the server under the cell's runtime.

For tests/psycopg3/test_green_wait.py: python green_wait.py SCENARIO '{"json": "arguments"}'
prints one JSON line (harness.py).
"""

# First: the cell's runtime patches the process before anything imports psycopg.
import cell

green = cell.patch()

import time  # noqa: E402

from harness import main, pool_stats, scenario  # noqa: E402


def wait_function():
    from psycopg import waiting

    return f"{waiting.wait.__module__}.{waiting.wait.__name__}"


@scenario
def chosen(args):
    """Which wait function psycopg uses once the pool exists."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    before = wait_function()
    with close_connection(), connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"before": before, "after": wait_function()}


@scenario
def first_connection(args):
    """Whether the first connection is refused, and why."""
    from django.core.exceptions import ImproperlyConfigured
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    try:
        with close_connection():
            connection.ensure_connection()
    except ImproperlyConfigured as ex:
        return {"error": str(ex)}
    return {"error": None}


@scenario
def overlap(args):
    """Queries on several connections wait side by side, and the hub keeps running."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    ticks = 0
    stop = False

    def ticker():
        nonlocal ticks
        while not stop:
            time.sleep(0.01)
            ticks += 1

    @close_connection
    def request():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [args["sleep"]])

    ticking = green.spawn(ticker)
    started = time.monotonic()
    green.joinall([green.spawn(request) for _ in range(args["greenlets"])])
    elapsed = time.monotonic() - started
    stop = True
    green.joinall([ticking])
    return {"queries_elapsed": elapsed, "ticks": ticks, "wait": wait_function()}


@scenario
def large_transfers(args):
    """Sending and receiving more than the socket buffers hold: the write and read waits."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    size = args["size"]
    payload = "x" * size
    with close_connection(), connection.cursor() as cursor:
        # A parameter bigger than the send buffer: the query is sent in parts.
        cursor.execute("SELECT length(%s)", [payload])
        sent = cursor.fetchone()[0]
        cursor.execute("SELECT repeat('y', %s)", [size])
        received = len(cursor.fetchone()[0])
        cursor.execute("CREATE TEMPORARY TABLE blobs (body text)")
        with cursor.copy("COPY blobs FROM STDIN") as copy:
            for _ in range(4):
                copy.write_row([payload])
        with cursor.copy("COPY blobs TO STDOUT") as copy:
            copied_out = sum(len(row[0]) for row in copy.rows())
    return {
        "sent": sent,
        "received": received,
        "copied_out": copied_out,
        "stats": pool_stats(),
        "wait": wait_function(),
    }


@scenario
def notifies(args):
    """psycopg's own timeouts (Connection.notifies) hold with the pool's wait function."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    channel = f"geventpool_{args['app'].replace('-', '_')}"

    def notify_later():
        time.sleep(args["notify_after"])
        with close_connection(), connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {channel}, 'hello'")

    with close_connection(), connection.cursor() as cursor:
        cursor.execute(f"LISTEN {channel}")
        raw = connection.connection
        started = time.monotonic()
        nothing = list(raw.notifies(timeout=args["quiet_for"]))
        quiet = time.monotonic() - started

        sender = green.spawn(notify_later)
        started = time.monotonic()
        received = [n.payload for n in raw.notifies(timeout=10, stop_after=1)]
        awaited = time.monotonic() - started
        green.joinall([sender])
        cursor.execute(f"UNLISTEN {channel}")
    return {
        "nothing": nothing,
        "quiet": quiet,
        "received": received,
        "awaited": awaited,
        "wait": wait_function(),
    }


if __name__ == "__main__":
    main()
