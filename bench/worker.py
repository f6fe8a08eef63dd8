"""Measure one setup on one workload, in a process of its own; print the result as JSON.

    python -m bench.worker SETUP WORKLOAD [--cycles N] [--greenlets G] [--conns C] ...

It is started by bench/bench.py from the repository root, once per (setup, workload, round),
so that no setup inherits another's imports or pool. The server (or the PgBouncer in front
of it) comes from the libpq PG* variables. This module must also run in the virtualenv of
django-db-geventpool 4.0.8, which shares our import name: of this repository it imports
only bench's plain-Python modules and, from bench.setups, tests/support/databases.py,
nothing of packages/.
"""

from gevent import monkey

# Before anything imports psycopg: its first import decides how it waits on sockets.
monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from bench.cpu import CpuMeter, spent  # noqa: E402
from bench.setups import SETUPS, Target  # noqa: E402
from bench.workloads import CHECKOUT, WORKLOADS, Workload  # noqa: E402

# A checkout repeat runs --cycles times or for about this long, whichever is shorter:
# django-db-geventpool 4.0.8 sends a query on every checkout, a hundred times the cost.
CHECKOUT_REPEAT_SECONDS = 0.25
#: What a checkout is taken from: through Django, or from the pool object alone.
CHECKOUT_KINDS = ("django", "pool")


def run_cycles(
    setup: Target, workload: Workload, counts: list[int], greenlets: int, meter: CpuMeter
) -> list[dict[str, Any]]:
    """Run one pass of request cycles per count, spread over the same greenlets each time.

    The greenlets live across passes, so that a setup keeping a connection per greenlet
    (the Django ceiling, PgBouncer with persistent connections) opens its connections in
    the first pass only. Return each pass's seconds and the CPU seconds spent in it.
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
                    setup.cycle(workload)
            except BaseException as exc:
                failures.append(exc)
            pending -= 1
            if not pending:
                done.set()

    clients = [gevent.spawn(client) for _ in range(greenlets)]
    passes = []
    for count, start, done in zip(counts, starts, finished, strict=True):
        left, pending = count, greenlets
        # Nothing else runs while the meter reads: every greenlet waits for `start`.
        before = meter.begin()
        started = time.perf_counter()
        start.set()
        done.wait()
        seconds = time.perf_counter() - started
        passes.append({"seconds": seconds, "cpu_seconds": spent(before, meter.end())})
        if failures:
            gevent.killall(clients)
            raise failures[0]
    gevent.joinall(clients)
    return passes


def measure_checkouts(
    setup: Target, iterations: int, repeat: int, kinds: list[str], exact: bool = False
) -> dict[str, Any]:
    """The fastest of `!repeat` runs of each kind of checkout, in µs; one greenlet.

    A run with no I/O can only be slowed down by what else the machine does: its fastest
    repeat is the closest to its cost, on the clock and on the CPU alike. `!exact` runs
    exactly `!iterations` per repeat, however long they take (for counting instructions).
    """
    # Opens the pool and its first connection, which every checkout below reuses.
    setup.cycle(WORKLOADS["select1"])
    result: dict[str, Any] = {}
    measures = {"django": setup.checkout_django, "pool": setup.checkout_pool}
    for kind in kinds:
        measure = measures[kind]
        if exact:
            count = iterations
        else:
            probe = measure(100)
            if probe is None:
                continue
            count = max(100, min(iterations, int(CHECKOUT_REPEAT_SECONDS / max(probe[0], 1e-9))))
        runs = [timing for timing in (measure(count) for _ in range(repeat)) if timing]
        if not runs:
            continue
        result[f"{kind}_us"] = min(wall for wall, _ in runs) * 1e6
        result[f"{kind}_cpu_us"] = min(cpu for _, cpu in runs) * 1e6
        result[f"{kind}_iterations"] = count
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setup", choices=sorted(SETUPS))
    parser.add_argument("workload", choices=[*WORKLOADS, CHECKOUT])
    parser.add_argument("--cycles", type=int, default=10_000, help="or checkouts per repeat")
    parser.add_argument("--greenlets", type=int, default=100)
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7, help="checkout repeats; the fastest")
    parser.add_argument("--app-name", default="geventpool-bench")
    parser.add_argument("--postmaster", type=int, help="the server's pid, for its CPU time")
    parser.add_argument("--pgbouncer", type=int, help="PgBouncer's pid, for its CPU time")
    parser.add_argument(
        "--leave-out", type=int, action="append", default=[], help="a server pid not to count"
    )
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of the run")
    parser.add_argument(
        "--kind",
        action="append",
        choices=CHECKOUT_KINDS,
        help="checkouts: only this kind (repeatable); both by default",
    )
    parser.add_argument(
        "--exact", action="store_true", help="checkouts: exactly --cycles per repeat"
    )
    args = parser.parse_args()

    setup = SETUPS[args.setup](conns=args.conns, app_name=args.app_name)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    result: dict[str, Any]
    if args.workload == CHECKOUT:
        if profiler:
            profiler.enable()
        kinds = args.kind or list(CHECKOUT_KINDS)
        result = measure_checkouts(setup, args.cycles, args.repeat, kinds, args.exact)
    else:
        greenlets = setup.greenlets(args.greenlets, args.conns)
        meter = CpuMeter(args.postmaster, args.pgbouncer, frozenset(args.leave_out))
        # A warm-up pass opens the connections, so that the measured pass uses a full pool.
        counts = [max(args.cycles // 10, greenlets), args.cycles]
        workload = WORKLOADS[args.workload]
        if profiler:
            profiler.enable()
        measured = run_cycles(setup, workload, counts, greenlets, meter)[-1]
        result = {
            "greenlets": greenlets,
            "warmup_requests": counts[0],
            "requests": args.cycles,
            "requests_per_second": args.cycles / measured["seconds"],
            **measured,
        }
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    setup.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
