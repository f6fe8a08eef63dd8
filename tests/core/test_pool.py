"""The pool itself, with OS threads (no monkey-patching) and real psycopg connections."""

from __future__ import annotations

import threading
import time

import pytest

from django_db_geventpool.core import ConnectionPool, PoolClosed, PoolTimeout
from support.pools import settled


def test_threads_share_the_cap_and_wait_their_turn(pg, connect, make_pool):
    pool = make_pool(max_size=3)
    assert pool.runtime.name == "threads"
    peak = 0
    lock = threading.Lock()
    in_use = 0

    def worker():
        nonlocal peak, in_use
        with pool.connection() as conn:
            with lock:
                in_use += 1
                peak = max(peak, in_use)
            conn.execute("SELECT pg_sleep(0.01)")
            with lock:
                in_use -= 1

    threads = [threading.Thread(target=worker) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak <= 3
    assert len(connect.opened) == 3
    assert pg.sessions("pooltest") == 3
    assert pool.stats()["checkouts"] == 30
    pool.close()
    assert pg.sessions("pooltest", settles_at=0) == 0


def test_timeout_names_alias_cap_and_fix(connect, make_pool):
    import psycopg

    pool = make_pool(name="reports", max_size=2)
    held = [pool.getconn(), pool.getconn()]
    started = time.monotonic()
    with pytest.raises(PoolTimeout) as info:
        pool.getconn(timeout=0.2)
    assert 0.15 < time.monotonic() - started < 5
    assert isinstance(info.value, psycopg.OperationalError)
    message = str(info.value)
    assert message.startswith("couldn't get a connection for 'reports' after 0.2")
    assert "all 2 in use" in message
    assert "raise MAX_CONNS or find the code that holds connections" in message
    assert pool.stats()["timeouts"] == 1
    assert pool.stats()["waiting"] == 0
    for conn in held:
        pool.putconn(conn)
    assert pool.stats()["idle"] == 2


def test_failed_connect_frees_its_slot(connect, make_pool):
    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("refused")
        return connect()

    pool = make_pool(flaky, max_size=1)
    with pytest.raises(OSError):
        pool.getconn()
    assert pool.stats()["open"] == 0
    conn = pool.getconn(timeout=1)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    pool.putconn(conn)


def test_failed_connect_hands_its_slot_to_a_waiter(connect, make_pool):
    gate = threading.Event()

    def slow_failure():
        gate.wait()
        raise OSError("refused")

    pool = make_pool(max_size=1)
    failures = []

    def fail_to_connect():
        try:
            pool.getconn(5, slow_failure)
        except OSError as ex:
            failures.append(ex)

    failing = threading.Thread(target=fail_to_connect)
    failing.start()
    while pool.stats()["open"] == 0:
        time.sleep(0.001)
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.getconn(timeout=5)))
    waiter.start()
    while pool.stats()["waiting"] == 0:
        time.sleep(0.001)
    gate.set()
    failing.join()
    waiter.join()
    assert len(failures) == 1
    assert len(got) == 1
    assert got[0].execute("SELECT 1").fetchone() == (1,)
    assert pool.stats()["open"] == 1


@pytest.mark.parametrize("fail", [False, True])
def test_transaction_is_rolled_back_on_return(pg, connect, fail, make_pool):
    import psycopg

    pool = make_pool(max_size=1)
    conn = pool.getconn()
    conn.autocommit = False
    conn.execute("CREATE TEMPORARY TABLE t (x int)")
    if fail:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
    pool.putconn(conn)
    again = pool.getconn()
    assert again is conn
    assert again.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with pytest.raises(psycopg.errors.UndefinedTable):
        again.execute("SELECT * FROM t")
    pool.putconn(again)


def test_connection_cut_mid_query_is_closed_not_reused(pg, connect, make_pool):
    import psycopg

    pool = make_pool(max_size=1)
    conn = pool.getconn()
    # As a greenlet killed by gevent.Timeout leaves it: the query sent, the result unread.
    conn.pgconn.send_query(b"SELECT pg_sleep(0.2)")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
    pool.putconn(conn)
    assert settled(pool)["lost"] == 1
    assert conn.closed
    fresh = pool.getconn(timeout=1)
    assert fresh is not conn
    pool.putconn(fresh)


def test_close_refuses_new_work_and_closes_returns(connect, make_pool):
    pool = make_pool(max_size=2)
    kept, idle = pool.getconn(), pool.getconn()
    pool.putconn(idle)
    errors = []

    def wait_for_a_connection():
        try:
            pool.getconn(5)
        except PoolClosed as ex:
            errors.append(ex)

    waiter = threading.Thread(target=wait_for_a_connection)
    # Both slots taken again: the waiter queues.
    second = pool.getconn()
    waiter.start()
    while pool.stats()["waiting"] == 0:
        time.sleep(0.001)
    pool.close()
    waiter.join()
    assert len(errors) == 1
    with pytest.raises(PoolClosed):
        pool.getconn()
    pool.putconn(kept)
    pool.putconn(second)
    assert settled(pool)["open"] == 0
    assert kept.closed and second.closed


def test_size_bounds_validated():
    with pytest.raises(ValueError, match="max_size must be at least 1"):
        ConnectionPool(max_size=0)
    with pytest.raises(ValueError, match="max_idle_conns must be between 0 and max_size"):
        ConnectionPool(max_size=2, max_idle_conns=3)


def test_getconn_waits_for_the_pools_own_timeout_by_default(make_pool):
    pool = make_pool(max_size=1, timeout=0.2)
    held = pool.getconn()
    started = time.monotonic()
    with pytest.raises(PoolTimeout, match=r"after 0\.2"):
        pool.getconn()
    assert 0.15 < time.monotonic() - started < 5
    with pytest.raises(PoolTimeout), pool.connection():
        pass
    pool.putconn(held)
