"""The mixin that makes a Django PostgreSQL ``DatabaseWrapper`` use the pool."""

from __future__ import annotations

import _thread
import functools
import math
import os
import threading
import time
from asyncio import _get_running_loop
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import SynchronousOnlyOperation
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.signals import connection_created

# `checks` for the system checks it registers: Django learns of them as it imports a backend.
from django_db_geventpool.core import checks, loops, registry  # noqa: F401
from django_db_geventpool.core.connection import (
    cancel_in_thread,
    server_timezone,
    transaction_status,
)
from django_db_geventpool.core.creation import DatabaseCreationMixin
from django_db_geventpool.core.options import POOL_OPTIONS, PoolOptions
from django_db_geventpool.core.pool import ConnectionPool
from django_db_geventpool.core.pooled import PooledConnection
from django_db_geventpool.core.runtime import Runtime

if TYPE_CHECKING:
    from django.db.backends.postgresql.base import DatabaseWrapper as _Base
else:
    _Base = object

_F = TypeVar("_F", bound=Callable[..., Any])


def async_unsafe(func: _F) -> _F:
    """Django's ``async_unsafe`` guard, for the methods it guards in Django's wrapper.

    Django asks ``asyncio.get_running_loop()``, which raises when no loop runs (always,
    in a gevent or eventlet process): an exception on every checkout and every query.
    asyncio's ``_get_running_loop()`` answers the same question with None instead, in a
    fifth of the time.
    """

    @functools.wraps(func)
    def inner(*args: Any, **kwargs: Any) -> Any:
        if _get_running_loop() is not None and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
            raise SynchronousOnlyOperation(_ASYNC_UNSAFE_MESSAGE)
        return func(*args, **kwargs)

    return inner  # type: ignore[return-value]


# Django's own words for it (django.utils.asyncio).
_ASYNC_UNSAFE_MESSAGE = (
    "You cannot call this from an async context - use a thread or sync_to_async."
)

#: The settings Django's PostgreSQL ``get_connection_params()`` builds a connection from.
#: A pool is made for one set of their values, and replaced when they change.
CONNECTION_SETTINGS = ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")


def connection_settings(settings_dict: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a pool is made for: a copy of the database's `CONNECTION_SETTINGS`.

    OPTIONS is copied: a test that changes it in place must not change the copy.
    """
    return (
        *(settings_dict[name] for name in CONNECTION_SETTINGS[:-1]),
        {**settings_dict["OPTIONS"]},
    )


class _Route:
    """Where an alias's wrappers take connections from, while its settings stay the same.

    Found by alias with no lock and compared with a tuple, so that nearly every checkout
    reaches its pool without Django's ``get_connection_params()`` and the registry.
    """

    __slots__ = ("attributes", "key", "opener", "pool")

    def __init__(
        self, key: tuple[Any, ...], pool: ConnectionPool[Any], opener: DatabaseWrapperMixin
    ) -> None:
        self.key = key
        self.pool = pool
        #: The wrapper that opens the pool's connections (in the background, for whichever
        #: wrapper ends up with them): one of its own, so that no wrapper in use is touched.
        self.opener = opener
        #: What Django's ``get_new_connection()`` set on the opener
        #: (`~DatabaseWrapperMixin.pooled_wrapper_attributes`), for the wrappers lent its
        #: connections: the same for every connection of a pool.
        self.attributes: dict[str, Any] = {}

    def connect(self) -> Any:
        return self.opener._open_pooled_connection(self)


# By alias; replaced by whichever wrapper finds its pool closed or its settings changed.
_routes: dict[str, _Route] = {}
# Held only while a route is looked up or made, never across a switch (as the registry's).
_routes_lock = threading.Lock()


def _forget_after_fork() -> None:
    # The child's pools start empty (see the registry), so do its routes; and another
    # thread may have held the lock at the fork.
    global _routes_lock
    _routes_lock = threading.Lock()
    _routes.clear()


os.register_at_fork(after_in_child=_forget_after_fork)

# Async views, and the sync views served beside them, need asyncio's running loop kept per
# greenlet (see `loops`): from here, as Django loads the backend while it sets up, before
# any request; and again as each pool is made, for a process patched after loading it.
loops.install()


class DatabaseWrapperMixin(_Base):
    """Take the wrapper's connections from the process's pool of its database alias.

    Put it before Django's wrapper class in the bases. Django's own code opens and sets up
    each connection (adapters, time zone, role, isolation level) once, when the pool opens
    it; closing the wrapper gives the connection back instead of closing it.
    """

    #: Attributes Django's ``get_new_connection()`` sets on the wrapper: a wrapper that is
    #: lent a connection opened by another one gets the values that one computed.
    pooled_wrapper_attributes: tuple[str, ...] = ("isolation_level",)

    connection: Any

    #: Reads a connection's TransactionStatus locally; a driver may offer a faster one.
    pool_transaction_status: Callable[[Any], int] = staticmethod(transaction_status)
    #: Reads a connection's TimeZone locally; a driver may offer a faster one.
    pool_server_timezone: Callable[[Any], str | None] = staticmethod(server_timezone)
    #: ``pool_cancel(conn, timeout)`` asks the server to stop a discarded connection's query,
    #: waiting at most `!timeout` seconds and never stopping the process; return whether the
    #: request was delivered. Each driver gives its own.
    pool_cancel: Callable[[Any, float], bool] = staticmethod(cancel_in_thread)

    # The pool the current connection was taken from, and the connection as the pool lent
    # it; None if not pooled.
    _geventpool_pool: ConnectionPool[Any] | None = None
    _geventpool_pooled: PooledConnection[Any] | None = None
    # The route's attributes this wrapper has (see `_Route`).
    _geventpool_attributes: dict[str, Any] | None = None

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
        settings_dict = self.settings_dict
        key = connection_settings(settings_dict)
        pool = registry.acquire(self.alias, key, self._create_geventpool)
        with _routes_lock:
            # One route a pool: a second one would lend its connections without the
            # attributes the first one's opener recorded.
            route = _routes.get(self.alias)
            if route is None or route.pool is not pool:
                opener = type(self)({**settings_dict, "OPTIONS": key[-1]}, self.alias)
                route = _routes[self.alias] = _Route(key, pool, opener)
        pooled = self._geventpool_checkout(route)
        if pooled.initialized:
            # Django's connect() takes every connection it gets as new, hence healthy; a
            # reused one gets the check CONN_HEALTH_CHECKS asks for, before its first query.
            self.health_check_done = False
        return pooled.conn

    def _geventpool_checkout(self, route: _Route) -> PooledConnection[Any]:
        pooled = route.pool.checkout(connect=route.connect, holder=self)
        self._geventpool_pool = route.pool
        self._geventpool_pooled = pooled
        attributes = route.attributes
        if self._geventpool_attributes is not attributes:
            self.__dict__.update(attributes)
            self._geventpool_attributes = attributes
        return pooled

    @async_unsafe
    def ensure_connection(self) -> None:
        if self.connection is None and not self._geventpool_reconnect():
            super().ensure_connection()

    def _geventpool_reconnect(self) -> bool:
        """Django's ``connect()`` with a connection from the pool this alias used last.

        Nearly every checkout goes this way: ``connect()`` without what a pooled connection
        doesn't need each time, which is building the connection parameters, looking up
        the registry and a round trip to set autocommit the connection already has. Return
        False, having done nothing, where ``connect()`` itself is needed: the first
        checkout, settings changed or the pool closed since, or reconnecting inside an
        atomic block (which Django refuses).
        """
        route = _routes.get(self.alias)
        settings_dict = self.settings_dict
        if (
            route is None
            or route.pool.closed
            or self.in_atomic_block
            # connection_settings(), without copying OPTIONS to compare it.
            or route.key
            != (
                settings_dict["NAME"],
                settings_dict["USER"],
                settings_dict["PASSWORD"],
                settings_dict["HOST"],
                settings_dict["PORT"],
                settings_dict["OPTIONS"],
            )
        ):
            return False
        # From here on, what Django's connect() does, in its order.
        self.check_settings()
        self.savepoint_ids: list[str] = []
        self.atomic_blocks: list[Any] = []
        self.needs_rollback = False
        self.health_check_enabled = settings_dict["CONN_HEALTH_CHECKS"]
        max_age = settings_dict["CONN_MAX_AGE"]
        self.close_at = None if max_age is None else time.monotonic() + max_age
        self.closed_in_transaction = False
        self.errors_occurred = False
        try:
            pooled = self._geventpool_checkout(route)
        except BaseException:
            # What ensure_connection() does around connect(), on the rare path only: the
            # driver's errors become Django's.
            with self.wrap_database_errors:
                raise
        conn = self.connection = pooled.conn
        # A reused connection gets the check CONN_HEALTH_CHECKS asks for (see above).
        self.health_check_done = not pooled.initialized
        autocommit = settings_dict["AUTOCOMMIT"]
        if conn.autocommit != autocommit:
            self.set_autocommit(autocommit)
        else:
            self.autocommit = autocommit
            if self.health_check_enabled and not self.health_check_done:
                # Where Django's set_autocommit() would have run it.
                self.close_if_health_check_failed()
                if self.connection is None:
                    # It failed, and the broken connection went back: start again, in full.
                    with self.wrap_database_errors:
                        self.connect()
                    return True
        if self._geventpool_needs_setup(pooled):
            self.init_connection_state()
        if connection_created.receivers:
            # send() checks this too; here it saves the call.
            connection_created.send(sender=self.__class__, connection=self)
        self.run_on_commit: list[Any] = []
        return True

    def _open_pooled_connection(self, route: _Route) -> Any:
        # Called on the route's own wrapper, in the background. The parameters are built
        # for each new connection: a subclass may put fresh credentials in them (an
        # expiring token).
        conn_params = self.get_connection_params()
        bound = route.pool.connect_bound
        if bound is not None and "connect_timeout" not in conn_params:
            # What bounds a connect where the pool can't interrupt one (plain threads).
            # libpq takes whole seconds, and 2 at least.
            conn_params = {**conn_params, "connect_timeout": max(2, math.ceil(bound))}
        conn = super().get_new_connection(conn_params)
        route.attributes = {
            name: getattr(self, name)
            for name in self.pooled_wrapper_attributes
            if hasattr(self, name)
        }
        return conn

    def _create_geventpool(self) -> ConnectionPool[Any]:
        loops.install()
        options = PoolOptions.from_settings(self.alias, self.settings_dict)
        pool: ConnectionPool[Any] = ConnectionPool(
            name=self.alias,
            **options.pool_arguments(),
            server=server_address(self.settings_dict),
            transaction_status=self.pool_transaction_status,
            cancel=self.pool_cancel,
            error_base=self.Database.OperationalError,
        )
        self.check_pool_runtime(pool.runtime)
        return pool

    def check_pool_runtime(self, runtime: Runtime) -> None:
        """Raise ImproperlyConfigured if the driver can't cooperate with `!runtime`."""

    def init_connection_state(self) -> None:
        pooled = self._geventpool_pooled
        if pooled is None:
            super().init_connection_state()
        elif self._geventpool_needs_setup(pooled):
            super().init_connection_state()
            pooled.initialized = True

    def _geventpool_needs_setup(self, pooled: PooledConnection[Any]) -> bool:
        """Whether Django's setup of the session (time zone, role) must run on this checkout.

        A reused connection was set up when it was opened: doing it again on every checkout
        would cost a round trip or more. Unless it is new, a reset query (DISCARD ALL) undid
        the setup, or its time zone is not the one this wrapper wants (a user ran SET TIME
        ZONE, or TIME_ZONE changed since). The time zone is read without a round trip: the
        driver keeps what the server last reported. Not Django's ensure_timezone(), which
        closes the pool on Django >= 5.1.
        """
        pool = self._geventpool_pool
        if not pooled.initialized or (pool is not None and pool.reset_query is not None):
            return True
        wanted = self.timezone_name
        return bool(wanted) and self.pool_server_timezone(pooled.conn) != wanted

    def _set_autocommit(self, autocommit: bool) -> None:
        # Django's connect() sets autocommit on every connection it gets, and a pooled one
        # almost always has it already: asking the driver again costs more than the read.
        if self.connection.autocommit != autocommit:
            super()._set_autocommit(autocommit)

    @async_unsafe
    def close(self) -> None:
        pooled = self._geventpool_pooled
        if (
            pooled is None
            or self.in_atomic_block
            or self.closed_in_transaction
            or self._thread_ident != _thread.get_ident()
        ):
            # Django's close() in full: not pooled, inside an atomic block, or from
            # another thread (validate_thread_sharing() decides).
            return super().close()  # type: ignore[no-any-return]
        # Django's close() for a pooled connection its owner gives back outside any atomic
        # block: nothing to validate, and nothing to keep for the block's end.
        self.run_on_commit = []
        self._close()
        return None

    def _close(self) -> None:
        pool = self._geventpool_pool
        pooled = self._geventpool_pooled
        if pool is None or pooled is None:
            return super()._close()  # type: ignore[no-any-return]
        self.geventpool_forget()
        try:
            pool.checkin(pooled)
        except BaseException:
            # What Django's _close() does around closing, on the rare path only.
            with self.wrap_database_errors:
                raise
        return None

    def close_if_unusable_or_obsolete(self) -> None:
        if self._geventpool_pooled is None or self.errors_occurred:
            return super().close_if_unusable_or_obsolete()  # type: ignore[no-any-return]
        # Django's own, for a connection that had no error: get_autocommit() would only
        # check that the connection is there.
        self.health_check_done = False
        if self.autocommit != self.settings_dict["AUTOCOMMIT"] or (
            self.close_at is not None and time.monotonic() >= self.close_at
        ):
            self.close()
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
