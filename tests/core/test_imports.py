"""Importing the driver-neutral core chooses no driver: each driver's base.py does."""

from __future__ import annotations

import json
import subprocess
import sys

# Every module of the core, imported in a fresh interpreter; what it loaded is printed.
_IMPORT_THE_CORE = """
import importlib, json, pkgutil, sys
import django_db_geventpool.core as core

for module in pkgutil.iter_modules(core.__path__):
    if module.name == "prometheus" and importlib.util.find_spec("prometheus_client") is None:
        continue
    importlib.import_module(f"{core.__name__}.{module.name}")
print(json.dumps(sorted(sys.modules)))
"""

DRIVERS = {"psycopg", "psycopg2", "psycopg2cffi", "django.db.backends.postgresql"}


def test_importing_the_core_loads_no_driver():
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_THE_CORE], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(proc.stdout))
    assert "django_db_geventpool.core.wrapper" in loaded
    assert not loaded & DRIVERS, loaded & DRIVERS
    assert not any(name.startswith(("psycopg", "django.db.backends.postgresql")) for name in loaded)


_COMPOSED = """
from django.db.backends.postgresql.creation import DatabaseCreation

from django_db_geventpool.backends.postgresql_psycopg3.base import DatabaseWrapper
from django_db_geventpool.core.creation import DatabaseCreationMixin

mro = DatabaseWrapper.creation_class.__mro__
assert mro[1:3] == (DatabaseCreationMixin, DatabaseCreation), mro
"""


def test_a_backend_composes_the_core_with_djangos_classes():
    # In a fresh interpreter: loading Django's PostgreSQL backend here would choose a driver
    # for every later test of this process.
    subprocess.run([sys.executable, "-c", _COMPOSED], check=True)
