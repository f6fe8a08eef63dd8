"""Scenarios through PgBouncer in transaction mode; greenlets.py's herd and orm run there as well.

For tests/integrations/test_pgbouncer.py: python pgbouncer.py SCENARIO '{"json": "arguments"}'
prints one JSON line (harness.py), with the runtime and the driver of the cell (cell.py).
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

green = cell.patch()

from greenlets import herd, orm  # noqa: E402, F401 - run through PgBouncer as they are
from harness import create_tables, main, pool_stats, scenario  # noqa: E402


@scenario
def transaction_pooling(args):
    """What transaction pooling changes: server sessions vary between transactions only."""
    from django.db import connection, transaction
    from django.utils import timezone

    from django_db_geventpool.utils import close_connection
    from testapp.models import Event

    create_tables()

    def backend_pid(cursor):
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]

    @close_connection
    def client(i):
        with transaction.atomic(), connection.cursor() as cursor:
            first = backend_pid(cursor)
            Event.objects.create(name=f"e{i}", happened_at=timezone.now())
            green.sleep(0.01)
            same = backend_pid(cursor) == first
        # iterator() without a server-side cursor: the rows come in one result set.
        names = [event.name for event in Event.objects.order_by("pk").iterator(chunk_size=2)]
        return {
            "same_backend_in_transaction": same,
            "rows_seen": len(names),
            # psycopg 3 only; psycopg2 never prepares statements.
            "prepare_threshold": getattr(connection.connection, "prepare_threshold", None),
            "server_side_cursors_disabled": connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"],
        }

    tasks = [green.spawn(client, i) for i in range(args["clients"])]
    green.joinall(tasks)
    return {"results": [green.result(t) for t in tasks], "stats": pool_stats()}


if __name__ == "__main__":
    main()
