"""The demo: a Django site under gunicorn's gevent workers, loaded over HTTP, on geventpool,
on Django's own backend, and on Django's own backend behind PgBouncer, with the server
connections each one opens.

    ./noxw -s demo                                # under a minute
    ./noxw -s demo -- --plot docs/connections.png # regenerate the README's plot

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
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from types import FrameType  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import psycopg  # noqa: E402

from bench.sampler import ConnectionSampler  # noqa: E402
from demo.load import LoadResult, run_load  # noqa: E402
from demo.plot import Series, plot_connections  # noqa: E402
from demo.webserver import Gunicorn  # noqa: E402

# The server and the PgBouncer in front of it are the tests' own.
from tests.support.pgbouncer import PgBouncer  # noqa: E402
from tests.support.server import PgServer, open_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLOT = Path("build", "demo", "connections.png")
# What gunicorn says, kept out of the demo's output; a gunicorn that fails to start shows its
# end in the error.
GUNICORN_LOG = ROOT / "build" / "demo" / "gunicorn.log"


@dataclass(frozen=True)
class Backend:
    name: str  # DEMO_BACKEND in demoproject/settings.py
    label: str
    color: str
    cap_label: str  # what MAX_CONNS x workers is to it, for the plot


GEVENTPOOL = Backend("geventpool", "geventpool", "tab:blue", "cap: MAX_CONNS x workers")
DJANGO = Backend("django", "Django, CONN_MAX_AGE=0", "tab:orange", "geventpool's cap")
PGBOUNCER = Backend("pgbouncer", "Django via PgBouncer", "tab:green", "PgBouncer's pool")

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


DESCRIPTION = """\
Serve a small Django site with gunicorn's gevent workers and send it the same HTTP load
three times: on geventpool, on Django's own backend (CONN_MAX_AGE=0), and on Django's own
backend behind PgBouncer in transaction mode, where pgbouncer is installed. Print
requests/s, latency percentiles and the peak of server connections for each, and plot the
server connections over time.
"""
EPILOG = """\
PostgreSQL is a throwaway cluster that the demo starts and stops, or the server that
GEVENTPOOL_TEST_DSN or the PG* variables name. Ctrl-C stops the load, gunicorn, PgBouncer
and the cluster.
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        # How a reader runs it: through the session, which installs what it needs.
        prog="./noxw -s demo --",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=200,
        metavar="N",
        help=with_default("concurrent HTTP clients"),
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=8.0,
        metavar="S",
        help=with_default("load time per backend"),
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help=with_default("gunicorn worker processes"),
    )
    parser.add_argument(
        "--max-conns",
        type=int,
        default=10,
        metavar="N",
        help=with_default("MAX_CONNS, the server connections each worker's pool may open"),
    )
    parser.add_argument(
        "--query-ms",
        type=float,
        default=5.0,
        metavar="MS",
        help=with_default("time each request's query spends on the server (pg_sleep)"),
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=200_000,
        metavar="N",
        help=with_default("end a backend's run after this many requests, even before --seconds"),
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=DEFAULT_PLOT,
        metavar="PNG",
        help=with_default("where to write the plot of server connections over time"),
    )
    parser.add_argument(
        "--no-pgbouncer",
        dest="pgbouncer",
        action="store_false",
        help="leave out the run behind PgBouncer, even where pgbouncer is installed",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run, as CI does: 100 clients for 2 s per backend, in place of"
        " --clients and --seconds",
    )
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds = 100, 2.0
    return args


def with_default(text: str) -> str:
    # argparse fills in %(default)s; ArgumentDefaultsHelpFormatter would also add it to
    # the flags, where "(default: False)" says nothing.
    return f"{text} (default: %(default)s)"


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
    site = Gunicorn(env, args.workers, GUNICORN_LOG)
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
    except BaseException:
        # Interrupted, or failed: nothing is left to measure, and the requests in flight
        # need not finish.
        site.stop(graceful=False)
        raise
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


def title(outcome: Outcome) -> str:
    load = outcome.load
    return (
        f"{outcome.backend.label}\n{load.requests / load.seconds:,.0f} req/s, "
        f"p99 {load.percentile(99) * 1000:,.0f} ms, {load.errors:,} errors"
    )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals() -> None:
    """Make Ctrl-C, and SIGTERM, end the demo with one KeyboardInterrupt in the main greenlet,
    which unwinds through the code that stops what the demo started.

    Python runs a signal handler in whichever greenlet is running: raised there, as the
    default handler raises it, the KeyboardInterrupt lands in the event loop, which prints
    it with a timestamp, or in the sampler, which reports it as its own failure. The handler
    throws it into the main greenlet instead, and ignores the signals that follow: nox sends
    a SIGTERM after the SIGINT, and a second Ctrl-C would cut the cleanup short.
    """
    main = gevent.getcurrent()

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for each in STOP_SIGNALS:
            signal.signal(each, signal.SIG_IGN)
        gevent.kill(main, KeyboardInterrupt)

    for each in STOP_SIGNALS:
        signal.signal(each, interrupt)


def run(args: argparse.Namespace) -> list[Outcome]:
    """Start PostgreSQL, run each backend in turn, stop PostgreSQL."""
    GUNICORN_LOG.unlink(missing_ok=True)  # each run's gunicorns append to a new one
    print("starting PostgreSQL ...", flush=True)
    server = open_server()
    try:
        (version,) = server.execute("SHOW server_version")[0]
        where = f"{server.host}:{server.port}"
        if server.cluster is not None:
            where = (
                f"a throwaway cluster on port {server.port}, binaries from {server.cluster.bindir}"
            )
        print(f"PostgreSQL {version}: {where}", flush=True)
        backends = [GEVENTPOOL, DJANGO]
        skipped = pgbouncer_skipped(args)
        if skipped is None:
            backends.append(PGBOUNCER)
        else:
            print(f"PgBouncer leg skipped: {skipped}", flush=True)
        outcomes: list[Outcome] = []
        for backend in backends:
            print(f"{backend.label}: {args.clients} clients for {args.seconds:.0f} s", flush=True)
            with route(server, backend, args) as database:
                outcomes.append(drive(server, database, backend, args))
        return outcomes
    finally:
        server.close()


def main() -> int:
    args = parse_args()
    # Before open_server(): the throwaway cluster takes SIGTERM over only where no handler
    # is set.
    stop_on_signals()
    try:
        outcomes = run(args)
    except KeyboardInterrupt:
        # Printed once everything is stopped, so that it is true when read.
        print("interrupted: stopped the load and every server it started", flush=True)
        return 130
    report(outcomes, args)
    plot_connections(
        [Series(title(o), o.backend.color, o.samples, o.backend.cap_label) for o in outcomes],
        cap=args.max_conns * args.workers,
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
