"""Settings of the demo site, read from the environment demo/demo.py gives each server.

DEMO_BACKEND picks the database backend the run compares: ``geventpool`` (this project,
MAX_CONNS connections per worker process), ``django`` (Django's own backend with
CONN_MAX_AGE=0: a new server connection for every request) or ``pgbouncer`` (the same, with
a connection to a PgBouncer in transaction mode for every request). The server, or the
PgBouncer, comes from the libpq PG* variables.
"""

import os
import secrets

BACKEND = os.environ.get("DEMO_BACKEND", "geventpool")
MAX_CONNS = int(os.environ.get("DEMO_MAX_CONNS", "10"))
# Seconds of server time per request: what one ordinary query of a page costs.
QUERY_SECONDS = float(os.environ.get("DEMO_QUERY_SECONDS", "0.005"))

DEBUG = False
SECRET_KEY = secrets.token_urlsafe(32)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "demoproject.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
USE_TZ = True
WSGI_APPLICATION = "demoproject.wsgi.application"

_ENGINES = {
    "geventpool": "django_db_geventpool.backends.postgresql_psycopg",
    "django": "django.db.backends.postgresql",
    "pgbouncer": "django.db.backends.postgresql",
}
_OPTIONS: dict[str, object] = {"application_name": f"demo-{BACKEND}"}
if BACKEND == "geventpool":
    _OPTIONS["MAX_CONNS"] = MAX_CONNS

DATABASES = {
    "default": {
        "ENGINE": _ENGINES[BACKEND],
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        # 0 for all three: geventpool gives the connection back to its pool at the end of
        # each request; Django closes it. Behind PgBouncer too, as sites on gevent workers
        # run it: a persistent connection would never be reused there, since each request
        # runs in a greenlet of its own and Django keeps one connection per greenlet, so every
        # request would still connect, and leave its connection open for the garbage
        # collector to close.
        "CONN_MAX_AGE": 0,
        # In transaction mode, a cursor declared in one server session can't be fetched from
        # in another (Django's docs say the same about transaction pooling).
        "DISABLE_SERVER_SIDE_CURSORS": BACKEND == "pgbouncer",
        "OPTIONS": _OPTIONS,
    }
}
