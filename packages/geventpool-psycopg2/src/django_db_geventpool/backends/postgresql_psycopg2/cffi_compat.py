"""psycopg2cffi standing in for psycopg2 (on PyPy), with what Django needs that it lacks.

psycopg2cffi 2.9 has no ``psycopg2.errors`` (Django's test database creation looks for
``errors.DuplicateDatabase``), no ``psycopg2.sql`` (Django's schema editor hangs its quoting
function on it), no ``connection.info`` (Django reads the session time zone and the server
version from it; the pool reads the transaction status), and its
``connection.isolation_level`` can't be assigned (Django assigns it when
``OPTIONS["isolation_level"]`` is set). And where psycopg2 raises
``OperationalError`` for a connection the server dropped, which Django and the pool treat as
a lost connection, psycopg2cffi raises a bare ``DatabaseError``.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

#: Marks a psycopg2cffi that has been given the additions below.
_DONE = "_geventpool_compat"


def register() -> ModuleType:
    """Make ``import psycopg2`` return psycopg2cffi, completed for Django; return it."""
    import psycopg2cffi
    from psycopg2cffi import compat

    compat.register()
    module: ModuleType = psycopg2cffi
    if not getattr(module, _DONE, False):
        _add_errors(module)
        _add_sql(module)
        _add_connection_info(module)
        _raise_operational_error_when_lost(module)
        setattr(module, _DONE, True)
    return module


def _add_errors(psycopg2cffi: ModuleType) -> None:
    """Add ``psycopg2.errors``: one class per SQLSTATE, raised by psycopg2cffi from now on."""
    from psycopg2cffi import errorcodes
    from psycopg2cffi._impl import util

    base_for_sqlstate = util.get_exception_for_sqlstate
    errors = ModuleType("psycopg2.errors", "Exception classes by SQLSTATE (psycopg2cffi).")
    by_sqlstate: dict[str, type[Exception]] = {}
    for name, code in vars(errorcodes).items():
        if name.startswith("CLASS_") or not name.isupper() or len(code) != 5:
            continue
        base = base_for_sqlstate(code)
        # DUPLICATE_DATABASE -> DuplicateDatabase, the name psycopg2.errors uses.
        cls_name = "".join(word.capitalize() for word in name.split("_"))
        cls = type(cls_name, (base,), {"__module__": "psycopg2.errors", "sqlstate": code})
        setattr(errors, cls_name, cls)
        by_sqlstate[code] = cls
    for name in (
        "Error",
        "Warning",
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        setattr(errors, name, getattr(psycopg2cffi, name))

    def lookup(code: str) -> type[Exception]:
        """Return the exception class of the SQLSTATE `!code` (KeyError if unknown)."""
        return by_sqlstate[code]

    def exception_for_sqlstate(code: Any) -> type[Exception]:
        if isinstance(code, bytes):
            code = code.decode("ascii")
        return by_sqlstate.get(code) or base_for_sqlstate(code)

    errors.lookup = lookup  # type: ignore[attr-defined]
    # The connection looks this function up on the module each time it builds an error.
    util.get_exception_for_sqlstate = exception_for_sqlstate
    psycopg2cffi.errors = errors  # type: ignore[attr-defined]
    sys.modules["psycopg2.errors"] = errors


def _add_sql(psycopg2cffi: ModuleType) -> None:
    """Add an empty ``psycopg2.sql``: Django 4.2 only stores its own ``quote`` in it."""

    sql = ModuleType(
        "psycopg2.sql", "Placeholder for psycopg2.sql, which psycopg2cffi doesn't provide."
    )

    def __getattr__(name: str) -> Any:
        raise AttributeError(
            f"psycopg2cffi has no psycopg2.sql; {name!r} is not available on PyPy:"
            " compose queries with Django's own quoting instead"
        )

    sql.__getattr__ = __getattr__  # type: ignore[method-assign]
    psycopg2cffi.sql = sql  # type: ignore[attr-defined]
    sys.modules["psycopg2.sql"] = sql


class ConnectionInfo:
    """The part of psycopg2's ``connection.info`` that Django and the pool read."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def transaction_status(self) -> int:
        status: int = self._conn.get_transaction_status()
        return status

    @property
    def server_version(self) -> int:
        version: int = self._conn.server_version
        return version

    @property
    def backend_pid(self) -> int:
        pid: int = self._conn.get_backend_pid()
        return pid

    def parameter_status(self, name: str) -> str | None:
        value: str | None = self._conn.get_parameter_status(name)
        return value


def _add_connection_info(psycopg2cffi: ModuleType) -> None:
    from psycopg2cffi._impl.connection import Connection

    Connection.info = property(ConnectionInfo)

    def set_isolation_level(self: Any, level: int) -> None:
        self.set_session(isolation_level=level)

    Connection.isolation_level = Connection.isolation_level.setter(set_isolation_level)


def _raise_operational_error_when_lost(psycopg2cffi: ModuleType) -> None:
    from psycopg2cffi._impl.connection import Connection

    create_exception = Connection._create_exception

    def _create_exception(self: Any, *args: Any, **kwargs: Any) -> Exception:
        exc: Exception = create_exception(self, *args, **kwargs)
        # No SQLSTATE and the connection now closed: the server or the network dropped it.
        # Only the class changes; the instance keeps the result it frees when collected.
        if type(exc) is psycopg2cffi.DatabaseError and self.closed:
            exc.__class__ = psycopg2cffi.OperationalError
        return exc

    Connection._create_exception = _create_exception
