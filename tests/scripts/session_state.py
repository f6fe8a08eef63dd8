"""Scenarios about session state that one user of a pooled connection leaves to the next.

For tests/psycopg3/test_session_state.py: python session_state.py SCENARIO
'{"json": "arguments"}' prints one JSON line (harness.py).
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

cell.patch()

from harness import main, pool_stats, scenario  # noqa: E402


@scenario
def time_zone_left_changed(args):
    """A time zone changed by one user is set back before the next one gets the connection."""
    from django.db import connection

    from django_db_geventpool.utils import close_connection

    def seen(sql=None):
        with close_connection(), connection.cursor() as cursor:
            if sql:
                cursor.execute(sql)
            cursor.execute("SELECT pg_backend_pid(), current_setting('TimeZone')")
            return cursor.fetchone()

    first = seen("SET TIME ZONE 'Asia/Tokyo'")
    second = seen()
    return {"first": first, "second": second, "stats": pool_stats()}


#: What the first user of the connection leaves behind, one statement per kind of state.
LEAVE_BEHIND = {
    "search_path": "SET search_path TO leftover, public",
    "statement_timeout": "SET statement_timeout TO '5min'",
    "listen": "LISTEN leftover",
    "temporary_table": "CREATE TEMPORARY TABLE leftover (n integer)",
    "prepared_statement": "PREPARE leftover AS SELECT 1",
    "advisory_lock": "SELECT pg_advisory_lock(4242)",
    "set_config": "SELECT set_config('leftover.tenant', 'acme', false)",
    "with_hold_cursor": "DECLARE leftover CURSOR WITH HOLD FOR SELECT 1",
    "application_name": "SET application_name TO 'leftover'",
    # A built-in role (PostgreSQL 14 and later) that the tests' superuser may take on.
    "role": "SET ROLE pg_read_all_data",
    "read_only": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
}

#: What the next user sees of each: the same value as on a new connection if nothing leaked.
SEEN = {
    "search_path": "SELECT current_setting('search_path')",
    "statement_timeout": "SELECT current_setting('statement_timeout')",
    "listen": "SELECT count(*) FROM pg_listening_channels()",
    "temporary_table": "SELECT to_regclass('pg_temp.leftover') IS NOT NULL",
    "prepared_statement": "SELECT count(*) FROM pg_prepared_statements WHERE name = 'leftover'",
    "advisory_lock": "SELECT count(*) FROM pg_locks"
    " WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    "set_config": "SELECT coalesce(current_setting('leftover.tenant', true), '')",
    "with_hold_cursor": "SELECT count(*) FROM pg_cursors WHERE name = 'leftover'",
    "application_name": "SELECT current_setting('application_name')",
    "role": "SELECT current_user::text",
    "read_only": "SELECT current_setting('default_transaction_read_only')",
}


@scenario
def state_left_behind(args):
    """One user changes every kind of session state; what does the next one see?

    With MAX_CONNS=1 the next user gets the same connection. The session state of a new
    connection is read first, on a connection of its own, for comparison. Each user also
    writes a row, the way a view would: the next user's write tells whether a read-only
    session reached it.
    """
    from django.db import DatabaseError, connection

    from django_db_geventpool.utils import close_connection

    def look(cursor):
        seen = {}
        for name, sql in SEEN.items():
            cursor.execute(sql)
            seen[name] = cursor.fetchone()[0]
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0], seen

    def write(cursor):
        try:
            cursor.execute("INSERT INTO leftover_writes VALUES (1)")
        except DatabaseError as ex:
            return str(ex).splitlines()[0]
        return None

    fresh = cell.observer()
    try:
        fresh_seen = {name: cell.query_one(fresh, sql) for name, sql in SEEN.items()}
    finally:
        fresh.close()
    with close_connection(), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE leftover_writes (n integer)")
        for sql in LEAVE_BEHIND.values():
            cursor.execute(sql)
        first_pid, first_seen = look(cursor)
    with close_connection(), connection.cursor() as cursor:
        second_pid, second_seen = look(cursor)
        second_write_error = write(cursor)
    return {
        "fresh": fresh_seen,
        "first": first_seen,
        "second": second_seen,
        "same_connection": first_pid == second_pid,
        "second_write_error": second_write_error,
        "stats": pool_stats(),
    }


if __name__ == "__main__":
    main()
