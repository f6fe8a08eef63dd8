"""Benchmark geventpool beside the other ways of running Django on gevent, on one server.

    python3 -m nox -s bench              # 10,000 cycles per run, best of 3
    python3 -m nox -s bench -- --quick   # 1,000 cycles, once: proves it works, measures little

The session runs it as ``python -m bench.bench`` from the repository root, where bench/ and
tests/support import as packages. Every (setup, workload) runs in its own worker process
(``python -m bench.worker``, from the root too) while a thread here samples the setup's
server connections in pg_stat_activity. django-db-geventpool 4.0.8 shares our import name,
and the psycopg2 backend refuses a process where psycopg 3 is importable: their workers run
with the interpreters given by --old-python and --psycopg2-python, from virtualenvs of their
own. A second table compares psycopg 3's own wait functions with the backend's under gevent
and eventlet (bench/waits.py), without Django.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import WAITS, Row, format_table, format_waits_table, keep_best_wait
from bench.sampler import ConnectionSampler

# The server is the tests' throwaway cluster (or the one GEVENTPOOL_TEST_DSN / PG* name).
from tests.support.server import PgServer, open_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WORKLOADS = ["select1", "sleep1ms", "checkout"]
# In the order of the table.
ALL_SETUPS = [
    "geventpool",
    "geventpool-psycopg2",
    "django-ceiling",
    "django-ceiling-gevent-wait",
    "django-pool",
    "django-db-geventpool-4.0.8",
    "raw-psycopg",
]


@dataclass
class Plan:
    cycles: int
    checkouts: int
    # SELECT 1 queries per run of the wait-function comparison.
    queries: int
    rounds: int
    greenlets: int
    conns: int
    # The interpreter each setup's worker runs with.
    interpreters: dict[str, str]
    setups: list[str] = field(default_factory=list)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = Plan(
        cycles=1_000 if args.quick else args.cycles,
        checkouts=1_000 if args.quick else 20_000,
        queries=2_000 if args.quick else 30_000,
        rounds=1 if args.quick else args.rounds,
        greenlets=args.greenlets,
        conns=args.conns,
        interpreters={},
    )
    # Rows that need a virtualenv of their own, and the option that names its interpreter.
    own_venv = {
        "geventpool-psycopg2": ("--psycopg2-python", args.psycopg2_python),
        "django-db-geventpool-4.0.8": ("--old-python", args.old_python),
    }
    for setup in ALL_SETUPS:
        option, python = own_venv.get(setup, ("", sys.executable))
        if python:
            plan.interpreters[setup] = python
            plan.setups.append(setup)
        else:
            print(f"skipping {setup}: no {option} given")
    return plan


def measure_wait(server: PgServer, plan: Plan, runtime: str, wait: str) -> dict[str, Any]:
    """Run bench/waits.py once; return its JSON result."""
    command = [sys.executable, str(HERE / "waits.py"), runtime, wait]
    command += ["--queries", str(plan.queries), "--conns", str(plan.conns)]
    env = {**os.environ, **server.env()}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise SystemExit(f"wait {runtime} / {wait} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def measure(server: PgServer, plan: Plan, setup: str, workload: str) -> tuple[dict[str, Any], int]:
    """Run one worker; return its JSON result and the peak of server connections."""
    python = plan.interpreters[setup]
    app_name = f"bench-{setup}-{workload}"[:63]
    count = plan.checkouts if workload == "checkout" else plan.cycles
    command = [
        str(python),
        *("-m", "bench.worker"),
        *(setup, workload, "--app-name", app_name),
        *("--cycles", str(count)),
        *("--greenlets", str(plan.greenlets), "--conns", str(plan.conns)),
    ]
    env = {**os.environ, **server.env()}
    with ConnectionSampler(server.conninfo(), app_name) as sampler:
        # From the root, in whichever virtualenv: bench.worker imports bench and tests.support
        # from there, and nothing of packages/.
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
    if done.returncode:
        raise SystemExit(f"{setup} / {workload} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1]), sampler.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, one run each")
    parser.add_argument("--cycles", type=int, default=10_000, help="request cycles per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--greenlets", type=int, default=100)
    parser.add_argument("--conns", type=int, default=10, help="MAX_CONNS / pool size")
    parser.add_argument("--old-python", help="interpreter with django-db-geventpool 4.0.8")
    parser.add_argument("--psycopg2-python", help="interpreter with geventpool-psycopg2")
    args = parser.parse_args()
    plan = make_plan(args)

    print("starting PostgreSQL ...", flush=True)
    server = open_server()
    rows = [Row(setup) for setup in plan.setups]
    try:
        # Round after round of every setup, rather than all rounds of one setup in a row:
        # a moment when the machine is busy with something else then costs every setup a
        # run, not one setup its best.
        for round_number in range(1, plan.rounds + 1):
            for row in rows:
                for workload in WORKLOADS:
                    print(
                        f"  {round_number}/{plan.rounds} {row.setup:<28} {workload:<9}",
                        end=" ",
                        flush=True,
                    )
                    started = time.monotonic()
                    result, peak = measure(server, plan, row.setup, workload)
                    row.add(workload, result, peak)
                    print(f"{time.monotonic() - started:5.1f} s", flush=True)
        waits: dict[tuple[str, str], dict[str, Any]] = {}
        for round_number in range(1, plan.rounds + 1):
            for runtime, wait in WAITS:
                print(f"  {round_number}/{plan.rounds} wait: {runtime}, {wait}", flush=True)
                keep_best_wait(waits, (runtime, wait), measure_wait(server, plan, runtime, wait))
    finally:
        server.close()

    print()
    print(
        f"{plan.greenlets} greenlets over {plan.conns} connections, {plan.cycles:,} request "
        f"cycles per run, best of {plan.rounds}; checkout + return: {plan.checkouts:,} in a row"
    )
    print()
    print(format_table(rows, reference="geventpool"))
    print()
    print(
        f"psycopg 3 alone, {plan.conns} connections running {plan.queries:,} `SELECT 1` side by"
        f" side, under each runtime; best of {plan.rounds}"
    )
    print()
    print(format_waits_table(waits))


if __name__ == "__main__":
    main()
