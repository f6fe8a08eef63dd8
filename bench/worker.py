"""Measure one setup on one workload, in a process of its own; print the result as JSON.

    python -m bench.worker SETUP WORKLOAD [--cycles N] [--greenlets G] [--conns C]

It is started by bench/bench.py from the repository root, once per (setup, workload), so
that no setup inherits another's imports or pool. The server comes from the libpq PG*
variables. This module must also run in the virtualenv of django-db-geventpool 4.0.8,
which shares our import name: of this repository it imports only bench.setups and, from
there, tests/support/databases.py (plain Python), nothing of packages/.
"""

from gevent import monkey

# Before anything imports psycopg: its first import decides how it waits on sockets.
monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from bench.setups import SETUPS, Target  # noqa: E402

QUERIES = {"select1": "SELECT 1", "sleep1ms": "SELECT pg_sleep(0.001)"}
WORKLOADS = [*QUERIES, "checkout"]


def run_cycles(setup: Target, query: str, counts: list[int], greenlets: int) -> list[float]:
    """Run one pass of request cycles per count, spread over the same greenlets each time.

    The greenlets live across passes, so that a setup keeping a connection per greenlet
    (the Django ceiling) opens its connections in the first pass only. Return the seconds
    each pass took.
    """
    starts = [Event() for _ in counts]
    finished = [Event() for _ in counts]
    left = pending = 0
    failures: list[BaseException] = []

    def client() -> None:
        nonlocal left, pending
        for start, done in zip(starts, finished, strict=True):
            start.wait()
            try:
                # Counted before the cycle runs: the greenlets share the count exactly.
                while left > 0 and not failures:
                    left -= 1
                    setup.cycle(query)
            except BaseException as exc:
                failures.append(exc)
            pending -= 1
            if not pending:
                done.set()

    clients = [gevent.spawn(client) for _ in range(greenlets)]
    seconds = []
    for count, start, done in zip(counts, starts, finished, strict=True):
        left, pending = count, greenlets
        started = time.perf_counter()
        start.set()
        done.wait()
        seconds.append(time.perf_counter() - started)
        if failures:
            gevent.killall(clients)
            raise failures[0]
    gevent.joinall(clients)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setup", choices=sorted(SETUPS))
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--greenlets", type=int, default=100)
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="report the best of N runs")
    parser.add_argument("--app-name", default="geventpool-bench")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of the runs")
    args = parser.parse_args()

    setup = SETUPS[args.setup](conns=args.conns, app_name=args.app_name)
    greenlets = setup.greenlets(args.greenlets, args.conns)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    result: dict[str, object] = {"greenlets": greenlets}
    if args.workload == "checkout":
        if profiler:
            profiler.enable()
        runs = [setup.checkout(args.cycles) for _ in range(args.repeat)]
        measured = [seconds for seconds in runs if seconds is not None]
        result["checkout_us"] = min(measured) * 1e6 if measured else None
    else:
        # A warm-up pass opens the connections, so that every measured pass uses a full pool.
        warm_up = max(args.cycles // 10, greenlets)
        counts = [warm_up] + [args.cycles] * args.repeat
        if profiler:
            profiler.enable()
        seconds = min(run_cycles(setup, QUERIES[args.workload], counts, greenlets)[1:])
        result["requests_per_second"] = args.cycles / seconds
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    setup.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
