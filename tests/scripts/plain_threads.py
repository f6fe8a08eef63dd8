"""Plain OS threads, nothing monkey-patched (runserver, a management command's thread pool).

For tests/psycopg3/test_faults.py, beside faults.py, which patches with gevent: python
plain_threads.py SCENARIO '{"json": "arguments"}' prints one JSON line (harness.py).
"""

import threading
from concurrent.futures import ThreadPoolExecutor

# Imported but not patched, as in a process that only uses gevent elsewhere: the pool must
# still wait with real thread primitives.
import gevent  # noqa: F401

import cell
from harness import main, scenario, setup_django


def setup_on_psycopg3(args):
    """Django on the psycopg 3 ENGINE, whatever the cell's driver."""
    setup_django({**args, "engine": cell.ENGINES["psycopg3"]})


@scenario
def thread_pool(args):
    """Requests from a pool of OS threads share the connections and wait their turn."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    lock = threading.Lock()
    in_use = peak = 0

    @close_connection
    def request(_):
        nonlocal in_use, peak
        with connection.cursor() as cursor:
            with lock:
                in_use += 1
                peak = max(peak, in_use)
            cursor.execute("SELECT pg_backend_pid(), pg_sleep(0.01)")
            pid = cursor.fetchone()[0]
            with lock:
                in_use -= 1
        return pid

    with ThreadPoolExecutor(max_workers=args["threads"]) as executor:
        pids = list(executor.map(request, range(args["requests"])))
    return {
        "runtime": connection.geventpool.runtime.name,
        "peak_in_use": peak,
        "backend_pids": len(set(pids)),
        "stats": connection.geventpool.stats(),
    }


if __name__ == "__main__":
    main(setup_on_psycopg3)
