"""The pool in front of PgBouncer in transaction mode, as sites that scale out run it."""

from __future__ import annotations

import pytest

from support.scenarios import run_scenario


@pytest.fixture
def through_bouncer(pgbouncer):
    """Database settings that reach the server through PgBouncer, as the README says."""
    return {
        "HOST": pgbouncer.host,
        "PORT": str(pgbouncer.port),
        # A server-side cursor lives in one server session, which transaction pooling may
        # hand to another client between two fetches.
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }


def test_herd_is_capped_by_max_conns_then_by_pgbouncer(pg, fresh_db, pgbouncer, through_bouncer):
    result = run_scenario(
        "pgbouncer.py",
        "herd",
        pg.env(fresh_db),
        options={"MAX_CONNS": 20},
        database=through_bouncer,
        greenlets=200,
        hold=0.02,
    )
    stats = result["stats"]
    # Shown with `pytest -s`: the figures the README quotes.
    print(
        f"\n200 greenlets, MAX_CONNS=20, pgbouncer pool {pgbouncer.pool_size}: "
        f"{stats['opened']} client connections, {result['backend_pids']} server sessions "
        f"used, peak {result['sampled_peak']}, {result['elapsed']:.2f} s"
    )
    # 20 client connections to PgBouncer at most, sharing its 5 server connections.
    assert stats["checkouts"] == 200
    assert stats["opened"] <= 20
    assert result["backend_pids"] <= pgbouncer.pool_size
    assert result["sampled_peak"] <= pgbouncer.pool_size


def test_orm_round_trips_through_pgbouncer(pg, fresh_db, through_bouncer):
    result = run_scenario(
        "pgbouncer.py",
        "orm",
        pg.env(fresh_db),
        options={"MAX_CONNS": 10},
        database=through_bouncer,
        greenlets=50,
    )
    assert all(
        r == {"payload_ok": True, "when_ok": True, "aware": True, "found": 1}
        for r in result["results"]
    )
    assert result["total"] == 50
    assert result["stats"]["opened"] <= 10


def test_transactions_keep_their_server_session_and_nothing_is_prepared(
    pg, fresh_db, through_bouncer
):
    result = run_scenario(
        "pgbouncer.py",
        "transaction_pooling",
        pg.env(fresh_db),
        options={"MAX_CONNS": 10},
        database=through_bouncer,
        clients=30,
    )
    for client in result["results"]:
        assert client["same_backend_in_transaction"]
        assert client["rows_seen"] >= 1
        # Django's psycopg 3 default: no server-side prepared statements, which a server
        # session reached through transaction pooling could not be relied on to hold.
        assert client["prepare_threshold"] is None
        assert client["server_side_cursors_disabled"] is True
    assert result["stats"]["in_use"] == 0
