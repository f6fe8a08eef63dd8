"""A checkout through Django keeps what Django's connect() and close() promise.

Most checkouts skip the parts of ``connect()`` a reused connection doesn't need; these check
that what Django users rely on happens all the same.
"""

from __future__ import annotations

from support.scenarios import run_scenario


def test_every_checkout_is_a_connect(pg):
    result = run_scenario("checkout_path.py", "every_checkout_is_a_connect", pg.env())
    # One connection, lent four times (the last time to another task): four
    # connection_created signals, as Django sends one per connect().
    assert len(set(result["pids"])) == 1
    assert result["created"] == 4
    assert result["committed"] == 1
    # For the first checkout only: the others reuse the pool's connection as it is.
    assert result["params_built"] == 2
    assert result["stats"]["opened"] == 1
    # psycopg's IsolationLevel.READ_COMMITTED, Django's default.
    assert result["isolation_level"] == 2


def test_settings_changed_between_checkouts(pg):
    result = run_scenario("checkout_path.py", "settings_changed_between_checkouts", pg.env())
    assert result["after"] == result["before"] + "-renamed"
    assert result["pool_replaced"]
    assert result["first_pool_closed"]


def test_closed_from_another_task(pg):
    result = run_scenario("checkout_path.py", "closed_from_another_task", pg.env())
    assert "can only be used in that same thread" in result["error"]
    assert result["in_use_before"] == 1
    assert result["stats"]["in_use"] == 0
    assert result["stats"]["idle"] == 1


def test_health_check_finds_a_dead_connection(pg):
    result = run_scenario(
        "checkout_path.py",
        "health_check_finds_a_dead_connection",
        pg.env(),
        database={"CONN_HEALTH_CHECKS": True},
    )
    assert result["second"] != result["first"]
    assert result["stats"]["lost"] == 1


def test_autocommit_left_off(pg):
    result = run_scenario("checkout_path.py", "autocommit_left_off", pg.env())
    # Given back (rolled back, not closed) and lent again in autocommit.
    assert result["second"] == result["first"]
    assert result["autocommit"] is True
    assert result["stats"]["lost"] == 0


def test_called_from_async_code(pg):
    result = run_scenario("checkout_path.py", "called_from_async_code", pg.env())
    assert "You cannot call this from an async context" in result["checkout"]
    assert "You cannot call this from an async context" in result["give_back"]
    assert (result["stats"]["in_use"], result["stats"]["idle"]) == (0, 1)
