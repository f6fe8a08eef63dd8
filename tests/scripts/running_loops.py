"""Async views run with asgiref's ``async_to_sync`` in greenlets, beside sync code.

For tests/green/test_async_views.py: the pool must keep asyncio's running loop per
greenlet even when Django first loads the backend from inside a running loop (a project
with no models, whose first request is an async view). Async views that run before the
backend is loaded are on their own: this one runs alone.
"""

import cell

green = cell.patch()

import asyncio  # noqa: E402
import sys  # noqa: E402

import harness  # noqa: E402

WRAPPER = "django_db_geventpool.core.wrapper"


@harness.scenario
def backend_loaded_inside_a_loop(args):
    from asgiref.sync import async_to_sync, sync_to_async
    from django.db import connection

    seen = {}

    def request(query):
        # What the end of a request does: give the connection back.
        try:
            return query()
        finally:
            connection.close()

    async def async_view():
        seen.setdefault("backend_loaded_before", WRAPPER in sys.modules)
        await asyncio.sleep(0.001)
        return await sync_to_async(harness.backend_pid)()

    def serve(view):
        try:
            return {"pid": view()}
        except Exception as ex:
            return {"error": f"{type(ex).__name__}: {ex}"}

    async_request = async_to_sync(async_view)
    # The first request loads the backend while its loop runs, the rest mix with sync ones.
    first = green.spawn(serve, lambda: request(async_request))
    green.joinall([first])
    tasks = [first]
    for _ in range(args["requests"]):
        tasks.append(green.spawn(serve, lambda: request(async_request)))
        tasks.append(green.spawn(serve, lambda: request(harness.backend_pid)))
    green.joinall(tasks)
    results = [green.result(task) for task in tasks]
    return {
        **seen,
        "errors": [result["error"] for result in results if "error" in result],
        "served": sum("pid" in result for result in results),
        "stats": harness.pool_stats(),
    }


if __name__ == "__main__":
    harness.main()
