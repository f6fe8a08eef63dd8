"""Settings of the project that `manage.py test` runs against; the server comes from PG*."""

import json
import os

SECRET_KEY = "not-secret"
USE_TZ = True
TIME_ZONE = "Europe/Paris"
INSTALLED_APPS = ["testapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": os.environ.get(
            "GEVENTPOOL_ENGINE", "django_db_geventpool.backends.postgresql_psycopg3"
        ),
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            "MAX_CONNS": 3,
            "application_name": os.environ.get("GEVENTPOOL_APP", "testproject"),
            # Tests of settings validation put their (bad) options here.
            **json.loads(os.environ.get("GEVENTPOOL_OPTIONS", "{}")),
        },
        "TEST": {"NAME": os.environ.get("GEVENTPOOL_TEST_DB", "test_geventpool")},
    }
}
