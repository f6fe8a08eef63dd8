"""ENGINE alias: ``django_db_geventpool.backends.postgresql_psycopg`` is the psycopg 3 backend."""
