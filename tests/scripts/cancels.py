"""Scenarios about cancel requests: a client cut while the network is partitioned, and
failures that are no cut, for tests/green/test_cancels.py and tests/psycopg2.

python cancels.py SCENARIO '{"json": "arguments"}' prints one JSON line. The proxy of
tests/support/proxy.py holds every byte, and every new connection, cancel requests included:
the pool's cancel request never gets an answer, and must not stop the process meanwhile.
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

green = cell.patch()

import logging  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from cuts import Proxy, cut, lend_all_at_once, settle  # noqa: E402
from harness import backend_pid, main, pool_stats, scenario, server_connections  # noqa: E402


class Ticker:
    """A task that sleeps 10 ms at a time and remembers the longest gap between two ticks."""

    def __init__(self):
        self.longest = 0.0
        self.ticks = 0
        self._stopping = False
        self._task = green.spawn(self._run)

    def _run(self):
        last = time.monotonic()
        while not self._stopping:
            green.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            self.ticks += 1
            last = now

    def stop(self):
        self._stopping = True
        green.result(self._task)
        return {"longest_gap": self.longest, "ticks": self.ticks}


@scenario
def cut_partitioned(args):
    """Cut a client in a round trip while the network, new connections included, is frozen.

    point: "query" (the client's own query), "ping" (checking an idle connection), "rollback"
    (a connection given back in a transaction), "reset" (the reset query on the way back).
    The proxy thaws by itself after `partition` seconds.
    """
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    proxy = Proxy(args["control"])
    point = args["point"]
    partition = args["partition"]
    cut_after = args["cut_after"]

    # One connection open and idle, to be pinged, or taken and given back.
    green.result(green.spawn(close_connection(backend_pid)))
    ticker = Ticker()

    if point == "ping":
        proxy.send(f"freeze-all {partition}")
        task = cut(close_connection(backend_pid), cut_after)
    elif point == "query":

        @close_connection
        def query():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                proxy.send(f"freeze-all {partition}")
                cursor.execute("SELECT pg_sleep(60)")

        task = cut(query, cut_after)
    else:

        def give_back_frozen():
            with connection.cursor() as cursor:
                if point == "rollback":
                    connection.set_autocommit(False)
                cursor.execute("SELECT 1")
            proxy.send(f"freeze-all {partition}")
            # Django closes the connection at the end of a request: that gives it back.
            connection.close()

        task = cut(give_back_frozen, cut_after)
    started = time.monotonic()
    # An OS thread blocked in libpq hears the cut only once the network thaws.
    green.wait([task], partition + 10)
    report = {"outcome": green.result(task), "cut_took": time.monotonic() - started - cut_after}
    # The slot must come back before the network does.
    report["stats"] = settle(args["app"], within=args["settle_within"])
    report["settled_after"] = time.monotonic() - started
    report["thawed"] = report["settled_after"] >= partition
    report["ticker"] = ticker.stop()
    proxy.send("thaw")
    report["lent_at_once"] = lend_all_at_once(args["options"]["MAX_CONNS"])
    report["final"] = settle(args["app"])
    report["server_sessions"] = server_connections(args["app"])
    report["stats_final"] = pool_stats()
    proxy.close()
    return report


@scenario
def failed_psycopg2_connects(args):
    """Connect to a closed port `connects` times through psycopg2's wait callback."""
    import psycopg2
    from django_db_geventpool.backends.postgresql_psycopg2 import wait_callback
    from django_db_geventpool.utils import close_connection

    # Every record of the pool's logger, debug included, is kept.
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("django_db_geventpool")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    cancels = [0]
    cancelled = wait_callback._cancelled

    def counted(*args_):
        cancels[0] += 1
        return cancelled(*args_)

    wait_callback._cancelled = counted
    # A port nobody listens on.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    failed = 0
    for _ in range(args["connects"]):
        try:
            psycopg2.connect(host="127.0.0.1", port=port, dbname="postgres", connect_timeout=5)
        except psycopg2.OperationalError:
            failed += 1
    return {
        "failed": failed,
        # Through the pool (which reports the cell it ran in), the server still answers.
        "pid": close_connection(backend_pid)(),
        "cancel_attempts": cancels[0],
        "messages": [r.getMessage() for r in records if "cancel" in r.getMessage()],
    }


if __name__ == "__main__":
    main()
