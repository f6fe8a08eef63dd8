"""Settings of the project that `manage.py test` runs against; the server comes from PG*."""

import json
import os

from support.databases import database_from_env

SECRET_KEY = "not-secret"
USE_TZ = True
TIME_ZONE = "Europe/Paris"
INSTALLED_APPS = ["testapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": database_from_env(
        os.environ.get("GEVENTPOOL_ENGINE", "django_db_geventpool.backends.postgresql_psycopg3"),
        OPTIONS={
            "MAX_CONNS": 3,
            "application_name": os.environ.get("GEVENTPOOL_APP", "testproject"),
            # Tests of settings validation put their (bad) options here.
            **json.loads(os.environ.get("GEVENTPOOL_OPTIONS", "{}")),
        },
        TEST={"NAME": os.environ.get("GEVENTPOOL_TEST_DB", "test_geventpool")},
    )
}
