from __future__ import annotations

import pytest


@pytest.fixture
def connect(pg):
    """A connection factory for pools under test; closes whatever it opened at the end."""
    import psycopg

    opened = []

    def connect():
        conn = psycopg.connect(pg.conninfo(), autocommit=True, application_name="pooltest")
        opened.append(conn)
        return conn

    connect.opened = opened
    yield connect
    for conn in opened:
        conn.close()


@pytest.fixture
def make_pool(connect):
    """Make a pool of psycopg 3 connections, closed at the end of the test."""
    import psycopg

    from django_db_geventpool.core import ConnectionPool

    pools = []

    def make_pool(factory=None, **kwargs):
        pool = ConnectionPool(factory or connect, error_base=psycopg.OperationalError, **kwargs)
        pools.append(pool)
        return pool

    yield make_pool
    for pool in pools:
        pool.close()
