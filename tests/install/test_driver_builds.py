"""Which build of each driver a plain install brings, and what a missing one says."""

from __future__ import annotations

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


def test_a_plain_psycopg3_install_brings_psycopg_with_libpq_inside(make_venv, project):
    venv = make_venv()
    venv.ok("pip install geventpool-psycopg3")
    installed = venv.installed()
    # CPython on x86-64 or ARM64, where psycopg publishes its binary build.
    assert "psycopg-binary" in installed
    assert installed["psycopg-binary"] == installed["psycopg"]
    # The build in use is the one with libpq inside, whatever the machine has.
    query = project.query(venv, PSYCOPG3_ENGINE)
    assert query.returncode == 0, query.stdout
    impl = venv.ok(["python", "-c", "import psycopg; print(psycopg.pq.__impl__)"])
    assert impl.strip() == "binary"
