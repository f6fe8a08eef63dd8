"""ENGINE ``django_db_geventpool.backends.postgresql_psycopg3``.

A package rather than ``base.py``: django-db-geventpool 4.x installs a ``base.py`` at this
very path, and Python imports a package before a module of the same name. So Django loads
this backend whichever of the two was installed last, and it can tell the user so
(`InstallationCheckMixin`) instead of running the old pool under this ENGINE name.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from django_db_geventpool.backends.postgresql_psycopg3 import driver

# Before Django's backend, which would report a psycopg that can't load as "Error loading
# psycopg2 or psycopg module", or run on psycopg2 if that is installed.
driver.load()

from django.db.backends.postgresql import base as postgresql  # noqa: E402

from django_db_geventpool.backends.postgresql_psycopg3.wrapper import Psycopg3Mixin  # noqa: E402
from django_db_geventpool.core.installation import InstallationCheckMixin  # noqa: E402

if not postgresql.is_psycopg3:
    raise ImproperlyConfigured(
        "django_db_geventpool.backends.postgresql_psycopg3 needs psycopg 3, but Django"
        " loaded psycopg2: install it with `pip install geventpool-psycopg3`, or use"
        " the django_db_geventpool.backends.postgresql_psycopg2 ENGINE"
    )


class DatabaseWrapper(InstallationCheckMixin, Psycopg3Mixin, postgresql.DatabaseWrapper):
    pass
