"""Which driver the PostGIS backend runs on, and the geventpool package that serves it.

Django's PostgreSQL backend picks its driver once, when first imported: psycopg 3 whenever
it can import it. The PostGIS backend runs on that driver, and the pool's side of it (its
checks, its quirks) comes from the matching geventpool driver package, not from here. When
the choice is still open, the driver package installed decides, psycopg 3 if both are: so
``geventpool-postgis[psycopg2]`` runs on psycopg2 even where psycopg 3 is installed too.

Nothing here imports Django's PostgreSQL modules: that would make the choice.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import TYPE_CHECKING, NamedTuple

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from django_db_geventpool.core.wrapper import DatabaseWrapperMixin

ENGINE = "django_db_geventpool.backends.postgis"
# Set once Django's PostgreSQL backend has chosen its driver.
_CHOSEN = "django.db.backends.postgresql.psycopg_any"


class Driver(NamedTuple):
    """A driver, and where the geventpool package for it keeps its wrapper mixin."""

    name: str
    #: The geventpool backend package of the driver.
    package: str
    #: The module of that package holding the mixin, imported before Django's backend.
    module: str
    mixin: str
    #: The extra of geventpool-postgis that installs the driver package.
    extra: str


PSYCOPG3 = Driver(
    "psycopg 3",
    "django_db_geventpool.backends.postgresql_psycopg3",
    "django_db_geventpool.backends.postgresql_psycopg3.wrapper",
    "Psycopg3Mixin",
    "psycopg3",
)
PSYCOPG2 = Driver(
    "psycopg2",
    "django_db_geventpool.backends.postgresql_psycopg2",
    "django_db_geventpool.backends.postgresql_psycopg2.wrapper",
    "Psycopg2Mixin",
    "psycopg2",
)


def choose() -> Driver:
    """Return the driver to run on: Django's, if it chose already, else the one installed."""
    chosen = sys.modules.get(_CHOSEN)
    if chosen is not None:
        return PSYCOPG3 if chosen.is_psycopg3 else PSYCOPG2
    for driver in (PSYCOPG3, PSYCOPG2):
        if _installed(driver.package):
            return driver
    raise ImproperlyConfigured(
        f"{ENGINE} needs a geventpool driver package: install it with"
        f' `pip install "geventpool-postgis[{PSYCOPG3.extra}]"` (or'
        f' "geventpool-postgis[{PSYCOPG2.extra}]" for psycopg2)'
    )


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:
        # How geventpool-core's finder answers for an ENGINE whose distribution is missing.
        return False


def mixin(driver: Driver) -> type[DatabaseWrapperMixin]:
    """Return the wrapper mixin of the geventpool package of `!driver`.

    Importing it makes Django's PostgreSQL backend load that driver, if it hasn't loaded one
    yet. Raise `ImproperlyConfigured` naming the extra to install if the package is missing.
    """
    try:
        module = importlib.import_module(driver.module)
    except ModuleNotFoundError as ex:
        # Only the driver package itself missing is a setup problem; a module missing
        # inside it is a bug, shown as it is.
        if ex.name is None or not (driver.module + ".").startswith(ex.name + "."):
            raise
        raise ImproperlyConfigured(
            f"{ENGINE} runs on {driver.name}, which Django's PostgreSQL backend has loaded,"
            f" but geventpool-{driver.extra} is not installed: install it with"
            f' `pip install "geventpool-postgis[{driver.extra}]"`'
        ) from None
    found: type[DatabaseWrapperMixin] = getattr(module, driver.mixin)
    return found


def check_agrees(driver: Driver, is_psycopg3: bool) -> None:
    """Raise `ImproperlyConfigured` if Django's backend loaded another driver than `!driver`."""
    if is_psycopg3 == (driver is PSYCOPG3):
        return
    loaded = PSYCOPG3 if is_psycopg3 else PSYCOPG2
    raise ImproperlyConfigured(
        f"{ENGINE} was set to run on {driver.name}, but Django's PostgreSQL backend had"
        f" already loaded {loaded.name}, and a process can only use one of the two: install"
        f' `pip install "geventpool-postgis[{loaded.extra}]"`, or make every database of'
        f" the process use {driver.name}"
    )
