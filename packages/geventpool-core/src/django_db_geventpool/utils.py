"""Helpers for code that uses the database outside Django's request cycle."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ContextDecorator
from types import TracebackType
from typing import Any, TypeVar, overload

from django.db import connections

F = TypeVar("F", bound=Callable[..., Any])


class _ClosingConnections(ContextDecorator):
    def __enter__(self) -> _ClosingConnections:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connections.close_all()


@overload
def close_connection(func: F) -> F: ...


@overload
def close_connection() -> _ClosingConnections: ...


def close_connection(func: F | None = None) -> F | _ClosingConnections:
    """Give the current greenlet's database connections back to the pool when done.

    Django does this at the end of each request; a greenlet spawned by hand, a Celery task
    or a management command has to do it itself, or its connections stay checked out. Use
    it as a decorator, ``@close_connection``, or as a context manager,
    ``with close_connection(): ...``.
    """
    if func is None:
        return _ClosingConnections()
    return _ClosingConnections()(func)
