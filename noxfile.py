"""Lint, test on every supported Python x Django, and test the built wheels.

`python3 -m nox` runs what CI runs; `python3 -m nox -s tests-3.12` one Python with every Django;
arguments after `--` go to pytest: `python3 -m nox -s "tests-3.12(django='5.2')" -- -x`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CORE = ROOT / "packages" / "geventpool-core"
PSYCOPG3 = ROOT / "packages" / "geventpool-psycopg3"

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DJANGOS = ["4.2", "5.2", "6.1"]

# Combinations Django itself does not support; they show up as skipped sessions.
UNSUPPORTED = {
    # Django 4.2 stops at Python 3.12.
    ("3.13", "4.2"): "Django 4.2 does not support Python 3.13",
    # Django 6.x needs Python 3.12 or newer.
    ("3.10", "6.1"): "Django 6.1 needs Python 3.12 or newer",
    ("3.11", "6.1"): "Django 6.1 needs Python 3.12 or newer",
}

# Pinned so that a new release of a checker cannot turn an unchanged tree red.
LINT_TOOLS = ["ruff==0.17.6", "mypy==2.4.1"]

CI = bool(os.environ.get("CI"))

nox.options.sessions = ["lint", "tests", "wheels"]
# A missing interpreter only skips its sessions on a laptop; in CI it is an error, so that a
# run that tested fewer Pythons than it claims cannot pass.
nox.options.error_on_missing_interpreters = CI
# Reusing virtualenvs saves minutes locally; CI always starts from clean ones.
nox.options.reuse_existing_virtualenvs = not CI

# pyenv's shims only answer for the versions PYENV_VERSION (or .python-version) selects; putting
# each installed 3.1x's own bin directory on PATH lets nox find python3.10 ... python3.13
# without that.
_PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
for _bindir in sorted(_PYENV_ROOT.glob("versions/3.1*/bin")):
    if str(_bindir) not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] += os.pathsep + str(_bindir)


@nox.session(python=PYTHONS)
@nox.parametrize("django", DJANGOS)
def tests(session: nox.Session, django: str) -> None:
    """Run the test suite against the packages installed in editable mode."""
    reason = UNSUPPORTED.get((str(session.python), django))
    if reason:
        session.skip(reason)
    session.install(
        "-e",
        f"{CORE}[gevent,prometheus]",
        "-e",
        str(PSYCOPG3),
        f"Django~={django}.0",
        "pytest",
    )
    session.run("pytest", *session.posargs)


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """ruff (rules and formatting) and mypy, configured in the root pyproject.toml."""
    check_sibling_pins(session)
    session.install(*LINT_TOOLS, "-e", f"{CORE}[gevent,prometheus]", "-e", str(PSYCOPG3))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python="3.12")
def wheels(session: nox.Session) -> None:
    """Build sdists and wheels, install the wheels only, and run the smoke tests on them."""
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build")
    # build makes the sdist first and the wheel from it: a file missing from the sdist
    # fails here rather than for whoever installs from it.
    for project in (CORE, PSYCOPG3):
        session.run("python", "-m", "build", "--outdir", str(dist), str(project))

    # A reused virtualenv still has last run's 0.1.0, which pip would keep.
    session.run("pip", "uninstall", "--yes", "geventpool-core", "geventpool-psycopg3")
    core_wheel = _one(dist.glob("geventpool_core-*.whl"))
    psycopg3_wheel = _one(dist.glob("geventpool_psycopg3-*.whl"))
    session.install(f"{core_wheel}[gevent]", str(psycopg3_wheel), "pytest")
    session.run("python", "-c", _RESOLVES_TO_SITE_PACKAGES, str(ROOT / "packages"))

    # From a directory outside the repo nothing of packages/*/src can be imported; the root
    # pyproject.toml still provides the markers and the rest of the pytest configuration.
    run_dir = tmp / "run"
    run_dir.mkdir(exist_ok=True)
    with session.chdir(run_dir):
        session.run(
            "pytest",
            *("-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT)),
            *("-m", "smoke", "-p", "no:cacheprovider"),
            str(ROOT / "tests"),
            *session.posargs,
        )

    # Uninstalling a driver must leave the core importable and remove every file of the driver.
    session.run("pip", "uninstall", "--yes", "geventpool-psycopg3")
    session.run("python", "-c", _CORE_SURVIVES_DRIVER_UNINSTALL)


@nox.session(python="3.12")
def example(session: nox.Session) -> None:
    """Run examples/herd.py: MAX_CONNS under a herd of greenlets, beside Django without a pool."""
    session.install("-e", f"{CORE}[gevent]", "-e", str(PSYCOPG3))
    session.run("python", str(ROOT / "examples" / "herd.py"), *session.posargs)


_RESOLVES_TO_SITE_PACKAGES = """
import sys, sysconfig
from pathlib import Path
import django_db_geventpool.backends.postgresql_psycopg3.base as base
import django_db_geventpool.utils as utils

site = Path(sysconfig.get_paths()["purelib"]).resolve()
sources = Path(sys.argv[1]).resolve()
for module in (base, utils):
    where = Path(module.__file__).resolve()
    assert where.is_relative_to(site), f"{module.__name__} comes from {where}, not {site}"
    assert not where.is_relative_to(sources), f"{module.__name__} comes from {sources}"
    print(module.__name__, "->", where)
"""

_CORE_SURVIVES_DRIVER_UNINSTALL = """
import importlib.util
from pathlib import Path
import django_db_geventpool
import django_db_geventpool.core
import django_db_geventpool.utils

assert importlib.util.find_spec("django_db_geventpool.backends.postgresql_psycopg3") is None
# pip may leave the emptied namespace directory itself; no file may stay in it.
for root in django_db_geventpool.__path__:
    left = [str(p) for p in Path(root, "backends").rglob("*") if p.is_file()]
    assert not left, f"uninstalling geventpool-psycopg3 left {left}"
print("the core still imports; nothing of the driver is left")
"""


def check_sibling_pins(session: nox.Session) -> None:
    """Fail if a driver does not pin geventpool-core to the version in the tree."""
    version_file = CORE / "src" / "django_db_geventpool" / "core" / "version.py"
    version = _version_of(version_file)
    pyproject = (PSYCOPG3 / "pyproject.toml").read_text()
    pins = re.findall(r"geventpool-core(?:\[[^\]]*\])?==([^\"']+)", pyproject)
    if not pins or any(pin != version for pin in pins):
        session.error(f"{PSYCOPG3.name} pins geventpool-core=={pins}, but the core is {version}")


def _version_of(path: Path) -> str:
    match = re.search(r"^__version__ = [\"']([^\"']+)[\"']", path.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"no __version__ in {path}")
    return match.group(1)


def _one(paths: Iterable[Path]) -> Path:
    found = sorted(paths)
    if len(found) != 1:
        raise ValueError(f"expected one file, found {found}")
    return found[0]
