"""Scenarios about what a checkout through Django keeps of Django's connect() and close().

For tests/psycopg3/test_checkout_path.py: python checkout_path.py SCENARIO
'{"json": "arguments"}' prints one JSON line (harness.py).
"""

# First: the cell's runtime patches the process before anything imports a driver.
import cell

green = cell.patch()

from harness import backend_pid, main, pool_stats, scenario  # noqa: E402


def request(func=backend_pid):
    """Run `func` as the body of a request: a checkout, and the connection given back."""
    from django_db_geventpool.utils import close_connection

    with close_connection():
        return func()


@scenario
def every_checkout_is_a_connect(args):
    """connection_created, atomic blocks and on_commit, on every checkout of one connection."""
    from django.db import connection, connections, transaction
    from django.db.backends.signals import connection_created

    created = []
    committed = []
    connection_created.connect(
        lambda sender, connection, **kwargs: created.append(sender), weak=False
    )

    def in_atomic():
        with transaction.atomic():
            transaction.on_commit(lambda: committed.append(1))
            return backend_pid()

    # Django's connect() builds the connection parameters, and the pool's opener builds
    # them again for the connection it opens; a reused connection needs neither.
    params_built = []
    wrapper_class = type(connections["default"])
    build = wrapper_class.get_connection_params

    def counted(self):
        params_built.append(1)
        return build(self)

    wrapper_class.get_connection_params = counted
    pids = [request(), request(in_atomic), request()]

    # A task that never used the database before gets the attributes Django set on the
    # wrapper that opened the connection.
    def isolation_level():
        backend_pid()
        return connection.isolation_level

    isolation = green.result(green.spawn(request, isolation_level))
    return {
        "pids": pids,
        "created": len(created),
        "committed": len(committed),
        "params_built": len(params_built),
        "isolation_level": int(isolation),
        "stats": pool_stats(),
    }


@scenario
def settings_changed_between_checkouts(args):
    """A pool made for other settings is not the one the next checkout takes from."""
    from django.db import connection

    def application_name():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('application_name')")
            return cursor.fetchone()[0]

    before = request(application_name)
    first_pool = connection.geventpool
    connection.settings_dict["OPTIONS"]["application_name"] = args["app"] + "-renamed"
    after = request(application_name)
    return {
        "before": before,
        "after": after,
        "first_pool_closed": first_pool.closed,
        "pool_replaced": connection.geventpool is not first_pool,
    }


@scenario
def closed_from_another_task(args):
    """Closing a wrapper from a task that doesn't own it fails as in Django, lending intact."""
    from django.db import DatabaseError, connections

    wrapper = connections["default"]
    wrapper.ensure_connection()

    def close_it():
        try:
            wrapper.close()
        except DatabaseError as exc:
            return str(exc)
        return None

    error = green.result(green.spawn(close_it))
    still_lent = pool_stats()["in_use"]
    wrapper.close()
    return {"error": error, "in_use_before": still_lent, "stats": pool_stats()}


@scenario
def health_check_finds_a_dead_connection(args):
    """With CONN_HEALTH_CHECKS, a reused connection killed while idle is replaced unseen."""
    observer = cell.observer()
    first = request()
    cell.query_one(observer, "SELECT pg_terminate_backend(%s)", (first,))
    second = request()
    observer.close()
    return {"first": first, "second": second, "stats": pool_stats()}


@scenario
def autocommit_left_off(args):
    """A request that leaves autocommit off gives back a connection the next one can use."""
    from django.db import close_old_connections, connection

    connection.set_autocommit(False)
    first = backend_pid()
    close_old_connections()
    second = request()
    return {
        "first": first,
        "second": second,
        "autocommit": connection.get_autocommit(),
        "stats": pool_stats(),
    }


@scenario
def called_from_async_code(args):
    """Checking out and giving back refuse to run in an event loop, as in Django."""
    import asyncio

    from django.core.exceptions import SynchronousOnlyOperation
    from django.db import connection

    def refused(method):
        async def call():
            try:
                method()
            except SynchronousOnlyOperation as exc:
                return str(exc)
            return None

        return asyncio.run(call())

    checkout = refused(connection.ensure_connection)
    connection.ensure_connection()
    give_back = refused(connection.close)
    connection.close()
    return {"checkout": checkout, "give_back": give_back, "stats": pool_stats()}


if __name__ == "__main__":
    main()
