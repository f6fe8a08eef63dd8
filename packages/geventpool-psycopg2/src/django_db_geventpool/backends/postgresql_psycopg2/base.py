"""ENGINE ``django_db_geventpool.backends.postgresql_psycopg2``."""

from __future__ import annotations

# The wrapper module loads Django's PostgreSQL backend on psycopg2 (`postgresql`).
from django_db_geventpool.backends.postgresql_psycopg2.wrapper import Psycopg2Mixin, postgresql


class DatabaseWrapper(Psycopg2Mixin, postgresql.DatabaseWrapper):
    pass
