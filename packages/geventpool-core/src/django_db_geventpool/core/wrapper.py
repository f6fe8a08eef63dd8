"""The mixin that makes a Django PostgreSQL ``DatabaseWrapper`` use the pool."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import NO_DB_ALIAS

from django_db_geventpool.core import registry
from django_db_geventpool.core.connection import server_timezone, transaction_status
from django_db_geventpool.core.creation import DatabaseCreation
from django_db_geventpool.core.options import POOL_OPTIONS, PoolOptions
from django_db_geventpool.core.pool import ConnectionPool
from django_db_geventpool.core.runtime import Runtime
from django_db_geventpool.core.validation import DatabaseValidation

if TYPE_CHECKING:
    from django.db.backends.postgresql.base import DatabaseWrapper as _Base
else:
    _Base = object


class DatabaseWrapperMixin(_Base):
    """Take the wrapper's connections from the process's pool of its database alias.

    Put it before Django's wrapper class in the bases. Django's own code opens and sets up
    each connection (adapters, time zone, role, isolation level) once, when the pool opens
    it; closing the wrapper gives the connection back instead of closing it.
    """

    creation_class = DatabaseCreation
    validation_class = DatabaseValidation

    #: Attributes Django's ``get_new_connection()`` sets on the wrapper: a wrapper that is
    #: lent a connection opened by another one gets the values that one computed.
    pooled_wrapper_attributes: tuple[str, ...] = ("isolation_level",)

    connection: Any

    #: Reads a connection's TransactionStatus locally; a driver may offer a faster one.
    pool_transaction_status: Callable[[Any], int] = staticmethod(transaction_status)
    #: Reads a connection's TimeZone locally; a driver may offer a faster one.
    pool_server_timezone: Callable[[Any], str | None] = staticmethod(server_timezone)

    # The pool the current connection was taken from, None if not pooled.
    _geventpool_entry: registry.PoolEntry | None = None
    # Whether the current connection was opened for this checkout.
    _geventpool_fresh = False

    @property
    def geventpool(self) -> ConnectionPool[Any] | None:
        """The pool of this database alias in this process, if it was created yet."""
        entry = registry.get(self.alias)
        return entry.pool if entry is not None else None

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        for key in POOL_OPTIONS:
            params.pop(key, None)
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if self.alias == NO_DB_ALIAS:
            # Django's maintenance connections (to the 'postgres' database) are short-lived.
            return super().get_new_connection(conn_params)
        options = self.settings_dict["OPTIONS"]
        # All of OPTIONS, not only what reaches the driver: Django applies assume_role and
        # isolation_level itself, to connections the pool opens.
        key = (conn_params, {**options})
        entry = registry.acquire(self.alias, key, self._create_geventpool)
        self._geventpool_fresh = False
        conn = entry.pool.getconn(
            connect=functools.partial(self._open_pooled_connection, conn_params)
        )
        self._geventpool_entry = entry
        if self._geventpool_fresh:
            entry.wrapper_state = {
                name: getattr(self, name)
                for name in self.pooled_wrapper_attributes
                if hasattr(self, name)
            }
        else:
            self.__dict__.update(entry.wrapper_state)
            # Django's connect() takes every connection it gets as new, hence healthy; a
            # reused one gets the check CONN_HEALTH_CHECKS asks for, before its first query.
            self.health_check_done = False
        return conn

    def _open_pooled_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = super().get_new_connection(conn_params)
        self._geventpool_fresh = True
        return conn

    def _create_geventpool(self) -> ConnectionPool[Any]:
        options = PoolOptions.from_settings(self.alias, self.settings_dict)
        pool: ConnectionPool[Any] = ConnectionPool(
            name=self.alias,
            max_size=options.max_conns,
            max_idle=options.reuse_conns,
            timeout=options.checkout_timeout,
            ping_after=options.ping_after,
            max_lifetime=options.max_lifetime,
            max_idle_time=options.max_idle_time,
            reset_query=options.reset_query,
            leak_timeout=options.leak_timeout,
            transaction_status=self.pool_transaction_status,
            error_base=self.Database.OperationalError,
        )
        self.check_pool_runtime(pool.runtime)
        return pool

    def check_pool_runtime(self, runtime: Runtime) -> None:
        """Raise ImproperlyConfigured if the driver can't cooperate with `!runtime`."""

    def init_connection_state(self) -> None:
        # A reused connection was set up when it was opened: doing it again on every
        # checkout would cost a round trip or more. Unless a reset query (DISCARD ALL)
        # undid the setup: then the time zone and role are set again.
        entry = self._geventpool_entry
        if entry is None or self._geventpool_fresh or entry.pool.reset_query is not None:
            super().init_connection_state()
        elif self._geventpool_timezone_differs():
            # The connection's time zone is not the one this wrapper wants: a user ran
            # SET TIME ZONE, or TIME_ZONE changed since (override_settings).
            super().init_connection_state()

    def _geventpool_timezone_differs(self) -> bool:
        # No round trip: the driver keeps the TimeZone the server last reported. Not
        # Django's ensure_timezone(), which closes the pool on Django >= 5.1.
        wanted = self.timezone_name
        return bool(wanted) and self.pool_server_timezone(self.connection) != wanted

    def _set_autocommit(self, autocommit: bool) -> None:
        # Django's connect() sets autocommit on every connection it gets, and a pooled one
        # almost always has it already: asking the driver again costs more than the read.
        if self.connection.autocommit != autocommit:
            super()._set_autocommit(autocommit)

    def _close(self) -> None:
        entry = self._geventpool_entry
        if entry is None:
            return super()._close()  # type: ignore[no-any-return]
        conn: Any = self.connection
        self.connection = None
        self._geventpool_entry = None
        with self.wrap_database_errors:
            entry.pool.putconn(conn)
        return None

    def close_pool(self) -> None:
        """Close this alias's pool (Django calls this where pooled connections must go)."""
        registry.discard(self.alias)
        parent = getattr(super(), "close_pool", None)
        if parent is not None:
            parent()
