"""Test database creation that knows pooled connections hold the test database open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.backends.postgresql.creation import DatabaseCreation as _Base
else:
    _Base = object


class DatabaseCreationMixin(_Base):
    """Close the alias's pool before PostgreSQL needs the test database to itself.

    ``CREATE DATABASE ... TEMPLATE`` (parallel test runs) and ``DROP DATABASE`` fail while
    any session is connected to the database; the pool's idle connections are sessions.
    Django 5.1 and later do this for their own pool; this covers 4.2 too. The wrapper
    mixin puts it before the creation class of the Django wrapper it is composed with.
    """

    def _clone_test_db(self, suffix: Any, verbosity: int, keepdb: bool = False) -> None:
        self.connection.close()
        self.connection.close_pool()
        super()._clone_test_db(suffix, verbosity, keepdb)

    def _destroy_test_db(self, test_database_name: str, verbosity: int) -> None:
        self.connection.close_pool()
        super()._destroy_test_db(test_database_name, verbosity)
