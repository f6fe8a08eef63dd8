"""Plain OS threads, nothing monkey-patched (runserver, a management command's thread pool).

Same protocol as green.py: python threads.py SCENARIO '{"json": "arguments"}'.
"""

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Imported but not patched, as in a process that only uses gevent elsewhere: the pool must
# still wait with real thread primitives.
import gevent  # noqa: F401


def setup_django(args):
    import django
    from django.conf import settings

    from support.databases import database_from_env

    settings.configure(
        DATABASES={
            "default": database_from_env(
                "django_db_geventpool.backends.postgresql_psycopg3",
                OPTIONS={"application_name": args["app"], **args["options"]},
            )
        },
        USE_TZ=True,
    )
    django.setup()


def thread_pool(args):
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


def main():
    args = json.loads(sys.argv[2])
    setup_django(args)
    started = time.monotonic()
    result = {"thread_pool": thread_pool}[sys.argv[1]](args)
    result["elapsed"] = time.monotonic() - started
    print(json.dumps(result))


if __name__ == "__main__":
    main()
