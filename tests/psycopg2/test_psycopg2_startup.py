"""The psycopg2 backend refuses to run blocking on greenlets, and runs beside psycopg 3."""

from __future__ import annotations

import os
import platform

import pytest

from support.scenarios import run_scenario

RUNTIME = os.environ.get("GEVENTPOOL_RUNTIME", "gevent")


@pytest.fixture
def env(pg, fresh_db):
    return pg.env(fresh_db)


def test_missing_wait_callback_is_refused_with_the_fix(env):
    result = run_scenario("psycopg2_startup.py", "no_wait_callback", env, runtime=RUNTIME)
    assert result["selected"] is None
    assert f"patched by {RUNTIME}, but psycopg2 has no wait callback" in result["error"]
    assert "wait_callback.patch_psycopg2()" in result["error"]
    assert "GEVENTPOOL_MISSING_WAIT_CALLBACK = 'warn'" in result["error"]


def test_missing_wait_callback_only_warns_when_told_to(env):
    result = run_scenario(
        "psycopg2_startup.py", "no_wait_callback", env, runtime=RUNTIME, action="warn"
    )
    assert result["error"] is None
    assert result["selected"] == 1
    [warning] = result["warnings"]
    assert "no wait callback" in warning


@pytest.mark.skipif(RUNTIME != "eventlet", reason="eventlet's own psycopg2 support")
@pytest.mark.skipif(
    platform.python_implementation() == "PyPy",
    reason="eventlet imports psycopg2 while patching, before psycopg2cffi stands in for it",
)
def test_eventlet_monkey_patch_installs_a_wait_callback_itself(env):
    result = run_scenario(
        "psycopg2_startup.py", "no_wait_callback", env, runtime=RUNTIME, eventlet_psycopg=True
    )
    assert (result["error"], result["warnings"]) == (None, [])
    assert result["callback"] == "eventlet.support.psycopg2_patcher"
    assert result["selected"] == 1


def test_unknown_wait_callback_action_is_refused(env):
    result = run_scenario(
        "psycopg2_startup.py", "no_wait_callback", env, runtime=RUNTIME, action="ignore"
    )
    assert "GEVENTPOOL_MISSING_WAIT_CALLBACK is 'ignore'" in result["error"]


def test_patch_psycopg2_installs_the_callback_of_the_runtime(env):
    result = run_scenario("psycopg2_startup.py", "helper", env, runtime=RUNTIME)
    assert (
        "call gevent.monkey.patch_all() or eventlet.monkey_patch() first" in (result["unpatched"])
    )
    assert result["patched"] == RUNTIME
    assert result["callback"] == f"psycogreen.{RUNTIME}"
    assert result["selected"] == 1


@pytest.fixture
def psycopg3_installed():
    # Installed everywhere the test harness runs on CPython; PyPy has no build of it.
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed beside psycopg2 here")


def test_runs_on_psycopg2_when_psycopg3_is_installed_and_imported(env, psycopg3_installed):
    result = run_scenario("psycopg2_startup.py", "psycopg3_imported_first", env)
    assert result == {
        "selected": 1,
        "database_module": "psycopg2",
        "django_is_psycopg3": False,
        "psycopg_module_kept": True,
    }


def test_psycopg3_chosen_by_django_first_is_refused_at_startup(env, psycopg3_installed):
    result = run_scenario("psycopg2_startup.py", "psycopg3_loaded_by_contrib_postgres", env)
    assert "already loaded with psycopg 3" in result["error"]
    assert "'django.contrib.postgres' in INSTALLED_APPS" in result["error"]
    assert "pip uninstall psycopg psycopg-binary" in result["error"]
