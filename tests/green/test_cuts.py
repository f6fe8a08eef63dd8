"""Cut anywhere, lose nothing: the pool when its clients are cut, killed, or die holding on.

Run in every driver x runtime cell of the `green` session, threads included: a freezable
proxy between the pool and PostgreSQL holds the network still while the pool waits for the
server, a silent listener hangs every connect, and the soak samples pg_stat_activity every
10 ms while tasks are cut and killed at random. Scripts: tests/scripts/cuts.py.
"""

from __future__ import annotations

import platform

import pytest

from support.pools import assert_counters_agree, assert_settled
from support.proxy import SilentServer, freezable_proxy
from support.scenarios import RUNTIME, run_in_cell

# What the pool says when it does its job under fire; anything else on stderr fails a test.
CANCELLING = r"^pool 'default': connection returned in the middle of a query; cancelling it$"
RECLAIMING = r"^pool 'default': took back a connection from a (greenlet|thread) that ended"
GAVE_UP_CONNECTING = r"^pool 'default': opening a connection failed after its client gave up: "


# psycopg2cffi (PyPy's psycopg2) connects synchronously even with a wait callback installed:
# a connect blocks the whole process, and only libpq's connect_timeout (which the pool sets
# from CHECKOUT_TIMEOUT) bounds it; nothing can cut it short or wait beside it.
blocking_connect = pytest.mark.skipif(
    platform.python_implementation() == "PyPy",
    reason="psycopg2cffi connects synchronously: libpq's connect_timeout bounds a connect",
)


@pytest.fixture
def env(pg, fresh_db):
    return pg.env(fresh_db)


@pytest.fixture
def proxy(pg):
    with freezable_proxy(pg.host, pg.port) as proxy:
        yield proxy


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


# The proxy tells a cancel request by its first packet: no encryption to ask for first (libpq
# 17's cancel connections would, as the others do, under the default sslmode=prefer). A
# connect has nothing to cancel, and keeps the default.
THROUGH_PROXY = {"sslmode": "disable"}


ROUND_TRIPS = {
    # Opening a connection: the client is cut while the connect hangs; the connect gives up
    # in the background after CHECKOUT_TIMEOUT, and frees its slot.
    "connect": {"CHECKOUT_TIMEOUT": 2},
    # Pinging an idle connection before lending it.
    "ping": {"PING_AFTER": 0},
    # Rolling back a connection given back in a transaction.
    "rollback": {},
    # The reset query on the way back.
    "reset": {"RESET_QUERY": "DISCARD ALL"},
}


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(point, marks=blocking_connect) if point == "connect" else point
        for point in ROUND_TRIPS
    ],
)
def test_a_client_cut_in_a_round_trip_of_the_pool_gives_its_slot_back(env, proxy, point):
    result = run_in_cell(
        "cuts.py",
        "cut_round_trip",
        env,
        options={
            "MAX_CONNS": 2,
            **(THROUGH_PROXY if point != "connect" else {}),
            **ROUND_TRIPS[point],
        },
        database={"HOST": "127.0.0.1", "PORT": str(proxy.port)},
        control=proxy.control.port,
        point=point,
        cut_after=0.3,
        expect_stderr=[CANCELLING, GAVE_UP_CONNECTING],
    )
    assert result["outcome"] == "cut"
    if point == "connect":
        # The connect goes on without its client, in the slot it took (a thread hears the
        # cut only once its wait ends, maybe once connected)...
        after_cut = result["stats_after_cut"]
        assert after_cut["opening"] + after_cut["idle"] == 1
    else:
        # The connection cut in its round trip is discarded, never lent again...
        assert result["stats"]["lost"] == 1
    # ...and the slot comes back, the network still frozen, within the pool's own bounds.
    assert_settled(result["stats"], 2)
    assert result["recovered_after"] < 8
    assert result["lent_at_once"] == 2
    assert_settled(result["final"], 2)
    assert result["server_sessions"] <= 2


@blocking_connect
def test_connects_to_a_silent_server_are_bounded_by_the_checkout_timeout(env, silent):
    result = run_in_cell(
        "cuts.py",
        "silent_server",
        env,
        options={"MAX_CONNS": 2, "CHECKOUT_TIMEOUT": 1},
        database={"HOST": "127.0.0.1", "PORT": str(silent.port)},
        clients=3,
        expect_stderr=[GAVE_UP_CONNECTING],
    )
    clients = result["clients"]
    assert all(client["pool_timeout"] for client in clients), clients
    assert all(0.8 < client["waited"] < 5 for client in clients), clients
    errors = sorted(client["error"] for client in clients)
    address = f"127.0.0.1:{silent.port}"
    # The two that had a slot say the server didn't answer; the third waited for them.
    connecting = [e for e in errors if "didn't answer a connect" in e]
    assert len(connecting) == 2, errors
    assert all(address in e for e in connecting)
    waiting = [e for e in errors if "being opened" in e]
    assert len(waiting) == 1, errors
    assert "all 2 in use (2 being opened), 0 more waiting" in waiting[0]
    assert f"the server at {address} is slow to accept connections" in waiting[0]
    assert all("password" not in e.lower() for e in errors)
    assert (result["stats"]["opening"], result["stats"]["open"]) == (0, 0)


@blocking_connect
def test_connect_timeout_bounds_each_connect(env, silent):
    # libpq's own option: psycopg2's asynchronous connects (psycogreen) ignore it, so the
    # pool enforces it; CHECKOUT_TIMEOUT is longer here.
    result = run_in_cell(
        "cuts.py",
        "silent_server",
        env,
        options={"MAX_CONNS": 2, "CHECKOUT_TIMEOUT": 30, "connect_timeout": 2},
        database={"HOST": "127.0.0.1", "PORT": str(silent.port)},
        clients=1,
    )
    (client,) = result["clients"]
    assert client["pool_timeout"] or RUNTIME == "threads", client
    assert 1.5 < client["waited"] < 8, client
    assert (result["stats"]["opening"], result["stats"]["open"]) == (0, 0)


def test_connections_of_tasks_that_ended_holding_them_are_taken_back(env):
    result = run_in_cell(
        "cuts.py",
        "dead_borrowers",
        env,
        options={"MAX_CONNS": 2},
        expect_stderr=[RECLAIMING],
    )
    assert result["held_after_end"] == 2
    # Within about a second (the background task looks twice a second).
    assert result["reclaimed_after"] < 3
    assert result["stats"]["reclaimed"] == 2
    assert result["lent_at_once"] == 2
    # The transaction the task left open was rolled back, not committed, and is gone.
    assert result["rows"] == 0
    assert result["idle_in_transaction"] == 0
    # A wrapper shared with a live task keeps its connection.
    assert result["shared_kept"] is True
    assert_settled(result["final"], 2)


@pytest.mark.skipif(
    RUNTIME == "threads", reason="an OS thread can't be cut in the middle of a query"
)
def test_a_query_cut_in_a_transaction_is_cancelled_and_its_locks_released(env):
    result = run_in_cell(
        "cuts.py",
        "cut_holding_a_lock",
        env,
        options={"MAX_CONNS": 2},
        expect_stderr=[CANCELLING],
    )
    assert result["outcome"] == "cut"
    # pg_sleep(5) was cancelled on the server, not left to run out.
    assert result["session_gone_after"] < 1.5
    assert result["next_waited"] < 1.5
    # The cut transaction's update was rolled back.
    assert result["value"] == 10
    assert_settled(result["stats"], 2)


def test_soak_with_random_cuts_never_exceeds_max_conns_on_the_server(env):
    result = run_in_cell(
        "cuts.py",
        "soak",
        env,
        options={"MAX_CONNS": 10},
        tasks=200,
        seconds=20,
        timeout=240,
        expect_stderr=[
            CANCELLING,
            RECLAIMING,
            r"^pool 'default': rollback of a returned",
            # The server ends every session now and then; libpq's messages run on several
            # lines, and psycopg2's end with a newline.
            r"^pool 'default': discarding a connection that failed a ping",
            r"^(FATAL:  terminating connection due to administrator command)?$",
            r"^server closed the connection unexpectedly$",
            r"^\tThis probably means the server terminated abnormally$",
            r"^\tbefore or while processing the request\.$",
        ],
    )
    sampled, counts = result["sampled"], result["counts"]
    # pg_stat_activity, every 10 ms or so, for 20 s.
    assert sampled["samples"] > 500, sampled
    assert 0 < sampled["peak"] <= 10, sampled
    assert counts["done"] > 1000, counts
    assert counts["cut"] > 0, counts
    if RUNTIME != "threads":
        assert counts["killed"] > 10, counts
    assert counts["terminated"] > 0, counts
    assert result["stats"]["reclaimed"] > 0
    assert result["stats"]["lost"] > 0
    # The counters keep their definitions through cuts, kills and dead connections.
    assert_counters_agree(result["stats"])
    assert result["lent_at_once"] == 10
    assert_settled(result["final"], 10)
    assert result["server_sessions"] <= 10
