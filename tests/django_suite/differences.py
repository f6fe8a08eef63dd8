"""Tests of Django's suite whose outcome differs with our ENGINE, and why that is right.

Keys are test ids as unittest prints them; run.py prints the reason next to each difference,
failures and skips alike (only a failure of ours that is not listed here fails the run).
"""

_HEALTH_CHECKS = (
    "patches CONN_MAX_AGE to None (persistent connections), which geventpool refuses when it "
    "creates a pool, and expects the first query after connecting to skip the health check "
    "because Django's connection is new; a pooled connection may be reused, and geventpool "
    "runs the check on reused ones by design (README, CONN_HEALTH_CHECKS; tested by "
    "tests/psycopg3/test_faults.py)"
)
_DJANGO_POOL = (
    "turns on Django's own pool (OPTIONS['pool']) on a copy of a connection; geventpool "
    "refuses that option (two pools on one alias would each count only their own "
    "connections): with ImproperlyConfigured when it creates the pool of the alias, and "
    "when that pool already exists Django skips its connection setup, believing its own "
    "pool does it"
)
_CLASS = "backends.base.test_base.ConnectionHealthChecksTests."

KNOWN_DIFFERENCES: dict[str, str] = {
    _CLASS + "test_health_checks_disabled": _HEALTH_CHECKS,
    _CLASS + "test_health_checks_enabled": _HEALTH_CHECKS,
    _CLASS + "test_health_checks_enabled_errors_occurred": _HEALTH_CHECKS,
    _CLASS + "test_set_autocommit_health_checks_enabled": _HEALTH_CHECKS,
    "backends.postgresql.tests.Tests.test_connect_pool": _DJANGO_POOL,
    "backends.postgresql.tests.Tests.test_connect_pool_with_timezone": _DJANGO_POOL,
    # Skipped, not failed: the test looks its ENGINE up in a table of Django's own ENGINE
    # strings to find the GDAL driver that reads the database, and skips any other.
    "gis_tests.inspectapp.tests.OGRInspectTest.test_time_field": (
        "skipped with ours: the test knows the GDAL driver only for Django's own ENGINE"
        " strings (get_ogr_db_string()); the pool is not involved"
    ),
}
