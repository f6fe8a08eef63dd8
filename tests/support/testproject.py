"""Run Django's management commands on tests/testproject, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def django_admin(
    *command: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m django COMMAND`` on the test project, warnings as errors.

    `!env` adds to the environment: the PG* variables of the server, and the project's
    GEVENTPOOL_ENGINE / GEVENTPOOL_TEST_DB / GEVENTPOOL_OPTIONS.
    """
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "django", *command],
        cwd=TESTS,
        env={
            **os.environ,
            **env,
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
