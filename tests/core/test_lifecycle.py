"""Health checks, lifetimes, reset queries and leak reports, with real psycopg connections."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from support.pools import settled


def backend_pid(conn):
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def terminate(pg, *pids):
    for pid in pids:
        pg.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_fresh_idle_connection_is_lent_without_a_round_trip(make_pool):
    pool = make_pool(max_size=1, ping_after=60)
    pool.putconn(pool.getconn())
    pool.putconn(pool.getconn())
    assert pool.stats()["pings"] == 0


def test_connection_idle_past_ping_after_is_pinged_and_replaced_if_dead(pg, make_pool, caplog):
    pool = make_pool(max_size=1, ping_after=0.05)
    conn = pool.getconn()
    pid = backend_pid(conn)
    pool.putconn(conn)
    terminate(pg, pid)
    time.sleep(0.1)
    with caplog.at_level(logging.WARNING, "django_db_geventpool"):
        again = pool.getconn(timeout=5)
    assert backend_pid(again) != pid
    stats = pool.stats()
    assert (stats["pings"], stats["lost"], stats["opened"], stats["open"]) == (1, 1, 2, 1)
    assert "discarding a connection that failed a ping" in caplog.text
    pool.putconn(again)


def test_a_dead_connection_makes_its_idle_siblings_suspect(pg, make_pool, caplog):
    # As after a server restart: every idle connection is dead, but none idle long enough
    # to be pinged. Only the first client to find out pays; the others are pinged first.
    pool = make_pool(max_size=3, ping_after=None)
    conns = [pool.getconn() for _ in range(3)]
    pids = [backend_pid(conn) for conn in conns]
    for conn in conns:
        pool.putconn(conn)
    terminate(pg, *pids)
    time.sleep(0.1)
    import psycopg

    first = pool.getconn()
    with pytest.raises(psycopg.OperationalError):
        first.execute("SELECT 1")
    with caplog.at_level(logging.WARNING, "django_db_geventpool"):
        pool.putconn(first)
        second, third = pool.getconn(), pool.getconn()
    assert {backend_pid(second), backend_pid(third)}.isdisjoint(pids)
    # Two of the three dead ones freed the slots these two took; the third may still be closing.
    stats = settled(pool)
    assert stats["lost"] == 3
    assert stats["pings"] == 2
    assert stats["open"] == 2
    pool.putconn(second)
    pool.putconn(third)


def test_a_dead_connection_makes_its_lent_siblings_suspect_too(pg, make_pool):
    # Under load a connection given back goes straight to the next client, never idle: a
    # sibling lent when the first dead one is found is pinged before it is lent again.
    import psycopg

    pool = make_pool(max_size=2, ping_after=None)
    first, sibling = pool.getconn(), pool.getconn()
    pids = [backend_pid(first), backend_pid(sibling)]
    terminate(pg, *pids)
    time.sleep(0.1)
    with pytest.raises(psycopg.OperationalError):
        first.execute("SELECT 1")
    pool.putconn(first)
    # Its borrower is done with it without another round trip: it looks idle and healthy.
    pool.putconn(sibling)
    again = pool.getconn(timeout=5)
    assert backend_pid(again) not in pids, "the dead sibling was lent"
    stats = settled(pool)
    assert (stats["pings"], stats["lost"]) == (1, 2)
    pool.putconn(again)


def test_a_checkout_that_waits_then_fails_to_connect_counts_neither(pg, connect, make_pool):
    import psycopg

    def refuse_after_first():
        if connect.opened:
            raise psycopg.OperationalError("connection refused (as by a restarting server)")
        return connect()

    pool = make_pool(refuse_after_first, max_size=1, ping_after=None)
    held = pool.getconn()
    errors = []

    def waiter():
        try:
            pool.putconn(pool.getconn(timeout=5))
        except psycopg.OperationalError as ex:
            errors.append(ex)

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 5
    while pool.stats()["waiting"] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    # Given back broken: its slot goes to the waiter, whose connect is refused.
    terminate(pg, backend_pid(held))
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    pool.putconn(held)
    thread.join(10)
    assert [str(ex) for ex in errors] == ["connection refused (as by a restarting server)"]
    stats = settled(pool)
    assert (stats["checkouts"], stats["waits"]) == (1, 0), "the failed checkout was counted"
    assert stats["wait_seconds"] > 0, "its time in the queue was not counted"


def test_connection_past_its_lifetime_is_retired_on_checkout(make_pool):
    pool = make_pool(max_size=1, max_lifetime=0.1)
    conn = pool.getconn()
    pid = backend_pid(conn)
    pool.putconn(conn)
    time.sleep(0.15)
    again = pool.getconn()
    assert backend_pid(again) != pid
    assert pool.stats()["retired"] == 1
    assert pool.stats()["lost"] == 0
    pool.putconn(again)


def test_connection_past_its_lifetime_is_never_taken_from_its_user(make_pool):
    pool = make_pool(max_size=1, max_lifetime=0.1)
    conn = pool.getconn()
    time.sleep(0.15)
    # Still lent: still usable.
    assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not conn.closed
    pool.putconn(conn)
    stats = settled(pool)
    assert conn.closed
    assert (stats["retired"], stats["open"]) == (1, 0)


def test_lifetimes_are_jittered(make_pool):
    pool = make_pool(max_size=5, max_lifetime=100)
    conns = [pool.getconn() for _ in range(5)]
    deadlines = {pool._entries[id(conn)].expires_at for conn in conns}
    assert len(deadlines) == 5
    now = time.monotonic()
    assert all(now + 89 < deadline <= now + 100 for deadline in deadlines)
    for conn in conns:
        pool.putconn(conn)


def test_connections_idle_too_long_are_closed(pg, make_pool):
    pool = make_pool(max_size=3, max_idle_time=0.1)
    conns = [pool.getconn() for _ in range(3)]
    for conn in conns:
        pool.putconn(conn)
    time.sleep(0.15)
    # The next checkout closes the stale ones and opens what it needs.
    again = pool.getconn()
    # Closed in the background, by this checkout or by the caretaker, whichever came first.
    stats = settled(pool)
    assert (stats["open"], stats["retired"]) == (1, 3)
    assert pg.sessions("pooltest", settles_at=1) == 1
    pool.putconn(again)


def test_idle_connections_are_closed_with_no_checkout_at_all(pg, make_pool):
    pool = make_pool(max_size=3, max_idle_time=0.2)
    conns = [pool.getconn() for _ in range(3)]
    for conn in conns:
        pool.putconn(conn)
    deadline = time.monotonic() + 5
    while pool.stats()["open"] and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = pool.stats()
    assert (stats["open"], stats["retired"]) == (0, 3)
    assert pg.sessions("pooltest", settles_at=0) == 0
    # Not before their time: a connection returned now is still there a moment later.
    pool.putconn(pool.getconn())
    time.sleep(0.1)
    assert pool.stats()["open"] == 1


def test_closing_the_pool_stops_its_background_task(make_pool):
    pool = make_pool(name="sweeper", max_size=1, max_idle_time=0.2)
    pool.putconn(pool.getconn())

    def sweeping():
        return any(thread.name == "geventpool-sweeper" for thread in threading.enumerate())

    assert sweeping()
    pool.close()
    deadline = time.monotonic() + 5
    while sweeping():
        assert time.monotonic() < deadline, "the background thread outlived its pool"
        time.sleep(0.02)


def test_reset_query_keeps_session_state_from_leaking(pg, make_pool):
    pg.ensure_role("geventpool_other")
    leaky = make_pool(max_size=1)
    conn = leaky.getconn()
    conn.execute("SET ROLE geventpool_other")
    leaky.putconn(conn)
    conn = leaky.getconn()
    # Without a reset query the next user inherits the role: why RESET_QUERY exists.
    assert conn.execute("SELECT current_user").fetchone() == ("geventpool_other",)
    leaky.putconn(conn)

    clean = make_pool(max_size=1, reset_query="DISCARD ALL")
    conn = clean.getconn()
    conn.execute("SET ROLE geventpool_other")
    conn.execute("SET application_name = 'changed'")
    clean.putconn(conn)
    conn = clean.getconn()
    assert conn.execute("SELECT current_user").fetchone() == (pg.user,)
    assert conn.execute("SHOW application_name").fetchone() == ("pooltest",)
    clean.putconn(conn)


def test_leaked_connection_is_reported_with_the_stack_that_took_it(make_pool, caplog):
    pool = make_pool(max_size=2, leak_timeout=0.1)

    def take_and_forget():
        return pool.getconn()

    with caplog.at_level(logging.WARNING, "django_db_geventpool"):
        leaked = take_and_forget()
        returned = pool.getconn()
        pool.putconn(returned)
        deadline = time.monotonic() + 5
        while pool.stats()["leaks"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        pool.putconn(leaked)
    assert pool.stats()["leaks"] == 1
    report = next(r for r in caplog.records if "has been held for" in r.getMessage())
    assert "LEAK_TIMEOUT is 0.1 s" in report.getMessage()
    assert "take_and_forget" in report.getMessage()
    assert "came back after" in caplog.text


def test_putting_back_a_foreign_connection_is_an_error(connect, make_pool):
    pool = make_pool(max_size=1)
    with pytest.raises(ValueError, match="doesn't belong to the pool 'default'"):
        pool.putconn(connect())


def test_giving_back_twice_is_an_error(make_pool):
    pool = make_pool(max_size=1)
    conn = pool.getconn()
    pool.putconn(conn)
    with pytest.raises(ValueError, match="is not lent by the pool 'default': was it given back"):
        pool.putconn(conn)
    assert settled(pool)["idle"] == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC 1", r"reset query of the pool 'default', 'SELEC 1', failed: syntax error"),
        ("BEGIN", r"'BEGIN', left the session in a transaction: RESET_QUERY must leave it idle"),
    ],
)
def test_a_broken_reset_query_is_a_configuration_error_every_time(make_pool, query, message):
    from django.core.exceptions import ImproperlyConfigured

    from django_db_geventpool.core import ResetQueryError

    pool = make_pool(max_size=1, reset_query=query)
    for _ in range(2):
        conn = pool.getconn()
        with pytest.raises(ResetQueryError, match=message) as info:
            pool.putconn(conn)
        assert isinstance(info.value, ImproperlyConfigured)
    # Each connection was discarded, and its slot freed.
    stats = settled(pool)
    assert (stats["lost"], stats["open"]) == (2, 0)


def test_connection_of_a_thread_that_ended_is_taken_back(make_pool, caplog):
    pool = make_pool(max_size=1)
    taken = []
    with caplog.at_level(logging.WARNING, "django_db_geventpool"):
        thread = threading.Thread(target=lambda: taken.append(pool.getconn()))
        thread.start()
        thread.join()
        assert pool.stats()["in_use"] == 1
        # The next client waits for it, and gets a slot within about a second.
        started = time.monotonic()
        again = pool.getconn(timeout=5)
        waited = time.monotonic() - started
    assert waited < 3
    assert pool.stats()["reclaimed"] == 1
    assert "took back a connection from a thread that ended" in caplog.text
    # Lent bare, it was closed rather than lent again: whoever still has it can't give it
    # back from under its next user.
    assert again is not taken[0]
    assert taken[0].closed
    with pytest.raises(ValueError, match="doesn't belong"):
        pool.putconn(taken[0])
    pool.putconn(again)


def test_nothing_shows_the_password(make_pool):
    from django_db_geventpool.core import registry

    pool = make_pool(max_size=1)
    pooled = pool.checkout()
    key = ({"host": "db", "password": "s3cret-pw"}, {"MAX_CONNS": 1})
    assert registry.acquire("secretive", key, lambda: pool) is pool
    try:
        for obj in (registry._pools["secretive"], pool, pooled):
            assert "s3cret-pw" not in repr(obj)
    finally:
        registry.discard("secretive")
    pool.checkin(pooled)
