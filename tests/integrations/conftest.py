"""What the integration tests need beyond a server: pgbouncer, Celery.

A missing piece skips its tests with the way to get it, except where it must be there: in CI
for pgbouncer (.ci/run installs it), and in `nox -s integrations` for Celery.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator

import pytest

from support.pgbouncer import PgBouncer
from support.server import PgServer

# Server connections PgBouncer keeps per database and user in these tests.
BOUNCER_POOL_SIZE = 5


def _missing(reason: str, required: bool) -> None:
    if required:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pgbouncer(pg: PgServer) -> Iterator[PgBouncer]:
    if shutil.which("pgbouncer") is None and not os.path.exists("/usr/sbin/pgbouncer"):
        _missing("needs pgbouncer: apt-get install pgbouncer", bool(os.environ.get("CI")))
    bouncer = PgBouncer(pg, pool_size=BOUNCER_POOL_SIZE)
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def celery_installed() -> None:
    if importlib.util.find_spec("celery") is None:
        _missing(
            "needs Celery: `./noxw -s integrations` runs these",
            bool(os.environ.get("GEVENTPOOL_INTEGRATIONS")),
        )
