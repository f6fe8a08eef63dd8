"""What the PostGIS tests need beyond a server: the backend, GDAL and GEOS, the extension.

On a developer's machine a missing piece skips these tests with the way to get it; in CI
(``CI`` set) it fails them, so that a run that tested no PostGIS can't look green.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import os
from collections.abc import Iterator

import pytest

from support.server import PgServer

BACKEND = "django_db_geventpool.backends.postgis"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the PostGIS tests)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgis_ready(pg: PgServer) -> Iterator[None]:
    try:
        spec = importlib.util.find_spec(BACKEND)
    except ModuleNotFoundError:
        # What geventpool-core's finder raises for it, naming the distribution.
        spec = None
    if spec is None:
        # Not an error in CI: the nox sessions that don't install the package don't run
        # these tests; `nox -s postgis` and `nox -s wheels` do.
        pytest.skip("geventpool-postgis is not installed here: `./noxw -s postgis` runs these")
    # GeoDjango loads the C libraries by these names, as ctypes finds them.
    for library, package in (("gdal", "gdal-bin"), ("geos_c", "libgeos-c1v5")):
        if ctypes.util.find_library(library) is None:
            _missing(f"GeoDjango needs the {library} library: apt-get install {package}")
    rows = pg.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    if not rows:
        _missing(
            "the test server has no postgis extension:"
            " apt-get install postgresql-15-postgis-3 (for PostgreSQL 15)"
        )
    yield
