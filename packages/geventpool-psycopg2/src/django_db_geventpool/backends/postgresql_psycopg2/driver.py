"""Which psycopg2 the process uses, and Django's PostgreSQL backend bound to it."""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import cast

from django.core.exceptions import ImproperlyConfigured

ENGINE = "django_db_geventpool.backends.postgresql_psycopg2"
DISTRIBUTION = "geventpool-psycopg2"


def load() -> ModuleType:
    """Return the ``psycopg2`` module: psycopg2 itself, else psycopg2cffi registered as it.

    Raise `ImproperlyConfigured` naming the extra to install if there is neither.
    """
    loaded = sys.modules.get("psycopg2")
    # psycopg2cffi registered by someone else still needs the additions Django relies on.
    if loaded is None or loaded.__name__ != "psycopg2cffi":
        try:
            import psycopg2
        except ModuleNotFoundError as ex:
            # Only psycopg2 itself missing; a psycopg2 that fails to load (its libpq gone)
            # says why on its own.
            if ex.name != "psycopg2":
                raise
        else:
            if getattr(psycopg2, "__file__", None) is not None:
                # psycopg2 ships no type information: to mypy it is Any.
                return cast(ModuleType, psycopg2)
            # A directory named psycopg2 on sys.path (a test folder, say) imported as a
            # namespace package: it is not the driver.
            del sys.modules["psycopg2"]
    try:
        from django_db_geventpool.backends.postgresql_psycopg2 import cffi_compat

        return cffi_compat.register()
    except ModuleNotFoundError as ex:
        if ex.name != "psycopg2cffi":
            raise
    if platform.python_implementation() == "PyPy":
        raise ImproperlyConfigured(
            f"{ENGINE} needs psycopg2cffi on PyPy, where psycopg2 doesn't build:"
            " `pip install psycopg2cffi` (geventpool-psycopg2 requires it there)"
        )
    raise ImproperlyConfigured(
        f"{ENGINE} needs psycopg2, and none is installed: the application chooses which."
        f' `pip install "{DISTRIBUTION}[binary]"` installs the psycopg2-binary wheel, with'
        f' libpq inside; `pip install "{DISTRIBUTION}[c]"` builds psycopg2 against this'
        " machine's libpq (it needs pg_config and a C compiler)"
    )


def django_backend() -> ModuleType:
    """Return ``django.db.backends.postgresql.base``, made sure to run on psycopg2.

    Django's backend picks psycopg 3 whenever it can import it, once, when first imported.
    Loaded here first, it is loaded with psycopg 3 out of sight, so a process that has both
    drivers installed uses psycopg2 as this ENGINE asks. Loaded earlier by something else,
    it can't change drivers any more: that is refused now rather than failing on each query.
    """
    if "django.db.backends.postgresql.psycopg_any" not in sys.modules:
        load()
        with _psycopg3_hidden():
            from django.db.backends.postgresql import base
    else:
        from django.db.backends.postgresql import base
    backend: ModuleType = base
    if backend.is_psycopg3:
        raise ImproperlyConfigured(
            f"{ENGINE} can't run: Django's PostgreSQL backend was already loaded with"
            " psycopg 3, and a process can only use one of the two drivers. It is loaded"
            " early by 'django.contrib.postgres' in INSTALLED_APPS and by any database whose"
            " ENGINE uses psycopg 3. Uninstall psycopg 3 (`pip uninstall psycopg"
            " psycopg-binary`), or use django_db_geventpool.backends.postgresql_psycopg3"
            " for every database"
        )
    return backend


@contextmanager
def _psycopg3_hidden() -> Iterator[None]:
    # None in sys.modules makes `import psycopg` raise ImportError; modules that already
    # imported psycopg keep their reference.
    saved = sys.modules.get("psycopg")
    sys.modules["psycopg"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["psycopg"]
        else:
            sys.modules["psycopg"] = saved
