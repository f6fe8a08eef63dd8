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


if __name__ == "__main__":
    main()
