"""Run a scenario script in a fresh interpreter that monkey-patches before importing psycopg."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent.parent
SCRIPTS = TESTS / "scripts"


def script_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a script in tests/scripts: this one, `!env`, and tests/ on PYTHONPATH.

    A script finds its siblings (cell, harness) in its own folder, and through PYTHONPATH
    what it shares with the tests: `support` and the Django apps.
    """
    merged = {**os.environ, **env}
    paths = [str(TESTS), *filter(None, [merged.get("PYTHONPATH")])]
    return {**merged, "PYTHONPATH": os.pathsep.join(paths)}


def run_scenario(
    script: str,
    scenario: str,
    env: dict[str, str],
    timeout: float = 120,
    expect_stderr: Sequence[str] = (),
    **args: Any,
) -> Any:
    """Run `!scenario` of `!script` and return the JSON it prints.

    Warnings are errors in the child too, and anything it writes to stderr fails the test,
    unless the line matches one of the `!expect_stderr` regular expressions: a pool that
    logs a warning in a clean scenario has something to explain.
    """
    args.setdefault("app", f"{scenario}-{os.getpid()}")
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPTS / script), scenario, json.dumps(args)],
        env=script_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    unexpected = [
        line
        for line in proc.stderr.splitlines()
        if not any(re.search(pattern, line) for pattern in expect_stderr)
    ]
    if proc.returncode or unexpected:
        pytest.fail(
            f"{script} {scenario} exited with {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return json.loads(proc.stdout.splitlines()[-1])


#: The cell a scenario runs in (see tests/scripts/cell.py), gevent with psycopg 3 by default.
RUNTIME = os.environ.get("GEVENTPOOL_RUNTIME", "gevent")
DRIVER = os.environ.get("GEVENTPOOL_DRIVER", "psycopg3")
# The module Django's backend runs on: psycopg2cffi stands in for psycopg2 on PyPy.
DRIVER_MODULES = {"psycopg3": {"psycopg"}, "psycopg2": {"psycopg2", "psycopg2cffi"}}


def run_in_cell(script: str, scenario: str, env: dict[str, str], **args: Any) -> Any:
    """`run_scenario`, checking that it ran on the cell's runtime and driver.

    Each scenario reports the runtime the pool detected and the driver Django loaded, so a
    cell can't pass by running something else.
    """
    result = run_scenario(script, scenario, env, **args)
    assert result["cell"]["runtime"] == RUNTIME
    assert result["cell"]["driver"] in DRIVER_MODULES[DRIVER]
    return result
