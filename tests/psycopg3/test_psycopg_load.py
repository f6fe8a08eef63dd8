"""A psycopg 3 that can't be loaded is refused with the extras that install a working one."""

from __future__ import annotations

import importlib.util

from support.testproject import django_admin


def test_a_psycopg_build_that_cant_load_is_refused_naming_the_extras(pg):
    # PSYCOPG_IMPL=c asks psycopg for its C build, which no test environment installs: the
    # import fails as it does on a machine without libpq.
    assert importlib.util.find_spec("psycopg_c") is None, "psycopg[c] is installed here"
    proc = django_admin("check", "--database", "default", env={**pg.env(), "PSYCOPG_IMPL": "c"})
    assert proc.returncode == 1
    assert "ImproperlyConfigured: django_db_geventpool.backends.postgresql_psycopg3 can't" in (
        proc.stderr
    )
    assert "couldn't import requested psycopg 'c' implementation" in proc.stderr
    assert 'pip install "geventpool-psycopg3[binary]"' in proc.stderr
    assert 'pip install "geventpool-psycopg3[c]"' in proc.stderr
