"""Scenarios for tests/green/test_cuts.py: the pool when its clients are cut at any moment.

python cuts.py SCENARIO '{"json": "arguments"}' prints one JSON line. Tasks are cut with the
cell's Timeout and kill; the network under the pool is frozen through the proxy in
tests/support/proxy.py, steered over its control port.
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

green = cell.patch()

import random  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

from cell import observer, query_one  # noqa: E402
from harness import (  # noqa: E402
    Sampler,
    backend_pid,
    main,
    pool_stats,
    scenario,
    server_connections,
    timed_checkout,
)


class Proxy:
    """The control port of the freezable proxy the pool connects through."""

    def __init__(self, port):
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._stream = self._sock.makefile("rw")

    def send(self, command):
        self._stream.write(command + "\n")
        self._stream.flush()
        answer = self._stream.readline().strip()
        if not answer or answer.startswith("unknown"):
            raise RuntimeError(f"proxy: {command!r} -> {answer!r}")
        return answer

    def close(self):
        self._stream.close()
        self._sock.close()


def run(conn, sql):
    """Run `sql`, which returns no rows, on a driver connection in autocommit."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


def settle(app, within=10.0):
    """Wait until nothing is lent, opened or closed, and the server agrees; return stats."""
    deadline = time.monotonic() + within
    while True:
        stats = pool_stats()
        busy = stats["in_use"] + stats["opening"] + stats["closing"] + stats["waiting"]
        quiet = not busy
        if quiet and server_connections(app) == stats["open"]:
            return stats
        if time.monotonic() >= deadline:
            return stats
        green.sleep(0.01)


def lend_all_at_once(max_conns, within=5.0):
    """Take `max_conns` connections at the same time, in as many tasks; return their pids."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    holding = []
    release = [False]

    @close_connection
    def hold():
        pid = backend_pid()
        holding.append(pid)
        while not release[0]:
            green.sleep(0.01)
        # Still the same session: nothing took it away meanwhile.
        assert connection.connection is not None
        return pid

    tasks = [green.spawn(hold) for _ in range(max_conns)]
    deadline = time.monotonic() + within
    while len(holding) < max_conns and time.monotonic() < deadline:
        green.sleep(0.01)
    together = len(holding)
    release[0] = True
    green.joinall(tasks, timeout=within)
    return together


def cut(func, seconds):
    """Run `func` in a task of its own under a Timeout of `seconds`; return what happened."""

    def run():
        timeout = green.Timeout(seconds)
        try:
            with timeout:
                func()
        except BaseException as ex:
            if ex is timeout or isinstance(ex, getattr(timeout, "raised", ())):
                return "cut"
            raise
        return "finished"

    return green.spawn(run)


@scenario
def cut_round_trip(args):
    """Cut a client while the pool waits for the server on its behalf, the network frozen.

    point: "connect" (opening a connection), "ping" (checking an idle one), "rollback"
    (a connection given back in a transaction), "reset" (the reset query on the way back).
    """
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    proxy = Proxy(args["control"])
    point = args["point"]
    max_conns = args["options"]["MAX_CONNS"]

    if point != "connect":
        # One connection open and idle, to be pinged, or taken and given back.
        green.result(green.spawn(close_connection(backend_pid)))

    if point in ("connect", "ping"):
        proxy.send("freeze")
        task = cut(backend_pid, args["cut_after"])
    else:
        ready = [False]

        def give_back_frozen():
            # Django closes the connection at the end of a request: that gives it back.
            with connection.cursor() as cursor:
                if point == "rollback":
                    connection.set_autocommit(False)
                cursor.execute("SELECT 1")
            proxy.send("freeze")
            ready[0] = True
            connection.close()

        task = cut(give_back_frozen, args["cut_after"])
    if not green.wait([task], args.get("thaw_after", 1.0)):
        # An OS thread blocked in a C call hears the cut only once the call returns.
        proxy.send("thaw")
        green.wait([task], 10)
    cut_at = time.monotonic()
    outcome = green.result(task)
    stats = pool_stats()
    report = {"outcome": outcome, "stats_after_cut": stats}
    # Still frozen for greenlets: the slot must come back without the network's help (for
    # a connect, once connecting gives up).
    report["stats"] = settle(args["app"], within=args.get("settle_within", 10.0))
    report["recovered_after"] = time.monotonic() - cut_at
    proxy.send("thaw")
    report["lent_at_once"] = lend_all_at_once(max_conns)
    report["final"] = settle(args["app"])
    report["server_sessions"] = server_connections(args["app"])
    proxy.close()
    return report


@scenario
def silent_server(args):
    """Connect to a host that accepts and never answers, from more clients than slots."""

    from django_db_geventpool.utils import close_connection

    client = close_connection(timed_checkout)

    tasks = [green.spawn(client) for _ in range(args["clients"])]
    green.joinall(tasks, timeout=120)
    clients = [green.result(task) for task in tasks]
    deadline = time.monotonic() + 30
    while pool_stats()["opening"] and time.monotonic() < deadline:
        green.sleep(0.05)
    return {"clients": clients, "stats": pool_stats()}


@scenario
def dead_borrowers(args):
    """Tasks that end holding connections, one of them in a transaction it wrote in."""
    from django.db import connection, connections

    setup = observer()
    run(setup, "DROP TABLE IF EXISTS reclaim_t; CREATE TABLE reclaim_t (v int)")

    def forgetful():
        backend_pid()

    def forgetful_in_transaction():
        connection.set_autocommit(False)
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO reclaim_t VALUES (1)")
        return backend_pid()

    ended = time.monotonic()
    green.joinall([green.spawn(forgetful), green.spawn(forgetful_in_transaction)])
    # The pool holds both connections for tasks that no longer exist...
    held = pool_stats()["in_use"]
    deadline = ended + 10
    while pool_stats()["reclaimed"] < 2 and time.monotonic() < deadline:
        green.sleep(0.01)
    reclaimed_after = time.monotonic() - ended
    report = {"held_after_end": held, "reclaimed_after": reclaimed_after}
    report["stats"] = settle(args["app"])
    report["lent_at_once"] = lend_all_at_once(args["options"]["MAX_CONNS"])
    report["rows"] = query_one(setup, "SELECT count(*) FROM reclaim_t")
    report["idle_in_transaction"] = query_one(
        setup,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = %s AND state LIKE 'idle in transaction%%'",
        [args["app"]],
    )

    # A wrapper shared with another task (inc_thread_sharing) outlives its borrower: the
    # connection stays with it.
    shared = {}

    def lend_shared():
        # The wrapper itself: `connection` stands for the current task's.
        wrapper = connections["default"]
        wrapper.inc_thread_sharing()
        shared["wrapper"] = wrapper
        shared["pid"] = backend_pid()

    green.result(green.spawn(lend_shared))
    green.sleep(1.5)
    wrapper = shared["wrapper"]
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        report["shared_kept"] = cursor.fetchone()[0] == shared["pid"]
    wrapper.close()
    wrapper.dec_thread_sharing()
    report["final"] = settle(args["app"])
    setup.close()
    return report


@scenario
def cut_holding_a_lock(args):
    """A request cut inside a transaction holding a row lock, in the middle of a query."""
    from django.db import connection, transaction

    from django_db_geventpool.utils import close_connection

    setup = observer()
    run(setup, "DROP TABLE IF EXISTS lock_t; CREATE TABLE lock_t (v int)")
    run(setup, "INSERT INTO lock_t VALUES (0)")
    pids = []

    @close_connection
    def long_update():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
            cursor.execute("UPDATE lock_t SET v = v + 1")
            cursor.execute("SELECT pg_sleep(5)")

    @close_connection
    def next_update():
        started = time.monotonic()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE lock_t SET v = v + 10")
        return time.monotonic() - started

    task = cut(long_update, 0.2)
    outcome = green.result(task)
    cut_at = time.monotonic()
    # The next request wants the same row at once.
    following = green.spawn(next_update)
    # How long the cut query's server session lives on.
    while query_one(setup, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pids):
        green.sleep(0.005)
    session_gone_after = time.monotonic() - cut_at
    waited = green.result(following)
    value = query_one(setup, "SELECT v FROM lock_t")
    setup.close()
    return {
        "outcome": outcome,
        "session_gone_after": session_gone_after,
        "next_waited": waited,
        "value": value,
        "stats": settle(args["app"]),
    }


@scenario
def soak(args):
    """Many tasks doing mixed work for a while, some of them cut or killed at random."""
    from django.db import connection, transaction

    from django_db_geventpool.utils import close_connection

    setup = observer()
    run(setup, "DROP TABLE IF EXISTS soak_t; CREATE TABLE soak_t (id int, v int)")
    run(setup, "INSERT INTO soak_t SELECT g, 0 FROM generate_series(1, 20) g")
    setup.close()
    rng = random.Random(args.get("seed", 0))
    threads = green.name == "threads"
    until = time.monotonic() + args["seconds"]
    counts = {"done": 0, "cut": 0, "failed": 0, "killed": 0, "terminated": 0}

    def select1(cursor):
        cursor.execute("SELECT 1")

    def short_sleep(cursor):
        cursor.execute("SELECT pg_sleep(%s)", [rng.choice([0.001, 0.005, 0.02])])

    def locking_transaction(cursor):
        with transaction.atomic():
            cursor.execute("UPDATE soak_t SET v = v + 1 WHERE id = %s", [rng.randint(1, 20)])
            cursor.execute("SELECT pg_sleep(0.005)")

    def left_open(cursor):
        # Like a view that opened a transaction by hand and returned.
        connection.set_autocommit(False)
        cursor.execute("UPDATE soak_t SET v = v + 1 WHERE id = %s", [rng.randint(1, 20)])

    work = [select1, short_sleep, locking_transaction, left_open]

    @close_connection
    def request():
        with connection.cursor() as cursor:
            rng.choice(work)(cursor)

    def long_request():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.2)")

    def forgetful():
        from django.db import Error

        try:
            with connection.cursor() as cursor:
                rng.choice(work)(cursor)
        except Error:
            # The server ended the session: caught here, or the runtime prints the task's
            # traceback. It still ends holding the connection.
            counts["failed"] += 1

    def client():
        from django.db import Error

        while time.monotonic() < until:
            roll = rng.random()
            try:
                if roll < 0.02:
                    # A task that ends without giving its connection back.
                    green.result(green.spawn(forgetful))
                elif threads and roll < 0.07:
                    # A thread hears a cut only once its query returns.
                    with green.Timeout(0.05):
                        close_connection(long_request)()
                elif not threads and roll < 0.17:
                    with green.Timeout(rng.uniform(0, 0.02)):
                        request()
                else:
                    request()
                counts["done"] += 1
            except Error:
                counts["failed"] += 1
            except BaseException as ex:
                if not isinstance(ex, green.Timeout):
                    raise
                counts["cut"] += 1

    def terminate_all():
        # The server ends every session of the pool at once, as a restart or an admin does:
        # connections die while lent, idle, or being given back.
        conn = observer()
        try:
            while time.monotonic() < until - 2:
                green.sleep(args.get("terminate_every", 4.0))
                query_one(
                    conn,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = %s",
                    [args["app"]],
                )
                counts["terminated"] += 1
        finally:
            conn.close()

    sampler = Sampler(args["app"], every=0.01)
    terminator = green.spawn(terminate_all)
    tasks = [green.spawn(client) for _ in range(args["tasks"])]
    if not threads:
        # Killed at random moments, as a worker's shutdown or a supervisor does.
        while time.monotonic() < until - 1:
            green.sleep(rng.uniform(0.05, 0.3))
            victim = rng.choice(tasks)
            green.kill(victim)
            counts["killed"] += 1
            tasks.remove(victim)
            tasks.append(green.spawn(client))
    green.joinall([*tasks, terminator], timeout=args["seconds"] + 60)
    sampled = sampler.stop()
    report = {"sampled": sampled, "counts": counts}
    report["stats"] = settle(args["app"])
    report["lent_at_once"] = lend_all_at_once(args["options"]["MAX_CONNS"])
    report["final"] = settle(args["app"])
    report["server_sessions"] = server_connections(args["app"])
    return report


if __name__ == "__main__":
    main()
