"""Fresh virtualenvs that install the wheels built from this tree, as users install them.

GEVENTPOOL_DIST names the folder of wheels to install (`nox -s install` builds them); without
it the wheels are built once per test session, which needs `build` installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from support.project import Project
from support.venvs import Venv, build_dists

DIST_VARIABLE = "GEVENTPOOL_DIST"


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding a wheel of each of our distributions."""
    given = os.environ.get(DIST_VARIABLE)
    if given:
        return Path(given).resolve()
    try:
        import build  # noqa: F401
    except ImportError:
        pytest.fail(
            f"set {DIST_VARIABLE} to a folder of built wheels, or `pip install build` to let"
            " the tests build them",
            pytrace=False,
        )
    return build_dists(tmp_path_factory.mktemp("dist"))


@pytest.fixture
def make_venv(tmp_path: Path, dist: Path) -> Callable[[str], Venv]:
    """Make a fresh virtualenv, named for the test, that installs our wheels from `dist`."""

    def make(name: str = "venv") -> Venv:
        return Venv(tmp_path / name, dist)

    return make


@pytest.fixture
def project(tmp_path: Path, pg, fresh_db) -> Project:
    """A Django project on a fresh database of the tests' server."""
    return Project(tmp_path / "project", pg.env(fresh_db))
