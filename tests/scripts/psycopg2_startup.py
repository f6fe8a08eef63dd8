"""How the psycopg2 backend starts: wait callbacks, and psycopg 3 installed beside psycopg2.

For tests/psycopg2/test_psycopg2_startup.py: python psycopg2_startup.py SCENARIO
'{"json": "arguments"}' prints one JSON line (harness.py). Nothing is patched on the way in:
each scenario patches (or not) and sets Django up itself, as what is tested is what happens
before and while patching.
"""

import sys

import cell
from harness import main, scenario, setup_django


def patch(runtime, eventlet_psycopg=True):
    if runtime == "gevent":
        from gevent import monkey

        monkey.patch_all()
    else:
        import warnings

        # Only eventlet's own deprecation notice is let through (the script runs with -W error).
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
        import eventlet

        # Unless told not to, eventlet installs a wait callback of its own in psycopg2.
        # (psycopg=True would patch nothing else: eventlet patches only what is named True.)
        if eventlet_psycopg:
            eventlet.monkey_patch()
        else:
            eventlet.monkey_patch(psycopg=False)


def setup_on_psycopg2(args, **settings_):
    """Django on the psycopg2 ENGINE, whatever the cell's driver, with no app by default."""
    setup_django({"engine": cell.ENGINES["psycopg2"], "apps": [], **args}, **settings_)


def select_one():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone()[0]


@scenario
def no_wait_callback(args):
    """Patched, but psycopg2 left blocking: the first connection says so."""
    import warnings

    patch(args["runtime"], eventlet_psycopg=args.get("eventlet_psycopg", False))
    extra = {}
    if "action" in args:
        extra["GEVENTPOOL_MISSING_WAIT_CALLBACK"] = args["action"]
    setup_on_psycopg2(args, **extra)
    from django.core.exceptions import ImproperlyConfigured

    from django_db_geventpool.backends.postgresql_psycopg2.wait_callback import (
        MissingWaitCallbackWarning,
    )

    report = {"error": None, "warnings": [], "selected": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MissingWaitCallbackWarning)
        try:
            report["selected"] = select_one()
        except ImproperlyConfigured as ex:
            report["error"] = str(ex)
    report["warnings"] = [str(w.message) for w in caught]
    import psycopg2.extensions

    callback = psycopg2.extensions.get_wait_callback()
    report["callback"] = callback.__module__ if callback is not None else None
    return report


@scenario
def helper(args):
    """patch_psycopg2() before and after patching, then a query through the pool."""
    from django_db_geventpool.backends.postgresql_psycopg2.wait_callback import patch_psycopg2

    report = {}
    try:
        patch_psycopg2()
    except RuntimeError as ex:
        report["unpatched"] = str(ex)
    patch(args["runtime"])
    report["patched"] = patch_psycopg2()
    import psycopg2.extensions

    report["callback"] = psycopg2.extensions.get_wait_callback().__module__
    setup_on_psycopg2(args)
    report["selected"] = select_one()
    return report


@scenario
def psycopg3_imported_first(args):
    """psycopg 3 installed and already imported: the ENGINE still runs on psycopg2."""
    import psycopg

    setup_on_psycopg2(args)
    selected = select_one()
    from django.db import connection
    from django.db.backends.postgresql import psycopg_any

    return {
        "selected": selected,
        "database_module": connection.Database.__name__,
        "django_is_psycopg3": psycopg_any.is_psycopg3,
        "psycopg_module_kept": sys.modules["psycopg"] is psycopg,
    }


@scenario
def psycopg3_loaded_by_contrib_postgres(args):
    """django.contrib.postgres loads Django's modules with psycopg 3 first: refused at once."""
    from django.core.exceptions import ImproperlyConfigured

    setup_on_psycopg2({**args, "apps": ["django.contrib.postgres"]})
    from django.db import connection

    try:
        connection.ensure_connection()
    except ImproperlyConfigured as ex:
        return {"error": str(ex)}
    return {"error": None}


if __name__ == "__main__":
    main(setup=None)
