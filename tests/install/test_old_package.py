"""django-db-geventpool 4.x beside geventpool, installed in either order with real pip.

Both install the package django_db_geventpool, and pip lets the one installed last overwrite
the other's files. Every ENGINE then refuses to connect, and `manage.py check` reports it,
with or without --database, with the commands that recover; the tests run those commands as
printed.
"""

from __future__ import annotations

import re

from support.project import Project
from support.venvs import Venv, versions

OLD = "django-db-geventpool==4.0.8"
OURS = '"geventpool-psycopg3[binary,gevent]" "geventpool-psycopg2[binary]"'
# The ENGINEs of both drivers, with the module of the wrapper class each loads:
# `...postgresql_psycopg` is ours only, the others the old package has too.
ENGINES = {
    "django_db_geventpool.backends.postgresql_psycopg3": "postgresql_psycopg3.base",
    "django_db_geventpool.backends.postgresql_psycopg": "postgresql_psycopg3.base",
    "django_db_geventpool.backends.postgresql_psycopg2": "postgresql_psycopg2.base",
}


def refused(venv: Venv, project: Project, engine: str, check_id: str) -> str:
    """Assert that `!engine` is reported by `check` and refuses to connect; return the message."""
    reported = []
    for options in ((), ("--database", "default")):
        check = project.check(venv, engine, *options)
        assert check.returncode == 1, check.stdout
        found = re.findall(rf"default: \({re.escape(check_id)}\) (.*)", check.stdout)
        assert len(found) == 1, check.stdout
        reported += found
    message, with_database = reported
    assert message == with_database
    query = project.query(venv, engine)
    assert query.returncode == 1, query.stdout
    assert f"django.core.exceptions.ImproperlyConfigured: {message}" in query.stdout
    return message


def works(venv: Venv, project: Project, engine: str) -> None:
    for options in ((), ("--database", "default")):
        check = project.check(venv, engine, *options)
        assert check.returncode == 0, check.stdout
        assert "System check identified no issues" in check.stdout
    query = project.query(venv, engine)
    assert query.returncode == 0, query.stdout
    assert f"selected 1 through django_db_geventpool.backends.{ENGINES[engine]}" in query.stdout


def commands(message: str) -> list[str]:
    """The commands the message tells the user to run, in order."""
    _, _, to_run = message.rpartition(": run ")
    return re.findall(r"`(pip [^`]+)`", to_run)


def test_the_old_package_installed_after_ours_is_refused_until_the_printed_commands_run(
    make_venv, project, dist
):
    venv = make_venv()
    venv.ok(f"pip install {OURS}")
    venv.ok(f"pip install {OLD}")
    # Its base.py files now sit beside our base packages, which Python still imports first.
    for engine in ENGINES:
        message = refused(venv, project, engine, "geventpool.E002")
        assert message.startswith("django-db-geventpool 4.0.8 is installed beside")

    ours = versions(dist)
    pins = " ".join(
        f"{name}=={ours[name]}"
        for name in ("geventpool-core", "geventpool-psycopg3", "geventpool-psycopg2")
    )
    assert commands(message) == [
        "pip uninstall --yes django-db-geventpool",
        f"pip install --force-reinstall --no-deps {pins}",
    ]
    for command in commands(message):
        venv.ok(command)
    for engine in ENGINES:
        works(venv, project, engine)
    assert "django-db-geventpool" not in venv.installed()


def test_uninstalling_the_old_package_installed_before_ours_is_caught_and_undone(
    make_venv, project
):
    venv = make_venv()
    venv.ok(f"pip install {OLD}")
    venv.ok(f"pip install {OURS}")
    for engine in ENGINES:
        refused(venv, project, engine, "geventpool.E002")

    # What users of the old package do: it deletes every file the two share, ours now.
    venv.ok("pip uninstall --yes django-db-geventpool")
    for engine in ENGINES:
        message = refused(venv, project, engine, "geventpool.E003")
    assert "django_db_geventpool/__init__.py, django_db_geventpool/utils.py" in message
    assert "most likely deleted by `pip uninstall django-db-geventpool`" in message
    [command] = commands(message)
    assert command.startswith("pip install --force-reinstall --no-deps geventpool-core==")
    venv.ok(command)
    for engine in ENGINES:
        works(venv, project, engine)
