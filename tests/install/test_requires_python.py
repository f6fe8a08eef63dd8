"""What CPython 3.9 gets, which Requires-Python (>=3.9, for PyPy 3.9) lets pip install on.

geventpool runs on CPython 3.10 or newer and on PyPy 3.9; on CPython 3.9 the error must say
that, rather than pip or Django blaming Django's Python.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from support.venvs import Venv

PSYCOPG2_ENGINE = "django_db_geventpool.backends.postgresql_psycopg2"
SAYS = "geventpool runs on CPython 3.10 or newer, and on PyPy 3.9 (with Django 4.2)"


@pytest.fixture
def cpython39(tmp_path: Path, dist: Path) -> Venv:
    """A virtualenv of CPython 3.9: pyenv's, else python3.9 on PATH."""
    # pyenv's own folder rather than its shim, which answers only for the selected versions.
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = sorted(pyenv.glob("versions/3.9*/bin/python3.9"))
    found = str(installed[-1]) if installed else shutil.which("python3.9")
    if found is None:
        message = "CPython 3.9 is not installed (pyenv install 3.9)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return Venv(tmp_path / "cpython39", dist, python=found)


def test_cpython39_is_told_which_pythons_geventpool_runs_on(cpython39, project):
    venv = cpython39
    version = venv.ok(["python", "-c", "import sys; print(sys.implementation.name, sys.version)"])
    assert version.startswith("cpython 3.9."), version

    # psycopg 3 and PostGIS claim what their tests run: CPython 3.10 or newer.
    refused = venv.run("pip install geventpool-psycopg3")
    assert refused.returncode == 1, refused.stdout
    assert "Requires-Python >=3.10" in refused.stdout or "not in '>=3.10'" in refused.stdout

    # The core and psycopg2 admit 3.9, for PyPy: they install, with no Django for 3.9.
    venv.ok('pip install "geventpool-psycopg2[binary]"')
    assert "django" not in venv.installed()
    imported = venv.run(["python", "-c", "import django_db_geventpool"])
    assert imported.returncode == 1, imported.stdout
    assert f"ImportError: {SAYS}; this is CPython 3.9." in imported.stdout

    # With a Django that runs on 3.9, the backend says the same, not "isn't an available
    # database backend".
    venv.ok('pip install "Django>=4.2,<4.3"')
    query = project.query(venv, PSYCOPG2_ENGINE)
    assert query.returncode == 1, query.stdout
    assert f"django.core.exceptions.ImproperlyConfigured: {SAYS}" in query.stdout
    assert "isn't an available database backend" not in query.stdout
