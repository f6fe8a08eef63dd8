"""ENGINE ``django_db_geventpool.backends.postgis``.

A package rather than ``base.py``: django-db-geventpool 4.x installs a ``base.py`` at this
very path, and Python imports a package before a module of the same name. So Django loads
this backend whichever of the two was installed last, and it can tell the user so
(`InstallationCheckMixin`) instead of running the old pool under this ENGINE name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_db_geventpool.backends.postgis import driver

_driver = driver.choose()

if TYPE_CHECKING:
    # Either driver's mixin is a DatabaseWrapperMixin; which one is known at run time.
    from django_db_geventpool.core.wrapper import DatabaseWrapperMixin as DriverMixin
else:
    # Before Django's PostGIS backend: the driver package makes Django's PostgreSQL backend
    # load its driver (psycopg2's hides psycopg 3 for that).
    DriverMixin = driver.mixin(_driver)

from django.contrib.gis.db.backends.postgis import base as postgis  # noqa: E402

from django_db_geventpool.core.installation import InstallationCheckMixin  # noqa: E402

driver.check_agrees(_driver, postgis.is_psycopg3)


class DatabaseWrapper(InstallationCheckMixin, DriverMixin, postgis.DatabaseWrapper):
    """GeoDjango's PostGIS wrapper, taking its connections from the pool.

    Nothing PostGIS-specific is redone here: Django's ``get_new_connection()`` runs on each
    connection the pool opens, so under psycopg 3 every one gets the geometry adapters once,
    and keeps them however often it is lent again.
    """
