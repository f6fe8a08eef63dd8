"""The mixin that makes a Django PostgreSQL ``DatabaseWrapper`` use the pool."""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from django.db.backends.base.base import NO_DB_ALIAS

from django_db_geventpool.core import registry
from django_db_geventpool.core.connection import server_timezone, transaction_status
from django_db_geventpool.core.creation import DatabaseCreationMixin
from django_db_geventpool.core.options import POOL_OPTIONS, PoolOptions
from django_db_geventpool.core.pool import ConnectionPool
from django_db_geventpool.core.pooled import PooledConnection
from django_db_geventpool.core.runtime import Runtime
from django_db_geventpool.core.validation import DatabaseValidation

if TYPE_CHECKING:
    from django.db.backends.postgresql.base import DatabaseWrapper as _Base
else:
    _Base = object

# What Django's get_new_connection() set on the wrapper that opened a pool's first
# connection (`pooled_wrapper_attributes`), for the wrappers that are lent its connections.
# Every connection of a pool is opened with the same settings, so one dict a pool.
_opened_with: weakref.WeakKeyDictionary[ConnectionPool[Any], dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


class DatabaseWrapperMixin(_Base):
    """Take the wrapper's connections from the process's pool of its database alias.

    Put it before Django's wrapper class in the bases. Django's own code opens and sets up
    each connection (adapters, time zone, role, isolation level) once, when the pool opens
    it; closing the wrapper gives the connection back instead of closing it.
    """

    validation_class = DatabaseValidation

    #: Attributes Django's ``get_new_connection()`` sets on the wrapper: a wrapper that is
    #: lent a connection opened by another one gets the values that one computed.
    pooled_wrapper_attributes: tuple[str, ...] = ("isolation_level",)

    connection: Any

    #: Reads a connection's TransactionStatus locally; a driver may offer a faster one.
    pool_transaction_status: Callable[[Any], int] = staticmethod(transaction_status)
    #: Reads a connection's TimeZone locally; a driver may offer a faster one.
    pool_server_timezone: Callable[[Any], str | None] = staticmethod(server_timezone)

    # The pool the current connection was taken from, and the connection as the pool lent
    # it; None if not pooled.
    _geventpool_pool: ConnectionPool[Any] | None = None
    _geventpool_pooled: PooledConnection[Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The core imports none of Django's PostgreSQL modules (they would pick a driver):
        # the creation class is composed with the Django wrapper's own, here.
        super().__init_subclass__(**kwargs)
        creation = getattr(cls, "creation_class", None)
        if creation is not None and not issubclass(creation, DatabaseCreationMixin):
            cls.creation_class = type(
                creation.__name__,
                (DatabaseCreationMixin, creation),
                {"__module__": cls.__module__, "__qualname__": creation.__qualname__},
            )

    @property
    def geventpool(self) -> ConnectionPool[Any] | None:
        """The pool of this database alias in this process, if it was created yet."""
        return registry.get(self.alias)

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
        pool = registry.acquire(self.alias, key, self._create_geventpool)
        pooled = pool.checkout(
            connect=functools.partial(self._open_pooled_connection, pool, conn_params),
            holder=self,
        )
        self._geventpool_pool = pool
        self._geventpool_pooled = pooled
        self.__dict__.update(_opened_with[pool])
        if pooled.initialized:
            # Django's connect() takes every connection it gets as new, hence healthy; a
            # reused one gets the check CONN_HEALTH_CHECKS asks for, before its first query.
            self.health_check_done = False
        return pooled.conn

    def _open_pooled_connection(
        self, pool: ConnectionPool[Any], conn_params: dict[str, Any]
    ) -> Any:
        # Run in the background, for whichever wrapper ends up with the connection.
        bound = pool.connect_bound
        if bound is not None and "connect_timeout" not in conn_params:
            # What bounds a connect where the pool can't interrupt one (plain threads).
            # libpq takes whole seconds, and 2 at least.
            conn_params = {**conn_params, "connect_timeout": max(2, math.ceil(bound))}
        conn = super().get_new_connection(conn_params)
        _opened_with[pool] = {
            name: getattr(self, name)
            for name in self.pooled_wrapper_attributes
            if hasattr(self, name)
        }
        return conn

    def _create_geventpool(self) -> ConnectionPool[Any]:
        options = PoolOptions.from_settings(self.alias, self.settings_dict)
        pool: ConnectionPool[Any] = ConnectionPool(
            name=self.alias,
            **options.pool_arguments(),
            server=server_address(self.settings_dict),
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
        pooled = self._geventpool_pooled
        if pooled is None:
            super().init_connection_state()
        elif not pooled.initialized or self._geventpool_resets_sessions():
            super().init_connection_state()
            pooled.initialized = True
        elif self._geventpool_timezone_differs():
            # The connection's time zone is not the one this wrapper wants: a user ran
            # SET TIME ZONE, or TIME_ZONE changed since (override_settings).
            super().init_connection_state()

    def _geventpool_resets_sessions(self) -> bool:
        """Whether the pool's reset query undoes Django's setup of a session on every return."""
        pool = self._geventpool_pool
        return pool is not None and pool.reset_query is not None

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
        pool = self._geventpool_pool
        pooled = self._geventpool_pooled
        if pool is None or pooled is None:
            return super()._close()  # type: ignore[no-any-return]
        self.geventpool_forget()
        with self.wrap_database_errors:
            pool.checkin(pooled)
        return None

    def geventpool_is_shared(self) -> bool:
        """Whether other threads or greenlets may use this wrapper (`inc_thread_sharing`)."""
        return bool(self.allow_thread_sharing)

    def geventpool_forget(self) -> None:
        """Drop the pooled connection: given back, or taken back after its borrower ended."""
        self.connection = None
        self._geventpool_pool = None
        self._geventpool_pooled = None

    def close_pool(self) -> None:
        """Close this alias's pool (Django calls this where pooled connections must go)."""
        registry.discard(self.alias)
        parent = getattr(super(), "close_pool", None)
        if parent is not None:
            parent()


def server_address(settings_dict: Mapping[str, Any]) -> str:
    """Where a database's connections go, for error messages: host and port, no secrets."""
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    if str(host).startswith("/"):
        return f"{host}/.s.PGSQL.{port}"
    return f"{host}:{port}"
