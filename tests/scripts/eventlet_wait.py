"""psycopg 3 under eventlet without PSYCOPG_WAIT_FUNC: the first connection must refuse to run."""

import json
import os
import warnings

# What this checks is the process that forgot the variable.
os.environ.pop("PSYCOPG_WAIT_FUNC", None)
# Only eventlet's own deprecation notice is let through (the script runs with -W error).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)

import eventlet  # noqa: E402

eventlet.monkey_patch()

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import django  # noqa: E402
from django.conf import settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.databases import database_from_env  # noqa: E402

settings.configure(
    DATABASES={"default": database_from_env("django_db_geventpool.backends.postgresql_psycopg3")}
)
django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.db import connection  # noqa: E402

try:
    connection.ensure_connection()
except ImproperlyConfigured as ex:
    print(json.dumps({"error": str(ex)}))
else:
    print(json.dumps({"error": None}))
