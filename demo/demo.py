"""The demo: a Django site under gunicorn's gevent workers, loaded over HTTP, on geventpool,
on Django's own backend, and on Django's own backend behind PgBouncer, with the server
connections each one opens.

    python3 -m nox -s demo                                # under a minute
    python3 -m nox -s demo -- --plot docs/connections.png # regenerate the README's plot

It starts a throwaway PostgreSQL (or uses GEVENTPOOL_TEST_DSN / PG*, as the tests do), and a
PgBouncer in transaction mode in front of it where pgbouncer is installed (the leg is skipped
where it is not); serves demo/demoproject with gunicorn, sends the same HTTP load to each
backend in turn while sampling pg_stat_activity, prints a report and writes a PNG of
connections over time. Everything it starts is stopped on the way out, Ctrl-C included. The
session runs it as ``python -m demo.demo`` from the repository root, where demo/ and
tests/support import as packages.
"""

from gevent import monkey

# The load generator and the sampler are greenlets: patch before psycopg is imported.
monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import psycopg  # noqa: E402

from bench.sampler import ConnectionSampler  # noqa: E402
from demo.load import LoadResult, run_load  # noqa: E402
from demo.plot import LineStyle, Series, plot_connections  # noqa: E402
from demo.webserver import Gunicorn  # noqa: E402

# The server and the PgBouncer in front of it are the tests' own.
from tests.support.pgbouncer import PgBouncer  # noqa: E402
from tests.support.server import PgServer, open_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Backend:
    name: str  # DEMO_BACKEND in demoproject/settings.py
    label: str
    color: str
    linestyle: LineStyle = "solid"


GEVENTPOOL = Backend("geventpool", "geventpool", "tab:blue")
DJANGO = Backend("django", "Django, CONN_MAX_AGE=0", "tab:orange")
# Dashed, with gaps as long as the dashes: its line runs over geventpool's at the same height,
# which shows through them.
PGBOUNCER = Backend("pgbouncer", "Django via PgBouncer", "tab:green", (0, (3, 3)))

# Debian installs pgbouncer in /usr/sbin, which is not on a user's PATH; this is where
# tests/support/pgbouncer.py looks too.
PGBOUNCER_FALLBACK = "/usr/sbin/pgbouncer"


@dataclass
class Outcome:
    backend: Backend
    load: LoadResult
    samples: list[tuple[float, int]]  # seconds since the load started, connections

    @property
    def peak(self) -> int:
        return max((count for _, count in self.samples), default=0)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per backend")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--max-conns", type=int, default=10, help="MAX_CONNS per worker")
    parser.add_argument("--query-ms", type=float, default=5.0, help="server time per request")
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="stop a run after this many"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=ROOT / "build" / "demo" / "connections.png",
        help="where to write the PNG",
    )
    parser.add_argument(
        "--no-pgbouncer",
        dest="pgbouncer",
        action="store_false",
        help="leave out the leg behind PgBouncer, even where pgbouncer is installed",
    )
    parser.add_argument("--quick", action="store_true", help="100 clients, 2 s per backend")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 100, 2.0
    return args


def find_pgbouncer() -> str | None:
    found = shutil.which("pgbouncer") or PGBOUNCER_FALLBACK
    return found if os.path.exists(found) else None


def pgbouncer_skipped(args: argparse.Namespace) -> str | None:
    """Why the PgBouncer leg does not run, or None when it does."""
    if not args.pgbouncer:
        return "--no-pgbouncer"
    if find_pgbouncer() is None:
        return (
            f"pgbouncer is not on PATH or at {PGBOUNCER_FALLBACK}"
            " (to add the leg: apt install pgbouncer)"
        )
    return None


def progress(
    label: str, args: argparse.Namespace, load: LoadResult, sampler: ConnectionSampler
) -> None:
    """Show requests/s and server connections once a second while the load runs."""
    tty = sys.stdout.isatty()
    done_before = 0
    while True:
        gevent.sleep(1.0)
        elapsed = time.monotonic() - load.started
        line = (
            f"  {label:<24} {min(elapsed, args.seconds):4.0f}/{args.seconds:.0f} s"
            f"  {load.requests - done_before:>6,} req/s  {load.errors:>5,} errors"
            f"  {sampler.latest:>4} server connections"
        )
        done_before = load.requests
        # On a terminal the line is redrawn in place; in a log, one line a second.
        print(f"\r{line}" if tty else line, end="" if tty else "\n", flush=True)


@contextmanager
def route(server: PgServer, backend: Backend, args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """The libpq variables that take the site to the database: to the server itself or, for
    the PgBouncer leg, to a PgBouncer started for the leg and stopped after it."""
    if backend is not PGBOUNCER:
        yield server.env()
        return
    bouncer = PgBouncer(
        server,
        # As many server connections as geventpool may open: MAX_CONNS in each worker process,
        # where one PgBouncer serves every worker.
        pool_size=args.max_conns * args.workers,
        # Every client may have a request in flight, each on a client connection of its own;
        # twice that leaves room for connections Django has closed that PgBouncer has yet to
        # see go. Past this, PgBouncer turns connections away, and the requests fail.
        max_client_conn=2 * args.clients,
    )
    try:
        open_pool(server, bouncer)
        yield {**server.env(), "PGHOST": bouncer.host, "PGPORT": str(bouncer.port)}
    finally:
        bouncer.stop()


def open_pool(server: PgServer, bouncer: PgBouncer, timeout: float = 30.0) -> None:
    """Have PgBouncer open its whole pool before the load, as one that has been running has.

    PgBouncer opens one server connection at a time, and only for a client that waits for
    one: left to the load, it takes seconds to reach its pool size, where geventpool opens
    its connections side by side. `pool_size` clients, each holding a transaction until all
    of them are in one, make it open them all.
    """
    inside = 0
    everyone_inside = gevent.event.Event()

    def hold() -> None:
        nonlocal inside
        with psycopg.connect(server.conninfo(), host=bouncer.host, port=bouncer.port) as conn:
            # Not in autocommit: the transaction keeps the server connection for this client.
            conn.execute("SELECT 1")
            inside += 1
            if inside == bouncer.pool_size:
                everyone_inside.set()
            everyone_inside.wait()

    holders = [gevent.spawn(hold) for _ in range(bouncer.pool_size)]
    try:
        done = gevent.joinall(holders, timeout=timeout, raise_error=True)
        if len(done) < len(holders):
            raise RuntimeError(
                f"PgBouncer did not open its {bouncer.pool_size} server connections"
                f" in {timeout:g} s"
            )
    finally:
        gevent.killall(holders)


def drive(
    server: PgServer, database: dict[str, str], backend: Backend, args: argparse.Namespace
) -> Outcome:
    env = {
        **database,
        "DEMO_BACKEND": backend.name,
        "DEMO_MAX_CONNS": str(args.max_conns),
        "DEMO_QUERY_SECONDS": str(args.query_ms / 1000),
    }
    site = Gunicorn(env, args.workers)
    try:
        site.wait_ready()
        # Each worker imports Django on its first request: keep that out of the figures.
        warm = LoadResult()
        run_load("127.0.0.1", site.port, args.workers * 4, 1.0, args.workers * 40, warm)
        load = LoadResult()
        with ConnectionSampler(server.conninfo(), None, 0.02) as sampler:
            ticker = gevent.spawn(progress, backend.label, args, load, sampler)
            try:
                run_load(
                    "127.0.0.1", site.port, args.clients, args.seconds, args.max_requests, load
                )
                gevent.sleep(0.3)  # let the plot show what the server keeps after the load
            finally:
                ticker.kill()
                if sys.stdout.isatty():
                    print(flush=True)
    finally:
        site.stop()
    samples = [(t - load.started, count) for t, count in sampler.samples]
    return Outcome(backend, load, samples)


def report(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    cap = args.max_conns * args.workers
    print()
    print(
        f"{args.clients} concurrent clients for {args.seconds:.0f} s against gunicorn "
        f"({args.workers} gevent workers); each request runs a {args.query_ms:g} ms query"
    )
    header = f"{'backend':<24} {'requests/s':>10} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}"
    print(f"{header} {'errors':>7} {'peak server connections':>24}")
    limits = {GEVENTPOOL: f"(cap {cap})", DJANGO: "(no cap)", PGBOUNCER: f"(pool {cap})"}
    for outcome in outcomes:
        load = outcome.load
        line = (
            f"{outcome.backend.label:<24} {load.requests / load.seconds:>10,.0f}"
            + "".join(f" {load.percentile(p) * 1000:>7.1f}" for p in (50, 95, 99))
            + f" {load.errors:>7,} {outcome.peak:>14} {limits[outcome.backend]:<9}"
        )
        print(line.rstrip())


def legend(outcome: Outcome) -> str:
    load = outcome.load
    return (
        f"{outcome.backend.label}: {load.requests / load.seconds:,.0f} req/s, "
        f"p99 {load.percentile(99) * 1000:,.0f} ms, {load.errors:,} errors"
    )


def main() -> int:
    args = parse_args()
    print("starting PostgreSQL ...", flush=True)
    server = open_server()
    (version,) = server.execute("SHOW server_version")[0]
    where = f"{server.host}:{server.port}"
    if server.cluster is not None:
        where = f"a throwaway cluster on port {server.port}, binaries from {server.cluster.bindir}"
    print(f"PostgreSQL {version}: {where}", flush=True)
    backends = [GEVENTPOOL, DJANGO]
    skipped = pgbouncer_skipped(args)
    if skipped is None:
        backends.append(PGBOUNCER)
    else:
        print(f"PgBouncer leg skipped: {skipped}", flush=True)
    outcomes: list[Outcome] = []
    try:
        for backend in backends:
            print(f"{backend.label}: {args.clients} clients for {args.seconds:.0f} s", flush=True)
            with route(server, backend, args) as database:
                outcomes.append(drive(server, database, backend, args))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers it started", flush=True)
        return 130
    finally:
        server.close()
    report(outcomes, args)
    cap = args.max_conns * args.workers
    plot_connections(
        [Series(legend(o), o.backend.color, o.samples, o.backend.linestyle) for o in outcomes],
        cap=cap,
        cap_label=(
            "cap: MAX_CONNS x workers = PgBouncer's pool"
            if PGBOUNCER in backends
            else "cap: MAX_CONNS x workers"
        ),
        clients=args.clients,
        title=(
            f"Server connections, {args.clients} HTTP clients, gunicorn with "
            f"{args.workers} gevent workers, MAX_CONNS={args.max_conns}"
        ),
        path=args.plot,
    )
    print(f"\nplot of server connections over time: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
