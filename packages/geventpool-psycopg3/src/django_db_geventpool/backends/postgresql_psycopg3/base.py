"""ENGINE ``django_db_geventpool.backends.postgresql_psycopg3``."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as postgresql

from django_db_geventpool.backends.postgresql_psycopg3.wrapper import Psycopg3Mixin

if not postgresql.is_psycopg3:
    raise ImproperlyConfigured(
        "django_db_geventpool.backends.postgresql_psycopg3 needs psycopg 3, but Django"
        " loaded psycopg2: install it with `pip install geventpool-psycopg3`, or use"
        " the django_db_geventpool.backends.postgresql_psycopg2 ENGINE"
    )


class DatabaseWrapper(Psycopg3Mixin, postgresql.DatabaseWrapper):
    pass
