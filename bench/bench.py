"""Benchmark geventpool beside the other ways of running Django on gevent, on one server.

    ./noxw -s bench              # 7 rounds: about 15 minutes on 2 busy cores
    ./noxw -s bench -- --quick   # 1 round of small counts: proves it works

The session runs it as ``python -m bench.bench`` from the repository root, where bench/ and
tests/support import as packages. Every run of a (setup, workload) is a worker process of
its own (``python -m bench.worker``, from the root too) while a thread here samples the
setup's server connections in pg_stat_activity. The runs are interleaved: each round runs
every workload on every setup once, so that a moment when the machine is busy with
something else costs every setup a little rather than one setup a lot, and the ratios are
taken within each round. django-db-geventpool 4.0.8 shares our import name, and the
psycopg2 backend refuses a process where psycopg 3 is importable: their workers run with the
interpreters given by --old-python and --psycopg2-python, from virtualenvs of their own.
Each PgBouncer row starts a PgBouncer in transaction mode (tests/support/pgbouncer.py, as
the tests do) and keeps it for the whole benchmark. Each round ends with psycopg 3's own
wait functions against the backend's, under gevent and eventlet, without Django
(bench/waits.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cpu, instructions
from bench.report import (
    REFERENCE,
    WAITS,
    Results,
    format_checkout_table,
    format_ratio_table,
    format_waits_table,
    format_workload_table,
)
from bench.sampler import ConnectionSampler
from bench.workloads import CHECKOUT, DATABASE_SETUP, WORKLOADS

# The server is the tests' throwaway cluster (or the one GEVENTPOOL_TEST_DSN / PG* name).
from tests.support.cluster import ServerUnavailable
from tests.support.pgbouncer import PgBouncer
from tests.support.server import PgServer, open_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

REQUESTS = list(WORKLOADS)


@dataclass(frozen=True)
class Row:
    setup: str
    #: Whether the checkout micro-benchmark means something here: it needs Django, and
    #: no I/O to take a connection (PgBouncer with CONN_MAX_AGE=0 connects every time).
    checkout: bool = False
    #: The option naming the interpreter of the row's own virtualenv, if it needs one.
    python_option: str | None = None
    pgbouncer: bool = False
    #: Run only when --setup names it.
    optional: bool = False

    @property
    def workloads(self) -> list[str]:
        return [*REQUESTS, CHECKOUT] if self.checkout else REQUESTS


# In the order of the tables; the first is the reference every ratio is taken against.
ROWS = [
    Row(REFERENCE, checkout=True),
    Row("geventpool-psycopg2", checkout=True, python_option="--psycopg2-python"),
    # RESET_QUERY's cost (docs/settings.md#reset_query); only with --setup: not a peer.
    Row("geventpool-discard-all", optional=True),
    Row("geventpool-discard-all-etc-utc", optional=True),
    Row("geventpool-reset-in-parts", optional=True),
    Row("geventpool-reset-in-parts-etc-utc", optional=True),
    Row("geventpool-reset-round-trip", optional=True),
    # Django keeping its connection: the checkout table's baseline.
    Row("django-ceiling", checkout=True),
    Row("django-ceiling-gevent-wait"),
    Row("django-pool", checkout=True),
    Row("django-db-geventpool-4.0.8", checkout=True, python_option="--old-python"),
    Row("pgbouncer-conn-max-age-0", pgbouncer=True),
    Row("pgbouncer-persistent", pgbouncer=True),
    Row("raw-psycopg"),
]

# Request cycles per measured pass: about a second each on an idle 2-core machine, long
# enough to span many scheduling slices, short enough for ROUNDS in a quarter of an hour.
CYCLES = {"select1": 6_000, "transaction": 2_500, "sleep5ms": 1_500}
ROUNDS = 7
CHECKOUTS = 20_000
CHECKOUT_REPEATS = 7
WAIT_QUERIES = 20_000


@dataclass
class Plan:
    rounds: int
    scale: float
    greenlets: int
    conns: int
    checkout_repeats: int
    # The interpreter each row's worker runs with.
    interpreters: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def count(self, workload: str) -> int:
        base = CHECKOUTS if workload == CHECKOUT else CYCLES[workload]
        return max(int(base * self.scale), 100)

    @property
    def wait_queries(self) -> int:
        return max(int(WAIT_QUERIES * self.scale), 1_000)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = Plan(
        rounds=1 if args.quick else args.rounds,
        scale=0.1 if args.quick else args.scale,
        greenlets=args.greenlets,
        conns=args.conns,
        checkout_repeats=3 if args.quick else CHECKOUT_REPEATS,
    )
    interpreters = {"--old-python": args.old_python, "--psycopg2-python": args.psycopg2_python}
    bouncer = pgbouncer_binary()
    for row in ROWS:
        if args.setup and row.setup not in args.setup and row.setup != REFERENCE:
            continue
        if row.optional and not (args.setup and row.setup in args.setup):
            continue
        python = interpreters[row.python_option] if row.python_option else sys.executable
        if not python:
            plan.skipped.append(f"{row.setup}: no {row.python_option} given")
        elif row.pgbouncer and bouncer is None:
            plan.skipped.append(
                f"{row.setup}: pgbouncer is not installed (apt-get install pgbouncer)"
            )
        else:
            plan.interpreters[row.setup] = python
            plan.rows.append(row)
    return plan


def pgbouncer_binary() -> str | None:
    # Where tests/support/pgbouncer.py looks for it.
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    return binary if os.path.exists(binary) else None


@dataclass
class Bench:
    server: PgServer
    plan: Plan
    #: The postmaster's pid where its CPU time can be read, else None.
    postmaster: int | None
    results: Results
    waits: dict[tuple[str, str], dict[int, dict[str, Any]]] = field(default_factory=dict)
    #: Each PgBouncer row's PgBouncer, with its pid.
    bouncers: dict[str, tuple[PgBouncer, int]] = field(default_factory=dict)

    def bouncer(self, row: Row) -> tuple[PgBouncer, int]:
        """The row's PgBouncer, started on first use and kept for the whole benchmark.

        Kept, as in production, rather than started for each run: its pool is full again
        after the worker's warm-up pass anyway, while stopping it takes 2 s under runuser
        (how a root process starts it as the postgres user). One per row, so that neither
        row's clients find the other's server connections.
        """
        if row.setup not in self.bouncers:
            bouncer = PgBouncer(self.server, pool_size=self.plan.conns)
            self.bouncers[row.setup] = bouncer, pgbouncer_pid(bouncer)
        return self.bouncers[row.setup]

    def close(self) -> None:
        while self.bouncers:
            self.bouncers.popitem()[1][0].stop()

    def worker(
        self, row: Row, workload: str, app_name: str, *options: str
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of a worker measuring `!row` on `!workload`."""
        command = [
            self.plan.interpreters[row.setup],
            *("-m", "bench.worker", row.setup, workload, "--app-name", app_name),
            *("--greenlets", str(self.plan.greenlets), "--conns", str(self.plan.conns)),
            *options,
        ]
        env = {**os.environ, **self.server.env()}
        if row.pgbouncer:
            bouncer, pid = self.bouncer(row)
            env.update(PGHOST=bouncer.host, PGPORT=str(bouncer.port))
            command += ["--pgbouncer", str(pid)]
        return command, env

    def measure(self, row: Row, workload: str) -> tuple[dict[str, Any], int]:
        """Run one worker; return its JSON result and the peak of server connections."""
        app_name = f"bench-{row.setup}-{workload}"[:63]
        command, env = self.worker(
            row,
            workload,
            app_name,
            *("--cycles", str(self.plan.count(workload))),
            *("--repeat", str(self.plan.checkout_repeats)),
        )
        with ConnectionSampler(self.server.conninfo(), app_name) as sampler:
            if self.postmaster is not None and sampler.backend_pid is not None:
                command += ["--postmaster", str(self.postmaster)]
                command += ["--leave-out", str(sampler.backend_pid)]
            # From the root, in whichever virtualenv: bench.worker imports bench and
            # tests.support from there, and nothing of packages/.
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
            )
        if done.returncode:
            raise SystemExit(f"{row.setup} / {workload} failed:\n{done.stdout}{done.stderr}")
        return json.loads(done.stdout.splitlines()[-1]), sampler.peak

    def measure_wait(self, runtime: str, wait: str) -> dict[str, Any]:
        """Run bench/waits.py once; return its JSON result."""
        command = [sys.executable, str(HERE / "waits.py"), runtime, wait]
        command += ["--queries", str(self.plan.wait_queries), "--conns", str(self.plan.conns)]
        env = {**os.environ, **self.server.env()}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise SystemExit(f"wait {runtime} / {wait} failed:\n{done.stdout}{done.stderr}")
        return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]

    def run_round(self, number: int) -> None:
        rows = self.plan.rows
        # Each round starts one row further: no row always runs right after another's
        # writes or in the same place of a round.
        shift = (number - 1) % len(rows)
        order = rows[shift:] + rows[:shift]
        for workload in [*REQUESTS, CHECKOUT]:
            for row in order:
                if workload not in row.workloads:
                    continue
                self.progress(number, workload, row.setup)
                started = time.monotonic()
                result, peak = self.measure(row, workload)
                self.results.add(number, row.setup, workload, result, peak)
                if workload == CHECKOUT:
                    figure = f"{result['django_cpu_us']:8.2f} µs"
                else:
                    figure = f"{result['requests_per_second']:8,.0f}/s"
                print(f"{figure}  {time.monotonic() - started:5.1f} s", flush=True)
        waits = WAITS[shift % len(WAITS) :] + WAITS[: shift % len(WAITS)]
        for runtime, wait in waits:
            self.progress(number, "waits", f"{runtime}, {wait}")
            started = time.monotonic()
            result = self.measure_wait(runtime, wait)
            self.waits.setdefault((runtime, wait), {})[number] = result
            figure = f"{result['queries_per_second']:8,.0f}/s"
            print(f"{figure}  {time.monotonic() - started:5.1f} s", flush=True)

    def progress(self, number: int, workload: str, what: str) -> None:
        print(f"  {number}/{self.plan.rounds}  {workload:<11} {what:<28}", end=" ", flush=True)


def pgbouncer_pid(bouncer: PgBouncer) -> int:
    """PgBouncer's own pid (the one started may be runuser's), from its pidfile."""
    pidfile = bouncer.base / "pgbouncer.pid"
    # PgBouncer writes it a moment after it starts listening, which is what the start waits for.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            written = pidfile.read_text().split()
            if written:
                return int(written[0])
        time.sleep(0.01)
    raise ServerUnavailable(f"pgbouncer wrote no pid to {pidfile}")


def postmaster_pid(server: PgServer) -> int | None:
    if server.cluster is None or not cpu.available():
        return None  # a server of someone else's, maybe on another machine
    return int((server.cluster.datadir / "postmaster.pid").read_text().split()[0])


def prepare_database(server: PgServer) -> None:
    dbname = '"{}"'.format(server.dbname.replace('"', '""'))
    for statement in DATABASE_SETUP:
        server.execute(statement.format(dbname=dbname))


_VERSIONS = """
import importlib.metadata, json, platform
names = [
    "Django", "psycopg", "psycopg-binary", "psycopg-pool", "psycopg2-binary", "psycopg2",
    "psycogreen", "gevent", "greenlet", "eventlet", "geventpool-core", "geventpool-psycopg3",
    "geventpool-psycopg2", "django-db-geventpool",
]
found = {}
for name in names:
    try:
        found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
python = f"{platform.python_implementation()} {platform.python_version()}"
print(json.dumps({"python": python, "packages": found}))
"""


def describe_environment(server: PgServer, plan: Plan) -> list[str]:
    lines = []
    for python in dict.fromkeys(plan.interpreters.values()):
        done = subprocess.run([python, "-c", _VERSIONS], capture_output=True, text=True)
        if done.returncode:
            continue
        found = json.loads(done.stdout)
        rows = [s for s, p in plan.interpreters.items() if p == python]
        packages = ", ".join(f"{name} {version}" for name, version in found["packages"].items())
        lines.append(f"- {', '.join(rows)}: {found['python']}; {packages}")
    server_version = server.execute("SHOW server_version")[0][0]
    bouncer = pgbouncer_binary()
    if bouncer is not None:
        version = subprocess.run([bouncer, "--version"], capture_output=True, text=True)
        server_version += f"; {version.stdout.splitlines()[0]}" if version.stdout else ""
    lines.append(f"- PostgreSQL {server_version}")
    lines.append(f"- {platform.system()} {platform.release()}, {cpu_model()}")
    lines.append(f"- source tree: {source_tree()}")
    return lines


def cpu_model() -> str:
    count = os.cpu_count() or 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{count} \N{MULTIPLICATION SIGN} {line.split(':', 1)[1].strip()}"
    return f"{count} CPUs"


def source_tree() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "not a git checkout"
    return commit + (" with uncommitted changes" if git("status", "--porcelain") else "")


def load_average() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of small counts")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="every run once per round")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count")
    parser.add_argument("--greenlets", type=int, default=100)
    parser.add_argument("--conns", type=int, default=10, help="MAX_CONNS / pool size")
    parser.add_argument(
        "--setup",
        action="append",
        choices=[row.setup for row in ROWS],
        help="only this row (repeatable); ours always runs",
    )
    parser.add_argument("--old-python", help="interpreter with django-db-geventpool 4.0.8")
    parser.add_argument("--psycopg2-python", help="interpreter with geventpool-psycopg2")
    parser.add_argument("--command", help="how this run was started, to print above the tables")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind instead (bench/instructions.py)",
    )
    args = parser.parse_args()
    plan = make_plan(args)
    command = args.command or shlex.join(["python", "-m", "bench.bench", *sys.argv[1:]])
    valgrind = instructions.valgrind() if args.instructions else None
    if args.instructions and valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")

    started = time.monotonic()
    load_at_start = load_average()
    for note in plan.skipped:
        print(f"skipping {note}")
    print("starting PostgreSQL ...", flush=True)
    server = open_server()
    try:
        prepare_database(server)
        environment = describe_environment(server, plan)
        bench = Bench(server, plan, postmaster_pid(server), Results(plan.conns))
        try:
            if valgrind is not None:
                print(f"counting instructions of {len(plan.rows)} rows under valgrind ...")
                counts = instructions.count_rows(
                    valgrind, plan.rows, bench.worker, str(ROOT), os.cpu_count() or 1, plan.scale
                )
            else:
                for number in range(1, plan.rounds + 1):
                    bench.run_round(number)
        finally:
            bench.close()
    except ServerUnavailable as exc:
        raise SystemExit(str(exc)) from exc
    finally:
        server.close()
    load = (
        f"- load average (1, 5, 15 min): {load_at_start} at the start, {load_average()} at the end"
    )
    if valgrind is not None:
        print_instructions(plan, counts, command, environment, time.monotonic() - started)
    else:
        print_report(bench, command, [*environment, load], time.monotonic() - started)


def print_instructions(
    plan: Plan,
    counts: dict[str, instructions.Count],
    command: str,
    environment: list[str],
    elapsed: float,
) -> None:
    minutes, seconds = divmod(round(elapsed), 60)
    print()
    print(f"`{command}`: {minutes} min {seconds} s")
    print()
    print(*environment, sep="\n")
    print()
    low, high = instructions.request_counts(plan.scale)
    checkouts = instructions.checkout_counts(plan.scale)
    print(
        f"Instructions the client executes in user space, counted by valgrind; {plan.greenlets}"
        f" greenlets share {plan.conns} server connections. Per request: the difference"
        f" between runs of {low:,} and {high:,} `SELECT 1` request cycles (and their warm-ups),"
        " divided by the difference in requests; per checkout, the same with"
        f" {checkouts[0]:,} and {checkouts[1]:,} checkouts of one"
        " greenlet."
    )
    print()
    print(instructions.format_table(counts, plan.conns))


def print_report(bench: Bench, command: str, environment: list[str], elapsed: float) -> None:
    plan = bench.plan
    setups = [row.setup for row in plan.rows]
    minutes, seconds = divmod(round(elapsed), 60)
    counts = ", ".join(f"{plan.count(name):,} `{name}`" for name in REQUESTS)
    print()
    rounds = f"{plan.rounds} round{'s' if plan.rounds > 1 else ''}"
    print(f"`{command}`: {rounds} in {minutes} min {seconds} s")
    print()
    print(*environment, sep="\n")
    if bench.postmaster is None:
        print("- the server's CPU time is not measured: it is not a throwaway cluster of ours")
    print()
    print(
        f"{plan.greenlets} greenlets share {plan.conns} server connections; request cycles per"
        f" measured pass: {counts}. Every figure is the median over the rounds, the lowest and"
        " highest in brackets; a ratio is taken within each round, then over the rounds."
    )
    print()
    print(format_ratio_table(bench.results, setups, REQUESTS))
    for workload in REQUESTS:
        print()
        print(f"{WORKLOADS[workload].title}:")
        print()
        print(format_workload_table(bench.results, setups, workload))
    print()
    print(
        "Checkout + return, one greenlet, nothing else running; through Django is"
        " `ensure_connection()` + `close_old_connections()`. Each round's figure is the fastest"
        f" of {plan.checkout_repeats} repeats of up to {plan.count(CHECKOUT):,}."
    )
    print()
    print(format_checkout_table(bench.results, setups, CHECKOUT))
    print()
    print(
        f"psycopg 3 alone, {plan.conns} connections running {plan.wait_queries:,} `SELECT 1`"
        " side by side, under each runtime:"
    )
    print()
    print(format_waits_table(bench.waits))


if __name__ == "__main__":
    main()
