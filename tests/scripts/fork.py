"""Scenarios for tests/green/test_fork.py: forking while a pooled connection is in a query.

python fork.py SCENARIO '{"json": "arguments"}' prints one JSON line. A task runs a long
query on a pooled connection while the main task forks, in one of the ways an application
does: subprocess.run (which forks in Python under gevent), os.fork, and multiprocessing's
fork context. Every wait on the child is bounded, so a child stuck after the fork is
reported (and killed) instead of hanging the scenario.
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

green = cell.patch()

import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from cell import observer, query_one  # noqa: E402
from harness import backend_pid, main, pool_stats, scenario, server_connections  # noqa: E402

#: Seconds a fork, and whatever its child does, may take before it counts as stuck.
BOUND = 10.0
#: The status a child exits with once its own query worked.
CHILD_OK = 7


def busy_query(seconds):
    """Hold a pooled connection in `SELECT pg_sleep(seconds)`; return its server process."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_sleep(%s)", [seconds])
        return cursor.fetchone()[0]


def wait_until_active(app, within=5.0):
    """Wait until the server runs the busy query, so that the fork happens in the middle."""
    conn = observer()
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            active = query_one(
                conn,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
                " AND state = 'active' AND query LIKE '%%pg_sleep%%'",
                (app,),
            )
            if active:
                return True
            green.sleep(0.02)
        return False
    finally:
        conn.close()


#: The task in a query at the fork. The child has a copy of it (greenlets are copied with
#: the process; threads are not).
busy = None


def child_work():
    """In the child: a query of its own through the pool, and the pool as the child sees it.

    The child first kills its copy of the busy task, as a child winding down what it
    inherited would: cut in its wait for the server, it must neither cancel the parent's
    query nor take the driver's lock.
    """
    from django_db_geventpool.utils import close_connection

    if green.name != "threads":
        green.kill(busy)
    task = green.spawn(close_connection(backend_pid))
    pid = green.result(task)
    return {"pid": pid, "stats": pool_stats()}


def forking(func, *args, **kwargs):
    # Python 3.12 warns that a process with threads forks (the threads cell's busy task,
    # the runtime's thread pool), and eventlet that it may not work after a fork: forking
    # with a busy task is what is tried here.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r".*use of fork\(\) may lead to deadlocks", DeprecationWarning
        )
        warnings.filterwarnings("ignore", r"Using fork\(\) is a bad idea", DeprecationWarning)
        return func(*args, **kwargs)


def fork_with_subprocess():
    try:
        forking(subprocess.run, ["true"], check=True, timeout=BOUND)
    except subprocess.TimeoutExpired:
        return {"stuck": True}
    return {"stuck": False}


def fork_with_os_fork():
    read_end, write_end = os.pipe()
    child = forking(os.fork)
    if child == 0:
        status = 1
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(child_work()).encode())
            status = CHILD_OK
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + BOUND
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            break
        if time.monotonic() >= deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            os.close(read_end)
            return {"stuck": True}
        green.sleep(0.02)
    with os.fdopen(read_end) as pipe:
        written = pipe.read()
    return {
        "stuck": False,
        "status": os.waitstatus_to_exitcode(status),
        "child": json.loads(written) if written else None,
    }


def _multiprocessing_child(pipe):
    pipe.send(child_work())
    sys.exit(CHILD_OK)


def fork_with_multiprocessing():
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_multiprocessing_child, args=(writer,))
    forking(process.start)
    writer.close()
    deadline = time.monotonic() + BOUND
    while process.exitcode is None:
        if time.monotonic() >= deadline:
            process.kill()
            process.join()
            return {"stuck": True}
        green.sleep(0.02)
    return {
        "stuck": False,
        "status": process.exitcode,
        "child": reader.recv() if reader.poll() else None,
    }


FORKS = {
    "subprocess": fork_with_subprocess,
    "os_fork": fork_with_os_fork,
    "multiprocessing": fork_with_multiprocessing,
}


@scenario
def fork_during_query(args):
    """Fork (`args["way"]`) while another task is in a query on a pooled connection."""
    from django_db_geventpool.utils import close_connection

    global busy
    app = args["app"]
    busy = green.spawn(close_connection(busy_query), args["seconds"])
    in_query = wait_until_active(app)
    started = time.monotonic()
    report = FORKS[args["way"]]()
    report["fork_seconds"] = time.monotonic() - started
    report["in_query_at_fork"] = in_query
    report["busy_pid"] = green.result(busy)
    # Then the parent's pool goes on as before: a checkout, and the counts add up.
    report["pid_after"] = green.result(green.spawn(close_connection(backend_pid)))
    report["stats"] = pool_stats()
    report["server_sessions"] = server_connections(app)
    return report


if __name__ == "__main__":
    main()
