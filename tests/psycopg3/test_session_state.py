"""Session state one user of a pooled connection leaves to the next, and what sets it back."""

from __future__ import annotations

import os

import pytest

from support.scenarios import run_in_cell, run_scenario


def test_time_zone_changed_by_a_user_is_set_back_for_the_next(pg, fresh_db):
    result = run_scenario("session_state.py", "time_zone_left_changed", pg.env(fresh_db))
    first_pid, first_tz = result["first"]
    second_pid, second_tz = result["second"]
    assert first_tz == "Asia/Tokyo"
    # The same connection, reused: the driver reported the change, so the checkout saw that
    # TimeZone no longer matched Django's (UTC with USE_TZ) and ran Django's setup again.
    assert second_pid == first_pid
    assert second_tz == "UTC"
    assert result["stats"]["opened"] == 1


#: What each kind of session state reads as after one user changed it
#: (tests/scripts/session_state.py's LEAVE_BEHIND and SEEN).
LEFT_BEHIND = {
    "search_path": "leftover, public",
    "statement_timeout": "5min",
    "listen": 1,
    "temporary_table": True,
    "prepared_statement": 1,
    "advisory_lock": 1,
    "set_config": "acme",
    "with_hold_cursor": 1,
    "application_name": "leftover",
    "role": "pg_read_all_data",
    "read_only": "on",
}

#: DISCARD ALL in parts, which can be sent as one string (DISCARD ALL must be alone).
DISCARD_ALL_IN_PARTS = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *;"
    " SELECT pg_advisory_unlock_all(); DEALLOCATE ALL; DISCARD TEMP; DISCARD SEQUENCES"
)


def state_left_behind(pg, fresh_db, reset_query):
    options = {"MAX_CONNS": 1, "RESET_QUERY": reset_query}
    result = run_in_cell("session_state.py", "state_left_behind", pg.env(fresh_db), options=options)
    # The next user got the connection the first one changed, which did change everything.
    assert result["same_connection"]
    assert result["stats"]["opened"] == 1
    assert result["first"] == LEFT_BEHIND
    return result


def test_without_reset_query_every_kind_of_session_state_reaches_the_next_user(pg, fresh_db):
    result = state_left_behind(pg, fresh_db, None)
    assert result["second"] == LEFT_BEHIND
    # The read-only session makes the next user's writes fail.
    assert "read-only transaction" in result["second_write_error"]


@pytest.mark.parametrize(
    "reset_query", ["DISCARD ALL", DISCARD_ALL_IN_PARTS], ids=["discard-all", "in-parts"]
)
def test_reset_query_gives_the_next_user_a_session_as_new(pg, fresh_db, reset_query):
    result = state_left_behind(pg, fresh_db, reset_query)
    fresh = result["fresh"]
    # The observer that read a new session's state has an application_name of its own.
    assert fresh.pop("application_name") == "observer"
    app_name = result["second"].pop("application_name")
    assert app_name == f"state_left_behind-{os.getpid()}"
    assert result["second"] == fresh
    assert result["second_write_error"] is None
