"""An ENGINE whose distribution isn't installed names the distribution, with real pip.

Django reports any backend that fails to import as one that "isn't an available database
backend", and points at the exception above it: that one must say what to install.
"""

from __future__ import annotations

PACKAGE = "django_db_geventpool.backends"
DJANGOS_WORDS = "isn't an available database backend or couldn't be imported"


def test_an_engine_names_its_distribution_when_only_another_is_installed(make_venv, project):
    venv = make_venv()
    venv.ok("pip install geventpool-core")
    # No driver distribution at all: the ENGINEs' package itself is missing.
    check = project.check(venv, f"{PACKAGE}.postgresql_psycopg3")
    assert check.returncode == 1, check.stdout
    assert DJANGOS_WORDS in check.stdout
    assert (
        "`pip install geventpool-psycopg3` for postgresql_psycopg3 or postgresql_psycopg;"
        " `pip install geventpool-psycopg2` for postgresql_psycopg2;"
        " `pip install geventpool-postgis` for postgis"
    ) in check.stdout

    # What the Quickstart installs; a settings file from psycopg2 days keeps its ENGINE.
    venv.ok("pip install geventpool-psycopg3")
    for engine, distribution in (
        ("postgresql_psycopg2", "geventpool-psycopg2"),
        ("postgis", "geventpool-postgis"),
    ):
        for run in (project.check, project.query):
            proc = run(venv, f"{PACKAGE}.{engine}")
            assert proc.returncode == 1, proc.stdout
            assert (
                f"ModuleNotFoundError: {PACKAGE}.{engine} is in the {distribution} distribution,"
                f" which isn't installed: install it with `pip install {distribution}`"
            ) in proc.stdout
            assert DJANGOS_WORDS in proc.stdout

    for engine in ("postgresql_psycopg3", "postgresql_psycopg"):
        check = project.check(venv, f"{PACKAGE}.{engine}")
        assert check.returncode == 0, check.stdout
        assert "System check identified no issues" in check.stdout
