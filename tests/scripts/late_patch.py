"""psycopg imported before monkey-patching: the first connection must refuse to run.

For tests/psycopg3/test_green_wait.py. The cell's runtime (GEVENTPOOL_RUNTIME) patches, but
only once Django has loaded the backend; tests/ is on PYTHONPATH (tests/support/scenarios.py).
"""

import json
import sys

import django
from django.conf import settings

from support.databases import database_from_env

settings.configure(
    DATABASES={"default": database_from_env("django_db_geventpool.backends.postgresql_psycopg3")}
)
django.setup()

from django.db import connection  # noqa: E402

connection.ensure_connection  # noqa: B018 (loads the backend, hence psycopg)
assert "psycopg" in sys.modules

import cell  # noqa: E402

cell.patch()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402

try:
    connection.ensure_connection()
except ImproperlyConfigured as ex:
    print(json.dumps({"error": str(ex)}))
else:
    print(json.dumps({"error": None}))
