"""Fault scenarios for the pool in production: exhaustion, cut queries, fork, restarts.

For tests/psycopg3/test_faults.py: python faults.py SCENARIO '{"json": "arguments"}' prints
one JSON line (harness.py). The scenarios use gevent itself: they run in the default cell
only.
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

cell.patch()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from harness import (  # noqa: E402
    backend_pid,
    main,
    pool_stats,
    scenario,
    server_connections,
    timed_checkout,
)


@scenario
def exhaustion(args):
    """An exhausted pool makes the next client fail after CHECKOUT_TIMEOUT, not hang."""
    from django_db_geventpool.utils import close_connection

    release = gevent.event.Event()

    @close_connection
    def holder():
        backend_pid()
        release.wait()

    latecomer = close_connection(timed_checkout)

    held = gevent.spawn(holder)
    gevent.sleep(0.05)
    report = gevent.spawn(latecomer).get()
    release.set()
    held.get()
    report["after_release"] = gevent.spawn(close_connection(backend_pid)).get() is not None
    report["stats"] = pool_stats()
    return report


@scenario
def cut_mid_query(args):
    """A query cut by gevent.Timeout leaves its connection busy: it is closed, not reused."""
    from django_db_geventpool.utils import close_connection

    @close_connection
    def impatient():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
            try:
                with gevent.Timeout(0.1):
                    cursor.execute("SELECT pg_sleep(2)")
            except gevent.Timeout:
                return pid
        return None

    cut_pid = gevent.spawn(impatient).get()
    next_pid = gevent.spawn(close_connection(backend_pid)).get()
    return {"cut_pid": cut_pid, "next_pid": next_pid, "stats": pool_stats()}


@scenario
def fork(args):
    """A forked child starts with an empty pool and leaves the parent's sessions alone."""
    import json

    from django.db import connection

    from django_db_geventpool.utils import close_connection

    with close_connection():
        parent_pids = sorted(gevent.spawn(close_connection(backend_pid)).get() for _ in range(2))
        held_pid = backend_pid()  # this one stays checked out across the fork
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            report = {"stats_at_start": pool_stats() if connection.geventpool else None}
            child_pid = gevent.spawn(close_connection(backend_pid)).get()
            report["pid"] = child_pid
            report["stats"] = pool_stats()
            os.write(write_end, json.dumps(report).encode())
            os.close(write_end)
            sys.stdout.flush()
            os._exit(0)
        os.close(write_end)
        _, status = os.waitpid(child, 0)
        with os.fdopen(read_end) as pipe:
            child_report = json.loads(pipe.read())
        # The parent's connection checked out across the fork still works.
        still_held = backend_pid()
    after = sorted(gevent.spawn(close_connection(backend_pid)).get() for _ in range(2))
    return {
        "parent_pids": parent_pids,
        "held_pid": held_pid,
        "still_held": still_held,
        "parent_pids_after": after,
        "child": child_report,
        "child_status": status,
        "stats": pool_stats(),
    }


@scenario
def restart(args):
    """Load while the server restarts: print READY, keep going, report every outcome."""
    from django.db import DatabaseError, connection

    from django_db_geventpool.utils import close_connection
    from support.pools import settled

    outcomes = []
    stop_at = time.time() + args["seconds"]

    @close_connection
    def request():
        try:
            backend_pid()
        except DatabaseError as ex:
            # The first line: psycopg2's messages run on with libpq's details.
            outcomes.append((time.time(), type(ex).__name__, str(ex).strip().split("\n")[0]))
        else:
            outcomes.append((time.time(), "ok", ""))

    def client():
        while time.time() < stop_at:
            request()
            gevent.sleep(0.005)

    clients = [gevent.spawn(client) for _ in range(args["clients"])]
    gevent.sleep(args["warmup"])
    print("READY", flush=True)
    gevent.joinall(clients, raise_error=True)
    return {
        "outcomes": outcomes,
        "after": server_connections(args["app"]),
        # Connections found dead are closed in the background: counted once that is done.
        "stats": settled(connection.geventpool),
    }


def _memory(clients):
    """What the process holds with every client parked between requests: the pool's objects,
    the garbage collector's, and glibc's, read after handing freed memory back (Linux only).
    """
    import collections
    import ctypes
    import gc
    import types

    from django_db_geventpool.core import pool, pooled

    libc = ctypes.CDLL("libc.so.6")

    class Mallinfo2(ctypes.Structure):
        # glibc's struct mallinfo2 (2.33 or later), every field in its order.
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in [
                "arena",
                "ordblks",
                "smblks",
                "hblks",
                "hblkhd",
                "usmblks",
                "fsmblks",
                "uordblks",
                "fordblks",
                "keepcost",
            ]
        ]

    libc.mallinfo2.restype = Mallinfo2
    ours = {pooled.PooledConnection: "entries", pool._Waiter: "waiters", pool._Opening: "openings"}

    def measure():
        # Parked between requests, the clients hold no frame, no connection, no exception:
        # what is left is what the process keeps.
        clients.pause()
        gc.collect()
        counts = collections.Counter(
            dict.fromkeys([*ours.values(), "exceptions", "tracebacks", "frames"], 0)
        )
        objects = gc.get_objects()
        for obj in objects:
            kind = type(obj)
            if kind in ours:
                counts[ours[kind]] += 1
            elif isinstance(obj, BaseException):
                counts["exceptions"] += 1
            elif kind is types.TracebackType:
                counts["tracebacks"] += 1
            elif kind is types.FrameType:
                counts["frames"] += 1
        counts["gc_objects"] = len(objects)
        del objects
        info = libc.mallinfo2()
        counts["malloc_in_use_kb"] = (info.uordblks + info.hblkhd) // 1024
        counts["malloc_arena_kb"] = (info.arena + info.hblkhd) // 1024
        counts["python_blocks"] = sys.getallocatedblocks()
        counts["rss_kb"] = _rss_kb()
        libc.malloc_trim(0)
        counts["rss_trimmed_kb"] = _rss_kb()
        stats = pool_stats()
        counts.update({key: stats[key] for key in ("open", "idle", "waiting", "opening")})
        clients.resume()
        return dict(counts)

    return measure


def _rss_kb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class _Traffic:
    """Clients looping over one-query requests, errors counted by type and dropped."""

    def __init__(self, count):
        import collections

        from django.db import DatabaseError

        from django_db_geventpool.utils import close_connection

        self.outcomes = collections.Counter()
        self._go = gevent.event.Event()
        self._go.set()
        self._parked = 0
        self._stopping = False

        @close_connection
        def request():
            try:
                backend_pid()
            except DatabaseError as ex:
                self.outcomes[type(ex).__name__] += 1
            else:
                self.outcomes["ok"] += 1

        def client():
            while not self._stopping:
                if not self._go.is_set():
                    self._parked += 1
                    self._go.wait()
                    self._parked -= 1
                request()
                gevent.sleep(0.002)

        self._clients = [gevent.spawn(client) for _ in range(count)]

    def served(self, requests, within):
        """Wait until `requests` more succeed, at most `within` seconds."""
        target = self.outcomes["ok"] + requests
        deadline = time.monotonic() + within
        while self.outcomes["ok"] < target and time.monotonic() < deadline:
            gevent.sleep(0.01)
        return self.outcomes["ok"] >= target

    def pause(self):
        self._go.clear()
        while self._parked < len(self._clients):
            gevent.sleep(0.005)

    def resume(self):
        self._go.set()

    def stop(self):
        self._stopping = True
        self._go.set()
        gevent.joinall(self._clients, raise_error=True)


@scenario
def terminate_all_memory(args):
    """Every session of the pool terminated, again and again, under load: what memory stays.

    After `warmup` terminations, one measurement, then one after each of `faults` more
    terminations, each once the clients were served again and the pool settled.
    """
    from django.db import connection

    from support.pools import settled

    traffic = _Traffic(args["clients"])
    measure = _memory(traffic)
    observer = cell.observer()

    def terminate_all():
        killed = cell.query_one(
            observer,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            [args["app"]],
        )
        recovered = traffic.served(200, within=20)
        settled(connection.geventpool)
        return killed, recovered

    traffic.served(200, within=20)
    faults = [terminate_all() for _ in range(args["warmup"])]
    measure()  # Its first call creates what it measures with (ctypes' functions, the stats).
    series = [measure()]
    for _ in range(args["faults"]):
        faults.append(terminate_all())
        series.append(measure())
    traffic.stop()
    observer.close()
    return {
        "killed": [killed for killed, _ in faults],
        "recovered": [recovered for _, recovered in faults],
        "outcomes": dict(traffic.outcomes),
        "series": series,
        "stats": settled(connection.geventpool),
    }


@scenario
def reset_role(args):
    """With RESET_QUERY, a SET ROLE made by one request never reaches the next one."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    @close_connection
    def escalate():
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {connection.ops.quote_name(args['other_role'])}")
            cursor.execute("SELECT current_user")
            return cursor.fetchone()[0]

    @close_connection
    def next_request():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_setting('TimeZone'), pg_backend_pid()")
            return list(cursor.fetchone())

    first = gevent.spawn(next_request).get()
    escalated = gevent.spawn(escalate).get()
    second = gevent.spawn(next_request).get()
    return {"first": first, "escalated": escalated, "second": second, "stats": pool_stats()}


@scenario
def health_checks(args):
    """CONN_HEALTH_CHECKS: a reused connection killed while idle is replaced before use."""
    import psycopg

    from django_db_geventpool.utils import close_connection

    first = gevent.spawn(close_connection(backend_pid)).get()
    with psycopg.connect(autocommit=True, application_name="observer") as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [first])
    gevent.sleep(0.1)
    second = gevent.spawn(close_connection(backend_pid)).get()
    return {"first": first, "second": second, "stats": pool_stats()}


@scenario
def options_change(args):
    """Changing OPTIONS that Django applies itself (assume_role) gives a new pool."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    @close_connection
    def current_user():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            return cursor.fetchone()[0]

    before = gevent.spawn(current_user).get()
    first_pool = connection.geventpool
    connection.settings_dict["OPTIONS"]["assume_role"] = args["role"]
    after = gevent.spawn(current_user).get()
    return {
        "before": before,
        "after": after,
        "new_pool": connection.geventpool is not first_pool,
        "old_pool_closed": first_pool.closed,
    }


if __name__ == "__main__":
    main()
