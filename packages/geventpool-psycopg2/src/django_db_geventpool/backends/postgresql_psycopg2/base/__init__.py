"""ENGINE ``django_db_geventpool.backends.postgresql_psycopg2``.

A package rather than ``base.py``: django-db-geventpool 4.x installs a ``base.py`` at this
very path, and Python imports a package before a module of the same name. So Django loads
this backend whichever of the two was installed last, and it can tell the user so
(`InstallationCheckMixin`) instead of running the old pool under this ENGINE name.
"""

from __future__ import annotations

# The wrapper module loads Django's PostgreSQL backend on psycopg2 (`postgresql`).
from django_db_geventpool.backends.postgresql_psycopg2.wrapper import Psycopg2Mixin, postgresql
from django_db_geventpool.core.installation import InstallationCheckMixin


class DatabaseWrapper(InstallationCheckMixin, Psycopg2Mixin, postgresql.DatabaseWrapper):
    pass
