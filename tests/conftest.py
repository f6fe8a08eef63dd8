"""Fixtures for a PostgreSQL server, and markers taken from each test's folder.

Nothing here imports psycopg, gevent or Django at import time: tests that need greenlets run
scripts in subprocesses that monkey-patch first, and the test process stays unpatched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cluster import ServerUnavailable
from support.server import PgServer, open_server, unique_dbname

TESTS_DIR = Path(__file__).parent

# tests/<folder>/... gets the marker of the same name.
FOLDER_MARKERS = ("core", "psycopg3", "psycopg2", "green", "postgis", "integrations", "install")

_SERVER = pytest.StashKey[PgServer]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = item.path.relative_to(TESTS_DIR).parts[0]
        except ValueError:
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)


@pytest.fixture(scope="session")
def pg(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """The PostgreSQL server for this session, with a database of its own (`pg.dbname`)."""
    try:
        server = open_server()
    except ServerUnavailable as exc:
        # Fail rather than skip: a run that silently skips every database test looks green.
        pytest.fail(str(exc), pytrace=False)
    request.config.stash[_SERVER] = server
    try:
        yield server
    finally:
        del request.config.stash[_SERVER]
        server.close()


@pytest.fixture(autouse=True)
def _restart_stopped_server(request: pytest.FixtureRequest) -> Iterator[None]:
    # One test that stops the cluster and then fails must not take the following tests down.
    yield
    server = request.config.stash.get(_SERVER, None)
    if server is not None:
        server.ensure_running()


@pytest.fixture
def fresh_db(pg: PgServer) -> Iterator[str]:
    """The name of a new, empty database, dropped after the test."""
    name = unique_dbname("geventpool_fresh")
    pg.create_database(name)
    yield name
    pg.ensure_running()
    pg.drop_database(name)
