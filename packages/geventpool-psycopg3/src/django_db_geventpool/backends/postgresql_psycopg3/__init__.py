"""Django's PostgreSQL backend on psycopg 3, with connections from the geventpool pool."""
