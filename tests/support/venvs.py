"""Fresh virtualenvs whose pip installs geventpool from the wheels built from this tree.

The tests in tests/install run the commands a user runs, with real pip: `pip install
geventpool-psycopg3` must resolve to the wheel built here, and everything else to the index.
pip reads two variables for that, so the commands themselves stay as the README writes them:
PIP_FIND_LINKS, the folder of the built wheels, and PIP_CONSTRAINT, a file pinning each of
our distributions to the tree's version (no index release can stand in for it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

# The distributions built from this tree, by the project folder they are built from.
PROJECTS = ("geventpool-core", "geventpool-psycopg3", "geventpool-psycopg2", "geventpool-postgis")


def versions(dist: Path) -> dict[str, str]:
    """The version of each of our distributions in `!dist`, read off its wheel's name."""
    found = {}
    for project in PROJECTS:
        wheels = sorted(dist.glob(f"{project.replace('-', '_')}-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel of {project} in {dist}, found {wheels}")
        found[project] = wheels[0].name.split("-")[1]
    return found


def constraints(dist: Path) -> Path:
    """Write the constraints file that pins our distributions to the wheels in `!dist`."""
    path = dist / "constraints.txt"
    path.write_text("".join(f"{name}=={version}\n" for name, version in versions(dist).items()))
    return path


class Venv:
    """A virtualenv in `!path`, with pip, that installs our distributions from `!dist`.

    Made by the interpreter `!python`, if given, rather than the one running the tests.
    """

    def __init__(self, path: Path, dist: Path, python: str | None = None) -> None:
        self.path = path
        self.bin = path / "bin"
        self.python = self.bin / "python"
        if python is None:
            venv.create(path, with_pip=True, symlinks=True)
        else:
            subprocess.run([python, "-m", "venv", str(path)], check=True, capture_output=True)
        self.env = {
            **os.environ,
            "PIP_FIND_LINKS": str(dist),
            "PIP_CONSTRAINT": str(constraints(dist)),
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            # The venv's own bin first: `pip`, `python`, `django-admin` and `gunicorn` in a
            # command are the venv's, as after `source bin/activate`.
            "PATH": os.pathsep.join([str(self.bin), os.environ.get("PATH", "")]),
            "VIRTUAL_ENV": str(path),
        }
        # The test process's own pytest paths must not leak into the venv's imports.
        self.env.pop("PYTHONPATH", None)
        self.env.pop("PYTHONHOME", None)

    def run(
        self,
        command: str | list[str],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command (a shell-style line or an argument list) with the venv first on PATH.

        Returns the completed process, with stdout and stderr merged in `stdout`.
        """
        args = shlex.split(command) if isinstance(command, str) else command
        return subprocess.run(
            args,
            cwd=cwd,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, command: str | list[str], **kwargs: Any) -> str:
        """`run` a command that must succeed; return its output."""
        proc = self.run(command, **kwargs)
        if proc.returncode:
            raise AssertionError(f"{command!r} exited with {proc.returncode}:\n{proc.stdout}")
        return proc.stdout

    def installed(self) -> dict[str, str]:
        """The distributions installed in the venv, by normalized name (PEP 503: lowercase,
        "-" for runs of "-", "_" and "."), with their versions."""
        out = self.ok([str(self.python), "-m", "pip", "list", "--format=freeze"])
        pairs = (line.split("==", 1) for line in out.splitlines() if "==" in line)
        return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pairs}


def build_dists(target: Path) -> Path:
    """Build the wheels of every distribution of this tree into `!target`; return it."""
    packages = Path(__file__).resolve().parents[2] / "packages"
    target.mkdir(parents=True, exist_ok=True)
    for project in PROJECTS:
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", str(target)],
            cwd=packages / project,
            check=True,
            capture_output=True,
        )
    return target
