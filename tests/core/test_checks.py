"""Bad pool settings are system check errors wherever Django runs its checks.

`manage.py check` without --database, `runserver` and `migrate` included. The server the
settings name doesn't exist: the checks must not need a connection.
"""

from __future__ import annotations

import json

import pytest

from support.testproject import django_admin

NOWHERE = {
    "PGHOST": "/nonexistent",
    "PGPORT": "5432",
    "PGUSER": "nobody",
    "PGDATABASE": "nothing",
}
MISSPELT = {"MAX_CONN": 4}
MISSPELT_MESSAGE = (
    "default: (geventpool.E001) DATABASES['default']['OPTIONS'] has an unknown key"
    " 'MAX_CONN': did you mean 'MAX_CONNS'?"
)

# The test project as `startproject` makes it, in development: runserver refuses to start
# without DEBUG (or ALLOWED_HOSTS).
DEVELOPMENT = """
from testproject.settings import *  # noqa: F403

DEBUG = True
"""
# A second database on the pool beside the test project's, with a setting of its own.
TWO_DATABASES = """
from testproject.settings import *  # noqa: F403
from support.databases import database_from_env

DATABASES["other"] = database_from_env(
    "django_db_geventpool.backends.postgresql_psycopg",
    OPTIONS={"MAX_CONNS": 4, "REUSE_CONNS": 5},
)
"""


def settings(folder, name: str, text: str) -> tuple[str, ...]:
    """The options that make a command use the settings module `!text`, written in `!folder`."""
    (folder / f"{name}.py").write_text(text)
    return ("--settings", name, "--pythonpath", str(folder))


def errors(proc) -> list[str]:
    """The lines of geventpool's errors in a command's output."""
    output = proc.stdout + proc.stderr
    return [line for line in output.splitlines() if "(geventpool.E" in line]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"MAX_CONNS": "20"}, "['MAX_CONNS'] is '20': it must be an integer"),
        ({"MAX_CONN": 20}, "unknown key 'MAX_CONN': did you mean 'MAX_CONNS'?"),
        ({"REUSE_CONNS": 9}, "['REUSE_CONNS'] is 9: it must be between 0 and MAX_CONNS (3)"),
        ({"pool": True}, "Django's own connection pool"),
        ({"MAX_IDLE_TIME": float("nan")}, "['MAX_IDLE_TIME'] is nan: it must be a number"),
        ({"CHECKOUT_TIMEOUT": 10**400}, "it must be a number of seconds (0 or more, and finite)"),
        ({"max_conns": 20}, "unknown key 'max_conns': did you mean 'MAX_CONNS'?"),
    ],
)
def test_manage_py_check_reports_bad_pool_settings(options, message):
    env = {**NOWHERE, "GEVENTPOOL_OPTIONS": json.dumps(options)}
    proc = django_admin("check", env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [error] = errors(proc)
    assert error.startswith("default: (geventpool.E001) ")
    assert message in error


@pytest.mark.parametrize(
    "command",
    [
        ["check", "--database", "default"],
        ["check", "--tag", "geventpool"],
        ["migrate"],
        ["runserver", "--noreload"],
    ],
    ids=" ".join,
)
def test_every_command_that_runs_the_checks_reports_a_setting_once(tmp_path, command):
    development = settings(tmp_path, "development", DEVELOPMENT)
    env = {**NOWHERE, "GEVENTPOOL_OPTIONS": json.dumps(MISSPELT)}
    proc = django_admin(*command, *development, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert errors(proc) == [MISSPELT_MESSAGE]


def test_every_database_on_the_pool_is_checked(tmp_path):
    env = {**NOWHERE, "GEVENTPOOL_OPTIONS": json.dumps(MISSPELT)}
    project = settings(tmp_path, "two_databases", TWO_DATABASES)
    other = (
        "other: (geventpool.E001) DATABASES['other']['OPTIONS']['REUSE_CONNS'] is 5:"
        " it must be between 0 and MAX_CONNS (4); it is how many idle connections to keep open"
    )

    proc = django_admin("check", *project, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert sorted(errors(proc)) == [MISSPELT_MESSAGE, other]
    # Naming one database skips none of these checks.
    proc = django_admin("check", "--database", "other", *project, env=env, timeout=60)
    assert sorted(errors(proc)) == [MISSPELT_MESSAGE, other]


@pytest.mark.parametrize("command", [["check"], ["check", "--database", "default"]], ids=" ".join)
def test_good_settings_pass(command):
    proc = django_admin(*command, env=NOWHERE, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout
