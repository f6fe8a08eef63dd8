"""An ENGINE whose distribution is missing fails to import with the distribution to install."""

from __future__ import annotations

import importlib
import sys
from importlib.machinery import PathFinder

import pytest

import django_db_geventpool
from django_db_geventpool import engines

PACKAGE = "django_db_geventpool.backends"


@pytest.mark.parametrize(("engine", "distribution"), sorted(engines.ENGINES.items()))
def test_an_engine_no_finder_found_names_its_distribution(engine, distribution):
    with pytest.raises(ModuleNotFoundError) as exc:
        engines.FINDER.find_spec(f"{PACKAGE}.{engine}", None)
    assert str(exc.value) == (
        f"{PACKAGE}.{engine} is in the {distribution} distribution, which isn't installed:"
        f" install it with `pip install {distribution}`"
    )
    # What the import system would have named: a caller telling a missing package from a
    # missing module inside it still can.
    assert exc.value.name == f"{PACKAGE}.{engine}"


def test_no_driver_distribution_at_all_names_each_with_its_engines():
    with pytest.raises(ModuleNotFoundError) as exc:
        engines.FINDER.find_spec(PACKAGE, None)
    assert str(exc.value) == (
        f"{PACKAGE} comes with geventpool's driver distributions, and none is installed:"
        " install the one of your ENGINE"
        " (`pip install geventpool-psycopg3` for postgresql_psycopg3 or postgresql_psycopg;"
        " `pip install geventpool-psycopg2` for postgresql_psycopg2;"
        " `pip install geventpool-postgis` for postgis)"
    )
    assert exc.value.name == PACKAGE


@pytest.mark.parametrize(
    "name",
    [
        f"{PACKAGE}.postgresql_psycopg3.base",
        f"{PACKAGE}.mysql",
        "django_db_geventpool.postgis",
        "django.db.backends.postgis",
        "postgis",
        "json",
    ],
)
def test_the_finder_leaves_every_other_name_to_the_import_system(name):
    assert engines.FINDER.find_spec(name, None) is None


def test_the_finder_comes_after_every_finder_of_installed_modules():
    assert sys.meta_path.index(engines.FINDER) > sys.meta_path.index(PathFinder)
    assert sys.meta_path.count(engines.FINDER) == 1
    importlib.reload(django_db_geventpool)
    assert sys.meta_path.count(engines.FINDER) == 1
    # An installed ENGINE (editable here, from its own src/ folder) imports as ever.
    module = importlib.import_module(f"{PACKAGE}.postgresql_psycopg3.version")
    assert module.__name__ == f"{PACKAGE}.postgresql_psycopg3.version"


def test_django_points_at_the_distribution_to_install(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured
    from django.db.utils import load_backend

    # An ENGINE no distribution here installs, through the real import system.
    monkeypatch.setitem(engines.ENGINES, "postgresql_elsewhere", "geventpool-elsewhere")
    with pytest.raises(ImproperlyConfigured, match="isn't an available database backend") as exc:
        load_backend(f"{PACKAGE}.postgresql_elsewhere")
    cause = exc.value.__cause__
    assert isinstance(cause, ModuleNotFoundError)
    assert "install it with `pip install geventpool-elsewhere`" in str(cause)
