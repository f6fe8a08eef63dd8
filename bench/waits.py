"""Measure psycopg 3 waiting for the server under one runtime; print the result as JSON.

    python bench/waits.py RUNTIME WAIT [--queries N] [--conns C]

RUNTIME is ``gevent`` or ``eventlet``. WAIT is ``ours`` (the backend's wait function for
that runtime) or ``psycopg``: what psycopg uses without the backend, its poll-based
function under gevent and, under eventlet (which psycopg doesn't recognise, so it would
pick its blocking C function), ``wait_select`` chosen with PSYCOPG_WAIT_FUNC. C connections
run N ``SELECT 1`` in all, side by side, without Django: what differs is only the wait.
The server comes from the libpq PG* variables.
"""

import os
import sys
import warnings

RUNTIME, WAIT = sys.argv[1:3]
# psycopg reads PSYCOPG_WAIT_FUNC when first imported.
os.environ.pop("PSYCOPG_WAIT_FUNC", None)
if RUNTIME == "eventlet" and WAIT == "psycopg":
    os.environ["PSYCOPG_WAIT_FUNC"] = "wait_select"

if RUNTIME == "gevent":
    from gevent import monkey

    monkey.patch_all()
else:
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
    import eventlet

    eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import psycopg  # noqa: E402
from psycopg import waiting  # noqa: E402


def install_ours() -> None:
    if RUNTIME == "gevent":
        from django_db_geventpool.backends.postgresql_psycopg3.waits_gevent import install
    else:
        from django_db_geventpool.backends.postgresql_psycopg3.waits_eventlet import install
    if not install():
        raise SystemExit(f"the {RUNTIME} wait function was not installed")


def run(conns: list[psycopg.Connection], per_connection: int) -> None:
    def work(conn: psycopg.Connection) -> None:
        for _ in range(per_connection):
            conn.execute("SELECT 1")

    if RUNTIME == "gevent":
        import gevent

        gevent.joinall([gevent.spawn(work, conn) for conn in conns], raise_error=True)
    else:
        import eventlet

        pool = eventlet.GreenPool(len(conns))
        for result in pool.imap(work, conns):
            assert result is None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runtime", choices=["gevent", "eventlet"])
    parser.add_argument("wait", choices=["psycopg", "ours"])
    parser.add_argument("--queries", type=int, default=30_000)
    parser.add_argument("--conns", type=int, default=10)
    args = parser.parse_args()
    if args.wait == "ours":
        install_ours()
    if waiting.wait is getattr(waiting, "wait_c", None):
        raise SystemExit("psycopg waits with its blocking C function: nothing to measure")

    conns = [
        psycopg.connect(autocommit=True, application_name="geventpool-bench-waits")
        for _ in range(args.conns)
    ]
    try:
        per_connection = max(args.queries // args.conns, 1)
        run(conns, max(per_connection // 10, 1))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        run(conns, per_connection)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        for conn in conns:
            conn.close()
    queries = per_connection * args.conns
    print(
        json.dumps(
            {
                "wait": getattr(waiting.wait, "__name__", repr(waiting.wait)),
                "queries_per_second": queries / wall,
                "cpu_us": cpu / queries * 1e6,
            }
        )
    )


if __name__ == "__main__":
    main()
