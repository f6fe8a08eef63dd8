"""geventpool: a bounded PostgreSQL connection pool for Django on gevent and eventlet.

This file belongs to geventpool-core alone; the driver distributions (geventpool-psycopg3,
geventpool-psycopg2, geventpool-postgis) install their backends under
``django_db_geventpool/backends/`` and ship no ``__init__.py`` of their own up here, so that
removing one never removes a file another needs. It makes the package a regular one again,
as it was in django-db-geventpool 4.x (tools locate a backend's package by its
``__file__``), while staying a pkgutil-style namespace: `extend_path` adds the
``django_db_geventpool`` folder of every other ``sys.path`` entry, which is how the
distributions' separate ``src/`` trees merge in an editable install.

Nothing is imported here but `engines`, which needs only the standard library: gunicorn's
and Celery's hooks import the psycopg2 backend's ``green`` module through this package before
Django is set up, and a process may import it before monkey-patching. `engines` makes the
import of an ENGINE whose distribution is missing name the distribution to install.
"""

import sys
from pkgutil import extend_path

# Requires-Python says >=3.9 for PyPy 3.9's sake, and can't say "CPython from 3.10": on
# CPython 3.9 pip installs the package (without Django, which has no release geventpool runs
# on there), and this says so instead of an import error further down. noxfile.py checks the
# version against the oldest CPython the tests run.
if sys.implementation.name == "cpython" and sys.version_info < (3, 10):
    _UNSUPPORTED = (
        "geventpool runs on CPython 3.10 or newer, and on PyPy 3.9 (with Django 4.2); this is"
        f" CPython {sys.version.split()[0]} ({sys.executable}): install geventpool in a"
        " virtualenv of CPython 3.10 or newer"
    )
    try:
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        raise ImportError(_UNSUPPORTED) from None
    # Not an ImportError, which Django would report as "isn't an available database backend".
    raise ImproperlyConfigured(_UNSUPPORTED)

# After the check above: on CPython 3.9 nothing else of the package is imported.
from django_db_geventpool import engines

__path__ = extend_path(__path__, __name__)
engines.install_finder()


def __getattr__(name: str) -> str:
    # `version` is django-db-geventpool 4.x's name for it. Looked up on demand: the version
    # lives in the core's version module, and importing the core here would import the pool
    # before the process is patched.
    if name in ("__version__", "version"):
        from django_db_geventpool.core.version import __version__

        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "__version__", "version"])
