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

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


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
        env={**os.environ, **env},
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
