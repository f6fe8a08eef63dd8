"""ENGINE ``django_db_geventpool.backends.postgresql_psycopg``, the same as ``..._psycopg3``."""

from django_db_geventpool.backends.postgresql_psycopg3.base import DatabaseWrapper

__all__ = ["DatabaseWrapper"]
