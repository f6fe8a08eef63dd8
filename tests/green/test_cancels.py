"""A partitioned network never freezes the process: cancels are bounded and green.

Run in every driver x runtime cell of the `green` session. The freezable proxy holds every
byte and every new connection, cancel requests included, as a partition or a hung middlebox
does; a client is cut in each kind of round trip, and a ticker task must keep ticking while
the pool tries to cancel on the server. Scripts: tests/scripts/cancels.py.
"""

from __future__ import annotations

import pytest

from django_db_geventpool.core.pool import DISCARD_TIMEOUT
from support.pools import assert_settled
from support.proxy import freezable_proxy
from support.scenarios import RUNTIME, run_in_cell

# What the pool says when a cancel can't reach the server; anything else on stderr fails.
CANCELLING = r"^pool 'default': connection returned in the middle of a query; cancelling it$"
GAVE_UP = (
    r"^pool 'default': the server didn't end a closed connection's session within"
    r" [0-9.]+ s; its slot is reused all the same$"
)
CANCEL_TIMED_OUT = r"^couldn't cancel a query within [0-9.]+ s: the server didn't answer$"
# The network thaws by itself after this many seconds: a frozen process shows as a gap as long.
PARTITION = 12.0


@pytest.fixture
def env(pg, fresh_db):
    return pg.env(fresh_db)


@pytest.fixture
def proxy(pg):
    with freezable_proxy(pg.host, pg.port) as proxy:
        yield proxy


# The proxy tells a cancel request by its first packet: no encryption to ask for first (libpq
# 17's cancel connections would, as the others do, under the default sslmode=prefer).
THROUGH_PROXY = {"sslmode": "disable"}


ROUND_TRIPS = {
    # The client's own query.
    "query": {},
    # Pinging an idle connection before lending it.
    "ping": {"PING_AFTER": 0},
    # Rolling back a connection given back in a transaction.
    "rollback": {},
    # The reset query on the way back.
    "reset": {"RESET_QUERY": "DISCARD ALL"},
}

# An OS thread waiting in libpq hears a cut only once libpq returns: with the network frozen,
# when it thaws. The others must still run meanwhile.
CUT_WAITS_FOR_THE_NETWORK = RUNTIME == "threads"


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(
            point,
            marks=pytest.mark.skipif(
                CUT_WAITS_FOR_THE_NETWORK and point == "query",
                reason="an OS thread can't be cut in the middle of a query",
            ),
        )
        for point in ROUND_TRIPS
    ],
)
def test_a_cut_during_a_partition_never_stops_the_other_tasks(env, proxy, point, request):
    result = run_in_cell(
        "cancels.py",
        "cut_partitioned",
        env,
        options={"MAX_CONNS": 2, **THROUGH_PROXY, **ROUND_TRIPS[point]},
        database={"HOST": "127.0.0.1", "PORT": str(proxy.port)},
        control=proxy.control.port,
        point=point,
        cut_after=0.3,
        partition=PARTITION,
        settle_within=DISCARD_TIMEOUT + 4,
        timeout=90,
        expect_stderr=[CANCELLING, GAVE_UP, CANCEL_TIMED_OUT],
    )
    ticker = result["ticker"]
    # For reports (--junitxml, xunit1): how long the process stood still, and the cut took.
    request.node.user_properties.append(("longest_gap", round(ticker["longest_gap"], 3)))
    request.node.user_properties.append(("cut_took", round(result["cut_took"], 3)))
    # Another task kept running throughout: the cancel never held the process.
    assert ticker["longest_gap"] < 1.0, ticker
    assert result["outcome"] == "cut"
    if not CUT_WAITS_FOR_THE_NETWORK:
        # The cut client got its exception within the cancel's bound...
        assert result["cut_took"] < DISCARD_TIMEOUT + 2, result
        # ...and its slot came back while the network was still frozen.
        assert not result["thawed"], result
        assert_settled(result["stats"], 2)
        assert result["stats"]["lost"] == 1, result["stats"]
    # Once the network is back, the pool serves again, within its cap.
    assert result["lent_at_once"] == 2
    assert_settled(result["final"], 2)
    assert result["server_sessions"] <= 2
