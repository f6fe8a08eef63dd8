"""Errors raised by the pool.

The classes here are driver-neutral. A pool bound to a driver raises subclasses that also
derive from that driver's ``OperationalError``, so Django maps them to
``django.db.OperationalError`` like any other connection failure, while code that talks to
the pool directly can still catch the classes defined here.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class PoolError(Exception):
    """Base class of the errors raised by the pool."""


class PoolTimeout(PoolError):
    """Couldn't get a connection from the pool within the checkout timeout."""


class PoolClosed(PoolError):
    """The pool was closed and hands out no more connections."""


class ResetQueryError(PoolError, ImproperlyConfigured):  # type: ignore[misc]
    """The reset query fails, or leaves the session in a transaction: fix the setting."""


_bound: dict[tuple[type[PoolError], type[Exception]], type[PoolError]] = {}


def bind(error: type[PoolError], base: type[Exception]) -> type[PoolError]:
    """Return a subclass of `!error` that is also a subclass of the driver's `!base`."""
    if issubclass(error, base):
        return error
    try:
        return _bound[error, base]
    except KeyError:
        bound: type[PoolError] = type(
            error.__name__, (error, base), {"__module__": error.__module__}
        )
        return _bound.setdefault((error, base), bound)
