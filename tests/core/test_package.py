"""The top-level package is a regular one again, as in django-db-geventpool 4.x."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import django_db_geventpool
from django_db_geventpool.core import version


@pytest.mark.smoke
def test_the_package_has_a_file_and_a_version():
    # Tools find a backend's package by its __file__ (Django's admin_scripts tests do).
    assert django_db_geventpool.__file__ is not None
    assert Path(django_db_geventpool.__file__).name == "__init__.py"
    assert django_db_geventpool.__version__ == version.__version__
    # django-db-geventpool 4.x's name for it.
    assert django_db_geventpool.version == version.__version__
    assert {"__version__", "version"} <= set(dir(django_db_geventpool))
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        django_db_geventpool.nothing  # noqa: B018


@pytest.mark.smoke
def test_the_drivers_folders_merge_into_the_package():
    # In an editable install each distribution's src/ is a separate folder on sys.path.
    module = importlib.import_module("django_db_geventpool.backends.postgresql_psycopg3.version")
    folder = Path(module.__file__).parents[2]
    assert folder in {Path(path) for path in django_db_geventpool.__path__}
