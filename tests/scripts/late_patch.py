"""psycopg imported before monkey-patching: the first connection must refuse to run."""

import json
import os
import sys

import django
from django.conf import settings

settings.configure(
    DATABASES={
        "default": {
            "ENGINE": "django_db_geventpool.backends.postgresql_psycopg3",
            "NAME": os.environ["PGDATABASE"],
            "USER": os.environ["PGUSER"],
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ["PGHOST"],
            "PORT": os.environ["PGPORT"],
            "CONN_MAX_AGE": 0,
        }
    }
)
django.setup()

from django.db import connection  # noqa: E402

connection.ensure_connection  # noqa: B018 (loads the backend, hence psycopg)
assert "psycopg" in sys.modules

from gevent import monkey  # noqa: E402

monkey.patch_all()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402

try:
    connection.ensure_connection()
except ImproperlyConfigured as ex:
    print(json.dumps({"error": str(ex)}))
else:
    print(json.dumps({"error": None}))
