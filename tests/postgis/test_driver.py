"""How the PostGIS backend picks its driver, and what it says when a package is missing.

Only the choosing module is imported here; Django's PostgreSQL backend never is, so that
this process keeps no driver choice made for another test.
"""

from __future__ import annotations

import sys
import types

import pytest

driver = pytest.importorskip(
    "django_db_geventpool.backends.postgis.driver",
    reason="geventpool-postgis is not installed here: `./noxw -s postgis` runs these",
)
ImproperlyConfigured = pytest.importorskip("django.core.exceptions").ImproperlyConfigured


@pytest.fixture
def undecided(monkeypatch):
    """Django's PostgreSQL backend has not chosen its driver yet."""
    monkeypatch.delitem(sys.modules, driver._CHOSEN, raising=False)


def installed(monkeypatch, *packages):
    """Make `find_spec` find the driver packages of these extras, and no other."""
    found = {d.package for d in (driver.PSYCOPG3, driver.PSYCOPG2) if d.extra in packages}
    monkeypatch.setattr(
        driver.importlib.util, "find_spec", lambda name, *a: object() if name in found else None
    )


def test_psycopg3_wins_when_both_driver_packages_are_installed(monkeypatch, undecided):
    installed(monkeypatch, "psycopg3", "psycopg2")
    assert driver.choose() is driver.PSYCOPG3


def test_psycopg2_package_alone_runs_on_psycopg2(monkeypatch, undecided):
    # Even where psycopg 3 itself is importable: the extra installed says which driver.
    installed(monkeypatch, "psycopg2")
    assert driver.choose() is driver.PSYCOPG2


def test_django_choice_already_made_is_followed(monkeypatch):
    installed(monkeypatch, "psycopg3", "psycopg2")
    fake = types.SimpleNamespace(is_psycopg3=False)
    monkeypatch.setitem(sys.modules, driver._CHOSEN, fake)
    assert driver.choose() is driver.PSYCOPG2


def test_no_driver_package_names_both_extras(monkeypatch, undecided):
    installed(monkeypatch)
    with pytest.raises(ImproperlyConfigured) as exc:
        driver.choose()
    assert 'pip install "geventpool-postgis[psycopg3]"' in str(exc.value)
    assert '"geventpool-postgis[psycopg2]" for psycopg2' in str(exc.value)


def test_missing_driver_package_names_its_extra():
    missing = driver.PSYCOPG2._replace(
        package="django_db_geventpool.backends.not_installed",
        module="django_db_geventpool.backends.not_installed.wrapper",
    )
    with pytest.raises(ImproperlyConfigured) as exc:
        driver.mixin(missing)
    message = str(exc.value)
    assert "runs on psycopg2" in message
    assert 'pip install "geventpool-postgis[psycopg2]"' in message


def test_a_module_missing_inside_a_driver_package_is_not_hidden(tmp_path, monkeypatch):
    package = tmp_path / "broken_driver"
    package.mkdir()
    (package / "wrapper.py").write_text("import no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = driver.PSYCOPG3._replace(package="broken_driver", module="broken_driver.wrapper")
    with pytest.raises(ModuleNotFoundError) as exc:
        driver.mixin(broken)
    assert exc.value.name == "no_such_dependency"


def test_django_loading_another_driver_is_refused():
    with pytest.raises(ImproperlyConfigured) as exc:
        driver.check_agrees(driver.PSYCOPG2, is_psycopg3=True)
    assert "already loaded psycopg 3" in str(exc.value)
    assert 'pip install "geventpool-postgis[psycopg3]"' in str(exc.value)
    driver.check_agrees(driver.PSYCOPG3, is_psycopg3=True)
