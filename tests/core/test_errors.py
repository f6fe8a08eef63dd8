from __future__ import annotations

from django_db_geventpool.core import errors


class DriverError(Exception):
    pass


def test_bound_errors_derive_from_both_the_pool_error_and_the_driver_error():
    bound = errors.bind(errors.PoolTimeout, DriverError)
    assert issubclass(bound, errors.PoolTimeout)
    assert issubclass(bound, errors.PoolError)
    assert issubclass(bound, DriverError)
    assert bound.__name__ == "PoolTimeout"
    assert errors.bind(errors.PoolTimeout, DriverError) is bound
