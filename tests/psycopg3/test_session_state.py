"""Session state that Django sets up, checked again when a pooled connection is lent."""

from __future__ import annotations

from support.scenarios import run_scenario


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
