"""Which build of each driver a plain install brings, and what a missing one says.

Both driver packages leave the build to the application, as each driver asks; every
distribution a user installs offers the core's extras.
"""

from __future__ import annotations

import ctypes.util

import pytest

PSYCOPG2_ENGINE = "django_db_geventpool.backends.postgresql_psycopg2"
PSYCOPG3_ENGINE = "django_db_geventpool.backends.postgresql_psycopg3"


def test_psycopg2_is_the_applications_choice_and_a_missing_one_names_the_extras(make_venv, project):
    venv = make_venv()
    venv.ok("pip install geventpool-psycopg2")
    installed = venv.installed()
    # Nothing that would overwrite a psycopg2 built from source, nor one at all.
    assert "psycopg2-binary" not in installed
    assert "psycopg2" not in installed
    assert "psycogreen" in installed

    query = project.query(venv, PSYCOPG2_ENGINE)
    assert query.returncode == 1
    assert (
        f"ImproperlyConfigured: {PSYCOPG2_ENGINE} needs psycopg2, and none is installed"
        in query.stdout
    )
    assert 'pip install "geventpool-psycopg2[binary]"' in query.stdout
    assert 'pip install "geventpool-psycopg2[c]"' in query.stdout

    venv.ok('pip install "geventpool-psycopg2[binary]"')
    assert "psycopg2-binary" in venv.installed()
    query = project.query(venv, PSYCOPG2_ENGINE)
    assert query.returncode == 0, query.stdout
    assert f"selected 1 through {PSYCOPG2_ENGINE}.base" in query.stdout


def test_psycopg3_is_the_applications_choice_too(make_venv, project):
    venv = make_venv()
    venv.ok("pip install geventpool-psycopg3")
    installed = venv.installed()
    # Plain psycopg, as psycopg asks of libraries: no build of its own.
    assert "psycopg" in installed
    assert "psycopg-binary" not in installed
    assert "psycopg-c" not in installed

    query = project.query(venv, PSYCOPG3_ENGINE)
    if ctypes.util.find_library("pq"):
        # psycopg talks to the machine's libpq through ctypes.
        assert query.returncode == 0, query.stdout
        assert psycopg_impl(venv) == "python"
    else:
        assert query.returncode == 1, query.stdout
        assert "no pq wrapper available" in query.stdout
        assert_names_the_psycopg3_builds(query.stdout)
    # A build the process asks for and that is not installed fails the same way.
    env = {**project.env(PSYCOPG3_ENGINE), "PSYCOPG_IMPL": "binary"}
    query = venv.run(["python", str(project.folder / "query.py")], env=env)
    assert query.returncode == 1, query.stdout
    assert "couldn't import requested psycopg 'binary' implementation" in query.stdout
    assert_names_the_psycopg3_builds(query.stdout)

    venv.ok('pip install "geventpool-psycopg3[binary]"')
    installed = venv.installed()
    assert installed["psycopg-binary"] == installed["psycopg"]
    query = project.query(venv, PSYCOPG3_ENGINE)
    assert query.returncode == 0, query.stdout
    assert f"selected 1 through {PSYCOPG3_ENGINE}.base" in query.stdout
    assert psycopg_impl(venv) == "binary"


def psycopg_impl(venv):
    return venv.ok(["python", "-c", "import psycopg; print(psycopg.pq.__impl__)"]).strip()


def assert_names_the_psycopg3_builds(output):
    assert (
        f"django.core.exceptions.ImproperlyConfigured: {PSYCOPG3_ENGINE} can't import psycopg 3"
        in output
    )
    assert 'pip install "geventpool-psycopg3[binary]"' in output
    assert 'pip install "geventpool-psycopg3[c]"' in output


@pytest.mark.parametrize(
    "distribution", ["geventpool-psycopg3", "geventpool-psycopg2", "geventpool-postgis"]
)
def test_every_distribution_offers_the_observability_extras(make_venv, dist, distribution):
    venv = make_venv()
    wheel = _one_wheel(dist, distribution)
    out = venv.ok(["pip", "install", f"{wheel}[prometheus,opentelemetry]"])
    assert "does not provide the extra" not in out
    installed = venv.installed()
    assert "prometheus-client" in installed
    assert "opentelemetry-api" in installed
    venv.ok(["python", "-c", "import prometheus_client, opentelemetry.metrics"])


def _one_wheel(dist, distribution):
    [wheel] = dist.glob(f"{distribution.replace('-', '_')}-*.whl")
    return wheel
