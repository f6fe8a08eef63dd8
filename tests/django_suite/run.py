"""Run Django's own test suite with our ENGINE and with Django's, and compare the outcomes.

Usage: python run.py --workdir DIR --ours ENGINE [--ours ENGINE ...] --stock ENGINE
       [--quick | MODULE ...] [--also MODULE ...] [--parallel N]

It fetches the source distribution of the installed Django (which carries tests/), starts the
tests' PostgreSQL server (a throwaway cluster unless GEVENTPOOL_TEST_DSN or PGHOST names one),
runs tests/runtests.py once per ENGINE with geventpool_suite_settings, prints pass, fail,
error and skip counts per module side by side, and exits non-zero if an ENGINE of ours fails
a test that the stock ENGINE passes, unless differences.py explains why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from differences import KNOWN_DIFFERENCES  # noqa: E402

from support.server import PgServer, open_server, unique_dbname  # noqa: E402

# The modules that exercise connection handling the most, for a run in half a minute.
QUICK = ["backends", "transactions", "transaction_hooks", "select_for_update", "timezones"]
# What runs by default, CI included: about 2,250 tests, a minute and a half per ENGINE on
# two cores.
FULL = [
    "backends",
    "basic",
    "transactions",
    "transaction_hooks",
    "select_for_update",
    "queries",
    "model_fields",
    "postgres_tests",
    "timezones",
    # Django's test runner on the ENGINE: test databases created, cloned and destroyed.
    "test_runner",
]
# Not in FULL: admin_scripts, which runs management commands in subprocesses that find the
# ENGINE's package by its __file__ (the core's __init__.py, whatever the driver). At about
# 3.5 minutes per ENGINE it runs once, in the psycopg 3 suite (`--also`, noxfile.py).
# Given to our ENGINEs only: Django's threaded tests hold a few connections at once.
POOL_OPTIONS = {"MAX_CONNS": 10, "CHECKOUT_TIMEOUT": 30}
OUTCOMES = ["passed", "failed", "error", "skipped", "expected_failure", "unexpected_success"]


def django_tests(workdir: Path) -> Path:
    """Return the tests/ folder of the installed Django's source, downloading it once."""
    import django

    version = django.__version__
    tree = workdir / f"django-{version}"
    if (tree / "tests" / "runtests.py").exists():
        return tree / "tests"
    workdir.mkdir(parents=True, exist_ok=True)
    # The wheel has no tests/; the sdist does.
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--no-binary", ":all:", f"Django=={version}", "--dest", str(workdir)]
    subprocess.run(command, check=True)
    sdist = next(p for p in workdir.iterdir() if p.name.lower() == f"django-{version}.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(workdir, filter="data")
    return tree / "tests"


def run_suite(
    pg: PgServer, tests: Path, engine: str, options: dict, modules: list[str], args, log: Path
) -> dict:
    report = log.with_suffix(".json")
    report.unlink(missing_ok=True)
    env = {
        **os.environ,
        **pg.env(),
        "GEVENTPOOL_SUITE_ENGINE": engine,
        "GEVENTPOOL_SUITE_OPTIONS": json.dumps(options),
        "GEVENTPOOL_SUITE_SUFFIX": "_" + unique_dbname("s").split("_")[1],
        "GEVENTPOOL_SUITE_REPORT": str(report),
        "PYTHONPATH": os.pathsep.join(
            [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]
        ),
    }
    command = [sys.executable, "runtests.py", "--settings=geventpool_suite_settings"]
    command += ["--noinput", f"--parallel={args.parallel}", *modules]
    print(f"{engine}: {' '.join(modules)} (log: {log})", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(
            command, cwd=tests, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    seconds = time.monotonic() - started
    if not report.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        sys.exit(
            f"runtests.py with {engine} exited with {proc.returncode} before any result:\n{tail}"
        )
    result = json.loads(report.read_text())
    result["seconds"] = seconds
    return result


def module_of(test: str) -> str:
    return test.split(".", 1)[0]


def counts(result: dict) -> dict[str, Counter]:
    per_module: dict[str, Counter] = {}
    for test, outcome in result["outcomes"].items():
        per_module.setdefault(module_of(test), Counter())[outcome] += 1
    return per_module


def print_table(modules: list[str], results: dict[str, dict], labels: dict[str, str]) -> None:
    columns = ["pass", "fail", "err", "skip", "xfail"]
    keys = ["passed", "failed", "error", "skipped", "expected_failure"]
    for engine in results:
        print(f"{labels[engine]}: {engine}")
    header = f"{'module':<20}" + "".join(
        f" | {labels[engine] + ' ' + ' '.join(columns):>34}" for engine in results
    )
    print(header)
    print("-" * len(header))
    tallies = {engine: counts(result) for engine, result in results.items()}
    for module in [*modules, "total"]:
        row = f"{module:<20}"
        for tally in tallies.values():
            if module == "total":
                counter = sum(tally.values(), Counter())
            else:
                counter = tally.get(module, Counter())
            cells = [
                counter[key] + (counter["unexpected_success"] if key == "failed" else 0)
                for key in keys
            ]
            row += " | " + " ".join(f"{cell:>6}" for cell in cells).rjust(34)
        print(row)
    print(
        "seconds: "
        + ", ".join(f"{engine} {result['seconds']:.0f}" for engine, result in results.items())
    )


BAD = {"failed", "error", "unexpected_success"}


def compare(ours: str, stock: str, results: dict[str, dict]) -> list[str]:
    """Print the tests that differ; return those that fail with ours only, unexplained."""
    mine, theirs = results[ours]["outcomes"], results[stock]["outcomes"]
    unexplained = []
    for test in sorted(set(mine) | set(theirs)):
        a, b = mine.get(test, "not run"), theirs.get(test, "not run")
        if a == b:
            continue
        # Printed too, never counted: a test skipped with ours only is coverage lost.
        why = KNOWN_DIFFERENCES.get(test)
        print(f"\n{test}: {a} with {ours}, {b} with {stock}")
        if why:
            print(f"  known difference: {why}")
        elif a in BAD:
            unexplained.append(test)
            detail = results[ours]["details"].get(test, "")
            print("  " + "\n  ".join(detail.strip().splitlines()[-12:]))
    return unexplained


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="test modules (default: all of FULL)")
    parser.add_argument("--workdir", type=Path, required=True, help="download and log folder")
    parser.add_argument("--ours", action="append", required=True, help="our ENGINE(s)")
    parser.add_argument("--stock", required=True, help="Django's ENGINE to compare with")
    parser.add_argument("--quick", action="store_true", help="only the modules of QUICK")
    parser.add_argument(
        "--also", action="append", default=[], help="a module to run as well (gis_tests)"
    )
    # Serial by default: Django's parallel runner reports some outcomes (of skipped classes,
    # for one) differently, so that counts compare only between runs with the same N.
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    modules = args.modules or [*(QUICK if args.quick else FULL), *args.also]
    args.workdir = args.workdir.resolve()

    tests = django_tests(args.workdir)
    pg = open_server()
    results = {}
    labels = dict.fromkeys(args.ours, "ours")
    labels[args.stock] = "stock"
    try:
        for engine in [*args.ours, args.stock]:
            options = POOL_OPTIONS if engine in args.ours else {}
            # Named after the whole ENGINE: ours and Django's may end alike (postgis).
            log = args.workdir / f"{engine}.log"
            results[engine] = run_suite(pg, tests, engine, options, modules, args, log)
    finally:
        pg.close()

    print()
    print_table(modules, results, labels)
    unexplained = []
    for engine in args.ours:
        unexplained += compare(engine, args.stock, results)
    if unexplained:
        print(f"\n{len(unexplained)} test(s) fail with our ENGINE only, unexplained")
        return 1
    print("\nno failure of ours that the stock ENGINE doesn't have, or each one is explained")
    return 0


if __name__ == "__main__":
    sys.exit(main())
