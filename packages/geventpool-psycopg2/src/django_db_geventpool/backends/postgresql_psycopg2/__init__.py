"""Django's PostgreSQL backend on psycopg2 (or psycopg2cffi on PyPy), with connections from
the geventpool pool.

Nothing is imported here: `wait_callback.patch_psycopg2()` must be usable from a gunicorn hook
before Django or its database backends are loaded.
"""
