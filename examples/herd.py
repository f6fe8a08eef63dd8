"""Show MAX_CONNS holding under a herd of greenlets, next to Django without a pool.

Starts a throwaway PostgreSQL (or uses GEVENTPOOL_TEST_DSN / PG* if set), sends the same herd
of greenlets through two database aliases, one on geventpool and one on Django's own backend,
and prints the peak number of server connections each one opened.

    python3 -m nox -s example
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.postgres import open_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--greenlets", type=int, default=200)
    parser.add_argument("--max-conns", type=int, default=20)
    parser.add_argument("--hold", type=float, default=0.05, help="seconds each query holds")
    args = parser.parse_args()

    print("starting PostgreSQL ...", flush=True)
    server = open_server()
    try:
        run(server, args)
    finally:
        server.close()


def run(server, args) -> None:
    import django
    from django.conf import settings

    database = server.django_settings()
    settings.configure(
        DATABASES={
            "default": {
                **database,
                "ENGINE": "django_db_geventpool.backends.postgresql_psycopg3",
                "CONN_MAX_AGE": 0,
                "OPTIONS": {"MAX_CONNS": args.max_conns, "application_name": "default"},
            },
            "django": {
                **database,
                "ENGINE": "django.db.backends.postgresql",
                "CONN_MAX_AGE": 0,
                "OPTIONS": {"application_name": "django"},
            },
        },
        USE_TZ=True,
    )
    django.setup()
    print(f"{args.greenlets} greenlets, each running `SELECT pg_sleep({args.hold})`")
    print(f"{'setup':<28} {'peak server connections':>24} {'seconds':>8}")
    for alias, label in (
        ("default", f"geventpool, MAX_CONNS={args.max_conns}"),
        ("django", "Django, no pool"),
    ):
        peak, elapsed = herd(server, alias, args)
        print(f"{label:<28} {peak:>24} {elapsed:>8.2f}", flush=True)


def herd(server, alias: str, args) -> tuple[int, float]:
    import psycopg
    from django.db import connections

    from django_db_geventpool.utils import close_connection

    @close_connection
    def request() -> None:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", [args.hold])

    peak = 0
    done = False

    def sample() -> None:
        nonlocal peak
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            while not done:
                count = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [alias]
                ).fetchone()[0]
                peak = max(peak, count)
                gevent.sleep(0.003)

    sampler = gevent.spawn(sample)
    started = time.monotonic()
    gevent.joinall([gevent.spawn(request) for _ in range(args.greenlets)], raise_error=True)
    elapsed = time.monotonic() - started
    done = True
    sampler.join()
    return peak, elapsed


if __name__ == "__main__":
    main()
