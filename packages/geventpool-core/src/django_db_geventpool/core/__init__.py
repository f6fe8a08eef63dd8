"""The greenlet-aware connection pool behind the geventpool Django backends."""

from django_db_geventpool.core.errors import PoolClosed, PoolError, PoolTimeout, ResetQueryError
from django_db_geventpool.core.pool import ConnectionPool
from django_db_geventpool.core.pooled import PooledConnection
from django_db_geventpool.core.version import __version__

__all__ = [
    "ConnectionPool",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "PooledConnection",
    "ResetQueryError",
    "__version__",
]
